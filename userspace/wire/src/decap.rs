//! The decapsulate step: outer frame in, inner Ethernet frame (a sub-slice, no copy) out.
//!
//! The accepted stack is
//!
//! ```text
//! Ethernet ─ [VLAN tag ×0..=2] ─ IPv4 (any IHL) | IPv6 [+ HBH/Routing/DestOpts ×0..=4]
//!          ─ UDP (destination port in the PortSet) ─ VXLAN (I flag set) ─ inner Ethernet
//! ```
//!
//!
//! or, to a GENEVE port of the [`PortSet`] (RFC 8926, 6081 by default),
//!
//! ```text
//!          ─ UDP ─ GENEVE (version 0, options within Opt Len) ─ inner Ethernet (0x6558)
//!                                                             | bare IPv4 / IPv6 (0x0800, 0x86DD)
//!                                                               [─ UDP to a tunnel port ─ …]
//! ```
//!
//! A bare IP payload is returned as the IP packet ([`Decapsulated::bare_ip`]); outputs write
//! it behind [`synthetic_ethernet`] (zero MACs, its EtherType). When it is itself IPv4/IPv6 and
//! UDP to a VXLAN or GENEVE port, that tunnel is peeled too (AWS Traffic Mirroring's VXLAN
//! inside a Gateway Load Balancer's GENEVE), up to [`PortSet::max_depth`] tunnels
//! ([`Reject::TunnelTooDeep`] past it); a payload that does not decapsulate is the packet
//! itself. A VXLAN payload is never peeled further: it is the mirrored frame, whatever it
//! carries. GENEVE options are walked for the AWS ones (read at fixed offsets when they are
//! exactly AWS's three, in AWS's order: [`geneve::AwsGwlb::read`]); the critical bit is
//! reported in [`GeneveLayer`] (to be counted), not obeyed, since a capture tool is not the
//! endpoint.
//!
//! Anything else is refused with one [`Reject`] reason, cheap to count per worker. The outer IPv4
//! header checksum and the outer UDP checksum are not verified: the NIC or kernel has done the
//! former, and cloud mirrors send the latter as 0. Outer IP fragments are refused
//! ([`Reject::OuterFragment`]): reassembly keeps state, so it is a separate step
//! ([`crate::reassembly`]) whose whole frames come back here.
//!
//! Mirrors may cut the inner frame short (AWS truncates to the session's packet length);
//! [`Decapsulated::inner_orig_len`] reads the inner IP length to recover how long it was.
//!
//! [`decapsulate`] reads through checked views only, so it never panics, allocates or copies,
//! whatever the input bytes.

use core::fmt;
use std::net::IpAddr;

use crate::ethernet::{self, EtherType};
use crate::ip::IpProtocol;
use crate::{geneve, ipv4, ipv6, udp, vlan, vxlan};

/// The IANA-assigned VXLAN UDP port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;
/// The VXLAN-GPE UDP port: a different header and payload, so never accepted in a [`PortSet`].
pub const VXLAN_GPE_PORT: u16 = 4790;
/// Most UDP ports a [`PortSet`] holds.
pub const MAX_PORTS: usize = 8;
/// The IANA GENEVE UDP port (RFC 8926).
pub const GENEVE_PORT: u16 = geneve::GENEVE_PORT;
/// Tunnel headers [`decapsulate`] peels from one frame unless told otherwise: two, for AWS
/// Traffic Mirroring's VXLAN inside a Gateway Load Balancer's GENEVE.
pub const DEFAULT_MAX_DEPTH: u8 = 2;
/// Most tunnel headers [`PortSet::with_max_depth`] allows.
pub const MAX_DEPTH: u8 = 4;
/// Most outer VLAN tags [`decapsulate`] walks (802.1Q, or QinQ).
pub const MAX_VLAN_TAGS: usize = 2;
/// Most IPv6 Hop-by-Hop / Routing / Destination Options headers [`decapsulate`] walks before
/// giving up with [`Reject::Ipv6ExtensionUnsupported`].
pub const MAX_IPV6_EXT_HEADERS: usize = 4;

/// The UDP destination ports that carry VXLAN: 1 to [`MAX_PORTS`] distinct, non-zero ports,
/// kept in a fixed array (no heap), in the order given; and those that carry GENEVE (0 to
/// [`MAX_PORTS`], [`GENEVE_PORT`] unless told otherwise), with the most tunnels
/// [`decapsulate`] peels from one frame ([`DEFAULT_MAX_DEPTH`] unless told otherwise).
///
/// Two sets are equal when they hold the same ports in the same order.
///
/// ```
/// use vxdecap_wire::{PortSet, PortSetError};
/// let ports = PortSet::new(&[4789, 8472]).expect("two valid ports");
/// assert!(ports.contains(8472));
/// assert_eq!(PortSet::default().as_slice(), &[4789]);
/// assert_eq!(PortSet::default().geneve(), &[6081]);
/// assert_eq!(PortSet::new(&[4790]), Err(PortSetError::VxlanGpe));
/// let ports = ports.with_geneve(&[6081, 6082]).expect("two GENEVE ports");
/// assert!(ports.contains_geneve(6082) && !ports.contains(6082));
/// assert_eq!(ports.with_geneve(&[4789]), Err(PortSetError::Both(4789)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSet {
    /// Ports in `..len`; the rest stay 0 so derived equality only sees the ports.
    ports: [u16; MAX_PORTS],
    /// Number of ports in use, 1..=MAX_PORTS.
    len: u8,
    /// GENEVE ports in `..geneve_len`, the rest 0.
    geneve: [u16; MAX_PORTS],
    /// Number of GENEVE ports in use, 0..=MAX_PORTS.
    geneve_len: u8,
    /// Most tunnel headers peeled from one frame, 1..=[`MAX_DEPTH`].
    max_depth: u8,
}

impl PortSet {
    /// Builds a set from a list of ports, refusing an empty list, more than [`MAX_PORTS`],
    /// port 0, a repeated port and the VXLAN-GPE port 4790.
    pub fn new(ports: &[u16]) -> Result<Self, PortSetError> {
        if ports.is_empty() {
            return Err(PortSetError::Empty);
        }
        if ports.len() > MAX_PORTS {
            return Err(PortSetError::TooMany(ports.len()));
        }
        for (i, &port) in ports.iter().enumerate() {
            if port == 0 {
                return Err(PortSetError::Zero);
            }
            if port == VXLAN_GPE_PORT {
                return Err(PortSetError::VxlanGpe);
            }
            if ports[..i].contains(&port) {
                return Err(PortSetError::Duplicate(port));
            }
        }
        let mut set = Self {
            ports: [0; MAX_PORTS],
            // `ports.len() <= MAX_PORTS` (8), checked above, so this fits a u8.
            len: ports.len() as u8,
            geneve: [0; MAX_PORTS],
            geneve_len: 0,
            max_depth: DEFAULT_MAX_DEPTH,
        };
        set.ports[..ports.len()].copy_from_slice(ports);
        // GENEVE on its IANA port unless the VXLAN ports took it.
        if !ports.contains(&GENEVE_PORT) {
            set.geneve[0] = GENEVE_PORT;
            set.geneve_len = 1;
        }
        Ok(set)
    }

    /// The same VXLAN ports with `geneve` as the GENEVE ports (none: GENEVE is not decoded),
    /// refusing more than [`MAX_PORTS`], port 0, a repeated port, a VXLAN port and 4790.
    pub fn with_geneve(self, geneve: &[u16]) -> Result<Self, PortSetError> {
        if geneve.len() > MAX_PORTS {
            return Err(PortSetError::TooMany(geneve.len()));
        }
        for (i, &port) in geneve.iter().enumerate() {
            if port == 0 {
                return Err(PortSetError::Zero);
            }
            if port == VXLAN_GPE_PORT {
                return Err(PortSetError::VxlanGpe);
            }
            if geneve[..i].contains(&port) {
                return Err(PortSetError::Duplicate(port));
            }
            if self.as_slice().contains(&port) {
                return Err(PortSetError::Both(port));
            }
        }
        let mut set = self;
        set.geneve = [0; MAX_PORTS];
        set.geneve[..geneve.len()].copy_from_slice(geneve);
        // At most MAX_PORTS (8), checked above.
        set.geneve_len = geneve.len() as u8;
        Ok(set)
    }

    /// The same ports, peeling at most `depth` tunnel headers from a frame (clamped to
    /// 1..=[`MAX_DEPTH`]); a frame with more is refused as [`Reject::TunnelTooDeep`].
    #[must_use]
    pub fn with_max_depth(mut self, depth: u8) -> Self {
        self.max_depth = depth.clamp(1, MAX_DEPTH);
        self
    }

    /// Most tunnel headers peeled from one frame.
    #[inline]
    pub fn max_depth(&self) -> u8 {
        self.max_depth
    }

    /// Every port, VXLAN's then GENEVE's.
    pub fn all(&self) -> impl Iterator<Item = u16> + '_ {
        self.as_slice().iter().chain(self.geneve()).copied()
    }

    /// Whether `port` is a GENEVE port.
    #[inline]
    pub fn contains_geneve(&self, port: u16) -> bool {
        self.geneve().contains(&port)
    }

    /// The GENEVE ports, in the order given (empty: GENEVE is not decoded).
    #[inline]
    pub fn geneve(&self) -> &[u16] {
        self.geneve
            .get(..usize::from(self.geneve_len))
            .unwrap_or(&self.geneve)
    }

    /// Whether `port` is in the set.
    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        // The first port (the only one, usually) without the loop.
        self.ports[0] == port
            || self
                .as_slice()
                .get(1..)
                .is_some_and(|more| more.contains(&port))
    }

    /// The ports, in the order given to [`PortSet::new`].
    #[inline]
    pub fn as_slice(&self) -> &[u16] {
        // `len <= MAX_PORTS` by construction; `get` keeps this panic-free regardless.
        self.ports
            .get(..usize::from(self.len))
            .unwrap_or(&self.ports)
    }
}

impl Default for PortSet {
    /// The IANA ports: VXLAN {4789}, GENEVE {6081}.
    fn default() -> Self {
        let mut ports = [0; MAX_PORTS];
        ports[0] = VXLAN_PORT;
        let mut geneve = [0; MAX_PORTS];
        geneve[0] = GENEVE_PORT;
        Self {
            ports,
            len: 1,
            geneve,
            geneve_len: 1,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl fmt::Display for PortSet {
    /// Comma-separated ports, e.g. `4789,8472`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, port) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{port}")?;
        }
        Ok(())
    }
}

/// Why a list of ports cannot become a [`PortSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortSetError {
    /// No port was given.
    Empty,
    /// More than [`MAX_PORTS`] ports were given (the count is attached).
    TooMany(usize),
    /// Port 0 was given.
    Zero,
    /// A port was given twice.
    Duplicate(u16),
    /// Port 4790 (VXLAN-GPE) was given; its header and payload differ from VXLAN.
    VxlanGpe,
    /// A port was given for both VXLAN and GENEVE.
    Both(u16),
}

impl fmt::Display for PortSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(
                f,
                "no VXLAN UDP port given: give at least one (the IANA VXLAN port is {VXLAN_PORT})"
            ),
            Self::TooMany(n) => write!(
                f,
                "{n} VXLAN UDP ports given but at most {MAX_PORTS} are supported: remove {}",
                n.saturating_sub(MAX_PORTS)
            ),
            Self::Zero => write!(
                f,
                "UDP port 0 cannot carry VXLAN: use the port the sender uses, usually {VXLAN_PORT}"
            ),
            Self::Duplicate(port) => {
                write!(
                    f,
                    "UDP port {port} is given more than once: list each port once"
                )
            }
            Self::VxlanGpe => write!(
                f,
                "UDP port {VXLAN_GPE_PORT} is VXLAN-GPE, whose header and payload differ from \
                 VXLAN and are not decoded: remove it (the VXLAN port is {VXLAN_PORT})"
            ),
            Self::Both(port) => write!(
                f,
                "UDP port {port} is given for both VXLAN and GENEVE: give it to one (GENEVE's \
                 port is usually {GENEVE_PORT}, VXLAN's {VXLAN_PORT})"
            ),
        }
    }
}

impl std::error::Error for PortSetError {}

/// Why a frame was not decapsulated: one variant per reason, in the order the stack is walked.
///
/// `#[repr(u8)]` with [`Reject::index`] in `0..Reject::COUNT`, so per-worker counters can be a
/// plain `[u64; Reject::COUNT]`, named by [`Reject::name`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reject {
    /// Frame shorter than the 14-byte Ethernet header.
    TruncatedEthernet,
    /// Frame shorter than its capture link-layer header (Linux cooked SLL/SLL2, NULL/LOOP):
    /// offline only, see [`crate::link`].
    TruncatedLinkHeader,
    /// An outer VLAN TPID not followed by the 4 bytes of its tag.
    TruncatedVlan,
    /// More than [`MAX_VLAN_TAGS`] (two) outer VLAN tags.
    TooManyVlanTags,
    /// Outer EtherType (or a capture's address family) neither IPv4 nor IPv6 (e.g. ARP).
    NotIp,
    /// Outer IPv4 header truncated, with a bad version or IHL, or a total length that is shorter
    /// than the header or longer than the frame.
    MalformedIpv4,
    /// Outer IP fragment: IPv4 with MF set or a non-zero offset, or an IPv6 Fragment header.
    OuterFragment,
    /// Outer IPv6 header truncated, with a bad version, a payload length longer than the frame,
    /// or a truncated extension header.
    MalformedIpv6,
    /// Outer IPv6 extension headers not walked: more than [`MAX_IPV6_EXT_HEADERS`] of them, or a
    /// kind other than Hop-by-Hop, Routing and Destination Options (ESP, AH, Mobility, HIP,
    /// Shim6, experimental).
    Ipv6ExtensionUnsupported,
    /// Outer IP payload is not UDP.
    NotUdp,
    /// Outer UDP header truncated, or its length below 8 or past the IP payload.
    MalformedUdp,
    /// Outer UDP destination port not in the configured [`PortSet`].
    PortNotConfigured,
    /// UDP payload shorter than the 8-byte VXLAN header.
    TruncatedVxlan,
    /// VXLAN I flag (0x08) clear: the VNI is not valid, so RFC 7348 says drop.
    VxlanIFlagClear,
    /// Inner frame shorter than a 14-byte Ethernet header (or, for a GENEVE payload of bare
    /// IP, than the IPv4 or IPv6 header).
    InnerRunt,
    /// UDP payload to a GENEVE port shorter than the 8-byte GENEVE header.
    TruncatedGeneve,
    /// GENEVE version other than 0 (RFC 8926: a packet of an unknown version is dropped).
    GeneveVersion,
    /// GENEVE `Opt Len` runs past the UDP payload.
    GeneveOptionsTruncated,
    /// GENEVE protocol type other than Ethernet (0x6558), IPv4 and IPv6.
    GeneveProtocolUnsupported,
    /// More tunnel headers nested than [`PortSet::max_depth`] allows peeling.
    TunnelTooDeep,
}

