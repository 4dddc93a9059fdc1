//! GENEVE through the relay: the XDP program's choice of collector for every shape a cloud
//! sends (GENEVE with an inner Ethernet frame, with bare IP, and AWS Traffic Mirroring's
//! VXLAN inside a Gateway Load Balancer's GENEVE), its reasons for what it does not relay,
//! the VNI allowlist, outer fragments, and a live relay in namespaces. Needs root.

use super::*;
use vxdecap::wire::build::GeneveFrameBuilder;

/// The GENEVE VNI of the frames here (the mirror's VXLAN inside keeps `mirrored`'s 27).
const GENEVE_VNI: u32 = 77;

/// How a mirrored frame reaches the relay.
#[derive(Clone, Copy, Debug)]
enum Carrier {
    /// Plain VXLAN (the mirror's own tunnel).
    Vxlan,
    /// GENEVE carrying the Ethernet frame (0x6558, as GCP sends).
    GeneveEthernet,
    /// GENEVE carrying the frame's IP packet bare (0x0800, as AWS GWLB inline).
    GeneveBareIp,
    /// GENEVE carrying the mirror's VXLAN as bare IPv4 (AWS Traffic Mirroring into a GWLB).
    GeneveVxlan,
    /// GENEVE carrying an Ethernet frame that is the mirror's VXLAN.
    GeneveEthernetVxlan,
}

const CARRIERS: [Carrier; 5] = [
    Carrier::Vxlan,
    Carrier::GeneveEthernet,
    Carrier::GeneveBareIp,
    Carrier::GeneveVxlan,
    Carrier::GeneveEthernetVxlan,
];

/// A GENEVE frame from `host` (outer UDP source `port`) carrying `payload` as `protocol`, with
/// options that vary with `n`: the AWS GWLB ones or not, and one more of 0 to 31 data words or
/// not (so 0 to 40 words in all).
fn geneve_frame(host: Ipv4Addr, port: u16, protocol: u16, payload: &[u8], n: usize) -> Vec<u8> {
    let mut b = GeneveFrameBuilder::new()
        .outer(|o| {
            o.outer_src_ip(host)
                .outer_dst_ip(RELAY)
                .udp_src_port(port)
                .ttl(64)
                .ipv4_ident(0x4242)
        })
        .vni(GENEVE_VNI)
        .protocol(protocol);
    if n % 2 == 0 {
        b = b.aws_gwlb(0xe1, 0xa7, u32::from(port));
    }
    if n % 3 != 0 {
        b = b.option(0x0103, 0x85, &vec![0xab; (n % 32) * 4]);
    }
    b.payload(payload).build().expect("GENEVE frame")
}

/// The Ethernet frame `inner` as it arrives from mirror host `host` (outer UDP source `port`)
/// carried as `how`; `n` varies the GENEVE options.
fn carried(how: Carrier, inner: &[u8], host: Ipv4Addr, port: u16, n: usize) -> Vec<u8> {
    // The mirror's VXLAN, with its own outer source port (a hash of each direction).
    let vxlan = || {
        mirrored(host, inner)
            .udp_src_port(port ^ 0x5a5a)
            .build()
            .expect("VXLAN frame")
    };
    match how {
        Carrier::Vxlan => mirrored(host, inner)
            .udp_src_port(port)
            .build()
            .expect("VXLAN frame"),
        Carrier::GeneveEthernet => geneve_frame(host, port, 0x6558, inner, n),
        Carrier::GeneveBareIp => geneve_frame(host, port, 0x0800, &inner[14..], n),
        Carrier::GeneveVxlan => geneve_frame(host, port, 0x0800, &vxlan()[14..], n),
        Carrier::GeneveEthernetVxlan => geneve_frame(host, port, 0x6558, &vxlan(), n),
    }
}

