//! Capture files in: pcap and pcapng, from a file or stdin (`-`), told
//! apart by their magic number, read the way tcpdump and tshark read them.
//!
//! What is tolerated, as libpcap does (`sf-pcap.c`) and Wireshark does:
//! a snaplen of 0 (or above the maximum) means the maximum, 262144; a
//! record longer than the snaplen, and one whose captured length exceeds
//! its original length, are read whole and counted
//! (`caplen_over_snaplen`, `caplen_over_origlen`; the original length is
//! then taken to be the captured length); pre-2.4 files with swapped length
//! fields are read as libpcap reads them. What is refused, as libpcap
//! refuses it: a pcap record claiming more than 262144 captured bytes (the
//! file is damaged there; reading stops, the error is reported with the
//! summary of what was read before).
//!
//! pcapng: every section's interfaces are kept with their own link type,
//! timestamp resolution (`if_tsresol`) and offset (`if_tsoffset`);
//! Enhanced, Simple and Obsolete (type 2) Packet Blocks are read. Packets on
//! an interface whose link type cannot carry VXLAN over IP, or on an
//! interface never declared, are counted (`link_type_unsupported`,
//! `interface_undeclared`), never dropped silently; blocks of an unknown
//! type are counted by type. Blocks that carry no packets (statistics, name
//! resolution, secrets, custom, journal, process information) are skipped
//! as any reader skips them.
//!
//! A file that ends inside a record or block is read up to there; the cut
//! record is counted (`input_record_cut`) and the error reported with the
//! summary.
//!
//! The reader allocates only its buffers (a record buffer that grows to the
//! largest record); nothing per packet. pcap-file and pcap-parser were
//! tried first; see the README's crate table for why this is our own.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use vxdecap_wire::LinkType;

use crate::error::ParseError;

/// libpcap's largest snapshot length for the link types we read
/// (`MAXIMUM_SNAPLEN`): a pcap record claiming more is damaged.
pub const MAX_SNAPLEN: u32 = 262_144;
/// Largest pcapng block read (Wireshark's and libpcap's limit is 16 MiB).
const MAX_BLOCK: u32 = 16 * 1024 * 1024;
/// Bytes read from the file at a time. Not a multiple of the page size on
/// purpose: on this project's VMs (Linux 6.18) reading a cached file in
/// page-multiple chunks (256 KiB, 1 MiB, 8 MiB) cost 4-5 times the system
/// time of 1 000 000-byte chunks (0.20 s against 0.04 s for 415 MB).
const READ_BUFFER: usize = 1_000_000;

const PCAP_MAGIC_US: u32 = 0xa1b2_c3d4;
const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Alexey Kuznetzov's patched libpcap: 8 more bytes in each record header.
const PCAP_MAGIC_KUZNETZOV: u32 = 0xa1b2_cd34;
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BYTE_ORDER: u32 = 0x1A2B_3C4D;

const BLOCK_IDB: u32 = 1;
const BLOCK_OPB: u32 = 2;
const BLOCK_SPB: u32 = 3;
const BLOCK_EPB: u32 = 6;
/// Blocks that carry no packet: name resolution, interface statistics,
/// systemd journal, decryption secrets, custom (copyable or not), process
/// information (Darwin), and the "hone" blocks of the pcapng registry.
const NON_PACKET_BLOCKS: [u32; 9] = [
    4,
    5,
    9,
    10,
    0x0000_0BAD,
    0x4000_0BAD,
    0x8000_0001,
    0x0000_0007,
    0x0000_0008,
];

const OPT_END: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// One packet of the capture.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// The captured bytes, link-layer header first.
    pub data: &'a [u8],
    /// What the link-layer header is.
    pub link: LinkType,
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The packet's length on the wire (at least `data.len()`).
    pub orig_len: usize,
}

