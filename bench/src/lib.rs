//! Shared pieces of the vxdecap benchmarks: the frames every scenario is
//! fed, so all tools see the same bytes.

use std::net::Ipv4Addr;

use vxdecap_wire::build::{
    inner_ipv4_udp_frame, GeneveFrameBuilder, InnerIpv4Udp, VxlanFrameBuilder,
};

/// Inner frame sizes of the simple IMIX (7:4:1 of 64, 570 and 1518 bytes).
pub const IMIX: [(usize, u32); 3] = [(64, 7), (570, 4), (1518, 1)];
/// Bytes VXLAN over IPv4 adds in front of the inner frame.
pub const VXLAN_OVERHEAD: usize = 14 + 20 + 8 + 8;
/// Offset of the outer UDP source port (untagged IPv4, no options).
pub const OUTER_SPORT_OFFSET: usize = 14 + 20;
/// Offset of the inner UDP source port.
pub const INNER_SPORT_OFFSET: usize = VXLAN_OVERHEAD + 14 + 20;

/// A VXLAN frame over IPv4 whose inner Ethernet/IPv4/UDP frame carries
/// `payload_len` bytes (`payload_len` 14 gives a 106-byte outer frame,
/// the size the targets were measured with).
pub fn sample_frame(payload_len: usize) -> Vec<u8> {
    vxlan_frame(
        payload_len + 42,
        [0xff; 6],
        Ipv4Addr::new(10, 0, 2, 4),
        Ipv4Addr::new(10, 1, 1, 4),
    )
}

/// A VXLAN frame (VNI 27) whose inner Ethernet/IPv4/UDP frame is
/// `inner_size` bytes long (at least 42), addressed to `dst_mac`/`dst`.
pub fn vxlan_frame(inner_size: usize, dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let inner = inner_ipv4_udp_frame(&InnerIpv4Udp {
        payload_len: inner_size.max(42) - 42,
        ..InnerIpv4Udp::default()
    })
    .expect("inner frame within limits");
    VxlanFrameBuilder::new()
        .outer_dst_mac(dst_mac)
        .outer_src_ip(src)
        .outer_dst_ip(dst)
        .vni(27)
        .inner(&inner)
        .build()
        .expect("outer frame within limits")
}

/// Bytes AWS Traffic Mirroring through a Gateway Load Balancer endpoint adds in front of the
/// mirrored frame: Ethernet, IPv4, UDP, GENEVE with the three AWS options (32 bytes), then the
/// mirror's IPv4, UDP and VXLAN.
pub const GENEVE_VXLAN_OVERHEAD: usize = 14 + 20 + 8 + 8 + 32 + 20 + 8 + 8;
/// Offset of the inner UDP source port of a [`geneve_vxlan_frame`].
pub const GENEVE_VXLAN_INNER_SPORT_OFFSET: usize = GENEVE_VXLAN_OVERHEAD + 14 + 20;

/// How the generator wraps the inner frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    /// VXLAN (VNI 27), as Azure vTAP and AWS Traffic Mirroring send it.
    Vxlan,
    /// The same VXLAN frame's IP packet inside AWS Gateway Load Balancer GENEVE (port 6081,
    /// the three AWS options): Traffic Mirroring into a GWLB endpoint.
    GeneveVxlan,
}

impl Encap {
    /// The wrapped frame whose inner Ethernet/IPv4/UDP frame is `inner_size` bytes.
    pub fn frame(
        self,
        inner_size: usize,
        dst_mac: [u8; 6],
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Vec<u8> {
        match self {
            Self::Vxlan => vxlan_frame(inner_size, dst_mac, src, dst),
            Self::GeneveVxlan => geneve_vxlan_frame(inner_size, dst_mac, src, dst),
        }
    }

    /// Offset of the inner UDP source port.
    pub fn inner_sport_offset(self) -> usize {
        match self {
            Self::Vxlan => INNER_SPORT_OFFSET,
            Self::GeneveVxlan => GENEVE_VXLAN_INNER_SPORT_OFFSET,
        }
    }
}

/// [`vxlan_frame`]'s VXLAN datagram (from 10.0.1.50 to 10.0.9.9) as the bare IPv4 payload of
/// AWS Gateway Load Balancer GENEVE from `src` to `dst`; the outer UDP source port sits where
/// VXLAN's does ([`OUTER_SPORT_OFFSET`]).
pub fn geneve_vxlan_frame(
    inner_size: usize,
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Vec<u8> {
    let mirror = vxlan_frame(
        inner_size,
        [0x02; 6],
        Ipv4Addr::new(10, 0, 1, 50),
        Ipv4Addr::new(10, 0, 9, 9),
    );
    GeneveFrameBuilder::new()
        .outer(|o| o.outer_dst_mac(dst_mac).outer_src_ip(src).outer_dst_ip(dst))
        .protocol(vxdecap_wire::geneve::protocol::IPV4)
        .aws_gwlb(0x0a1b_2c3d_4e5f_6071, 0x77, 0xc00c1e)
        .payload(&mirror[14..])
        .build()
        .expect("outer frame within limits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_documented_sizes_and_port_offsets() {
        assert_eq!(sample_frame(14).len(), 106);
        let f = vxlan_frame(
            64,
            [2; 6],
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
        );
        assert_eq!(f.len(), 64 + VXLAN_OVERHEAD);
        assert_eq!(
            u16::from_be_bytes([f[OUTER_SPORT_OFFSET + 2], f[OUTER_SPORT_OFFSET + 3]]),
            4789
        );
        assert_eq!(
            u16::from_be_bytes([f[INNER_SPORT_OFFSET], f[INNER_SPORT_OFFSET + 1]]),
            40000
        );
        let decap =
            vxdecap_wire::decapsulate(&f, &vxdecap_wire::PortSet::default()).expect("valid VXLAN");
        assert_eq!(decap.inner.len(), 64);
    }

    #[test]
    fn geneve_vxlan_frames_decapsulate_to_the_same_inner_frame() {
        let (src, dst) = (Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2));
        let plain = Encap::Vxlan.frame(64, [2; 6], src, dst);
        let nested = Encap::GeneveVxlan.frame(64, [2; 6], src, dst);
        assert_eq!(nested.len(), 64 + GENEVE_VXLAN_OVERHEAD);
        assert_eq!(
            plain[OUTER_SPORT_OFFSET..][..2],
            nested[OUTER_SPORT_OFFSET..][..2]
        );
        let port = Encap::GeneveVxlan.inner_sport_offset();
        assert_eq!(u16::from_be_bytes([nested[port], nested[port + 1]]), 40000);
        let ports = vxdecap_wire::PortSet::default();
        let a = vxdecap_wire::decapsulate(&plain, &ports).expect("VXLAN");
        let b = vxdecap_wire::decapsulate(&nested, &ports).expect("GENEVE(VXLAN)");
        assert_eq!((a.inner, a.vni), (b.inner, b.vni));
        assert!(b.geneve.is_some());
    }
}
