//! Emit side: build complete VXLAN frames (and simple inner frames) for tests, benches and the
//! traffic generator.
//!
//! This is not on the receive path, so it may allocate (`build` returns a `Vec<u8>`), but
//! [`VxlanFrameBuilder::write_to`] writes into a caller's buffer without allocating. Nothing here
//! panics: impossible requests are [`BuildError`]s.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use vxdecap_wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp, VxlanFrameBuilder};
//!
//! let inner = inner_ipv4_udp_frame(&InnerIpv4Udp {
//!     src_ip: Ipv4Addr::new(10, 0, 2, 4),
//!     dst_ip: Ipv4Addr::new(10, 0, 2, 6),
//!     payload_len: 100,
//!     ..Default::default()
//! })
//! .expect("fits in a datagram");
//!
//! let frame = VxlanFrameBuilder::new()
//!     .outer_src_ip(Ipv4Addr::new(10, 0, 2, 4))
//!     .outer_dst_ip(Ipv4Addr::new(10, 1, 1, 4))
//!     .udp_src_port(52889)
//!     .vni(27)
//!     .inner(&inner)
//!     .build()
//!     .expect("consistent settings");
//! assert_eq!(frame.len(), 14 + 20 + 8 + 8 + inner.len());
//! ```

use core::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::decap::{MAX_VLAN_TAGS, VXLAN_PORT};
use crate::ethernet::{self, EtherType};
use crate::ip::IpProtocol;
use crate::{ipv4, ipv6, udp, vlan, vxlan};

/// Why a frame cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuildError {
    /// More than two outer VLAN tags were asked for (the count is attached).
    TooManyVlanTags(usize),
    /// The outer source and destination addresses are not of the same IP family.
    AddressFamilyMismatch,
    /// The VNI does not fit in 24 bits.
    VniOutOfRange(u32),
    /// The inner frame or payload is too long for one IP datagram (the asked length attached).
    TooLong(usize),
    /// [`fragment_ipv4`] was given a frame that is not Ethernet (+ up to two VLAN tags) + a
    /// valid IPv4 header and total length.
    NotIpv4,
    /// [`fragment_ipv4`] was given an MTU that leaves less than 8 payload bytes per fragment
    /// (the MTU is attached).
    MtuTooSmall(usize),
    /// [`fragment_ipv4_at`] was given a cut that is not a multiple of 8 inside the payload, or
    /// not after the previous one (the cut is attached).
    BadCut(usize),
    /// The output buffer is too small.
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes the buffer has.
        available: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyVlanTags(n) => write!(
                f,
                "{n} outer VLAN tags asked for, at most {MAX_VLAN_TAGS} are supported: drop some"
            ),
            Self::AddressFamilyMismatch => f.write_str(
                "outer source and destination IP addresses differ in family: use two IPv4 or \
                 two IPv6 addresses",
            ),
            Self::VniOutOfRange(vni) => write!(
                f,
                "VNI {vni} does not fit in 24 bits: use a VNI up to {}",
                vxlan::MAX_VNI
            ),
            Self::TooLong(len) => write!(
                f,
                "{len} bytes do not fit in one IP datagram with its headers: use a shorter \
                 inner frame or payload"
            ),
            Self::NotIpv4 => f.write_str(
                "the frame is not Ethernet (with at most two VLAN tags) carrying a valid IPv4 \
                 header: pass a frame built with an IPv4 outer header",
            ),
            Self::MtuTooSmall(mtu) => write!(
                f,
                "an MTU of {mtu} leaves less than 8 payload bytes per fragment: use an MTU of at \
                 least 68 (the IPv4 minimum)"
            ),
            Self::BadCut(at) => write!(
                f,
                "a fragment cut at payload offset {at}: cuts are multiples of 8, increasing, \
                 inside the payload"
            ),
            Self::BufferTooSmall { needed, available } => write!(
                f,
                "the frame needs {needed} bytes but the buffer has {available}: pass a larger \
                 buffer"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Builds a complete outer frame: Ethernet, 0..=2 VLAN tags, IPv4 or IPv6, UDP, VXLAN, inner
/// frame. Settings are chained by value; nothing is checked until [`build`](Self::build) or
/// [`write_to`](Self::write_to).
///
/// Defaults: MACs 02:00:00:00:00:01 → 02:00:00:00:00:02, no VLAN tag, 192.0.2.1 → 192.0.2.2,
/// IP ID 0, DF clear, TTL 64 (as Azure vTAP and AWS mirroring send), UDP 49152 → 4789 with
/// checksum 0, VXLAN flags 0x08, VNI 0, empty inner frame (set one with [`inner`](Self::inner):
/// an empty one is refused by the decapsulator as a runt).
///
/// The outer IPv4 header checksum is filled; the outer UDP checksum is 0, as cloud mirrors send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanFrameBuilder {
    outer_src_mac: [u8; 6],
    outer_dst_mac: [u8; 6],
    /// (TPID, VID) per tag, outermost first.
    outer_vlan_tags: Vec<(u16, u16)>,
    outer_src_ip: IpAddr,
    outer_dst_ip: IpAddr,
    ipv4_ident: u16,
    dont_frag: bool,
    ttl: u8,
    udp_src_port: u16,
    udp_dst_port: u16,
    vxlan_flags: u8,
    vni: u32,
    inner: Vec<u8>,
}

impl Default for VxlanFrameBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl VxlanFrameBuilder {
    /// A builder with the defaults listed on the type.
    pub fn new() -> Self {
        Self {
            outer_src_mac: [0x02, 0, 0, 0, 0, 0x01],
            outer_dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            outer_vlan_tags: Vec::new(),
            outer_src_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            outer_dst_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            ipv4_ident: 0,
            dont_frag: false,
            ttl: 64,
            udp_src_port: 49152,
            udp_dst_port: VXLAN_PORT,
            vxlan_flags: vxlan::FLAG_I,
            vni: 0,
            inner: Vec::new(),
        }
    }

