//! `vxdecap relay`: the XDP program's decisions and rewrites on crafted
//! frames (BPF_PROG_TEST_RUN in a namespace whose FIB and neighbour table
//! the test sets), and the relay live in namespaces: against a collector
//! running `vxdecap capture`, and byte for byte against an nftables
//! DNAT+SNAT proxy. Needs root.
#![allow(clippy::print_stderr, reason = "tests say what they measured")]

mod common;

use std::net::Ipv4Addr;

use common::*;
use vxdecap::lab::netns::{unique_name, veth_pair, NetNs};
use vxdecap::relay::table;
use vxdecap::steer::relay::{RelayCounter, RelayDest, RelayProgram};
use vxdecap::wire::build::{fragment_ipv4_at, VxlanFrameBuilder};
use vxdecap::wire::PortSet;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

/// The relay's address and the collectors' (on one /24 behind `rl0`).
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
const COLLECTORS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 77, 1, 2),
    Ipv4Addr::new(10, 77, 1, 3),
    Ipv4Addr::new(10, 77, 1, 4),
];
/// On the link, but never resolved.
const UNRESOLVED: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 9);
/// No route at all.
const NOWHERE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn collector_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x77, 2 + i as u8]
}

/// An inner Ethernet/IPv4/TCP frame (no options), with `payload` bytes.
fn inner_tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = (40 + payload) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = ipv4_sum(&ip);
    ip[10..12].copy_from_slice(&(!sum).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend((0..payload).map(|i| i as u8));
    f
}

/// The one's-complement sum of an IPv4 header (0xffff when its checksum is right).
fn ipv4_sum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn mirrored(src: Ipv4Addr, inner: &[u8]) -> VxlanFrameBuilder {
    VxlanFrameBuilder::new()
        .outer_src_ip(src)
        .outer_dst_ip(RELAY)
        .udp_src_port(49_152)
        .vni(27)
        .ttl(64)
        .ipv4_ident(0x4242)
        .inner(inner)
}

/// A namespace with `rl0` at RELAY/24, the collectors' MACs as permanent
/// neighbours, and forwarding on (the program's FIB lookup then routes as
/// a router does).
struct Fib {
    ns: NetNs,
    _peer: NetNs,
}

fn fib() -> Fib {
    let ns = NetNs::create(&unique_name("rlt")).expect("namespace");
    let peer = NetNs::create(&unique_name("rlp")).expect("peer namespace");
    veth_pair(&ns, "rl0", &peer, "rl1").expect("veth");
    ns.configure("rl0", &format!("{RELAY}/24"))
        .expect("address");
    peer.configure("rl1", "10.77.1.100/24")
        .expect("peer address");
    for (i, c) in COLLECTORS.iter().enumerate() {
        let mac = collector_mac(i)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        ns.ip(&[
            "neigh",
            "add",
            &c.to_string(),
            "lladdr",
            &mac,
            "dev",
            "rl0",
            "nud",
            "permanent",
        ])
        .expect("neighbour");
    }
    ns.run("sysctl", &["-qw", "net.ipv4.conf.all.forwarding=1"])
        .expect("forwarding");
    Fib { ns, _peer: peer }
}

/// Runs `f` with a relay program loaded in `fib`'s namespace, aimed at `dests`.
fn in_fib<T: Send + 'static>(
    fib: &Fib,
    dests: Vec<Ipv4Addr>,
    f: impl FnOnce(&mut RelayProgram) -> T + Send + 'static,
) -> T {
    fib.ns
        .spawn_in(move || {
            let mut program = RelayProgram::load("lo", &PortSet::default())?;
            let d: Vec<RelayDest> = dests
                .iter()
                .map(|&addr| RelayDest {
                    addr,
                    source: RELAY,
                })
                .collect();
            program.set_dests(&d)?;
            let keys: Vec<String> = dests.iter().map(ToString::to_string).collect();
            program.set_table(&table::fill(&keys, &vec![true; keys.len()]))?;
            Ok(f(&mut program))
        })
        .expect("thread in the namespace")
        .join()
        .expect("the test thread")
        .expect("load the relay program")
}

/// Runs `frame`: (action, the frame out, the one counter that moved).
fn decide(program: &RelayProgram, frame: &[u8]) -> (u32, Vec<u8>, RelayCounter) {
    let before = program.counters().expect("counters");
    let (action, out) = program.test_run(frame).expect("BPF_PROG_TEST_RUN");
    let after = program.counters().expect("counters");
    let moved: Vec<RelayCounter> = RelayCounter::ALL
        .into_iter()
        .filter(|&c| after.get(c) != before.get(c))
        .collect();
    assert_eq!(moved.len(), 1, "exactly one counter per frame: {moved:?}");
    (action, out, moved[0])
}

