//! The Internet checksum (RFC 1071) and the UDP pseudo-headers of RFC 768 / RFC 8200.
//!
//! These functions take any slice and never panic. They return the ones'-complement *sum*
//! folded to 16 bits; a header's checksum field holds the complement of that sum (`!sum`), and a
//! header with a correct checksum sums to `0xffff`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Folds a wide ones'-complement accumulator into 16 bits.
#[inline]
const fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Ones'-complement sum of `data` read as big-endian 16-bit words (an odd last byte is padded
/// with a zero byte, as RFC 1071 says).
#[inline]
pub fn data(data: &[u8]) -> u16 {
    // Eight bytes a step, read in the machine's byte order as two 32-bit words: 2^32 ≡ 1
    // (mod 0xffff) like 2^16, and the ones'-complement sum is byte-order independent (RFC 1071
    // section 2), so folding and swapping the bytes back gives the sum over 16-bit big-endian
    // words. A u64 cannot overflow: it would take 2^31 steps.
    let mut quads = data.chunks_exact(8);
    let mut native: u64 = 0;
    for quad in &mut quads {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(quad);
        let value = u64::from_ne_bytes(bytes);
        native += (value >> 32) + (value & 0xffff_ffff);
    }
    let folded = fold(native);
    let mut sum = u64::from(if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    });
    let mut words = quads.remainder().chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold(sum)
}

/// Ones'-complement sum of partial sums (as returned by [`data`] and the pseudo-header helpers).
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo-header used by UDP and TCP checksums.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    combine(&[
        data(&src.octets()),
        data(&dst.octets()),
        u16::from(protocol),
        length,
    ])
}

/// Sum of the IPv6 pseudo-header used by UDP and TCP checksums.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> u16 {
    combine(&[
        data(&src.octets()),
        data(&dst.octets()),
        (length >> 16) as u16,
        length as u16,
        u16::from(next_header),
    ])
}

/// Sum of the pseudo-header for either family, or `None` when `src` and `dst` differ in family.
#[inline]
pub fn pseudo_header(src: IpAddr, dst: IpAddr, protocol: u8, length: u16) -> Option<u16> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(pseudo_header_v4(s, d, protocol, length)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(pseudo_header_v6(s, d, protocol, u32::from(length))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
    }

    #[test]
    fn odd_length_is_zero_padded() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn folds_carries() {
        assert_eq!(data(&[0xff, 0xff, 0x00, 0x01]), 0x0001);
        assert_eq!(combine(&[0xffff, 0xffff]), 0xffff);
    }

    #[test]
    fn eight_bytes_a_step_sums_as_16_bit_words() {
        let by_words = |bytes: &[u8]| {
            let mut sum = 0u64;
            for (i, &b) in bytes.iter().enumerate() {
                sum += u64::from(b) << if i % 2 == 0 { 8 } else { 0 };
            }
            fold(sum)
        };
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut bytes = Vec::new();
        for len in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
            assert_eq!(data(&bytes[..len]), by_words(&bytes[..len]), "len {len}");
        }
        assert_eq!(data(&[0xff; 64]), 0xffff);
        assert_eq!(data(&[0; 64]), 0);
    }

    #[test]
    fn mixed_families_have_no_pseudo_header() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(pseudo_header(v4, v6, 17, 8), None);
        assert!(pseudo_header(v4, v4, 17, 8).is_some());
    }
}
