//! Live capture on real kernel traffic: a kernel VXLAN device in one
//! namespace sends over a veth pair to the collector namespace, where
//! `vxdecap capture` runs with XDP and AF_XDP. Needs root.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they measured"
)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;
use vxdecap::lab::netns::{unique_name, veth_pair_with_queues, NetNs};

const SENDER_UNDERLAY: &str = "10.77.0.1";
const COLLECTOR: &str = "10.77.0.2";
const INNER_PEER: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
const INNER_PORT: u16 = 9999;

/// A sender namespace with a kernel VXLAN device (VNI 42) whose underlay
/// veth leads to `eth1` in the collector namespace.
struct VxlanPair {
    sender: NetNs,
    collector: NetNs,
}

impl VxlanPair {
    fn new(tag: &str) -> Self {
        Self::with_queues(tag, 1)
    }

    fn with_queues(tag: &str, queues: u32) -> Self {
        let base = unique_name(tag);
        let sender = NetNs::create(&format!("{base}-tx")).expect("sender netns");
        let collector = NetNs::create(&format!("{base}-rx")).expect("collector netns");
        let pair = Self { sender, collector };
        pair.wire(queues);
        pair
    }

    /// Creates the veth pair between the namespaces and the sender's VXLAN
    /// device over it (again, after the link was deleted).
    fn wire(&self, queues: u32) {
        let (sender, collector) = (&self.sender, &self.collector);
        // Deleting the underlay takes the VXLAN device with it; be sure.
        let _ = sender.ip(&["link", "del", "vx0"]);
        veth_pair_with_queues(sender, "und0", collector, "eth1", queues).expect("veth pair");
        sender
            .configure("und0", &format!("{SENDER_UNDERLAY}/24"))
            .expect("sender addr");
        collector
            .configure("eth1", &format!("{COLLECTOR}/24"))
            .expect("collector addr");
        VxlanSender {
            dev: "vx0",
            vni: 42,
            local: SENDER_UNDERLAY,
            remote: COLLECTOR,
            underlay: "und0",
            inner: "192.168.77.1/24",
            peer: &INNER_PEER.to_string(),
            peer_mac: "02:00:00:00:77:02",
        }
        .add(sender);
        // Resolve the underlay neighbour now so no ARP is pending during the test.
        sender
            .run("ping", &["-c", "1", "-W", "2", COLLECTOR])
            .expect("underlay ping");
    }

    /// Sends `count` UDP datagrams through the VXLAN device; payload `prefix-NNN`.
    fn send_inner(&self, prefix: &str, count: usize) {
        self.send_inner_over_flows(prefix, count, 1);
    }

    /// Sends datagrams `prefix-NNN` for NNN in 0..count from one thread,
    /// over `flows` inner UDP flows (source ports). The kernel VXLAN device
    /// derives the outer UDP source port from the inner flow, as Azure and
    /// AWS do, and the veth transmit queue (hence the collector's rx queue)
    /// follows the outer flow's hash.
    fn send_inner_over_flows(&self, prefix: &str, count: usize, flows: usize) {
        self.send_datagrams(prefix, count, flows, 0);
    }

    /// Sends datagrams `prefix-NNN` (padded to `pad_to` bytes as
    /// `prefix-NNN-xxx…` when `pad_to` is longer) over `flows` inner flows,
    /// pausing 2 ms every 16.
    fn send_datagrams(&self, prefix: &str, count: usize, flows: usize, pad_to: usize) {
        let prefix = prefix.to_owned();
        self.sender
            .spawn_in(move || {
                let sockets = std::iter::repeat_with(|| UdpSocket::bind("192.168.77.1:0"))
                    .take(flows)
                    .collect::<std::io::Result<Vec<_>>>()?;
                for i in 0..count {
                    let mut payload = format!("{prefix}-{i:03}").into_bytes();
                    if pad_to > payload.len() {
                        payload.push(b'-');
                        payload.resize(pad_to, b'x');
                    }
                    sockets[i % flows].send_to(&payload, (INNER_PEER, INNER_PORT))?;
                    if i % 16 == 15 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                Ok(())
            })
            .expect("enter sender netns")
            .join()
            .expect("sender thread")
            .expect("send inner datagrams");
    }

    /// Sends `count` hand-made VXLAN datagrams with `vni` from the sender's
    /// address `from` straight to the collector's port 4789 (not through
    /// the VXLAN device): what a forger on the VNet can do.
    fn send_forged(&self, from: &str, vni: u32, count: usize) {
        let from = from.to_owned();
        self.sender
            .spawn_in(move || {
                let inner = vxdecap::wire::build::inner_ipv4_udp_frame(
                    &vxdecap::wire::build::InnerIpv4Udp::default(),
                )?;
                let mut payload = vec![0x08, 0, 0, 0];
                payload.extend_from_slice(&(vni << 8).to_be_bytes());
                payload.extend_from_slice(&inner);
                let socket = UdpSocket::bind((from.as_str(), 0))?;
                for _ in 0..count {
                    socket.send_to(&payload, (COLLECTOR, 4789))?;
                }
                Ok(())
            })
            .expect("enter sender netns")
            .join()
            .expect("sender thread")
            .expect("send forged VXLAN");
    }

    /// A TCP exchange from the sender to the collector's own address.
    fn tcp_round_trip(&self) {
        let listener = self
            .collector
            .spawn_in(|| {
                let listener = TcpListener::bind((COLLECTOR, 7000))?;
                let (mut conn, _) = listener.accept()?;
                let mut buf = [0u8; 4];
                conn.read_exact(&mut buf)?;
                conn.write_all(b"pong")?;
                Ok(buf)
            })
            .expect("enter collector netns");
        let client = self
            .sender
            .spawn_in(|| {
                let addr: SocketAddr = format!("{COLLECTOR}:7000").parse()?;
                let mut last = None;
                for _ in 0..50 {
                    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                        Ok(mut s) => {
                            s.write_all(b"ping")?;
                            let mut buf = [0u8; 4];
                            s.read_exact(&mut buf)?;
                            return Ok(buf);
                        }
                        Err(e) => last = Some(e),
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(last.expect("an error").into())
            })
            .expect("enter sender netns");
        assert_eq!(
            &client.join().expect("client").expect("tcp client"),
            b"pong"
        );
        assert_eq!(
            &listener.join().expect("server").expect("tcp server"),
            b"ping"
        );
    }

    fn xdp_attached(&self) -> bool {
        let out = self
            .collector
            .ip(&["link", "show", "dev", "eth1"])
            .expect("ip link show");
        String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
    }
}

/// The UDP payload of an inner Ethernet/IPv4/UDP frame.
fn inner_udp_payload(frame: &[u8]) -> Option<(u16, &[u8])> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let udp = &frame[14 + ihl..];
    Some((u16::from_be_bytes([udp[2], udp[3]]), &udp[8..]))
}

fn capture_exact_frames(mode: &str, tag: &str) {
    if !privileged(&format!("live capture ({mode} mode)")) {
        return;
    }
    let pair = VxlanPair::new(tag);
    let tmp = TempDir::new(tag);
    let pcap = tmp.path("inner.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-w", pcap.to_str().unwrap(), "--mode", mode],
    );
    assert!(pair.xdp_attached(), "XDP program attached during capture");

    pair.send_inner("vxdecap-live", 200);
    // Management traffic to the collector itself keeps working.
    pair.tcp_round_trip();
    pair.sender
        .run("ping", &["-c", "3", "-i", "0.2", "-W", "2", COLLECTOR])
        .expect("ICMP to the collector");
    std::thread::sleep(Duration::from_millis(200));