#[test]
fn the_relay_rewrites_addresses_ttl_macs_and_checksum_and_nothing_else() {
    if !privileged("relay XDP test run") {
        return;
    }
    let fib = fib();
    let inner = inner_tcp(
        Ipv4Addr::new(10, 0, 2, 4),
        Ipv4Addr::new(10, 0, 2, 5),
        40_000,
        80,
        100,
    );
    let frame = mirrored(Ipv4Addr::new(10, 1, 0, 4), &inner)
        .build()
        .expect("frame");
    let (action, out, counter) = in_fib(&fib, vec![COLLECTORS[0]], move |p| decide(p, &frame));
    let frame = mirrored(Ipv4Addr::new(10, 1, 0, 4), &inner)
        .build()
        .expect("frame");
    assert_eq!((action, counter), (XDP_REDIRECT, RelayCounter::Redirect));
    assert_eq!(out.len(), frame.len());
    assert_eq!(
        out[0..6],
        collector_mac(0),
        "destination MAC from the neighbour table"
    );
    assert_ne!(out[6..12], frame[6..12], "source MAC of rl0");
    assert_eq!(out[14 + 8], 63, "TTL decremented");
    assert_eq!(out[14 + 12..14 + 16], RELAY.octets(), "outer source");
    assert_eq!(
        out[14 + 16..14 + 20],
        COLLECTORS[0].octets(),
        "outer destination"
    );
    assert_eq!(ipv4_sum(&out[14..34]), 0xffff, "IPv4 header checksum");
    assert_ne!(out[24..26], frame[24..26], "the checksum changed");
    assert_eq!(out[40..42], [0, 0], "UDP checksum 0 kept");
    // Everything else is as it came: Ethernet type, IP ID, ports, VXLAN, inner frame.
    let same = |r: std::ops::Range<usize>| assert_eq!(out[r.clone()], frame[r.clone()], "{r:?}");
    same(12..14 + 8);
    same(14 + 9..14 + 10);
    same(34..40);
    same(42..frame.len());
}

#[test]
fn a_non_zero_udp_checksum_is_adjusted_for_the_new_addresses() {
    if !privileged("relay XDP test run") {
        return;
    }
    let fib = fib();
    let inner = inner_tcp(
        Ipv4Addr::new(10, 0, 2, 4),
        Ipv4Addr::new(10, 0, 2, 5),
        40_000,
        80,
        33,
    );
    let mut frame = mirrored(Ipv4Addr::new(10, 1, 0, 4), &inner)
        .build()
        .expect("frame");
    let udp_sum = |f: &[u8]| {
        let udp = &f[34..];
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&udp[4..6]);
        let mut all = pseudo;
        all.extend_from_slice(udp);
        if all.len() % 2 == 1 {
            all.push(0);
        }
        ipv4_sum(&all)
    };
    frame[40..42].copy_from_slice(&[0, 0]);
    let check = !udp_sum(&frame);
    frame[40..42].copy_from_slice(&check.to_be_bytes());
    assert_eq!(udp_sum(&frame), 0xffff, "the test's own UDP checksum");
    let (action, out, _) = in_fib(&fib, vec![COLLECTORS[1]], move |p| decide(p, &frame));
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        udp_sum(&out),
        0xffff,
        "UDP checksum right after the rewrite"
    );
}