    /// Outer source MAC address.
    #[must_use]
    pub fn outer_src_mac(mut self, mac: [u8; 6]) -> Self {
        self.outer_src_mac = mac;
        self
    }

    /// Outer destination MAC address.
    #[must_use]
    pub fn outer_dst_mac(mut self, mac: [u8; 6]) -> Self {
        self.outer_dst_mac = mac;
        self
    }

    /// Outer VLAN IDs, outermost first (0..=2; more is a [`BuildError::TooManyVlanTags`]).
    /// One tag is sent as 802.1Q (TPID 0x8100); two as QinQ: an 802.1ad S-tag (0x88A8) then an
    /// 802.1Q C-tag. Replaces any tags set before.
    #[must_use]
    pub fn outer_vlans(mut self, vids: &[u16]) -> Self {
        self.outer_vlan_tags = match vids {
            [vid] => vec![(EtherType::VLAN, *vid)],
            [outer, inner] => vec![(EtherType::QINQ, *outer), (EtherType::VLAN, *inner)],
            _ => vids.iter().map(|&vid| (EtherType::VLAN, vid)).collect(),
        };
        self
    }

    /// Outer VLAN tags as explicit `(TPID, VID)` pairs, outermost first (0..=2). Replaces any
    /// tags set before.
    #[must_use]
    pub fn outer_vlan_tags(mut self, tags: &[(u16, u16)]) -> Self {
        self.outer_vlan_tags = tags.to_vec();
        self
    }

    /// Outer source IP address (IPv4 or IPv6; must match the destination's family).
    #[must_use]
    pub fn outer_src_ip(mut self, addr: impl Into<IpAddr>) -> Self {
        self.outer_src_ip = addr.into();
        self
    }

    /// Outer destination IP address (IPv4 or IPv6; must match the source's family).
    #[must_use]
    pub fn outer_dst_ip(mut self, addr: impl Into<IpAddr>) -> Self {
        self.outer_dst_ip = addr.into();
        self
    }

    /// Outer IPv4 identification (ignored for IPv6).
    #[must_use]
    pub fn ipv4_ident(mut self, ident: u16) -> Self {
        self.ipv4_ident = ident;
        self
    }

    /// Outer IPv4 don't-fragment flag (ignored for IPv6).
    #[must_use]
    pub fn dont_frag(mut self, dont_frag: bool) -> Self {
        self.dont_frag = dont_frag;
        self
    }

    /// Outer IPv4 TTL, or IPv6 hop limit.
    #[must_use]
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// Outer UDP source port.
    #[must_use]
    pub fn udp_src_port(mut self, port: u16) -> Self {
        self.udp_src_port = port;
        self
    }

    /// Outer UDP destination port (default 4789).
    #[must_use]
    pub fn udp_dst_port(mut self, port: u16) -> Self {
        self.udp_dst_port = port;
        self
    }

    /// The whole VXLAN flags byte (default 0x08, the I flag).
    #[must_use]
    pub fn vxlan_flags(mut self, flags: u8) -> Self {
        self.vxlan_flags = flags;
        self
    }

    /// VXLAN network identifier (24 bits; larger is a [`BuildError::VniOutOfRange`]).
    #[must_use]
    pub fn vni(mut self, vni: u32) -> Self {
        self.vni = vni;
        self
    }

    /// The inner frame carried after the VXLAN header (copied into the builder).
    #[must_use]
    pub fn inner(mut self, frame: &[u8]) -> Self {
        self.inner = frame.to_vec();
        self
    }

    /// Length of the frame [`build`](Self::build) would produce, after checking the settings.
    pub fn frame_len(&self) -> Result<usize, BuildError> {
        Ok(self.layout()?.frame_len)
    }

    /// Builds the frame into a new `Vec`.
    pub fn build(&self) -> Result<Vec<u8>, BuildError> {
        let mut frame = vec![0u8; self.frame_len()?];
        self.write_to(&mut frame)?;
        Ok(frame)
    }

