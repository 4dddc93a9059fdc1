//! pcapng output: one interface per VXLAN tunnel.
//!
//! A tunnel is a (VNI, outer source address) pair: on Azure vTAP and AWS
//! Traffic Mirroring that is one mirrored VM or ENI. Wireshark and tshark then
//! show which tunnel a frame came from as its interface
//! (`frame.interface_name == "vxlan:vni=27,src=10.0.2.4"`), and per-interface
//! statistics come for free.
//!
//! Layout of a file: a Section Header Block; an Interface Description Block
//! the first time each tunnel is seen, with nanosecond timestamps
//! (`if_tsresol` = 9), link type Ethernet and snaplen 262144; and one
//! Enhanced Packet Block per inner frame with its original length and,
//! unless turned off, a packet comment `vni=27 src=10.0.2.4 dst=10.1.1.4
//! sport=52889` (the outer UDP source port carries the inner flow's hash).
//! Every block is written little-endian, which the section header declares.
//!
//! The tunnel table is bounded: after `max_tunnels` interfaces, frames of
//! further tunnels share one catch-all interface, `vxlan:other`, and only
//! their comments tell them apart, so hostile input cannot grow memory or
//! the file's interface list without bound.
//!
//! Per frame there is no allocation: block headers are built on the stack
//! and options in a reused scratch buffer; each tunnel keeps the start of
//! its comment preformatted.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::IpAddr;

use super::pcap::{failed_counts, write_all_frames, DEFAULT_BUFFER};
use super::record_out::{CutBack, Framing, RecordOut};
use super::{Analyzer, AnalyzerCounts};
use crate::datapath::batch::{FrameMeta, Frames, InnerFrame};
use crate::report::stats::TunnelPath;
use vxdecap_wire::GeneveLayer;

const BLOCK_SHB: u32 = 0x0A0D_0D0A;
const BLOCK_IDB: u32 = 0x0000_0001;
const BLOCK_EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const OPT_SHB_USERAPPL: u16 = 4;
const OPT_IF_NAME: u16 = 2;
const OPT_IF_DESCRIPTION: u16 = 3;
const OPT_IF_TSRESOL: u16 = 9;
const LINKTYPE_ETHERNET: u16 = 1;
/// Largest frame a block may hold (libpcap's maximum snaplen).
const SNAPLEN: u32 = 262_144;
/// Fixed part of an Enhanced Packet Block: type, length, interface,
/// timestamp (2 words), captured and original length; the trailing length.
const EPB_HEADER_LEN: usize = 28;
/// Longest option value written (option lengths are 16-bit).
const MAX_OPTION_LEN: usize = 0xFFFF - 3;

/// Entries of the recent-tunnel cache (a power of two).
const RECENT_SLOTS: usize = 1024;

/// Interfaces a file may declare for tunnels before the rest share `vxlan:other`.
pub const DEFAULT_MAX_TUNNELS: usize = 4096;

/// Settings of a [`PcapngWriter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcapngOptions {
    /// Write a packet comment with the VNI, outer addresses and outer UDP source port.
    pub comments: bool,
    /// Tunnels given their own interface, per file; the rest share one catch-all interface.
    pub max_tunnels: usize,
}

impl Default for PcapngOptions {
    fn default() -> Self {
        Self {
            comments: true,
            max_tunnels: DEFAULT_MAX_TUNNELS,
        }
    }
}

/// Which tunnel a frame belongs to: its path, VNI and outer source, and the GENEVE VNI and
/// AWS Gateway Load Balancer endpoint around a nested VXLAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TunnelKey {
    vni: u32,
    outer_src: IpAddr,
    path: TunnelPath,
    geneve_vni: u32,
    gwlb_endpoint: Option<u64>,
}

impl TunnelKey {
    #[inline]
    fn of(frame: &InnerFrame<'_>) -> Self {
        let (meta, geneve) = (frame.meta, frame.geneve);
        Self {
            vni: meta.vni,
            outer_src: meta.outer_src,
            path: TunnelPath::of(meta.tunnel, geneve.is_some()),
            geneve_vni: geneve.map_or(0, |g| g.vni),
            gwlb_endpoint: geneve.and_then(GeneveLayer::gwlb_endpoint_id),
        }
    }
}

/// A tunnel that has its interface in the current section.
#[derive(Debug)]
struct Tunnel {
    /// Outer destination when the interface was declared.
    outer_dst: IpAddr,
    /// `vni=… src=… dst=… sport=`, ready for the port digits.
    comment_prefix: Vec<u8>,
}

