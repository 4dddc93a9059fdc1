//! IPv6 fixed header (RFC 8200) and the generic shape of its length-prefixed extension headers.
//!
//! [`Packet::new_checked`] checks once, up front, that the 40-byte header is present, that the
//! version is 6 and that the payload length fits the buffer; [`ExtHeader::new_checked`] checks
//! that an extension header's declared length fits. After either has returned `Ok`, no accessor
//! or setter of that view can panic. Bytes past the payload length (Ethernet padding) are
//! allowed and left out of [`Packet::payload`].

use core::fmt;
use std::net::Ipv6Addr;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

mod field {
    use crate::{Field, Rest};

    pub(super) const VER_TC_FLOW: Field = 0..4;
    pub(super) const LENGTH: Field = 4..6;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC_ADDR: Field = 8..24;
    pub(super) const DST_ADDR: Field = 24..40;
    pub(super) const PAYLOAD: Rest = 40..;

    // Extension headers (Hop-by-Hop, Routing, Destination Options): RFC 8200 section 4.
    pub(super) const EXT_NXT_HDR: usize = 0;
    pub(super) const EXT_LEN: usize = 1;
}

/// Why a buffer cannot be viewed as an IPv6 packet or extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the fixed header, the payload length or the extension header.
    Truncated,
    /// The version field is not 6.
    Version,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "IPv6 packet cut short of its header or payload length",
            Self::Version => "IPv6 header with a version other than 6",
        })
    }
}

impl std::error::Error for Error {}

