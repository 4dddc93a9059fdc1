//! `--tap`: inner frames written to a TAP device, read by real consumers
//! from Debian — tcpdump, and nfdump's flow meter (nfpcapd → nfdump). Runs
//! in a network namespace, so the tap goes away with it. Needs root.
//!
//! Offline replay is fast, so consumers start first: the test makes a
//! persistent tap (`ip tuntap add`), starts the consumer on it and waits
//! for its readiness line, then replays; vxdecap attaches to the existing
//! tap, and the tap outlives vxdecap, so no frame in flight is lost with
//! it. (The live test in tests/routes.rs covers a tap vxdecap creates and
//! removes.) Consumers use immediate mode: with libpcap's default
//! TPACKET_V3 blocks, a quiet interface's frames wait in a part-filled
//! block.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use vxdecap::lab::netns::{unique_name, NetNs, WatchedChild};

/// A persistent tap `dev` in `ns` (as `ip tuntap add` makes it), up, so
/// that consumers can open it before vxdecap attaches and frames flow.
fn persistent_tap(ns: &NetNs, dev: &str) {
    ns.ip(&["tuntap", "add", "dev", dev, "mode", "tap"])
        .expect("ip tuntap add");
    // No IPv6 on the tap: the kernel's own neighbour discovery would join
    // the flows the meter sees.
    ns.run(
        "sysctl",
        &["-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")],
    )
    .expect("disable IPv6 on the tap");
    ns.ip(&["link", "set", dev, "up"]).expect("tap up");
}

/// Runs `vxdecap decap -r input args…` in `ns`; returns its summary.
fn replay(ns: &NetNs, input: &Path, args: &[&str]) -> String {
    let mut full = vec!["decap", "-r", input.to_str().unwrap()];
    full.extend_from_slice(args);
    let o = output(&mut ns.command(vxdecap_path(), &full));
    let summary = stderr(&o);
    assert!(o.status.success(), "vxdecap failed:\n{summary}");
    summary
}