/// Writes inner frames as a pcapng section to any `Write` (a file or stdout).
///
/// ```
/// use vxdecap::analyzer::PcapngWriter;
/// use vxdecap::FrameMeta;
///
/// let mut writer = PcapngWriter::new(Vec::new()).expect("a Vec accepts every write");
/// let meta = FrameMeta { vni: 27, orig_len: 60, ..FrameMeta::default() };
/// writer.write_frame(&[0u8; 60], &meta).expect("a Vec accepts every write");
/// let file = writer.into_inner().expect("flush");
/// assert_eq!(file[..4], [0x0a, 0x0d, 0x0d, 0x0a]);
/// ```
#[derive(Debug)]
pub struct PcapngWriter<W: Write> {
    /// A buffer of whole blocks over the output (see `record_out`).
    out: RecordOut<W>,
    options: PcapngOptions,
    /// Interface id of each declared tunnel (ids are given in declaration order).
    interfaces: HashMap<TunnelKey, u32>,
    tunnels: Vec<Tunnel>,
    /// Interface id of `vxlan:other` once declared.
    other_interface: Option<u32>,
    /// Recently seen tunnels and their interface ids, by a cheap hash of
    /// the key, in front of `interfaces` (whose SipHash resists crafted
    /// keys but costs more than the rest of a frame).
    recent: Box<[Option<(TunnelKey, u32)>]>,
    /// Options and padding of the block being written.
    scratch: Vec<u8>,
    bytes: u64,
    frames: u64,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header, with packet comments and the default tunnel bound.
    pub fn new(out: W) -> io::Result<Self> {
        Self::with_options(out, PcapngOptions::default())
    }

    /// Writes the section header.
    pub fn with_options(out: W, options: PcapngOptions) -> io::Result<Self> {
        Self::buffered(out, options, DEFAULT_BUFFER, None)
    }

    /// A writer with a buffer of `capacity` bytes; `cut_back` removes a
    /// partial block from `out` after a failed write.
    pub(crate) fn buffered(
        out: W,
        options: PcapngOptions,
        capacity: usize,
        cut_back: Option<CutBack<W>>,
    ) -> io::Result<Self> {
        let mut writer = Self {
            out: RecordOut::new(out, capacity, Framing::Pcapng, cut_back),
            options,
            interfaces: HashMap::new(),
            tunnels: Vec::new(),
            other_interface: None,
            recent: vec![None; RECENT_SLOTS].into_boxed_slice(),
            scratch: Vec::with_capacity(256),
            bytes: 0,
            frames: 0,
        };
        writer.write_section_header()?;
        Ok(writer)
    }

    /// Appends one frame (after declaring its tunnel's interface if new).
    #[inline]
    pub fn write_frame(&mut self, bytes: &[u8], meta: &FrameMeta) -> io::Result<()> {
        self.write_inner(&InnerFrame {
            bytes,
            meta,
            geneve: None,
        })
    }

    /// [`write_frame`](Self::write_frame) for a frame as analyzers receive it (with the
    /// GENEVE layer it came through, if any).
    pub fn write_inner(&mut self, frame: &InnerFrame<'_>) -> io::Result<()> {
        self.write_frame_within(frame, u64::MAX).map(|_| ())
    }