    /// Writes the frame at the start of `buf` and returns its length; bytes after it are left
    /// alone. Does not allocate.
    pub fn write_to(&self, buf: &mut [u8]) -> Result<usize, BuildError> {
        let layout = self.layout()?;
        let available = buf.len();
        let Some(buf) = buf.get_mut(..layout.frame_len) else {
            return Err(BuildError::BufferTooSmall {
                needed: layout.frame_len,
                available,
            });
        };
        buf.fill(0);

        // Every slice below lies inside `buf`, whose length `layout` computed from the same
        // header sizes, so the views' setters cannot go out of bounds.
        let mut eth = ethernet::Frame::new_unchecked(&mut *buf);
        eth.set_dst_addr(self.outer_dst_mac);
        eth.set_src_addr(self.outer_src_mac);
        let ip_ethertype = match self.outer_src_ip {
            IpAddr::V4(_) => EtherType::IPV4,
            IpAddr::V6(_) => EtherType::IPV6,
        };
        let mut offset = ethernet::HEADER_LEN;
        let first_type = match self.outer_vlan_tags.first() {
            Some(&(tpid, _)) => tpid,
            None => ip_ethertype,
        };
        eth.set_ethertype(first_type);
        for (i, &(_, vid)) in self.outer_vlan_tags.iter().enumerate() {
            let next_type = match self.outer_vlan_tags.get(i + 1) {
                Some(&(tpid, _)) => tpid,
                None => ip_ethertype,
            };
            let mut tag = vlan::Tag::new_unchecked(&mut buf[offset..]);
            tag.set_vid(vid);
            tag.set_ethertype(next_type);
            offset += vlan::HEADER_LEN;
        }

        match (self.outer_src_ip, self.outer_dst_ip) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut ip = ipv4::Packet::new_unchecked(&mut buf[offset..]);
                ip.set_version(4);
                ip.set_header_len(ipv4::MIN_HEADER_LEN);
                ip.set_total_len(layout.ip_len);
                ip.set_ident(self.ipv4_ident);
                ip.set_dont_frag(self.dont_frag);
                ip.set_ttl(self.ttl);
                ip.set_protocol(IpProtocol::UDP);
                ip.set_src_addr(src);
                ip.set_dst_addr(dst);
                ip.fill_checksum();
                offset += ipv4::MIN_HEADER_LEN;
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let mut ip = ipv6::Packet::new_unchecked(&mut buf[offset..]);
                ip.set_version(6);
                ip.set_payload_len(layout.udp_len);
                ip.set_next_header(IpProtocol::UDP);
                ip.set_hop_limit(self.ttl);
                ip.set_src_addr(src);
                ip.set_dst_addr(dst);
                offset += ipv6::HEADER_LEN;
            }
            _ => return Err(BuildError::AddressFamilyMismatch),
        }

        let mut udp = udp::Packet::new_unchecked(&mut buf[offset..]);
        udp.set_src_port(self.udp_src_port);
        udp.set_dst_port(self.udp_dst_port);
        udp.set_len(layout.udp_len);
        udp.set_checksum(0);
        offset += udp::HEADER_LEN;

        let mut vxlan = vxlan::Header::new_unchecked(&mut buf[offset..]);
        vxlan.set_flags(self.vxlan_flags);
        vxlan.set_vni(self.vni);
        vxlan.payload_mut().copy_from_slice(&self.inner);
        Ok(layout.frame_len)
    }

    /// Checks the settings and computes the lengths.
    fn layout(&self) -> Result<Layout, BuildError> {
        if self.outer_vlan_tags.len() > MAX_VLAN_TAGS {
            return Err(BuildError::TooManyVlanTags(self.outer_vlan_tags.len()));
        }
        if self.vni > vxlan::MAX_VNI {
            return Err(BuildError::VniOutOfRange(self.vni));
        }
        let ip_header_len = match (self.outer_src_ip, self.outer_dst_ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => ipv4::MIN_HEADER_LEN,
            (IpAddr::V6(_), IpAddr::V6(_)) => ipv6::HEADER_LEN,
            _ => return Err(BuildError::AddressFamilyMismatch),
        };
        let too_long = BuildError::TooLong(self.inner.len());
        let udp_len = udp::HEADER_LEN + vxlan::HEADER_LEN + self.inner.len();
        let udp_len_u16 = u16::try_from(udp_len).map_err(|_| too_long)?;
        // IPv4 total length covers the header; IPv6 payload length is just the UDP datagram.
        let ip_len = if ip_header_len == ipv4::MIN_HEADER_LEN {
            u16::try_from(ip_header_len + udp_len).map_err(|_| too_long)?
        } else {
            udp_len_u16
        };
        let frame_len = ethernet::HEADER_LEN
            + self.outer_vlan_tags.len() * vlan::HEADER_LEN
            + ip_header_len
            + udp_len;
        Ok(Layout {
            frame_len,
            ip_len,
            udp_len: udp_len_u16,
        })
    }
}

/// Builder for a GENEVE frame (RFC 8926): the outer Ethernet, VLAN, IP and UDP headers of a
/// [`VxlanFrameBuilder`] (UDP destination port 6081 by default), then a GENEVE header, its
/// options and a payload. The builder's VXLAN settings (flags, VNI, inner frame) are not used.
///
/// Defaults: version 0, O and C clear, protocol 0x6558 (Ethernet), VNI 0, no options, empty
/// payload.
///
/// ```
/// use vxdecap_wire::build::GeneveFrameBuilder;
/// use vxdecap_wire::{decapsulate, geneve, PortSet, Tunnel};
///
/// let packet = [0x45u8; 20]; // stands for a bare IPv4 packet
/// let frame = GeneveFrameBuilder::new()
///     .protocol(geneve::protocol::IPV4)
///     .vni(7)
///     .aws_gwlb(0x1122, 0x3344, 0xdead_beef)
///     .payload(&packet)
///     .build()
///     .expect("consistent settings");
/// let decap = decapsulate(&frame, &PortSet::default()).expect("GENEVE");
/// assert_eq!((decap.tunnel(), decap.vni, decap.bare_ip()), (Tunnel::Geneve, 7, Some(0x0800)));
/// assert_eq!(decap.geneve.expect("layer").gwlb_endpoint_id(), Some(0x1122));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneveFrameBuilder {
    outer: VxlanFrameBuilder,
    version: u8,
    flags: u8,
    protocol: u16,
    vni: u32,
    options: Vec<u8>,
    payload: Vec<u8>,
}

impl Default for GeneveFrameBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl GeneveFrameBuilder {
    /// A builder with the defaults listed on the type.
    pub fn new() -> Self {
        Self {
            outer: VxlanFrameBuilder::new().udp_dst_port(crate::geneve::GENEVE_PORT),
            version: 0,
            flags: 0,
            protocol: crate::geneve::protocol::ETHERNET,
            vni: 0,
            options: Vec::new(),
            payload: Vec::new(),
        }
    }

    /// Changes the outer headers with the [`VxlanFrameBuilder`] setters (addresses, ports,
    /// VLAN tags, IP ID, …).
    #[must_use]
    pub fn outer(mut self, change: impl FnOnce(VxlanFrameBuilder) -> VxlanFrameBuilder) -> Self {
        self.outer = change(self.outer);
        self
    }