/// Every flow's both directions, mirrored from both hosts, in each of the five carriers and
/// with GENEVE options of many lengths, reach one collector: the relay hashes the mirrored
/// flow, not the GENEVE header, its options or the tunnels around the flow.
#[test]
fn geneve_keeps_flow_affinity_in_every_shape_and_as_vxlan_does() {
    if !privileged("relay XDP test run") {
        return;
    }
    let fib = fib();
    let (a, b) = (Ipv4Addr::new(10, 0, 2, 4), Ipv4Addr::new(10, 0, 2, 5));
    let mut frames = Vec::new();
    for n in 0..120u16 {
        let (sport, dport) = (30_000 + n, 80 + n % 7);
        let views = [
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
        ];
        for (c, how) in CARRIERS.into_iter().enumerate() {
            for (v, (inner, host, port)) in views.iter().enumerate() {
                let variant = usize::from(n) + 7 * c + 11 * v;
                frames.push(carried(how, inner, *host, *port, variant));
            }
        }
    }
    let outs = in_fib(&fib, COLLECTORS.to_vec(), move |p| {
        frames
            .iter()
            .map(|f| {
                let (action, out, counter) = decide(p, f);
                assert_eq!((action, counter), (XDP_REDIRECT, RelayCounter::Redirect));
                sent_to(&out)
            })
            .collect::<Vec<_>>()
    });
    let per_flow = 4 * CARRIERS.len();
    let mut per_collector = [0usize; 3];
    for (flow, all) in outs.chunks(per_flow).enumerate() {
        for (i, c) in all.iter().enumerate() {
            assert_eq!(
                *c,
                all[0],
                "flow {flow}: {:?} view {} went elsewhere than plain VXLAN's: {all:?}",
                CARRIERS[i / 4],
                i % 4
            );
        }
        per_collector[COLLECTORS.iter().position(|c| *c == all[0]).unwrap()] += 1;
    }
    assert!(
        per_collector.iter().all(|&n| n > 15),
        "spread: {per_collector:?}"
    );
}

/// GENEVE the capture would refuse goes to the kernel untouched under
/// `pass_malformed_geneve`, never relayed by a hash of bytes that are not a flow's; VXLAN
/// inside GENEVE past `--max-tunnel-depth` under `pass_tunnel_too_deep`.
#[test]
fn malformed_geneve_and_too_deep_tunnels_are_passed_under_their_reasons() {
    if !privileged("relay XDP test run") {
        return;
    }
    let fib = fib();
    let host = Ipv4Addr::new(10, 1, 0, 4);
    let inner = inner_tcp(
        Ipv4Addr::new(10, 0, 2, 4),
        Ipv4Addr::new(10, 0, 2, 5),
        1,
        2,
        40,
    );
    let good = geneve_frame(host, 40_000, 0x6558, &inner, 1);
    // The GENEVE header starts after Ethernet, IPv4 and UDP.
    const AT: usize = 14 + 20 + 8;
    let mut opt_len_past_end = good.clone();
    opt_len_past_end[AT] = 63;
    let malformed = [
        ("header cut short", good[..AT + 6].to_vec()),
        (
            "version 1",
            GeneveFrameBuilder::new()
                .outer(|o| o.outer_src_ip(host).outer_dst_ip(RELAY))
                .version(1)
                .payload(&inner)
                .build()
                .unwrap(),
        ),
        ("Opt Len past the packet", opt_len_past_end),
        (
            "protocol LLDP",
            geneve_frame(host, 40_000, 0x88cc, &inner, 1),
        ),
        (
            "Ethernet cut short",
            geneve_frame(host, 40_000, 0x6558, &inner[..10], 1),
        ),
        (
            "bare IPv4 cut short",
            geneve_frame(host, 40_000, 0x0800, &inner[14..30], 2),
        ),
        (
            "bare IPv6 cut short",
            geneve_frame(host, 40_000, 0x86dd, &[0x60; 36], 3),
        ),
    ];
    let wrapped_vxlan = carried(Carrier::GeneveVxlan, &inner, host, 40_000, 4);
    let wrapped_eth_vxlan = carried(Carrier::GeneveEthernetVxlan, &inner, host, 40_000, 5);
    let bare = carried(Carrier::GeneveBareIp, &inner, host, 40_000, 6);
    let sent = malformed.clone();
    let got = in_fib(&fib, vec![COLLECTORS[0]], move |p| {
        let mut got: Vec<(u32, Vec<u8>, RelayCounter)> =
            malformed.iter().map(|(_, f)| decide(p, f)).collect();
        got.push(decide(p, &good));
        got
    });
    assert_eq!(got.len(), sent.len() + 1);
    for ((what, frame), (action, out, counter)) in sent.iter().zip(&got) {
        assert_eq!(
            (*action, *counter),
            (XDP_PASS, RelayCounter::PassGeneveMalformed),
            "{what}"
        );
        assert_eq!(out, frame, "{what}: passed untouched");
    }
    assert_eq!(
        got.last().map(|g| (g.0, g.2)),
        Some((XDP_REDIRECT, RelayCounter::Redirect)),
        "the well-formed frame they were made from is relayed"
    );
    // With one tunnel allowed, VXLAN inside GENEVE (bare or behind Ethernet) is one too many,
    // as in the capture; a bare IP flow is not a tunnel.
    let shallow = PortSet::default().with_max_depth(1);
    let got = in_fib_with(&fib, shallow, vec![COLLECTORS[0]], move |p| {
        [&wrapped_vxlan, &wrapped_eth_vxlan, &bare].map(|f| {
            let (action, _, counter) = decide(p, f);
            (action, counter)
        })
    });
    assert_eq!(
        got,
        [
            (XDP_PASS, RelayCounter::PassTunnelDepth),
            (XDP_PASS, RelayCounter::PassTunnelDepth),
            (XDP_REDIRECT, RelayCounter::Redirect),
        ]
    );
}

