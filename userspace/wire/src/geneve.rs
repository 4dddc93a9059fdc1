//! GENEVE header and options (RFC 8926 section 3).
//!
//! ```text
//!  0                   1                   2                   3
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! |                    Variable-Length Options                    |
//!
//! an option:
//! |          Option Class         |      Type     |R|R|R| Length  |
//! |                 Variable-Length Option Data                   |
//! ```
//!
//! `Opt Len` and an option's `Length` count 4-byte words. The high bit of an option's type is
//! its critical bit: a tunnel endpoint that does not understand a critical option must drop the
//! packet. A capture tool is not a tunnel endpoint: it reads every option it knows, walks past
//! the others, and reports (and counts) critical ones it did not understand, as Wireshark does.
//!
//! [`Header::new_checked`] checks the version and that the buffer holds the fixed header and
//! all of `Opt Len`; after it has returned `Ok`, no accessor can panic. [`Options`] walks the
//! options inside `Opt Len` only, and stops at the first option whose length runs past it.
//!
//! AWS Gateway Load Balancer puts three options of class 0x0108 in every packet ([`AwsGwlb`]):
//! the endpoint id (type 1, 8 bytes), the attachment id (type 2, 8 bytes) and a flow cookie
//! (type 3, 4 bytes).

use core::fmt;

/// Length of the fixed GENEVE header.
pub const HEADER_LEN: usize = 8;
/// The IANA GENEVE port.
pub const GENEVE_PORT: u16 = 6081;
/// Largest options area: `Opt Len` is 6 bits of 4-byte words.
pub const MAX_OPTIONS_LEN: usize = 63 * 4;
/// The critical bit of an option's type.
pub const OPTION_CRITICAL: u8 = 0x80;
/// The option class AWS Gateway Load Balancer uses.
pub const AWS_GWLB_CLASS: u16 = 0x0108;

/// Protocol types (EtherTypes) a GENEVE header carries.
pub mod protocol {
    /// Transparent Ethernet bridging: an inner Ethernet frame.
    pub const ETHERNET: u16 = 0x6558;
    /// Bare IPv4 (AWS Gateway Load Balancer).
    pub const IPV4: u16 = 0x0800;
    /// Bare IPv6.
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use crate::Field;

    pub(super) const VER_OPTLEN: usize = 0;
    pub(super) const FLAGS: usize = 1;
    pub(super) const PROTOCOL: Field = 2..4;
    pub(super) const VNI: Field = 4..7;
}

/// Why a buffer cannot be viewed as a GENEVE header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the fixed header.
    Truncated,
    /// A version other than 0.
    Version,
    /// `Opt Len` runs past the buffer.
    OptionsTruncated,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "GENEVE header cut short (needs 8 bytes)",
            Self::Version => "GENEVE version is not 0",
            Self::OptionsTruncated => "GENEVE options run past the packet",
        })
    }
}

impl std::error::Error for Error {}

/// A zero-copy view of a GENEVE header, its options and the payload after them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking it (accessors may then panic).
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking the version and that it holds the header and its options.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks the length, the version and `Opt Len` against the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 0 {
            return Err(Error::Version);
        }
        if HEADER_LEN + self.options_len() > len {
            return Err(Error::OptionsTruncated);
        }
        Ok(())
    }

    /// Version (0 for a checked header).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_OPTLEN] >> 6
    }

    /// Length of the options, in bytes.
    #[inline]
    pub fn options_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_OPTLEN] & 0x3f) * 4
    }

    /// The O bit: an OAM (control) packet, not data.
    #[inline]
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & 0x80 != 0
    }

    /// The C bit: at least one critical option is present.
    #[inline]
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & 0x40 != 0
    }

    /// Protocol type of the payload (an EtherType; see [`protocol`]).
    #[inline]
    pub fn protocol(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::PROTOCOL.start], b[field::PROTOCOL.start + 1]])
    }

    /// Virtual network identifier (24 bits).
    #[inline]
    pub fn vni(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VNI];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// Length of the header with its options: where the payload starts.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Header<&'a T> {
    /// The options area.
    #[inline]
    pub fn options_bytes(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The options, in order.
    #[inline]
    pub fn options(&self) -> Options<'a> {
        Options {
            rest: self.options_bytes(),
            malformed: false,
        }
    }

    /// What follows the header and its options.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// One GENEVE option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneveOption<'a> {
    /// Option class (who defined it).
    pub class: u16,
    /// Type within the class, without the critical bit.
    pub kind: u8,
    /// The critical bit.
    pub critical: bool,
    /// The option's data (its `Length` words).
    pub data: &'a [u8],
}

/// The options of a header, in order; see [`Header::options`].
#[derive(Clone, Debug)]
pub struct Options<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl Options<'_> {
    /// True once an option was found whose length runs past the options area (the walk
    /// stopped there).
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = GeneveOption<'a>;

    fn next(&mut self) -> Option<GeneveOption<'a>> {
        let [c0, c1, kind, len, ..] = *self.rest else {
            // Fewer than 4 bytes left: only a malformed area leaves a partial option header.
            self.malformed |= !self.rest.is_empty();
            self.rest = &[];
            return None;
        };
        let data_len = usize::from(len & 0x1f) * 4;
        let Some(data) = self.rest.get(4..4 + data_len) else {
            self.malformed = true;
            self.rest = &[];
            return None;
        };
        self.rest = &self.rest[4 + data_len..];
        Some(GeneveOption {
            class: u16::from_be_bytes([c0, c1]),
            kind: kind & !OPTION_CRITICAL,
            critical: kind & OPTION_CRITICAL != 0,
            data,
        })
    }
}

