//! Ethernet II frame header (destination, source, EtherType).
//!
//! [`Frame::new_checked`] checks once that the buffer holds the 14-byte header; after it has
//! returned `Ok`, no accessor or setter of the frame can panic. Accessors on a
//! [`Frame::new_unchecked`] view over a shorter buffer may panic.

use core::fmt;

/// Length of the Ethernet II header (no FCS, no VLAN tag).
pub const HEADER_LEN: usize = 14;

/// The broadcast MAC address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

mod field {
    use crate::{Field, Rest};

    pub(super) const DESTINATION: Field = 0..6;
    pub(super) const SOURCE: Field = 6..12;
    pub(super) const ETHERTYPE: Field = 12..14;
    pub(super) const PAYLOAD: Rest = 14..;
}

/// Namespace for EtherType values as plain `u16` constants (usable in `match` patterns).
///
/// ```
/// use vxdecap_wire::ethernet::EtherType;
/// assert_eq!(EtherType::IPV4, 0x0800);
/// ```
#[derive(Debug)]
pub enum EtherType {}

impl EtherType {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86DD;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IEEE 802.1Q VLAN tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service tag (S-tag, "QinQ").
    pub const QINQ: u16 = 0x88A8;
    /// Pre-standard QinQ tag still sent by some switches.
    pub const QINQ_OLD: u16 = 0x9100;
}

/// Why a buffer cannot be viewed as an Ethernet frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the 14-byte header.
    Truncated,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("Ethernet frame shorter than its 14-byte header"),
        }
    }
}

impl std::error::Error for Error {}

/// A zero-copy view of an Ethernet II frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking its length (accessors may then panic).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking it holds the whole header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds the whole header.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the Ethernet II header: always [`HEADER_LEN`] (14).
    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Destination MAC address.
    #[inline]
    pub fn dst_addr(&self) -> [u8; 6] {
        let mut mac = [0; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        mac
    }

    /// Source MAC address.
    #[inline]
    pub fn src_addr(&self) -> [u8; 6] {
        let mut mac = [0; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        mac
    }

    /// EtherType (or VLAN TPID) in host order; compare with [`EtherType`] constants.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([
            data[field::ETHERTYPE.start],
            data[field::ETHERTYPE.start + 1],
        ])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// The bytes after the header, borrowed for the buffer's whole lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    #[inline]
    pub fn set_dst_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&mac);
    }

    /// Sets the source MAC address.
    #[inline]
    pub fn set_src_addr(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&mac);
    }

    /// Sets the EtherType (or VLAN TPID).
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    }

    /// The bytes after the header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // First frame of tcpdump's tests/vxlan.pcap: outer header, then the start of IPv4.
    const FRAME: [u8; 16] = [
        0x00, 0x16, 0x3e, 0x08, 0x71, 0xcf, // dst
        0x36, 0xdc, 0x85, 0x1e, 0xb3, 0x40, // src
        0x08, 0x00, // IPv4
        0x45, 0x00, // payload
    ];

    #[test]
    fn parse() {
        let frame = Frame::new_checked(&FRAME[..]).expect("14+ bytes");
        assert_eq!(frame.dst_addr(), [0x00, 0x16, 0x3e, 0x08, 0x71, 0xcf]);
        assert_eq!(frame.src_addr(), [0x36, 0xdc, 0x85, 0x1e, 0xb3, 0x40]);
        assert_eq!(frame.ethertype(), EtherType::IPV4);
        assert_eq!(frame.payload(), &[0x45, 0x00]);
        assert_eq!(Frame::<&[u8]>::header_len(), 14);
    }

    #[test]
    fn emit() {
        let mut buf = [0u8; 16];
        let mut frame = Frame::new_checked(&mut buf[..]).expect("16 bytes");
        frame.set_dst_addr([0x00, 0x16, 0x3e, 0x08, 0x71, 0xcf]);
        frame.set_src_addr([0x36, 0xdc, 0x85, 0x1e, 0xb3, 0x40]);
        frame.set_ethertype(EtherType::IPV4);
        frame.payload_mut().copy_from_slice(&[0x45, 0x00]);
        assert_eq!(buf, FRAME);
    }

    #[test]
    fn header_only_has_empty_payload() {
        let frame = Frame::new_checked(&FRAME[..14]).expect("exactly 14 bytes");
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(Frame::new_checked(&FRAME[..len]), Err(Error::Truncated));
        }
    }

    #[test]
    fn ethertype_values() {
        assert_eq!(EtherType::IPV6, 0x86dd);
        assert_eq!(EtherType::ARP, 0x0806);
        assert_eq!(EtherType::VLAN, 0x8100);
        assert_eq!(EtherType::QINQ, 0x88a8);
        assert_eq!(EtherType::QINQ_OLD, 0x9100);
    }
}