    let (ok, summary) = capture.stop();
    assert!(ok, "capture failed:\n{summary}");
    assert!(!pair.xdp_attached(), "XDP program detached after capture");
    assert_eq!(frames_written(&summary), 200, "{summary}");
    assert!(summary.contains("0 packets not written"), "{summary}");
    // veth sockets get no NAPI id: no busy polling, and the start-up lines say why.
    assert!(
        summary.contains("queue 0 receive policy auto: the kernel gave this socket no NAPI id"),
        "{summary}"
    );
    assert!(
        summary.contains("analyzers run in the worker's thread"),
        "a file writer with no core of its own runs inline (this test runs on 2 CPUs):\n{summary}"
    );
    assert!(
        summary.contains("passed to the kernel (pass_not_udp"),
        "TCP/ICMP went to the kernel:\n{summary}"
    );

    let latency = summary
        .lines()
        .find(|l| l.starts_with("latency receive to analyzer: p50 "))
        .unwrap_or_else(|| panic!("no latency line in:\n{summary}"));
    assert!(
        latency.ends_with("(200 frames)"),
        "every written frame is measured: {latency}"
    );

    let records = read_pcap(&pcap);
    assert_eq!(records.len(), 200);
    for (i, record) in records.iter().enumerate() {
        let (port, payload) =
            inner_udp_payload(&record.data).unwrap_or_else(|| panic!("frame {i} is not inner UDP"));
        assert_eq!(port, INNER_PORT);
        assert_eq!(
            payload,
            format!("vxdecap-live-{i:03}").as_bytes(),
            "frame {i} in order, intact"
        );
    }
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(records
        .iter()
        .all(|r| r.timestamp_ns <= now_ns && now_ns - r.timestamp_ns < 120_000_000_000));
    // Each frame carries its own receive time, read by the XDP program (a
    // per-batch clock would give frames of one batch the same time).
    assert!(
        records
            .windows(2)
            .all(|w| w[0].timestamp_ns < w[1].timestamp_ns),
        "per-frame XDP timestamps, strictly increasing"
    );
    assert!(!summary.contains("no_rx_timestamp"), "{summary}");
}

#[test]
fn live_capture_driver_mode_writes_exactly_the_sent_frames() {
    capture_exact_frames("auto", "ld");
}

#[test]
fn live_capture_skb_mode_writes_exactly_the_sent_frames() {
    capture_exact_frames("skb", "ls");
}

#[test]
fn sigkill_leaves_no_xdp_program_and_traffic_flows() {
    if !privileged("sigkill cleanup") {
        return;
    }
    let pair = VxlanPair::new("lk");
    let mut capture = RunningCapture::start(&pair.collector, &["-i", "eth1", "-w", "/dev/null"]);
    assert!(pair.xdp_attached());
    let pid = capture.pid();
    capture.kill();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |s| s.contains(") Z")),
        "capture process is gone"
    );
    let mut detached = false;
    for _ in 0..100 {
        if !pair.xdp_attached() {
            detached = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(detached, "the BPF link went away with the process");
    pair.sender
        .run("ping", &["-c", "2", "-i", "0.2", "-W", "2", COLLECTOR])
        .expect("traffic flows after SIGKILL");
    pair.tcp_round_trip();
}

#[test]
fn second_capture_on_a_busy_interface_changes_nothing() {
    if !privileged("busy interface") {
        return;
    }
    let pair = VxlanPair::new("lb");
    let tmp = TempDir::new("lb");
    let pcap = tmp.path("first.pcap");
    let first = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-w", pcap.to_str().unwrap()],
    );
    let before = pair
        .collector
        .ip(&["link", "show", "dev", "eth1"])
        .expect("ip link")
        .stdout;

    let second = output(&mut pair.collector.command(
        vxdecap_path(),
        &["capture", "-i", "eth1", "-w", "/dev/null"],
    ));
    let message = stderr(&second);
    assert_eq!(
        second.status.code(),
        Some(2),
        "a configuration error: {message}"
    );
    assert!(
        message.contains("another XDP program is already attached to eth1"),
        "{message}"
    );
    assert!(message.contains("nothing was changed"), "{message}");
    // The first capture holds its program through a BPF link: `ip link` cannot remove it.
    assert!(
        message.contains("(driver mode) is held by BPF link")
            && message.contains(
                "stop the process that holds it (another vxdecap?) or run `bpftool link detach id"
            ),
        "{message}"
    );
    let after = pair
        .collector
        .ip(&["link", "show", "dev", "eth1"])
        .expect("ip link")
        .stdout;
    assert_eq!(
        String::from_utf8_lossy(&before),
        String::from_utf8_lossy(&after),
        "same program still attached"
    );

    // The first capture is unaffected.
    pair.send_inner("still-here", 10);
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = first.stop();
    assert!(ok, "{summary}");
    assert_eq!(frames_written(&summary), 10, "{summary}");
}

/// Compiles an XDP program that passes everything (for a test to attach
/// with `ip link`, as another tool would), into `dir`.
fn xdp_pass_object(dir: &TempDir) -> std::path::PathBuf {
    let source = dir.path("pass.bpf.c");
    let object = dir.path("pass.bpf.o");
    std::fs::write(
        &source,
        "__attribute__((section(\"xdp\"), used)) int xdp_pass(void *ctx) { return 2; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang-19".into());
    let out = output(
        std::process::Command::new(&clang)
            .args(["-O2", "-target", "bpf", "-c"])
            .arg(&source)
            .arg("-o")
            .arg(&object),
    );
    assert!(out.status.success(), "{clang}: {}", stderr(&out));
    object
}

#[test]
fn a_generic_mode_program_already_attached_is_named_with_the_command_that_removes_it() {
    if !privileged("generic XDP program already attached") {
        return;
    }
    let pair = VxlanPair::new("lg");
    let tmp = TempDir::new("lg");
    let object = xdp_pass_object(&tmp);
    pair.collector
        .ip(&[
            "link",
            "set",
            "dev",
            "eth1",
            "xdpgeneric",
            "obj",
            object.to_str().unwrap(),
            "sec",
            "xdp",
        ])
        .expect("attach a generic-mode program");
    let refused = output(&mut pair.collector.command(
        vxdecap_path(),
        &["capture", "-i", "eth1", "-q", "--duration", "1"],
    ));
    let message = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{message}");
    assert!(
        message.contains("another XDP program is already attached to eth1: nothing was changed"),
        "{message}"
    );
    let hint = "is in generic mode: detach it with `ip link set dev eth1 xdpgeneric off`";
    assert!(message.contains(hint), "{message}");
    // `xdp off`, the old hint, leaves a generic-mode program in place.
    pair.collector
        .ip(&["link", "set", "dev", "eth1", "xdp", "off"])
        .expect("ip link set xdp off");
    let still = output(&mut pair.collector.command(
        vxdecap_path(),
        &["capture", "-i", "eth1", "-q", "--duration", "1"],
    ));
    assert_eq!(still.status.code(), Some(2), "{}", stderr(&still));
    // The command named does remove it, and the capture starts.
    pair.collector
        .ip(&["link", "set", "dev", "eth1", "xdpgeneric", "off"])
        .expect("ip link set xdpgeneric off");
    let ran = output(&mut pair.collector.command(
        vxdecap_path(),
        &["capture", "-i", "eth1", "-q", "--duration", "1"],
    ));
    assert!(ran.status.success(), "{}", stderr(&ran));
    assert!(!pair.xdp_attached());
}