    /// Appends one frame unless that would take the output past `limit`
    /// bytes; returns whether it was written. A frame is always written into
    /// a section that holds no frame yet, so a single large frame cannot
    /// stall a size-rotated output.
    pub fn write_frame_within(&mut self, frame: &InnerFrame<'_>, limit: u64) -> io::Result<bool> {
        let (bytes, meta) = (frame.bytes, frame.meta);
        let key = TunnelKey::of(frame);
        let slot = recent_slot(&key);
        let known = match self.recent[slot] {
            Some((recent, id)) if recent == key => Some(id),
            _ => self.interfaces.get(&key).copied(),
        };
        let (interface, declare) = match known {
            Some(id) => (id, None),
            None if self.tunnels.len() < self.options.max_tunnels => {
                (self.tunnels.len() as u32, Some(Declare::Tunnel))
            }
            None => match self.other_interface {
                Some(id) => (id, None),
                None => (self.tunnels.len() as u32, Some(Declare::Other)),
            },
        };

        let incl = bytes.len().min(SNAPLEN as usize);
        let pad = padding(incl);
        self.scratch.clear();
        self.scratch.extend_from_slice(&[0u8; 3][..pad]);
        if self.options.comments {
            self.push_comment(interface, declare, frame);
        }
        let block_len = EPB_HEADER_LEN + incl + self.scratch.len() + 4;
        // Rare (once per tunnel and file), so the interface block may allocate.
        let interface_block = declare.map(|d| interface_block(d, key, meta));
        let interface_len = interface_block.as_ref().map_or(0, |b| b.len() + 4);
        if self.frames > 0 && self.bytes + (interface_len + block_len) as u64 > limit {
            return Ok(false);
        }

        // Taken (written or counted as failed) from here on.
        self.bytes += block_len as u64;
        self.frames += 1;
        if let (Some(d), Some(block)) = (declare, interface_block) {
            if let Err(e) = self.declare(d, key, frame, block) {
                self.out.lose_frame();
                return Err(e);
            }
        }
        self.recent[slot] = Some((key, interface));
        let mut header = [0u8; EPB_HEADER_LEN];
        put_u32(&mut header[0..4], BLOCK_EPB);
        put_u32(&mut header[4..8], block_len as u32);
        put_u32(&mut header[8..12], interface);
        put_u32(&mut header[12..16], (meta.timestamp_ns >> 32) as u32);
        put_u32(&mut header[16..20], meta.timestamp_ns as u32);
        put_u32(&mut header[20..24], incl as u32);
        put_u32(&mut header[24..28], meta.orig_len.max(incl as u32));
        self.scratch
            .extend_from_slice(&(block_len as u32).to_le_bytes());
        self.out
            .record(&[&header, &bytes[..incl], &self.scratch], true)?;
        Ok(true)
    }

    /// Frames taken so far (written, buffered or failed).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames the output took whole (those a reader finds).
    pub fn frames_written(&self) -> u64 {
        self.out.frames_written()
    }

    /// Frames lost to a write error.
    pub fn frames_failed(&self) -> u64 {
        self.out.frames_failed()
    }

    /// Bytes taken so far, headers included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Interfaces declared so far, the catch-all included.
    pub fn interfaces(&self) -> usize {
        self.tunnels.len() + usize::from(self.other_interface.is_some())
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner()
    }

    /// Appends the comment option and the end of options to `scratch`.
    fn push_comment(&mut self, interface: u32, declare: Option<Declare>, frame: &InnerFrame<'_>) {
        let meta = frame.meta;
        let start = self.scratch.len();
        self.scratch.extend_from_slice(&[0u8; 4]); // code and length, filled below
        let cached = match declare {
            None if self.other_interface != Some(interface) => {
                Some(&self.tunnels[interface as usize])
            }
            _ => None,
        };
        match cached {
            Some(tunnel) if tunnel.outer_dst == meta.outer_dst => {
                self.scratch.extend_from_slice(&tunnel.comment_prefix);
            }
            // A new tunnel, the catch-all or a changed destination: format in full.
            _ => write_comment_prefix(&mut self.scratch, frame),
        }
        push_decimal(&mut self.scratch, meta.outer_src_port);
        if let Some(gwlb) = frame
            .geneve
            .map(GeneveLayer::gwlb)
            .filter(vxdecap_wire::geneve::AwsGwlb::is_present)
        {
            write_gwlb(&mut self.scratch, &gwlb);
        }
        let len = self.scratch.len() - start - 4;
        put_u16(&mut self.scratch[start..start + 2], OPT_COMMENT);
        put_u16(&mut self.scratch[start + 2..start + 4], len as u16);
        self.scratch.extend_from_slice(&[0u8; 3][..padding(len)]);
        self.scratch.extend_from_slice(&[0u8; 4]); // opt_endofopt
    }

    fn write_section_header(&mut self) -> io::Result<()> {
        let mut block = Vec::with_capacity(64);
        put_block_start(&mut block, BLOCK_SHB);
        block.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        block.extend_from_slice(&1u16.to_le_bytes()); // major version
        block.extend_from_slice(&0u16.to_le_bytes()); // minor version
        block.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not given
        let application = concat!("vxdecap ", env!("CARGO_PKG_VERSION"));
        put_option(&mut block, OPT_SHB_USERAPPL, application.as_bytes());
        put_option(&mut block, OPT_ENDOFOPT, &[]);
        self.write_block(block)
    }

