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

    /// Reads the AWS options of an options area (a header's [`Header::options_bytes`]), and
    /// whether the walk stopped at an option running past the area ([`Options::malformed`]).
    ///
    /// When the area is exactly the three options in the order and lengths AWS sends them,
    /// they are read at fixed offsets; any other area (another option, another order, a
    /// length, reserved or critical bit not as AWS sends it) is walked as
    /// [`AwsGwlb::walk`] does. Both give the same answer.
    ///
    /// ```
    /// use vxdecap_wire::geneve::AwsGwlb;
    /// let mut area = vec![0x01, 0x08, 0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, 7];
    /// area.extend_from_slice(&[0x01, 0x08, 0x02, 0x02, 0, 0, 0, 0, 0, 0, 0, 8]);
    /// area.extend_from_slice(&[0x01, 0x08, 0x03, 0x01, 0, 0, 0, 9]);
    /// let (gwlb, malformed) = AwsGwlb::read(&area);
    /// assert_eq!((gwlb.endpoint_id, gwlb.attachment_id, gwlb.flow_cookie), (Some(7), Some(8), Some(9)));
    /// assert!(!malformed);
    /// assert_eq!(AwsGwlb::read(&area[12..]), AwsGwlb::walk(&area[12..]));
    /// ```
    #[inline]
    pub fn read(options: &[u8]) -> (Self, bool) {
        match Self::in_aws_order(options) {
            Some(gwlb) => (gwlb, false),
            None => Self::walk(options),
        }
    }

    /// [`AwsGwlb::read`] by walking every option: the general path.
    pub fn walk(options: &[u8]) -> (Self, bool) {
        let mut walk = Options {
            rest: options,
            malformed: false,
        };
        let gwlb = Self::from_options(walk.by_ref());
        (gwlb, walk.malformed())
    }

    /// The fast path of [`AwsGwlb::read`]: `Some` only when `options` is exactly endpoint
    /// id (type 1, 2 words), attachment id (type 2, 2 words), flow cookie (type 3, 1 word),
    /// all of class 0x0108 with the critical and reserved bits clear. The walk would read
    /// the same three values and find nothing malformed.
    #[inline(always)]
    pub(crate) fn in_aws_order(options: &[u8]) -> Option<Self> {
        let area: &[u8; 32] = options.try_into().ok()?;
        let word =
            |at: usize| u32::from_be_bytes([area[at], area[at + 1], area[at + 2], area[at + 3]]);
        let aws = u32::from(AWS_GWLB_CLASS) << 16;
        if word(0) != aws | 0x0102 || word(12) != aws | 0x0202 || word(24) != aws | 0x0301 {
            return None;
        }
        let dword = |at: usize| (u64::from(word(at)) << 32) | u64::from(word(at + 4));
        Some(Self {
            endpoint_id: Some(dword(4)),
            attachment_id: Some(dword(16)),
            flow_cookie: Some(word(28)),
        })
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

    /// One option's bytes: class, type byte (critical bit included), length byte, data.
    fn option(class: u16, kind: u8, len_byte: u8, data: &[u8]) -> Vec<u8> {
        let mut o = class.to_be_bytes().to_vec();
        o.extend_from_slice(&[kind, len_byte]);
        o.extend_from_slice(data);
        o
    }

    const ENDPOINT: [u8; 8] = 0x1122_3344_5566_7788u64.to_be_bytes();
    const ATTACHMENT: [u8; 8] = 0x0102_0304_0506_0708u64.to_be_bytes();
    const COOKIE: [u8; 4] = 0xdead_beefu32.to_be_bytes();

    /// The options area as AWS sends it.
    fn aws_area() -> Vec<u8> {
        [
            option(AWS_GWLB_CLASS, 1, 2, &ENDPOINT),
            option(AWS_GWLB_CLASS, 2, 2, &ATTACHMENT),
            option(AWS_GWLB_CLASS, 3, 1, &COOKIE),
        ]
        .concat()
    }

    /// `read` (fixed offsets when it can) and `walk` (every option) agree on option layouts
    /// near AWS's, and the fast path takes exactly AWS's own: each case states what the walk
    /// must find, so a fast path reading a wrong offset, or accepting a layout it should
    /// leave to the walk, fails here.
    #[test]
    fn aws_options_read_at_fixed_offsets_agree_with_the_walk() {
        let all = AwsGwlb {
            endpoint_id: Some(0x1122_3344_5566_7788),
            attachment_id: Some(0x0102_0304_0506_0708),
            flow_cookie: Some(0xdead_beef),
        };
        let aws = aws_area();
        let mut critical = aws.clone();
        critical[12 + 2] |= OPTION_CRITICAL; // the attachment id's type
        let mut reserved = aws.clone();
        reserved[24 + 3] |= 0x20; // a reserved bit of the cookie's length byte
                                  // 32 bytes again, but the attachment id is 1 word (not an id) and an empty option of
                                  // another class ends the area.
        let wrong_len = [
            option(AWS_GWLB_CLASS, 1, 2, &ENDPOINT),
            option(AWS_GWLB_CLASS, 2, 1, &ATTACHMENT[..4]),
            option(AWS_GWLB_CLASS, 3, 1, &COOKIE),
            option(0x0000, 0, 0, &[]),
        ]
        .concat();
        assert_eq!(wrong_len.len(), 32);
        let cases: Vec<(&str, Vec<u8>, AwsGwlb, bool, bool)> = vec![
            ("AWS order", aws.clone(), all, false, true),
            (
                "reordered",
                [
                    option(AWS_GWLB_CLASS, 3, 1, &COOKIE),
                    option(AWS_GWLB_CLASS, 1, 2, &ENDPOINT),
                    option(AWS_GWLB_CLASS, 2, 2, &ATTACHMENT),
                ]
                .concat(),
                all,
                false,
                false,
            ),
            (
                "an unknown option first",
                [option(0xffff, 0x7f, 1, &[9, 9, 9, 9]), aws.clone()].concat(),
                all,
                false,
                false,
            ),
            (
                // 32 bytes as AWS's, but the cookie's length runs past the area.
                "the last option truncated",
                [&aws[..24], &option(AWS_GWLB_CLASS, 3, 2, &COOKIE)].concat(),
                AwsGwlb {
                    flow_cookie: None,
                    ..all
                },
                true,
                false,
            ),
            (
                "the area cut short",
                aws[..28].to_vec(),
                AwsGwlb {
                    flow_cookie: None,
                    ..all
                },
                true,
                false,
            ),
            ("critical bit set", critical, all, false, false),
            ("a reserved length bit set", reserved, all, false, false),
            (
                "a known type with the wrong length",
                wrong_len,
                AwsGwlb {
                    attachment_id: None,
                    ..all
                },
                false,
                false,
            ),
            (
                "a second endpoint id after AWS's three",
                [aws.clone(), option(AWS_GWLB_CLASS, 1, 2, &[0; 8])].concat(),
                AwsGwlb {
                    endpoint_id: Some(0),
                    ..all
                },
                false,
                false,
            ),
            ("no options", Vec::new(), AwsGwlb::default(), false, false),
        ];
        for (name, area, gwlb, malformed, fast) in cases {
            assert_eq!(AwsGwlb::walk(&area), (gwlb, malformed), "{name}: the walk");
            assert_eq!(AwsGwlb::read(&area), (gwlb, malformed), "{name}: read");
            assert_eq!(
                AwsGwlb::in_aws_order(&area).is_some(),
                fast,
                "{name}: the fixed offsets taken"
            );
        }
    }

    /// Every single-byte change of AWS's area, and every cut of it, reads as the walk does.
    #[test]
    fn any_byte_of_the_aws_area_changed_reads_as_the_walk() {
        let aws = aws_area();
        for at in 0..aws.len() {
            for value in [0x00, 0x01, 0x02, 0x03, 0x1f, 0x80, 0x81, 0xff] {
                let mut area = aws.clone();
                area[at] = value;
                assert_eq!(
                    AwsGwlb::read(&area),
                    AwsGwlb::walk(&area),
                    "byte {at} = {value:#x}"
                );
            }
            assert_eq!(
                AwsGwlb::read(&aws[..at]),
                AwsGwlb::walk(&aws[..at]),
                "cut at {at}"
            );
        }
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