#[test]
fn count_limit_ends_a_live_capture() {
    if !privileged("live -c") {
        return;
    }
    let pair = VxlanPair::new("lc");
    let tmp = TempDir::new("lc");
    let pcap = tmp.path("five.pcap");
    let mut child = vxdecap::lab::netns::ChildGuard::new(
        pair.collector
            .command(
                vxdecap_path(),
                &[
                    "capture",
                    "-i",
                    "eth1",
                    "-c",
                    "5",
                    "-w",
                    pcap.to_str().unwrap(),
                ],
            )
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    // Keep sending until the capture has stopped by itself.
    let mut exited = None;
    for round in 0..100 {
        pair.send_inner(&format!("c{round}"), 3);
        if let Some(status) = child.child_mut().try_wait().expect("try_wait") {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = exited.expect("capture stopped after -c 5");
    let summary = stderr(&child.wait_with_output().expect("output"));
    assert!(status.success(), "{summary}");
    assert_eq!(read_pcap(&pcap).len(), 5, "{summary}");
    assert_eq!(frames_written(&summary), 5);
}

#[test]
fn every_rx_queue_gets_a_socket_and_each_frame_is_captured_once() {
    if !privileged("live capture on 4 rx queues") {
        return;
    }
    let pair = VxlanPair::with_queues("lq", 4);
    let tmp = TempDir::new("lq");
    let pcap = tmp.path("inner.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-w", pcap.to_str().unwrap()],
    );
    pair.send_inner_over_flows("multi", 400, 32);
    std::thread::sleep(Duration::from_millis(300));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    for q in 0..4 {
        assert!(
            summary.contains(&format!("queue {q} copy")),
            "queue {q} has a socket:\n{summary}"
        );
    }
    let busy_queues =
        summary.matches(" batches of ").count() - summary.matches(" 0 batches of ").count();
    // veth picks the transmit queue, and so the peer's rx queue, from the
    // outer flow hash, which follows the outer UDP source port: 32 inner
    // flows miss a queue with probability 4 × (3/4)^32 ≈ 0.04 %, three with
    // about 1e-16.
    eprintln!("frames arrived on {busy_queues} of 4 queues");
    assert!(
        busy_queues >= 3,
        "outer source ports spread frames over queues:\n{summary}"
    );
    let mut payloads: Vec<String> = read_pcap(&pcap)
        .iter()
        .map(|r| {
            String::from_utf8_lossy(inner_udp_payload(&r.data).expect("inner UDP").1).into_owned()
        })
        .collect();
    payloads.sort();
    let mut expected: Vec<String> = (0..400).map(|i| format!("multi-{i:03}")).collect();
    expected.sort();
    let missing: Vec<&String> = expected.iter().filter(|e| !payloads.contains(e)).collect();
    assert!(
        missing.is_empty(),
        "{} frames missing ({missing:?}); summary:\n{summary}",
        missing.len()
    );
    assert_eq!(payloads, expected, "each frame exactly once");
}

/// Scrapes `url` inside `ns` and parses it with the Prometheus project's
/// own Python client parser; returns `name{labels} value` lines, sorted.
fn scrape_with_reference_parser(ns: &NetNs, url: &str) -> Vec<String> {
    let script = r#"
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
body = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
for family in text_string_to_metric_families(body):
    for s in family.samples:
        labels = ",".join(f'{k}={v}' for k, v in sorted(s.labels.items()))
        print(f"{family.type} {s.name}{{{labels}}} {s.value}")
"#;
    // Debian's python3, where apt puts python3-prometheus-client (a pyenv
    // python earlier on PATH would not see it).
    let out = ns
        .run("/usr/bin/python3", &["-c", script, url])
        .expect("run python3");
    assert!(
        out.status.success(),
        "the reference parser rejected the metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn sample(lines: &[String], prefix: &str) -> f64 {
    let line = lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no sample {prefix} in:\n{}", lines.join("\n")));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
#[allow(
    clippy::float_cmp,
    reason = "counters parsed back from the text format are whole numbers, exact in f64"
)]
fn metrics_endpoint_parses_with_the_reference_parser_and_counts_match() {
    if !privileged("live capture with --metrics") {
        return;
    }
    let pair = VxlanPair::new("lm");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-q", "--metrics", "127.0.0.1:9419"],
    );
    pair.send_inner("metrics", 150);
    // Workers publish VNI tables and socket counters every 250 ms, the
    // XDP counters are read every 250 ms, latency quantiles every second.
    std::thread::sleep(Duration::from_millis(1300));
    let lines = scrape_with_reference_parser(&pair.collector, "http://127.0.0.1:9419/metrics");
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert_eq!(frames_written(&summary), 150, "{summary}");
    let counter = |name: &str| format!("counter {name}");
    assert_eq!(
        sample(
            &lines,
            &format!(
                "{}{{queue=0}}",
                counter("vxdecap_decapsulated_frames_total")
            )
        ),
        150.0
    );
    assert_eq!(
        sample(
            &lines,
            &format!("{}{{vni=42}}", counter("vxdecap_vni_frames_total"))
        ),
        150.0
    );
    assert_eq!(
        sample(
            &lines,
            &format!("{}{{vni=other}}", counter("vxdecap_vni_frames_total"))
        ),
        0.0
    );
    assert_eq!(
        sample(
            &lines,
            &format!(
                "{}{{analyzer=count}}",
                counter("vxdecap_analyzer_frames_total")
            )
        ),
        150.0
    );
    assert!(
        sample(
            &lines,
            &format!(
                "{}{{decision=redirected,interface=eth1}}",
                counter("vxdecap_xdp_frames_total")
            )
        ) >= 150.0
    );
    assert_eq!(
        sample(
            &lines,
            &format!(
                "{}{{cause=xsk_rx_ring_full,queue=0}}",
                counter("vxdecap_dropped_frames_total")
            )
        ),
        0.0
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("gauge vxdecap_queue_info{bind_mode=copy,cpu=")));
    let p99 = sample(
        &lines,
        "gauge vxdecap_receive_latency_seconds{analyzer=count,quantile=0.99}",
    );
    assert!(p99 > 0.0 && p99 < 5.0, "p99 latency {p99} s");
    assert!(
        summary.contains("inner frames per VNI: vni 42: 150"),
        "{summary}"
    );
}

/// Records the inner UDP payloads it sees; sleeps `delay` per batch to
/// play a slow analyzer.
struct Recorder {
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Where each frame's bytes were when the analyzer got them.
    addresses: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
    delay: Duration,
}

impl vxdecap::Analyzer for Recorder {
    fn name(&self) -> &str {
        if self.delay.is_zero() {
            "fast"
        } else {
            "slow"
        }
    }

    fn on_batch(&mut self, frames: vxdecap::Frames<'_>) -> std::io::Result<()> {
        std::thread::sleep(self.delay);
        let mut seen = self.seen.lock().unwrap();
        let mut addresses = self.addresses.lock().unwrap();
        for frame in frames.iter() {
            if let Some((_, payload)) = inner_udp_payload(frame.bytes) {
                seen.push(String::from_utf8_lossy(payload).into_owned());
                addresses.push(frame.bytes.as_ptr() as usize);
            }
        }
        Ok(())
    }
}

fn recorder(delay: Duration) -> (Recorder, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::default();
    (
        Recorder {
            seen: std::sync::Arc::clone(&seen),
            addresses: std::sync::Arc::default(),
            delay,
        },
        seen,
    )
}

/// Runs `capture` (built through the library API) inside the collector
/// namespace while `traffic` runs; returns the summary.
fn run_embedded(
    pair: &VxlanPair,
    capture: vxdecap::CaptureBuilder,
    traffic: impl FnOnce(),
) -> vxdecap::Summary {
    let (tx, rx) = std::sync::mpsc::channel();
    let running = pair
        .collector
        .spawn_in(move || {
            let capture = capture.build()?;
            let stop = capture.stop_handle();
            let running = capture.spawn()?;
            let _ = tx.send(stop);
            Ok(running.join()?)
        })
        .expect("enter collector netns");
    let stop = rx.recv().expect("capture built");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !pair.xdp_attached() {
        assert!(
            std::time::Instant::now() < deadline,
            "capture did not attach"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200)); // sockets registered
    traffic();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    running
        .join()
        .expect("capture thread")
        .expect("capture ran")
}

