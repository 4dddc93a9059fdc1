//! IEEE 802.1Q / 802.1ad VLAN tag.
//!
//! On the wire a tag is the TPID (0x8100, 0x88A8 or the pre-standard 0x9100) followed by the
//! TCI and the next EtherType. The TPID sits where the EtherType of the header before it would
//! be, so it is read by the previous view ([`crate::ethernet::Frame::ethertype`] or
//! [`Tag::ethertype`]); a [`Tag`] views the 4 bytes that follow it: TCI, then the inner
//! EtherType.
//!
//! [`Tag::new_checked`] checks once that the buffer holds those 4 bytes; after it has returned
//! `Ok`, no accessor or setter can panic.

use core::fmt;

use crate::ethernet::EtherType;

/// Length of the part of a VLAN tag after its TPID (TCI and inner EtherType).
pub const HEADER_LEN: usize = 4;

/// Largest VLAN identifier that fits the 12-bit VID field (4095 is reserved by 802.1Q, but
/// parsers still see it on the wire).
pub const MAX_VID: u16 = 0x0fff;

mod field {
    use crate::{Field, Rest};

    pub(super) const TCI: Field = 0..2;
    pub(super) const ETHERTYPE: Field = 2..4;
    pub(super) const PAYLOAD: Rest = 4..;
}

/// Whether `ethertype` is a VLAN tag protocol identifier: 802.1Q (0x8100), 802.1ad (0x88A8) or
/// the pre-standard QinQ value (0x9100).
#[inline]
pub const fn is_tpid(ethertype: u16) -> bool {
    matches!(
        ethertype,
        EtherType::VLAN | EtherType::QINQ | EtherType::QINQ_OLD
    )
}

/// Walks an Ethernet header and at most `max_tags` VLAN tags after it, returning the EtherType
/// that follows them and the offset where that protocol's header starts. `None` when the frame
/// is shorter than an Ethernet header, a tag is cut short, or there are more than `max_tags`
/// tags. Never panics.
///
/// ```
/// use vxdecap_wire::vlan;
/// let mut frame = [0u8; 22];
/// frame[12..14].copy_from_slice(&[0x81, 0x00]); // one 802.1Q tag…
/// frame[16..18].copy_from_slice(&[0x08, 0x00]); // …then IPv4
/// assert_eq!(vlan::skip_tags(&frame, 2), Some((0x0800, 18)));
/// assert_eq!(vlan::skip_tags(&frame, 0), None);
/// ```
#[inline]
pub fn skip_tags(frame: &[u8], max_tags: usize) -> Option<(u16, usize)> {
    let eth = crate::ethernet::Frame::new_checked(frame).ok()?;
    let mut ethertype = eth.ethertype();
    let mut rest = eth.payload();
    let mut offset = crate::ethernet::HEADER_LEN;
    let mut tags = 0;
    while is_tpid(ethertype) {
        if tags == max_tags {
            return None;
        }
        let tag = Tag::new_checked(rest).ok()?;
        ethertype = tag.ethertype();
        rest = tag.payload();
        offset += HEADER_LEN;
        tags += 1;
    }
    Some((ethertype, offset))
}

/// Why a buffer cannot be viewed as a VLAN tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the 4 bytes of TCI and inner EtherType.
    Truncated,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("VLAN tag cut short (needs 4 bytes after the TPID)"),
        }
    }
}

impl std::error::Error for Error {}

