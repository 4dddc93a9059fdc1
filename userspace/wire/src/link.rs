//! The link-layer headers capture files put in front of the outer IP packet.
//!
//! Live frames always start with Ethernet, but a capture file may hold other link types:
//! `tcpdump -i any` writes Linux cooked captures (SLL, or SLL2 on current tcpdump), tunnels and
//! some cloud tools write raw IP, and BSD loopback captures the NULL/LOOP header. Each is a
//! fixed header with an EtherType or an address family in it, then the packet; [`link_payload`]
//! finds the EtherType and where the payload starts, and [`decapsulate_link`] walks the rest of
//! the stack as [`crate::decapsulate`] does from there (the inner frame is always Ethernet: that
//! is what VXLAN carries).
//!
//! Like the rest of the crate: checked reads only, so no input can make these panic; no
//! allocation, no copy.
//!
//! ```
//! use vxdecap_wire::build::VxlanFrameBuilder;
//! use vxdecap_wire::link::{decapsulate_link, LinkType};
//! use vxdecap_wire::PortSet;
//!
//! let frame = VxlanFrameBuilder::new().vni(7).inner(&[0u8; 60]).build().expect("valid");
//! // The same packet as raw IP: the Ethernet header dropped.
//! let raw = &frame[14..];
//! let decap = decapsulate_link(raw, LinkType::Raw, &PortSet::default()).expect("VXLAN");
//! assert_eq!(decap.vni, 7);
//! assert_eq!(decap.inner, &frame[frame.len() - 60..]);
//! ```

use crate::decap::{decapsulate_from_l3, Decapsulated, PortSet, Reject};
use crate::ethernet::{self, EtherType};

/// Length of a Linux cooked (SLL) header.
pub const SLL_HEADER_LEN: usize = 16;
/// Length of a Linux cooked v2 (SLL2) header.
pub const SLL2_HEADER_LEN: usize = 20;
/// Length of a NULL or LOOP header (the address family).
pub const NULL_HEADER_LEN: usize = 4;

/// A link-layer header type of a capture file (its `LINKTYPE_` value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1): Ethernet II.
    Ethernet,
    /// `LINKTYPE_LINUX_SLL` (113): Linux cooked capture, protocol at bytes 14..16.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): Linux cooked capture v2, protocol at bytes 0..2.
    LinuxSll2,
    /// `LINKTYPE_RAW` (101; also DLT 12 and 14 as found in files): IPv4 or IPv6 by its version.
    Raw,
    /// `LINKTYPE_IPV4` (228).
    Ipv4,
    /// `LINKTYPE_IPV6` (229).
    Ipv6,
    /// `LINKTYPE_NULL` (0): BSD loopback, a 4-byte address family in the writer's byte order.
    Null,
    /// `LINKTYPE_LOOP` (108): OpenBSD loopback, the address family in network byte order.
    Loop,
}

impl LinkType {
    /// The link type of a capture file's `LINKTYPE_` value (the upper 6 bits, FCS
    /// information, are ignored), or `None` when it cannot carry IP to decapsulate.
    pub fn from_linktype(value: u32) -> Option<Self> {
        Some(match value & 0x03FF_FFFF {
            1 => Self::Ethernet,
            113 => Self::LinuxSll,
            276 => Self::LinuxSll2,
            // DLT_RAW is 12 on most systems and 14 on OpenBSD; files carry either.
            101 | 12 | 14 => Self::Raw,
            228 => Self::Ipv4,
            229 => Self::Ipv6,
            0 => Self::Null,
            108 => Self::Loop,
            _ => return None,
        })
    }

    /// The `LINKTYPE_` value.
    pub const fn linktype(self) -> u32 {
        match self {
            Self::Ethernet => 1,
            Self::LinuxSll => 113,
            Self::LinuxSll2 => 276,
            Self::Raw => 101,
            Self::Ipv4 => 228,
            Self::Ipv6 => 229,
            Self::Null => 0,
            Self::Loop => 108,
        }
    }

    /// libpcap's name for it (`EN10MB`, `LINUX_SLL`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ethernet => "EN10MB",
            Self::LinuxSll => "LINUX_SLL",
            Self::LinuxSll2 => "LINUX_SLL2",
            Self::Raw => "RAW",
            Self::Ipv4 => "IPV4",
            Self::Ipv6 => "IPV6",
            Self::Null => "NULL",
            Self::Loop => "LOOP",
        }
    }
}

/// Address families of IPv6 on the systems that write NULL/LOOP captures (Linux, the BSDs,
/// FreeBSD/DragonFly, Darwin, Windows).
const AF_INET6: [u32; 5] = [10, 24, 28, 30, 23];
const AF_INET: u32 = 2;

