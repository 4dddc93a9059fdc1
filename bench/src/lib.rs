//! Shared pieces of the vxdecap benchmarks.

use vxdecap_wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp, VxlanFrameBuilder};

/// A VXLAN frame over IPv4 whose inner Ethernet/IPv4/UDP frame carries
/// `payload_len` bytes (`payload_len` 14 gives a 106-byte outer frame,
/// the size the targets were measured with).
pub fn sample_frame(payload_len: usize) -> Vec<u8> {
    let inner = inner_ipv4_udp_frame(&InnerIpv4Udp {
        payload_len,
        ..InnerIpv4Udp::default()
    })
    .expect("inner frame within limits");
    VxlanFrameBuilder::new()
        .outer_src_ip(std::net::Ipv4Addr::new(10, 0, 2, 4))
        .outer_dst_ip(std::net::Ipv4Addr::new(10, 1, 1, 4))
        .vni(27)
        .inner(&inner)
        .build()
        .expect("outer frame within limits")
}