#[test]
fn fan_out_gives_two_analyzers_identical_streams() {
    if !privileged("fan-out to two analyzers") {
        return;
    }
    let pair = VxlanPair::new("lf");
    let (a, seen_a) = recorder(Duration::ZERO);
    let (b, seen_b) = recorder(Duration::ZERO);
    let (at_a, at_b) = (
        std::sync::Arc::clone(&a.addresses),
        std::sync::Arc::clone(&b.addresses),
    );
    let builder = vxdecap::Capture::builder("eth1").analyzer(a).analyzer(b);
    let summary = run_embedded(&pair, builder, || pair.send_inner("fan", 300));
    let expected: Vec<String> = (0..300).map(|i| format!("fan-{i:03}")).collect();
    let (a, b) = (seen_a.lock().unwrap(), seen_b.lock().unwrap());
    assert_eq!(*a, expected, "analyzer 0, in order:\n{}", summary.render());
    assert_eq!(*b, expected, "analyzer 1, in order");
    assert_eq!(summary.analyzers.len(), 2);
    assert!(summary
        .analyzers
        .iter()
        .all(|x| x.written == 300 && x.backpressure == 0));
    // Zero-copy: both analyzers read each frame at the same address (the
    // UMEM frame it was received in), not from copies of their own.
    let (at_a, at_b) = (at_a.lock().unwrap(), at_b.lock().unwrap());
    assert_eq!(at_a.len(), 300);
    assert_eq!(*at_a, *at_b, "the same bytes, not copies");
    let mut distinct = at_a.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 1, "frames live in different UMEM frames");
}

/// Records, for each inner frame, the rx queue its batch names and the one
/// in its metadata.
struct QueueRecorder(std::sync::Arc<std::sync::Mutex<Vec<(usize, u16)>>>);

impl vxdecap::Analyzer for QueueRecorder {
    fn on_batch(&mut self, frames: vxdecap::Frames<'_>) -> std::io::Result<()> {
        let mut seen = self.0.lock().unwrap();
        for frame in frames.iter() {
            seen.push((frames.queue(), frame.meta.queue));
        }
        Ok(())
    }
}

/// With `--queues 2,3` the workers are 0 and 1 but the rx queues 2 and 3:
/// `Frames::queue()` names the rx queue, as `FrameMeta::queue` does.
#[test]
fn frames_name_the_rx_queue_when_only_some_queues_are_captured() {
    if !privileged("frames of queues 2 and 3") {
        return;
    }
    let pair = VxlanPair::with_queues("lw", 4);
    let seen = std::sync::Arc::default();
    let builder = vxdecap::Capture::builder("eth1")
        .queues(&[2, 3])
        .analyzer(QueueRecorder(std::sync::Arc::clone(&seen)));
    // 32 inner flows reach all 4 queues (see every_rx_queue_gets_a_socket…);
    // those on queues 0 and 1 go to the kernel.
    let summary = run_embedded(&pair, builder, || {
        pair.send_inner_over_flows("q23", 400, 32)
    });
    let seen = seen.lock().unwrap();
    let text = summary.render();
    assert!(
        seen.iter().any(|&(_, q)| q == 2) && seen.iter().any(|&(_, q)| q == 3),
        "frames arrived on queues 2 and 3:\n{text}"
    );
    for &(batch, meta) in seen.iter() {
        assert!(meta == 2 || meta == 3, "only queues 2 and 3 are captured");
        assert_eq!(
            batch,
            usize::from(meta),
            "Frames::queue() is the rx queue:\n{text}"
        );
    }
}

#[test]
fn a_slow_analyzer_loses_only_its_own_frames_and_every_frame_is_accounted_for() {
    if !privileged("slow analyzer accounting") {
        return;
    }
    let pair = VxlanPair::new("ls");
    let (fast, seen_fast) = recorder(Duration::ZERO);
    let (slow, seen_slow) = recorder(Duration::from_millis(20));
    // A small UMEM (256 frames, 128 leased at most) so the slow analyzer's
    // lane and the lease budget run out during a 3000-frame burst.
    let builder = vxdecap::Capture::builder("eth1")
        .socket(vxdecap_xsk::SocketConfig {
            frame_count: 256,
            rx_ring: 128,
            ..Default::default()
        })
        .analyzer(fast)
        .analyzer(slow);
    const SENT: u64 = 3000;
    let summary = run_embedded(&pair, builder, || pair.send_inner("slow", SENT as usize));
    let text = summary.render();
    let xdp = summary.xdp.expect("live summary");
    let redirected = xdp.get(vxdecap::steer::XdpCounter::Redirected);
    assert_eq!(
        redirected, SENT,
        "every frame reached XDP and a socket:\n{text}"
    );
    let received = summary
        .stage
        .get(vxdecap::report::stats::StageCounter::Received);
    let kernel = summary.xsk.rx_ring_full + summary.xsk.rx_dropped;
    assert_eq!(
        redirected,
        received + kernel,
        "XDP = socket + kernel drops:\n{text}"
    );
    assert_eq!(summary.stage.rejected_total(), 0);
    let delivered = summary
        .stage
        .get(vxdecap::report::stats::StageCounter::Delivered);
    for a in &summary.analyzers {
        assert_eq!(
            a.written + a.backpressure + a.after_count_limit + a.after_output_closed,
            delivered,
            "{}: written + dropped = delivered:\n{text}",
            a.name
        );
    }
    let (fast, slow) = (&summary.analyzers[0], &summary.analyzers[1]);
    assert!(
        slow.backpressure > 0,
        "the slow analyzer fell behind:\n{text}"
    );
    assert!(
        fast.backpressure < slow.backpressure,
        "the fast one lost less:\n{text}"
    );
    assert_eq!(seen_fast.lock().unwrap().len() as u64, fast.written);
    assert_eq!(seen_slow.lock().unwrap().len() as u64, slow.written);
    eprintln!("{text}");
}

#[test]
fn lossless_mode_waits_for_a_slow_analyzer_instead_of_dropping() {
    if !privileged("lossless capture") {
        return;
    }
    let pair = VxlanPair::new("ll");
    let (slow, seen) = recorder(Duration::from_millis(5));
    // The same small UMEM that makes a slow analyzer lose frames by default.
    let builder = vxdecap::Capture::builder("eth1")
        .socket(vxdecap_xsk::SocketConfig {
            frame_count: 256,
            rx_ring: 128,
            ..Default::default()
        })
        .lossless(true)
        .analyzer(slow);
    let summary = run_embedded(&pair, builder, || pair.send_inner("lossless", 1000));
    let text = summary.render();
    let a = &summary.analyzers[0];
    assert_eq!(a.backpressure, 0, "{text}");
    // Waiting moves any loss to the RX ring, where the kernel counts it.
    let kernel = summary.xsk.rx_ring_full + summary.xsk.rx_dropped;
    assert_eq!(a.written + kernel, 1000, "{text}");
    // What the analyzer got is what the socket received, in order.
    let got = seen.lock().unwrap();
    assert_eq!(got.len() as u64, a.written);
    let indices: Vec<u32> = got
        .iter()
        .map(|p| {
            p.trim_start_matches("lossless-")
                .parse()
                .expect("payload index")
        })
        .collect();
    assert!(
        indices.windows(2).all(|w| w[0] < w[1]),
        "in order: {indices:?}"
    );
}

