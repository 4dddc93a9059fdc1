//! UDP header (RFC 768).
//!
//! [`Packet::new_checked`] checks once, up front, that the 8-byte header is present and that the
//! UDP length is at least 8 and fits the buffer. After it has returned `Ok`, no accessor or
//! setter can panic. Bytes past the UDP length are left out of [`Packet::payload`].
//!
//! The checksum is not checked by `new_checked`: cloud traffic mirrors send 0 ("not computed").
//! [`Packet::verify_checksum`] and [`Packet::fill_checksum`] are there for the emit side and for
//! tests.

use core::fmt;
use std::net::IpAddr;

use crate::checksum;
use crate::ip::IpProtocol;

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    use crate::Field;

    pub(super) const SRC_PORT: Field = 0..2;
    pub(super) const DST_PORT: Field = 2..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const CHECKSUM: Field = 6..8;
}

/// Why a buffer cannot be viewed as a UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the header or before the UDP length.
    Truncated,
    /// The UDP length is below 8 (shorter than the header itself).
    Length,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "UDP datagram cut short of its header or length",
            Self::Length => "UDP length below the 8-byte header",
        })
    }
}

impl std::error::Error for Error {}

/// A zero-copy view of a UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without any check (accessors may then panic).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after the checks described in the [module docs](self).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the header and the UDP length against the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let buffer_len = self.buffer.as_ref().len();
        if buffer_len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::Length);
        }
        if len > buffer_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the UDP header: always [`HEADER_LEN`] (8).
    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    #[inline]
    fn read_u16(&self, at: usize) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT.start)
    }

    /// UDP length: header and payload, in bytes.
    #[inline]
    pub fn len(&self) -> u16 {
        self.read_u16(field::LENGTH.start)
    }

    /// Whether the payload is empty (UDP length 8).
    #[inline]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum as found on the wire (0 means "not computed").
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// Whether the checksum is correct for the given addresses. A zero checksum ("not
    /// computed", allowed for IPv4 and for IPv6 tunnels by RFC 6935) is accepted; addresses of
    /// different families, or a length past the buffer, are not.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let Some(datagram) = self.buffer.as_ref().get(..usize::from(len)) else {
            return false;
        };
        match checksum::pseudo_header(src, dst, IpProtocol::UDP, len) {
            Some(pseudo) => checksum::combine(&[pseudo, checksum::data(datagram)]) == !0,
            None => false,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload, bounded by the UDP length.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        self.write_u16(field::SRC_PORT.start, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        self.write_u16(field::DST_PORT.start, port);
    }

    /// Sets the UDP length (header included).
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        self.write_u16(field::LENGTH.start, len);
    }

    /// Sets the checksum field as is (0 means "not computed").
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        self.write_u16(field::CHECKSUM.start, checksum);
    }

    /// Computes and stores the checksum over the pseudo-header, header and payload. Set the
    /// length and payload first. Stores 0 ("not computed") when the addresses differ in family
    /// or the length runs past the buffer.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let len = self.len();
        let Some(datagram) = self.buffer.as_ref().get(..usize::from(len)) else {
            return;
        };
        let Some(pseudo) = checksum::pseudo_header(src, dst, IpProtocol::UDP, len) else {
            return;
        };
        let sum = !checksum::combine(&[pseudo, checksum::data(datagram)]);
        // A computed 0 is sent as 0xffff, since 0 means "not computed" (RFC 768).
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }

    /// The payload up to the UDP length, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    // UDP header of the first frame of tcpdump's tests/vxlan.pcap (length 0x72, checksum 0)
    // with the length cut to 12 so that it fits this fixture, 4 payload bytes and 2 bytes past
    // the UDP length.
    const DATAGRAM: [u8; 14] = [
        0xb0, 0x5d, 0x12, 0xb5, 0x00, 0x0c, 0x00, 0x00, // header
        0x08, 0x00, 0x00, 0x00, // payload (start of a VXLAN header)
        0xee, 0xee, // beyond the UDP length
    ];

    #[test]
    fn parse() {
        let packet = Packet::new_checked(&DATAGRAM[..]).expect("valid");
        assert_eq!(packet.src_port(), 45149);
        assert_eq!(packet.dst_port(), 4789);
        assert_eq!(packet.len(), 12);
        assert!(!packet.is_empty());
        assert_eq!(packet.checksum(), 0);
        assert_eq!(packet.payload(), &[0x08, 0, 0, 0]);
        assert_eq!(Packet::<&[u8]>::header_len(), 8);
    }

    #[test]
    fn emit() {
        let mut buf = [0u8; 14];
        buf[12..].copy_from_slice(&[0xee, 0xee]);
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_src_port(45149);
        packet.set_dst_port(4789);
        packet.set_len(12);
        packet.set_checksum(0);
        packet.payload_mut().copy_from_slice(&[0x08, 0, 0, 0]);
        assert_eq!(buf, DATAGRAM);
    }

    #[test]
    fn check_errors() {
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&DATAGRAM[..len]), Err(Error::Truncated));
        }
        assert_eq!(Packet::new_checked(&DATAGRAM[..11]), Err(Error::Truncated));
        let mut bad = DATAGRAM;
        bad[5] = 7;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Length));
        bad[5] = 8;
        let empty = Packet::new_checked(&bad[..]).expect("length 8 is valid");
        assert!(empty.is_empty());
        assert!(empty.payload().is_empty());
    }

    #[test]
    fn checksum_round_trip() {
        let src = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
        let dst = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2));
        let mut buf = DATAGRAM;
        let mut packet = Packet::new_checked(&mut buf[..]).expect("valid");
        packet.fill_checksum(src, dst);
        assert_ne!(packet.checksum(), 0);
        assert!(packet.verify_checksum(src, dst));
        assert!(!packet.verify_checksum(dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        let v6: IpAddr = "2001:db8::1".parse().expect("literal");
        assert!(!packet.verify_checksum(src, v6));
        packet.fill_checksum(v6, "2001:db8::2".parse().expect("literal"));
        assert!(packet.verify_checksum(v6, "2001:db8::2".parse().expect("literal")));
    }

    #[test]
    fn known_checksum() {
        // Hand-checked: 10.0.0.1:1 -> 10.0.0.2:2, length 8, no payload.
        // Pseudo-header sum 0x0a00+0x0001+0x0a00+0x0002+0x0011+0x0008 = 0x141c,
        // header sum 0x0001+0x0002+0x0008 = 0x000b; !(0x1427) = 0xebd8.
        let mut buf = [0, 1, 0, 2, 0, 8, 0, 0];
        let mut packet = Packet::new_checked(&mut buf[..]).expect("valid");
        packet.fill_checksum(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        );
        assert_eq!(buf[6..8], [0xeb, 0xd8]);
    }
}