    /// The version field (2 bits; only 0 is defined).
    #[must_use]
    pub fn version(mut self, version: u8) -> Self {
        self.version = version & 0x03;
        self
    }

    /// The flags byte (O = 0x80, C = 0x40).
    #[must_use]
    pub fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }

    /// The protocol type of the payload (see [`crate::geneve::protocol`]).
    #[must_use]
    pub fn protocol(mut self, protocol: u16) -> Self {
        self.protocol = protocol;
        self
    }

    /// The virtual network identifier (24 bits).
    #[must_use]
    pub fn vni(mut self, vni: u32) -> Self {
        self.vni = vni;
        self
    }

    /// Appends an option: `class`, `kind` (its high bit is the critical bit) and `data`,
    /// zero-padded to a multiple of 4 bytes.
    #[must_use]
    pub fn option(mut self, class: u16, kind: u8, data: &[u8]) -> Self {
        let words = data.len().div_ceil(4);
        self.options.extend_from_slice(&class.to_be_bytes());
        self.options.push(kind);
        // Lengths past 31 words are cut to the field; `build` refuses the total past 252.
        self.options.push((words & 0x1f) as u8);
        self.options.extend_from_slice(data);
        self.options
            .resize(self.options.len() + words * 4 - data.len(), 0);
        self
    }

    /// Appends the three AWS Gateway Load Balancer options (class 0x0108): endpoint id,
    /// attachment id and flow cookie.
    #[must_use]
    pub fn aws_gwlb(self, endpoint_id: u64, attachment_id: u64, flow_cookie: u32) -> Self {
        let class = crate::geneve::AWS_GWLB_CLASS;
        self.option(class, 1, &endpoint_id.to_be_bytes())
            .option(class, 2, &attachment_id.to_be_bytes())
            .option(class, 3, &flow_cookie.to_be_bytes())
    }

    /// Raw option bytes, replacing those set so far (for malformed options in tests).
    #[must_use]
    pub fn raw_options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        self
    }

    /// The payload after the header and options (an Ethernet frame or an IP packet).
    #[must_use]
    pub fn payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// Builds the frame into a new `Vec`.
    pub fn build(&self) -> Result<Vec<u8>, BuildError> {
        if self.vni > vxlan::MAX_VNI {
            return Err(BuildError::VniOutOfRange(self.vni));
        }
        if self.options.len() > crate::geneve::MAX_OPTIONS_LEN || self.options.len() % 4 != 0 {
            return Err(BuildError::TooLong(self.options.len()));
        }
        let mut after = self.options.clone();
        after.extend_from_slice(&self.payload);
        // The VXLAN builder's 8-byte header sits exactly where GENEVE's fixed header goes.
        let mut frame = self.outer.clone().vni(0).inner(&after).build()?;
        let at = frame.len() - after.len() - crate::geneve::HEADER_LEN;
        let [p0, p1] = self.protocol.to_be_bytes();
        let [_, v0, v1, v2] = self.vni.to_be_bytes();
        // `options.len() / 4` ≤ 63, checked above.
        let opt_len = (self.options.len() / 4) as u8;
        frame[at..at + crate::geneve::HEADER_LEN].copy_from_slice(&[
            (self.version << 6) | opt_len,
            self.flags,
            p0,
            p1,
            v0,
            v1,
            v2,
            0,
        ]);
        Ok(frame)
    }
}

/// Lengths computed once by [`VxlanFrameBuilder::layout`].
#[allow(
    clippy::struct_field_names,
    reason = "lengths of the frame and its headers, named for what they measure"
)]
struct Layout {
    frame_len: usize,
    /// IPv4 total length (unused for IPv6).
    ip_len: u16,
    udp_len: u16,
}

/// Settings for [`inner_ipv4_udp_frame`]: a simple inner Ethernet/IPv4/UDP frame.
///
/// Defaults: 02:00:00:00:01:01 → 02:00:00:00:01:02, 10.0.0.1:40000 → 10.0.0.2:5000, 18 payload
/// bytes (a 60-byte frame, the Ethernet minimum without FCS), payload seed 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InnerIpv4Udp {
    /// Inner source MAC.
    pub src_mac: [u8; 6],
    /// Inner destination MAC.
    pub dst_mac: [u8; 6],
    /// Inner source IPv4 address.
    pub src_ip: Ipv4Addr,
    /// Inner destination IPv4 address.
    pub dst_ip: Ipv4Addr,
    /// Inner UDP source port.
    pub src_port: u16,
    /// Inner UDP destination port.
    pub dst_port: u16,
    /// UDP payload length in bytes (at most 65507).
    pub payload_len: usize,
    /// Payload pattern: byte `i` is `payload_seed.wrapping_add(i as u8)`.
    pub payload_seed: u8,
}

impl Default for InnerIpv4Udp {
    fn default() -> Self {
        Self {
            src_mac: [0x02, 0, 0, 0, 0x01, 0x01],
            dst_mac: [0x02, 0, 0, 0, 0x01, 0x02],
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
            src_port: 40000,
            dst_port: 5000,
            payload_len: 18,
            payload_seed: 0,
        }
    }
}

