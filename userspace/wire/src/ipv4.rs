//! IPv4 header (RFC 791), options included.
//!
//! [`Packet::new_checked`] checks once, up front, that the version is 4, that the IHL is at
//! least 5, that the whole header (options included) is in the buffer, and that the total length
//! covers the header and fits the buffer. After it has returned `Ok`, no accessor or setter can
//! panic. Bytes past the total length (Ethernet padding of short frames) are allowed and left out
//! of [`Packet::payload`].
//!
//! The header checksum is *not* checked by `new_checked` (a decapsulator leaves that to the NIC
//! or the kernel); call [`Packet::verify_checksum`] when it matters.

use core::fmt;
use std::net::Ipv4Addr;

use crate::checksum;

/// Length of an IPv4 header without options (IHL 5).
pub const MIN_HEADER_LEN: usize = 20;
/// Length of an IPv4 header with the most options (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

mod field {
    use crate::Field;

    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Field = 2..4;
    pub(super) const IDENT: Field = 4..6;
    pub(super) const FLG_OFF: Field = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Field = 10..12;
    pub(super) const SRC_ADDR: Field = 12..16;
    pub(super) const DST_ADDR: Field = 16..20;
}

/// Flag bits in the flags/fragment-offset word.
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// Why a buffer cannot be viewed as an IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before the header (options included) or before the total length.
    Truncated,
    /// The version field is not 4.
    Version,
    /// The IHL is below 5 (a header cannot be shorter than 20 bytes).
    HeaderLen,
    /// The total length is shorter than the header.
    TotalLen,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "IPv4 packet cut short of its header or total length",
            Self::Version => "IPv4 header with a version other than 4",
            Self::HeaderLen => "IPv4 header length (IHL) below 5",
            Self::TotalLen => "IPv4 total length shorter than its header",
        })
    }
}

impl std::error::Error for Error {}

