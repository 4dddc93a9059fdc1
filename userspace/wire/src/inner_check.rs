//! What an inner packet's own checksum can prove about a reassembled outer datagram.
//!
//! When every outer datagram between two hosts has IP ID 0 (Azure vTAP), the IP layer cannot
//! tell the tail of one datagram from the tail of the next one of the same size. The inner
//! packet can: its TCP, UDP, ICMP or ICMPv6 checksum covers the whole inner segment, whose
//! start is in the outer first fragment and whose end is in the last. A reassembled datagram
//! whose inner checksum is set but wrong was put together from two datagrams (or the sender put
//! a wrong checksum on the wire, which looks the same from here).
//!
//! [`check_inner`] answers [`InnerCheck::Valid`], [`InnerCheck::Mismatch`] or
//! [`InnerCheck::Unprovable`]. Unprovable: the inner frame is not Ethernet (up to two VLAN tags)
//! carrying IPv4 or IPv6 (no extension headers) with TCP, UDP, ICMP or ICMPv6; it is an inner IP
//! fragment; the mirror cut it short (the IP length says more than the frame holds); the UDP
//! checksum is 0 (not computed); or the checksum field holds only the pseudo-header sum, which
//! is what a sender using checksum offload leaves for the NIC to finish (Linux resolves that
//! before it fragments — `ip_do_fragment` calls `skb_checksum_help` for `CHECKSUM_PARTIAL` — but
//! a mirror copies packets as the VM handed them over).
//!
//! Never panics, never allocates: one pass over the inner segment.

use crate::checksum;
use crate::decap::MAX_VLAN_TAGS;
use crate::ethernet::EtherType;
use crate::ip::IpProtocol;
use crate::{ipv4, ipv6, vlan};

const ICMP: u8 = IpProtocol::ICMP;
const ICMPV6: u8 = IpProtocol::ICMPV6;

/// What the inner checksum says about a reassembled datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InnerCheck {
    /// The inner checksum is set and correct over all the bytes.
    Valid,
    /// The inner checksum is set and wrong: the bytes are not what the sender summed.
    Mismatch,
    /// Nothing to check (see the [module docs](self) for the cases).
    Unprovable,
}

/// Checks the inner frame (Ethernet onwards) a VXLAN datagram carries.
///
/// ```
/// use vxdecap_wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp};
/// use vxdecap_wire::inner_check::{check_inner, InnerCheck};
/// let mut frame = inner_ipv4_udp_frame(&InnerIpv4Udp::default()).expect("frame");
/// assert_eq!(check_inner(&frame), InnerCheck::Valid);
/// *frame.last_mut().unwrap() ^= 1;
/// assert_eq!(check_inner(&frame), InnerCheck::Mismatch);
/// ```
pub fn check_inner(frame: &[u8]) -> InnerCheck {
    let Some((ethertype, l3)) = vlan::skip_tags(frame, MAX_VLAN_TAGS) else {
        return InnerCheck::Unprovable;
    };
    let Some(l3) = frame.get(l3..) else {
        return InnerCheck::Unprovable;
    };
    match ethertype {
        EtherType::IPV4 => check_ipv4(l3),
        EtherType::IPV6 => check_ipv6(l3),
        _ => InnerCheck::Unprovable,
    }
}

fn check_ipv4(l3: &[u8]) -> InnerCheck {
    let Ok(ip) = ipv4::Packet::new_checked(l3) else {
        return InnerCheck::Unprovable;
    };
    let total = usize::from(ip.total_len());
    if ip.is_fragment() || total > l3.len() || total < ip.header_len() {
        return InnerCheck::Unprovable;
    }
    let Some(segment) = l3.get(ip.header_len()..total) else {
        return InnerCheck::Unprovable;
    };
    let Ok(len) = u16::try_from(segment.len()) else {
        return InnerCheck::Unprovable;
    };
    let protocol = ip.protocol();
    let pseudo = match protocol {
        IpProtocol::TCP | IpProtocol::UDP => {
            checksum::pseudo_header_v4(ip.src_addr(), ip.dst_addr(), protocol, len)
        }
        ICMP => 0,
        _ => return InnerCheck::Unprovable,
    };
    verdict(protocol, segment, pseudo, protocol != ICMP)
}