#[test]
fn frames_the_relay_cannot_send_go_to_the_kernel_under_a_reason() {
    if !privileged("relay XDP test run") {
        return;
    }
    let fib = fib();
    let inner = inner_tcp(
        Ipv4Addr::new(10, 0, 2, 4),
        Ipv4Addr::new(10, 0, 2, 5),
        40_000,
        80,
        10,
    );
    let src = Ipv4Addr::new(10, 1, 0, 4);
    let ok = mirrored(src, &inner).build().expect("frame");
    let ttl1 = mirrored(src, &inner).ttl(1).build().expect("frame");
    let other_port = mirrored(src, &inner)
        .udp_dst_port(53)
        .build()
        .expect("frame");
    let v6 = VxlanFrameBuilder::new()
        .outer_src_ip("fd00::4".parse::<std::net::Ipv6Addr>().unwrap())
        .outer_dst_ip("fd00::1".parse::<std::net::Ipv6Addr>().unwrap())
        .inner(&inner)
        .build()
        .expect("v6");
    let mut cut = ok.clone();
    cut.truncate(14 + 20 + 4);
    let mut tcp = ok.clone();
    tcp[14 + 9] = 6;
    let tagged = mirrored(src, &inner)
        .outer_vlans(&[7])
        .build()
        .expect("tagged");
    let results = in_fib(&fib, vec![UNRESOLVED], move |p| {
        let mut r = vec![("unresolved neighbour", decide(p, &ok))];
        let d = vec![RelayDest {
            addr: NOWHERE,
            source: RELAY,
        }];
        p.set_dests(&d).expect("dests");
        r.push(("no route", decide(p, &ok)));
        r.push(("TTL 1", decide(p, &ttl1)));
        r.push(("other port", decide(p, &other_port)));
        r.push(("IPv6 outer", decide(p, &v6)));
        r.push(("cut short", decide(p, &cut)));
        r.push(("TCP", decide(p, &tcp)));
        r.push(("VLAN", decide(p, &tagged)));
        p.set_table(&[]).expect("empty table");
        r.push(("no collector", decide(p, &ok)));
        r
    });
    let ok = mirrored(src, &inner).build().expect("frame");
    let expected = [
        RelayCounter::PassNoNeighbour,
        RelayCounter::PassNoRoute,
        RelayCounter::PassTtl,
        RelayCounter::PassPort,
        RelayCounter::PassIpv6,
        RelayCounter::PassMalformed,
        RelayCounter::PassNotUdp,
        RelayCounter::PassVlan,
        RelayCounter::PassNoCollector,
    ];
    for ((name, (action, out, counter)), want) in results.iter().zip(expected) {
        assert_eq!((*action, *counter), (XDP_PASS, want), "{name}");
        if *name == "unresolved neighbour" || *name == "no route" || *name == "no collector" {
            assert_eq!(out, &ok, "{name}: the kernel gets the frame as it came");
        }
    }
}

#[test]
fn allowlists_drop_in_the_relay_as_in_the_capture() {
    use vxdecap::steer::allow::{parse_vnis, Allowlist};
    if !privileged("relay XDP test run") {
        return;
    }
    let fib = fib();
    let inner = inner_tcp(
        Ipv4Addr::new(10, 0, 2, 4),
        Ipv4Addr::new(10, 0, 2, 5),
        1,
        2,
        0,
    );
    let good = mirrored(Ipv4Addr::new(10, 1, 0, 4), &inner)
        .build()
        .unwrap();
    let stranger = mirrored(Ipv4Addr::new(10, 9, 0, 4), &inner)
        .build()
        .unwrap();
    let vni = mirrored(Ipv4Addr::new(10, 1, 0, 4), &inner)
        .vni(99)
        .build()
        .unwrap();
    let got = in_fib(&fib, vec![COLLECTORS[0]], move |p| {
        let mut allow = Allowlist::default();
        allow.add_source("10.1.0.0/16".parse().unwrap()).unwrap();
        allow.add_vnis(parse_vnis("27").unwrap()).unwrap();
        p.set_allowlist(&allow).expect("allowlist");
        [decide(p, &good), decide(p, &stranger), decide(p, &vni)].map(|(a, _, c)| (a, c))
    });
    assert_eq!(
        got,
        [
            (XDP_REDIRECT, RelayCounter::Redirect),
            (XDP_DROP, RelayCounter::DropSource),
            (XDP_DROP, RelayCounter::DropVni),
        ]
    );
}

/// The collector a relayed frame was sent to.
fn sent_to(out: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(out[30], out[31], out[32], out[33])
}