/// Builds an inner Ethernet/IPv4/UDP frame: IP ID 0, DF set, TTL 64, valid IPv4 header and UDP
/// checksums, payload filled with the pattern described on [`InnerIpv4Udp::payload_seed`].
/// Fails with [`BuildError::TooLong`] when the payload does not fit one datagram.
pub fn inner_ipv4_udp_frame(spec: &InnerIpv4Udp) -> Result<Vec<u8>, BuildError> {
    let too_long = BuildError::TooLong(spec.payload_len);
    let udp_len = udp::HEADER_LEN + spec.payload_len;
    let ip_len = ipv4::MIN_HEADER_LEN + udp_len;
    let ip_len_u16 = u16::try_from(ip_len).map_err(|_| too_long)?;
    let udp_len_u16 = u16::try_from(udp_len).map_err(|_| too_long)?;

    let mut frame = vec![0u8; ethernet::HEADER_LEN + ip_len];
    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.set_dst_addr(spec.dst_mac);
    eth.set_src_addr(spec.src_mac);
    eth.set_ethertype(EtherType::IPV4);

    let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
    ip.set_version(4);
    ip.set_header_len(ipv4::MIN_HEADER_LEN);
    ip.set_total_len(ip_len_u16);
    ip.set_dont_frag(true);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::UDP);
    ip.set_src_addr(spec.src_ip);
    ip.set_dst_addr(spec.dst_ip);
    ip.fill_checksum();

    let mut udp = udp::Packet::new_unchecked(ip.payload_mut());
    udp.set_src_port(spec.src_port);
    udp.set_dst_port(spec.dst_port);
    udp.set_len(udp_len_u16);
    for (i, byte) in udp.payload_mut().iter_mut().enumerate() {
        *byte = spec.payload_seed.wrapping_add(i as u8);
    }
    udp.fill_checksum(IpAddr::V4(spec.src_ip), IpAddr::V4(spec.dst_ip));
    Ok(frame)
}

/// Splits an Ethernet + IPv4 frame (up to two VLAN tags) into IPv4 fragments the way a router
/// with link MTU `mtu` would: each fragment's IPv4 total length is at most `mtu`, payload pieces
/// are multiples of 8 bytes except the last, the first fragment keeps every IPv4 option and later
/// ones keep only options with the copied flag (RFC 791), and each header checksum is filled.
/// The Ethernet header and VLAN tags are repeated on every fragment; Ethernet padding after the
/// IPv4 total length is dropped. DF is ignored (cloud mirrors send it clear). A frame that is
/// already a fragment is split further, keeping its offset and MF flag. A datagram that fits is
/// returned as the one frame.
///
/// ```
/// use vxdecap_wire::build::{fragment_ipv4, VxlanFrameBuilder};
/// let frame = VxlanFrameBuilder::new().inner(&[0x11; 1500]).build().expect("valid");
/// let fragments = fragment_ipv4(&frame, 1500).expect("an IPv4 frame");
/// assert_eq!(fragments.len(), 2);
/// assert_eq!(fragments[0].len(), 14 + 1500);
/// // 1516 bytes of UDP payload: 1480 in the first fragment, 36 in the second.
/// assert_eq!(fragments[1].len(), 14 + 20 + 36);
/// ```
pub fn fragment_ipv4(frame: &[u8], mtu: usize) -> Result<Vec<Vec<u8>>, BuildError> {
    let (_, first_len, later_len) = ipv4_parts(frame)?;
    let room = |header_len: usize| mtu.saturating_sub(header_len) / 8 * 8;
    if first_len + payload_len(frame)? <= mtu {
        return split_ipv4(frame, |_, len| len);
    }
    if room(first_len) == 0 || room(later_len) == 0 {
        return Err(BuildError::MtuTooSmall(mtu));
    }
    split_ipv4(frame, |at, len| {
        let header = if at == 0 { first_len } else { later_len };
        len.min(at + room(header))
    })
}

/// Splits an Ethernet + IPv4 frame into IPv4 fragments that end at the given payload offsets
/// (each a multiple of 8, increasing, inside the payload), as [`fragment_ipv4`] builds them.
/// For crafting fragments a router would not make, such as a first fragment that ends right
/// after the outer UDP header (`&[8]`), so that the VXLAN header is in the second.
///
/// ```
/// use vxdecap_wire::build::{fragment_ipv4_at, VxlanFrameBuilder};
/// let frame = VxlanFrameBuilder::new().inner(&[0x11; 100]).build().expect("valid");
/// let fragments = fragment_ipv4_at(&frame, &[8]).expect("an IPv4 frame");
/// assert_eq!(fragments.len(), 2);
/// assert_eq!(fragments[0].len(), 14 + 20 + 8);
/// ```
pub fn fragment_ipv4_at(frame: &[u8], cuts: &[usize]) -> Result<Vec<Vec<u8>>, BuildError> {
    let payload = payload_len(frame)?;
    let mut previous = 0;
    for &cut in cuts {
        if cut % 8 != 0 || cut <= previous || cut >= payload {
            return Err(BuildError::BadCut(cut));
        }
        previous = cut;
    }
    let mut next = cuts.iter().copied();
    split_ipv4(frame, |_, len| next.next().unwrap_or(len))
}

/// The L3 offset of an Ethernet + IPv4 frame, its header length, and the header length of its
/// later fragments.
fn ipv4_parts(frame: &[u8]) -> Result<(usize, usize, usize), BuildError> {
    let (ethertype, l3_offset) =
        vlan::skip_tags(frame, MAX_VLAN_TAGS).ok_or(BuildError::NotIpv4)?;
    if ethertype != EtherType::IPV4 {
        return Err(BuildError::NotIpv4);
    }
    let l3 = frame.get(l3_offset..).ok_or(BuildError::NotIpv4)?;
    let ip = ipv4::Packet::new_checked(l3).map_err(|_| BuildError::NotIpv4)?;
    let first_header = &l3[..ip.header_len()];
    Ok((
        l3_offset,
        first_header.len(),
        header_with_copied_options(first_header).len(),
    ))
}

fn payload_len(frame: &[u8]) -> Result<usize, BuildError> {
    let (l3_offset, _, _) = ipv4_parts(frame)?;
    let ip = ipv4::Packet::new_checked(&frame[l3_offset..]).map_err(|_| BuildError::NotIpv4)?;
    Ok(ip.payload().len())
}

