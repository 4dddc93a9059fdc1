//! The XDP steering program's decisions on crafted frames, run in the
//! kernel with BPF_PROG_TEST_RUN (no interface, no traffic). Needs root.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::privileged;
use vxdecap::steer::{Steering, XdpCounter};
use vxdecap::wire::build::{
    inner_ipv4_udp_frame, GeneveFrameBuilder, InnerIpv4Udp, VxlanFrameBuilder,
};
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

const XDP_DROP: u32 = 1;

/// Runs `frame` once; returns the action and the one counter that moved.
fn decide(steering: &Steering, frame: &[u8]) -> (u32, XdpCounter) {
    let before = steering.counters().expect("counters");
    let action = steering.test_run(frame).expect("BPF_PROG_TEST_RUN");
    let after = steering.counters().expect("counters");
    let moved: Vec<XdpCounter> = XdpCounter::ALL
        .into_iter()
        .filter(|&c| after.get(c) != before.get(c))
        .collect();
    assert_eq!(moved.len(), 1, "exactly one counter per frame: {moved:?}");
    (action, moved[0])
}

#[test]
fn allowlists_drop_forged_vxlan_and_change_at_run_time() {
    use vxdecap::steer::allow::{parse_vnis, Allowlist};
    if !privileged("XDP allowlists") {
        return;
    }
    let mut steering = Steering::load("lo", &PortSet::default()).expect("load");
    let from = |src: &str, vni: u32| {
        build(
            VxlanFrameBuilder::new()
                .outer_src_ip(src.parse::<std::net::IpAddr>().unwrap())
                .outer_dst_ip(if src.contains(':') {
                    "fd00::1".parse::<std::net::IpAddr>().unwrap()
                } else {
                    "10.1.1.4".parse::<std::net::IpAddr>().unwrap()
                })
                .vni(vni),
        )
    };
    let mut allow = Allowlist::default();
    allow.add_source("10.0.2.0/24".parse().unwrap()).unwrap();
    allow.add_source("fd00::4".parse().unwrap()).unwrap();
    allow.add_vnis(parse_vnis("27,100-101").unwrap()).unwrap();
    steering.set_allowlist(&allow).expect("set the allowlist");

    let pass = (XDP_PASS, XdpCounter::PassNoSocket);
    let no_source = (XDP_DROP, XdpCounter::DropSource);
    let no_vni = (XDP_DROP, XdpCounter::DropVni);
    assert_eq!(decide(&steering, &from("10.0.2.4", 27)), pass);
    assert_eq!(decide(&steering, &from("10.0.2.200", 101)), pass);
    assert_eq!(decide(&steering, &from("10.0.3.4", 27)), no_source);
    assert_eq!(decide(&steering, &from("10.0.2.4", 28)), no_vni);
    assert_eq!(decide(&steering, &from("fd00::4", 100)), pass);
    assert_eq!(decide(&steering, &from("fd00::5", 100)), no_source);
    // Not VXLAN to our port: the allowlists do not touch it.
    let other_port = build(
        v4().outer_src_ip(Ipv4Addr::new(192, 0, 2, 1))
            .udp_dst_port(53),
    );
    assert_eq!(
        decide(&steering, &other_port),
        (XDP_PASS, XdpCounter::PassPort)
    );

    // At run time: another source network, any VNI.
    let mut next = Allowlist::default();
    next.add_source("10.0.3.0/24".parse().unwrap()).unwrap();
    steering
        .set_allowlist(&next)
        .expect("replace the allowlist");
    assert_eq!(decide(&steering, &from("10.0.3.4", 28)), pass);
    assert_eq!(
        decide(&steering, &from("10.0.2.4", 27)),
        no_source,
        "stale entry removed"
    );
    assert_eq!(
        decide(&steering, &from("fd00::4", 27)),
        no_source,
        "v6 list now empty"
    );
    steering.set_allowlist(&Allowlist::default()).expect("open");
    assert_eq!(decide(&steering, &from("192.0.2.77", 5)), pass);
}