#[test]
fn allowlists_drop_forged_vxlan_and_sighup_changes_them_without_loss() {
    if !privileged("allowlists and SIGHUP") {
        return;
    }
    let pair = VxlanPair::new("la");
    pair.sender
        .ip(&["addr", "add", "10.77.0.9/24", "dev", "und0"])
        .expect("second sender address");
    let tmp = TempDir::new("la");
    let allow = tmp.path("allow.txt");
    std::fs::write(
        &allow,
        "# the mirror source only\nsource 10.77.0.1\nvni 42\n",
    )
    .unwrap();
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-q", "--allow-file", allow.to_str().unwrap()],
    );
    pair.send_inner("good", 100);
    pair.send_forged(SENDER_UNDERLAY, 99, 50); // right source, wrong VNI
    pair.send_forged("10.77.0.9", 42, 50); // right VNI, wrong source
    std::thread::sleep(Duration::from_millis(100));

    // Widen the lists while mirrored traffic flows: none of it may be lost.
    std::fs::write(&allow, "source 10.77.0.1 10.77.0.9\nvni 42,99\n").unwrap();
    std::thread::scope(|scope| {
        let traffic = scope.spawn(|| pair.send_inner("during", 300));
        std::thread::sleep(Duration::from_millis(20));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(capture.pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP");
        traffic.join().expect("traffic");
    });
    std::thread::sleep(Duration::from_millis(100));
    pair.send_forged(SENDER_UNDERLAY, 99, 50);
    pair.send_forged("10.77.0.9", 42, 50);
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(summary.contains("allowlist reloaded"), "{summary}");
    assert_eq!(frames_written(&summary), 100 + 300 + 100, "{summary}");
    assert!(
        summary.contains(
            "100 dropped by the allowlists (drop_source_not_allowed 50, drop_vni_not_allowed 50)"
        ),
        "{summary}"
    );
    assert!(summary.contains("vni 42: 450, vni 99: 50"), "{summary}");
}

#[test]
fn a_sighup_as_soon_as_the_capture_says_listening_does_not_end_it() {
    if !privileged("early SIGHUP") {
        return;
    }
    // The handler used to be installed after "listening on" was printed (and
    // after the analyzer threads and the metrics server started): a reload
    // sent at once could meet SIGHUP's default action and kill the capture.
    for round in 0..5 {
        let pair = VxlanPair::new("lhup");
        let capture = RunningCapture::start(&pair.collector, &["-i", "eth1", "-q"]);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(capture.pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )
        .expect("SIGHUP");
        std::thread::sleep(Duration::from_millis(100));
        let (ok, summary) = capture.stop();
        assert!(ok, "round {round}: {summary}");
        assert!(
            summary.contains("SIGHUP: no --allow-file, nothing to reload"),
            "round {round}: {summary}"
        );
    }
}

/// Sends SIGHUP to the capture and gives its main loop (20 ms) time to reload.
fn sighup(capture: &RunningCapture) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(capture.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn an_emptied_or_truncated_allow_file_keeps_the_lists_in_force() {
    if !privileged("allowlists fail closed") {
        return;
    }
    let pair = VxlanPair::new("lc");
    pair.sender
        .ip(&["addr", "add", "10.77.0.9/24", "dev", "und0"])
        .expect("second sender address");
    let tmp = TempDir::new("lc");
    let allow = tmp.path("allow.txt");
    std::fs::write(&allow, "source 10.77.0.1\nvni 42\n").unwrap();
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-q", "--allow-file", allow.to_str().unwrap()],
    );
    pair.send_inner("good", 20);
    pair.send_forged("10.77.0.9", 42, 20); // not an allowed source
                                           // Each of these reloads would open a list; every one is refused.
    for (how, text) in [
        ("emptied", ""),
        ("blank", "\n"),
        ("truncated to its first line", "source 10.77.0.1\n"),
        ("truncated to its second line", "vni 42\n"),
        ("cut inside a line", "source 10.77.0.1\nvni 4"),
        ("a rule without a value", "source\nvni 42\n"),
    ] {
        std::fs::write(&allow, text).unwrap();
        sighup(&capture);
        pair.send_forged("10.77.0.9", 42, 20); // not an allowed source
        pair.send_forged(SENDER_UNDERLAY, 99, 5); // not an allowed VNI
        eprintln!("{how}: sent");
    }
    // `truncate -s 0`, as a log rotation tool would.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&allow)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    sighup(&capture);
    pair.send_forged("10.77.0.9", 42, 20);
    // Opening the source list on purpose is a reload like any other.
    std::fs::write(&allow, "source any\nvni 42\n").unwrap();
    sighup(&capture);
    pair.send_forged("10.77.0.9", 42, 10);
    pair.send_forged(SENDER_UNDERLAY, 99, 5); // the VNI list still holds
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert_eq!(
        summary.matches("SIGHUP: allowlist not changed").count(),
        7,
        "every reload but the last refused:\n{summary}"
    );
    assert!(
        summary.contains("it names no source, which would allow every source instead of 10.77.0.1/32: write `source any` to mean that; still in force: sources 10.77.0.1/32, 1 VNI(s)"),
        "{summary}"
    );
    assert!(summary.contains("no rules"), "{summary}");
    assert!(summary.contains("does not end with a newline"), "{summary}");
    assert!(summary.contains("it names no VNI"), "{summary}");
    assert!(
        summary.contains("SIGHUP: allowlist reloaded: any source, 1 VNI(s)"),
        "{summary}"
    );
    assert_eq!(frames_written(&summary), 20 + 10, "{summary}");
    // 20 before, 6 × 20 after the refused reloads, 20 after `truncate`.
    assert!(
        summary.contains(
            "195 dropped by the allowlists (drop_source_not_allowed 160, drop_vni_not_allowed 35)"
        ),
        "{summary}"
    );
}

#[test]
fn dash_z_drops_root_and_the_capture_goes_on() {
    if !privileged("-Z nobody") {
        return;
    }
    let pair = VxlanPair::new("lz");
    let tmp = TempDir::new("lz");
    let pcap = tmp.path("inner.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-w", pcap.to_str().unwrap(), "-Z", "nobody"],
    );
    pair.send_inner("before", 100);
    std::thread::sleep(Duration::from_millis(100));
    let status = std::fs::read_to_string(format!("/proc/{}/status", capture.pid())).unwrap();
    let ids = |key: &str| -> Vec<String> {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in {status}"))
            .split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(ids("Uid:"), ["65534"; 4], "real, effective, saved, fs uid");
    assert_ne!(ids("Gid:")[0], "0");
    // Every thread, not just the main one, runs as nobody.
    for task in std::fs::read_dir(format!("/proc/{}/task", capture.pid())).unwrap() {
        let s = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let uid = s.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uid.split_whitespace().skip(1).all(|v| v == "65534"),
            "{uid}"
        );
    }
    pair.send_inner("after", 100);
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(summary.contains("running as nobody"), "{summary}");
    assert_eq!(frames_written(&summary), 200, "{summary}");
    assert!(
        summary.contains("XDP: 200 redirected"),
        "the XDP counters are still readable:\n{summary}"
    );
    assert_eq!(read_pcap(&pcap).len(), 200);
}

#[test]
fn dash_z_refuses_an_allow_file_the_user_could_not_reload() {
    if !privileged("-Z with an allow file") {
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let pair = VxlanPair::new("ly");
    let tmp = TempDir::new("ly");
    let allow = tmp.path("allow.txt");
    std::fs::write(&allow, "source 10.77.0.1\nvni 42\n").unwrap();
    std::fs::set_permissions(&allow, std::fs::Permissions::from_mode(0o600)).unwrap();
    let args = [
        "capture",
        "-i",
        "eth1",
        "-q",
        "--duration",
        "2",
        "-Z",
        "nobody",
        "--allow-file",
        allow.to_str().unwrap(),
    ];
    let refused = output(&mut pair.collector.command(vxdecap_path(), &args));
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "allow file {}: nobody cannot read it, and -Z nobody runs as nobody when SIGHUP reloads it",
            allow.display()
        )),
        "{err}"
    );
    assert!(!pair.xdp_attached(), "refused before anything was attached");

    // Readable by nobody: the capture runs as nobody and a reload works.
    std::fs::set_permissions(&allow, std::fs::Permissions::from_mode(0o644)).unwrap();
    let capture = RunningCapture::start(&pair.collector, &args[1..]);
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&allow, "source 10.77.0.1\nvni 42,43\n").unwrap();
    sighup(&capture);
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(summary.contains("running as nobody"), "{summary}");
    assert!(
        summary.contains("SIGHUP: allowlist reloaded: sources 10.77.0.1/32, 2 VNI(s)"),
        "{summary}"
    );
}