/// The VNI allowlist reads GENEVE's VNI, and for VXLAN inside GENEVE the outermost (GENEVE)
/// one, as the capture's program and worker do.
#[test]
fn the_vni_allowlist_drops_by_the_geneve_vni() {
    use vxdecap::steer::allow::{parse_vnis, Allowlist};
    if !privileged("relay XDP test run") {
        return;
    }
    let fib = fib();
    let host = Ipv4Addr::new(10, 1, 0, 4);
    let inner = inner_tcp(
        Ipv4Addr::new(10, 0, 2, 4),
        Ipv4Addr::new(10, 0, 2, 5),
        1,
        2,
        0,
    );
    let with_vni = |frame: Vec<u8>, vni: u32| {
        let mut frame = frame;
        frame[14 + 20 + 8 + 4..14 + 20 + 8 + 7].copy_from_slice(&vni.to_be_bytes()[1..]);
        frame
    };
    let frames = [
        carried(Carrier::GeneveEthernet, &inner, host, 1000, 1),
        with_vni(carried(Carrier::GeneveEthernet, &inner, host, 1000, 1), 78),
        // GENEVE 77 around the mirror's VXLAN 27: allowed by the outer VNI.
        carried(Carrier::GeneveVxlan, &inner, host, 1000, 2),
        // GENEVE 27 around VXLAN 27: the inner VNI does not let it through.
        with_vni(carried(Carrier::GeneveVxlan, &inner, host, 1000, 2), 27),
        with_vni(carried(Carrier::GeneveBareIp, &inner, host, 1000, 3), 78),
    ];
    let got = in_fib(&fib, vec![COLLECTORS[0]], move |p| {
        let mut allow = Allowlist::default();
        allow.add_vnis(parse_vnis("77").unwrap()).unwrap();
        p.set_allowlist(&allow).expect("allowlist");
        frames.each_ref().map(|f| {
            let (action, _, counter) = decide(p, f);
            (action, counter)
        })
    });
    assert_eq!(
        got,
        [
            (XDP_REDIRECT, RelayCounter::Redirect),
            (XDP_DROP, RelayCounter::DropVni),
            (XDP_REDIRECT, RelayCounter::Redirect),
            (XDP_DROP, RelayCounter::DropVni),
            (XDP_DROP, RelayCounter::DropVni),
        ]
    );
}

/// A GENEVE(VXLAN) datagram cut in outer fragments: the first goes where the whole datagram
/// would, and the later ones follow it.
#[test]
fn outer_fragments_of_geneve_follow_their_first_fragment() {
    if !privileged("relay XDP test run") {
        return;
    }
    let fib = fib();
    let host = Ipv4Addr::new(10, 1, 0, 4);
    let (a, b) = (Ipv4Addr::new(10, 0, 2, 4), Ipv4Addr::new(10, 0, 2, 5));
    let mut cases = Vec::new();
    for n in 0..12u16 {
        let inner = inner_tcp(a, b, 2000 + n, 443, 1000);
        let whole = carried(Carrier::GeneveVxlan, &inner, host, 3000 + n, usize::from(n));
        let mut first = whole.clone();
        first[18..20].copy_from_slice(&(0x6000 + n).to_be_bytes());
        let pieces = fragment_ipv4_at(&first, &[400, 800]).expect("fragments");
        assert_eq!(pieces.len(), 3);
        cases.push((whole, pieces));
    }
    let got = in_fib(&fib, COLLECTORS.to_vec(), move |p| {
        cases
            .iter()
            .map(|(whole, pieces)| {
                let (_, out, _) = decide(p, whole);
                let pieces: Vec<(u32, Ipv4Addr, RelayCounter)> = pieces
                    .iter()
                    .map(|f| {
                        let (action, out, counter) = decide(p, f);
                        (action, sent_to(&out), counter)
                    })
                    .collect();
                (sent_to(&out), pieces)
            })
            .collect::<Vec<_>>()
    });
    for (n, (whole, pieces)) in got.iter().enumerate() {
        assert_eq!(
            (pieces[0].0, pieces[0].1, pieces[0].2),
            (XDP_REDIRECT, *whole, RelayCounter::Redirect),
            "datagram {n}: the first fragment goes where the whole datagram goes"
        );
        for later in &pieces[1..] {
            assert_eq!(
                (later.0, later.1, later.2),
                (XDP_REDIRECT, *whole, RelayCounter::Fragment),
                "datagram {n}"
            );
        }
    }
}