/// What the reader saw besides the packets it handed on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputReport {
    /// `pcap` or `pcapng`.
    pub format: &'static str,
    /// Packet records read, handed on or not (the cut one included).
    pub packets: u64,
    /// Packets not handed on, by reason: `link_type_unsupported`,
    /// `interface_undeclared`, `input_record_cut`.
    pub not_decoded: Vec<(&'static str, u64)>,
    /// Records longer than the snaplen, read whole.
    pub caplen_over_snaplen: u64,
    /// Records whose captured length exceeds the original length.
    pub caplen_over_origlen: u64,
    /// The pcap header's snaplen when it was 0 or above the maximum (read as the maximum).
    pub snaplen_adjusted: Option<u32>,
    /// pcapng blocks of unknown types: (type, count).
    pub unknown_blocks: Vec<(u32, u64)>,
    /// pcapng interfaces whose packets cannot be decapsulated: (section,
    /// interface, link type, packets).
    pub unusable_interfaces: Vec<(u32, u32, u32, u64)>,
    /// Why reading stopped before the end, if it did.
    pub error: Option<String>,
}

impl InputReport {
    fn not_decoded(&mut self, reason: &'static str) {
        match self.not_decoded.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.not_decoded.push((reason, 1)),
        }
    }

    /// Packets read but not handed on.
    pub fn not_decoded_total(&self) -> u64 {
        self.not_decoded.iter().map(|(_, n)| n).sum()
    }

    /// The summary's lines about the input (none when nothing was odd).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut odd = Vec::new();
        if self.caplen_over_snaplen > 0 {
            odd.push(format!(
                "{} records longer than the snaplen, read whole (caplen_over_snaplen)",
                self.caplen_over_snaplen
            ));
        }
        if self.caplen_over_origlen > 0 {
            odd.push(format!(
                "{} records with a captured length above the original length, taken as the original length (caplen_over_origlen)",
                self.caplen_over_origlen
            ));
        }
        if let Some(snaplen) = self.snaplen_adjusted {
            odd.push(format!("snaplen {snaplen} read as {MAX_SNAPLEN}"));
        }
        if !odd.is_empty() {
            lines.push(format!("input: {}", odd.join("; ")));
        }
        let unknown: u64 = self.unknown_blocks.iter().map(|(_, n)| n).sum();
        let unusable: u64 = self.unusable_interfaces.iter().map(|i| i.3).sum();
        if unknown + unusable > 0 {
            let mut parts: Vec<String> = self
                .unknown_blocks
                .iter()
                .map(|(kind, n)| format!("{n} of unknown type {kind:#010x}"))
                .collect();
            parts.extend(self.unusable_interfaces.iter().map(|(section, id, linktype, n)| {
                format!(
                    "{n} packets on interface {id} of section {section} with link type {linktype} (link_type_unsupported)"
                )
            }));
            lines.push(format!(
                "input: {} blocks skipped: {}",
                unknown + unusable,
                parts.join(", ")
            ));
        }
        lines
    }
}