#[test]
fn interface_hot_plug_resumes_capture_into_the_same_file() {
    if !privileged("interface hot-plug") {
        return;
    }
    let pair = VxlanPair::new("lh");
    let tmp = TempDir::new("lh");
    let pcap = tmp.path("inner.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-w", pcap.to_str().unwrap()],
    );
    pair.send_inner("before", 100);
    std::thread::sleep(Duration::from_millis(200));
    // Host servicing: the NIC goes away...
    pair.collector
        .ip(&["link", "del", "eth1"])
        .expect("delete eth1");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        std::fs::read_to_string(format!("/proc/{}/stat", capture.pid())).is_ok(),
        "the capture survives the interface going away"
    );
    // ...and comes back (a new ifindex).
    pair.wire(1);
    let back = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let sender = &pair;
    for i in 0..150 {
        sender
            .sender
            .spawn_in(move || {
                let socket = UdpSocket::bind("192.168.77.1:0")?;
                socket.send_to(format!("after-{i:03}").as_bytes(), (INNER_PEER, INNER_PORT))?;
                Ok(())
            })
            .expect("enter sender netns")
            .join()
            .expect("sender thread")
            .expect("send");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(
        summary.contains("went away and came back 1 time(s)"),
        "{summary}"
    );
    let records = read_pcap(&pcap);
    let payloads: Vec<(String, u64)> = records
        .iter()
        .filter_map(|r| {
            let (_, p) = inner_udp_payload(&r.data)?;
            Some((String::from_utf8_lossy(p).into_owned(), r.timestamp_ns))
        })
        .collect();
    let before = payloads
        .iter()
        .filter(|(p, _)| p.starts_with("before-"))
        .count();
    assert_eq!(before, 100, "frames before the unplug are all in the file");
    let after: Vec<&(String, u64)> = payloads
        .iter()
        .filter(|(p, _)| p.starts_with("after-"))
        .collect();
    let first = after
        .first()
        .unwrap_or_else(|| panic!("nothing after the re-plug:\n{summary}"));
    let resumed_ms = first.1.saturating_sub(back) / 1_000_000;
    eprintln!("capture resumed {resumed_ms} ms after the interface came back");
    assert!(
        resumed_ms < 2000,
        "resumed within 2 s (took {resumed_ms} ms):\n{summary}"
    );
    let first_index: usize = first.0["after-".len()..].parse().unwrap();
    assert_eq!(
        after.len(),
        150 - first_index,
        "every frame after resuming, in the same file"
    );
}

#[test]
fn outer_fragments_from_the_kernel_are_reassembled_live() {
    if !privileged("live fragment reassembly") {
        return;
    }
    let pair = VxlanPair::new("lg");
    // A narrower underlay than the mirrored frames need: as with Azure vTAP
    // (1500-byte frames + 50 bytes of VXLAN over a 1500-byte underlay),
    // every large mirrored frame becomes two outer IPv4 fragments (the
    // kernel's VXLAN device leaves DF clear, as Azure does).
    pair.sender
        .ip(&["link", "set", "und0", "mtu", "1000"])
        .expect("underlay mtu");
    // Locked inner route MTU: the kernel would otherwise learn the tunnel's
    // path MTU and fragment the *inner* packets instead.
    pair.sender
        .ip(&[
            "route",
            "replace",
            "192.168.77.0/24",
            "dev",
            "vx0",
            "mtu",
            "lock",
            "1450",
        ])
        .expect("inner route");
    let tmp = TempDir::new("lg");
    let pcap = tmp.path("inner.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-w", pcap.to_str().unwrap()],
    );
    pair.send_datagrams("big", 100, 1, 1380);
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(
        summary.contains("200 outer fragments: 100 datagrams reassembled"),
        "{summary}"
    );
    assert!(
        summary.contains("(200 outer fragments)"),
        "XDP steered them:\n{summary}"
    );
    // Nothing lost: the only packets not written are the fragments merged.
    assert!(
        summary.contains("\n100 packets not written\n  100 fragment_merged\n"),
        "{summary}"
    );
    let records = read_pcap(&pcap);
    assert_eq!(records.len(), 100);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.data.len(), 14 + 20 + 8 + 1380, "frame {i}");
        let (_, payload) = inner_udp_payload(&r.data).expect("inner UDP");
        assert!(
            payload.starts_with(format!("big-{i:03}-").as_bytes()),
            "frame {i} in order"
        );
        assert!(payload[8..].iter().all(|&b| b == b'x'), "frame {i} intact");
        // The kernel resolved the offloaded inner checksum before fragmenting
        // (ip_do_fragment): the IP ID 0 policy's inner check can rely on it.
        assert_eq!(
            vxdecap::wire::inner_check::check_inner(&r.data),
            vxdecap::wire::inner_check::InnerCheck::Valid,
            "frame {i}: inner UDP checksum"
        );
    }
    assert_packets_add_up(&summary);
    assert_eq!(reason_count(&summary, "fragment_merged"), 100, "{summary}");
}

#[test]
fn jumbo_frames_fit_a_page_sized_umem_frame_or_are_counted() {
    if !privileged("jumbo frames") {
        return;
    }
    let pair = VxlanPair::new("lj");
    pair.sender
        .ip(&["link", "set", "und0", "mtu", "3000"])
        .expect("mtu");
    pair.collector
        .ip(&["link", "set", "eth1", "mtu", "3000"])
        .expect("mtu");
    pair.sender
        .ip(&["link", "set", "vx0", "mtu", "2950"])
        .expect("mtu");
    let send = |prefix: &str| pair.send_datagrams(prefix, 50, 1, 2800);
    let tmp = TempDir::new("lj");

    // 2048-byte UMEM frames hold at most 1776 bytes: the kernel drops and counts.
    let small = tmp.path("small.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &[
            "-i",
            "eth1",
            "-w",
            small.to_str().unwrap(),
            "--frame-size",
            "2048",
        ],
    );
    send("small");
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(
        summary.contains("frames over 1776 bytes do not fit"),
        "{summary}"
    );
    assert_eq!(frames_written(&summary), 0, "{summary}");
    assert!(
        summary.contains("50 packets dropped by kernel (xsk_rx_ring_full 0, xsk_rx_dropped 50)"),
        "{summary}"
    );

    // By default the UMEM frame grows to a page for this MTU: all of them, whole.
    let big = tmp.path("big.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-w", big.to_str().unwrap()],
    );
    send("big");
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(
        summary.contains("MTU 3000 on eth1: UMEM frames of 4096 bytes"),
        "{summary}"
    );
    let records = read_pcap(&big);
    assert_eq!(records.len(), 50, "{summary}");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.data.len(), 14 + 20 + 8 + 2800);
        let (_, payload) = inner_udp_payload(&r.data).expect("inner UDP");
        assert!(payload.starts_with(format!("big-{i:03}-").as_bytes()));
    }
}