/// A zero-copy view of a VLAN tag's TCI and inner EtherType.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Tag<T> {
    /// Wraps a buffer without checking its length (accessors may then panic).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking it holds the 4 tag bytes.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let tag = Self::new_unchecked(buffer);
        tag.check_len()?;
        Ok(tag)
    }

    /// Checks that the buffer holds the 4 tag bytes.
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

    /// Length of the viewed part: always [`HEADER_LEN`] (4).
    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Tag control information: PCP (3 bits), DEI (1 bit), VID (12 bits).
    #[inline]
    pub fn tci(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[field::TCI.start], data[field::TCI.start + 1]])
    }

    /// VLAN identifier (low 12 bits of the TCI).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & MAX_VID
    }

    /// Priority code point (top 3 bits of the TCI).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator (bit 12 of the TCI).
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// EtherType of what follows the tag (another TPID when tags are stacked).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([
            data[field::ETHERTYPE.start],
            data[field::ETHERTYPE.start + 1],
        ])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Tag<&'a T> {
    /// The bytes after the tag, borrowed for the buffer's whole lifetime.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Tag<T> {
    /// Sets the whole TCI.
    #[inline]
    pub fn set_tci(&mut self, tci: u16) {
        self.buffer.as_mut()[field::TCI].copy_from_slice(&tci.to_be_bytes());
    }

    /// Sets the VLAN identifier; bits above the 12-bit field are ignored.
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & !MAX_VID) | (vid & MAX_VID);
        self.set_tci(tci);
    }

    /// Sets the priority code point; bits above the 3-bit field are ignored.
    #[inline]
    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(pcp & 0x7) << 13);
        self.set_tci(tci);
    }

    /// Sets the drop eligible indicator.
    #[inline]
    pub fn set_dei(&mut self, dei: bool) {
        let tci = (self.tci() & !0x1000) | if dei { 0x1000 } else { 0 };
        self.set_tci(tci);
    }

    /// Sets the EtherType of what follows the tag.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    }

    /// The bytes after the tag, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // TCI 0x302a (PCP 1, DEI 1, VID 42), inner IPv4, then one payload byte.
    const TAG: [u8; 5] = [0x30, 0x2a, 0x08, 0x00, 0x45];

    #[test]
    fn parse() {
        let tag = Tag::new_checked(&TAG[..]).expect("4+ bytes");
        assert_eq!(tag.tci(), 0x302a);
        assert_eq!(tag.vid(), 42);
        assert_eq!(tag.pcp(), 1);
        assert!(tag.dei());
        assert_eq!(tag.ethertype(), EtherType::IPV4);
        assert_eq!(tag.payload(), &[0x45]);
        assert_eq!(Tag::<&[u8]>::header_len(), 4);
    }

    #[test]
    fn emit() {
        let mut buf = [0u8; 5];
        let mut tag = Tag::new_checked(&mut buf[..]).expect("5 bytes");
        tag.set_vid(42);
        tag.set_pcp(1);
        tag.set_dei(true);
        tag.set_ethertype(EtherType::IPV4);
        tag.payload_mut()[0] = 0x45;
        assert_eq!(buf, TAG);
    }

    #[test]
    fn setters_mask_out_of_range_values() {
        let mut buf = [0u8; 4];
        let mut tag = Tag::new_checked(&mut buf[..]).expect("4 bytes");
        tag.set_vid(0xffff);
        assert_eq!(tag.tci(), 0x0fff);
        tag.set_pcp(0xff);
        assert_eq!(tag.tci(), 0xefff);
        tag.set_dei(false);
        tag.set_vid(7);
        assert_eq!(tag.tci(), 0xe007);
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(Tag::new_checked(&TAG[..len]), Err(Error::Truncated));
        }
    }

    #[test]
    fn skip_tags_walks_at_most_max_tags() {
        let mut frame = vec![0u8; 14];
        frame[12..14].copy_from_slice(&EtherType::IPV6.to_be_bytes());
        assert_eq!(skip_tags(&frame, 0), Some((EtherType::IPV6, 14)));
        assert_eq!(skip_tags(&frame[..13], 2), None);
        // QinQ: 0x88a8 then 0x8100 then IPv4.
        frame[12..14].copy_from_slice(&EtherType::QINQ.to_be_bytes());
        frame.extend_from_slice(&[0, 1, 0x81, 0x00, 0, 2, 0x08, 0x00]);
        assert_eq!(skip_tags(&frame, 2), Some((EtherType::IPV4, 22)));
        assert_eq!(skip_tags(&frame, 1), None, "too many tags");
        assert_eq!(skip_tags(&frame[..21], 2), None, "second tag cut short");
    }

    #[test]
    fn tpids() {
        assert!(is_tpid(0x8100));
        assert!(is_tpid(0x88a8));
        assert!(is_tpid(0x9100));
        assert!(!is_tpid(0x0800));
        assert!(!is_tpid(0x9200));
    }
}