/// Crafted GENEVE sent from a namespace (this kernel has no GENEVE device) through a live relay
/// started with `--cloud aws-gwlb`: the collector's tcpdump sees every frame, byte for byte as
/// sent apart from the MACs, the outer addresses, the TTL and the checksums the relay rewrites.
#[test]
fn relay_live_forwards_geneve_intact_but_for_the_rewritten_fields() {
    if !privileged("relay live GENEVE") {
        return;
    }
    let tmp = TempDir::new("relay-geneve");
    let line = line("rlg");
    let (src_mac, dst_mac) = (mac_of(&line.sender, "s0"), mac_of(&line.relay, "r0"));
    let mut frames = Vec::new();
    for i in 0..30u16 {
        let inner = inner_tcp(
            Ipv4Addr::new(10, 0, 2, 4),
            Ipv4Addr::new(10, 0, 2, 5),
            40_000 + i,
            80,
            usize::from(i * 37 % 1000),
        );
        let how = [
            Carrier::GeneveEthernet,
            Carrier::GeneveBareIp,
            Carrier::GeneveVxlan,
        ][usize::from(i % 3)];
        let mut frame = carried(how, &inner, LINE_SENDER, 50_000 + i, usize::from(i));
        frame[0..6].copy_from_slice(&dst_mac);
        frame[6..12].copy_from_slice(&src_mac);
        frame[30..34].copy_from_slice(&LINE_RELAY_IN.octets());
        frame[24..26].copy_from_slice(&[0, 0]);
        let sum = !ipv4_sum(&frame[14..34]);
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
        if i % 5 == 4 {
            set_udp_checksum(&mut frame);
        }
        frames.push(frame);
    }
    line.relay
        .run("sysctl", &["-qw", "net.ipv4.conf.r0.forwarding=1"])
        .expect("forwarding on r0");
    let file = tmp.path("collector.pcap");
    let mut dump = tcpdump_to(&line.collector, "c0", &file, "udp port 6081");
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
            "--cloud",
            "aws-gwlb",
        ],
    );
    wait_for_neighbour(&line.relay, LINE_COLLECTOR);
    send_raw(&line.sender, "s0", &frames, &tmp);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let dumped = dump
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("stop tcpdump");
    eprintln!("tcpdump: {}", dumped.stderr);
    let outcome = relay
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("stop the relay");
    assert!(outcome.status.success(), "{}", outcome.stderr);
    eprintln!("relay:\n{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("cloud aws-gwlb: VXLAN 4789, GENEVE 6081, tunnel depth 2"),
        "the start-up line names the preset and the ports: {}",
        outcome.stderr
    );
    assert_eq!(
        summary_count(&outcome.stderr, " relayed_redirect"),
        30,
        "{}",
        outcome.stderr
    );
    let got: Vec<Vec<u8>> = read_pcap(&file).into_iter().map(|r| r.data).collect();
    assert_eq!(got.len(), frames.len(), "the relay forwarded every frame");
    let collector_mac = mac_of(&line.collector, "c0");
    for (i, (r, sent)) in got.iter().zip(&frames).enumerate() {
        assert_eq!(r[0..6], collector_mac, "frame {i}: MAC");
        assert_eq!(r[12..22], sent[12..22], "frame {i}: IPv4 header start");
        assert_eq!(r[22], sent[22] - 1, "frame {i}: TTL");
        assert_eq!(r[23], sent[23], "frame {i}: protocol");
        assert_eq!(ipv4_sum(&r[14..34]), 0xffff, "frame {i}: IPv4 checksum");
        assert_eq!(r[26..30], LINE_RELAY_OUT.octets(), "frame {i}: source");
        assert_eq!(r[30..34], LINE_COLLECTOR.octets(), "frame {i}: destination");
        assert_eq!(r[34..40], sent[34..40], "frame {i}: ports and UDP length");
        if sent[40..42] == [0, 0] {
            assert_eq!(r[40..42], [0, 0], "frame {i}: UDP checksum 0 kept");
        } else {
            let mut check = r.clone();
            set_udp_checksum(&mut check);
            assert_eq!(check[40..42], r[40..42], "frame {i}: UDP checksum right");
        }
        assert_eq!(
            r[42..],
            sent[42..],
            "frame {i}: GENEVE and all inside intact"
        );
    }
}