/// A zero-copy view of an IPv6 packet.
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

    /// Checks the fixed header, the version and the payload length against the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Version);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the fixed header: always [`HEADER_LEN`] (40).
    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        let data = self.buffer.as_ref();
        u32::from_be_bytes([data[0], data[1], data[2], data[3]])
    }

    /// Version field (6 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.ver_tc_flow() >> 28) as u8
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length: bytes after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[field::LENGTH.start], data[field::LENGTH.start + 1]])
    }

    /// Protocol of the first header after the fixed one; compare with
    /// [`crate::ip::IpProtocol`] constants.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        self.read_addr(field::SRC_ADDR.start)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        self.read_addr(field::DST_ADDR.start)
    }

    #[inline]
    fn read_addr(&self, at: usize) -> Ipv6Addr {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[at..at + 16]);
        Ipv6Addr::from(octets)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload (extension headers included), bounded by the payload length.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_ver_tc_flow(&mut self, word: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }

    /// Sets the version field (low 4 bits of `version`).
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let word = (self.ver_tc_flow() & 0x0fff_ffff) | (u32::from(version & 0x0f) << 28);
        self.set_ver_tc_flow(word);
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, traffic_class: u8) {
        let word = (self.ver_tc_flow() & 0xf00f_ffff) | (u32::from(traffic_class) << 20);
        self.set_ver_tc_flow(word);
    }

    /// Sets the flow label (bits above 20 are dropped).
    #[inline]
    pub fn set_flow_label(&mut self, flow_label: u32) {
        let word = (self.ver_tc_flow() & 0xfff0_0000) | (flow_label & 0x000f_ffff);
        self.set_ver_tc_flow(word);
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, payload_len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&payload_len.to_be_bytes());
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = next_header;
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Everything after the fixed header, mutably (not bounded by the payload length, so that
    /// it can be written before the length is set).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// A zero-copy view of a length-prefixed IPv6 extension header (Hop-by-Hop Options, Routing,
/// Destination Options): next header, length in 8-byte units not counting the first 8, data.
///
/// The Fragment header has the same first byte but a fixed length; ESP and AH use other length
/// rules, so do not walk them with this view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps a buffer without checking it (accessors may then panic).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking that the whole extension header is in it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks that the length byte is present and the declared length fits the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let data = self.buffer.as_ref();
        match data.get(field::EXT_LEN) {
            Some(&units) if (usize::from(units) + 1) * 8 <= data.len() => Ok(()),
            _ => Err(Error::Truncated),
        }
    }

    /// Returns the underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Protocol of the header after this one.
    #[inline]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::EXT_NXT_HDR]
    }

    /// Length of this extension header in bytes (8..=2048).
    #[inline]
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[field::EXT_LEN]) + 1) * 8
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ExtHeader<&'a T> {
    /// The option or routing data after the 2-byte prefix.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[2..self.header_len()]
    }

    /// The bytes after this extension header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<T> {
    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, next_header: u8) {
        self.buffer.as_mut()[field::EXT_NXT_HDR] = next_header;
    }

    /// Sets the length in bytes; it must be a multiple of 8 from 8 to 2048 (it is stored as
    /// `len / 8 - 1`, saturating at the ends of that range).
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let units = (len / 8).clamp(1, 256) - 1;
        self.buffer.as_mut()[field::EXT_LEN] = units as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::IpProtocol;

    // 2001:db8::1 -> 2001:db8::2, traffic class 0xb8, flow label 0x12345, UDP, hop limit 64,
    // 4 payload bytes, then 2 bytes of padding.
    const PACKET: [u8; 46] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x04, 0x11, 0x40, // ver/tc/flow, len, nh, hl
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // src
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // dst
        0xde, 0xad, 0xbe, 0xef, // payload
        0x00, 0x00, // padding
    ];

    fn src() -> Ipv6Addr {
        "2001:db8::1".parse().expect("literal")
    }

    fn dst() -> Ipv6Addr {
        "2001:db8::2".parse().expect("literal")
    }

    #[test]
    fn parse() {
        let packet = Packet::new_checked(&PACKET[..]).expect("valid");
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0xb8);
        assert_eq!(packet.flow_label(), 0x12345);
        assert_eq!(packet.payload_len(), 4);
        assert_eq!(packet.next_header(), IpProtocol::UDP);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), src());
        assert_eq!(packet.dst_addr(), dst());
        assert_eq!(packet.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(Packet::<&[u8]>::header_len(), 40);
    }

    #[test]
    fn emit() {
        let mut buf = [0u8; 46];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_version(6);
        packet.set_traffic_class(0xb8);
        packet.set_flow_label(0x12345);
        packet.set_payload_len(4);
        packet.set_next_header(IpProtocol::UDP);
        packet.set_hop_limit(64);
        packet.set_src_addr(src());
        packet.set_dst_addr(dst());
        packet.payload_mut()[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(buf, PACKET);
    }

    #[test]
    fn check_errors() {
        for len in 0..HEADER_LEN {
            assert_eq!(Packet::new_checked(&PACKET[..len]), Err(Error::Truncated));
        }
        assert_eq!(Packet::new_checked(&PACKET[..43]), Err(Error::Truncated));
        assert!(Packet::new_checked(&PACKET[..44]).is_ok());
        let mut bad = PACKET;
        bad[0] = 0x4b;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Version));
    }

    #[test]
    fn ext_header_parse_and_emit() {
        // Destination Options, next header UDP, length 16 (Hdr Ext Len 1): PadN filling it.
        let bytes: [u8; 18] = [
            0x11, 0x01, 0x01, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // header
            0xab, 0xcd, // what follows
        ];
        let ext = ExtHeader::new_checked(&bytes[..]).expect("valid");
        assert_eq!(ext.next_header(), IpProtocol::UDP);
        assert_eq!(ext.header_len(), 16);
        assert_eq!(ext.data().len(), 14);
        assert_eq!(ext.payload(), &[0xab, 0xcd]);

        let mut buf = [0u8; 18];
        buf[2..4].copy_from_slice(&[0x01, 0x0c]);
        buf[16..].copy_from_slice(&[0xab, 0xcd]);
        let mut ext = ExtHeader::new_unchecked(&mut buf[..]);
        ext.set_next_header(IpProtocol::UDP);
        ext.set_header_len(16);
        assert_eq!(buf, bytes);
    }

    #[test]
    fn ext_header_truncated() {
        assert_eq!(ExtHeader::new_checked(&[][..]), Err(Error::Truncated));
        assert_eq!(ExtHeader::new_checked(&[0x11][..]), Err(Error::Truncated));
        assert_eq!(
            ExtHeader::new_checked(&[0x11, 0, 0][..]),
            Err(Error::Truncated)
        );
        assert_eq!(
            ExtHeader::new_checked(&[0x11, 1, 0, 0, 0, 0, 0, 0][..]),
            Err(Error::Truncated)
        );
        let max = [0xffu8; 2048];
        assert_eq!(
            ExtHeader::new_checked(&max[..]).map(|e| e.header_len()),
            Ok(2048)
        );
    }
}