/// Splits the frame's IPv4 payload into fragments; `piece_end(at, payload_len)` says where the
/// piece starting at `at` ends.
fn split_ipv4(
    frame: &[u8],
    mut piece_end: impl FnMut(usize, usize) -> usize,
) -> Result<Vec<Vec<u8>>, BuildError> {
    let (l3_offset, _, _) = ipv4_parts(frame)?;
    let l3 = &frame[l3_offset..];
    let ip = ipv4::Packet::new_checked(l3).map_err(|_| BuildError::NotIpv4)?;
    let l2 = &frame[..l3_offset];
    let first_header = &l3[..ip.header_len()];
    let later_header = header_with_copied_options(first_header);
    let payload = ip.payload();
    let first_end = piece_end(0, payload.len());
    if first_end >= payload.len() {
        return Ok(vec![[l2, first_header, payload].concat()]);
    }

    let base_offset = usize::from(ip.frag_offset());
    let more_after_last = ip.more_frags();
    let mut fragments = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let header: &[u8] = if at == 0 { first_header } else { &later_header };
        let end = if at == 0 {
            first_end
        } else {
            piece_end(at, payload.len())
        };
        let piece = &payload[at..end.clamp(at + 1, payload.len())];
        let offset = base_offset + at;
        // The offset field holds 13 bits of 8-byte units.
        let offset_u16 = u16::try_from(offset)
            .ok()
            .filter(|&o| o <= 0x1fff << 3)
            .ok_or(BuildError::TooLong(offset))?;
        let total = u16::try_from(header.len() + piece.len())
            .map_err(|_| BuildError::TooLong(header.len() + piece.len()))?;
        let mut fragment = [l2, header, piece].concat();
        let mut ip = ipv4::Packet::new_unchecked(&mut fragment[l3_offset..]);
        ip.set_header_len(header.len());
        ip.set_total_len(total);
        ip.set_frag_offset(offset_u16);
        ip.set_more_frags(at + piece.len() < payload.len() || more_after_last);
        ip.fill_checksum();
        fragments.push(fragment);
        at += piece.len();
    }
    Ok(fragments)
}

