//! VXLAN header (RFC 7348 section 5).
//!
//! ```text
//!  0                   1                   2                   3
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```
//!
//! Only the I flag (0x08) means anything to a VXLAN receiver: RFC 7348 says the other flag bits
//! and the reserved fields are ignored on receipt, so a header with flags 0x88 (Group Based
//! Policy) or with reserved bits set is still VXLAN.
//!
//! [`Header::new_checked`] checks once that the buffer holds the 8-byte header; after it has
//! returned `Ok`, no accessor or setter can panic.

use core::fmt;

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;

/// The I flag: set when the VNI is valid. A VXLAN receiver drops frames without it.
pub const FLAG_I: u8 = 0x08;

/// Largest VNI (24 bits).
pub const MAX_VNI: u32 = 0x00ff_ffff;

mod field {
    use crate::{Field, Rest};

    pub(super) const FLAGS: usize = 0;
    pub(super) const RESERVED1: Field = 1..4;
    pub(super) const VNI: Field = 4..7;
    pub(super) const RESERVED2: usize = 7;
    pub(super) const PAYLOAD: Rest = 8..;
}

/// Why a buffer cannot be viewed as a VXLAN header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the 8-byte header.
    Truncated,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("VXLAN header cut short (needs 8 bytes)"),
        }
    }
}

impl std::error::Error for Error {}

/// A zero-copy view of a VXLAN header and the inner frame after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking its length (accessors may then panic).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking it holds the 8-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks that the buffer holds the 8-byte header.
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

    /// Length of the VXLAN header: always [`HEADER_LEN`] (8).
    #[inline]
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// The whole flags byte, as found on the wire.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Whether the I flag (VNI valid) is set.
    #[inline]
    pub fn i_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// VXLAN network identifier (24 bits).
    #[inline]
    pub fn vni(&self) -> u32 {
        let vni = &self.buffer.as_ref()[field::VNI];
        u32::from_be_bytes([0, vni[0], vni[1], vni[2]])
    }

    /// The 24 reserved bits after the flags (ignored by receivers; GBP carries a policy there).
    #[inline]
    pub fn reserved1(&self) -> u32 {
        let reserved = &self.buffer.as_ref()[field::RESERVED1];
        u32::from_be_bytes([0, reserved[0], reserved[1], reserved[2]])
    }

    /// The reserved byte after the VNI (ignored by receivers).
    #[inline]
    pub fn reserved2(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED2]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Header<&'a T> {
    /// The bytes after the header: the inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Sets the whole flags byte.
    #[inline]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Sets or clears the I flag, leaving the other flag bits alone.
    #[inline]
    pub fn set_i_flag(&mut self, value: bool) {
        let flags = self.flags();
        self.set_flags(if value {
            flags | FLAG_I
        } else {
            flags & !FLAG_I
        });
    }

    /// Sets the VNI; bits above the 24-bit field are dropped (check against [`MAX_VNI`]
    /// first if that matters).
    #[inline]
    pub fn set_vni(&mut self, vni: u32) {
        let bytes = (vni & MAX_VNI).to_be_bytes();
        self.buffer.as_mut()[field::VNI].copy_from_slice(&bytes[1..]);
    }

    /// Sets the 24 reserved bits after the flags (bits above 24 are dropped).
    #[inline]
    pub fn set_reserved1(&mut self, value: u32) {
        let bytes = (value & 0x00ff_ffff).to_be_bytes();
        self.buffer.as_mut()[field::RESERVED1].copy_from_slice(&bytes[1..]);
    }

    /// Sets the reserved byte after the VNI.
    #[inline]
    pub fn set_reserved2(&mut self, value: u8) {
        self.buffer.as_mut()[field::RESERVED2] = value;
    }

    /// The inner frame bytes, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // VXLAN header of tcpdump's tests/vxlan.pcap (flags 0x08, VNI 100) and 2 inner bytes.
    const HEADER: [u8; 10] = [0x08, 0, 0, 0, 0x00, 0x00, 0x64, 0x00, 0x00, 0x30];

    // The "reserved bits set" frame of synthetic/vxlan-header-oddities.pcap: VNI 27.
    const ODD: [u8; 8] = [0x08, 0xff, 0xff, 0xff, 0x00, 0x00, 0x1b, 0xff];

    #[test]
    fn parse() {
        let header = Header::new_checked(&HEADER[..]).expect("8+ bytes");
        assert_eq!(header.flags(), 0x08);
        assert!(header.i_flag());
        assert_eq!(header.vni(), 100);
        assert_eq!(header.reserved1(), 0);
        assert_eq!(header.reserved2(), 0);
        assert_eq!(header.payload(), &[0x00, 0x30]);
        assert_eq!(Header::<&[u8]>::header_len(), 8);
    }

    #[test]
    fn emit() {
        let mut buf = [0u8; 10];
        let mut header = Header::new_checked(&mut buf[..]).expect("10 bytes");
        header.set_i_flag(true);
        header.set_vni(100);
        header.payload_mut().copy_from_slice(&[0x00, 0x30]);
        assert_eq!(buf, HEADER);
    }

    #[test]
    fn reserved_bits_round_trip() {
        let header = Header::new_checked(&ODD[..]).expect("8 bytes");
        assert!(header.i_flag());
        assert_eq!(header.vni(), 27);
        assert_eq!(header.reserved1(), 0x00ff_ffff);
        assert_eq!(header.reserved2(), 0xff);
        assert!(header.payload().is_empty());

        let mut buf = [0u8; 8];
        let mut header = Header::new_checked(&mut buf[..]).expect("8 bytes");
        header.set_flags(FLAG_I);
        header.set_reserved1(0xffff_ffff);
        header.set_vni(27);
        header.set_reserved2(0xff);
        assert_eq!(buf, ODD);
    }

    #[test]
    fn flags() {
        let mut buf = [0x88, 0, 0, 0, 0, 0, 0, 0];
        let mut header = Header::new_checked(&mut buf[..]).expect("8 bytes");
        assert!(header.i_flag());
        header.set_i_flag(false);
        assert_eq!(header.flags(), 0x80);
        assert!(!header.i_flag());
    }

    #[test]
    fn vni_is_masked_to_24_bits() {
        let mut buf = [0u8; 8];
        let mut header = Header::new_checked(&mut buf[..]).expect("8 bytes");
        header.set_vni(0xabcd_ef12);
        assert_eq!(header.vni(), 0x00cd_ef12);
        assert_eq!(buf, [0, 0, 0, 0, 0xcd, 0xef, 0x12, 0]);
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(Header::new_checked(&HEADER[..len]), Err(Error::Truncated));
        }
    }
}