impl Reject {
    /// Every reason, in declaration order (`Reject::ALL[r.index()] == r`).
    pub const ALL: [Self; 20] = [
        Self::TruncatedEthernet,
        Self::TruncatedLinkHeader,
        Self::TruncatedVlan,
        Self::TooManyVlanTags,
        Self::NotIp,
        Self::MalformedIpv4,
        Self::OuterFragment,
        Self::MalformedIpv6,
        Self::Ipv6ExtensionUnsupported,
        Self::NotUdp,
        Self::MalformedUdp,
        Self::PortNotConfigured,
        Self::TruncatedVxlan,
        Self::VxlanIFlagClear,
        Self::InnerRunt,
        Self::TruncatedGeneve,
        Self::GeneveVersion,
        Self::GeneveOptionsTruncated,
        Self::GeneveProtocolUnsupported,
        Self::TunnelTooDeep,
    ];

    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Position in [`Reject::ALL`], for indexing a counter array.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Stable snake_case counter name (e.g. `port_not_configured`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::TruncatedEthernet => "truncated_ethernet",
            Self::TruncatedLinkHeader => "truncated_link_header",
            Self::TruncatedVlan => "truncated_vlan",
            Self::TooManyVlanTags => "too_many_vlan_tags",
            Self::NotIp => "not_ip",
            Self::MalformedIpv4 => "malformed_ipv4",
            Self::OuterFragment => "outer_fragment",
            Self::MalformedIpv6 => "malformed_ipv6",
            Self::Ipv6ExtensionUnsupported => "ipv6_extension_unsupported",
            Self::NotUdp => "not_udp",
            Self::MalformedUdp => "malformed_udp",
            Self::PortNotConfigured => "port_not_configured",
            Self::TruncatedVxlan => "truncated_vxlan",
            Self::VxlanIFlagClear => "vxlan_i_flag_clear",
            Self::InnerRunt => "inner_runt",
            Self::TruncatedGeneve => "truncated_geneve",
            Self::GeneveVersion => "geneve_version",
            Self::GeneveOptionsTruncated => "geneve_options_truncated",
            Self::GeneveProtocolUnsupported => "geneve_protocol_unsupported",
            Self::TunnelTooDeep => "tunnel_too_deep",
        }
    }

    /// Short human phrase, as used by `Display`.
    pub const fn description(self) -> &'static str {
        match self {
            Self::TruncatedEthernet => "frame shorter than an Ethernet header",
            Self::TruncatedLinkHeader => "frame shorter than its link-layer header",
            Self::TruncatedVlan => "outer VLAN tag cut short",
            Self::TooManyVlanTags => "more than two outer VLAN tags",
            Self::NotIp => "outer EtherType is neither IPv4 nor IPv6",
            Self::MalformedIpv4 => "malformed outer IPv4 header",
            Self::OuterFragment => "outer IP fragment (not reassembled)",
            Self::MalformedIpv6 => "malformed outer IPv6 header",
            Self::Ipv6ExtensionUnsupported => "unsupported outer IPv6 extension headers",
            Self::NotUdp => "outer IP payload is not UDP",
            Self::MalformedUdp => "malformed outer UDP header",
            Self::PortNotConfigured => "UDP destination port not configured for VXLAN",
            Self::TruncatedVxlan => "UDP payload shorter than a VXLAN header",
            Self::VxlanIFlagClear => "VXLAN I flag clear",
            Self::InnerRunt => "inner frame shorter than an Ethernet header",
            Self::TruncatedGeneve => "UDP payload shorter than a GENEVE header",
            Self::GeneveVersion => "GENEVE version is not 0",
            Self::GeneveOptionsTruncated => "GENEVE options run past the packet",
            Self::GeneveProtocolUnsupported => "GENEVE protocol is not Ethernet, IPv4 or IPv6",
            Self::TunnelTooDeep => "more tunnels nested than the depth limit",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for Reject {}

/// The tunnel header that carried a decapsulated frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// VXLAN (RFC 7348).
    #[default]
    Vxlan,
    /// GENEVE (RFC 8926).
    Geneve,
}

impl Tunnel {
    /// Lower-case name, as in metrics labels and pcapng comments.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::Geneve => "geneve",
        }
    }
}

/// What a GENEVE header said, kept with a frame decapsulated through it.
///
/// 32 bytes and `Copy` (an `Option` of it too): it travels with every frame's metadata, so the
/// flags and the AWS options are packed and read through methods; the options come back
/// typed from [`GeneveLayer::gwlb`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GeneveLayer {
    /// Virtual network identifier (24 bits).
    pub vni: u32,
    /// Protocol type of its payload (0x6558, 0x0800 or 0x86DD).
    pub protocol: u16,
    /// UDP destination port it arrived on.
    pub dst_port: u16,
    flow_cookie: u32,
    /// `LAYER_*` bits.
    flags: u8,
    carried: Carried,
    endpoint_id: u64,
    attachment_id: u64,
}

const LAYER_OAM: u8 = 1;
const LAYER_CRITICAL: u8 = 1 << 1;
const LAYER_OPTIONS_MALFORMED: u8 = 1 << 2;
const LAYER_ENDPOINT: u8 = 1 << 3;
const LAYER_ATTACHMENT: u8 = 1 << 4;
const LAYER_COOKIE: u8 = 1 << 5;

/// What a GENEVE payload turned out to be: the frame delivered (Ethernet or bare IP), or a
/// further tunnel and what that one delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
enum Carried {
    #[default]
    Ethernet,
    Ipv4,
    Ipv6,
    Vxlan,
    GeneveEthernet,
    GeneveIpv4,
    GeneveIpv6,
}

impl GeneveLayer {
    /// A layer with no flags, no options and an Ethernet payload (tests, and frames built by
    /// hand); see [`GeneveLayer::with_gwlb`].
    pub fn new(vni: u32, protocol: u16, dst_port: u16) -> Self {
        Self {
            vni,
            protocol,
            dst_port,
            ..Self::default()
        }
    }

    /// The same layer with `gwlb`'s options.
    #[must_use]
    pub fn with_gwlb(mut self, gwlb: geneve::AwsGwlb) -> Self {
        self.flags &= !(LAYER_ENDPOINT | LAYER_ATTACHMENT | LAYER_COOKIE);
        if let Some(id) = gwlb.endpoint_id {
            self.flags |= LAYER_ENDPOINT;
            self.endpoint_id = id;
        }
        if let Some(id) = gwlb.attachment_id {
            self.flags |= LAYER_ATTACHMENT;
            self.attachment_id = id;
        }
        if let Some(cookie) = gwlb.flow_cookie {
            self.flags |= LAYER_COOKIE;
            self.flow_cookie = cookie;
        }
        self
    }

    /// The O bit: an OAM (control) packet.
    #[inline]
    pub fn oam(&self) -> bool {
        self.flags & LAYER_OAM != 0
    }

    /// The C bit: a critical option is present. Counted, not obeyed: a capture tool is not
    /// the tunnel endpoint the bit addresses.
    #[inline]
    pub fn critical(&self) -> bool {
        self.flags & LAYER_CRITICAL != 0
    }

    /// An option ran past `Opt Len`; the options after it were not read (the payload still
    /// starts where `Opt Len` says).
    #[inline]
    pub fn options_malformed(&self) -> bool {
        self.flags & LAYER_OPTIONS_MALFORMED != 0
    }

    /// The AWS Gateway Load Balancer options (class 0x0108) that were present.
    #[inline]
    pub fn gwlb(&self) -> geneve::AwsGwlb {
        geneve::AwsGwlb {
            endpoint_id: (self.flags & LAYER_ENDPOINT != 0).then_some(self.endpoint_id),
            attachment_id: (self.flags & LAYER_ATTACHMENT != 0).then_some(self.attachment_id),
            flow_cookie: (self.flags & LAYER_COOKIE != 0).then_some(self.flow_cookie),
        }
    }

    /// The AWS Gateway Load Balancer endpoint id, when the option was present.
    #[inline]
    pub fn gwlb_endpoint_id(&self) -> Option<u64> {
        (self.flags & LAYER_ENDPOINT != 0).then_some(self.endpoint_id)
    }

    /// The tunnel peeled inside this one's payload, if any: VXLAN for AWS Traffic Mirroring
    /// into a Gateway Load Balancer endpoint.
    #[inline]
    pub fn inner_tunnel(&self) -> Option<Tunnel> {
        match self.carried {
            Carried::Ethernet | Carried::Ipv4 | Carried::Ipv6 => None,
            Carried::Vxlan => Some(Tunnel::Vxlan),
            Carried::GeneveEthernet | Carried::GeneveIpv4 | Carried::GeneveIpv6 => {
                Some(Tunnel::Geneve)
            }
        }
    }

    /// `Some(EtherType)` when the frame delivered is a bare IPv4 or IPv6 packet (a GENEVE
    /// payload without Ethernet): see [`Decapsulated::bare_ip`].
    #[inline]
    pub fn bare_ip(&self) -> Option<u16> {
        match self.carried {
            Carried::Ipv4 | Carried::GeneveIpv4 => Some(EtherType::IPV4),
            Carried::Ipv6 | Carried::GeneveIpv6 => Some(EtherType::IPV6),
            _ => None,
        }
    }

    /// Sets the header's O and C bits, and whether its options were malformed.
    #[inline(always)]
    fn set_flags(&mut self, oam: bool, critical: bool, options_malformed: bool) {
        self.flags |= (u8::from(oam) * LAYER_OAM)
            | (u8::from(critical) * LAYER_CRITICAL)
            | (u8::from(options_malformed) * LAYER_OPTIONS_MALFORMED);
    }

    /// Records what the payload carried: bare IP of `bare_ip`'s EtherType or Ethernet, inside
    /// `inner` (a tunnel peeled in the payload) or directly.
    fn set_carried(&mut self, inner: Option<Tunnel>, bare_ip: Option<u16>) {
        self.carried = match (inner, bare_ip) {
            (None, None) => Carried::Ethernet,
            (None, Some(EtherType::IPV4)) => Carried::Ipv4,
            (None, Some(_)) => Carried::Ipv6,
            (Some(Tunnel::Vxlan), _) => Carried::Vxlan,
            (Some(Tunnel::Geneve), None) => Carried::GeneveEthernet,
            (Some(Tunnel::Geneve), Some(EtherType::IPV4)) => Carried::GeneveIpv4,
            (Some(Tunnel::Geneve), Some(_)) => Carried::GeneveIpv6,
        };
    }
}

/// A decapsulated frame: the inner Ethernet frame and what the outer headers said about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// The inner Ethernet frame: a sub-slice of the input, bounded by the outer UDP length (so
    /// Ethernet padding of the outer frame is never part of it). At least 14 bytes. For a
    /// GENEVE payload of bare IP ([`Decapsulated::bare_ip`]), the IP packet, to be written
    /// behind [`synthetic_ethernet`].
    pub inner: &'a [u8],
    /// Where `inner` starts in the input: `frame[inner_offset..][..inner.len()] == inner`.
    pub inner_offset: usize,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// The VXLAN flags byte as received (0x08 set; other bits are ignored but kept here).
    pub vxlan_flags: u8,
    /// Outer source IP address.
    pub outer_src: IpAddr,
    /// Outer destination IP address.
    pub outer_dst: IpAddr,
    /// Outer UDP source port (senders derive it from a hash of the inner flow).
    pub outer_src_port: u16,
    /// Outer UDP destination port (one of the configured ports).
    pub outer_dst_port: u16,
    /// Outer VLAN IDs, outermost first; 0 for absent tags.
    pub outer_vlans: [u16; 2],
    /// Number of outer VLAN tags (0..=2).
    pub outer_vlan_count: u8,
    /// The outermost GENEVE header peeled, when one was: alone ([`Decapsulated::tunnel`] is
    /// GENEVE, with the same VNI), around a VXLAN tunnel (`tunnel()` is VXLAN; AWS Traffic
    /// Mirroring into a Gateway Load Balancer endpoint), or around another GENEVE (whose VNI
    /// is `vni`). `None` for VXLAN alone: one field, so plain VXLAN's result costs one store
    /// more than before GENEVE, not three.
    pub geneve: Option<GeneveLayer>,
}

/// Length of the Ethernet header written in front of a bare IP payload.
pub const SYNTHETIC_ETHERNET_LEN: usize = ethernet::HEADER_LEN;

/// The Ethernet header written in front of a GENEVE payload of bare IP: zero MAC addresses and
/// the payload's EtherType, so pcap, pcapng, the tap and the filters all see Ethernet.
///
/// ```
/// use vxdecap_wire::decap::synthetic_ethernet;
/// assert_eq!(synthetic_ethernet(0x0800)[12..], [0x08, 0x00]);
/// assert_eq!(synthetic_ethernet(0x86dd)[..12], [0; 12]);
/// ```
#[inline]
pub const fn synthetic_ethernet(ethertype: u16) -> [u8; SYNTHETIC_ETHERNET_LEN] {
    let mut header = [0u8; SYNTHETIC_ETHERNET_LEN];
    let [hi, lo] = ethertype.to_be_bytes();
    header[12] = hi;
    header[13] = lo;
    header
}