/// The AWS Gateway Load Balancer options of a packet, where present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AwsGwlb {
    /// Gateway Load Balancer endpoint id (option type 1).
    pub endpoint_id: Option<u64>,
    /// Attachment id (option type 2).
    pub attachment_id: Option<u64>,
    /// Flow cookie (option type 3).
    pub flow_cookie: Option<u32>,
}

impl AwsGwlb {
    /// Reads the AWS options among `options`; other options are ignored.
    pub fn from_options<'a>(options: impl Iterator<Item = GeneveOption<'a>>) -> Self {
        let mut gwlb = Self::default();
        for option in options.filter(|o| o.class == AWS_GWLB_CLASS) {
            match (option.kind, option.data) {
                (1, data) => gwlb.endpoint_id = data.try_into().ok().map(u64::from_be_bytes),
                (2, data) => gwlb.attachment_id = data.try_into().ok().map(u64::from_be_bytes),
                (3, data) => gwlb.flow_cookie = data.try_into().ok().map(u32::from_be_bytes),
                _ => {}
            }
        }
        gwlb
    }

    /// True when any of the three options was present.
    pub fn is_present(&self) -> bool {
        self.endpoint_id.is_some() || self.attachment_id.is_some() || self.flow_cookie.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GWLB-style header: protocol IPv4, VNI 0, the three AWS options, then a payload.
    fn gwlb_packet() -> Vec<u8> {
        let mut p = vec![
            8,    // version 0, Opt Len 8 words (32 bytes)
            0x00, // O and C clear
            0x08, 0x00, // IPv4
            0x00, 0x00, 0x00, 0x00, // VNI 0
        ];
        // endpoint id: class 0x0108, type 1, length 2 words
        p.extend_from_slice(&[0x01, 0x08, 0x01, 0x02]);
        p.extend_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
        // attachment id: type 2
        p.extend_from_slice(&[0x01, 0x08, 0x02, 0x02]);
        p.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        // flow cookie: type 3, 1 word
        p.extend_from_slice(&[0x01, 0x08, 0x03, 0x01]);
        p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        p.extend_from_slice(&[0x45, 0, 0, 20]); // payload starts (an IPv4 header's first bytes)
        p
    }

    #[test]
    fn parses_the_fixed_header_options_and_payload() {
        let p = gwlb_packet();
        let h = Header::new_checked(&*p).expect("valid GENEVE");
        assert_eq!(h.version(), 0);
        assert_eq!(h.options_len(), 32);
        assert_eq!(h.header_len(), 40);
        assert_eq!(h.protocol(), protocol::IPV4);
        assert_eq!(h.vni(), 0);
        assert!(!h.oam() && !h.critical());
        assert_eq!(h.payload(), &[0x45, 0, 0, 20]);
        let options: Vec<_> = h.options().collect();
        assert_eq!(options.len(), 3);
        assert_eq!(options[2].data, &0xdead_beefu32.to_be_bytes());
        let gwlb = AwsGwlb::from_options(h.options());
        assert_eq!(gwlb.endpoint_id, Some(0x1122_3344_5566_7788));
        assert_eq!(gwlb.attachment_id, Some(0x0102_0304_0506_0708));
        assert_eq!(gwlb.flow_cookie, Some(0xdead_beef));
        assert!(gwlb.is_present());
    }

    #[test]
    fn refuses_bad_versions_and_options_past_the_packet() {
        assert_eq!(Header::new_checked(&[0u8; 7][..]), Err(Error::Truncated));
        let mut p = gwlb_packet();
        p[0] |= 0x40; // version 1
        assert_eq!(Header::new_checked(&*p), Err(Error::Version));
        let p = gwlb_packet();
        assert_eq!(
            Header::new_checked(&p[..39]),
            Err(Error::OptionsTruncated),
            "Opt Len says 32 bytes of options, 31 are there"
        );
    }

    #[test]
    fn an_option_longer_than_the_area_stops_the_walk_and_says_so() {
        let mut p = gwlb_packet();
        p[8 + 3] = 0x1f; // the first option claims 31 words
        let h = Header::new_checked(&*p).expect("the header itself is fine");
        let mut options = h.options();
        assert_eq!(options.next(), None);
        assert!(options.malformed());
        assert_eq!(AwsGwlb::from_options(h.options()), AwsGwlb::default());
    }

    #[test]
    fn critical_bits_and_unknown_classes_are_reported_not_obeyed() {
        let mut p = vec![0x01, 0x40, 0x65, 0x58, 0x00, 0x00, 0x2a, 0x00];
        p.extend_from_slice(&[0xff, 0xff, 0x80 | 0x7f, 0x00]); // critical, no data
        p.extend_from_slice(&[0u8; 14]); // an inner Ethernet header
        let h = Header::new_checked(&*p).expect("valid");
        assert!(h.critical());
        assert_eq!(h.vni(), 42);
        assert_eq!(h.protocol(), protocol::ETHERNET);
        let o: Vec<_> = h.options().collect();
        assert_eq!(
            o,
            vec![GeneveOption {
                class: 0xffff,
                kind: 0x7f,
                critical: true,
                data: &[]
            }]
        );
        assert_eq!(h.payload().len(), 14);
    }

    #[test]
    fn no_accessor_panics_on_any_short_or_odd_buffer() {
        for len in 0..64 {
            for fill in [0x00u8, 0x3f, 0xff] {
                let buf = vec![fill; len];
                if let Ok(h) = Header::new_checked(&*buf) {
                    let _ = (h.protocol(), h.vni(), h.oam(), h.critical(), h.payload());
                    let options = h.options();
                    let _ = options.count();
                }
            }
        }
    }
}