/// The EtherType of what follows the link-layer header of `frame`, and where it starts.
/// Refuses a frame shorter than its link-layer header ([`Reject::TruncatedLinkHeader`]) and a
/// NULL/LOOP or raw frame that is not IP ([`Reject::NotIp`]).
#[inline]
pub fn link_payload(frame: &[u8], link: LinkType) -> Result<(u16, usize), Reject> {
    let be16 = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(Reject::TruncatedLinkHeader)
    };
    match link {
        LinkType::Ethernet => {
            if frame.len() < ethernet::HEADER_LEN {
                return Err(Reject::TruncatedEthernet);
            }
            Ok((be16(12)?, ethernet::HEADER_LEN))
        }
        LinkType::LinuxSll => {
            if frame.len() < SLL_HEADER_LEN {
                return Err(Reject::TruncatedLinkHeader);
            }
            Ok((be16(14)?, SLL_HEADER_LEN))
        }
        LinkType::LinuxSll2 => {
            if frame.len() < SLL2_HEADER_LEN {
                return Err(Reject::TruncatedLinkHeader);
            }
            Ok((be16(0)?, SLL2_HEADER_LEN))
        }
        LinkType::Raw => match frame.first().map(|b| b >> 4) {
            Some(4) => Ok((EtherType::IPV4, 0)),
            Some(6) => Ok((EtherType::IPV6, 0)),
            _ => Err(Reject::NotIp),
        },
        LinkType::Ipv4 => Ok((EtherType::IPV4, 0)),
        LinkType::Ipv6 => Ok((EtherType::IPV6, 0)),
        LinkType::Null | LinkType::Loop => {
            let Some(&[a, b, c, d]) = frame.get(..NULL_HEADER_LEN) else {
                return Err(Reject::TruncatedLinkHeader);
            };
            // In the writer's byte order (NULL) or network order (LOOP); the value is
            // small, so whichever order reads small is the one.
            let little = u32::from_le_bytes([a, b, c, d]);
            let family = if little <= 0xFFFF {
                little
            } else {
                u32::from_be_bytes([a, b, c, d])
            };
            if family == AF_INET {
                Ok((EtherType::IPV4, NULL_HEADER_LEN))
            } else if AF_INET6.contains(&family) {
                Ok((EtherType::IPV6, NULL_HEADER_LEN))
            } else {
                Err(Reject::NotIp)
            }
        }
    }
}