#[test]
fn fragments_follow_their_first_fragment_when_reassembly_is_on() {
    use vxdecap::steer::allow::{parse_vnis, Allowlist};
    if !privileged("XDP fragment steering") {
        return;
    }
    let mut steering = Steering::load_with("lo", &PortSet::default(), true).expect("load");
    // A datagram's first fragment (MF, offset 0) and a later one (offset 128), IP ID `id`.
    let pieces = |b: VxlanFrameBuilder, id: u16| {
        let mut first = build(b);
        first[14 + 4..14 + 6].copy_from_slice(&id.to_be_bytes());
        first[14 + 6] |= 0x20; // more fragments
        let mut later = first.clone();
        later[14 + 6] = 0;
        later[14 + 7] = 0x10; // offset 128
        (first, later)
    };
    let (first, later) = pieces(v4(), 0x1234);
    let (_, stranger) = pieces(v4(), 0x9999);
    // Host traffic: ordinary UDP to port 5000 from the same mirror source, under the key a
    // VXLAN datagram was steered with just before.
    let (host_first, host_later) = pieces(v4().udp_dst_port(5000), 0x1234);
    let (vni_first, vni_later) = pieces(v4().vni(4242), 0x4242);
    let (other_first, other_later) = pieces(v4().outer_src_ip(Ipv4Addr::new(10, 0, 3, 9)), 0x77);

    // Steered, but no socket on the queue: the steering counter moves, and the frame passes.
    let steered = (XDP_PASS, XdpCounter::FragmentSteered);
    let kernel = (XDP_PASS, XdpCounter::PassFragment);
    let run = |steering: &Steering, name: &str, frame: &[u8]| {
        let before = steering.counters().expect("counters");
        let action = steering.test_run(frame).expect("run");
        let after = steering.counters().expect("counters");
        let moved = |c| after.get(c) - before.get(c);
        // Exactly one of these: steered to AF_XDP, or left to the kernel, and why.
        let decision = [
            XdpCounter::FragmentSteered,
            XdpCounter::PassFragment,
            XdpCounter::PassPort,
            XdpCounter::DropVni,
            XdpCounter::DropSource,
        ]
        .into_iter()
        .filter(|&c| moved(c) > 0)
        .collect::<Vec<_>>();
        assert_eq!(decision.len(), 1, "{name}: {decision:?}");
        (action, decision[0])
    };
    assert_eq!(run(&steering, "later before its first", &later), kernel);
    assert_eq!(run(&steering, "first fragment", &first), steered);
    assert_eq!(run(&steering, "later after its first", &later), steered);
    assert_eq!(run(&steering, "other datagram", &stranger), kernel);
    // The host's datagram under the same key: its first fragment goes to the kernel, and so
    // must the rest of it.
    assert_eq!(
        run(&steering, "host first fragment", &host_first),
        (XDP_PASS, XdpCounter::PassPort)
    );
    assert_eq!(run(&steering, "host later fragment", &host_later), kernel);

    // With allowlists: a later fragment from an allowed source whose first fragment was not
    // steered is not ours either (it used to be taken, stealing the host's fragmented UDP).
    let mut allow = Allowlist::default();
    allow.add_source("10.0.2.0/24".parse().unwrap()).unwrap();
    allow.add_vnis(parse_vnis("27").unwrap()).unwrap();
    steering.set_allowlist(&allow).expect("allowlist");
    let (_, unseen) = pieces(v4(), 0x5555);
    assert_eq!(
        run(&steering, "allowed source, first unseen", &unseen),
        kernel
    );
    assert_eq!(
        run(&steering, "allowed host first", &host_first),
        (XDP_PASS, XdpCounter::PassPort)
    );
    assert_eq!(run(&steering, "allowed host later", &host_later), kernel);
    // A first fragment the allowlists drop takes its later fragments' steering with it.
    assert_eq!(
        run(&steering, "VNI refused", &vni_first),
        (XDP_DROP, XdpCounter::DropVni)
    );
    assert_eq!(run(&steering, "after a refused VNI", &vni_later), kernel);
    assert_eq!(
        run(&steering, "source refused", &other_first),
        (XDP_DROP, XdpCounter::DropSource)
    );
    assert_eq!(
        run(&steering, "after a refused source", &other_later),
        kernel
    );
    assert_eq!(run(&steering, "allowed first", &first), steered);
    assert_eq!(run(&steering, "allowed later", &later), steered);
}

