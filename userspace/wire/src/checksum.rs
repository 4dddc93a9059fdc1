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
    let mut words = data.chunks_exact(2);
    // A u64 cannot overflow here: it would take 2^48 words.
    let mut sum: u64 = 0;
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
    fn mixed_families_have_no_pseudo_header() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(pseudo_header(v4, v6, 17, 8), None);
        assert!(pseudo_header(v4, v4, 17, 8).is_some());
    }
}
