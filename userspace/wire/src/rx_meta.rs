//! The receive record the XDP program (`xdp-prog/vxdecap.bpf.c`) puts in front of every frame
//! it redirects to an AF_XDP socket: `struct vxd_rx_meta` in `xdp-prog/vxdecap_shared.h`,
//! written in the host's byte order (little-endian on every target vxdecap runs on).
//!
//! ```text
//!  0               8       12      14       15       16
//! | rx_ns (u64)   | magic | offset | tunnel | (res.) | the frame as received …
//!                   "VXDM"
//! ```
//!
//! [`RxMeta::split`] reads the record and returns the frame behind it, or `None` when the
//! magic is not there (a frame redirected without the record); it cannot panic on any input.
//! The `vxdecap` crate checks at compile time that [`RxMeta::LEN`] and [`RxMeta::MAGIC`] match
//! the shared header.

/// The record in front of a redirected frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxMeta {
    /// Receive time in XDP, CLOCK_MONOTONIC nanoseconds.
    pub rx_ns: u64,
    /// Bytes from the Ethernet header to the tunnel (VXLAN or GENEVE) header, as the program
    /// parsed them (0: not known, for a fragment).
    pub vxlan_offset: u16,
    /// Which tunnel header is there: [`RxMeta::TUNNEL_VXLAN`], [`RxMeta::TUNNEL_GENEVE`], or 0
    /// (not known, for a fragment).
    pub tunnel: u8,
}

mod field {
    use crate::Field;

    pub(super) const RX_NS: Field = 0..8;
    pub(super) const MAGIC: Field = 8..12;
    pub(super) const VXLAN_OFFSET: Field = 12..14;
    pub(super) const TUNNEL: usize = 14;
}

impl RxMeta {
    /// Size of the record.
    pub const LEN: usize = 16;
    /// `"VXDM"` as a little-endian u32.
    pub const MAGIC: u32 = u32::from_le_bytes(*b"VXDM");
    /// `tunnel`: a VXLAN header.
    pub const TUNNEL_VXLAN: u8 = 1;
    /// `tunnel`: a GENEVE header.
    pub const TUNNEL_GENEVE: u8 = 2;

    /// Splits a redirected frame into its record and the frame as received;
    /// `None` when the record is missing (the frame then is all of `data`).
    #[inline]
    pub fn split(data: &[u8]) -> Option<(Self, &[u8])> {
        let (head, frame) = data.split_first_chunk::<{ Self::LEN }>()?;
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&head[field::MAGIC]);
        if u32::from_le_bytes(magic) != Self::MAGIC {
            return None;
        }
        let mut rx = [0u8; 8];
        rx.copy_from_slice(&head[field::RX_NS]);
        let mut offset = [0u8; 2];
        offset.copy_from_slice(&head[field::VXLAN_OFFSET]);
        Some((
            Self {
                rx_ns: u64::from_le_bytes(rx),
                vxlan_offset: u16::from_le_bytes(offset),
                tunnel: head[field::TUNNEL],
            },
            frame,
        ))
    }

    /// The record as the XDP program writes it (the reserved bytes zero).
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[field::RX_NS].copy_from_slice(&self.rx_ns.to_le_bytes());
        out[field::MAGIC].copy_from_slice(&Self::MAGIC.to_le_bytes());
        out[field::VXLAN_OFFSET].copy_from_slice(&self.vxlan_offset.to_le_bytes());
        out[field::TUNNEL] = self.tunnel;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the XDP program writes it on x86-64: rx_ns 0x0102030405060708, magic
    /// "VXDM", a GENEVE header 42 bytes in, one reserved byte.
    const RECORD: [u8; 16] = [
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, b'V', b'X', b'D', b'M', 42, 0, 2, 0,
    ];

    #[test]
    fn parses_the_record_and_returns_the_frame_behind_it() {
        let mut data = RECORD.to_vec();
        data.extend_from_slice(b"frame");
        let (meta, frame) = RxMeta::split(&data).expect("a record");
        assert_eq!(meta.rx_ns, 0x0102_0304_0506_0708);
        assert_eq!(meta.vxlan_offset, 42);
        assert_eq!(meta.tunnel, RxMeta::TUNNEL_GENEVE);
        assert_eq!(frame, b"frame");
    }

    #[test]
    fn emits_what_it_parses() {
        let meta = RxMeta {
            rx_ns: 0x0102_0304_0506_0708,
            vxlan_offset: 42,
            tunnel: RxMeta::TUNNEL_GENEVE,
        };
        assert_eq!(meta.to_bytes(), RECORD);
    }

    #[test]
    fn no_magic_or_too_short_is_no_record() {
        let mut data = RECORD;
        data[8] = b'X';
        assert_eq!(RxMeta::split(&data), None);
        assert_eq!(RxMeta::split(&RECORD[..15]), None);
        assert_eq!(RxMeta::split(&[]), None);
        assert_eq!(
            RxMeta::split(&RECORD).map(|(_, frame)| frame.len()),
            Some(0)
        );
    }
}
