//! The XDP steering program's decisions on crafted frames, run in the
//! kernel with BPF_PROG_TEST_RUN (no interface, no traffic). Needs root.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::privileged;
use vxdecap::steer::{Steering, XdpCounter};
use vxdecap::wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp, VxlanFrameBuilder};
use vxdecap::wire::PortSet;

const XDP_PASS: u32 = 2;

fn inner() -> Vec<u8> {
    inner_ipv4_udp_frame(&InnerIpv4Udp::default()).expect("inner frame")
}

fn v4() -> VxlanFrameBuilder {
    VxlanFrameBuilder::new()
        .outer_src_ip(Ipv4Addr::new(10, 0, 2, 4))
        .outer_dst_ip(Ipv4Addr::new(10, 1, 1, 4))
        .vni(27)
}

fn build(b: VxlanFrameBuilder) -> Vec<u8> {
    b.inner(&inner()).build().expect("outer frame")
}

/// Inserts 4 bytes of IPv4 options (NOPs) into an untagged IPv4 frame.
fn with_ipv4_options(mut frame: Vec<u8>) -> Vec<u8> {
    frame.splice(34..34, [1u8, 1, 1, 1]);
    frame[14] = 0x46;
    let total = u16::from_be_bytes([frame[16], frame[17]]) + 4;
    frame[16..18].copy_from_slice(&total.to_be_bytes());
    frame
}

#[test]
fn steering_decisions_on_crafted_frames() {
    if !privileged("XDP BPF_PROG_TEST_RUN") {
        return;
    }
    let ports = PortSet::new(&[4789, 8472]).expect("ports");
    let steering = Steering::load("lo", &ports).expect("load the XDP program");

    let mut arp = vec![0xffu8; 12];
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0u8; 28]);
    let mut tcp = build(v4());
    tcp[14 + 9] = 6;
    let mut fragment = build(v4());
    fragment[14 + 6] |= 0x20; // more fragments
    let mut later_fragment = build(v4());
    later_fragment[14 + 7] = 0x10; // offset 128 bytes
    let mut truncated = build(v4());
    truncated.truncate(14 + 20 + 4);
    let three_tags = build(v4().outer_vlans(&[10, 20]))
        .into_iter()
        .collect::<Vec<u8>>();
    let mut three_tags_frame = three_tags[..12].to_vec();
    three_tags_frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    three_tags_frame.extend_from_slice(&three_tags[12..]);

    let cases: Vec<(&str, Vec<u8>, XdpCounter)> = vec![
        ("IPv4 VXLAN 4789", build(v4()), XdpCounter::PassNoSocket),
        (
            "IPv4 VXLAN on configured port 8472",
            build(v4().udp_dst_port(8472)),
            XdpCounter::PassNoSocket,
        ),
        (
            "VXLAN-GPE port 4790",
            build(v4().udp_dst_port(4790)),
            XdpCounter::PassPort,
        ),
        (
            "outer 802.1Q",
            build(v4().outer_vlans(&[42])),
            XdpCounter::PassNoSocket,
        ),
        (
            "outer QinQ",
            build(v4().outer_vlans(&[200, 100])),
            XdpCounter::PassNoSocket,
        ),
        ("three outer tags", three_tags_frame, XdpCounter::PassNotIp),
        (
            "IPv4 with options",
            with_ipv4_options(build(v4())),
            XdpCounter::PassNoSocket,
        ),
        (
            "IPv6 outer",
            build(
                VxlanFrameBuilder::new()
                    .outer_src_ip("fd00::4".parse::<Ipv6Addr>().unwrap())
                    .outer_dst_ip("fd00::1:4".parse::<Ipv6Addr>().unwrap())
                    .vni(27),
            ),
            XdpCounter::PassNoSocket,
        ),
        ("TCP", tcp, XdpCounter::PassNotUdp),
        ("ARP", arp, XdpCounter::PassNotIp),
        ("first fragment", fragment, XdpCounter::PassFragment),
        ("later fragment", later_fragment, XdpCounter::PassFragment),
        ("cut inside UDP", truncated, XdpCounter::PassMalformed),
    ];
    for (name, frame, expected) in cases {
        let before = steering.counters().expect("counters");
        let action = steering.test_run(&frame).expect("BPF_PROG_TEST_RUN");
        let after = steering.counters().expect("counters");
        assert_eq!(
            action, XDP_PASS,
            "{name}: no socket is registered, so everything passes"
        );
        for counter in XdpCounter::ALL {
            let delta = after.get(counter) - before.get(counter);
            let want = u64::from(counter == expected);
            assert_eq!(
                delta,
                want,
                "{name}: counter {} moved by {delta}",
                counter.name()
            );
        }
    }
}