/// A GENEVE frame from 10.0.2.4 with VNI `vni` to `port`, carrying the inner frame.
fn geneve(port: u16, vni: u32) -> Vec<u8> {
    GeneveFrameBuilder::new()
        .outer(|o| {
            o.outer_src_ip(Ipv4Addr::new(10, 0, 2, 4))
                .outer_dst_ip(Ipv4Addr::new(10, 1, 1, 4))
                .udp_dst_port(port)
        })
        .vni(vni)
        .aws_gwlb(1, 2, 3)
        .payload(&inner())
        .build()
        .expect("GENEVE frame")
}

#[test]
fn geneve_ports_are_steered_and_its_vnis_allowlisted() {
    use vxdecap::steer::allow::{parse_vnis, Allowlist};
    if !privileged("XDP GENEVE steering") {
        return;
    }
    let steered = (XDP_PASS, XdpCounter::PassNoSocket);
    let not_ours = (XDP_PASS, XdpCounter::PassPort);
    // The default ports: VXLAN 4789 and GENEVE 6081.
    let steering = Steering::load("lo", &PortSet::default()).expect("load");
    assert_eq!(decide(&steering, &geneve(6081, 7)), steered);
    assert_eq!(decide(&steering, &geneve(6082, 7)), not_ours);
    let v6 = GeneveFrameBuilder::new()
        .outer(|o| {
            o.outer_src_ip("fd00::4".parse::<Ipv6Addr>().unwrap())
                .outer_dst_ip("fd00::1:4".parse::<Ipv6Addr>().unwrap())
        })
        .payload(&inner())
        .build()
        .expect("frame");
    assert_eq!(decide(&steering, &v6), steered);
    // --geneve-port 6082 (repeatable) replaces 6081; none turns GENEVE off.
    let ports = PortSet::default()
        .with_geneve(&[6082, 7000])
        .expect("ports");
    let mut steering = Steering::load("lo", &ports).expect("load");
    assert_eq!(decide(&steering, &geneve(6081, 7)), not_ours);
    assert_eq!(decide(&steering, &geneve(6082, 7)), steered);
    assert_eq!(decide(&steering, &geneve(7000, 7)), steered);
    assert_eq!(decide(&steering, &build(v4())), steered, "VXLAN still");
    let off = PortSet::default().with_geneve(&[]).expect("none");
    let steering_off = Steering::load("lo", &off).expect("load");
    assert_eq!(decide(&steering_off, &geneve(6081, 7)), not_ours);
    // The VNI allowlist reads GENEVE's VNI (bytes 4..6, as VXLAN's).
    let mut allow = Allowlist::default();
    allow.add_vnis(parse_vnis("7,800").unwrap()).unwrap();
    steering.set_allowlist(&allow).expect("allowlist");
    assert_eq!(decide(&steering, &geneve(6082, 7)), steered);
    assert_eq!(decide(&steering, &geneve(7000, 800)), steered);
    assert_eq!(
        decide(&steering, &geneve(6082, 8)),
        (XDP_DROP, XdpCounter::DropVni)
    );
}

#[test]
fn geneve_fragments_follow_their_first_fragment_when_reassembly_is_on() {
    if !privileged("XDP GENEVE fragment steering") {
        return;
    }
    let steering = Steering::load_with("lo", &PortSet::default(), true).expect("load");
    let mut first = geneve(6081, 7);
    first[14 + 4..14 + 6].copy_from_slice(&0x6081u16.to_be_bytes());
    first[14 + 6] |= 0x20; // more fragments
    let mut later = first.clone();
    later[14 + 6] = 0;
    later[14 + 7] = 0x10; // offset 128
    assert_eq!(
        decide_among(&steering, &first),
        (XDP_PASS, XdpCounter::FragmentSteered)
    );
    assert_eq!(
        decide_among(&steering, &later),
        (XDP_PASS, XdpCounter::FragmentSteered)
    );
}