/// An IPv4 header for non-first fragments: the fixed 20 bytes plus the options whose copied
/// flag (0x80) is set, padded with End of Options to a multiple of 4 bytes.
fn header_with_copied_options(header: &[u8]) -> Vec<u8> {
    let (fixed, options) = header.split_at(header.len().min(ipv4::MIN_HEADER_LEN));
    let mut out = fixed.to_vec();
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            0 => break,
            1 => i += 1,
            _ => {
                let len = options.get(i + 1).map_or(0, |&l| usize::from(l));
                let Some(option) = options.get(i..i + len).filter(|_| len >= 2) else {
                    break;
                };
                if kind & 0x80 != 0 {
                    out.extend_from_slice(option);
                }
                i += len;
            }
        }
    }
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    /// Frame 1 of tcpdump's tests/vxlan.pcap is 148 bytes; its outer 50 bytes are rebuilt
    /// here byte for byte from the builder (the inner 98 bytes are copied).
    const TCPDUMP_OUTER: [u8; 50] = [
        0x00, 0x16, 0x3e, 0x08, 0x71, 0xcf, 0x36, 0xdc, 0x85, 0x1e, 0xb3, 0x40, 0x08,
        0x00, // eth
        0x45, 0x00, 0x00, 0x86, 0xd2, 0xc0, 0x40, 0x00, 0x40, 0x11, 0x51, 0x52, // ipv4
        0xc0, 0xa8, 0xcb, 0x01, 0xc0, 0xa8, 0xca, 0x01, // addresses
        0xb0, 0x5d, 0x12, 0xb5, 0x00, 0x72, 0x00, 0x00, // udp
        0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00, // vxlan
    ];

    fn tcpdump_builder() -> VxlanFrameBuilder {
        VxlanFrameBuilder::new()
            .outer_dst_mac([0x00, 0x16, 0x3e, 0x08, 0x71, 0xcf])
            .outer_src_mac([0x36, 0xdc, 0x85, 0x1e, 0xb3, 0x40])
            .outer_src_ip(Ipv4Addr::new(192, 168, 203, 1))
            .outer_dst_ip(Ipv4Addr::new(192, 168, 202, 1))
            .ipv4_ident(0xd2c0)
            .dont_frag(true)
            .ttl(64)
            .udp_src_port(45149)
            .vni(100)
            .inner(&[0xaa; 98])
    }

    #[test]
    fn emits_tcpdump_frame_outer_headers() {
        let frame = tcpdump_builder().build().expect("valid");
        assert_eq!(frame.len(), 148);
        assert_eq!(&frame[..50], &TCPDUMP_OUTER[..]);
        assert_eq!(&frame[50..], &[0xaa; 98][..]);
    }

    #[test]
    fn write_to_matches_build_and_reports_small_buffers() {
        let builder = tcpdump_builder();
        let mut buf = [0x55u8; 200];
        assert_eq!(builder.write_to(&mut buf), Ok(148));
        assert_eq!(&buf[..148], &*builder.build().expect("valid"));
        assert_eq!(buf[148], 0x55, "bytes after the frame are left alone");
        assert_eq!(
            builder.write_to(&mut buf[..147]),
            Err(BuildError::BufferTooSmall {
                needed: 148,
                available: 147
            })
        );
        assert_eq!(builder.frame_len(), Ok(148));
    }

    #[test]
    fn vlan_tags() {
        let frame = VxlanFrameBuilder::new()
            .outer_vlans(&[42])
            .inner(&[0; 14])
            .build()
            .expect("valid");
        assert_eq!(&frame[12..18], &[0x81, 0x00, 0x00, 0x2a, 0x08, 0x00]);

        let frame = VxlanFrameBuilder::new()
            .outer_vlans(&[200, 100])
            .inner(&[0; 14])
            .build()
            .expect("valid");
        assert_eq!(
            &frame[12..22],
            &[0x88, 0xa8, 0x00, 0xc8, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00]
        );

        let frame = VxlanFrameBuilder::new()
            .outer_vlan_tags(&[(EtherType::QINQ_OLD, 7)])
            .outer_src_ip(Ipv6Addr::LOCALHOST)
            .outer_dst_ip(Ipv6Addr::LOCALHOST)
            .inner(&[0; 14])
            .build()
            .expect("valid");
        assert_eq!(&frame[12..18], &[0x91, 0x00, 0x00, 0x07, 0x86, 0xdd]);

        assert_eq!(
            VxlanFrameBuilder::new().outer_vlans(&[1, 2, 3]).build(),
            Err(BuildError::TooManyVlanTags(3))
        );
    }

    #[test]
    fn ipv6_outer() {
        let src: Ipv6Addr = "2001:db8::1".parse().expect("literal");
        let dst: Ipv6Addr = "2001:db8::2".parse().expect("literal");
        let frame = VxlanFrameBuilder::new()
            .outer_src_ip(src)
            .outer_dst_ip(dst)
            .ttl(255)
            .vni(0xabcdef)
            .inner(&[0x11; 20])
            .build()
            .expect("valid");
        assert_eq!(frame.len(), 14 + 40 + 8 + 8 + 20);
        assert_eq!(&frame[12..14], &[0x86, 0xdd]);
        let ip = ipv6::Packet::new_checked(&frame[14..]).expect("valid IPv6");
        assert_eq!(ip.payload_len(), 36);
        assert_eq!(ip.next_header(), IpProtocol::UDP);
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!((ip.src_addr(), ip.dst_addr()), (src, dst));
        assert_eq!(&frame[62..70], &[0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            VxlanFrameBuilder::new()
                .outer_dst_ip(Ipv6Addr::LOCALHOST)
                .build(),
            Err(BuildError::AddressFamilyMismatch)
        );
        assert_eq!(
            VxlanFrameBuilder::new().vni(1 << 24).build(),
            Err(BuildError::VniOutOfRange(1 << 24))
        );
        let big = vec![0u8; 65_536];
        assert_eq!(
            VxlanFrameBuilder::new().inner(&big).build(),
            Err(BuildError::TooLong(65_536))
        );
        assert_eq!(
            inner_ipv4_udp_frame(&InnerIpv4Udp {
                payload_len: 65_508,
                ..Default::default()
            }),
            Err(BuildError::TooLong(65_508))
        );
        assert!(inner_ipv4_udp_frame(&InnerIpv4Udp {
            payload_len: 65_507,
            ..Default::default()
        })
        .is_ok());
        for error in [
            BuildError::TooManyVlanTags(3),
            BuildError::AddressFamilyMismatch,
            BuildError::VniOutOfRange(1 << 24),
            BuildError::TooLong(70_000),
            BuildError::NotIpv4,
            BuildError::MtuTooSmall(20),
            BuildError::BufferTooSmall {
                needed: 2,
                available: 1,
            },
        ] {
            assert!(error.to_string().contains(':'), "{error} should name a fix");
        }
    }

    /// Checks the fragments of `frame` against it: headers, offsets, flags, checksums, sizes,
    /// and that their payloads concatenate to the original one.
    fn check_fragments(frame: &[u8], l3: usize, mtu: usize, fragments: &[Vec<u8>]) {
        let original = ipv4::Packet::new_checked(&frame[l3..]).expect("ipv4");
        let mut payload = Vec::new();
        for (i, fragment) in fragments.iter().enumerate() {
            assert_eq!(&fragment[..l3], &frame[..l3], "L2 header repeated");
            let ip = ipv4::Packet::new_checked(&fragment[l3..]).expect("fragment is IPv4");
            assert_eq!(usize::from(ip.total_len()), fragment.len() - l3);
            assert!(usize::from(ip.total_len()) <= mtu);
            assert!(ip.verify_checksum(), "fragment {i}");
            assert_eq!(usize::from(ip.frag_offset()), payload.len(), "fragment {i}");
            let last = i == fragments.len() - 1;
            assert_eq!(ip.more_frags(), !last, "fragment {i}");
            if !last {
                assert_eq!(ip.payload().len() % 8, 0);
            }
            assert_eq!(ip.ident(), original.ident());
            assert_eq!(ip.src_addr(), original.src_addr());
            assert_eq!(ip.protocol(), original.protocol());
            payload.extend_from_slice(ip.payload());
        }
        assert_eq!(payload, original.payload());
    }

    #[test]
    fn fragment_ipv4_splits_at_8_byte_boundaries() {
        let frame = VxlanFrameBuilder::new()
            .inner(&[0x42; 1500])
            .build()
            .expect("valid");
        let fragments = fragment_ipv4(&frame, 1500).expect("ipv4");
        assert_eq!(fragments.len(), 2);
        assert_eq!(fragments[0].len(), 14 + 1500);
        check_fragments(&frame, 14, 1500, &fragments);

        for mtu in [68, 576, 577, 583, 1280] {
            let fragments = fragment_ipv4(&frame, mtu).expect("ipv4");
            check_fragments(&frame, 14, mtu, &fragments);
            assert_eq!(fragments.len(), 1516usize.div_ceil((mtu - 20) / 8 * 8));
        }

        // Tagged, and padded after the IPv4 total length.
        let mut tagged = VxlanFrameBuilder::new()
            .outer_vlans(&[5, 6])
            .inner(&[0x42; 1500])
            .build()
            .expect("valid");
        tagged.extend_from_slice(&[0xee; 4]);
        let fragments = fragment_ipv4(&tagged, 1000).expect("ipv4");
        check_fragments(&tagged, 22, 1000, &fragments);
    }

    #[test]
    fn fragment_ipv4_keeps_a_datagram_that_fits_and_splits_fragments_further() {
        let frame = VxlanFrameBuilder::new()
            .inner(&[0x42; 100])
            .build()
            .expect("valid");
        assert_eq!(fragment_ipv4(&frame, 1500), Ok(vec![frame.clone()]));

        let big = VxlanFrameBuilder::new()
            .inner(&[0x42; 3000])
            .build()
            .expect("valid");
        let pieces = fragment_ipv4(&big, 1500).expect("ipv4");
        let quarters = fragment_ipv4(&pieces[0], 600).expect("ipv4");
        for quarter in &quarters {
            let ip = ipv4::Packet::new_checked(&quarter[14..]).expect("ipv4");
            assert!(ip.more_frags(), "pieces of a non-last fragment all keep MF");
        }
        // 3016 payload bytes in three pieces at 1500: the last one starts at 2960.
        assert_eq!(pieces.len(), 3);
        let tail = fragment_ipv4(&pieces[2], 68).expect("ipv4");
        let first_tail = ipv4::Packet::new_checked(&tail[0][14..]).expect("ipv4");
        assert_eq!(first_tail.frag_offset(), 2960);
        let last = ipv4::Packet::new_checked(&tail[tail.len() - 1][14..]).expect("ipv4");
        assert!(!last.more_frags());
    }

    #[test]
    fn fragment_ipv4_copies_only_copied_options_after_the_first() {
        let frame = VxlanFrameBuilder::new()
            .inner(&[0x42; 1000])
            .build()
            .expect("valid");
        // NOP, a copied 4-byte option, a non-copied 3-byte option, End of Options.
        let options = [1, 0x94, 4, 0xaa, 0xbb, 0x07, 3, 0x11];
        let mut with_options = frame[..34].to_vec();
        with_options.extend_from_slice(&options);
        with_options.extend_from_slice(&frame[34..]);
        let mut ip = ipv4::Packet::new_unchecked(&mut with_options[14..]);
        ip.set_header_len(28);
        let total = ip.total_len() + 8;
        ip.set_total_len(total);
        ip.fill_checksum();

        let fragments = fragment_ipv4(&with_options, 576).expect("ipv4");
        let first = ipv4::Packet::new_checked(&fragments[0][14..]).expect("ipv4");
        assert_eq!(first.options(), &options);
        for later in &fragments[1..] {
            let ip = ipv4::Packet::new_checked(&later[14..]).expect("ipv4");
            assert_eq!(ip.options(), &[0x94, 4, 0xaa, 0xbb]);
        }
        check_fragments(&with_options, 14, 576, &fragments);
        // A malformed option list stops the walk without panicking.
        assert_eq!(header_with_copied_options(&[0u8; 20]).len(), 20);
        let mut bad = [0u8; 24];
        bad[20..24].copy_from_slice(&[0x94, 9, 0, 0]);
        assert_eq!(header_with_copied_options(&bad).len(), 20);
        bad[20..24].copy_from_slice(&[0x94, 1, 0, 0]);
        assert_eq!(header_with_copied_options(&bad).len(), 20);
    }

    #[test]
    fn fragment_ipv4_errors() {
        let frame = VxlanFrameBuilder::new()
            .inner(&[0x42; 1000])
            .build()
            .expect("valid");
        assert_eq!(fragment_ipv4(&frame, 27), Err(BuildError::MtuTooSmall(27)));
        assert_eq!(fragment_ipv4(&frame, 0), Err(BuildError::MtuTooSmall(0)));
        assert_eq!(fragment_ipv4(&frame[..30], 576), Err(BuildError::NotIpv4));
        let v6 = VxlanFrameBuilder::new()
            .outer_src_ip(Ipv6Addr::LOCALHOST)
            .outer_dst_ip(Ipv6Addr::LOCALHOST)
            .inner(&[0; 14])
            .build()
            .expect("valid");
        assert_eq!(fragment_ipv4(&v6, 576), Err(BuildError::NotIpv4));
        assert_eq!(fragment_ipv4(&[], 576), Err(BuildError::NotIpv4));
    }

    #[test]
    fn inner_frame_is_valid() {
        let spec = InnerIpv4Udp {
            payload_len: 5,
            payload_seed: 0xfe,
            ..Default::default()
        };
        let frame = inner_ipv4_udp_frame(&spec).expect("small");
        assert_eq!(frame.len(), 14 + 20 + 8 + 5);
        let eth = ethernet::Frame::new_checked(&*frame).expect("eth");
        assert_eq!(eth.dst_addr(), spec.dst_mac);
        assert_eq!(eth.src_addr(), spec.src_mac);
        assert_eq!(eth.ethertype(), EtherType::IPV4);
        let ip = ipv4::Packet::new_checked(eth.payload()).expect("ipv4");
        assert!(ip.verify_checksum());
        assert!(ip.dont_frag());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (spec.src_ip, spec.dst_ip));
        let udp = udp::Packet::new_checked(ip.payload()).expect("udp");
        assert_eq!((udp.src_port(), udp.dst_port()), (40000, 5000));
        assert_ne!(udp.checksum(), 0);
        assert!(udp.verify_checksum(IpAddr::V4(spec.src_ip), IpAddr::V4(spec.dst_ip)));
        assert_eq!(udp.payload(), &[0xfe, 0xff, 0x00, 0x01, 0x02]);

        let default = inner_ipv4_udp_frame(&InnerIpv4Udp::default()).expect("small");
        assert_eq!(default.len(), 60);
    }
}