/// Frames the kernel received on `dev` (what was written to the tap).
fn rx_packets(ns: &NetNs, dev: &str) -> u64 {
    let out = ns
        .run(
            "cat",
            &[&format!("/sys/class/net/{dev}/statistics/rx_packets")],
        )
        .expect("read rx_packets");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

fn wait_for_rx(ns: &NetNs, dev: &str, at_least: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while rx_packets(ns, dev) < at_least {
        assert!(
            Instant::now() < deadline,
            "only {} of {at_least} frames reached {dev}",
            rx_packets(ns, dev)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// tcpdump on `dev`, inbound only (the kernel's own IPv6 chatter on the
/// tap goes out, not in), writing `out` packet by packet.
fn tcpdump_on(ns: &NetNs, dev: &str, out: &Path, count: usize) -> WatchedChild {
    let cmd = ns.command(
        "tcpdump",
        &[
            "-i",
            dev,
            "--immediate-mode",
            // Immediate mode rings hold snaplen-sized slots: with the
            // default 256 KiB snaplen a 2 MiB ring holds 8 frames.
            "-s",
            "2048",
            "-B",
            "8192",
            "-Q",
            "in",
            "-U",
            "-c",
            &count.to_string(),
            "-w",
            out.to_str().unwrap(),
        ],
    );
    WatchedChild::spawn(cmd, &["listening on"], Duration::from_secs(20), None)
        .expect("tcpdump starts")
}

#[test]
fn tcpdump_on_the_tap_sees_exactly_the_inner_frames() {
    if !privileged("decap --tap read by tcpdump") {
        return;
    }
    let tmp = TempDir::new("tap-tcpdump");
    let input = fixture("suricata-verify/aws-traffic-mirroring-vxlan.pcap");
    let reference = tmp.path("reference.pcap");
    let o = output(
        vxdecap()
            .args(["decap", "-r"])
            .arg(&input)
            .arg("-w")
            .arg(&reference),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let expected: Vec<Vec<u8>> = read_pcap(&reference).into_iter().map(|r| r.data).collect();
    assert_eq!(expected.len(), 100);

    let ns = NetNs::create(&unique_name("tt")).expect("netns");
    persistent_tap(&ns, "vxtap0");
    let seen = tmp.path("tap.pcap");
    let mut tcpdump = tcpdump_on(&ns, "vxtap0", &seen, expected.len());
    let also = tmp.path("also.pcap");
    // -w and --tap together: two analyzers over the fan-out.
    let summary = replay(
        &ns,
        &input,
        &["--tap", "vxtap0", "-w", also.to_str().unwrap()],
    );
    // tcpdump -c stops by itself once it has every frame.
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_pcap_if_any(&seen).len() < expected.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let said = tcpdump
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("tcpdump output");

    let got: Vec<Vec<u8>> = read_pcap(&seen).into_iter().map(|r| r.data).collect();
    assert_eq!(
        got, expected,
        "tcpdump on the tap: the inner frames, in order\n{}\n{summary}",
        said.stderr
    );
    assert_eq!(read_pcap(&also).len(), 100, "-w alongside: {summary}");
    assert!(
        summary.contains("0 tap_write_failed, 0 tap_frame_too_big"),
        "{summary}"
    );
    assert!(
        summary.contains("analyzer 1 (tap vxtap0): 100 inner frames"),
        "{summary}"
    );
    // A tap vxdecap did not create stays (it is the user's), without carrier.
    let link = ns.ip(&["link", "show", "dev", "vxtap0"]).expect("tap kept");
    assert!(String::from_utf8_lossy(&link.stdout).contains("NO-CARRIER"));
}

fn read_pcap_if_any(path: &Path) -> Vec<Record> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() >= 24 => read_pcap(path),
        _ => Vec::new(),
    }
}

/// (protocol, source, source port, destination, destination port) → packets,
/// for the IPv4 TCP and UDP frames of `frames`.
fn flows_of(frames: &[Record]) -> BTreeMap<(u8, String, u16, String, u16), u64> {
    let mut flows = BTreeMap::new();
    for f in frames {
        let d = &f.data;
        if d.len() < 38 || d[12..14] != [0x08, 0x00] || !matches!(d[23], 6 | 17) {
            continue;
        }
        let ihl = usize::from(d[14] & 0x0f) * 4;
        let l4 = 14 + ihl;
        let ip = |at: usize| format!("{}.{}.{}.{}", d[at], d[at + 1], d[at + 2], d[at + 3]);
        let port = |at: usize| u16::from_be_bytes([d[at], d[at + 1]]);
        *flows
            .entry((d[23], ip(26), port(l4), ip(30), port(l4 + 2)))
            .or_default() += 1;
    }
    flows
}

#[test]
fn a_flow_meter_on_the_tap_reports_the_inner_flows() {
    if !privileged("decap --tap read by nfpcapd and nfdump") {
        return;
    }
    let tmp = TempDir::new("tap-flows");
    let input = fixture("suricata-verify/aws-traffic-mirroring-vxlan.pcap");
    let reference = tmp.path("reference.pcap");
    let o = output(
        vxdecap()
            .args(["decap", "-r"])
            .arg(&input)
            .arg("-w")
            .arg(&reference),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = flows_of(&read_pcap(&reference));
    assert!(expected.len() > 10, "SSH, DNS and NTP flows: {expected:?}");

    let ns = NetNs::create(&unique_name("tf")).expect("netns");
    persistent_tap(&ns, "vxflow0");
    // nfdump's own libpcap flow meter. (softflowd 1.1.0, the classic
    // choice, never processes packets on a quiet interface with this
    // libpcap: it does not ask for immediate mode. nfpcapd does.)
    let flowdir = tmp.path("flows");
    std::fs::create_dir_all(&flowdir).expect("flow dir");
    let mut meter = WatchedChild::spawn(
        ns.command(
            "nfpcapd",
            &["-v", "-i", "vxflow0", "-w", flowdir.to_str().unwrap()],
        ),
        &["Startup nfpcapd"],
        Duration::from_secs(20),
        None,
    )
    .expect("nfpcapd starts");
    let before = rx_packets(&ns, "vxflow0");
    let summary = replay(&ns, &input, &["--tap", "vxflow0"]);
    wait_for_rx(&ns, "vxflow0", before + 100);
    std::thread::sleep(Duration::from_millis(500));
    // SIGTERM: nfpcapd flushes every flow into its file and exits.
    let said = meter
        .stop(nix::sys::signal::Signal::SIGTERM)
        .expect("nfpcapd output");

    let o = output(std::process::Command::new("nfdump").args([
        "-R",
        flowdir.to_str().unwrap(),
        "-q",
        "-N",
        "-o",
        "fmt:%pr|%sa|%sp|%da|%dp|%pkt",
    ]));
    assert!(o.status.success(), "nfdump: {}", stderr(&o));
    let mut got: BTreeMap<(u8, String, u16, String, u16), u64> = BTreeMap::new();
    for line in stdout(&o).lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(f.len(), 6, "{line}");
        let proto = match f[0] {
            "TCP" | "6" => 6,
            "UDP" | "17" => 17,
            other => panic!("unexpected protocol {other} in {line}"),
        };
        *got.entry((
            proto,
            f[1].to_owned(),
            f[2].parse().expect("port"),
            f[3].to_owned(),
            f[4].parse().expect("port"),
        ))
        .or_default() += f[5].parse::<u64>().expect("packets");
    }
    assert_eq!(
        got, expected,
        "nfdump's flows are the inner flows\nnfpcapd: {}\n{summary}",
        said.stdout
    );
}

#[test]
fn frames_longer_than_the_tap_mtu_are_counted_not_written() {
    if !privileged("decap --tap with a small MTU") {
        return;
    }
    let tmp = TempDir::new("tap-mtu");
    let input = fixture("suricata-verify/aws-traffic-mirroring-vxlan.pcap");
    let reference = tmp.path("reference.pcap");
    let o = output(
        vxdecap()
            .args(["decap", "-r"])
            .arg(&input)
            .arg("-w")
            .arg(&reference),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let frames = read_pcap(&reference);
    let too_big = frames.iter().filter(|r| r.data.len() - 14 > 1000).count() as u64;
    assert!(too_big > 0 && too_big < 100, "{too_big}");

    let ns = NetNs::create(&unique_name("tm")).expect("netns");
    persistent_tap(&ns, "vxmtu0");
    ns.ip(&["link", "set", "vxmtu0", "mtu", "1000"])
        .expect("set the MTU");
    let before = rx_packets(&ns, "vxmtu0");
    let summary = replay(&ns, &input, &["--tap", "vxmtu0"]);
    assert_eq!(
        reason_count(&summary, "tap_frame_too_big"),
        too_big,
        "{summary}"
    );
    assert_eq!(frames_written(&summary), 100 - too_big, "{summary}");
    wait_for_rx(&ns, "vxmtu0", before + 100 - too_big);
}