impl Decapsulated<'_> {
    /// The tunnel whose payload `inner` is (the innermost peeled); `vni` is its VNI.
    #[inline]
    pub fn tunnel(&self) -> Tunnel {
        match &self.geneve {
            None => Tunnel::Vxlan,
            Some(layer) => match layer.inner_tunnel() {
                Some(Tunnel::Vxlan) => Tunnel::Vxlan,
                _ => Tunnel::Geneve,
            },
        }
    }

    /// `Some(EtherType)` when `inner` is a bare IPv4 or IPv6 packet (a GENEVE payload without
    /// Ethernet, as AWS Gateway Load Balancer sends): outputs write it behind
    /// [`synthetic_ethernet`] so every output stays Ethernet.
    #[inline]
    pub fn bare_ip(&self) -> Option<u16> {
        // By reference: the layer is not copied for the common VXLAN frame.
        match &self.geneve {
            None => None,
            Some(layer) => layer.bare_ip(),
        }
    }

    /// Length of the frame as written: `inner`, plus the synthetic Ethernet header of a bare
    /// IP payload.
    #[inline]
    pub fn frame_len(&self) -> usize {
        match self.bare_ip() {
            None => self.inner.len(),
            Some(_) => SYNTHETIC_ETHERNET_LEN + self.inner.len(),
        }
    }

    /// Where the frame as written starts in the input: `inner_offset`, or the 14 bytes before a
    /// bare IP payload (the end of the GENEVE header, which [`synthetic_ethernet`] may
    /// overwrite in place: a UDP and a GENEVE header always precede it).
    #[inline]
    pub fn frame_offset(&self) -> usize {
        match self.bare_ip() {
            None => self.inner_offset,
            Some(_) => self.inner_offset - SYNTHETIC_ETHERNET_LEN,
        }
    }

    /// The VNI of the outermost tunnel: what the XDP program's VNI allowlist checked.
    #[inline]
    pub fn outer_vni(&self) -> u32 {
        self.geneve.map_or(self.vni, |g| g.vni)
    }

    /// The outer VLAN IDs that were present, outermost first.
    #[inline]
    pub fn outer_vlan_ids(&self) -> &[u16] {
        self.outer_vlans
            .get(..usize::from(self.outer_vlan_count))
            .unwrap_or(&self.outer_vlans)
    }

    /// Length of the inner frame (as written) before the mirror cut it: see
    /// [`inner_orig_len`]. Equal to [`Decapsulated::frame_len`] unless the inner IP header
    /// says the packet was longer.
    #[inline]
    pub fn inner_orig_len(&self) -> usize {
        match self.bare_ip() {
            None => inner_orig_len(self.inner),
            Some(ethertype) => {
                SYNTHETIC_ETHERNET_LEN
                    + ip_orig_len(ethertype, self.inner)
                        .map_or(self.inner.len(), |ip| ip.max(self.inner.len()))
            }
        }
    }

    /// Whether the mirror truncated the inner frame (AWS cuts mirrored packets to the session's
    /// packet length or the target's MTU): its IP header claims more bytes than it holds.
    #[inline]
    pub fn is_truncated(&self) -> bool {
        self.inner_orig_len() > self.frame_len()
    }
}

/// The original length of an inner Ethernet frame that a mirror may have truncated, for a
/// pcap record's `orig_len`.
///
/// When the frame carries IPv4 or IPv6 after at most two VLAN tags, and the IP header's length
/// field (IPv4 total length, or 40 + IPv6 payload length) reaches past the end of the frame, the
/// result is the Ethernet header and tags plus that IP length. Otherwise it is `inner.len()`:
/// untruncated frames, non-IP frames, and length fields too short to be meant (an IPv4 total
/// length below its header, as TSO leaves 0; a wrong version nibble; an IPv6 jumbogram's 0)
/// are taken as they are. Only the fixed bytes up to the length field need to be present. Never
/// panics.
///
/// ```
/// use vxdecap_wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp};
/// use vxdecap_wire::decap::inner_orig_len;
/// let inner = inner_ipv4_udp_frame(&InnerIpv4Udp { payload_len: 1000, ..Default::default() })
///     .expect("fits");
/// assert_eq!(inner.len(), 1042);
/// assert_eq!(inner_orig_len(&inner), 1042);
/// assert_eq!(inner_orig_len(&inner[..200]), 1042);
/// assert_eq!(inner_orig_len(&inner[..15]), 15, "cut inside the IPv4 length field");
/// ```
#[inline]
pub fn inner_orig_len(inner: &[u8]) -> usize {
    let Some((ethertype, l3_offset)) = vlan::skip_tags(inner, MAX_VLAN_TAGS) else {
        return inner.len();
    };
    let l3 = inner.get(l3_offset..).unwrap_or_default();
    match ip_orig_len(ethertype, l3) {
        Some(ip_len) => inner.len().max(l3_offset + ip_len),
        None => inner.len(),
    }
}

/// The length an IP packet's header claims (IPv4 total length, 40 + IPv6 payload length), when
/// `l3` starts with a plausible one of `ethertype`'s family; see [`inner_orig_len`].
#[inline]
fn ip_orig_len(ethertype: u16, l3: &[u8]) -> Option<usize> {
    match (ethertype, l3) {
        (EtherType::IPV4, [ver_ihl, _, len_hi, len_lo, ..]) if ver_ihl >> 4 == 4 => {
            let total_len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
            let header_len = usize::from(ver_ihl & 0x0f) * 4;
            if header_len < ipv4::MIN_HEADER_LEN || total_len < header_len {
                return None;
            }
            Some(total_len)
        }
        (EtherType::IPV6, [version, _, _, _, len_hi, len_lo, ..]) if version >> 4 == 6 => {
            match u16::from_be_bytes([*len_hi, *len_lo]) {
                0 => None,
                payload_len => Some(ipv6::HEADER_LEN + usize::from(payload_len)),
            }
        }
        _ => None,
    }
}

/// Outer IP layer result: addresses, the UDP bytes (bounded by the IP length) and their offset.
struct OuterIp<'a> {
    src: IpAddr,
    dst: IpAddr,
    l4: &'a [u8],
    l4_offset: usize,
}

/// Walks the outer stack of `frame` and returns the inner Ethernet frame it carries, or the
/// first reason it is not a VXLAN frame for `ports`. Never panics, allocates or copies.
///
/// Nearly every mirrored frame is untagged Ethernet, IPv4 without options, UDP and VXLAN: a
/// fast path checks exactly that shape in one pass over fixed offsets and answers what the
/// general walk would; anything else (and every reject) takes the general walk.
///
/// ```
/// use vxdecap_wire::{decapsulate, PortSet, Reject};
/// assert_eq!(decapsulate(&[0u8; 10], &PortSet::default()), Err(Reject::TruncatedEthernet));
/// ```
#[inline]
pub fn decapsulate<'a>(frame: &'a [u8], ports: &PortSet) -> Result<Decapsulated<'a>, Reject> {
    // The shape is checked first and the result built straight into `Ok`: building it into
    // an `Option` first would move it (104 bytes) once more per frame.
    match plain_ipv4_vxlan_shape::<{ ethernet::HEADER_LEN }>(frame, ports) {
        Some(plain) => Ok(plain.decapsulated::<{ ethernet::HEADER_LEN }>()),
        // GENEVE's outer fast path is tried there, out of VXLAN's way.
        None => decapsulate_not_plain(frame, ports),
    }
}

/// [`decapsulate`] past its VXLAN fast path: GENEVE's outer fast path, else the general walk.
fn decapsulate_not_plain<'a>(frame: &'a [u8], ports: &PortSet) -> Result<Decapsulated<'a>, Reject> {
    // Both arms return straight into the caller's result: no move of it per frame.
    match plain_ipv4_geneve(frame, ports) {
        Some((ip, udp)) => {
            if let Some(mirrored) = aws_mirror(&ip, &udp, ports) {
                return Ok(mirrored);
            }
            geneve_behind_plain_ipv4(frame, ip, udp, ports)
        }
        None => decapsulate_general(frame, ports),
    }
}

/// [`decapsulate_geneve`] behind [`plain_ipv4_geneve`]'s outer layers: out of line, so that
/// AWS's frames do not store those layers for it.
#[inline(never)]
fn geneve_behind_plain_ipv4<'a>(
    frame: &'a [u8],
    ip: OuterIp<'a>,
    udp: udp::Packet<&'a [u8]>,
    ports: &PortSet,
) -> Result<Decapsulated<'a>, Reject> {
    let outer = Outer {
        ip: &ip,
        udp: &udp,
        vlans: [0; MAX_VLAN_TAGS],
        vlan_count: 0,
    };
    // Depth 1 is within every limit (`max_depth` is at least 1).
    decapsulate_geneve(frame, &outer, ports, 1)
}

/// The outer fast path of GENEVE (AWS Gateway Load Balancer's, around Traffic Mirroring's
/// VXLAN): untagged Ethernet, IPv4 without options and not a fragment, UDP to a GENEVE port,
/// lengths as the general walk accepts them, checked at fixed offsets: its outer IP and UDP
/// layers, for the GENEVE header to be read as the general walk reads it. `None` for anything
/// else, which the general walk decides.
#[inline(always)]
fn plain_ipv4_geneve<'a>(
    frame: &'a [u8],
    ports: &PortSet,
) -> Option<(OuterIp<'a>, udp::Packet<&'a [u8]>)> {
    const IP: usize = ethernet::HEADER_LEN;
    const UDP: usize = IP + ipv4::MIN_HEADER_LEN;
    let h = frame.get(..UDP + udp::HEADER_LEN)?;
    let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    let dst_port = be16(UDP + 2);
    if be16(12) != 0x0800
        || h[IP] != 0x45
        || h[IP + 9] != IpProtocol::UDP
        || be16(IP + 6) & 0x3fff != 0
        || !nested_fast_path()
        || ports.contains(dst_port)
        || !ports.contains_geneve(dst_port)
    {
        return None;
    }
    let ip_len = usize::from(be16(IP + 2));
    let udp_len = usize::from(be16(UDP + 4));
    // The general walk's checks: IP total ≤ frame, the UDP header within it, the UDP length
    // at least its header and within the IP payload.
    if ip_len > frame.len() - IP
        || ip_len < ipv4::MIN_HEADER_LEN + udp::HEADER_LEN
        || udp_len < udp::HEADER_LEN
        || udp_len > ip_len - ipv4::MIN_HEADER_LEN
    {
        return None;
    }
    let ip = OuterIp {
        src: IpAddr::V4([h[IP + 12], h[IP + 13], h[IP + 14], h[IP + 15]].into()),
        dst: IpAddr::V4([h[IP + 16], h[IP + 17], h[IP + 18], h[IP + 19]].into()),
        l4: frame.get(UDP..IP + ip_len)?,
        l4_offset: UDP,
    };
    let udp = udp::Packet::new_checked(ip.l4).ok()?;
    Some((ip, udp))
}

/// GENEVE(VXLAN) exactly as AWS Traffic Mirroring through a Gateway Load Balancer endpoint
/// sends it, read at fixed offsets behind [`plain_ipv4_geneve`]'s outer layers: a GENEVE
/// header of version 0 with the three AWS options in AWS's order ([`geneve::AwsGwlb::read`]'s
/// fast path) around bare IPv4 of [`plain_ipv4_vxlan`]'s shape, within a depth limit of at
/// least 2. `Some` with exactly what [`decapsulate_geneve`] answers; `None` for anything
/// else, which it decides.
#[inline(always)]
fn aws_mirror<'a>(
    ip: &OuterIp<'a>,
    udp: &udp::Packet<&'a [u8]>,
    ports: &PortSet,
) -> Option<Decapsulated<'a>> {
    const OPTIONS: usize = 32;
    const PAYLOAD: usize = geneve::HEADER_LEN + OPTIONS;
    let tunnel = udp.payload();
    let header = geneve::Header::new_unchecked(tunnel.get(..PAYLOAD)?);
    // Version 0 and `Opt Len` 8 words in one byte.
    if tunnel[0] != (OPTIONS / 4) as u8
        || header.protocol() != geneve::protocol::IPV4
        || ports.max_depth < 2
    {
        return None;
    }
    let gwlb = geneve::AwsGwlb::in_aws_order(&tunnel[geneve::HEADER_LEN..PAYLOAD])?;
    let nested = plain_ipv4_vxlan_shape::<0>(&tunnel[PAYLOAD..], ports)?;
    // The UDP ports from the bytes the outer fast path checked (as `udp`'s accessors read
    // them, without their bounds checks).
    let [sp0, sp1, dp0, dp1, ..] = *ip.l4 else {
        return None;
    };
    let (src_port, dst_port) = (
        u16::from_be_bytes([sp0, sp1]),
        u16::from_be_bytes([dp0, dp1]),
    );
    let mut layer =
        GeneveLayer::new(header.vni(), geneve::protocol::IPV4, dst_port).with_gwlb(gwlb);
    layer.set_flags(header.oam(), header.critical(), false);
    layer.carried = Carried::Vxlan;
    let nested = nested.decapsulated::<0>();
    Some(Decapsulated {
        inner_offset: ip.l4_offset + udp::HEADER_LEN + PAYLOAD + nested.inner_offset,
        outer_src: ip.src,
        outer_dst: ip.dst,
        outer_src_port: src_port,
        outer_dst_port: dst_port,
        geneve: Some(layer),
        ..nested
    })
}

/// The fast path of [`decapsulate`]: `Some` only for an untagged IPv4 (IHL 5, not a fragment)
/// UDP frame to a port of `ports` whose VXLAN header has the I flag and whose lengths hold a
/// whole inner Ethernet header, with exactly the result the general walk gives it; `None`
/// for anything else, which the general walk then decides.
#[cfg(test)]
fn decapsulate_plain_ipv4<'a>(frame: &'a [u8], ports: &PortSet) -> Option<Decapsulated<'a>> {
    plain_ipv4_vxlan::<{ ethernet::HEADER_LEN }>(frame, ports)
}

/// The fast path's shape with the IPv4 header at `IP`: behind an untagged Ethernet header
/// (`IP` 14, [`decapsulate`]'s fast path), or at the start of `l3` (`IP` 0: the bare IPv4
/// payload of a GENEVE header, AWS Traffic Mirroring's VXLAN inside a Gateway Load Balancer's
/// GENEVE). Offsets in the result are relative to the slice given.
#[inline(always)]
fn plain_ipv4_vxlan<'a, const IP: usize>(
    frame: &'a [u8],
    ports: &PortSet,
) -> Option<Decapsulated<'a>> {
    plain_ipv4_vxlan_shape::<IP>(frame, ports).map(PlainVxlan::decapsulated::<IP>)
}

/// A frame of the fast path's shape, checked: its headers (IPv4 at `IP` to the end of VXLAN)
/// and the inner frame.
#[derive(Clone, Copy)]
struct PlainVxlan<'a> {
    headers: &'a [u8],
    inner: &'a [u8],
}

/// The checks of [`plain_ipv4_vxlan`]: `Some` when `frame` has its shape.
#[inline(always)]
fn plain_ipv4_vxlan_shape<'a, const IP: usize>(
    frame: &'a [u8],
    ports: &PortSet,
) -> Option<PlainVxlan<'a>> {
    let udp_at: usize = IP + ipv4::MIN_HEADER_LEN;
    let vxlan_at: usize = udp_at + udp::HEADER_LEN;
    let headers: usize = vxlan_at + vxlan::HEADER_LEN;
    let h = frame.get(..headers)?;
    let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
    // EtherType IPv4 (behind Ethernet); version 4 with IHL 5; UDP; neither MF nor a fragment
    // offset (DF and the reserved bit do not matter, as in `Packet::is_fragment`); the I flag.
    // The port before the lengths: GENEVE(VXLAN) frames leave here.
    if (IP == ethernet::HEADER_LEN && be16(12) != 0x0800)
        || h[IP] != 0x45
        || h[IP + 9] != IpProtocol::UDP
        || be16(IP + 6) & 0x3fff != 0
        || h[vxlan_at] & vxlan::FLAG_I == 0
        || !ports.contains(be16(udp_at + 2))
    {
        return None;
    }
    let ip_len = usize::from(be16(IP + 2));
    let udp_len = usize::from(be16(udp_at + 4));
    // The general walk's length checks: IP total ≤ frame, UDP length ≤ IP payload, and an
    // inner Ethernet header inside the UDP length (smaller lengths are its rejects). The
    // last two make the IP total at least its header, so nothing here can wrap.
    let min_udp = udp::HEADER_LEN + vxlan::HEADER_LEN + ethernet::HEADER_LEN;
    if ip_len > frame.len() - IP || udp_len < min_udp || udp_len + ipv4::MIN_HEADER_LEN > ip_len {
        return None;
    }
    Some(PlainVxlan {
        headers: h,
        inner: frame.get(headers..udp_at + udp_len)?,
    })
}