    /// Writes the interface `block` and records the tunnel as declared.
    fn declare(
        &mut self,
        declare: Declare,
        key: TunnelKey,
        frame: &InnerFrame<'_>,
        block: Vec<u8>,
    ) -> io::Result<()> {
        self.write_block(block)?;
        let id = self.tunnels.len() as u32;
        match declare {
            Declare::Tunnel => {
                let mut comment_prefix = Vec::with_capacity(64);
                write_comment_prefix(&mut comment_prefix, frame);
                self.tunnels.push(Tunnel {
                    outer_dst: frame.meta.outer_dst,
                    comment_prefix,
                });
                self.interfaces.insert(key, id);
            }
            Declare::Other => self.other_interface = Some(id),
        }
        Ok(())
    }

    /// Fills in the block's lengths and writes it.
    fn write_block(&mut self, mut block: Vec<u8>) -> io::Result<()> {
        let len = block.len() as u32 + 4;
        put_u32(&mut block[4..8], len);
        block.extend_from_slice(&len.to_le_bytes());
        self.bytes += u64::from(len);
        self.out.record(&[&block], false)
    }
}

impl<W: Write + Send> Analyzer for PcapngWriter<W> {
    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        write_all_frames(frames, |f| self.write_inner(f))
    }

    fn on_idle(&mut self) -> io::Result<()> {
        self.flush()
    }

    fn counts(&self) -> AnalyzerCounts {
        failed_counts(self.frames_failed())
    }
}

/// The interface a new tunnel needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Declare {
    /// Its own interface.
    Tunnel,
    /// The shared catch-all (the table is full).
    Other,
}

/// An interface block without its trailing length (filled by `write_block`).
fn interface_block(declare: Declare, key: TunnelKey, meta: &FrameMeta) -> Vec<u8> {
    let endpoint = key
        .gwlb_endpoint
        .map_or(String::new(), |id| format!(",gwlbe={id:#018x}"));
    let endpoint_text = key.gwlb_endpoint.map_or(String::new(), |id| {
        format!(", AWS Gateway Load Balancer endpoint {id:#018x}")
    });
    let (name, description) = match (declare, key.path) {
        (Declare::Tunnel, TunnelPath::Vxlan) => (
            format!("vxlan:vni={},src={}", key.vni, key.outer_src),
            format!(
                "VXLAN VNI {} from {} to {}",
                key.vni, key.outer_src, meta.outer_dst
            ),
        ),
        (Declare::Tunnel, TunnelPath::Geneve) => (
            format!("geneve:vni={},src={}{endpoint}", key.vni, key.outer_src),
            format!(
                "GENEVE VNI {} from {} to {}{endpoint_text}",
                key.vni, key.outer_src, meta.outer_dst
            ),
        ),
        (Declare::Tunnel, TunnelPath::GeneveVxlan) => (
            format!(
                "geneve:vni={},src={}{endpoint}/vxlan:vni={}",
                key.geneve_vni, key.outer_src, key.vni
            ),
            format!(
                "VXLAN VNI {} inside GENEVE VNI {} from {} to {}{endpoint_text}",
                key.vni, key.geneve_vni, key.outer_src, meta.outer_dst
            ),
        ),
        (Declare::Other, _) => (
            "vxlan:other".to_owned(),
            "VXLAN tunnels beyond this file's interface limit: see each packet's comment"
                .to_owned(),
        ),
    };
    let mut block = Vec::with_capacity(128);
    put_block_start(&mut block, BLOCK_IDB);
    block.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    block.extend_from_slice(&0u16.to_le_bytes()); // reserved
    block.extend_from_slice(&SNAPLEN.to_le_bytes());
    put_option(&mut block, OPT_IF_NAME, name.as_bytes());
    put_option(&mut block, OPT_IF_DESCRIPTION, description.as_bytes());
    put_option(&mut block, OPT_IF_TSRESOL, &[9]); // nanoseconds
    put_option(&mut block, OPT_ENDOFOPT, &[]);
    block
}

/// Slot of `key` in the recent-tunnel cache: a multiplicative hash. Keys
/// crafted to collide only make lookups fall through to the `HashMap`.
#[inline]
fn recent_slot(key: &TunnelKey) -> usize {
    let addr = match key.outer_src {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            (bits as u64) ^ ((bits >> 64) as u64)
        }
    };
    let vni = key.path.vni_key(key.vni);
    let mixed = (addr ^ (u64::from(vni) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - RECENT_SLOTS.trailing_zeros())) as usize
}