/// A zero-copy view of an IPv4 packet.
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

    /// Checks version, IHL, header length and total length against the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Version);
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(Error::HeaderLen);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::TotalLen);
        }
        if total_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4 for a checked packet).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Internet header length in 32-bit words (5..=15 for a checked packet).
    #[inline]
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes, options included (20..=60 for a checked packet).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// Differentiated services code point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length of the datagram in bytes (header and payload).
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::LENGTH.start)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT.start)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.read_u16(field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.read_u16(field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.read_u16(field::FLG_OFF.start) & FRAG_OFFSET_MASK) << 3
    }

    /// Whether this datagram is a fragment (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload; compare with [`crate::ip::IpProtocol`] constants.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum as found on the wire.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SRC_ADDR.start)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(field::DST_ADDR.start)
    }

    /// Whether the header checksum is correct (options included).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let data = self.buffer.as_ref();
        // `get` keeps this panic-free even on an unchecked view.
        match data.get(..self.header_len()) {
            Some(header) => checksum::data(header) == !0,
            None => false,
        }
    }

    #[inline]
    fn read_u16(&self, at: usize) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[at], data[at + 1]])
    }

    #[inline]
    fn read_addr(&self, at: usize) -> Ipv4Addr {
        let data = self.buffer.as_ref();
        Ipv4Addr::new(data[at], data[at + 1], data[at + 2], data[at + 3])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Options bytes between the fixed header and the payload (empty for IHL 5).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// The payload: the bytes after the header up to the total length (padding excluded).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version field (low 4 bits of `version`).
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let byte = &mut self.buffer.as_mut()[field::VER_IHL];
        *byte = (*byte & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes; it is stored in 32-bit words, so `header_len / 4` must
    /// fit in 4 bits (bits beyond are dropped).
    #[inline]
    pub fn set_header_len(&mut self, header_len: usize) {
        let ihl = ((header_len / 4) & 0x0f) as u8;
        let byte = &mut self.buffer.as_mut()[field::VER_IHL];
        *byte = (*byte & 0xf0) | ihl;
    }

    /// Sets the DSCP (low 6 bits).
    #[inline]
    pub fn set_dscp(&mut self, dscp: u8) {
        let byte = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *byte = (*byte & 0x03) | (dscp << 2);
    }

    /// Sets the ECN bits (low 2 bits).
    #[inline]
    pub fn set_ecn(&mut self, ecn: u8) {
        let byte = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *byte = (*byte & 0xfc) | (ecn & 0x03);
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, total_len: u16) {
        self.write_u16(field::LENGTH.start, total_len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        self.write_u16(field::IDENT.start, ident);
    }

    /// Clears the flags and the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        self.write_u16(field::FLG_OFF.start, 0);
    }

    /// Sets or clears the don't-fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flag(FLAG_DF, value);
    }

    /// Sets or clears the more-fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flag(FLAG_MF, value);
    }

    /// Sets the fragment offset in bytes (stored in 8-byte units; the low 3 bits are dropped).
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        let word = self.read_u16(field::FLG_OFF.start);
        let word = (word & !FRAG_OFFSET_MASK) | (offset >> 3);
        self.write_u16(field::FLG_OFF.start, word);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the payload protocol.
    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    /// Sets the checksum field as is (see [`Packet::fill_checksum`]).
    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        self.write_u16(field::CHECKSUM.start, checksum);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum (options included) and stores it. Set the header length
    /// first. Does nothing if the header length exceeds the buffer (an unchecked view).
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let sum = match self.buffer.as_ref().get(..header_len) {
            Some(header) => checksum::data(header),
            None => return,
        };
        self.set_checksum(!sum);
    }

    /// Options bytes, mutably.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[MIN_HEADER_LEN..header_len]
    }

    /// The payload up to the total length, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }

    #[inline]
    fn set_flag(&mut self, flag: u16, value: bool) {
        let word = self.read_u16(field::FLG_OFF.start);
        let word = if value { word | flag } else { word & !flag };
        self.write_u16(field::FLG_OFF.start, word);
    }

    #[inline]
    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ip::IpProtocol;

    // Outer IPv4 header of the first frame of tcpdump's tests/vxlan.pcap (checksum verifies),
    // followed by the first 4 bytes of its UDP header.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x86, 0xd2, 0xc0, 0x40, 0x00, 0x40, 0x11, 0x51, 0x52, 0xc0, 0xa8, 0xcb,
        0x01, 0xc0, 0xa8, 0xca, 0x01,
    ];

    /// HEADER with its total length cut to 24 so the packet fits a 24-byte buffer.
    fn short_packet() -> [u8; 26] {
        let mut buf = [0u8; 26];
        buf[..20].copy_from_slice(&HEADER);
        buf[2..4].copy_from_slice(&24u16.to_be_bytes());
        buf[20..24].copy_from_slice(&[0xb0, 0x5d, 0x12, 0xb5]);
        // Two bytes of Ethernet-style padding beyond the total length.
        buf[24..26].copy_from_slice(&[0xee, 0xee]);
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.fill_checksum();
        buf
    }

    #[test]
    fn parse_real_header() {
        let mut buf = [0u8; 0x86];
        buf[..20].copy_from_slice(&HEADER);
        let packet = Packet::new_checked(&buf[..]).expect("valid header");
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.ihl(), 5);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp(), 0);
        assert_eq!(packet.ecn(), 0);
        assert_eq!(packet.total_len(), 0x86);
        assert_eq!(packet.ident(), 0xd2c0);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::UDP);
        assert_eq!(packet.checksum(), 0x5152);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 168, 203, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(192, 168, 202, 1));
        assert!(packet.verify_checksum());
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload().len(), 0x86 - 20);
    }

    #[test]
    fn emit_real_header() {
        let mut buf = [0u8; 20];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_total_len(0x86);
        packet.set_ident(0xd2c0);
        packet.set_dont_frag(true);
        packet.set_ttl(64);
        packet.set_protocol(IpProtocol::UDP);
        packet.set_src_addr(Ipv4Addr::new(192, 168, 203, 1));
        packet.set_dst_addr(Ipv4Addr::new(192, 168, 202, 1));
        packet.fill_checksum();
        assert_eq!(buf, HEADER);
    }

    #[test]
    fn payload_excludes_padding() {
        let buf = short_packet();
        let packet = Packet::new_checked(&buf[..]).expect("padding is allowed");
        assert_eq!(packet.payload(), &[0xb0, 0x5d, 0x12, 0xb5]);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn bad_checksum_detected() {
        let mut buf = short_packet();
        buf[8] ^= 1; // change the TTL
        assert!(!Packet::new_checked(&buf[..])
            .expect("valid")
            .verify_checksum());
    }

    #[test]
    fn options_ihl6() {
        // IHL 6: one 4-byte option word (NOP NOP NOP EOL), then 4 payload bytes.
        let mut buf = [0u8; 28];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_version(4);
        packet.set_header_len(24);
        packet.set_total_len(28);
        packet.set_ttl(1);
        packet.set_protocol(IpProtocol::UDP);
        packet.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        packet.payload_mut().copy_from_slice(&[9, 8, 7, 6]);
        packet.fill_checksum();
        assert_eq!(&buf[..2], &[0x46, 0x00]);

        let packet = Packet::new_checked(&buf[..]).expect("IHL 6 is valid");
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        assert_eq!(packet.payload(), &[9, 8, 7, 6]);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn ihl15_is_valid() {
        let mut buf = [0u8; 60];
        let mut packet = Packet::new_unchecked(&mut buf[..]);
        packet.set_version(4);
        packet.set_header_len(60);
        packet.set_total_len(60);
        let packet = Packet::new_checked(&buf[..]).expect("IHL 15 is valid");
        assert_eq!(packet.options().len(), 40);
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn fragment_fields() {
        let mut buf = short_packet();
        let mut packet = Packet::new_checked(&mut buf[..]).expect("valid");
        packet.set_dont_frag(false);
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        assert_eq!(&buf[6..8], &[0x20, 0xb9]);
        let packet = Packet::new_checked(&buf[..]).expect("valid");
        assert!(packet.more_frags());
        assert!(!packet.dont_frag());
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.is_fragment());
        let mut packet = Packet::new_unchecked(buf);
        packet.clear_flags();
        assert!(!packet.is_fragment());
    }

    #[test]
    fn dscp_ecn() {
        let mut buf = short_packet();
        let mut packet = Packet::new_checked(&mut buf[..]).expect("valid");
        packet.set_dscp(46);
        packet.set_ecn(0b11);
        assert_eq!(buf[1], 0xbb);
        let packet = Packet::new_checked(&buf[..]).expect("valid");
        assert_eq!((packet.dscp(), packet.ecn()), (46, 3));
    }

    #[test]
    fn check_errors() {
        let good = short_packet();
        for len in 0..MIN_HEADER_LEN {
            assert_eq!(Packet::new_checked(&good[..len]), Err(Error::Truncated));
        }
        // Shorter than the total length.
        assert_eq!(Packet::new_checked(&good[..23]), Err(Error::Truncated));

        let mut bad = good;
        bad[0] = 0x65;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Version));

        let mut bad = good;
        bad[0] = 0x44;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::HeaderLen));

        let mut bad = good;
        bad[0] = 0x4f; // 60-byte header in a 26-byte buffer
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Truncated));

        let mut bad = good;
        bad[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::TotalLen));

        let mut bad = good;
        bad[2..4].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Truncated));
    }

    #[test]
    fn unchecked_checksum_never_panics() {
        let buf = [0x4f, 0, 0, 0];
        let packet = Packet::new_unchecked(&buf[..]);
        assert!(!packet.verify_checksum());
    }
}