impl<'a> PlainVxlan<'a> {
    /// The result of a frame [`plain_ipv4_vxlan_shape`] accepted with the same `IP`.
    #[inline(always)]
    fn decapsulated<const IP: usize>(self) -> Decapsulated<'a> {
        let udp_at: usize = IP + ipv4::MIN_HEADER_LEN;
        let vxlan_at: usize = udp_at + udp::HEADER_LEN;
        let headers: usize = vxlan_at + vxlan::HEADER_LEN;
        let h = self.headers;
        let be16 = |at: usize| u16::from_be_bytes([h[at], h[at + 1]]);
        Decapsulated {
            inner: self.inner,
            inner_offset: headers,
            // The VNI and the reserved byte after it, as one word.
            vni: u32::from_be_bytes([
                h[vxlan_at + 4],
                h[vxlan_at + 5],
                h[vxlan_at + 6],
                h[vxlan_at + 7],
            ]) >> 8,
            vxlan_flags: h[vxlan_at],
            outer_src: IpAddr::V4([h[IP + 12], h[IP + 13], h[IP + 14], h[IP + 15]].into()),
            outer_dst: IpAddr::V4([h[IP + 16], h[IP + 17], h[IP + 18], h[IP + 19]].into()),
            outer_src_port: be16(udp_at),
            outer_dst_port: be16(udp_at + 2),
            outer_vlans: [0; MAX_VLAN_TAGS],
            outer_vlan_count: 0,
            geneve: None,
        }
    }
}

/// The general walk of [`decapsulate`]: any VLAN stack, IPv4 with options, IPv6 with extension
/// headers, and the first reason for every reject.
fn decapsulate_general<'a>(frame: &'a [u8], ports: &PortSet) -> Result<Decapsulated<'a>, Reject> {
    let eth = ethernet::Frame::new_checked(frame).map_err(|_| Reject::TruncatedEthernet)?;
    decapsulate_from_l3(frame, eth.ethertype(), ethernet::HEADER_LEN, ports)
}

/// The stack from the EtherType on: `frame[l3_offset..]` is what `ethertype` announces (VLAN
/// tags, IPv4 or IPv6). The link-layer entry points ([`decapsulate`],
/// [`crate::link::decapsulate_link`]) find both; offsets stay relative to `frame`.
#[inline]
pub(crate) fn decapsulate_from_l3<'a>(
    frame: &'a [u8],
    ethertype: u16,
    l3_offset: usize,
    ports: &PortSet,
) -> Result<Decapsulated<'a>, Reject> {
    decapsulate_tunnel(frame, ethertype, l3_offset, ports, 1)
}

/// [`decapsulate_from_l3`] for the tunnel at nesting `depth` (1: the outermost).
fn decapsulate_tunnel<'a>(
    frame: &'a [u8],
    ethertype: u16,
    l3_offset: usize,
    ports: &PortSet,
    depth: u8,
) -> Result<Decapsulated<'a>, Reject> {
    let mut ethertype = ethertype;
    let mut l3 = frame.get(l3_offset..).unwrap_or_default();
    let mut l3_offset = l3_offset;

    let mut outer_vlans = [0u16; MAX_VLAN_TAGS];
    let mut outer_vlan_count = 0usize;
    while vlan::is_tpid(ethertype) {
        let Some(slot) = outer_vlans.get_mut(outer_vlan_count) else {
            return Err(Reject::TooManyVlanTags);
        };
        let tag = vlan::Tag::new_checked(l3).map_err(|_| Reject::TruncatedVlan)?;
        *slot = tag.vid();
        ethertype = tag.ethertype();
        l3 = tag.payload();
        l3_offset += vlan::HEADER_LEN;
        outer_vlan_count += 1;
    }

    let ip = match ethertype {
        EtherType::IPV4 => outer_ipv4(l3, l3_offset)?,
        EtherType::IPV6 => outer_ipv6(l3, l3_offset)?,
        _ => return Err(Reject::NotIp),
    };

    let udp = udp::Packet::new_checked(ip.l4).map_err(|_| Reject::MalformedUdp)?;
    let outer_dst_port = udp.dst_port();
    if !ports.contains(outer_dst_port) {
        if ports.contains_geneve(outer_dst_port) {
            if depth > ports.max_depth {
                return Err(Reject::TunnelTooDeep);
            }
            let outer = Outer {
                ip: &ip,
                udp: &udp,
                vlans: outer_vlans,
                // At most MAX_VLAN_TAGS (2): the loop above returns before a third.
                vlan_count: outer_vlan_count as u8,
            };
            return decapsulate_geneve(frame, &outer, ports, depth);
        }
        return Err(Reject::PortNotConfigured);
    }
    if depth > ports.max_depth {
        return Err(Reject::TunnelTooDeep);
    }

    let vxlan = vxlan::Header::new_checked(udp.payload()).map_err(|_| Reject::TruncatedVxlan)?;
    if !vxlan.i_flag() {
        return Err(Reject::VxlanIFlagClear);
    }
    let inner = vxlan.payload();
    if inner.len() < ethernet::HEADER_LEN {
        return Err(Reject::InnerRunt);
    }

    Ok(Decapsulated {
        inner,
        inner_offset: ip.l4_offset + udp::HEADER_LEN + vxlan::HEADER_LEN,
        vni: vxlan.vni(),
        vxlan_flags: vxlan.flags(),
        outer_src: ip.src,
        outer_dst: ip.dst,
        outer_src_port: udp.src_port(),
        outer_dst_port,
        outer_vlans,
        // At most MAX_VLAN_TAGS (2): the loop above returns before a third.
        outer_vlan_count: outer_vlan_count as u8,
        geneve: None,
    })
}

#[cfg(test)]
thread_local! {
    /// Tests set it to compare the nested fast path with the general walk.
    static GENERAL_ONLY: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Whether [`decapsulate_geneve`] may take the nested fast path (always, outside tests).
#[inline(always)]
fn nested_fast_path() -> bool {
    #[cfg(test)]
    {
        !GENERAL_ONLY.with(core::cell::Cell::get)
    }
    #[cfg(not(test))]
    {
        true
    }
}

/// The outer layers of a tunnel, as [`decapsulate_geneve`] needs them.
struct Outer<'a, 'b> {
    ip: &'b OuterIp<'a>,
    udp: &'b udp::Packet<&'a [u8]>,
    vlans: [u16; MAX_VLAN_TAGS],
    vlan_count: u8,
}

/// The GENEVE header after `outer`'s UDP header and what it carries: an Ethernet frame, or
/// bare IP, which is either a further tunnel (AWS Traffic Mirroring's VXLAN inside a Gateway
/// Load Balancer's GENEVE: peeled too, up to the depth limit) or the packet itself.
#[cold]
fn decapsulate_geneve<'a>(
    frame: &'a [u8],
    outer: &Outer<'a, '_>,
    ports: &PortSet,
    depth: u8,
) -> Result<Decapsulated<'a>, Reject> {
    let header = geneve::Header::new_checked(outer.udp.payload()).map_err(|e| match e {
        geneve::Error::Truncated => Reject::TruncatedGeneve,
        geneve::Error::Version => Reject::GeneveVersion,
        geneve::Error::OptionsTruncated => Reject::GeneveOptionsTruncated,
    })?;
    let payload = header.payload();
    let payload_offset = outer.ip.l4_offset + udp::HEADER_LEN + header.header_len();
    // AWS's three options at fixed offsets when they come as AWS sends them (the tests
    // compare with the walk alone).
    let (gwlb, malformed) = if nested_fast_path() {
        geneve::AwsGwlb::read(header.options_bytes())
    } else {
        geneve::AwsGwlb::walk(header.options_bytes())
    };
    let mut layer =
        GeneveLayer::new(header.vni(), header.protocol(), outer.udp.dst_port()).with_gwlb(gwlb);
    layer.set_flags(header.oam(), header.critical(), malformed);
    let bare_ip = match header.protocol() {
        geneve::protocol::ETHERNET => {
            if payload.len() < ethernet::HEADER_LEN {
                return Err(Reject::InnerRunt);
            }
            None
        }
        ethertype @ (geneve::protocol::IPV4 | geneve::protocol::IPV6) => {
            let min = if ethertype == geneve::protocol::IPV4 {
                ipv4::MIN_HEADER_LEN
            } else {
                ipv6::HEADER_LEN
            };
            if payload.len() < min {
                return Err(Reject::InnerRunt);
            }
            // A tunnel inside: bounded by this payload, so the outer frame's padding never
            // becomes part of it. Anything that does not decapsulate is the packet itself.
            let bounded = frame.get(..payload_offset + payload.len()).unwrap_or(frame);
            // The common nesting (plain IPv4, UDP, VXLAN within the depth limit) at fixed
            // offsets; anything else, and every refusal, through the general walk.
            let fast = if ethertype == geneve::protocol::IPV4
                && depth < ports.max_depth
                && nested_fast_path()
            {
                plain_ipv4_vxlan::<0>(payload, ports).map(|nested| Decapsulated {
                    inner_offset: payload_offset + nested.inner_offset,
                    ..nested
                })
            } else {
                None
            };
            let nested = match fast {
                Some(nested) => Ok(nested),
                None => decapsulate_tunnel(bounded, ethertype, payload_offset, ports, depth + 1),
            };
            match nested {
                Ok(nested) => {
                    layer.set_carried(Some(nested.tunnel()), nested.bare_ip());
                    return Ok(Decapsulated {
                        outer_src: outer.ip.src,
                        outer_dst: outer.ip.dst,
                        outer_src_port: outer.udp.src_port(),
                        outer_dst_port: outer.udp.dst_port(),
                        outer_vlans: outer.vlans,
                        outer_vlan_count: outer.vlan_count,
                        geneve: Some(layer),
                        ..nested
                    });
                }
                Err(Reject::TunnelTooDeep) => return Err(Reject::TunnelTooDeep),
                Err(_) => Some(ethertype),
            }
        }
        _ => return Err(Reject::GeneveProtocolUnsupported),
    };
    layer.set_carried(None, bare_ip);
    Ok(Decapsulated {
        inner: payload,
        inner_offset: payload_offset,
        vni: layer.vni,
        vxlan_flags: 0,
        outer_src: outer.ip.src,
        outer_dst: outer.ip.dst,
        outer_src_port: outer.udp.src_port(),
        outer_dst_port: outer.udp.dst_port(),
        outer_vlans: outer.vlans,
        outer_vlan_count: outer.vlan_count,
        geneve: Some(layer),
    })
}

#[inline]
fn outer_ipv4(l3: &[u8], l3_offset: usize) -> Result<OuterIp<'_>, Reject> {
    let ip = ipv4::Packet::new_checked(l3).map_err(|_| Reject::MalformedIpv4)?;
    if ip.is_fragment() {
        return Err(Reject::OuterFragment);
    }
    if ip.protocol() != IpProtocol::UDP {
        return Err(Reject::NotUdp);
    }
    Ok(OuterIp {
        src: IpAddr::V4(ip.src_addr()),
        dst: IpAddr::V4(ip.dst_addr()),
        l4: ip.payload(),
        l4_offset: l3_offset + ip.header_len(),
    })
}