/// Over IPv6 outer headers: GENEVE (bare IPv4, and VXLAN inside) picks the collector plain
/// VXLAN picks for the same flow, both directions and both mirror hosts, and leaves with the
/// UDP checksum right for the new addresses.
#[test]
fn over_ipv6_geneve_keeps_flow_affinity_and_the_udp_checksum_right() {
    if !privileged("relay XDP test run, IPv6") {
        return;
    }
    let fib = fib6();
    let (a, b) = (Ipv4Addr::new(10, 0, 2, 4), Ipv4Addr::new(10, 0, 2, 5));
    // `inner` from mirror host `host` in GENEVE over IPv6, carried as `how`, UDP checksum set.
    let geneve6 = |how: Carrier, inner: &[u8], host: &str, n: u16| {
        let v4 = carried(
            how,
            inner,
            Ipv4Addr::new(10, 1, 0, 4),
            40_000 + n,
            usize::from(n),
        );
        let geneve = &v4[14 + 20 + 8..];
        let mut frame = GeneveFrameBuilder::new()
            .outer(|o| {
                o.outer_src_ip(host.parse::<std::net::Ipv6Addr>().unwrap())
                    .outer_dst_ip(RELAY6.parse::<std::net::Ipv6Addr>().unwrap())
                    .udp_src_port(40_000 + n)
                    .ttl(64)
            })
            .build()
            .expect("GENEVE over IPv6");
        frame.truncate(14 + 40 + 8);
        frame.extend_from_slice(geneve);
        let udp_len = (8 + geneve.len()) as u16;
        frame[18..20].copy_from_slice(&udp_len.to_be_bytes());
        frame[58..60].copy_from_slice(&udp_len.to_be_bytes());
        frame[60..62].copy_from_slice(&[0, 0]);
        let check = !udp6_sum(&frame);
        frame[60..62].copy_from_slice(&check.to_be_bytes());
        assert_eq!(udp6_sum(&frame), 0xffff);
        frame
    };
    let mut frames = Vec::new();
    for n in 0..40u16 {
        let views = [
            (inner_tcp(a, b, 30_000 + n, 443, 0), "fd00::4"),
            (inner_tcp(b, a, 443, 30_000 + n, 0), "fd00::4"),
            (inner_tcp(a, b, 30_000 + n, 443, 0), "fd00::5"),
            (inner_tcp(b, a, 443, 30_000 + n, 0), "fd00::5"),
        ];
        for (v, (inner, host)) in views.iter().enumerate() {
            frames.push(mirrored6(host, inner));
            frames.push(geneve6(Carrier::GeneveBareIp, inner, host, n + v as u16));
            frames.push(geneve6(Carrier::GeneveVxlan, inner, host, n + 2 * v as u16));
        }
    }
    let outs = in_fib6(&fib, move |p| {
        frames
            .iter()
            .map(|f| {
                let (action, out, counter) = decide(p, f);
                assert_eq!((action, counter), (XDP_REDIRECT, RelayCounter::Redirect));
                assert_eq!(udp6_sum(&out), 0xffff, "UDP checksum after the rewrite");
                assert_eq!(out[62..], f[62..], "GENEVE and all inside intact");
                out[38..54].to_vec()
            })
            .collect::<Vec<_>>()
    });
    for (flow, all) in outs.chunks(12).enumerate() {
        assert!(all.iter().all(|c| *c == all[0]), "flow {flow} split");
    }
}
