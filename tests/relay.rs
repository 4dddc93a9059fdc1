//! `vxdecap relay`: the XDP program's decisions and rewrites on crafted
//! frames (BPF_PROG_TEST_RUN in a namespace whose FIB and neighbour table
//! the test sets), and the relay live in namespaces: against a collector
//! running `vxdecap capture`, and byte for byte against an nftables
//! DNAT+SNAT proxy. Needs root.
#![allow(clippy::print_stderr, reason = "tests say what they measured")]

mod common;
/// GENEVE through the relay (its own file, with this file's helpers).
#[path = "relay/geneve.rs"]
mod geneve;

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
    in_fib_with(fib, PortSet::default(), dests, f)
}

/// [`in_fib`] with the program relaying `ports`.
fn in_fib_with<T: Send + 'static>(
    fib: &Fib,
    ports: PortSet,
    dests: Vec<Ipv4Addr>,
    f: impl FnOnce(&mut RelayProgram) -> T + Send + 'static,
) -> T {
    fib.ns
        .spawn_in(move || {
            let mut program = RelayProgram::load("lo", &ports)?;
            let d: Vec<RelayDest> = dests
                .iter()
                .map(|&addr| RelayDest {
                    addr: addr.into(),
                    source: RELAY.into(),
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
            addr: NOWHERE.into(),
            source: RELAY.into(),
        }];
        p.set_dests(&d).expect("dests");
        r.push(("no route", decide(p, &ok)));
        r.push(("TTL 1", decide(p, &ttl1)));
        r.push(("other port", decide(p, &other_port)));
        r.push(("IPv6 outer to an IPv4 collector", decide(p, &v6)));
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
        RelayCounter::PassFamily,
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
fn the_fib_cache_answers_only_frames_like_the_one_it_looked_up() {
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
    let mut other_tos = ok.clone();
    other_tos[15] = 0x10;
    // An outer datagram of 1590 bytes: over rl0's MTU (1500).
    let big_inner = inner_tcp(
        Ipv4Addr::new(10, 0, 2, 4),
        Ipv4Addr::new(10, 0, 2, 5),
        40_000,
        80,
        1500,
    );
    let big = mirrored(src, &big_inner).build().expect("frame");
    let steps = in_fib(&fib, vec![COLLECTORS[0]], move |p| {
        let mut steps = Vec::new();
        let mut step = |p: &mut RelayProgram, name: &'static str, frame: &[u8]| {
            let before = p.fib_counters().expect("FIB counters");
            let (_, _, counter) = decide(p, frame);
            let after = p.fib_counters().expect("FIB counters");
            let how = if after.hits == before.hits + 1 && after.lookups == before.lookups {
                "hit"
            } else if after.lookups == before.lookups + 1 && after.hits == before.hits {
                "lookup"
            } else {
                "neither"
            };
            steps.push((name, how, counter));
        };
        step(p, "first", &ok);
        step(p, "again", &ok);
        step(p, "another TOS", &other_tos);
        step(p, "back to the first TOS", &ok);
        step(p, "again", &ok);
        step(p, "over the MTU", &big);
        step(p, "under it again", &ok);
        p.fib_invalidator().invalidate().expect("invalidate");
        step(p, "after an invalidation", &ok);
        step(p, "again", &ok);
        let d = vec![RelayDest {
            addr: COLLECTORS[1].into(),
            source: RELAY.into(),
        }];
        p.set_dests(&d).expect("dests");
        step(p, "to a new collector at the same index", &ok);
        steps
    });
    let redirect = RelayCounter::Redirect;
    let expected = [
        ("first", "lookup", redirect),
        ("again", "hit", redirect),
        ("another TOS", "lookup", redirect),
        ("back to the first TOS", "lookup", redirect),
        ("again", "hit", redirect),
        ("over the MTU", "lookup", RelayCounter::PassMtu),
        ("under it again", "hit", redirect),
        ("after an invalidation", "lookup", redirect),
        ("again", "hit", redirect),
        ("to a new collector at the same index", "lookup", redirect),
    ];
    assert_eq!(steps, expected);
}

/// What the FIB cache saves, timed by the kernel (BPF_PROG_TEST_RUN with `repeat`): the
/// program's own ns per frame, cache off then on. Not a benchmark of the data path (no driver,
/// no transmit); run it by name: `cargo test --test relay -- --ignored fib_cache_cost`.
#[test]
#[ignore = "a measurement: prints, asserts only that the cache is cheaper"]
fn fib_cache_cost_per_frame() {
    if !privileged("relay FIB cache cost") {
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
    // TTL 255: the kernel does not restore the frame between repeats, and each run lowers it.
    let frame = mirrored(Ipv4Addr::new(10, 1, 0, 4), &inner)
        .ttl(255)
        .build()
        .expect("frame");
    let ns = in_fib(&fib, vec![COLLECTORS[0]], move |p| {
        let cache = p.fib_invalidator();
        let mut per_frame = Vec::new();
        for on in [false, true, false, true] {
            cache.set_enabled(on).expect("cache on or off");
            let mut total = std::time::Duration::ZERO;
            let calls = 2000;
            for _ in 0..calls {
                total += p.time_run(&frame, 200).expect("test run");
            }
            per_frame.push((on, total.as_nanos() as f64 / f64::from(calls)));
        }
        per_frame
    });
    for (on, ns) in &ns {
        eprintln!(
            "FIB cache {}: {ns:.0} ns per frame",
            if *on { "on" } else { "off" }
        );
    }
    let (off, on) = (ns[0].1.min(ns[2].1), ns[1].1.min(ns[3].1));
    assert!(on < off, "the cache costs more than the lookup: {ns:?}");
}

#[test]
fn without_rtnetlink_the_fib_cache_is_made_stale_by_a_timer() {
    if !privileged("relay XDP test run") {
        return;
    }
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use vxdecap::relay::fib_watch::{self, FibWatchStats};
    let fib = fib();
    let inner = inner_tcp(
        Ipv4Addr::new(10, 0, 2, 4),
        Ipv4Addr::new(10, 0, 2, 5),
        40_000,
        80,
        10,
    );
    let ok = mirrored(Ipv4Addr::new(10, 1, 0, 4), &inner)
        .build()
        .expect("frame");
    let (stats, lookups) = in_fib(&fib, vec![COLLECTORS[0]], move |p| {
        let stats = Arc::new(FibWatchStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let lookups = || p.fib_counters().expect("FIB counters").lookups;
        let mut seen = Vec::new();
        decide(p, &ok);
        decide(p, &ok);
        seen.push(lookups());
        let thread = fib_watch::spawn_timer_only(
            p.fib_invalidator(),
            Arc::clone(&stats),
            Arc::clone(&stop),
            "a test",
        )
        .expect("the thread");
        // Three waits of more than two periods each: the cache is stale after each.
        for _ in 0..3 {
            std::thread::sleep(fib_watch::FALLBACK * 5 / 2);
            decide(p, &ok);
            seen.push(lookups());
        }
        stop.store(true, Ordering::Relaxed);
        thread.join().expect("the thread ends");
        (stats, seen)
    });
    assert!(stats.failed.load(Ordering::Relaxed));
    assert!(stats.timer.load(Ordering::Relaxed) >= 3);
    assert_eq!(lookups, [1, 2, 3, 4], "a lookup after each period");
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

#[test]
fn a_first_fragment_cut_before_the_inner_headers_keeps_its_datagram_together() {
    if !privileged("relay XDP test run") {
        return;
    }
    // Outer fragments of 48 bytes (IPv4's minimum MTU of 68 allows that little): the first
    // carries UDP, VXLAN and 32 bytes of the inner frame, so the inner IP header is cut and
    // no inner flow can be hashed. Whatever collector that picks, every fragment of the
    // datagram must follow it, and each datagram must be relayed, not lost.
    let fib = fib();
    let (a, b) = (Ipv4Addr::new(10, 0, 2, 4), Ipv4Addr::new(10, 0, 2, 5));
    let datagrams: Vec<Vec<Vec<u8>>> = (0..16u16)
        .map(|n| {
            let whole = mirrored(
                Ipv4Addr::new(10, 1, 0, 4 + (n % 2) as u8),
                &inner_tcp(a, b, 3000 + n, 80, 200),
            )
            .ipv4_ident(0x7100 + n)
            .build()
            .expect("frame");
            let pieces = fragment_ipv4_at(&whole, &[48, 96, 144]).expect("fragments");
            assert_eq!(pieces.len(), 4);
            pieces
        })
        .collect();
    let got = in_fib(&fib, COLLECTORS.to_vec(), move |p| {
        datagrams
            .iter()
            .map(|pieces| {
                pieces
                    .iter()
                    .map(|f| {
                        let (action, out, counter) = decide(p, f);
                        (action, sent_to(&out), counter)
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    for (n, pieces) in got.iter().enumerate() {
        assert_eq!(
            (pieces[0].0, pieces[0].2),
            (XDP_REDIRECT, RelayCounter::Redirect),
            "datagram {n}: its first fragment is relayed"
        );
        for later in &pieces[1..] {
            assert_eq!(
                (later.0, later.1, later.2),
                (XDP_REDIRECT, pieces[0].1, RelayCounter::Fragment),
                "datagram {n}: a later fragment goes where its first went"
            );
        }
    }
}

/// tcpdump on `dev` in `ns` writing the frames `filter` matches to `file`, started (it said
/// "listening on"); stop it with SIGINT to flush the file.
fn tcpdump_to(
    ns: &NetNs,
    dev: &str,
    file: &std::path::Path,
    filter: &str,
) -> vxdecap::lab::netns::WatchedChild {
    let file = file.to_str().expect("utf-8 path");
    let args = [
        "-i",
        dev,
        "--immediate-mode",
        "-U",
        "-n",
        "-w",
        file,
        filter,
    ];
    vxdecap::lab::netns::WatchedChild::spawn(
        ns.command("tcpdump", &args),
        &["listening on"],
        std::time::Duration::from_secs(10),
        None,
    )
    .expect("tcpdump")
}

/// sender (s0 10.78.1.1) → relay (r0 10.78.1.2 | r1 10.78.2.1) → collector (c0 10.78.2.2).
struct Line {
    sender: NetNs,
    relay: NetNs,
    collector: NetNs,
}

const LINE_RELAY_IN: Ipv4Addr = Ipv4Addr::new(10, 78, 1, 2);
const LINE_RELAY_OUT: Ipv4Addr = Ipv4Addr::new(10, 78, 2, 1);
const LINE_COLLECTOR: Ipv4Addr = Ipv4Addr::new(10, 78, 2, 2);
const LINE_SENDER: Ipv4Addr = Ipv4Addr::new(10, 78, 1, 1);

fn line(tag: &str) -> Line {
    let sender = NetNs::create(&unique_name(&format!("{tag}s"))).expect("sender");
    let relay = NetNs::create(&unique_name(&format!("{tag}r"))).expect("relay");
    let collector = NetNs::create(&unique_name(&format!("{tag}c"))).expect("collector");
    veth_pair(&sender, "s0", &relay, "r0").expect("veth");
    veth_pair(&relay, "r1", &collector, "c0").expect("veth");
    sender.configure("s0", "10.78.1.1/24").expect("addr");
    relay.configure("r0", "10.78.1.2/24").expect("addr");
    relay.configure("r1", "10.78.2.1/24").expect("addr");
    collector.configure("c0", "10.78.2.2/24").expect("addr");
    // A frame redirected into a veth needs NAPI on its peer: GRO turns it on.
    for (ns, dev) in [(&sender, "s0"), (&collector, "c0")] {
        ns.run("ethtool", &["-K", dev, "gro", "on"])
            .expect("gro on");
    }
    Line {
        sender,
        relay,
        collector,
    }
}

fn mac_of(ns: &NetNs, dev: &str) -> [u8; 6] {
    let o = ns.ip(&["-j", "link", "show", dev]).expect("ip link");
    let text = String::from_utf8_lossy(&o.stdout);
    let at = text.find("\"address\":\"").expect("address") + 11;
    let mut mac = [0u8; 6];
    for (i, byte) in text[at..at + 17].split(':').enumerate() {
        mac[i] = u8::from_str_radix(byte, 16).expect("hex");
    }
    mac
}

/// Mirrored frames as the sender's host puts them on s0 towards the relay:
/// `n` inner TCP segments of several sizes, one with a UDP checksum set.
fn line_frames(line: &Line, n: u16) -> Vec<Vec<u8>> {
    let (src_mac, dst_mac) = (mac_of(&line.sender, "s0"), mac_of(&line.relay, "r0"));
    (0..n)
        .map(|i| {
            let inner = inner_tcp(
                Ipv4Addr::new(10, 0, 2, 4),
                Ipv4Addr::new(10, 0, 2, 5),
                40_000 + i,
                80,
                usize::from(i * 37 % 1200),
            );
            let mut frame = VxlanFrameBuilder::new()
                .outer_src_mac(src_mac)
                .outer_dst_mac(dst_mac)
                .outer_src_ip(LINE_SENDER)
                .outer_dst_ip(LINE_RELAY_IN)
                .udp_src_port(50_000 + i)
                .ipv4_ident(0x1000 + i)
                .ttl(64)
                .vni(27)
                .inner(&inner)
                .build()
                .expect("frame");
            if i % 5 == 4 {
                set_udp_checksum(&mut frame);
            }
            frame
        })
        .collect()
}

/// Puts the right UDP checksum into an IPv4 VXLAN frame.
fn set_udp_checksum(frame: &mut [u8]) {
    frame[40..42].copy_from_slice(&[0, 0]);
    let mut all = frame[26..34].to_vec();
    all.extend_from_slice(&[0, 17]);
    all.extend_from_slice(&frame[38..40]);
    all.extend_from_slice(&frame[34..]);
    if all.len() % 2 == 1 {
        all.push(0);
    }
    let sum = !ipv4_sum(&all);
    frame[40..42].copy_from_slice(&(if sum == 0 { 0xffff } else { sum }).to_be_bytes());
}

/// Waits until `ns` has resolved `addr` (the relay's health probe does it).
fn wait_for_neighbour(ns: &NetNs, addr: Ipv4Addr) {
    wait_for_neighbour_within(ns, addr, 100);
}

/// As [`wait_for_neighbour`], for at most `tries` × 50 ms.
fn wait_for_neighbour_within(ns: &NetNs, addr: Ipv4Addr, tries: u32) {
    for _ in 0..tries {
        let o = ns
            .ip(&["neigh", "show", &addr.to_string()])
            .expect("ip neigh");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if text.contains("lladdr") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{addr} never resolved in {}", ns.name());
}

fn start_relay(ns: &NetNs, args: &[&str]) -> vxdecap::lab::netns::WatchedChild {
    let mut full = vec!["relay"];
    full.extend_from_slice(args);
    vxdecap::lab::netns::WatchedChild::spawn(
        ns.command(vxdecap_path(), &full),
        &["relaying on"],
        std::time::Duration::from_secs(30),
        None,
    )
    .unwrap_or_else(|e| panic!("relay did not start: {e:#}"))
}

/// `GET path` from inside `ns` (HTTP/1.0, the whole answer).
fn http_get_in(ns: &NetNs, addr: &str, path: &str) -> String {
    let (addr, path) = (addr.to_owned(), path.to_owned());
    ns.spawn_in(move || {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(&addr)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })
    .expect("thread in the namespace")
    .join()
    .expect("the HTTP thread")
    .expect("an HTTP answer")
}

/// The number before ` {what}` in the relay's summary.
fn summary_count(summary: &str, what: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| {
            let at = l.find(what)?;
            l[..at].split_whitespace().last()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no '{what}' in:\n{summary}"))
}

#[test]
fn relay_live_to_a_collector_running_capture() {
    if !privileged("relay live") {
        return;
    }
    let tmp = TempDir::new("relay-live");
    let line = line("rlv");
    let pcap = tmp.path("inner.pcap");
    let capture = RunningCapture::start(
        &line.collector,
        &[
            "-i",
            "c0",
            "--mode",
            "skb",
            "-w",
            pcap.to_str().unwrap(),
            "--metrics",
            "10.78.2.2:9419",
        ],
    );
    // Without forwarding on r0 the relay refuses to start, and says how to fix it.
    let refused = line
        .relay
        .command(vxdecap_path(), &["relay", "-i", "r0", "--to", "10.78.2.2"])
        .output()
        .expect("run relay");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("sysctl -w net.ipv4.conf.r0.forwarding=1"),
        "{}",
        stderr(&refused)
    );
    line.relay
        .run("sysctl", &["-qw", "net.ipv4.conf.r0.forwarding=1"])
        .expect("forwarding on r0");
    let mut relay = start_relay(
        &line.relay,
        &[
            "-i",
            "r0",
            "--mode",
            "skb",
            "--to",
            "10.78.2.2",
            "--health-interval",
            "100",
            "--metrics",
            "127.0.0.1:9420",
        ],
    );
    wait_for_neighbour(&line.relay, LINE_COLLECTOR);
    let frames = line_frames(&line, 40);
    send_raw(&line.sender, "s0", &frames, &tmp);
    std::thread::sleep(std::time::Duration::from_millis(500));
    // The counters in the metrics, and the health a load balancer in front of relays probes.
    let metrics = http_get_in(&line.relay, "127.0.0.1:9420", "/metrics");
    assert!(
        metrics.contains(
            "vxdecap_relay_frames_total{interface=\"r0\",reason=\"relayed_redirect\"} 40\n"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("vxdecap_relay_collector_frames_total{collector=\"10.78.2.2\"} 40\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vxdecap_relay_collector_up{collector=\"10.78.2.2\"} 1\n"),
        "{metrics}"
    );
    let health = http_get_in(&line.relay, "127.0.0.1:9420", "/healthz");
    assert!(
        health.starts_with("HTTP/1.0 200") && health.ends_with("ok\n"),
        "{health}"
    );
    // The Prometheus project's own parser takes the text (Debian's python3-prometheus-client).
    let script = "import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
body = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
for f in text_string_to_metric_families(body):
    for s in f.samples:
        print(f.type, s.name, sorted(s.labels.items()), s.value)
";
    let parsed = line
        .relay
        .run(
            "/usr/bin/python3",
            &["-c", script, "http://127.0.0.1:9420/metrics"],
        )
        .expect("the reference parser takes the relay's metrics");
    let parsed = String::from_utf8_lossy(&parsed.stdout);
    assert!(
        parsed.contains(
            "counter vxdecap_relay_collector_frames_total [('collector', '10.78.2.2')] 40.0"
        ),
        "{parsed}"
    );
    assert!(
        parsed.contains("gauge vxdecap_relay_collector_up"),
        "{parsed}"
    );
    // The collector's capture ends: its /healthz goes, the relay takes it out, and with no
    // collector left the relay's own /healthz says so.
    let (ok, summary) = capture.stop();
    std::thread::sleep(std::time::Duration::from_millis(600));
    let health = http_get_in(&line.relay, "127.0.0.1:9420", "/healthz");
    assert!(
        health.starts_with("HTTP/1.0 503") && health.ends_with("no collector is healthy\n"),
        "{health}"
    );
    let outcome = relay
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("stop the relay");
    assert!(outcome.status.success(), "relay: {}", outcome.stderr);
    assert!(
        outcome.stderr.contains("collector 10.78.2.2 is unhealthy"),
        "{}",
        outcome.stderr
    );
    assert!(ok, "capture: {summary}");
    eprintln!("relay:\n{}", outcome.stderr);
    assert_eq!(
        summary_count(&outcome.stderr, " relayed_redirect"),
        40,
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("40 frames (")
            && outcome
                .stderr
                .contains("to collector 10.78.2.2 from 10.78.2.1"),
        "{}",
        outcome.stderr
    );
    let records = read_pcap(&pcap);
    let inner: Vec<Vec<u8>> = frames.iter().map(|f| f[50..].to_vec()).collect();
    let got: Vec<Vec<u8>> = records.into_iter().map(|r| r.data).collect();
    assert_eq!(
        got, inner,
        "the collector decapsulated every relayed frame intact"
    );
}

#[test]
fn relay_output_is_byte_for_byte_the_dnat_proxys() {
    if !privileged("relay against DNAT") {
        return;
    }
    let tmp = TempDir::new("relay-dnat");
    let line = line("rld");
    // The proxy of the Private Link write-up: a router that DNATs UDP/4789 to the collector
    // and SNATs to its own address.
    line.relay
        .run("sysctl", &["-qw", "net.ipv4.conf.all.forwarding=1"])
        .expect("forwarding");
    let frames = line_frames(&line, 30);
    // Frames sent through whatever `setup` starts (kept running until they are captured).
    let through = |what: &str,
                   setup: &dyn Fn() -> Option<vxdecap::lab::netns::WatchedChild>|
     -> Vec<Vec<u8>> {
        let file = tmp.path(&format!("{what}.pcap"));
        let mut dump = tcpdump_to(
            &line.collector,
            "c0",
            &file,
            "udp port 4789 or ip[6:2] & 0x1fff != 0",
        );
        let mut running = setup();
        send_raw(&line.sender, "s0", &frames, &tmp);
        std::thread::sleep(std::time::Duration::from_millis(500));
        let dumped = dump
            .stop(nix::sys::signal::Signal::SIGINT)
            .expect("stop tcpdump");
        eprintln!("tcpdump {what}: {}", dumped.stderr);
        if let Some(mut running) = running.take() {
            let outcome = running
                .stop(nix::sys::signal::Signal::SIGINT)
                .expect("stop the relay");
            assert!(outcome.status.success(), "{}", outcome.stderr);
            eprintln!("relay:\n{}", outcome.stderr);
        }
        read_pcap(&file).into_iter().map(|r| r.data).collect()
    };
    let nft = "table ip vxdnat {
        chain pre { type nat hook prerouting priority dstnat; ip daddr 10.78.1.2 udp dport 4789 dnat to 10.78.2.2; }
        chain post { type nat hook postrouting priority srcnat; ip daddr 10.78.2.2 udp dport 4789 snat to 10.78.2.1; }
    }";
    let rules = tmp.path("dnat.nft");
    std::fs::write(&rules, nft).expect("rules");
    let dnat = through("dnat", &|| {
        line.relay
            .run("nft", &["-f", rules.to_str().unwrap()])
            .expect("nft");
        line.relay
            .run("ping", &["-c1", "-W1", "10.78.2.2"])
            .expect("resolve");
        None
    });
    line.relay.run("nft", &["flush", "ruleset"]).expect("flush");
    let relayed = through("relay", &|| {
        let relay = start_relay(
            &line.relay,
            &[
                "-i",
                "r0",
                "--mode",
                "skb",
                "--to",
                "10.78.2.2",
                "--no-health",
            ],
        );
        wait_for_neighbour(&line.relay, LINE_COLLECTOR);
        Some(relay)
    });
    assert_eq!(
        dnat.len(),
        frames.len(),
        "the DNAT proxy forwarded every frame"
    );
    assert_eq!(
        relayed.len(),
        frames.len(),
        "the relay forwarded every frame"
    );
    for (i, ((d, r), sent)) in dnat.iter().zip(&relayed).zip(&frames).enumerate() {
        // The rewritten fields, as the proxy rewrites them.
        assert_eq!(r[26..30], LINE_RELAY_OUT.octets(), "frame {i}: source");
        assert_eq!(r[30..34], LINE_COLLECTOR.octets(), "frame {i}: destination");
        assert_eq!(r[22], sent[22] - 1, "frame {i}: TTL");
        assert_eq!(ipv4_sum(&r[14..34]), 0xffff, "frame {i}: IPv4 checksum");
        assert_eq!(r[50..], sent[50..], "frame {i}: VXLAN payload intact");
        assert_eq!(
            d, r,
            "frame {i}: the relay's frame differs from the proxy's"
        );
    }
}

#[test]
fn the_relay_has_the_kernel_resolve_a_missing_neighbour() {
    if !privileged("relay neighbour") {
        return;
    }
    let tmp = TempDir::new("relay-neigh");
    let line = line("rln");
    line.relay
        .run("sysctl", &["-qw", "net.ipv4.conf.r0.forwarding=1"])
        .expect("forwarding on r0");
    // No health probes: only the relay's own priming resolves the collector.
    let mut relay = start_relay(
        &line.relay,
        &[
            "-i",
            "r0",
            "--mode",
            "skb",
            "--to",
            "10.78.2.2",
            "--no-health",
        ],
    );
    wait_for_neighbour(&line.relay, LINE_COLLECTOR);
    std::thread::sleep(std::time::Duration::from_millis(600));
    line.relay
        .ip(&["neigh", "del", "10.78.2.2", "dev", "r1"])
        .expect("forget the collector's MAC");
    let frames = line_frames(&line, 10);
    send_raw(&line.sender, "s0", &frames, &tmp);
    // The relay sees pass_no_neighbour move and has the kernel resolve the collector again,
    // at once (left alone, the kernel learns it only seconds later, from the collector's own
    // ARP: the test saw 4 s).
    wait_for_neighbour_within(&line.relay, LINE_COLLECTOR, 20);
    send_raw(&line.sender, "s0", &frames, &tmp);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let outcome = relay
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("stop the relay");
    assert!(outcome.status.success(), "{}", outcome.stderr);
    let unresolved = summary_count(&outcome.stderr, " pass_no_neighbour");
    let relayed = summary_count(&outcome.stderr, " relayed_redirect");
    assert!(unresolved >= 1, "{}", outcome.stderr);
    assert_eq!(unresolved + relayed, 20, "{}", outcome.stderr);
    assert!(relayed >= 10, "{}", outcome.stderr);
}

/// The collector's second link, for the FIB cache's tests: relay r2 ↔ collector c1.
const LINE_RELAY_OUT2: &str = "10.78.3.1/24";
const LINE_COLLECTOR2: Ipv4Addr = Ipv4Addr::new(10, 78, 3, 2);

/// A relay on a `line` with frames streaming through it, the collector's
/// two links (c0, and c1 behind a second relay link r2) under tcpdump: the
/// FIB cache's tests change the relay's routing under this traffic.
struct FibRig {
    line: Line,
    relay: vxdecap::lab::netns::WatchedChild,
    stream: vxdecap::lab::netns::WatchedChild,
    dumps: Vec<(vxdecap::lab::netns::WatchedChild, std::path::PathBuf)>,
    _tmp: TempDir,
}

/// What a [`FibRig`] saw: the relay's summary, and what each of the collector's links
/// received (pcap records, timestamps in ns since the epoch).
struct FibSeen {
    summary: String,
    c0: Vec<Record>,
    c1: Vec<Record>,
}

fn colon_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
}

/// Builds the rig and runs it for half a second of steady state (about
/// 1000 frames a second of `payload` inner bytes), over IPv4.
fn fib_rig(tag: &str, payload: usize) -> FibRig {
    fib_rig_over(tag, payload, false)
}

/// The rig's links: the second one (r2 ↔ c1), forwarding on r0, the
/// collector's addresses as permanent neighbours (its MAC on each link);
/// over IPv6 (`fd78:1::/64`, `fd78:2::/64`, `fd78:3::/64`) too when `v6`.
fn fib_rig_links(line: &Line, v6: bool) {
    veth_pair(&line.relay, "r2", &line.collector, "c1").expect("veth");
    line.relay.configure("r2", LINE_RELAY_OUT2).expect("addr");
    line.collector
        .configure("c1", "10.78.3.2/24")
        .expect("addr");
    line.collector
        .run("ethtool", &["-K", "c1", "gro", "on"])
        .expect("gro on");
    let family = if v6 { "ipv6" } else { "ipv4" };
    line.relay
        .run(
            "sysctl",
            &["-qw", &format!("net.{family}.conf.r0.forwarding=1")],
        )
        .expect("forwarding on r0");
    let neighbours = if v6 {
        for (ns, dev, addr) in [
            (&line.sender, "s0", "fd78:1::1/64"),
            (&line.relay, "r0", "fd78:1::2/64"),
            (&line.relay, "r1", "fd78:2::1/64"),
            (&line.collector, "c0", "fd78:2::2/64"),
            (&line.relay, "r2", "fd78:3::1/64"),
            (&line.collector, "c1", "fd78:3::2/64"),
        ] {
            ns.ip(&["addr", "add", addr, "dev", dev, "nodad"])
                .expect("address");
        }
        [
            ("fd78:2::2".to_owned(), "r1", "c0"),
            ("fd78:3::2".to_owned(), "r2", "c1"),
        ]
    } else {
        [
            (LINE_COLLECTOR.to_string(), "r1", "c0"),
            (LINE_COLLECTOR2.to_string(), "r2", "c1"),
        ]
    };
    // Known MACs, so that the test decides when they change.
    for (addr, dev, peer) in neighbours {
        let mac = colon_mac(mac_of(&line.collector, peer));
        line.relay
            .ip(&[
                "neigh",
                "replace",
                &addr,
                "lladdr",
                &mac,
                "dev",
                dev,
                "nud",
                "permanent",
            ])
            .expect("neighbour");
    }
}

/// [`fib_rig`], over IPv6 when `v6` (the relay sends to fd78:2::2).
fn fib_rig_over(tag: &str, payload: usize, v6: bool) -> FibRig {
    let tmp = TempDir::new(tag);
    let line = line(tag);
    fib_rig_links(&line, v6);
    let dumps = ["c0", "c1"]
        .iter()
        .map(|dev| {
            let file = tmp.path(&format!("{dev}.pcap"));
            let dump = tcpdump_to(&line.collector, dev, &file, "udp port 4789");
            (dump, file)
        })
        .collect();
    let to = if v6 { "fd78:2::2" } else { "10.78.2.2" };
    let relay = start_relay(
        &line.relay,
        &["-i", "r0", "--mode", "skb", "--to", to, "--no-health"],
    );
    let (src_mac, dst_mac) = (mac_of(&line.sender, "s0"), mac_of(&line.relay, "r0"));
    let inner = inner_tcp(
        Ipv4Addr::new(10, 0, 2, 4),
        Ipv4Addr::new(10, 0, 2, 5),
        40_000,
        80,
        payload,
    );
    let builder = VxlanFrameBuilder::new()
        .outer_src_mac(src_mac)
        .outer_dst_mac(dst_mac)
        .udp_src_port(50_000)
        .ttl(64)
        .vni(27)
        .inner(&inner);
    let builder = if v6 {
        builder
            .outer_src_ip("fd78:1::1".parse::<std::net::Ipv6Addr>().expect("v6"))
            .outer_dst_ip("fd78:1::2".parse::<std::net::Ipv6Addr>().expect("v6"))
    } else {
        builder
            .outer_src_ip(LINE_SENDER)
            .outer_dst_ip(LINE_RELAY_IN)
    };
    let frame = builder.build().expect("frame");
    let path = tmp.path("stream.bin");
    std::fs::write(&path, &frame).expect("write the frame");
    // Sent from each CPU in turn: the veth's receive, and so the XDP program, runs on the
    // sender's CPU, and every CPU's cache must hold an answer before the change.
    let script = r#"
import os, socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
frame = open(sys.argv[2], "rb").read()
cpus = sorted(os.sched_getaffinity(0))
print("streaming", flush=True)
n = 0
while True:
    os.sched_setaffinity(0, {cpus[n % len(cpus)]})
    s.send(frame)
    n += 1
    time.sleep(0.001)
"#;
    let stream = vxdecap::lab::netns::WatchedChild::spawn(
        line.sender.command(
            "/usr/bin/python3",
            &["-c", script, "s0", path.to_str().expect("utf-8 path")],
        ),
        &["streaming"],
        std::time::Duration::from_secs(10),
        None,
    )
    .expect("the stream");
    std::thread::sleep(std::time::Duration::from_millis(500));
    FibRig {
        line,
        relay,
        stream,
        dumps,
        _tmp: tmp,
    }
}

impl FibRig {
    /// Keeps streaming for `secs`, then stops everything.
    fn finish(mut self, secs: f64) -> FibSeen {
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
        let _ = self.stream.stop(nix::sys::signal::Signal::SIGKILL);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let outcome = self
            .relay
            .stop(nix::sys::signal::Signal::SIGINT)
            .expect("stop the relay");
        assert!(outcome.status.success(), "relay: {}", outcome.stderr);
        eprintln!("relay:\n{}", outcome.stderr);
        let mut seen: Vec<Vec<Record>> = self
            .dumps
            .iter_mut()
            .map(|(dump, file)| {
                dump.stop(nix::sys::signal::Signal::SIGINT)
                    .expect("stop tcpdump");
                read_pcap(file)
            })
            .collect();
        let c1 = seen.pop().expect("c1");
        let c0 = seen.pop().expect("c0");
        FibSeen {
            summary: outcome.stderr,
            c0,
            c1,
        }
    }
}

/// How long after a change the relay may still send on the old answer: the watcher sees the
/// kernel's notification in well under this, and the safety-net timer (1 s) would not.
const FIB_SETTLE_NS: u64 = 250_000_000;

fn dst_mac(record: &Record) -> [u8; 6] {
    record.data[..6].try_into().expect("a MAC")
}

#[test]
fn the_relay_caches_fib_answers_in_steady_state() {
    if !privileged("relay FIB cache") {
        return;
    }
    let rig = fib_rig("rfe", 100);
    let seen = rig.finish(0.5);
    let hits = summary_count(&seen.summary, " hits");
    let lookups = summary_count(&seen.summary, " lookups");
    let relayed = summary_count(&seen.summary, " relayed_redirect");
    assert!(relayed >= 200, "{}", seen.summary);
    assert_eq!(hits + lookups, relayed, "{}", seen.summary);
    // A lookup per CPU after each invalidation (the start, the attach's link events, the
    // one-second timer): a few, against hundreds of hits.
    assert!(
        lookups * 10 <= relayed,
        "the cache answered: {}",
        seen.summary
    );
    assert_eq!(
        seen.c0.len() as u64,
        relayed,
        "every relayed frame reached c0"
    );
}

#[test]
fn a_new_neighbour_mac_reaches_the_relay_at_once() {
    if !privileged("relay FIB cache neighbour") {
        return;
    }
    let rig = fib_rig("rfa", 100);
    let old = mac_of(&rig.line.collector, "c0");
    let new = [0x02, 0, 0, 0, 0x99, 0x99];
    let changed = now_ns();
    rig.line
        .relay
        .ip(&[
            "neigh",
            "replace",
            "10.78.2.2",
            "lladdr",
            &colon_mac(new),
            "dev",
            "r1",
            "nud",
            "permanent",
        ])
        .expect("new MAC");
    let seen = rig.finish(1.0);
    let before: Vec<[u8; 6]> = seen
        .c0
        .iter()
        .filter(|r| r.timestamp_ns < changed)
        .map(dst_mac)
        .collect();
    let after: Vec<[u8; 6]> = seen
        .c0
        .iter()
        .filter(|r| r.timestamp_ns > changed + FIB_SETTLE_NS)
        .map(dst_mac)
        .collect();
    assert!(
        before.len() >= 100 && before.iter().all(|m| *m == old),
        "{}",
        seen.summary
    );
    assert!(
        after.len() >= 100,
        "frames went on after the change: {}",
        seen.summary
    );
    let stale = after.iter().filter(|m| **m == old).count();
    assert_eq!(
        stale, 0,
        "{stale} frames went to the old MAC after the change"
    );
    assert!(after.iter().all(|m| *m == new));
}

/// Runs `ip change` in the relay's namespace under a stream of frames of
/// `payload` bytes: before it at least 100 frames reach collector link c0,
/// after it (once settled) none, and at least 100 pass under `counter`.
fn assert_change_passes_frames(tag: &str, payload: usize, change: &[&str], counter: &str) {
    let rig = fib_rig(tag, payload);
    let changed = now_ns();
    rig.line.relay.ip(change).expect("the change");
    let seen = rig.finish(1.0);
    let before = seen.c0.iter().filter(|r| r.timestamp_ns < changed).count();
    let after = seen
        .c0
        .iter()
        .filter(|r| r.timestamp_ns > changed + FIB_SETTLE_NS)
        .count();
    assert!(before >= 100, "{}", seen.summary);
    assert_eq!(
        after,
        0,
        "frames left from the cache after `ip {}`: {}",
        change.join(" "),
        seen.summary
    );
    assert!(
        summary_count(&seen.summary, &format!(" {counter}")) >= 100,
        "{}",
        seen.summary
    );
}

#[test]
fn with_its_route_gone_frames_to_the_collector_pass_to_the_kernel() {
    if !privileged("relay FIB cache route") {
        return;
    }
    let route_del = ["route", "del", "10.78.2.0/24", "dev", "r1"];
    assert_change_passes_frames("rfb", 100, &route_del, "pass_no_route");
}

#[test]
fn a_lower_egress_mtu_passes_bigger_frames_to_the_kernel() {
    if !privileged("relay FIB cache MTU") {
        return;
    }
    // Outer IPv4 datagrams of 20 + 8 + 8 + 14 + 40 + 600 = 690 bytes.
    let mtu = ["link", "set", "r1", "mtu", "600"];
    assert_change_passes_frames("rfc", 600, &mtu, "pass_mtu");
}

#[test]
fn a_route_moved_to_another_link_takes_the_frames_with_it() {
    if !privileged("relay FIB cache egress") {
        return;
    }
    let rig = fib_rig("rfd", 100);
    let c1_mac = mac_of(&rig.line.collector, "c1");
    let changed = now_ns();
    rig.line
        .relay
        .ip(&[
            "route",
            "add",
            "10.78.2.2/32",
            "via",
            "10.78.3.2",
            "dev",
            "r2",
        ])
        .expect("move the route");
    let seen = rig.finish(1.0);
    let c0_before = seen.c0.iter().filter(|r| r.timestamp_ns < changed).count();
    let c0_after = seen
        .c0
        .iter()
        .filter(|r| r.timestamp_ns > changed + FIB_SETTLE_NS)
        .count();
    let c1_after = seen
        .c1
        .iter()
        .filter(|r| r.timestamp_ns > changed + FIB_SETTLE_NS)
        .count();
    assert!(c0_before >= 100, "{}", seen.summary);
    assert_eq!(c0_after, 0, "frames left by the old link: {}", seen.summary);
    assert!(
        c1_after >= 100,
        "frames left by the new link: {}",
        seen.summary
    );
    assert!(
        seen.c1.iter().all(|r| dst_mac(r) == c1_mac),
        "to the new next hop's MAC"
    );
}

#[test]
fn forwarding_turned_off_on_the_ingress_passes_frames_to_the_kernel() {
    if !privileged("relay FIB cache forwarding") {
        return;
    }
    let rig = fib_rig("rff", 100);
    let changed = now_ns();
    rig.line
        .relay
        .run("sysctl", &["-qw", "net.ipv4.conf.r0.forwarding=0"])
        .expect("forwarding off on r0");
    let seen = rig.finish(1.0);
    let before = seen.c0.iter().filter(|r| r.timestamp_ns < changed).count();
    let after = seen
        .c0
        .iter()
        .filter(|r| r.timestamp_ns > changed + FIB_SETTLE_NS)
        .count();
    assert!(before >= 100, "{}", seen.summary);
    assert_eq!(
        after, 0,
        "frames relayed with forwarding off: {}",
        seen.summary
    );
    assert!(
        summary_count(&seen.summary, " pass_forwarding_off") >= 100,
        "{}",
        seen.summary
    );
}

#[test]
fn over_ipv6_a_deleted_route_and_a_new_neighbour_mac_are_seen_at_once() {
    if !privileged("relay FIB cache, IPv6") {
        return;
    }
    let rig = fib_rig_over("rf6", 100, true);
    let new = [0x02, 0, 0, 0, 0x66, 0x66];
    let changed = now_ns();
    rig.line
        .relay
        .ip(&[
            "neigh",
            "replace",
            "fd78:2::2",
            "lladdr",
            &colon_mac(new),
            "dev",
            "r1",
            "nud",
            "permanent",
        ])
        .expect("new MAC");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let deleted = now_ns();
    rig.line
        .relay
        .ip(&["-6", "route", "del", "fd78:2::/64", "dev", "r1"])
        .expect("delete the route");
    let seen = rig.finish(0.7);
    let between: Vec<[u8; 6]> = seen
        .c0
        .iter()
        .filter(|r| r.timestamp_ns > changed + FIB_SETTLE_NS && r.timestamp_ns < deleted)
        .map(dst_mac)
        .collect();
    let after = seen
        .c0
        .iter()
        .filter(|r| r.timestamp_ns > deleted + FIB_SETTLE_NS)
        .count();
    assert!(between.len() >= 50, "{}", seen.summary);
    assert!(
        between.iter().all(|m| *m == new),
        "frames to the old MAC after the change: {}",
        seen.summary
    );
    assert_eq!(after, 0, "frames left with no route: {}", seen.summary);
    assert!(
        summary_count(&seen.summary, " pass_no_route") >= 100,
        "{}",
        seen.summary
    );
}

#[test]
fn the_relay_reads_its_allow_file_again_on_sighup() {
    if !privileged("relay SIGHUP") {
        return;
    }
    let tmp = TempDir::new("relay-hup");
    let line = line("rlh");
    line.relay
        .run("sysctl", &["-qw", "net.ipv4.conf.r0.forwarding=1"])
        .expect("forwarding on r0");
    let allow = tmp.path("allow.txt");
    std::fs::write(&allow, "source 10.78.1.0/24\n").expect("allow file");
    let mut relay = start_relay(
        &line.relay,
        &[
            "-i",
            "r0",
            "--mode",
            "skb",
            "--to",
            "10.78.2.2",
            "--no-health",
            "--allow-file",
            allow.to_str().unwrap(),
        ],
    );
    wait_for_neighbour(&line.relay, LINE_COLLECTOR);
    let frames = line_frames(&line, 10);
    let hup = |relay: &vxdecap::lab::netns::WatchedChild| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(relay.id() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP");
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    send_raw(&line.sender, "s0", &frames, &tmp);
    // Another source network: the sender's frames are now dropped in XDP.
    std::fs::write(&allow, "source 10.99.0.0/16\n").expect("allow file");
    hup(&relay);
    send_raw(&line.sender, "s0", &frames, &tmp);
    // An emptied file would open the list: refused, the list in force stays.
    std::fs::write(&allow, "").expect("allow file");
    hup(&relay);
    send_raw(&line.sender, "s0", &frames, &tmp);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let outcome = relay
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("stop the relay");
    assert!(outcome.status.success(), "{}", outcome.stderr);
    assert_eq!(
        summary_count(&outcome.stderr, " relayed_redirect"),
        10,
        "{}",
        outcome.stderr
    );
    assert_eq!(
        summary_count(&outcome.stderr, " drop_source_not_allowed"),
        20,
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("SIGHUP: allowlist reloaded"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("SIGHUP: allowlist not changed"),
        "{}",
        outcome.stderr
    );
}

/// The kernel's csum_replace4() on a stored 16-bit checksum and 32-bit fields (as stored).
fn kernel_csum_replace4(check: u16, from: u32, to: u32) -> u16 {
    let add = |a: u32, b: u32| {
        let (r, carry) = a.overflowing_add(b);
        r + u32::from(carry)
    };
    let sum = add(add(!u32::from(check), !from), to);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The kernel's ip_decrease_ttl() on the stored checksum.
fn kernel_decrease_ttl(check: u16) -> u16 {
    let c = u32::from(check) + u32::from(0x0100u16.to_be());
    (c + u32::from(c >= 0xffff)) as u16
}

#[test]
fn the_ipv4_checksum_is_a_forwarding_kernels_for_every_ip_id() {
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
    let template = mirrored(Ipv4Addr::new(10, 1, 0, 4), &inner)
        .build()
        .unwrap();
    let mismatches = in_fib(&fib, vec![COLLECTORS[2]], move |p| {
        let mut bad = Vec::new();
        for id in 0..=u16::MAX {
            let mut frame = template.clone();
            frame[18..20].copy_from_slice(&id.to_be_bytes());
            frame[24..26].copy_from_slice(&[0, 0]);
            let sum = !ipv4_sum(&frame[14..34]);
            frame[24..26].copy_from_slice(&sum.to_be_bytes());
            let (_, out) = p.test_run(&frame).expect("test run");
            // DNAT (destination), the forward (TTL), SNAT (source): a proxy's order.
            let word = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            let mut check = u16::from_ne_bytes([frame[24], frame[25]]);
            check = kernel_csum_replace4(check, word(&frame[30..34]), word(&out[30..34]));
            check = kernel_decrease_ttl(check);
            check = kernel_csum_replace4(check, word(&frame[26..30]), word(&out[26..30]));
            if out[24..26] != check.to_ne_bytes() {
                bad.push(id);
            }
        }
        bad
    });
    assert!(
        mismatches.is_empty(),
        "IP IDs whose checksum differs: {mismatches:?}"
    );
}

const RELAY6: &str = "fd77::1";
const COLLECTORS6: [&str; 3] = ["fd77::2", "fd77::3", "fd77::4"];

/// As [`fib`], over IPv6: `rl0` at fd77::1/64, the collectors as permanent neighbours.
fn fib6() -> Fib {
    let fib = fib();
    fib.ns
        .ip(&["addr", "add", "fd77::1/64", "dev", "rl0", "nodad"])
        .expect("address");
    for (i, c) in COLLECTORS6.iter().enumerate() {
        let mac = collector_mac(i)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        fib.ns
            .ip(&[
                "-6",
                "neigh",
                "add",
                c,
                "lladdr",
                &mac,
                "dev",
                "rl0",
                "nud",
                "permanent",
            ])
            .expect("neighbour");
    }
    fib.ns
        .run("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"])
        .expect("forwarding");
    fib
}

/// The UDP checksum sum (0xffff when right) of an untagged IPv6 frame.
fn udp6_sum(f: &[u8]) -> u16 {
    let udp = &f[54..];
    let mut all = f[22..54].to_vec();
    all.extend_from_slice(&(udp.len() as u32).to_be_bytes());
    all.extend_from_slice(&[0, 0, 0, 17]);
    all.extend_from_slice(udp);
    if all.len() % 2 == 1 {
        all.push(0);
    }
    ipv4_sum(&all)
}

fn mirrored6(src: &str, inner: &[u8]) -> Vec<u8> {
    let mut frame = VxlanFrameBuilder::new()
        .outer_src_ip(src.parse::<std::net::Ipv6Addr>().unwrap())
        .outer_dst_ip(RELAY6.parse::<std::net::Ipv6Addr>().unwrap())
        .udp_src_port(49_152)
        .vni(27)
        .ttl(64)
        .inner(inner)
        .build()
        .expect("frame");
    let check = !udp6_sum(&frame);
    frame[60..62].copy_from_slice(&check.to_be_bytes());
    frame
}

/// Runs `f` with the relay program in `fib`'s namespace aimed at IPv6 `dests`.
fn in_fib6<T: Send + 'static>(
    fib: &Fib,
    f: impl FnOnce(&mut RelayProgram) -> T + Send + 'static,
) -> T {
    fib.ns
        .spawn_in(move || {
            let mut program = RelayProgram::load("lo", &PortSet::default())?;
            let d: Vec<RelayDest> = COLLECTORS6
                .iter()
                .map(|a| RelayDest {
                    addr: a.parse().unwrap(),
                    source: RELAY6.parse().unwrap(),
                })
                .collect();
            program.set_dests(&d)?;
            program.set_table(&table::fill(&COLLECTORS6, &[true; 3]))?;
            Ok(f(&mut program))
        })
        .expect("thread in the namespace")
        .join()
        .expect("the test thread")
        .expect("load the relay program")
}

#[test]
fn over_ipv6_the_relay_rewrites_addresses_and_hop_limit_and_keeps_the_udp_checksum_right() {
    if !privileged("relay XDP test run, IPv6") {
        return;
    }
    let fib = fib6();
    let (a, b) = (Ipv4Addr::new(10, 0, 2, 4), Ipv4Addr::new(10, 0, 2, 5));
    let frame = mirrored6("fd00::4", &inner_tcp(a, b, 40_000, 80, 100));
    let mut zero = frame.clone();
    zero[60..62].copy_from_slice(&[0, 0]);
    let mut flows = Vec::new();
    for n in 0..50u16 {
        for (inner, host) in [
            (inner_tcp(a, b, 30_000 + n, 443, 0), "fd00::4"),
            (inner_tcp(b, a, 443, 30_000 + n, 0), "fd00::4"),
            (inner_tcp(a, b, 30_000 + n, 443, 0), "fd00::5"),
            (inner_tcp(b, a, 443, 30_000 + n, 0), "fd00::5"),
        ] {
            flows.push(mirrored6(host, &inner));
        }
    }
    let sent = frame.clone();
    let (one, kept_zero, places) = in_fib6(&fib, move |p| {
        let one = decide(p, &sent);
        let kept_zero = decide(p, &zero);
        let places: Vec<Vec<u8>> = flows
            .iter()
            .map(|f| {
                let (action, out, _) = decide(p, f);
                assert_eq!(action, XDP_REDIRECT);
                out[38..54].to_vec()
            })
            .collect();
        (one, kept_zero, places)
    });
    let (action, out, counter) = one;
    assert_eq!((action, counter), (XDP_REDIRECT, RelayCounter::Redirect));
    let chosen: std::net::Ipv6Addr = <[u8; 16]>::try_from(&out[38..54]).unwrap().into();
    assert!(
        COLLECTORS6.contains(&chosen.to_string().as_str()),
        "{chosen}"
    );
    let relay: std::net::Ipv6Addr = RELAY6.parse().unwrap();
    assert_eq!(out[22..38], relay.octets(), "outer source");
    assert_eq!(out[21], 63, "hop limit decremented");
    assert_eq!(
        udp6_sum(&out),
        0xffff,
        "UDP checksum right after the rewrite"
    );
    let i = COLLECTORS6
        .iter()
        .position(|c| *c == chosen.to_string())
        .unwrap();
    assert_eq!(
        out[0..6],
        collector_mac(i),
        "destination MAC from the neighbour table"
    );
    assert_eq!(
        out[12..21],
        frame[12..21],
        "version, flow label, length, next header"
    );
    assert_eq!(out[62..], frame[62..], "VXLAN and inner frame intact");
    assert_eq!(
        kept_zero.1[60..62],
        [0, 0],
        "a zero UDP checksum (RFC 6935) stays zero"
    );
    for (n, four) in places.chunks(4).enumerate() {
        assert!(four.iter().all(|c| *c == four[0]), "flow {n} split");
    }
}

#[test]
fn over_ipv6_the_fib_cache_answers_a_second_frame_and_not_one_over_the_mtu() {
    if !privileged("relay XDP test run, IPv6") {
        return;
    }
    let fib = fib6();
    let (a, b) = (Ipv4Addr::new(10, 0, 2, 4), Ipv4Addr::new(10, 0, 2, 5));
    let frame = mirrored6("fd00::4", &inner_tcp(a, b, 40_000, 80, 100));
    let big = mirrored6("fd00::4", &inner_tcp(a, b, 40_000, 80, 1500));
    let steps = in_fib6(&fib, move |p| {
        let mut steps = Vec::new();
        for (frame, invalidate) in [
            (&frame, false),
            (&frame, false),
            (&big, false),
            (&frame, false),
            (&frame, true),
        ] {
            if invalidate {
                p.fib_invalidator().invalidate().expect("invalidate");
            }
            let before = p.fib_counters().expect("FIB counters");
            let (_, _, counter) = decide(p, frame);
            let after = p.fib_counters().expect("FIB counters");
            steps.push((
                after.hits - before.hits,
                after.lookups - before.lookups,
                counter,
            ));
        }
        steps
    });
    let redirect = RelayCounter::Redirect;
    assert_eq!(
        steps,
        [
            (0, 1, redirect),
            (1, 0, redirect),
            (0, 1, RelayCounter::PassMtu),
            (1, 0, redirect),
            (0, 1, redirect),
        ]
    );
}

#[test]
fn over_ipv6_the_relay_output_is_byte_for_byte_the_dnat_proxys() {
    if !privileged("relay against DNAT, IPv6") {
        return;
    }
    let tmp = TempDir::new("relay-dnat6");
    let line = line("rl6");
    for (ns, dev, addr) in [
        (&line.sender, "s0", "fd78:1::1/64"),
        (&line.relay, "r0", "fd78:1::2/64"),
        (&line.relay, "r1", "fd78:2::1/64"),
        (&line.collector, "c0", "fd78:2::2/64"),
    ] {
        ns.ip(&["addr", "add", addr, "dev", dev, "nodad"])
            .expect("address");
    }
    line.relay
        .run("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"])
        .expect("forwarding");
    let (src_mac, dst_mac) = (mac_of(&line.sender, "s0"), mac_of(&line.relay, "r0"));
    let frames: Vec<Vec<u8>> = (0..20u16)
        .map(|i| {
            let inner = inner_tcp(
                Ipv4Addr::new(10, 0, 2, 4),
                Ipv4Addr::new(10, 0, 2, 5),
                41_000 + i,
                80,
                usize::from(i * 53 % 1100),
            );
            let mut frame = VxlanFrameBuilder::new()
                .outer_src_mac(src_mac)
                .outer_dst_mac(dst_mac)
                .outer_src_ip("fd78:1::1".parse::<std::net::Ipv6Addr>().unwrap())
                .outer_dst_ip("fd78:1::2".parse::<std::net::Ipv6Addr>().unwrap())
                .udp_src_port(50_000 + i)
                .ttl(64)
                .vni(27)
                .inner(&inner)
                .build()
                .expect("frame");
            // The kernel's NAT takes only IPv6 UDP with a checksum.
            let check = !udp6_sum(&frame);
            frame[60..62].copy_from_slice(&check.to_be_bytes());
            frame
        })
        .collect();
    let through = |what: &str, setup: &dyn Fn() -> Option<vxdecap::lab::netns::WatchedChild>| {
        let file = tmp.path(&format!("{what}.pcap"));
        let mut dump = tcpdump_to(&line.collector, "c0", &file, "ip6 and udp port 4789");
        let mut running = setup();
        send_raw(&line.sender, "s0", &frames, &tmp);
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = dump.stop(nix::sys::signal::Signal::SIGINT);
        if let Some(mut running) = running.take() {
            let outcome = running
                .stop(nix::sys::signal::Signal::SIGINT)
                .expect("stop the relay");
            assert!(outcome.status.success(), "{}", outcome.stderr);
            eprintln!("relay:\n{}", outcome.stderr);
        }
        read_pcap(&file)
            .into_iter()
            .map(|r| r.data)
            .collect::<Vec<_>>()
    };
    let rules = tmp.path("dnat6.nft");
    std::fs::write(
        &rules,
        "table ip6 vxdnat {
        chain pre { type nat hook prerouting priority dstnat; ip6 daddr fd78:1::2 udp dport 4789 dnat to fd78:2::2; }
        chain post { type nat hook postrouting priority srcnat; ip6 daddr fd78:2::2 udp dport 4789 snat to fd78:2::1; }
    }",
    )
    .expect("rules");
    let dnat = through("dnat", &|| {
        line.relay
            .run("nft", &["-f", rules.to_str().unwrap()])
            .expect("nft");
        line.relay
            .run("ping", &["-6", "-c1", "-W1", "fd78:2::2"])
            .expect("resolve");
        None
    });
    line.relay.run("nft", &["flush", "ruleset"]).expect("flush");
    let relayed = through("relay", &|| {
        let relay = start_relay(
            &line.relay,
            &[
                "-i",
                "r0",
                "--mode",
                "skb",
                "--to",
                "fd78:2::2",
                "--no-health",
            ],
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !String::from_utf8_lossy(
            &line
                .relay
                .ip(&["-6", "neigh", "show", "fd78:2::2"])
                .unwrap()
                .stdout,
        )
        .contains("lladdr")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "fd78:2::2 never resolved"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(relay)
    });
    assert_eq!(
        dnat.len(),
        frames.len(),
        "the DNAT proxy forwarded every frame"
    );
    assert_eq!(
        relayed.len(),
        frames.len(),
        "the relay forwarded every frame"
    );
    for (i, ((d, r), sent)) in dnat.iter().zip(&relayed).zip(&frames).enumerate() {
        assert_eq!(r[21], sent[21] - 1, "frame {i}: hop limit");
        assert_eq!(udp6_sum(r), 0xffff, "frame {i}: UDP checksum");
        assert_eq!(r[62..], sent[62..], "frame {i}: VXLAN payload intact");
        assert_eq!(
            d, r,
            "frame {i}: the relay's frame differs from the proxy's"
        );
    }
}