/// [`crate::decapsulate`] for a frame of any [`LinkType`]: the same stack after the link-layer
/// header (VLAN tags are walked after an Ethernet or cooked header, where the EtherType says
/// so), the same invariants, never a panic, an allocation or a copy.
#[inline]
pub fn decapsulate_link<'a>(
    frame: &'a [u8],
    link: LinkType,
    ports: &PortSet,
) -> Result<Decapsulated<'a>, Reject> {
    if link == LinkType::Ethernet {
        // Its fast path for the common shape.
        return crate::decapsulate(frame, ports);
    }
    let (ethertype, offset) = link_payload(frame, link)?;
    decapsulate_from_l3(frame, ethertype, offset, ports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::VxlanFrameBuilder;
    use crate::decapsulate;
    use std::net::Ipv6Addr;

    fn v4_frame() -> Vec<u8> {
        VxlanFrameBuilder::new()
            .vni(27)
            .inner(&[0x5a; 64])
            .build()
            .expect("valid")
    }

    fn v6_frame() -> Vec<u8> {
        VxlanFrameBuilder::new()
            .outer_src_ip("2001:db8::1".parse::<Ipv6Addr>().expect("literal"))
            .outer_dst_ip("2001:db8::2".parse::<Ipv6Addr>().expect("literal"))
            .vni(28)
            .inner(&[0x5b; 64])
            .build()
            .expect("valid")
    }

    /// `frame` (Ethernet) with its Ethernet header replaced by `link`'s.
    fn relink(frame: &[u8], link: LinkType) -> Vec<u8> {
        let ethertype = [frame[12], frame[13]];
        let ip = &frame[14..];
        let v6 = ethertype == [0x86, 0xdd];
        let mut out = match link {
            LinkType::Ethernet => frame[..14].to_vec(),
            LinkType::LinuxSll => {
                let mut h = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
                h.extend_from_slice(&ethertype);
                h
            }
            LinkType::LinuxSll2 => {
                let mut h = ethertype.to_vec();
                h.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
                h
            }
            LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => Vec::new(),
            LinkType::Null => (if v6 { 30u32 } else { 2 }).to_le_bytes().to_vec(),
            LinkType::Loop => (if v6 { 24u32 } else { 2 }).to_be_bytes().to_vec(),
        };
        out.extend_from_slice(ip);
        out
    }

    const ALL: [LinkType; 8] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Raw,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::Null,
        LinkType::Loop,
    ];

    #[test]
    fn every_link_type_gives_the_inner_frame_ethernet_gives() {
        let ports = PortSet::default();
        for frame in [v4_frame(), v6_frame()] {
            let expected = decapsulate(&frame, &ports).expect("Ethernet");
            for link in ALL {
                if (link == LinkType::Ipv4 && frame[12] == 0x86)
                    || (link == LinkType::Ipv6 && frame[12] == 0x08)
                {
                    continue;
                }
                let linked = relink(&frame, link);
                let decap = decapsulate_link(&linked, link, &ports)
                    .unwrap_or_else(|r| panic!("{link:?}: {r}"));
                assert_eq!(decap.inner, expected.inner, "{link:?}");
                assert_eq!(decap.vni, expected.vni);
                assert_eq!(
                    (decap.outer_src, decap.outer_dst),
                    (expected.outer_src, expected.outer_dst)
                );
                let end = decap.inner_offset + decap.inner.len();
                assert_eq!(&linked[decap.inner_offset..end], decap.inner, "zero copy");
                assert_eq!(LinkType::from_linktype(link.linktype()), Some(link));
            }
        }
    }

    #[test]
    fn short_or_foreign_link_headers_are_named() {
        let ports = PortSet::default();
        let reject = |frame: &[u8], link| decapsulate_link(frame, link, &ports).unwrap_err();
        assert_eq!(
            reject(&[0; 15], LinkType::LinuxSll),
            Reject::TruncatedLinkHeader
        );
        assert_eq!(
            reject(&[0; 19], LinkType::LinuxSll2),
            Reject::TruncatedLinkHeader
        );
        assert_eq!(
            reject(&[2, 0, 0], LinkType::Null),
            Reject::TruncatedLinkHeader
        );
        assert_eq!(
            reject(&[0; 13], LinkType::Ethernet),
            Reject::TruncatedEthernet
        );
        assert_eq!(reject(&[], LinkType::Raw), Reject::NotIp);
        assert_eq!(reject(&[0x50; 40], LinkType::Raw), Reject::NotIp);
        // AF 7 is not IP; ARP over a cooked header is not IP either.
        assert_eq!(reject(&[7, 0, 0, 0, 0x45], LinkType::Null), Reject::NotIp);
        let mut arp = relink(&v4_frame(), LinkType::LinuxSll);
        arp[14..16].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(reject(&arp, LinkType::LinuxSll), Reject::NotIp);
        // IPV4 link type with an IPv6 packet: its header does not parse as IPv4.
        let v6 = relink(&v6_frame(), LinkType::Ipv6);
        assert_eq!(reject(&v6, LinkType::Ipv4), Reject::MalformedIpv4);
        assert_eq!(LinkType::from_linktype(147), None);
        assert_eq!(LinkType::from_linktype(12), Some(LinkType::Raw));
        assert_eq!(LinkType::from_linktype(14), Some(LinkType::Raw));
        assert_eq!(
            LinkType::from_linktype(0x0400_0001),
            Some(LinkType::Ethernet),
            "FCS bits"
        );
    }

    #[test]
    fn vlan_tags_after_a_cooked_header_are_walked() {
        let frame = v4_frame();
        let mut sll = relink(&frame, LinkType::LinuxSll);
        // Protocol 802.1Q, then the tag (VID 42) and the real EtherType.
        sll[14..16].copy_from_slice(&[0x81, 0x00]);
        sll.splice(16..16, [0x00, 42, 0x08, 0x00]);
        let decap = decapsulate_link(&sll, LinkType::LinuxSll, &PortSet::default()).expect("VXLAN");
        assert_eq!(decap.outer_vlan_ids(), &[42]);
        assert_eq!(decap.vni, 27);
    }

    #[test]
    fn prefixes_and_mutations_never_panic() {
        let ports = PortSet::default();
        for frame in [v4_frame(), v6_frame()] {
            for link in ALL {
                let linked = relink(&frame, link);
                for end in 0..linked.len() {
                    let _ = decapsulate_link(&linked[..end], link, &ports);
                }
                let mut mutated = linked.clone();
                for i in 0..mutated.len() {
                    mutated[i] ^= 0xff;
                    let _ = decapsulate_link(&mutated, link, &ports);
                    mutated[i] ^= 0xff;
                }
            }
        }
    }
}