fn check_ipv6(l3: &[u8]) -> InnerCheck {
    let Ok(ip) = ipv6::Packet::new_checked(l3) else {
        return InnerCheck::Unprovable;
    };
    let len = usize::from(ip.payload_len());
    let Some(segment) = l3.get(ipv6::HEADER_LEN..ipv6::HEADER_LEN + len) else {
        return InnerCheck::Unprovable;
    };
    let protocol = ip.next_header();
    if !matches!(protocol, IpProtocol::TCP | IpProtocol::UDP | ICMPV6) {
        return InnerCheck::Unprovable;
    }
    let pseudo = checksum::pseudo_header_v6(ip.src_addr(), ip.dst_addr(), protocol, len as u32);
    verdict(protocol, segment, pseudo, true)
}

/// The verdict on `segment` (the L4 header and payload) whose pseudo-header sums to `pseudo`.
/// `partial_possible`: a field holding just the pseudo-header sum is an offload leftover.
fn verdict(protocol: u8, segment: &[u8], pseudo: u16, partial_possible: bool) -> InnerCheck {
    let field_at = match protocol {
        IpProtocol::TCP => 16,
        IpProtocol::UDP => 6,
        _ => 2, // ICMP, ICMPv6
    };
    let Some(field) = segment.get(field_at..field_at + 2) else {
        return InnerCheck::Unprovable;
    };
    let field = u16::from_be_bytes([field[0], field[1]]);
    if protocol == IpProtocol::UDP && field == 0 {
        return InnerCheck::Unprovable;
    }
    if checksum::combine(&[pseudo, checksum::data(segment)]) == 0xffff {
        return InnerCheck::Valid;
    }
    // Checksum offload: the sender left the pseudo-header sum for the NIC to complete (Linux
    // writes it uncomplemented; accept either form).
    if partial_possible && (field == pseudo || field == !pseudo) {
        return InnerCheck::Unprovable;
    }
    InnerCheck::Mismatch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{inner_ipv4_udp_frame, InnerIpv4Udp};
    use std::net::Ipv6Addr;

    fn udp_frame(seed: u8) -> Vec<u8> {
        inner_ipv4_udp_frame(&InnerIpv4Udp {
            payload_len: 100,
            payload_seed: seed,
            ..Default::default()
        })
        .expect("frame")
    }

    /// An inner IPv4 frame of `protocol` whose L4 bytes are `segment`, checksum at `field_at`
    /// filled correctly (with the pseudo-header for TCP).
    fn ipv4_frame(protocol: u8, mut segment: Vec<u8>, field_at: usize) -> Vec<u8> {
        let template = udp_frame(0);
        let mut frame = template[..34].to_vec();
        frame[14 + 9] = protocol;
        let total = (20 + segment.len()) as u16;
        frame[16..18].copy_from_slice(&total.to_be_bytes());
        let addr = |at: usize| {
            std::net::Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3])
        };
        let pseudo = if protocol == ICMP {
            0
        } else {
            checksum::pseudo_header_v4(addr(26), addr(30), protocol, segment.len() as u16)
        };
        segment[field_at..field_at + 2].fill(0);
        let sum = checksum::combine(&[pseudo, checksum::data(&segment)]);
        segment[field_at..field_at + 2].copy_from_slice(&(!sum).to_be_bytes());
        frame.extend_from_slice(&segment);
        ipv4::Packet::new_unchecked(&mut frame[14..]).fill_checksum();
        frame
    }

    #[test]
    fn udp_valid_mismatch_unset_and_partial() {
        let frame = udp_frame(1);
        assert_eq!(check_inner(&frame), InnerCheck::Valid);
        // Another datagram's tail under this head: the bytes differ.
        let other = udp_frame(2);
        let mut mixed = frame[..80].to_vec();
        mixed.extend_from_slice(&other[80..]);
        assert_eq!(check_inner(&mixed), InnerCheck::Mismatch);
        // UDP checksum 0: not computed.
        let mut unset = mixed.clone();
        unset[40..42].fill(0);
        assert_eq!(check_inner(&unset), InnerCheck::Unprovable);
        // Offload leftover: the pseudo-header sum in the field.
        let ip = ipv4::Packet::new_checked(&frame[14..]).expect("ipv4");
        let pseudo = checksum::pseudo_header_v4(ip.src_addr(), ip.dst_addr(), 17, 108);
        let mut partial = mixed.clone();
        partial[40..42].copy_from_slice(&pseudo.to_be_bytes());
        assert_eq!(check_inner(&partial), InnerCheck::Unprovable);
    }

    #[test]
    fn tcp_and_icmp_are_checked() {
        let segment: Vec<u8> = (0..200u8).collect();
        let tcp = ipv4_frame(IpProtocol::TCP, segment.clone(), 16);
        assert_eq!(check_inner(&tcp), InnerCheck::Valid);
        let mut bad = tcp;
        bad[200] ^= 0x40;
        assert_eq!(check_inner(&bad), InnerCheck::Mismatch);
        let icmp = ipv4_frame(ICMP, segment, 2);
        assert_eq!(check_inner(&icmp), InnerCheck::Valid);
        let mut bad = icmp;
        bad[100] ^= 1;
        assert_eq!(check_inner(&bad), InnerCheck::Mismatch);
    }

    #[test]
    fn ipv6_udp_is_checked() {
        let (src, dst) = (
            "fd00::1".parse::<Ipv6Addr>().unwrap(),
            "fd00::2".parse::<Ipv6Addr>().unwrap(),
        );
        let mut udp = vec![0x9c, 0x40, 0x13, 0x88, 0, 40, 0, 0];
        udp.extend((0..32u8).map(|b| b.wrapping_mul(7)));
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::UDP, 40);
        let sum = checksum::combine(&[pseudo, checksum::data(&udp)]);
        udp[6..8].copy_from_slice(&(!sum).to_be_bytes());
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&EtherType::IPV6.to_be_bytes());
        let mut ip = vec![0x60, 0, 0, 0, 0, 40, IpProtocol::UDP, 64];
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&udp);
        assert_eq!(check_inner(&frame), InnerCheck::Valid);
        let last = frame.len() - 1;
        frame[last] ^= 0x10;
        assert_eq!(check_inner(&frame), InnerCheck::Mismatch);
    }

    #[test]
    fn what_cannot_be_checked_is_unprovable() {
        let frame = udp_frame(3);
        // Cut by the mirror: the IP length says more than there is.
        assert_eq!(
            check_inner(&frame[..frame.len() - 1]),
            InnerCheck::Unprovable
        );
        // An inner fragment.
        let mut fragment = frame.clone();
        fragment[14 + 6] |= 0x20;
        assert_eq!(check_inner(&fragment), InnerCheck::Unprovable);
        // Another protocol (GRE), ARP, a runt.
        let gre = ipv4_frame(47, vec![0; 40], 2);
        assert_eq!(check_inner(&gre), InnerCheck::Unprovable);
        let mut arp = frame.clone();
        arp[12..14].copy_from_slice(&EtherType::ARP.to_be_bytes());
        assert_eq!(check_inner(&arp), InnerCheck::Unprovable);
        assert_eq!(check_inner(&frame[..20]), InnerCheck::Unprovable);
        assert_eq!(check_inner(&[]), InnerCheck::Unprovable);
    }
}