#[test]
fn both_directions_and_both_copies_of_a_flow_reach_one_collector() {
    if !privileged("relay XDP test run") {
        return;
    }
    let fib = fib();
    let (a, b) = (Ipv4Addr::new(10, 0, 2, 4), Ipv4Addr::new(10, 0, 2, 5));
    // 200 flows, each seen four ways: a→b and b→a, mirrored from a's host and from b's host
    // (different outer sources and outer UDP source ports).
    let mut frames = Vec::new();
    for n in 0..200u16 {
        let (sport, dport) = (30_000 + n, 80 + n % 7);
        for (inner, host, outer_port) in [
            (
                inner_tcp(a, b, sport, dport, 0),
                Ipv4Addr::new(10, 1, 0, 4),
                50_000 + n,
            ),
            (
                inner_tcp(b, a, dport, sport, 0),
                Ipv4Addr::new(10, 1, 0, 4),
                51_000 + n,
            ),
            (
                inner_tcp(a, b, sport, dport, 0),
                Ipv4Addr::new(10, 1, 0, 5),
                52_000 + n,
            ),
            (
                inner_tcp(b, a, dport, sport, 0),
                Ipv4Addr::new(10, 1, 0, 5),
                53_000 + n,
            ),
        ] {
            frames.push(
                mirrored(host, &inner)
                    .udp_src_port(outer_port)
                    .build()
                    .expect("frame"),
            );
        }
    }
    let outs = in_fib(&fib, COLLECTORS.to_vec(), move |p| {
        frames
            .iter()
            .map(|f| {
                let (action, out, _) = decide(p, f);
                assert_eq!(action, XDP_REDIRECT);
                sent_to(&out)
            })
            .collect::<Vec<_>>()
    });
    let mut per_collector = [0usize; 3];
    for (flow, four) in outs.chunks(4).enumerate() {
        assert!(
            four.iter().all(|c| *c == four[0]),
            "flow {flow} split: {four:?}"
        );
        per_collector[COLLECTORS.iter().position(|c| *c == four[0]).unwrap()] += 1;
    }
    assert!(
        per_collector.iter().all(|&n| n > 30),
        "spread: {per_collector:?}"
    );
}

#[test]
fn outer_fragments_follow_their_first_fragment_and_inner_fragments_their_pair() {
    if !privileged("relay XDP test run") {
        return;
    }
    let fib = fib();
    let (a, b) = (Ipv4Addr::new(10, 0, 2, 4), Ipv4Addr::new(10, 0, 2, 5));
    // A big mirrored datagram cut in three outer fragments.
    let whole = mirrored(Ipv4Addr::new(10, 1, 0, 4), &inner_tcp(a, b, 1234, 80, 1000))
        .ipv4_ident(0x5151)
        .build()
        .expect("frame");
    let pieces = fragment_ipv4_at(&whole, &[400, 800]).expect("fragments");
    assert_eq!(pieces.len(), 3);
    // Inner fragments: the first (with ports) and a later one (without), both directions.
    let mut inner_first = inner_tcp(a, b, 5555, 443, 64);
    inner_first[14 + 6] = 0x20; // MF
    let mut inner_later = inner_tcp(b, a, 0, 0, 64);
    inner_later[14 + 6] = 0x00;
    inner_later[14 + 7] = 0x10; // offset 128
    let mut pairs = Vec::new();
    for n in 0..40u16 {
        let x = Ipv4Addr::new(10, 0, 3, n as u8);
        let mut first = inner_tcp(x, b, 6000 + n, 443, 64);
        first[14 + 6] = 0x20;
        let mut later = inner_tcp(b, x, 7000, 9000 + n, 64);
        later[14 + 7] = 0x10;
        pairs.push((
            mirrored(Ipv4Addr::new(10, 1, 0, 4), &first)
                .build()
                .unwrap(),
            mirrored(Ipv4Addr::new(10, 1, 0, 5), &later)
                .build()
                .unwrap(),
        ));
    }
    let (fragments, stray, split) = in_fib(&fib, COLLECTORS.to_vec(), move |p| {
        // A later fragment before its first: the kernel's.
        let stray = decide(p, &pieces[2]);
        let fragments: Vec<(u32, Ipv4Addr, RelayCounter)> = pieces
            .iter()
            .map(|f| {
                let (action, out, counter) = decide(p, f);
                (action, sent_to(&out), counter)
            })
            .collect();
        let split = pairs
            .iter()
            .filter(|(first, later)| sent_to(&decide(p, first).1) != sent_to(&decide(p, later).1))
            .count();
        (fragments, stray, split)
    });
    assert_eq!((stray.0, stray.2), (XDP_PASS, RelayCounter::PassFragment));
    assert_eq!(fragments[0].2, RelayCounter::Redirect);
    for f in &fragments[1..] {
        assert_eq!((f.0, f.2), (XDP_REDIRECT, RelayCounter::Fragment));
        assert_eq!(
            f.1, fragments[0].1,
            "a later fragment goes where its first went"
        );
    }
    assert_eq!(
        split, 0,
        "inner fragments hash on the address pair in both directions"
    );
}