/// `vni=27 src=10.0.2.4 dst=10.1.1.4 sport=` (the port is appended per frame); GENEVE
/// frames start with `tunnel=geneve ` (and `geneve_vni=0 ` around a VXLAN).
fn write_comment_prefix(out: &mut Vec<u8>, frame: &InnerFrame<'_>) {
    let meta = frame.meta;
    match (meta.tunnel, frame.geneve) {
        (_, None) => {}
        (vxdecap_wire::Tunnel::Geneve, Some(_)) => out.extend_from_slice(b"tunnel=geneve "),
        (vxdecap_wire::Tunnel::Vxlan, Some(layer)) => {
            out.extend_from_slice(b"tunnel=geneve+vxlan geneve_vni=");
            push_decimal(out, layer.vni);
            out.push(b' ');
        }
    }
    out.extend_from_slice(b"vni=");
    push_decimal(out, meta.vni);
    // Writing an address into a Vec cannot fail and allocates only if the Vec must grow.
    let _ = write!(out, " src={} dst={} sport=", meta.outer_src, meta.outer_dst);
}

/// ` gwlbe=0x… attachment=0x… cookie=0x…`: the AWS Gateway Load Balancer options present.
fn write_gwlb(out: &mut Vec<u8>, gwlb: &vxdecap_wire::geneve::AwsGwlb) {
    // Writing into a Vec cannot fail and allocates only if the Vec must grow.
    if let Some(id) = gwlb.endpoint_id {
        let _ = write!(out, " gwlbe={id:#018x}");
    }
    if let Some(id) = gwlb.attachment_id {
        let _ = write!(out, " attachment={id:#018x}");
    }
    if let Some(cookie) = gwlb.flow_cookie {
        let _ = write!(out, " cookie={cookie:#010x}");
    }
}

/// Block type and a placeholder for the length.
fn put_block_start(block: &mut Vec<u8>, kind: u32) {
    block.extend_from_slice(&kind.to_le_bytes());
    block.extend_from_slice(&[0u8; 4]);
}

/// One option, padded to 32 bits (values longer than an option can hold are cut).
fn put_option(block: &mut Vec<u8>, code: u16, value: &[u8]) {
    let value = &value[..value.len().min(MAX_OPTION_LEN)];
    block.extend_from_slice(&code.to_le_bytes());
    block.extend_from_slice(&(value.len() as u16).to_le_bytes());
    block.extend_from_slice(value);
    block.extend_from_slice(&[0u8; 3][..padding(value.len())]);
}