/// A pcapng interface.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link: Option<LinkType>,
    linktype: u32,
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`).
    units: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: i64,
    /// Index in the report's unusable list, for those that cannot be read.
    unusable: Option<usize>,
}

#[derive(Debug)]
enum Format {
    Pcap {
        big_endian: bool,
        nanos: bool,
        /// 16, or 24 for Kuznetzov's format.
        record_header: usize,
        link: LinkType,
        snaplen: u32,
        lengths: Swapped,
    },
    Pcapng {
        big_endian: bool,
        interfaces: Vec<Interface>,
        section: u32,
    },
}

/// libpcap's handling of the caplen/len order of old files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Swapped {
    No,
    Yes,
    /// Version 2.3: swapped when caplen > len.
    Maybe,
}

/// An open capture, its header read and checked.
pub struct CaptureInput {
    name: String,
    source: BufReader<Box<dyn Read + Send>>,
    format: Format,
    /// The current record, or the body of the current block, in
    /// `record[..record_len]` (the buffer only grows, never zero-filled again).
    record: Vec<u8>,
    record_len: usize,
    /// The type of that block (pcapng).
    kind: u32,
    report: InputReport,
    /// Records (pcap) or blocks (pcapng) read, for messages.
    index: u64,
    /// The end of the input was reached, or reading failed.
    done: bool,
}

impl std::fmt::Debug for CaptureInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureInput")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// The first `len` bytes of `buf`, grown (zero-filled) only when it is shorter.
fn sized(buf: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn fill(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match source.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn u16_at(bytes: &[u8], at: usize, big_endian: bool) -> u16 {
    let b = [bytes[at], bytes[at + 1]];
    if big_endian {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    }
}

fn u32_at(bytes: &[u8], at: usize, big_endian: bool) -> u32 {
    let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
    if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// Units per second of an `if_tsresol` value (a power of 10, or of 2 with the top bit set).
fn tsresol_units(value: u8) -> u64 {
    let exponent = u32::from(value & 0x7f);
    let units = if value & 0x80 == 0 {
        10u64.checked_pow(exponent)
    } else {
        1u64.checked_shl(exponent)
    };
    units.unwrap_or(u64::MAX).max(1)
}

impl CaptureInput {
    /// Opens `path` (`-` for stdin) and reads its header: a pcap file header
    /// or a pcapng section header. The error says what is wrong, for the user.
    pub fn open(path: &str) -> Result<Self, ParseError> {
        let (name, source): (String, Box<dyn Read + Send>) = if path == "-" {
            ("stdin".to_owned(), Box::new(io::stdin()))
        } else {
            let file =
                File::open(path).map_err(|e| format!("cannot read {path}: {e}: check the path"))?;
            (path.to_owned(), Box::new(file))
        };
        Self::from_reader(name, source)
    }

    /// Reads the header of a capture from `source` (named `name` in
    /// messages): a pipe, a file, bytes in memory.
    pub fn from_reader(name: String, source: Box<dyn Read + Send>) -> Result<Self, ParseError> {
        let mut source = BufReader::with_capacity(READ_BUFFER, source);
        let mut magic = [0u8; 4];
        let got = fill(&mut source, &mut magic).map_err(|e| format!("cannot read {name}: {e}"))?;
        if got < 4 {
            return Err(format!(
                "{name} is {}: not a pcap or pcapng capture",
                if got == 0 { "empty" } else { "too short" }
            )
            .into());
        }
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        let mut input = Self {
            name,
            source,
            format: Format::Pcapng {
                big_endian: false,
                interfaces: Vec::new(),
                section: 0,
            },
            record: Vec::new(),
            record_len: 0,
            kind: 0,
            report: InputReport::default(),
            index: 0,
            done: false,
        };
        if le == PCAPNG_SHB {
            input.report.format = "pcapng";
            input.pcapng_block(Some(magic)).and_then(|kept| {
                kept.then_some(()).ok_or_else(|| {
                    ParseError::new(format!("{}: the section header is cut short", input.name))
                })
            })?;
            return Ok(input);
        }
        let (big_endian, magic) = match (le, be) {
            (PCAP_MAGIC_US | PCAP_MAGIC_NS | PCAP_MAGIC_KUZNETZOV, _) => (false, le),
            (_, PCAP_MAGIC_US | PCAP_MAGIC_NS | PCAP_MAGIC_KUZNETZOV) => (true, be),
            _ => {
                return Err(format!(
                    "{} is not a pcap or pcapng capture (it starts with {le:#010x})",
                    input.name
                )
                .into())
            }
        };
        input.report.format = "pcap";
        let mut header = [0u8; 20];
        let got = fill(&mut input.source, &mut header)
            .map_err(|e| format!("cannot read {}: {e}", input.name))?;
        if got < header.len() {
            return Err(format!(
                "{}: the pcap file header is cut short ({} of 24 bytes)",
                input.name,
                got + 4
            )
            .into());
        }
        let major = u16_at(&header, 0, big_endian);
        let minor = u16_at(&header, 2, big_endian);
        if major < 2 {
            return Err(format!(
                "{}: pcap version {major}.{minor} is too old to read",
                input.name
            )
            .into());
        }
        let snaplen = u32_at(&header, 12, big_endian);
        let linktype = u32_at(&header, 16, big_endian);
        let link = LinkType::from_linktype(linktype).ok_or_else(|| {
            format!(
                "{} has link type {linktype}: vxdecap reads VXLAN from Ethernet (1), Linux cooked (SLL 113, SLL2 276), raw IP (RAW 101/12/14, IPV4 228, IPV6 229) and loopback (NULL 0, LOOP 108) captures",
                input.name
            )
        })?;
        if snaplen == 0 || snaplen > MAX_SNAPLEN {
            input.report.snaplen_adjusted = Some(snaplen);
        }
        let lengths = match (major, minor) {
            (2, 0..=2) | (543, 0) => Swapped::Yes,
            (2, 3) => Swapped::Maybe,
            _ => Swapped::No,
        };
        input.format = Format::Pcap {
            big_endian,
            nanos: magic == PCAP_MAGIC_NS,
            record_header: if magic == PCAP_MAGIC_KUZNETZOV {
                24
            } else {
                16
            },
            link,
            snaplen: if snaplen == 0 || snaplen > MAX_SNAPLEN {
                MAX_SNAPLEN
            } else {
                snaplen
            },
            lengths,
        };
        Ok(input)
    }

    /// The input's name (`stdin` for `-`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads every packet into `on_packet` until the end, an error or
    /// `stop`; returns what was seen besides.
    pub fn read(mut self, stop: &AtomicBool, mut on_packet: impl FnMut(Packet<'_>)) -> InputReport {
        while !stop.load(Ordering::Relaxed) && self.next_packet(&mut on_packet) {}
        self.report
    }

    /// Reads the next packet into `on_packet`; false at the end of the
    /// input or once reading failed (the report says why), and ever after.
    #[inline]
    pub fn next_packet(&mut self, on_packet: &mut impl FnMut(Packet<'_>)) -> bool {
        if self.done {
            return false;
        }
        let more = match self.format {
            Format::Pcap { .. } => self.pcap_record(on_packet),
            Format::Pcapng { .. } => self.pcapng_packet(on_packet),
        };
        match more {
            Ok(true) => true,
            Ok(false) => {
                self.done = true;
                false
            }
            Err(e) => {
                self.report.error = Some(format!("{}: {e}", self.name));
                self.done = true;
                false
            }
        }
    }

    /// What the reader saw besides the packets it handed on, so far.
    pub fn report(&self) -> &InputReport {
        &self.report
    }

    /// The report, once reading is over.
    pub fn into_report(self) -> InputReport {
        self.report
    }

    /// Reads `len` bytes into the record buffer; false (and the cut record
    /// counted, when `packet`) if the input ends first.
    fn read_record(&mut self, len: usize, packet: bool) -> Result<bool, ParseError> {
        let got = fill(&mut self.source, sized(&mut self.record, len))
            .map_err(|e| format!("read error: {e}"))?;
        self.record_len = len;
        if got < len {
            if packet {
                self.report.packets += 1;
                self.report.not_decoded("input_record_cut");
            }
            return Err(format!(
                "record {} is cut short: the input ends after {got} of its {len} bytes (input_record_cut)",
                self.index
            ).into());
        }
        Ok(true)
    }

    /// One pcap record; false at the end of the input.
    fn pcap_record(&mut self, on_packet: &mut impl FnMut(Packet<'_>)) -> Result<bool, ParseError> {
        let Format::Pcap {
            big_endian,
            nanos,
            record_header,
            link,
            snaplen,
            lengths,
        } = self.format
        else {
            return Ok(false);
        };
        self.index += 1;
        let mut header = [0u8; 24];
        let header = &mut header[..record_header];
        let got = fill(&mut self.source, header).map_err(|e| format!("read error: {e}"))?;
        if got == 0 {
            return Ok(false);
        }
        if got < record_header {
            self.report.packets += 1;
            self.report.not_decoded("input_record_cut");
            return Err(format!(
                "record {} is cut short: the input ends after {got} of its {record_header} header bytes (input_record_cut)",
                self.index
            ).into());
        }
        let seconds = u64::from(u32_at(header, 0, big_endian));
        let fraction = u64::from(u32_at(header, 4, big_endian));
        let (mut caplen, mut len) = (
            u32_at(header, 8, big_endian),
            u32_at(header, 12, big_endian),
        );
        if lengths == Swapped::Yes || (lengths == Swapped::Maybe && caplen > len) {
            std::mem::swap(&mut caplen, &mut len);
        }
        if caplen > MAX_SNAPLEN {
            return Err(format!(
                "record {}: captured length {caplen} is above {MAX_SNAPLEN}, the most libpcap accepts: the file is damaged there, reading stopped",
                self.index
            ).into());
        }
        if caplen > snaplen {
            self.report.caplen_over_snaplen += 1;
        }
        if caplen > len {
            self.report.caplen_over_origlen += 1;
        }
        self.read_record(caplen as usize, true)?;
        self.report.packets += 1;
        let fraction_ns = if nanos { fraction } else { fraction * 1000 };
        on_packet(Packet {
            data: &self.record[..self.record_len],
            link,
            timestamp_ns: seconds * 1_000_000_000 + fraction_ns,
            orig_len: len.max(caplen) as usize,
        });
        Ok(true)
    }

    /// Blocks up to the next packet (handed to `on_packet`); false at the end.
    fn pcapng_packet(
        &mut self,
        on_packet: &mut impl FnMut(Packet<'_>),
    ) -> Result<bool, ParseError> {
        loop {
            if !self.pcapng_block(None)? {
                return Ok(false);
            }
            if let Some(packet) = self.pcapng_decode()? {
                on_packet(packet);
                return Ok(true);
            }
        }
    }

    /// Reads one block (the type already read when `kind` is given) into
    /// the record buffer: type, length, body, trailing length. False at the
    /// end of the input. A section header sets the byte order and clears
    /// the interfaces; an interface block is recorded.
    fn pcapng_block(&mut self, kind: Option<[u8; 4]>) -> Result<bool, ParseError> {
        self.index += 1;
        let mut head = [0u8; 12];
        let start = match kind {
            Some(kind) => {
                head[..4].copy_from_slice(&kind);
                4
            }
            None => 0,
        };
        let got =
            fill(&mut self.source, &mut head[start..]).map_err(|e| format!("read error: {e}"))?;
        if start + got == 0 {
            return Ok(false);
        }
        let mut big_endian = match self.format {
            Format::Pcapng { big_endian, .. } => big_endian,
            Format::Pcap { .. } => return Ok(false),
        };
        let block = self.index;
        if start + got < head.len() {
            self.cut_block(u32_at(&head, 0, big_endian));
            return Err(format!(
                "block {block} is cut short: the input ends after {} of its first 12 bytes",
                start + got
            )
            .into());
        }
        let kind = u32_at(&head, 0, big_endian);
        self.kind = kind;
        if kind == PCAPNG_SHB {
            big_endian = match u32::from_le_bytes([head[8], head[9], head[10], head[11]]) {
                PCAPNG_BYTE_ORDER => false,
                m if m.swap_bytes() == PCAPNG_BYTE_ORDER => true,
                other => {
                    return Err(format!(
                        "block {block}: a section header with byte-order magic {other:#010x}: not pcapng"
                    ).into())
                }
            };
        }
        let len = u32_at(&head, 4, big_endian);
        if len < 12 || len % 4 != 0 || len > MAX_BLOCK {
            return Err(format!(
                "block {block} (type {kind:#x}) has length {len}: the file is damaged there, reading stopped"
            ).into());
        }
        // The body and the trailing length: 4 bytes of them are read already.
        let already = 4;
        let rest = len as usize - 12;
        // Named in errors only (formatting it per block would cost as much as the rest).
        let what = || format!("block {block} (type {kind:#x})");
        let packet = matches!(kind, BLOCK_EPB | BLOCK_OPB | BLOCK_SPB);
        let record = sized(&mut self.record, already + rest);
        record[..already].copy_from_slice(&head[8..8 + already]);
        let got = fill(&mut self.source, &mut record[already..])
            .map_err(|e| format!("read error: {e}"))?;
        if got < rest {
            if packet {
                self.report.packets += 1;
                self.report.not_decoded("input_record_cut");
            }
            return Err(format!(
                "{} is cut short: the input ends after {} of its {len} bytes (input_record_cut)",
                what(),
                got + 8 + already
            )
            .into());
        }
        let trailer = u32_at(&self.record, already + rest - 4, big_endian);
        if trailer != len {
            return Err(format!(
                "{}: its trailing length {trailer} differs from its length {len}: the file is damaged there, reading stopped",
                what()
            ).into());
        }
        // Keep only the body (a section's starts with its byte-order magic).
        self.record_len = already + rest - 4;
        let body = &self.record[..self.record_len];
        let Format::Pcapng {
            big_endian: order,
            interfaces,
            section,
        } = &mut self.format
        else {
            return Ok(false);
        };
        match kind {
            PCAPNG_SHB => {
                let major = u16_at(body, 4, big_endian);
                if major != 1 {
                    return Err(format!(
                        "{}: pcapng version {major} is not supported (only 1)",
                        what()
                    )
                    .into());
                }
                *order = big_endian;
                interfaces.clear();
                *section += 1;
            }
            BLOCK_IDB => {
                if body.len() < 8 {
                    return Err(
                        format!("{}: an interface block too short for its fields", what()).into(),
                    );
                }
                let linktype = u32::from(u16_at(body, 0, big_endian));
                let snaplen = u32_at(body, 4, big_endian);
                let (mut units, mut offset_secs) = (1_000_000u64, 0i64);
                let mut at = 8;
                while at + 4 <= body.len() {
                    let code = u16_at(body, at, big_endian);
                    let olen = usize::from(u16_at(body, at + 2, big_endian));
                    let value = body.get(at + 4..at + 4 + olen);
                    match (code, value) {
                        (OPT_END, _) | (_, None) => break,
                        (OPT_IF_TSRESOL, Some([r, ..])) => units = tsresol_units(*r),
                        (OPT_IF_TSOFFSET, Some(v)) if v.len() >= 8 => {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(&v[..8]);
                            offset_secs = if big_endian {
                                i64::from_be_bytes(b)
                            } else {
                                i64::from_le_bytes(b)
                            };
                        }
                        _ => {}
                    }
                    at += 4 + olen.div_ceil(4) * 4;
                }
                interfaces.push(Interface {
                    link: LinkType::from_linktype(linktype),
                    linktype,
                    snaplen,
                    units,
                    offset_secs,
                    unusable: None,
                });
            }
            BLOCK_EPB | BLOCK_OPB | BLOCK_SPB => {}
            k if NON_PACKET_BLOCKS.contains(&k) => {}
            k => match self.report.unknown_blocks.iter_mut().find(|(t, _)| *t == k) {
                Some((_, n)) => *n += 1,
                None => self.report.unknown_blocks.push((k, 1)),
            },
        }
        Ok(true)
    }

    /// A block cut inside its first 12 bytes: counted if it was a packet.
    fn cut_block(&mut self, kind: u32) {
        if matches!(kind, BLOCK_EPB | BLOCK_OPB | BLOCK_SPB) {
            self.report.packets += 1;
            self.report.not_decoded("input_record_cut");
        }
    }

    /// The packet in the block just read, if it is a packet block that can
    /// be decapsulated; packets that cannot are counted.
    fn pcapng_decode(&mut self) -> Result<Option<Packet<'_>>, ParseError> {
        let Format::Pcapng {
            big_endian,
            interfaces,
            section,
        } = &mut self.format
        else {
            return Ok(None);
        };
        let (big_endian, section, kind) = (*big_endian, *section, self.kind);
        if !matches!(kind, BLOCK_EPB | BLOCK_OPB | BLOCK_SPB) {
            return Ok(None);
        }
        let body = &self.record[..self.record_len];
        let block = self.index;
        let short =
            || format!("block {block} (type {kind:#x}): a packet block too short for its fields");
        // (interface, timestamp, caplen, origlen, data offset) by block type.
        let (id, stamp, caplen, len, at) = match kind {
            BLOCK_EPB | BLOCK_OPB => {
                if body.len() < 20 {
                    return Err(short().into());
                }
                let id = if kind == BLOCK_EPB {
                    u32_at(body, 0, big_endian)
                } else {
                    u32::from(u16_at(body, 0, big_endian))
                };
                (
                    id,
                    Some((u32_at(body, 4, big_endian), u32_at(body, 8, big_endian))),
                    u32_at(body, 12, big_endian),
                    u32_at(body, 16, big_endian),
                    20,
                )
            }
            _ => {
                if body.len() < 4 {
                    return Err(short().into());
                }
                // No captured length: the packet is the block's data, up to
                // its original length and the interface's snaplen.
                let len = u32_at(body, 0, big_endian);
                let room = (body.len() - 4) as u32;
                let snap = match interfaces.first().map_or(0, |i| i.snaplen) {
                    0 => u32::MAX,
                    snap => snap,
                };
                (0, None, len.min(room).min(snap), len, 4)
            }
        };
        self.report.packets += 1;
        let Some(interface) = interfaces.get_mut(id as usize) else {
            self.report.not_decoded("interface_undeclared");
            return Ok(None);
        };
        let Some(link) = interface.link else {
            self.report.not_decoded("link_type_unsupported");
            let slot = *interface.unusable.get_or_insert_with(|| {
                self.report
                    .unusable_interfaces
                    .push((section, id, interface.linktype, 0));
                self.report.unusable_interfaces.len() - 1
            });
            self.report.unusable_interfaces[slot].3 += 1;
            return Ok(None);
        };
        let Some(data) = body.get(at..at + caplen as usize) else {
            return Err(format!(
                "block {block}: captured length {caplen} is longer than the block: the file is damaged there, reading stopped"
            ).into());
        };
        if interface.snaplen != 0 && caplen > interface.snaplen {
            self.report.caplen_over_snaplen += 1;
        }
        if caplen > len {
            self.report.caplen_over_origlen += 1;
        }
        let timestamp_ns = match stamp {
            Some((high, low)) => {
                let raw = (u128::from(high) << 32) | u128::from(low);
                let units = u128::from(interface.units);
                let ns = (raw / units) * 1_000_000_000 + (raw % units) * 1_000_000_000 / units;
                let ns = ns as i128 + i128::from(interface.offset_secs) * 1_000_000_000;
                ns.clamp(0, i128::from(u64::MAX)) as u64
            }
            None => 0, // a simple packet block has no timestamp
        };
        Ok(Some(Packet {
            data,
            link,
            timestamp_ns,
            orig_len: len.max(caplen) as usize,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet as the tests see it: data, link type, timestamp, original length.
    type Seen = (Vec<u8>, LinkType, u64, usize);

    /// Writes `bytes` to a temporary file and reads every packet of it.
    fn read_bytes(tag: &str, bytes: &[u8]) -> (Vec<Seen>, InputReport) {
        let path =
            std::env::temp_dir().join(format!("vxdecap-reader-{tag}-{}", std::process::id()));
        std::fs::write(&path, bytes).expect("write");
        let input = CaptureInput::open(path.to_str().expect("utf-8")).expect("a capture");
        let mut packets = Vec::new();
        let report = input.read(&AtomicBool::new(false), |p| {
            packets.push((p.data.to_vec(), p.link, p.timestamp_ns, p.orig_len));
        });
        let _ = std::fs::remove_file(&path);
        (packets, report)
    }

    fn put32(out: &mut Vec<u8>, v: u32, be: bool) {
        out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
    }

    fn put16(out: &mut Vec<u8>, v: u16, be: bool) {
        out.extend_from_slice(&if be { v.to_be_bytes() } else { v.to_le_bytes() });
    }

    fn pcap_header(magic: u32, minor: u16, snaplen: u32, linktype: u32, be: bool) -> Vec<u8> {
        let mut h = Vec::new();
        put32(&mut h, magic, be);
        put16(&mut h, 2, be);
        put16(&mut h, minor, be);
        h.extend_from_slice(&[0; 8]);
        put32(&mut h, snaplen, be);
        put32(&mut h, linktype, be);
        h
    }

    fn block(kind: u32, body: &[u8], be: bool) -> Vec<u8> {
        let mut body = body.to_vec();
        body.resize(body.len().div_ceil(4) * 4, 0);
        let len = 12 + body.len() as u32;
        let mut b = Vec::new();
        put32(&mut b, kind, be);
        put32(&mut b, len, be);
        b.extend_from_slice(&body);
        put32(&mut b, len, be);
        b
    }

    fn shb(be: bool) -> Vec<u8> {
        let mut body = Vec::new();
        put32(&mut body, PCAPNG_BYTE_ORDER, be);
        put16(&mut body, 1, be);
        put16(&mut body, 0, be);
        body.extend_from_slice(&[0xff; 8]);
        block(PCAPNG_SHB, &body, be)
    }

    fn idb(linktype: u16, snaplen: u32, options: &[(u16, &[u8])], be: bool) -> Vec<u8> {
        let mut body = Vec::new();
        put16(&mut body, linktype, be);
        put16(&mut body, 0, be);
        put32(&mut body, snaplen, be);
        for (code, value) in options {
            put16(&mut body, *code, be);
            put16(&mut body, value.len() as u16, be);
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        block(BLOCK_IDB, &body, be)
    }

    fn epb(id: u32, ts: u64, data: &[u8], orig: u32, be: bool) -> Vec<u8> {
        let mut body = Vec::new();
        put32(&mut body, id, be);
        put32(&mut body, (ts >> 32) as u32, be);
        put32(&mut body, ts as u32, be);
        put32(&mut body, data.len() as u32, be);
        put32(&mut body, orig, be);
        body.extend_from_slice(data);
        block(BLOCK_EPB, &body, be)
    }

    #[test]
    fn big_endian_nanosecond_pcap_and_swapped_old_lengths() {
        let mut file = pcap_header(PCAP_MAGIC_NS, 4, 65535, 101, true);
        for v in [1_700_000_000u32, 123_456_789, 3, 60] {
            put32(&mut file, v, true);
        }
        file.extend_from_slice(&[0x45, 1, 2]);
        let (packets, report) = read_bytes("be-ns", &file);
        assert_eq!(
            packets,
            [(
                vec![0x45, 1, 2],
                LinkType::Raw,
                1_700_000_000_123_456_789,
                60
            )]
        );
        assert_eq!(
            (report.format, report.packets, report.error),
            ("pcap", 1, None)
        );

        // Version 2.2 wrote the original length first.
        let mut file = pcap_header(PCAP_MAGIC_US, 2, 65535, 1, false);
        for v in [1u32, 5, 60, 3] {
            put32(&mut file, v, false);
        }
        file.extend_from_slice(&[9, 9, 9]);
        let (packets, _) = read_bytes("v22", &file);
        assert_eq!(
            packets,
            [(vec![9, 9, 9], LinkType::Ethernet, 1_000_005_000, 60)]
        );
    }

    #[test]
    fn pcapng_sections_keep_their_byte_order_resolution_and_offset() {
        let mut file = shb(true);
        // Nanoseconds, 10 s offset; an interface of link type 147.
        file.extend(idb(
            1,
            0,
            &[
                (OPT_IF_TSRESOL, &[9]),
                (OPT_IF_TSOFFSET, &10i64.to_be_bytes()),
            ],
            true,
        ));
        file.extend(idb(147, 0, &[], true));
        file.extend(epb(0, 1_000_000_007, &[1, 2, 3, 4, 5], 5, true));
        file.extend(epb(1, 0, &[6], 1, true));
        file.extend(epb(7, 0, &[7], 1, true));
        // A little-endian section, 2^-3 s units, and a simple packet cut by its snaplen.
        file.extend(shb(false));
        file.extend(idb(113, 2, &[(OPT_IF_TSRESOL, &[0x83])], false));
        file.extend(epb(0, 12, &[8, 8], 2, false));
        let mut spb = Vec::new();
        put32(&mut spb, 4, false);
        spb.extend_from_slice(&[1, 2, 3, 4]);
        file.extend(block(BLOCK_SPB, &spb, false));
        let (packets, report) = read_bytes("ng", &file);
        assert_eq!(
            packets,
            [
                (vec![1, 2, 3, 4, 5], LinkType::Ethernet, 11_000_000_007, 5),
                (vec![8, 8], LinkType::LinuxSll, 1_500_000_000, 2),
                (vec![1, 2], LinkType::LinuxSll, 0, 4),
            ]
        );
        assert_eq!(report.packets, 5);
        assert_eq!(
            report.not_decoded,
            [("link_type_unsupported", 1), ("interface_undeclared", 1)]
        );
        assert_eq!(report.unusable_interfaces, [(1, 1, 147, 1)]);
        assert_eq!(report.error, None);
    }

    #[test]
    fn a_block_cut_in_its_header_or_body_is_counted_and_reported() {
        let mut file = shb(false);
        file.extend(idb(1, 0, &[], false));
        file.extend(epb(0, 1, &[1; 20], 20, false));
        let whole = file.len();
        file.extend(epb(0, 2, &[2; 20], 20, false));
        for cut in [whole + 6, whole + 30] {
            let (packets, report) = read_bytes("cut", &file[..cut]);
            assert_eq!(packets.len(), 1, "{cut}");
            assert_eq!(report.not_decoded, [("input_record_cut", 1)], "{cut}");
            assert_eq!(report.packets, 2);
            assert!(report.error.expect("an error").contains("cut short"));
        }
        // A damaged length stops reading with the reason.
        let mut bad = file[..whole].to_vec();
        bad.extend_from_slice(&[6, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0]);
        let (_, report) = read_bytes("bad", &bad);
        assert!(report.error.expect("an error").contains("has length 13"));
    }

    #[test]
    fn tsresol_units() {
        assert_eq!(super::tsresol_units(6), 1_000_000);
        assert_eq!(super::tsresol_units(9), 1_000_000_000);
        assert_eq!(super::tsresol_units(0x8a), 1024);
        assert_eq!(super::tsresol_units(0x7f), u64::MAX, "absurd: saturates");
    }
}