#[test]
fn sigterm_drains_flushes_detaches_and_exits_zero() {
    if !privileged("SIGTERM") {
        return;
    }
    let pair = VxlanPair::new("lt");
    let tmp = TempDir::new("lt");
    let pcap = tmp.path("inner.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-w", pcap.to_str().unwrap()],
    );
    pair.send_inner("term", 120);
    let (ok, summary) = capture.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(ok, "exit status 0 on SIGTERM:\n{summary}");
    assert!(!pair.xdp_attached(), "detached");
    let written = frames_written(&summary);
    assert_eq!(written, 120, "the rings were drained:\n{summary}");
    // The file is complete: every frame the summary counts is in it, readable.
    assert_eq!(read_pcap(&pcap).len() as u64, written);
}

/// Frames sent raw from the sender's underlay as the mirror would: outer
/// 10.77.0.1 -> 10.77.0.2, IP ID `ident`, VNI `vni`, an inner UDP packet of
/// 1472 payload bytes (a 1514-byte inner frame, checksum set) whose bytes
/// start at `seed`.
fn mirrored(ident: u16, vni: u32, seed: u8) -> (Vec<u8>, Vec<u8>) {
    use vxdecap::wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp, VxlanFrameBuilder};
    let inner = inner_ipv4_udp_frame(&InnerIpv4Udp {
        payload_len: 1472,
        payload_seed: seed,
        ..Default::default()
    })
    .expect("inner frame");
    let outer = VxlanFrameBuilder::new()
        .outer_src_ip(SENDER_UNDERLAY.parse::<Ipv4Addr>().unwrap())
        .outer_dst_ip(COLLECTOR.parse::<Ipv4Addr>().unwrap())
        .ipv4_ident(ident)
        .vni(vni)
        .inner(&inner)
        .build()
        .expect("outer frame");
    (inner, outer)
}

/// Azure's IP ID 0 stream, live, with lost first and last fragments and
/// swapped pairs (and runs of them): no frame is written mixed, every
/// datagram received whole and in order is written, and every packet
/// received is written or counted under a name.
#[test]
fn ip_id_0_fragments_with_loss_never_mix_and_every_packet_is_counted() {
    if !privileged("live IP ID 0 fragments") {
        return;
    }
    let pair = VxlanPair::new("l0");
    let tmp = TempDir::new("l0");
    let pcap = tmp.path("inner.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-w", pcap.to_str().unwrap()],
    );
    // 120 datagrams; per 12: whole, lost tail, swapped, lost head, whole,
    // lost tail + the next swapped, lost head + the next swapped, whole,
    // duplicate tail, whole.
    let datagrams: Vec<(Vec<u8>, Vec<Vec<u8>>)> = (0..120u8)
        .map(|n| {
            let (inner, outer) = mirrored(0, 42, n);
            let fragments = vxdecap::wire::build::fragment_ipv4(&outer, 1500).expect("fragments");
            assert_eq!(fragments.len(), 2);
            (inner, fragments)
        })
        .collect();
    let mut order: Vec<(usize, usize)> = Vec::new();
    for n in 0..120 {
        let (head, tail) = ((n, 0), (n, 1));
        match n % 12 {
            1 | 5 => order.push(head),
            2 | 6 | 8 => order.extend([tail, head]),
            3 | 7 => order.push(tail),
            10 => order.extend([head, tail, tail]),
            _ => order.extend([head, tail]),
        }
    }
    // Numbered datagrams keep the general rules: a lost fragment times out.
    let numbered: Vec<Vec<Vec<u8>>> = (0..10u8)
        .map(|n| {
            let (_, outer) = mirrored(1000 + u16::from(n), 42, 200 + n);
            vxdecap::wire::build::fragment_ipv4(&outer, 1500).expect("fragments")
        })
        .collect();
    let mut frames: Vec<Vec<u8>> = order
        .iter()
        .map(|&(n, p)| datagrams[n].1[p].clone())
        .collect();
    for (n, f) in numbered.iter().enumerate() {
        frames.push(f[0].clone());
        if n % 3 != 0 {
            frames.push(f[1].clone());
        }
    }
    send_raw(&pair.sender, "und0", &frames, &tmp);
    std::thread::sleep(Duration::from_millis(300));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");

    // What may be written: the datagrams whose head came right before their tail.
    let whole: Vec<usize> = order
        .windows(2)
        .filter(|w| w[0].0 == w[1].0 && w[0].1 == 0 && w[1].1 == 1)
        .map(|w| w[0].0)
        .collect();
    let records = read_pcap(&pcap);
    let numbered_written = 6;
    assert_eq!(records.len(), whole.len() + numbered_written, "{summary}");
    for (i, r) in records.iter().take(whole.len()).enumerate() {
        let Some(n) = datagrams.iter().position(|(inner, _)| r.data == *inner) else {
            panic!("record {i} is a mix of two datagrams:\n{summary}");
        };
        assert_eq!(n, whole[i], "record {i}");
    }
    let (received, written) = assert_packets_add_up(&summary);
    assert_eq!(received, frames.len() as u64, "{summary}");
    assert_eq!(written, records.len() as u64);
    assert_eq!(
        reason_count(&summary, "fragment_merged"),
        written,
        "{summary}"
    );
    for reason in [
        "fragment_ambiguous_tail",
        "fragment_ambiguous_head",
        "fragment_ambiguous_checksum",
        "fragment_datagram_timeout",
    ] {
        assert!(reason_count(&summary, reason) > 0, "{reason}:\n{summary}");
    }
}

/// `--vni 27`: VXLAN whose first outer fragment carries only the outer UDP
/// header, so that XDP cannot see the VNI. The worker checks the
/// reassembled datagram: VNI 4242 is dropped and counted, VNI 27 written;
/// after a SIGHUP that allows 4242, it is written too.
#[test]
fn the_vni_allowlist_holds_when_the_first_fragment_hides_the_vxlan_header() {
    if !privileged("VNI allowlist on fragments") {
        return;
    }
    let pair = VxlanPair::new("lv");
    let tmp = TempDir::new("lv");
    let allow = tmp.path("allow.txt");
    std::fs::write(&allow, "source 10.77.0.1/32\nvni 27\n").unwrap();
    let pcap = tmp.path("inner.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &[
            "-i",
            "eth1",
            "-w",
            pcap.to_str().unwrap(),
            "--allow-file",
            allow.to_str().unwrap(),
        ],
    );
    let hidden = |vni: u32, first_id: u16, seed: u8| -> Vec<Vec<u8>> {
        (0..20u16)
            .flat_map(|n| {
                let (_, outer) = mirrored(first_id + n, vni, seed);
                // UDP header alone, then the VXLAN header and most of the inner frame.
                vxdecap::wire::build::fragment_ipv4_at(&outer, &[8, 1480]).expect("fragments")
            })
            .collect()
    };
    let mut frames = hidden(4242, 100, 1);
    frames.extend(hidden(27, 200, 2));
    send_raw(&pair.sender, "und0", &frames, &tmp);
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(&allow, "source 10.77.0.1/32\nvni 27,4242\n").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(capture.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    std::thread::sleep(Duration::from_millis(200));
    send_raw(&pair.sender, "und0", &hidden(4242, 300, 3), &tmp);
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(summary.contains("allowlist reloaded"), "{summary}");
    assert_eq!(
        reason_count(&summary, "fragment_vni_not_allowed"),
        20,
        "{summary}"
    );
    assert!(summary.contains("vni 27: 20, vni 4242: 20"), "{summary}");
    let records = read_pcap(&pcap);
    assert_eq!(records.len(), 40, "{summary}");
    // The first 20 are VNI 27's (seed 2), the last 20 VNI 4242's after the reload (seed 3).
    for (i, r) in records.iter().enumerate() {
        let (_, payload) = inner_udp_payload(&r.data).expect("inner UDP");
        assert_eq!(payload[0], if i < 20 { 2 } else { 3 }, "record {i}");
    }
    let (received, _) = assert_packets_add_up(&summary);
    assert_eq!(received, 180, "three fragments each:\n{summary}");
}