#[inline]
fn outer_ipv6(l3: &[u8], l3_offset: usize) -> Result<OuterIp<'_>, Reject> {
    let ip = ipv6::Packet::new_checked(l3).map_err(|_| Reject::MalformedIpv6)?;
    let mut next_header = ip.next_header();
    let mut l4 = ip.payload();
    let mut l4_offset = l3_offset + ipv6::HEADER_LEN;
    let mut walked = 0;
    loop {
        match next_header {
            IpProtocol::UDP => break,
            IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_ROUTING | IpProtocol::IPV6_DEST_OPTS => {
                if walked == MAX_IPV6_EXT_HEADERS {
                    return Err(Reject::Ipv6ExtensionUnsupported);
                }
                let ext = ipv6::ExtHeader::new_checked(l4).map_err(|_| Reject::MalformedIpv6)?;
                next_header = ext.next_header();
                l4_offset += ext.header_len();
                l4 = ext.payload();
                walked += 1;
            }
            IpProtocol::IPV6_FRAGMENT => return Err(Reject::OuterFragment),
            other if IpProtocol::is_ipv6_extension(other) => {
                return Err(Reject::Ipv6ExtensionUnsupported)
            }
            _ => return Err(Reject::NotUdp),
        }
    }
    Ok(OuterIp {
        src: IpAddr::V6(ip.src_addr()),
        dst: IpAddr::V6(ip.dst_addr()),
        l4,
        l4_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{inner_ipv4_udp_frame, GeneveFrameBuilder, InnerIpv4Udp, VxlanFrameBuilder};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const IP: usize = ethernet::HEADER_LEN; // outer IP offset without VLAN tags

    fn inner() -> Vec<u8> {
        inner_ipv4_udp_frame(&InnerIpv4Udp {
            payload_len: 40,
            ..Default::default()
        })
        .expect("small inner frame")
    }

    fn v4_builder() -> VxlanFrameBuilder {
        VxlanFrameBuilder::new()
            .outer_src_ip(Ipv4Addr::new(10, 0, 2, 4))
            .outer_dst_ip(Ipv4Addr::new(10, 1, 1, 4))
            .udp_src_port(52889)
            .vni(100)
            .inner(&inner())
    }

    fn v6_src() -> Ipv6Addr {
        "2001:db8::1".parse().expect("literal")
    }

    fn v6_dst() -> Ipv6Addr {
        "2001:db8::2".parse().expect("literal")
    }

    fn v6_builder() -> VxlanFrameBuilder {
        v4_builder().outer_src_ip(v6_src()).outer_dst_ip(v6_dst())
    }

    fn v4_frame() -> Vec<u8> {
        v4_builder().build().expect("valid builder")
    }

    /// The fast path answers exactly what the general walk answers: on valid frames of
    /// every shape it takes (and some it must refuse), and on 200 000 frames with random
    /// bytes of their headers changed, lengths rewritten or the end cut.
    #[test]
    fn the_fast_path_agrees_with_the_general_walk() {
        let ports = PortSet::new(&[4789, 8472]).expect("ports");
        let mut seeds = vec![v4_frame(), v6_frame()];
        for len in [0, 1, 13, 14, 15, 60, 1400] {
            let inner = inner_ipv4_udp_frame(&InnerIpv4Udp {
                payload_len: len,
                ..Default::default()
            })
            .map(|mut f| {
                f.truncate(len.max(14).min(f.len()));
                f
            })
            .expect("inner");
            seeds.push(v4_builder().inner(&inner).build().expect("frame"));
        }
        let mut padded = v4_frame();
        padded.extend_from_slice(&[0; 20]); // Ethernet padding after the IP length
        seeds.push(padded);
        let mut took_fast = 0;
        for seed in &seeds {
            if decapsulate_plain_ipv4(seed, &ports).is_some() {
                took_fast += 1;
            }
            assert_eq!(decapsulate(seed, &ports), decapsulate_general(seed, &ports));
        }
        assert!(took_fast >= 6, "the fast path took only {took_fast} seeds");
        // A small xorshift: deterministic, no dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut fast, mut general) = (0u32, 0u32);
        for _ in 0..200_000 {
            let mut frame = seeds[(next() % seeds.len() as u64) as usize].clone();
            let r = next();
            match r % 4 {
                // A header byte (the first 64 hold every field the fast path reads).
                0 | 1 => {
                    let at = (next() % 64) as usize % frame.len().max(1);
                    if let Some(b) = frame.get_mut(at) {
                        *b = (next() & 0xff) as u8;
                    }
                }
                // A length field set near its bounds.
                2 => {
                    let at = [16usize, 38][(next() % 2) as usize];
                    let v = (frame.len() as i64 - 14 + (next() % 64) as i64 - 40).max(0) as u16;
                    if frame.len() > at + 1 {
                        frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
                    }
                }
                // The end cut.
                _ => frame.truncate((next() % (frame.len() as u64 + 1)) as usize),
            }
            let expected = decapsulate_general(&frame, &ports);
            if decapsulate_plain_ipv4(&frame, &ports).is_some() {
                fast += 1;
            } else {
                general += 1;
            }
            assert_eq!(decapsulate(&frame, &ports), expected, "frame {frame:02x?}");
        }
        assert!(
            fast > 10_000 && general > 10_000,
            "fast {fast}, general {general}"
        );
    }

    fn v6_frame() -> Vec<u8> {
        v6_builder().build().expect("valid builder")
    }

    /// Decapsulates with the default ports and checks the invariants every success must keep.
    fn ok(frame: &[u8]) -> Decapsulated<'_> {
        ok_with(frame, &PortSet::default())
    }

    fn ok_with<'a>(frame: &'a [u8], ports: &PortSet) -> Decapsulated<'a> {
        let decap = decapsulate(frame, ports).expect("frame should decapsulate");
        check_invariants(frame, &decap);
        decap
    }

    fn check_invariants(frame: &[u8], decap: &Decapsulated<'_>) {
        let end = decap.inner_offset + decap.inner.len();
        assert_eq!(&frame[decap.inner_offset..end], decap.inner);
        assert_eq!(
            decap.inner.as_ptr(),
            frame[decap.inner_offset..].as_ptr(),
            "inner must be a sub-slice of the frame (zero copy)"
        );
        assert!(decap.vni <= vxlan::MAX_VNI);
        match (decap.tunnel(), decap.bare_ip()) {
            (Tunnel::Vxlan, None) => {
                assert!(decap.inner.len() >= ethernet::HEADER_LEN);
                assert!(decap.vxlan_flags & vxlan::FLAG_I != 0);
            }
            (Tunnel::Geneve, None) => assert!(decap.inner.len() >= ethernet::HEADER_LEN),
            (Tunnel::Geneve, Some(ethertype)) => {
                assert!(ethertype == EtherType::IPV4 || ethertype == EtherType::IPV6);
                assert!(decap.inner.len() >= ipv4::MIN_HEADER_LEN);
                assert!(decap.frame_offset() >= ethernet::HEADER_LEN + 8 + 8);
            }
            (Tunnel::Vxlan, Some(_)) => panic!("VXLAN carries Ethernet only"),
        }
        assert_eq!(
            decap.tunnel() == Tunnel::Geneve,
            decap.geneve.is_some() && decap.vxlan_flags == 0
        );
        if let Some(layer) = decap.geneve {
            assert!(layer.vni <= vxlan::MAX_VNI);
        }
        assert!(usize::from(decap.outer_vlan_count) <= MAX_VLAN_TAGS);
        assert_eq!(
            decap.outer_vlan_ids().len(),
            usize::from(decap.outer_vlan_count)
        );
    }

    fn reject(frame: &[u8]) -> Reject {
        decapsulate(frame, &PortSet::default()).expect_err("frame should be rejected")
    }

    /// Rebuilds `frame` (untagged) with the given outer `(TPID, VID)` tags, any number of them.
    fn with_tags(frame: &[u8], tags: &[(u16, u16)]) -> Vec<u8> {
        let mut out = frame[..12].to_vec();
        for &(tpid, vid) in tags {
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&vid.to_be_bytes());
        }
        out.extend_from_slice(&frame[12..]);
        out
    }

    /// Inserts IPv4 options after the 20-byte header of an untagged IPv4 frame.
    fn with_ipv4_options(frame: &[u8], options: &[u8]) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let mut out = frame[..IP + 20].to_vec();
        out.extend_from_slice(options);
        out.extend_from_slice(&frame[IP + 20..]);
        let mut ip = ipv4::Packet::new_unchecked(&mut out[IP..]);
        ip.set_header_len(20 + options.len());
        let total = ip.total_len() + options.len() as u16;
        ip.set_total_len(total);
        ip.fill_checksum();
        out
    }

    /// Inserts a chain of 8-byte IPv6 extension headers of the given kinds after the fixed header
    /// of an untagged IPv6 frame.
    fn with_ipv6_exts(frame: &[u8], kinds: &[u8]) -> Vec<u8> {
        let mut out = frame[..IP + 40].to_vec();
        let original_next = frame[IP + 6];
        for (i, _) in kinds.iter().enumerate() {
            let next = kinds.get(i + 1).copied().unwrap_or(original_next);
            // Next header, Hdr Ext Len 0, then a PadN option filling the 6 remaining bytes.
            out.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
        }
        out.extend_from_slice(&frame[IP + 40..]);
        let mut ip = ipv6::Packet::new_unchecked(&mut out[IP..]);
        if let Some(&first) = kinds.first() {
            ip.set_next_header(first);
        }
        let len = ip.payload_len() + 8 * kinds.len() as u16;
        ip.set_payload_len(len);
        out
    }

    fn ipv4_mut(frame: &mut [u8]) -> ipv4::Packet<&mut [u8]> {
        ipv4::Packet::new_unchecked(&mut frame[IP..])
    }

    /// Offset of the outer UDP header of an untagged IPv4 frame without options.
    const UDP4: usize = IP + 20;
    /// Offset of the VXLAN header of an untagged IPv4 frame without options.
    const VXLAN4: usize = UDP4 + 8;

    // ---- success paths ----

    #[test]
    fn ipv4_frame_decapsulates() {
        let frame = v4_frame();
        let inner = inner();
        let decap = ok(&frame);
        assert_eq!(decap.inner, &*inner);
        assert_eq!(decap.inner_offset, 50);
        assert_eq!(decap.vni, 100);
        assert_eq!(decap.vxlan_flags, 0x08);
        assert_eq!(decap.outer_src, IpAddr::V4(Ipv4Addr::new(10, 0, 2, 4)));
        assert_eq!(decap.outer_dst, IpAddr::V4(Ipv4Addr::new(10, 1, 1, 4)));
        assert_eq!(decap.outer_src_port, 52889);
        assert_eq!(decap.outer_dst_port, VXLAN_PORT);
        assert_eq!(decap.outer_vlans, [0, 0]);
        assert_eq!(decap.outer_vlan_count, 0);
        assert!(decap.outer_vlan_ids().is_empty());
    }

    #[test]
    fn ipv6_frame_decapsulates() {
        let frame = v6_frame();
        let decap = ok(&frame);
        assert_eq!(decap.inner, &*inner());
        assert_eq!(decap.inner_offset, 14 + 40 + 8 + 8);
        assert_eq!(decap.outer_src, IpAddr::V6(v6_src()));
        assert_eq!(decap.outer_dst, IpAddr::V6(v6_dst()));
        assert_eq!(decap.vni, 100);
    }

    #[test]
    fn ipv6_walks_hop_by_hop_routing_and_destination_options() {
        let frame = with_ipv6_exts(
            &v6_frame(),
            &[
                IpProtocol::HOP_BY_HOP,
                IpProtocol::IPV6_DEST_OPTS,
                IpProtocol::IPV6_ROUTING,
                IpProtocol::IPV6_DEST_OPTS,
            ],
        );
        let decap = ok(&frame);
        assert_eq!(decap.inner_offset, 14 + 40 + 4 * 8 + 8 + 8);
        assert_eq!(decap.inner, &*inner());
    }

    #[test]
    fn ipv4_options_ihl6() {
        let frame = with_ipv4_options(&v4_frame(), &[1, 1, 1, 0]);
        assert_eq!(frame[IP], 0x46);
        let decap = ok(&frame);
        assert_eq!(decap.inner_offset, 54);
        assert_eq!(decap.inner, &*inner());
    }

    #[test]
    fn ipv4_options_ihl15() {
        let frame = with_ipv4_options(&v4_frame(), &[1; 40]);
        assert_eq!(frame[IP], 0x4f);
        assert_eq!(ok(&frame).inner_offset, 14 + 60 + 16);
    }

    #[test]
    fn outer_8021q() {
        let frame = v4_builder().outer_vlans(&[42]).build().expect("valid");
        let decap = ok(&frame);
        assert_eq!(decap.outer_vlans, [42, 0]);
        assert_eq!(decap.outer_vlan_count, 1);
        assert_eq!(decap.outer_vlan_ids(), &[42]);
        assert_eq!(decap.inner_offset, 54);
        assert_eq!(decap.inner, &*inner());
    }

    #[test]
    fn outer_qinq() {
        let frame = v4_builder()
            .outer_vlans(&[200, 100])
            .build()
            .expect("valid");
        assert_eq!(&frame[12..14], &[0x88, 0xa8]);
        let decap = ok(&frame);
        assert_eq!(decap.outer_vlans, [200, 100]);
        assert_eq!(decap.outer_vlan_count, 2);
        assert_eq!(decap.inner_offset, 58);
    }

    #[test]
    fn any_tpid_in_either_position() {
        let tpids = [EtherType::VLAN, EtherType::QINQ, EtherType::QINQ_OLD];
        let base = v6_frame();
        for outer in tpids {
            let decap_frame = with_tags(&base, &[(outer, 0x0fff)]);
            assert_eq!(ok(&decap_frame).outer_vlans, [4095, 0]);
            for inner_tpid in tpids {
                let frame = with_tags(&base, &[(outer, 0xe00a), (inner_tpid, 11)]);
                let decap = ok(&frame);
                // The VID is the low 12 bits of the TCI; PCP bits are not part of it.
                assert_eq!(decap.outer_vlans, [10, 11]);
                assert_eq!(decap.inner, &*inner());
            }
        }
    }

    #[test]
    fn vxlan_flags_0x88_accepted() {
        let frame = v4_builder().vxlan_flags(0x88).build().expect("valid");
        let decap = ok(&frame);
        assert_eq!(decap.vxlan_flags, 0x88);
        assert_eq!(decap.vni, 100);
    }

    #[test]
    fn vxlan_reserved_bits_accepted() {
        let mut frame = v4_builder().vxlan_flags(0xff).build().expect("valid");
        frame[VXLAN4 + 1..VXLAN4 + 4].copy_from_slice(&[0xff; 3]);
        frame[VXLAN4 + 7] = 0xff;
        let decap = ok(&frame);
        assert_eq!(decap.vxlan_flags, 0xff);
        assert_eq!(decap.vni, 100);
    }

    #[test]
    fn vni_uses_all_24_bits() {
        let frame = v4_builder().vni(vxlan::MAX_VNI).build().expect("valid");
        assert_eq!(ok(&frame).vni, 0x00ff_ffff);
    }

    #[test]
    fn port_8472_needs_configuring() {
        let frame = v4_builder().udp_dst_port(8472).build().expect("valid");
        assert_eq!(reject(&frame), Reject::PortNotConfigured);
        let ports = PortSet::new(&[8472]).expect("valid port set");
        let decap = ok_with(&frame, &ports);
        assert_eq!(decap.outer_dst_port, 8472);
        let both = PortSet::new(&[VXLAN_PORT, 8472]).expect("valid port set");
        ok_with(&frame, &both);
        ok_with(&v4_frame(), &both);
        assert_eq!(
            decapsulate(&v4_frame(), &ports),
            Err(Reject::PortNotConfigured)
        );
    }

    #[test]
    fn ethernet_padding_is_not_inner() {
        // A 14-byte inner frame makes a 64-byte outer frame; add padding after it as a NIC
        // might, and check neither inner nor its length sees it.
        let inner = [0x5a; 14];
        for builder in [v4_builder(), v6_builder()] {
            let mut frame = builder.inner(&inner).build().expect("valid");
            frame.extend_from_slice(&[0xee; 10]);
            let decap = ok(&frame);
            assert_eq!(decap.inner, &inner[..]);
        }
    }

    #[test]
    fn ip_payload_beyond_udp_length_is_not_inner() {
        // UDP length shorter than the IP payload: the UDP length wins.
        let mut frame = v4_frame();
        let udp_len = u16::from_be_bytes([frame[UDP4 + 4], frame[UDP4 + 5]]);
        frame[UDP4 + 4..UDP4 + 6].copy_from_slice(&(udp_len - 3).to_be_bytes());
        let decap = ok(&frame);
        assert_eq!(decap.inner, &inner()[..inner().len() - 3]);
    }

    #[test]
    fn ipv4_header_checksum_not_verified() {
        let mut frame = v4_frame();
        frame[IP + 10] ^= 0xff;
        assert!(!ipv4::Packet::new_checked(&frame[IP..])
            .expect("valid")
            .verify_checksum());
        ok(&frame);
    }

    #[test]
    fn outer_udp_checksum_not_verified() {
        let mut frame = v4_frame();
        frame[UDP4 + 6..UDP4 + 8].copy_from_slice(&[0x12, 0x34]);
        ok(&frame);
    }

    #[test]
    fn dont_frag_is_not_a_fragment() {
        let frame = v4_builder().dont_frag(true).build().expect("valid");
        ok(&frame);
    }

    // ---- one test per Reject variant ----

    #[test]
    fn reject_truncated_ethernet() {
        let frame = v4_frame();
        for len in 0..ethernet::HEADER_LEN {
            assert_eq!(
                reject(&frame[..len]),
                Reject::TruncatedEthernet,
                "len {len}"
            );
        }
    }

    #[test]
    fn reject_truncated_vlan() {
        let frame = v4_builder().outer_vlans(&[42]).build().expect("valid");
        for len in 14..18 {
            assert_eq!(reject(&frame[..len]), Reject::TruncatedVlan, "len {len}");
        }
        let frame = v4_builder().outer_vlans(&[1, 2]).build().expect("valid");
        for len in 18..22 {
            assert_eq!(reject(&frame[..len]), Reject::TruncatedVlan, "len {len}");
        }
    }

    #[test]
    fn reject_too_many_vlan_tags() {
        let tags = [
            (EtherType::QINQ, 1),
            (EtherType::VLAN, 2),
            (EtherType::VLAN, 3),
        ];
        let frame = with_tags(&v4_frame(), &tags);
        assert_eq!(reject(&frame), Reject::TooManyVlanTags);
        // Even when the frame ends right after the third TPID.
        assert_eq!(reject(&frame[..24]), Reject::TooManyVlanTags);
    }

    #[test]
    fn reject_not_ip() {
        let mut frame = v4_frame();
        frame[12..14].copy_from_slice(&EtherType::ARP.to_be_bytes());
        assert_eq!(reject(&frame), Reject::NotIp);
        // Also behind a VLAN tag.
        let mut tagged = v4_builder().outer_vlans(&[42]).build().expect("valid");
        tagged[16..18].copy_from_slice(&EtherType::ARP.to_be_bytes());
        assert_eq!(reject(&tagged), Reject::NotIp);
        // A header-only frame.
        assert_eq!(reject(&frame[..14]), Reject::NotIp);
    }

    #[test]
    fn reject_malformed_ipv4() {
        let frame = v4_frame();
        // Truncated in the header.
        assert_eq!(reject(&frame[..IP + 19]), Reject::MalformedIpv4);
        // Truncated before the total length.
        assert_eq!(reject(&frame[..frame.len() - 1]), Reject::MalformedIpv4);
        // Version 6 under an IPv4 EtherType.
        let mut bad = frame.clone();
        ipv4_mut(&mut bad).set_version(6);
        assert_eq!(reject(&bad), Reject::MalformedIpv4);
        // IHL below 5.
        for ihl_bytes in [0, 4, 16] {
            let mut bad = frame.clone();
            ipv4_mut(&mut bad).set_header_len(ihl_bytes);
            assert_eq!(reject(&bad), Reject::MalformedIpv4, "header {ihl_bytes}");
        }
        // Header longer than the buffer.
        let mut bad = frame[..IP + 40].to_vec();
        ipv4_mut(&mut bad).set_header_len(60);
        assert_eq!(reject(&bad), Reject::MalformedIpv4);
        // Total length shorter than the header.
        let mut bad = frame.clone();
        ipv4_mut(&mut bad).set_total_len(19);
        assert_eq!(reject(&bad), Reject::MalformedIpv4);
        // Total length longer than the buffer.
        let mut bad = frame.clone();
        let len = (frame.len() - IP + 1) as u16;
        ipv4_mut(&mut bad).set_total_len(len);
        assert_eq!(reject(&bad), Reject::MalformedIpv4);
    }

    #[test]
    fn reject_outer_fragment() {
        // First fragment: MF set, offset 0.
        let mut frame = v4_frame();
        ipv4_mut(&mut frame).set_more_frags(true);
        assert_eq!(reject(&frame), Reject::OuterFragment);
        // Last fragment: MF clear, non-zero offset.
        let mut frame = v4_frame();
        ipv4_mut(&mut frame).set_frag_offset(1480);
        assert_eq!(reject(&frame), Reject::OuterFragment);
        // IPv6 Fragment header, directly and after a Hop-by-Hop header.
        let frame = with_ipv6_exts(&v6_frame(), &[IpProtocol::IPV6_FRAGMENT]);
        assert_eq!(reject(&frame), Reject::OuterFragment);
        let frame = with_ipv6_exts(
            &v6_frame(),
            &[IpProtocol::HOP_BY_HOP, IpProtocol::IPV6_FRAGMENT],
        );
        assert_eq!(reject(&frame), Reject::OuterFragment);
    }

    #[test]
    fn reject_malformed_ipv6() {
        let frame = v6_frame();
        assert_eq!(reject(&frame[..IP + 39]), Reject::MalformedIpv6);
        assert_eq!(reject(&frame[..frame.len() - 1]), Reject::MalformedIpv6);
        let mut bad = frame.clone();
        ipv6::Packet::new_unchecked(&mut bad[IP..]).set_version(4);
        assert_eq!(reject(&bad), Reject::MalformedIpv6);
        // An extension header whose length runs past the payload.
        let mut bad = with_ipv6_exts(&frame, &[IpProtocol::IPV6_DEST_OPTS]);
        bad[IP + 40 + 1] = 0xff;
        assert_eq!(reject(&bad), Reject::MalformedIpv6);
        // An extension header cut by the payload length.
        let mut bad = with_ipv6_exts(&frame, &[IpProtocol::HOP_BY_HOP]);
        ipv6::Packet::new_unchecked(&mut bad[IP..]).set_payload_len(4);
        assert_eq!(reject(&bad), Reject::MalformedIpv6);
    }

    #[test]
    fn reject_ipv6_extension_unsupported() {
        // One more walkable header than the bound.
        let kinds = [IpProtocol::IPV6_DEST_OPTS; MAX_IPV6_EXT_HEADERS + 1];
        let frame = with_ipv6_exts(&v6_frame(), &kinds);
        assert_eq!(reject(&frame), Reject::Ipv6ExtensionUnsupported);
        // Extension headers that are not walked.
        for kind in [
            IpProtocol::AH,
            IpProtocol::ESP,
            IpProtocol::MOBILITY,
            IpProtocol::SHIM6,
        ] {
            let frame = with_ipv6_exts(&v6_frame(), &[IpProtocol::HOP_BY_HOP, kind]);
            assert_eq!(reject(&frame), Reject::Ipv6ExtensionUnsupported, "{kind}");
        }
    }

    #[test]
    fn reject_not_udp() {
        let mut frame = v4_frame();
        ipv4_mut(&mut frame).set_protocol(IpProtocol::TCP);
        assert_eq!(reject(&frame), Reject::NotUdp);
        for next in [
            IpProtocol::TCP,
            IpProtocol::ICMPV6,
            IpProtocol::IPV6_NO_NEXT,
        ] {
            let mut frame = v6_frame();
            ipv6::Packet::new_unchecked(&mut frame[IP..]).set_next_header(next);
            assert_eq!(reject(&frame), Reject::NotUdp, "{next}");
        }
        let mut frame = with_ipv6_exts(&v6_frame(), &[IpProtocol::HOP_BY_HOP]);
        frame[IP + 40] = IpProtocol::TCP;
        assert_eq!(reject(&frame), Reject::NotUdp);
    }

    #[test]
    fn reject_malformed_udp() {
        let frame = v4_frame();
        // UDP length below 8.
        let mut bad = frame.clone();
        bad[UDP4 + 4..UDP4 + 6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(reject(&bad), Reject::MalformedUdp);
        // UDP length past the IP payload (even with bytes in the frame after it).
        let mut bad = frame.clone();
        let udp_len = (frame.len() - UDP4 + 1) as u16;
        bad[UDP4 + 4..UDP4 + 6].copy_from_slice(&udp_len.to_be_bytes());
        bad.push(0);
        assert_eq!(reject(&bad), Reject::MalformedUdp);
        // IP payload too short for a UDP header.
        let mut bad = frame[..UDP4 + 7].to_vec();
        ipv4_mut(&mut bad).set_total_len(27);
        assert_eq!(reject(&bad), Reject::MalformedUdp);
    }

    #[test]
    fn reject_port_not_configured() {
        for port in [0, 4790, 8472, 4788, 6082] {
            let frame = v4_builder().udp_dst_port(port).build().expect("valid");
            assert_eq!(reject(&frame), Reject::PortNotConfigured, "port {port}");
        }
        // GENEVE's port, when GENEVE is off.
        let frame = v4_builder().udp_dst_port(6081).build().expect("valid");
        let no_geneve = PortSet::default().with_geneve(&[]).expect("none");
        assert_eq!(
            decapsulate(&frame, &no_geneve),
            Err(Reject::PortNotConfigured)
        );
        // The source port does not count.
        let frame = v4_builder()
            .udp_src_port(VXLAN_PORT)
            .udp_dst_port(1234)
            .build()
            .expect("valid");
        assert_eq!(reject(&frame), Reject::PortNotConfigured);
    }

    #[test]
    fn reject_truncated_vxlan() {
        for vxlan_len in 0..vxlan::HEADER_LEN {
            let mut frame = v4_frame();
            frame.truncate(VXLAN4 + vxlan_len);
            let udp_len = (8 + vxlan_len) as u16;
            frame[UDP4 + 4..UDP4 + 6].copy_from_slice(&udp_len.to_be_bytes());
            ipv4_mut(&mut frame).set_total_len(20 + udp_len);
            assert_eq!(reject(&frame), Reject::TruncatedVxlan, "{vxlan_len}");
        }
    }

    #[test]
    fn reject_vxlan_i_flag_clear() {
        for flags in [0x00, 0x80, 0xf7, 0x01] {
            let frame = v4_builder().vxlan_flags(flags).build().expect("valid");
            assert_eq!(
                reject(&frame),
                Reject::VxlanIFlagClear,
                "flags {flags:#04x}"
            );
        }
    }

    #[test]
    fn reject_inner_runt() {
        for len in 0..ethernet::HEADER_LEN {
            let frame = v4_builder().inner(&[0x77; 32][..len]).build().expect("ok");
            assert_eq!(reject(&frame), Reject::InnerRunt, "inner {len}");
        }
        let frame = v4_builder().inner(&[0x77; 14]).build().expect("valid");
        assert_eq!(ok(&frame).inner, &[0x77; 14]);
    }

    #[test]
    fn every_reject_variant_has_a_test_frame() {
        // One frame per reason, so adding a variant without a frame fails here.
        let mut seen = [false; Reject::COUNT];
        let mut arp = v4_frame();
        arp[12..14].copy_from_slice(&EtherType::ARP.to_be_bytes());
        let mut frag = v4_frame();
        ipv4_mut(&mut frag).set_more_frags(true);
        let mut tcp = v4_frame();
        ipv4_mut(&mut tcp).set_protocol(IpProtocol::TCP);
        let mut short_udp = v4_frame();
        short_udp[UDP4 + 5] = 7;
        let mut short_vxlan = v4_frame();
        short_vxlan.truncate(VXLAN4 + 3);
        short_vxlan[UDP4 + 4..UDP4 + 6].copy_from_slice(&11u16.to_be_bytes());
        ipv4_mut(&mut short_vxlan).set_total_len(31);
        let frames = [
            v4_frame()[..10].to_vec(),
            Vec::new(), // the cooked header below
            v4_builder().outer_vlans(&[1]).build().expect("ok")[..16].to_vec(),
            with_tags(&v4_frame(), &[(0x8100, 1), (0x8100, 2), (0x8100, 3)]),
            arp,
            v4_frame()[..30].to_vec(),
            frag,
            v6_frame()[..30].to_vec(),
            with_ipv6_exts(&v6_frame(), &[IpProtocol::AH]),
            tcp,
            short_udp,
            v4_builder().udp_dst_port(8472).build().expect("ok"),
            short_vxlan,
            v4_builder().vxlan_flags(0).build().expect("ok"),
            v4_builder().inner(&[0; 13]).build().expect("ok"),
            short_geneve(7),
            geneve_builder().version(1).build().expect("ok"),
            short_geneve(12),
            geneve_builder().protocol(0x88cc).build().expect("ok"),
            geneve_in_geneve(&geneve_in_geneve(&gwlb_mirror_frame(&inner()))),
        ];
        for (frame, expected) in frames.iter().zip(Reject::ALL) {
            let got = if expected == Reject::TruncatedLinkHeader {
                // A Linux cooked header cut short (capture files only).
                crate::link::decapsulate_link(
                    &[0; 10],
                    crate::LinkType::LinuxSll,
                    &PortSet::default(),
                )
                .expect_err("cut cooked header")
            } else {
                reject(frame)
            };
            assert_eq!(got, expected);
            seen[got.index()] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }

    // ---- GENEVE ----

    /// Where the GENEVE header starts in an untagged IPv4 frame.
    const GENEVE4: usize = IP + 20 + 8;

    fn geneve_builder() -> GeneveFrameBuilder {
        GeneveFrameBuilder::new()
            .outer(|o| {
                o.outer_src_ip(Ipv4Addr::new(10, 0, 9, 1))
                    .outer_dst_ip(Ipv4Addr::new(10, 0, 9, 2))
                    .udp_src_port(40001)
            })
            .vni(0x00ab_cdef)
            .payload(&inner())
    }

    /// The IPv4 packet of an Ethernet frame (no VLAN tag).
    fn ip_of(frame: &[u8]) -> &[u8] {
        &frame[ethernet::HEADER_LEN..]
    }

    /// AWS Traffic Mirroring into a Gateway Load Balancer endpoint: the mirror's VXLAN frame
    /// (VNI 4242, to the appliance) as the bare IPv4 payload of the load balancer's GENEVE,
    /// with the three AWS options.
    fn gwlb_mirror_frame(mirrored: &[u8]) -> Vec<u8> {
        let vxlan = v4_builder()
            .vni(4242)
            .inner(mirrored)
            .build()
            .expect("VXLAN");
        GeneveFrameBuilder::new()
            .outer(|o| {
                o.outer_src_ip(Ipv4Addr::new(10, 0, 50, 9))
                    .outer_dst_ip(Ipv4Addr::new(10, 0, 60, 7))
                    .udp_src_port(61000)
            })
            .protocol(geneve::protocol::IPV4)
            .aws_gwlb(0x0a1b_2c3d_4e5f_6071, 0x1111_2222_3333_4444, 0x0bad_cafe)
            .payload(ip_of(&vxlan))
            .build()
            .expect("GENEVE")
    }

    /// `frame`'s IP packet as the bare IPv4 payload of another GENEVE header.
    fn geneve_in_geneve(frame: &[u8]) -> Vec<u8> {
        geneve_builder()
            .protocol(geneve::protocol::IPV4)
            .payload(ip_of(frame))
            .build()
            .expect("GENEVE")
    }

    #[test]
    fn geneve_with_an_ethernet_payload_gives_the_inner_frame() {
        let frame = geneve_builder()
            .option(0x0103, 0x80 | 0x05, &[1, 2, 3, 4, 5]) // critical, 2 words, unknown
            .flags(0x40)
            .build()
            .expect("valid");
        let decap = ok(&frame);
        assert_eq!(decap.tunnel(), Tunnel::Geneve);
        assert_eq!(decap.inner, &*inner());
        assert_eq!(decap.inner_offset, GENEVE4 + 8 + 12);
        assert_eq!(
            (decap.vni, decap.bare_ip(), decap.outer_dst_port),
            (0xabcdef, None, 6081)
        );
        assert_eq!(decap.outer_src, IpAddr::V4(Ipv4Addr::new(10, 0, 9, 1)));
        assert_eq!(decap.outer_src_port, 40001);
        let layer = decap.geneve.expect("layer");
        assert!(layer.critical() && !layer.oam() && !layer.options_malformed());
        assert_eq!(layer.protocol, 0x6558);
        assert!(!layer.gwlb().is_present());
        assert_eq!(decap.outer_vni(), 0xabcdef);
        assert_eq!(decap.frame_len(), inner().len());
    }

    #[test]
    fn geneve_over_ipv6_and_vlans_and_on_other_ports() {
        let frame = geneve_builder()
            .outer(|o| {
                o.outer_src_ip(v6_src())
                    .outer_dst_ip(v6_dst())
                    .outer_vlans(&[5])
            })
            .build()
            .expect("valid");
        let decap = ok(&frame);
        assert_eq!(
            (decap.tunnel(), decap.outer_vlan_ids()),
            (Tunnel::Geneve, &[5u16][..])
        );
        assert_eq!(decap.inner, &*inner());
        let frame = geneve_builder()
            .outer(|o| o.udp_dst_port(7000))
            .build()
            .expect("ok");
        assert_eq!(reject(&frame), Reject::PortNotConfigured);
        let ports = PortSet::default().with_geneve(&[7000]).expect("ports");
        assert_eq!(ok_with(&frame, &ports).inner, &*inner());
        let no_geneve = PortSet::default().with_geneve(&[]).expect("none");
        let frame = geneve_builder().build().expect("ok");
        assert_eq!(
            decapsulate(&frame, &no_geneve),
            Err(Reject::PortNotConfigured)
        );
    }

    #[test]
    fn geneve_bare_ip_is_the_ip_packet_behind_a_synthetic_ethernet_header() {
        let packet = ip_of(&inner()).to_vec();
        let frame = geneve_builder()
            .protocol(geneve::protocol::IPV4)
            .aws_gwlb(1, 2, 3)
            .payload(&packet)
            .build()
            .expect("valid");
        let decap = ok(&frame);
        assert_eq!(
            (decap.tunnel(), decap.bare_ip()),
            (Tunnel::Geneve, Some(0x0800))
        );
        assert_eq!(decap.inner, &*packet);
        assert_eq!(decap.frame_len(), inner().len());
        assert_eq!(decap.frame_offset(), decap.inner_offset - 14);
        assert_eq!(decap.inner_orig_len(), inner().len());
        assert!(!decap.is_truncated());
        let gwlb = decap.geneve.expect("layer").gwlb();
        assert_eq!(
            (gwlb.endpoint_id, gwlb.attachment_id, gwlb.flow_cookie),
            (Some(1), Some(2), Some(3))
        );
        // The synthetic header in place gives the Ethernet frame with zero MACs.
        let mut written = frame.clone();
        let at = decap.frame_offset();
        written[at..at + 14].copy_from_slice(&synthetic_ethernet(0x0800));
        let mut expected = inner();
        expected[..12].fill(0);
        assert_eq!(&written[at..at + decap.frame_len()], &*expected);
        // Cut by the mirror: the IPv4 length still says how long it was.
        let frame = geneve_builder()
            .protocol(geneve::protocol::IPV4)
            .payload(&packet[..30])
            .build()
            .expect("valid");
        let decap = ok(&frame);
        assert_eq!(
            (decap.frame_len(), decap.inner_orig_len()),
            (44, inner().len())
        );
        assert!(decap.is_truncated());
        // IPv6, and runts of each.
        let v6 = vec![0x60; 40];
        let frame = geneve_builder()
            .protocol(0x86dd)
            .payload(&v6)
            .build()
            .expect("ok");
        assert_eq!(ok(&frame).bare_ip(), Some(0x86dd));
        for (protocol, len) in [(0x0800, 19), (0x86dd, 39), (0x6558, 13)] {
            let frame = geneve_builder()
                .protocol(protocol)
                .payload(&v6[..len])
                .build()
                .expect("ok");
            assert_eq!(reject(&frame), Reject::InnerRunt, "{protocol:#x} {len}");
        }
    }

    /// A GENEVE frame (with 8 bytes of options) whose UDP datagram ends `cut` bytes after
    /// the UDP header, the IP and UDP lengths saying so.
    fn short_geneve(cut: usize) -> Vec<u8> {
        let frame = geneve_builder().raw_options(&[0; 8]).build().expect("ok");
        let mut short = frame[..GENEVE4 + cut].to_vec();
        short[IP + 2..IP + 4].copy_from_slice(&((20 + 8 + cut) as u16).to_be_bytes());
        short[IP + 24..IP + 26].copy_from_slice(&((8 + cut) as u16).to_be_bytes());
        short
    }

    #[test]
    fn geneve_rejects_bad_versions_lengths_and_protocols() {
        for cut in 0..8 {
            assert_eq!(
                reject(&short_geneve(cut)),
                Reject::TruncatedGeneve,
                "cut {cut}"
            );
        }
        for cut in 8..16 {
            assert_eq!(
                reject(&short_geneve(cut)),
                Reject::GeneveOptionsTruncated,
                "cut {cut}"
            );
        }
        for version in 1..4 {
            let frame = geneve_builder().version(version).build().expect("ok");
            assert_eq!(reject(&frame), Reject::GeneveVersion);
        }
        // Opt Len 63 words, past the 74 bytes after the header.
        let mut frame = geneve_builder().build().expect("ok");
        frame[GENEVE4] = 0x3f;
        assert_eq!(reject(&frame), Reject::GeneveOptionsTruncated);
        for protocol in [0x0000, 0x0806, 0x8847, 0x894f] {
            let frame = geneve_builder().protocol(protocol).build().expect("ok");
            assert_eq!(reject(&frame), Reject::GeneveProtocolUnsupported);
        }
        // An option longer than Opt Len: the walk stops, the payload is where Opt Len says.
        let frame = geneve_builder()
            .raw_options(&[0x01, 0x08, 0x01, 0x1f, 0, 0, 0, 0])
            .build()
            .expect("ok");
        let decap = ok(&frame);
        assert_eq!(decap.inner, &*inner());
        let layer = decap.geneve.expect("layer");
        assert!(layer.options_malformed() && !layer.gwlb().is_present());
    }

    #[test]
    fn gwlb_wrapped_traffic_mirroring_gives_the_mirrored_frame_and_both_identities() {
        let mirrored = inner();
        let frame = gwlb_mirror_frame(&mirrored);
        let decap = ok(&frame);
        assert_eq!(decap.inner, &*mirrored);
        assert_eq!(
            (decap.tunnel(), decap.vni, decap.bare_ip()),
            (Tunnel::Vxlan, 4242, None)
        );
        assert_eq!(decap.vxlan_flags, vxlan::FLAG_I);
        // The outermost headers are the load balancer's; the GENEVE layer is kept.
        assert_eq!(decap.outer_src, IpAddr::V4(Ipv4Addr::new(10, 0, 50, 9)));
        assert_eq!((decap.outer_src_port, decap.outer_dst_port), (61000, 6081));
        let layer = decap.geneve.expect("layer");
        assert_eq!((layer.vni, layer.protocol), (0, 0x0800));
        assert_eq!(layer.gwlb().endpoint_id, Some(0x0a1b_2c3d_4e5f_6071));
        assert_eq!(layer.gwlb_endpoint_id(), Some(0x0a1b_2c3d_4e5f_6071));
        assert_eq!(layer.gwlb().attachment_id, Some(0x1111_2222_3333_4444));
        assert_eq!(layer.gwlb().flow_cookie, Some(0x0bad_cafe));
        assert_eq!(layer.inner_tunnel(), Some(Tunnel::Vxlan));
        assert_eq!(
            size_of::<Option<GeneveLayer>>(),
            32,
            "travels with every frame"
        );
        assert_eq!(decap.outer_vni(), 0);
        // Padding after the outer datagram is not part of the nested one.
        let mut padded = frame.clone();
        padded.extend_from_slice(&[0xee; 30]);
        assert_eq!(ok(&padded).inner, &*mirrored);
        // The VXLAN inside to a port that is not VXLAN's: it is the packet itself.
        let vxlan = v4_builder()
            .udp_dst_port(9999)
            .inner(&mirrored)
            .build()
            .expect("ok");
        let frame = geneve_builder()
            .protocol(0x0800)
            .payload(ip_of(&vxlan))
            .build();
        let decap = ok(frame.as_ref().expect("ok"));
        assert_eq!(
            (decap.tunnel(), decap.bare_ip()),
            (Tunnel::Geneve, Some(0x0800))
        );
        assert_eq!(decap.inner, ip_of(&vxlan));
        // A VXLAN inside with its I flag clear is not peeled either.
        let vxlan = v4_builder()
            .vxlan_flags(0)
            .inner(&mirrored)
            .build()
            .expect("ok");
        let frame = geneve_builder()
            .protocol(0x0800)
            .payload(ip_of(&vxlan))
            .build();
        assert_eq!(ok(frame.as_ref().expect("ok")).bare_ip(), Some(0x0800));
    }

    /// GENEVE(VXLAN) frames with the AWS options laid out otherwise than AWS sends them
    /// decapsulate as the general walk decapsulates them (same layer: options, flags), and
    /// only AWS's own layout takes the whole-frame fast path.
    #[test]
    fn aws_option_layouts_decapsulate_as_the_general_walk() {
        let class = geneve::AWS_GWLB_CLASS;
        let (endpoint, attachment, cookie) = (
            0x0a1b_2c3d_4e5f_6071u64.to_be_bytes(),
            0x1111_2222_3333_4444u64.to_be_bytes(),
            0x0badu32.to_be_bytes(),
        );
        let option = |class: u16, kind: u8, len: u8, data: &[u8]| {
            [&class.to_be_bytes()[..], &[kind, len], data].concat()
        };
        let aws = [
            option(class, 1, 2, &endpoint),
            option(class, 2, 2, &attachment),
            option(class, 3, 1, &cookie),
        ]
        .concat();
        let mut critical = aws.clone();
        critical[2] |= geneve::OPTION_CRITICAL;
        let layouts: [(&str, Vec<u8>, bool); 7] = [
            ("AWS order", aws.clone(), true),
            ("reordered", [&aws[24..], &aws[..24]].concat(), false),
            (
                "an unknown option first",
                [option(0x0103, 0x80, 1, &[1, 2, 3, 4]), aws.clone()].concat(),
                false,
            ),
            (
                "the cookie's length past the area",
                [&aws[..24], &option(class, 3, 2, &cookie)].concat(),
                false,
            ),
            ("critical bit set", critical, false),
            (
                "an attachment id of 1 word",
                [
                    option(class, 1, 2, &endpoint),
                    option(class, 2, 1, &attachment[..4]),
                    option(class, 3, 1, &cookie),
                    option(0, 0, 0, &[]),
                ]
                .concat(),
                false,
            ),
            ("no options", Vec::new(), false),
        ];
        let vxlan = v4_builder()
            .vni(4242)
            .inner(&inner())
            .build()
            .expect("VXLAN");
        let ports = PortSet::default();
        for (name, options, fast) in layouts {
            let frame = GeneveFrameBuilder::new()
                .protocol(geneve::protocol::IPV4)
                .raw_options(&options)
                .payload(ip_of(&vxlan))
                .build()
                .expect("GENEVE");
            GENERAL_ONLY.with(|g| g.set(true));
            let expected = decapsulate(&frame, &ports);
            GENERAL_ONLY.with(|g| g.set(false));
            let got = decapsulate(&frame, &ports).expect(name);
            assert_eq!(Ok(got), expected, "{name}");
            assert_eq!((got.vni, got.inner), (4242, &*inner()), "{name}");
            let (ip, udp) = plain_ipv4_geneve(&frame, &ports).expect("outer fast path");
            assert_eq!(aws_mirror(&ip, &udp, &ports).is_some(), fast, "{name}");
        }
    }

    /// The fast paths of GENEVE(VXLAN) (the outer Ethernet/IPv4/UDP to a GENEVE port, AWS's
    /// whole frame, and plain IPv4/UDP/VXLAN inside GENEVE) answer what the general walk
    /// answers, on GWLB frames with random bytes of the outer headers, the options or the
    /// nested headers changed, and lengths set near their bounds.
    #[test]
    fn the_nested_fast_path_agrees_with_the_general_walk() {
        let seeds = [
            gwlb_mirror_frame(&inner()),
            gwlb_mirror_frame(&inner()[..14]),
        ];
        // Where the nested IPv4 header starts: after the GENEVE header and its 32 bytes of options.
        let nested_ip = GENEVE4 + 8 + 32;
        fn general<'a>(frame: &'a [u8], ports: &PortSet) -> Result<Decapsulated<'a>, Reject> {
            GENERAL_ONLY.with(|g| g.set(true));
            let result = decapsulate(frame, ports);
            GENERAL_ONLY.with(|g| g.set(false));
            result
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut accepted, mut outer_fast, mut aws_fast) = (0, 0, 0);
        let vxlan_ports = PortSet::new(&[4789, 8472]).expect("ports");
        for (depth, ports) in [
            (1, vxlan_ports),
            (2, vxlan_ports),
            (3, vxlan_ports),
            // 6081 not GENEVE's, and then VXLAN's: the outer fast path must step aside.
            (2, vxlan_ports.with_geneve(&[6082]).expect("ports")),
            (2, PortSet::new(&[4789, 6081]).expect("ports")),
        ] {
            let ports = ports.with_max_depth(depth);
            for _ in 0..20_000 {
                let mut frame = seeds[(next() % 2) as usize].clone();
                for _ in 0..=next() % 3 {
                    // The outer headers through GENEVE's, its options, or the nested ones.
                    let at = match next() % 3 {
                        0 => (next() % (GENEVE4 as u64 + 8)) as usize,
                        1 => GENEVE4 + 8 + (next() % 32) as usize,
                        _ => nested_ip + (next() % 36) as usize,
                    };
                    if let Some(b) = frame.get_mut(at) {
                        *b = next() as u8;
                    }
                }
                if next() % 4 == 0 {
                    // The outer IP total or UDP length near its bounds.
                    let at = [16usize, 38][(next() % 2) as usize];
                    let v = (frame.len() as i64 - 14 + (next() % 64) as i64 - 40).max(0) as u16;
                    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
                if next() % 5 == 0 {
                    frame.truncate((next() % frame.len() as u64) as usize);
                }
                let expected = general(&frame, &ports);
                let outer = plain_ipv4_geneve(&frame, &ports);
                outer_fast += usize::from(outer.is_some());
                aws_fast += usize::from(
                    outer.is_some_and(|(ip, udp)| aws_mirror(&ip, &udp, &ports).is_some()),
                );
                assert_eq!(decapsulate(&frame, &ports), expected, "frame {frame:02x?}");
                accepted += usize::from(expected.is_ok_and(|d| d.tunnel() == Tunnel::Vxlan));
            }
        }
        assert!(
            accepted > 1_000 && outer_fast > 10_000 && aws_fast > 1_000,
            "only {accepted} nested frames decapsulated, {outer_fast} through the outer fast \
             path, {aws_fast} through AWS's"
        );
    }

    #[test]
    fn nesting_past_the_depth_limit_is_refused() {
        let mirrored = inner();
        let two = gwlb_mirror_frame(&mirrored);
        let three = geneve_in_geneve(&two);
        assert_eq!(reject(&three), Reject::TunnelTooDeep);
        let deep = PortSet::default().with_max_depth(3);
        let decap = ok_with(&three, &deep);
        assert_eq!((decap.inner, decap.vni), (&*mirrored, 4242));
        assert_eq!(decap.geneve.expect("outermost").vni, 0xabcdef);
        let shallow = PortSet::default().with_max_depth(1);
        assert_eq!(decapsulate(&two, &shallow), Err(Reject::TunnelTooDeep));
        assert_eq!(ok_with(&v4_frame(), &shallow).vni, 100);
        assert_eq!(PortSet::default().with_max_depth(0).max_depth(), 1);
        assert_eq!(
            PortSet::default().with_max_depth(200).max_depth(),
            MAX_DEPTH
        );
    }

    #[test]
    fn geneve_port_sets() {
        let set = PortSet::new(&[4789, 8472]).expect("ok");
        assert_eq!(set.geneve(), &[6081]);
        assert!(PortSet::new(&[6081]).expect("ok").geneve().is_empty());
        let set = set.with_geneve(&[6081, 6082]).expect("ok");
        assert!(set.contains_geneve(6082) && !set.contains(6082) && !set.contains_geneve(4789));
        assert_eq!(set.all().collect::<Vec<_>>(), [4789, 8472, 6081, 6082]);
        assert_eq!(set.with_geneve(&[8472]), Err(PortSetError::Both(8472)));
        assert_eq!(set.with_geneve(&[0]), Err(PortSetError::Zero));
        assert_eq!(set.with_geneve(&[7, 7]), Err(PortSetError::Duplicate(7)));
        assert_eq!(set.with_geneve(&[4790]), Err(PortSetError::VxlanGpe));
        let nine: Vec<u16> = (100..109).collect();
        assert_eq!(set.with_geneve(&nine), Err(PortSetError::TooMany(9)));
        assert!(PortSetError::Both(8472).to_string().contains(':'));
    }

    // ---- Reject bookkeeping ----

    #[test]
    fn reject_indices_and_names() {
        assert_eq!(Reject::COUNT, 20);
        for (i, reason) in Reject::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
            assert_eq!(*reason as u8 as usize, i);
            let name = reason.name();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name} is not snake_case"
            );
            assert!(!reason.to_string().is_empty());
            for other in &Reject::ALL[..i] {
                assert_ne!(other.name(), name);
            }
        }
        assert_eq!(Reject::TruncatedEthernet.name(), "truncated_ethernet");
        assert_eq!(Reject::PortNotConfigured.name(), "port_not_configured");
        assert_eq!(Reject::VxlanIFlagClear.name(), "vxlan_i_flag_clear");
        assert_eq!(Reject::InnerRunt.name(), "inner_runt");
        assert_eq!(Reject::VxlanIFlagClear.to_string(), "VXLAN I flag clear");
    }

    // ---- PortSet ----

    #[test]
    fn port_set_default_and_new() {
        let default = PortSet::default();
        assert_eq!(default.as_slice(), &[VXLAN_PORT]);
        assert!(default.contains(4789));
        assert!(!default.contains(8472));
        assert!(!default.contains(0));
        assert_eq!(PortSet::new(&[4789]), Ok(default));

        let eight: Vec<u16> = (1..=8).map(|p| p * 1000).collect();
        let set = PortSet::new(&eight).expect("eight ports fit");
        assert_eq!(set.as_slice(), &*eight);
        assert!(set.contains(8000));
        assert!(!set.contains(9000));
        assert_eq!(set.to_string(), "1000,2000,3000,4000,5000,6000,7000,8000");
        assert_ne!(
            PortSet::new(&[4789, 8472]),
            PortSet::new(&[8472, 4789]),
            "order is kept"
        );
    }

    #[test]
    fn port_set_errors() {
        assert_eq!(PortSet::new(&[]), Err(PortSetError::Empty));
        let nine: Vec<u16> = (1..=9).collect();
        assert_eq!(PortSet::new(&nine), Err(PortSetError::TooMany(9)));
        assert_eq!(PortSet::new(&[4789, 0]), Err(PortSetError::Zero));
        assert_eq!(
            PortSet::new(&[4789, 8472, 4789]),
            Err(PortSetError::Duplicate(4789))
        );
        assert_eq!(PortSet::new(&[4790]), Err(PortSetError::VxlanGpe));
        assert_eq!(PortSet::new(&[4789, 4790]), Err(PortSetError::VxlanGpe));

        let messages = [
            PortSetError::Empty,
            PortSetError::TooMany(9),
            PortSetError::Zero,
            PortSetError::Duplicate(4789),
            PortSetError::VxlanGpe,
        ]
        .map(|e| e.to_string());
        assert!(messages[0].contains("4789"));
        assert!(messages[1].contains("at most 8"));
        assert!(messages[3].contains("4789"));
        assert!(messages[4].contains("4790") && messages[4].contains("VXLAN-GPE"));
        for message in &messages {
            assert!(message.contains(':'), "{message} should name the fix");
        }
        let boxed: Box<dyn std::error::Error> = Box::new(PortSetError::Zero);
        assert!(boxed.to_string().contains("port 0"));
    }

    // ---- truncated mirrors ----

    /// An inner Ethernet frame with the given VLAN tags and an IPv6/UDP packet of
    /// `payload_len` UDP payload bytes.
    fn inner_ipv6_frame(tags: &[u16], payload_len: usize) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 1, 2, 0x02, 0, 0, 0, 1, 1];
        for &tpid in tags {
            frame.extend_from_slice(&tpid.to_be_bytes());
            frame.extend_from_slice(&[0, 100]);
        }
        frame.extend_from_slice(&EtherType::IPV6.to_be_bytes());
        let mut ip = vec![0u8; ipv6::HEADER_LEN + 8 + payload_len];
        let mut packet = ipv6::Packet::new_unchecked(&mut *ip);
        packet.set_version(6);
        packet.set_payload_len((8 + payload_len) as u16);
        packet.set_next_header(IpProtocol::UDP);
        frame.extend_from_slice(&ip);
        frame
    }

    /// `inner`'s IPv4 packet behind the given VLAN tags (TPIDs), as a new inner frame.
    fn with_inner_tags(inner: &[u8], tpids: &[u16]) -> Vec<u8> {
        let mut out = inner[..12].to_vec();
        for &tpid in tpids {
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&[0, 7]);
        }
        out.extend_from_slice(&inner[12..]);
        out
    }

    fn decap_of(inner: &[u8]) -> Vec<u8> {
        v4_builder().inner(inner).build().expect("valid")
    }

    #[test]
    fn whole_inner_frames_are_not_truncated() {
        let frame = v4_frame();
        let decap = ok(&frame);
        assert_eq!(decap.inner_orig_len(), decap.inner.len());
        assert!(!decap.is_truncated());
        let v6 = inner_ipv6_frame(&[], 100);
        assert_eq!(inner_orig_len(&v6), v6.len());
    }

    #[test]
    fn truncated_inner_ipv4_reports_its_original_length() {
        let whole = inner_ipv4_udp_frame(&InnerIpv4Udp {
            payload_len: 1400,
            ..Default::default()
        })
        .expect("fits");
        assert_eq!(whole.len(), 1442);
        // Cuts as AWS makes them (PacketLength), down to the IPv4 length field.
        for cut in [1441, 1000, 128, 64, 34, 18] {
            let frame = decap_of(&whole[..cut]);
            let decap = ok(&frame);
            assert_eq!(decap.inner.len(), cut);
            assert_eq!(decap.inner_orig_len(), 1442, "cut {cut}");
            assert!(decap.is_truncated(), "cut {cut}");
        }
        // Cut inside the length field: nothing to go by.
        for cut in [14, 15, 16, 17] {
            assert_eq!(inner_orig_len(&whole[..cut]), cut);
        }
        // Behind one and two inner VLAN tags (any TPID).
        for tpids in [
            &[EtherType::VLAN][..],
            &[EtherType::QINQ, EtherType::VLAN],
            &[EtherType::QINQ_OLD, EtherType::QINQ],
        ] {
            let tagged = with_inner_tags(&whole, tpids);
            let frame = decap_of(&tagged[..200]);
            let decap = ok(&frame);
            assert_eq!(decap.inner_orig_len(), tagged.len(), "{tpids:?}");
            assert!(decap.is_truncated());
        }
        // Three tags are more than decapsulate walks: taken as is.
        let tagged = with_inner_tags(&whole, &[EtherType::VLAN; 3]);
        assert_eq!(inner_orig_len(&tagged[..200]), 200);
    }

    #[test]
    fn truncated_inner_ipv6_reports_its_original_length() {
        let whole = inner_ipv6_frame(&[], 1000);
        assert_eq!(whole.len(), 14 + 40 + 8 + 1000);
        for cut in [whole.len() - 1, 128, 20] {
            let frame = decap_of(&whole[..cut]);
            let decap = ok(&frame);
            assert_eq!(decap.inner_orig_len(), whole.len(), "cut {cut}");
            assert!(decap.is_truncated());
        }
        assert_eq!(inner_orig_len(&whole[..19]), 19);
        let tagged = inner_ipv6_frame(&[EtherType::QINQ, EtherType::VLAN], 1000);
        assert_eq!(inner_orig_len(&tagged[..100]), tagged.len());
        // A jumbogram's payload length 0 says nothing.
        let mut jumbo = whole[..100].to_vec();
        jumbo[18..20].copy_from_slice(&[0, 0]);
        assert_eq!(inner_orig_len(&jumbo), 100);
    }

    #[test]
    fn implausible_or_non_ip_inner_frames_keep_their_length() {
        let whole = inner();
        // Ethernet padding after the IPv4 packet: longer than the IP length, not truncated.
        let mut padded = whole.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(inner_orig_len(&padded), padded.len());
        // Total length 0 (as TSO leaves it) or below the header length.
        for total in [0u16, 19, 23] {
            let mut bad = with_ipv4_options_inner(&whole);
            bad[16..18].copy_from_slice(&total.to_be_bytes());
            assert_eq!(inner_orig_len(&bad[..40]), 40, "total {total}");
        }
        // IHL below 5, a wrong version.
        let mut bad = whole.clone();
        bad[14] = 0x44;
        assert_eq!(inner_orig_len(&bad[..40]), 40);
        let mut bad = whole.clone();
        bad[14] = 0x65;
        assert_eq!(inner_orig_len(&bad[..40]), 40);
        let mut bad = inner_ipv6_frame(&[], 100);
        bad[14] = 0x40;
        assert_eq!(inner_orig_len(&bad[..40]), 40);
        // ARP, a runt, an empty slice.
        let mut arp = whole.clone();
        arp[12..14].copy_from_slice(&EtherType::ARP.to_be_bytes());
        assert_eq!(inner_orig_len(&arp[..30]), 30);
        assert_eq!(inner_orig_len(&whole[..10]), 10);
        assert_eq!(inner_orig_len(&[]), 0);
    }

    /// `inner()` with 4 bytes of IPv4 options (IHL 6), so a total of 23 is below the header.
    fn with_ipv4_options_inner(inner: &[u8]) -> Vec<u8> {
        let mut out = inner[..34].to_vec();
        out.extend_from_slice(&[1, 1, 1, 0]);
        out.extend_from_slice(&inner[34..]);
        out[14] = 0x46;
        out
    }

    #[test]
    fn inner_orig_len_never_panics_on_prefixes_or_mutations() {
        let samples = [
            inner(),
            inner_ipv6_frame(&[EtherType::VLAN], 64),
            with_inner_tags(&inner(), &[EtherType::QINQ, EtherType::VLAN]),
        ];
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        for sample in &samples {
            for len in 0..=sample.len() {
                let orig = inner_orig_len(&sample[..len]);
                assert!(orig >= len);
                assert!(orig <= len.max(sample.len()));
            }
            for _ in 0..5_000 {
                let mut frame = sample.clone();
                let at = rng.below(frame.len().min(40));
                frame[at] = rng.next() as u8;
                let len = rng.below(frame.len() + 1);
                let orig = inner_orig_len(&frame[..len]);
                assert!(orig >= len);
                assert!(orig <= len.max(22 + 60 + 65_535));
            }
        }
    }

    // ---- robustness ----

    fn sample_frames() -> Vec<Vec<u8>> {
        vec![
            v4_frame(),
            v4_builder().outer_vlans(&[1, 2]).build().expect("ok"),
            with_ipv4_options(&v4_frame(), &[1, 1, 1, 0]),
            v6_frame(),
            with_ipv6_exts(
                &v6_frame(),
                &[IpProtocol::HOP_BY_HOP, IpProtocol::IPV6_ROUTING],
            ),
            with_tags(&v6_frame(), &[(EtherType::QINQ_OLD, 9)]),
            geneve_builder().aws_gwlb(1, 2, 3).build().expect("ok"),
            gwlb_mirror_frame(&inner()),
        ]
    }

    #[test]
    fn every_prefix_is_rejected_without_panicking() {
        for frame in sample_frames() {
            ok(&frame);
            // Every header up to and including the inner Ethernet header.
            let full_stack = ok(&frame).inner_offset + ethernet::HEADER_LEN;
            for len in 0..frame.len() {
                let result = decapsulate(&frame[..len], &PortSet::default());
                if len < full_stack {
                    assert!(result.is_err(), "prefix {len} < header stack {full_stack}");
                } else {
                    // Longer cuts fail too: the IP and UDP length fields no longer fit.
                    assert!(result.is_err(), "prefix {len} of {} accepted", frame.len());
                }
            }
        }
    }

    /// A small xorshift generator so the mutation test needs no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        let frames = sample_frames();
        let ports = PortSet::new(&[4789, 8472]).expect("valid");
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for _ in 0..50_000 {
            let mut frame = frames[rng.below(frames.len())].clone();
            for _ in 0..=rng.below(4) {
                // Bias mutations towards the outer headers, where the decisions are made.
                let at = rng.below(frame.len().min(110));
                frame[at] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                frame.truncate(rng.below(frame.len() + 1));
            }
            if let Ok(decap) = decapsulate(&frame, &ports) {
                check_invariants(&frame, &decap);
                accepted += 1;
            }
        }
        assert!(
            accepted > 0,
            "some mutations (e.g. of MACs) must still decapsulate"
        );
    }
}