/// Runs `frame` once; returns the action and the fragment decision counter that moved.
fn decide_among(steering: &Steering, frame: &[u8]) -> (u32, XdpCounter) {
    let before = steering.counters().expect("counters");
    let action = steering.test_run(frame).expect("run");
    let after = steering.counters().expect("counters");
    let moved: Vec<XdpCounter> = [
        XdpCounter::FragmentSteered,
        XdpCounter::PassFragment,
        XdpCounter::PassPort,
    ]
    .into_iter()
    .filter(|&c| after.get(c) != before.get(c))
    .collect();
    assert_eq!(moved.len(), 1, "one decision: {moved:?}");
    (action, moved[0])
}

const XDP_REDIRECT: u32 = 4;

/// Issue 13: the socket is chosen by (ingress device, rx queue), each
/// device's queues from its own slot base. A frame from a device or queue
/// without a socket passes, counted for that device; it is never handed to
/// the socket of another device's same-numbered queue, which the kernel
/// would refuse and drop (`xsk_rcv_check`, docs/azure.md §2). On the
/// program keyed by rx queue alone, the frame from the other device was
/// redirected into device A's socket.
#[test]
fn the_socket_is_chosen_by_ingress_device_and_queue() {
    if !privileged("XDP BPF_PROG_TEST_RUN with an ingress device") {
        return;
    }
    use vxdecap::lab::netns::{unique_name, veth_pair_with_queues, NetNs};
    use vxdecap::xsk::{BindRequest, RxSocket, SocketConfig};
    let ns = NetNs::create(&unique_name("xdpdev")).expect("netns");
    let (a, b) = ("xdpdeva", "xdpdevb");
    veth_pair_with_queues(&ns, a, &ns, b, 2).expect("veth pair");
    ns.ip(&["link", "set", a, "up"]).expect("up");
    ns.ip(&["link", "set", b, "up"]).expect("up");
    let frame = build(v4());
    let checked = ns
        .spawn_in(move || {
            let index = |name: &str| nix::net::if_::if_nametoindex(name).expect("ifindex");
            let (ia, ib) = (index(a), index(b));
            let ports = PortSet::new(&[4789]).expect("ports");
            let mut steering = Steering::load(a, &ports).expect("load");
            steering
                .remove_device(ia)
                .expect("forget the default entry");
            steering
                .set_device(ia, 0, 2, 0)
                .expect("device a: slots 0, 1, row 0");
            steering
                .set_device(ib, 2, 2, 1)
                .expect("device b: slots 2, 3, row 1");
            let config = SocketConfig {
                bind: BindRequest::Copy,
                ..SocketConfig::default()
            };
            let socket = RxSocket::open(a, 1, &config, 16).expect("AF_XDP socket on a, queue 1");
            use std::os::fd::AsRawFd as _;
            steering
                .register_socket(1, socket.as_raw_fd())
                .expect("register a's queue 1");
            let run = |steering: &Steering, ifindex, queue| {
                steering
                    .test_run_on(&frame, ifindex, queue)
                    .expect("BPF_PROG_TEST_RUN")
            };
            let row = |steering: &Steering, row: usize| steering.device_counters()[row];
            assert_eq!(
                run(&steering, ia, 1),
                XDP_REDIRECT,
                "a's queue 1 has its socket"
            );
            assert_eq!(run(&steering, ia, 0), XDP_PASS, "a's queue 0 has none");
            assert_eq!(
                run(&steering, ib, 1),
                XDP_PASS,
                "b's queue 1 is another socket's slot (3), empty"
            );
            assert_eq!(row(&steering, 1).no_socket, 1, "counted for b");
            // b leaves the stack but still receives: counted in its row.
            steering.set_device(ib, 2, 0, 1).expect("b retired");
            assert_eq!(run(&steering, ib, 0), XDP_PASS, "a retired device passes");
            assert_eq!(row(&steering, 1).no_socket, 2, "counted for b");
            steering.remove_device(ib).expect("b deleted");
            assert_eq!(run(&steering, ib, 0), XDP_PASS, "an unknown device passes");
            assert_eq!(
                row(&steering, vxdecap::steer::MAX_DEVICES).no_socket,
                1,
                "counted in the row of devices without an entry"
            );
            let a = row(&steering, 0);
            assert_eq!((a.redirected, a.no_socket), (1, 1), "a's verdicts");
            Ok(())
        })
        .expect("enter the netns")
        .join()
        .expect("the netns thread");
    checked.expect("checks in the netns");
}