/// `--allow-source 10.77.0.1/32`: ordinary fragmented UDP from that source
/// to a socket on the collector reaches the socket whole, while the
/// mirrored VXLAN from the same source, fragmented too, is all captured.
#[test]
fn fragmented_host_udp_from_an_allowlisted_source_reaches_its_socket() {
    if !privileged("host fragments") {
        return;
    }
    let pair = VxlanPair::new("lu");
    // Mirrored 1422-byte inner frames over a 1000-byte underlay: two fragments each.
    pair.sender
        .ip(&["link", "set", "und0", "mtu", "1000"])
        .expect("underlay mtu");
    pair.sender
        .ip(&[
            "route",
            "replace",
            "192.168.77.0/24",
            "dev",
            "vx0",
            "mtu",
            "lock",
            "1450",
        ])
        .expect("inner route");
    let tmp = TempDir::new("lu");
    let pcap = tmp.path("inner.pcap");
    let capture = RunningCapture::start(
        &pair.collector,
        &[
            "-i",
            "eth1",
            "-w",
            pcap.to_str().unwrap(),
            "--allow-source",
            "10.77.0.1/32",
        ],
    );
    let server = pair
        .collector
        .spawn_in(|| {
            let socket = UdpSocket::bind((COLLECTOR, 5000))?;
            socket.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = socket.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
            Ok(got)
        })
        .expect("enter collector netns");
    std::thread::sleep(Duration::from_millis(100));
    let host = pair
        .sender
        .spawn_in(|| {
            let socket = UdpSocket::bind((SENDER_UNDERLAY, 0))?;
            for i in 0..20u8 {
                socket.send_to(&vec![i; 3000], (COLLECTOR, 5000))?;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        })
        .expect("enter sender netns");
    pair.send_datagrams("mirror", 50, 1, 1380);
    host.join().expect("host sender").expect("send host UDP");
    let got = server.join().expect("server").expect("receive host UDP");
    std::thread::sleep(Duration::from_millis(100));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert_eq!(got.len(), 20, "every host datagram arrived:\n{summary}");
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d.len(), 3000, "datagram {i} whole");
        assert!(d.iter().all(|&b| b == d[0]), "datagram {i} intact");
    }
    assert_eq!(
        read_pcap(&pcap).len(),
        50,
        "every mirrored frame:\n{summary}"
    );
    assert!(summary.contains("(100 outer fragments)"), "{summary}");
    assert_packets_add_up(&summary);
}

/// Sends padded datagrams until the capture `child` exits by itself (at
/// most 10 s); returns its exit status and stderr.
fn send_until_exit(
    pair: &VxlanPair,
    mut child: vxdecap::lab::netns::ChildGuard,
) -> (std::process::ExitStatus, String) {
    let mut exited = None;
    for round in 0..200 {
        pair.send_datagrams(&format!("f{round}"), 32, 4, 1000);
        if let Some(status) = child.child_mut().try_wait().expect("try_wait") {
            exited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = exited.expect("the capture stopped by itself on the write error");
    (status, stderr(&child.wait_with_output().expect("output")))
}

#[test]
fn live_capture_to_a_full_disk_counts_only_what_the_file_holds() {
    if !privileged("live disk full") {
        return;
    }
    let pair = VxlanPair::new("lfull");
    let fs = SmallFs::mount("lfull", "128k");
    let pcap = fs.path("live.pcap");
    let child = vxdecap::lab::netns::ChildGuard::new(
        pair.collector
            .command(
                vxdecap_path(),
                &["capture", "-i", "eth1", "-w", pcap.to_str().unwrap()],
            )
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let (status, summary) = send_until_exit(&pair, child);
    assert_eq!(status.code(), Some(1), "{summary}");
    assert!(summary.contains("No space left on device"), "{summary}");
    assert!(
        reason_count(&summary, "output_write_failed") > 0,
        "{summary}"
    );
    assert_eq!(
        capinfos_packets(&pcap),
        frames_written(&summary),
        "{summary}"
    );
    assert_eq!(read_pcap(&pcap).len() as u64, frames_written(&summary));
    assert!(!pair.xdp_attached(), "detached after the error");
}

#[test]
fn live_capture_to_a_closed_pipe_says_so_and_exits_1() {
    if !privileged("live broken pipe") {
        return;
    }
    let pair = VxlanPair::new("lpipe");
    let mut child = vxdecap::lab::netns::ChildGuard::new(
        pair.collector
            .command(vxdecap_path(), &["capture", "-i", "eth1", "-w", "-"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let mut pipe = child.child_mut().stdout.take().expect("stdout");
    // The pcap header comes first, then frames: take 100 bytes, as `head -c 100`.
    let reader = std::thread::spawn(move || {
        let mut got = [0u8; 100];
        let _ = pipe.read_exact(&mut got);
        got
    });
    for round in 0..100 {
        pair.send_inner(&format!("p{round}"), 4);
        if reader.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let head = reader.join().expect("reader");
    assert_eq!(head[..4], 0xa1b2_3c4du32.to_le_bytes(), "a pcap stream");
    let (status, summary) = send_until_exit(&pair, child);
    assert_eq!(status.code(), Some(1), "{summary}");
    // One line says what failed (tracing warnings such as "cannot pin" aside).
    let errors: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("output error") || l.contains("Broken pipe"))
        .collect();
    assert_eq!(errors.len(), 1, "{summary}");
    assert!(
        errors[0].contains("cannot write stdout: Broken pipe"),
        "{summary}"
    );
    assert!(
        reason_count(&summary, "output_write_failed") > 0,
        "{summary}"
    );
    assert!(!pair.xdp_attached(), "detached after the error");
}

#[test]
fn busy_polling_sets_the_devices_interrupt_deferral_and_puts_it_back() {
    if !privileged("busy-poll deferral") {
        return;
    }
    let pair = VxlanPair::new("lb");
    let read = |file: &str| -> String {
        let out = pair
            .collector
            .run("cat", &[&format!("/sys/class/net/eth1/{file}")])
            .expect("read sysfs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(read("napi_defer_hard_irqs"), "0");
    assert_eq!(read("gro_flush_timeout"), "0");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-q", "--rx-policy", "busy-poll"],
    );
    // Set once the socket is registered, before frames flow.
    let mut set = false;
    for _ in 0..100 {
        if read("napi_defer_hard_irqs") == "2" {
            set = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(set, "napi_defer_hard_irqs set while busy polling");
    assert_eq!(read("gro_flush_timeout"), "200000");
    pair.send_inner("busy", 100);
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert_eq!(frames_written(&summary), 100, "{summary}");
    assert!(
        summary.contains("queue 0 receive policy busy-poll: as asked"),
        "{summary}"
    );
    assert_eq!(read("napi_defer_hard_irqs"), "0", "put back at exit");
    assert_eq!(read("gro_flush_timeout"), "0", "put back at exit");

    // An administrator's own settings are left as they are, during and after.
    pair.collector
        .run(
            "sh",
            &[
                "-c",
                "echo 5 > /sys/class/net/eth1/napi_defer_hard_irqs; echo 50000 > /sys/class/net/eth1/gro_flush_timeout",
            ],
        )
        .expect("set sysfs");
    let capture = RunningCapture::start(
        &pair.collector,
        &["-i", "eth1", "-q", "--rx-policy", "busy-poll"],
    );
    pair.send_inner("busy2", 20);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(read("napi_defer_hard_irqs"), "5");
    assert_eq!(read("gro_flush_timeout"), "50000");
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert_eq!(frames_written(&summary), 20, "{summary}");
    assert_eq!(read("napi_defer_hard_irqs"), "5");
    assert_eq!(read("gro_flush_timeout"), "50000");
}