/// Appends `value` in decimal without going through `fmt`.
#[inline]
fn push_decimal(out: &mut Vec<u8>, value: impl Into<u32>) {
    let mut value: u32 = value.into();
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Bytes that pad `len` to a multiple of 4.
#[inline]
fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

#[inline]
fn put_u32(slot: &mut [u8], value: u32) {
    slot.copy_from_slice(&value.to_le_bytes());
}

#[inline]
fn put_u16(slot: &mut [u8], value: u16) {
    slot.copy_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn meta(vni: u32, src: [u8; 4], sport: u16) -> FrameMeta {
        FrameMeta {
            timestamp_ns: 1_700_000_000_123_456_789,
            orig_len: 60,
            vni,
            outer_src: IpAddr::V4(Ipv4Addr::from(src)),
            outer_dst: IpAddr::V4(Ipv4Addr::new(10, 1, 1, 4)),
            outer_src_port: sport,
            ..FrameMeta::default()
        }
    }

    fn le32(v: u32) -> [u8; 4] {
        v.to_le_bytes()
    }

    /// An option as the spec lays it out: code, length, value, zero padding.
    fn option(code: u16, value: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        o.extend_from_slice(&code.to_le_bytes());
        o.extend_from_slice(&(value.len() as u16).to_le_bytes());
        o.extend_from_slice(value);
        o.resize(o.len().div_ceil(4) * 4, 0);
        o
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
    }

    #[test]
    fn section_interface_and_packet_blocks_match_the_spec() {
        let mut w = PcapngWriter::new(Vec::new()).expect("vec write");
        w.write_frame(&[0xAA; 5], &meta(27, [10, 0, 2, 4], 52889))
            .expect("vec write");
        let out = w.into_inner().expect("flush");

        // Section Header Block.
        let app = concat!("vxdecap ", env!("CARGO_PKG_VERSION"));
        let shb_len = 24 + option(4, app.as_bytes()).len() + 4 + 4;
        let mut shb = vec![0x0a, 0x0d, 0x0d, 0x0a];
        shb.extend_from_slice(&le32(shb_len as u32));
        shb.extend_from_slice(&[0x4d, 0x3c, 0x2b, 0x1a]); // byte-order magic
        shb.extend_from_slice(&[1, 0, 0, 0]); // version 1.0
        shb.extend_from_slice(&[0xff; 8]); // section length unknown
        shb.extend_from_slice(&option(4, app.as_bytes()));
        shb.extend_from_slice(&[0; 4]);
        shb.extend_from_slice(&le32(shb_len as u32));
        assert_eq!(out[..shb_len], shb[..], "section header block");

        // Interface Description Block: 108 bytes.
        let mut idb = vec![1, 0, 0, 0, 108, 0, 0, 0];
        idb.extend_from_slice(&[1, 0, 0, 0]); // Ethernet, reserved
        idb.extend_from_slice(&[0x00, 0x00, 0x04, 0x00]); // snaplen 262144
        idb.extend_from_slice(&[2, 0, 25, 0]);
        idb.extend_from_slice(b"vxlan:vni=27,src=10.0.2.4\0\0\0");
        idb.extend_from_slice(&[3, 0, 38, 0]);
        idb.extend_from_slice(b"VXLAN VNI 27 from 10.0.2.4 to 10.1.1.4\0\0");
        idb.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0]); // if_tsresol 9: nanoseconds
        idb.extend_from_slice(&[0; 4]);
        idb.extend_from_slice(&[108, 0, 0, 0]);
        assert_eq!(out[shb_len..shb_len + 108], idb[..], "interface block");

        // Enhanced Packet Block: 92 bytes.
        let ts = 1_700_000_000_123_456_789u64;
        let mut epb = vec![6, 0, 0, 0, 92, 0, 0, 0];
        epb.extend_from_slice(&[0; 4]); // interface 0
        epb.extend_from_slice(&le32((ts >> 32) as u32));
        epb.extend_from_slice(&le32(ts as u32));
        epb.extend_from_slice(&[5, 0, 0, 0, 60, 0, 0, 0]); // captured 5 of 60
        epb.extend_from_slice(&[0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0, 0, 0]);
        epb.extend_from_slice(&[1, 0, 44, 0]);
        epb.extend_from_slice(b"vni=27 src=10.0.2.4 dst=10.1.1.4 sport=52889");
        epb.extend_from_slice(&[0; 4]);
        epb.extend_from_slice(&[92, 0, 0, 0]);
        assert_eq!(out[shb_len + 108..], epb[..], "packet block");
    }

    /// (block type, interface id or 0, block) of each block.
    fn blocks(file: &[u8]) -> Vec<(u32, u32, &[u8])> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < file.len() {
            let len = u32_at(file, at + 4) as usize;
            assert_eq!(u32_at(file, at + len - 4), len as u32, "trailing length");
            let block = &file[at..at + len];
            let kind = u32_at(block, 0);
            let interface = if kind == BLOCK_EPB {
                u32_at(block, 8)
            } else {
                0
            };
            out.push((kind, interface, block));
            at += len;
        }
        out
    }

    #[test]
    fn each_tunnel_gets_one_interface_and_the_rest_share_the_catch_all() {
        let options = PcapngOptions {
            comments: true,
            max_tunnels: 2,
        };
        let mut w = PcapngWriter::with_options(Vec::new(), options).expect("vec write");
        let frames = [
            meta(1, [10, 0, 0, 1], 1), // interface 0
            meta(1, [10, 0, 0, 1], 2),
            meta(2, [10, 0, 0, 1], 3), // another VNI: interface 1
            meta(1, [10, 0, 0, 2], 4), // another source: the table is full, catch-all 2
            meta(1, [10, 0, 0, 1], 5),
            meta(3, [10, 0, 0, 9], 6), // catch-all again, no new interface
            meta(2, [10, 0, 0, 1], 7),
        ];
        for m in &frames {
            w.write_frame(&[0x55; 14], m).expect("vec write");
        }
        assert_eq!(w.interfaces(), 3);
        let out = w.into_inner().expect("flush");
        let blocks = blocks(&out);
        let kinds: Vec<u32> = blocks.iter().map(|b| b.0).collect();
        assert_eq!(kinds, [BLOCK_SHB, 1, 6, 6, 1, 6, 1, 6, 6, 6, 6]);
        let packet_interfaces: Vec<u32> = blocks
            .iter()
            .filter(|b| b.0 == BLOCK_EPB)
            .map(|b| b.1)
            .collect();
        assert_eq!(packet_interfaces, [0, 0, 1, 2, 0, 2, 1]);
        let other = blocks[6].2;
        assert!(contains(other, b"vxlan:other"));
        // Catch-all frames still carry their tunnel in the comment.
        let last_other = blocks[9].2;
        assert!(contains(
            last_other,
            b"vni=3 src=10.0.0.9 dst=10.1.1.4 sport=6"
        ));
    }

    #[test]
    fn many_tunnels_keep_their_interfaces_through_the_recent_cache() {
        // More tunnels than cache slots, over both address families: every
        // frame must land on its own tunnel's interface whatever collides.
        let mut w = PcapngWriter::new(Vec::new()).expect("vec write");
        let key = |t: u32| {
            let mut m = meta(t % 7, [10, (t >> 8) as u8, t as u8, 1], 1);
            if t % 3 == 0 {
                m.outer_src = IpAddr::V6(std::net::Ipv6Addr::new(
                    0x2001, 0xdb8, 0, 0, 0, 0, 0, t as u16,
                ));
            }
            m
        };
        let tunnels = 3000u32;
        for round in 0..2 {
            for t in 0..tunnels {
                let t = if round == 0 { t } else { (t * 7919) % tunnels };
                w.write_frame(&t.to_le_bytes(), &key(t)).expect("vec write");
            }
        }
        assert_eq!(w.interfaces(), tunnels as usize);
        let out = w.into_inner().expect("flush");
        for (kind, interface, block) in blocks(&out) {
            if kind == BLOCK_EPB {
                assert_eq!(
                    u32_at(block, 28),
                    interface,
                    "frame of tunnel {}",
                    u32_at(block, 28)
                );
            }
        }
    }

    #[test]
    fn comments_can_be_left_out_and_long_frames_are_cut_to_the_snaplen() {
        let options = PcapngOptions {
            comments: false,
            ..PcapngOptions::default()
        };
        let mut w = PcapngWriter::with_options(Vec::new(), options).expect("vec write");
        let big = vec![0x11; SNAPLEN as usize + 100];
        let mut m = meta(5, [10, 0, 0, 1], 9);
        m.orig_len = big.len() as u32;
        w.write_frame(&big, &m).expect("vec write");
        let out = w.into_inner().expect("flush");
        let epb = blocks(&out)[2].2;
        assert_eq!(epb.len(), 28 + SNAPLEN as usize + 4, "no options at all");
        assert_eq!(u32_at(epb, 20), SNAPLEN);
        assert_eq!(u32_at(epb, 24), SNAPLEN + 100);
    }

    #[test]
    fn a_changed_outer_destination_is_named_in_the_comment() {
        let mut w = PcapngWriter::new(Vec::new()).expect("vec write");
        let first = meta(7, [10, 0, 0, 1], 1);
        let mut moved = first;
        moved.outer_dst = IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9));
        w.write_frame(&[0; 14], &first).expect("vec write");
        w.write_frame(&[0; 14], &moved).expect("vec write");
        let out = w.into_inner().expect("flush");
        let epb = blocks(&out)[3].2;
        assert!(contains(epb, b"vni=7 src=10.0.0.1 dst=10.9.9.9 sport=1"));
    }

    #[test]
    fn a_size_limit_refuses_the_frame_and_its_interface_together() {
        let mut w = PcapngWriter::new(Vec::new()).expect("vec write");
        w.write_frame(&[0; 14], &meta(1, [10, 0, 0, 1], 1))
            .expect("vec write");
        let used = w.bytes_written();
        // A new tunnel needs an interface block and a packet block: far more than 50 bytes.
        let second = meta(2, [10, 0, 0, 1], 1);
        let frame = InnerFrame {
            bytes: &[0; 14],
            meta: &second,
            geneve: None,
        };
        let written = w.write_frame_within(&frame, used + 50).expect("vec write");
        assert!(!written);
        assert_eq!(w.bytes_written(), used);
        assert_eq!(
            w.interfaces(),
            1,
            "no interface declared for a refused frame"
        );
        let out = w.into_inner().expect("flush");
        assert_eq!(out.len() as u64, used);
    }
}
