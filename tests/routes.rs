//! Per-tenant routes: frames go to the output of the first rule that
//! matches their VNI, outer source and inner filter, with no cross-talk;
//! offline from a crafted multi-tenant capture (no root), and live from two
//! kernel VXLAN senders with different VNIs, writing rotating per-tenant
//! pcapng files and feeding a tap at the same time (root).

mod common;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use vxdecap::lab::netns::{unique_name, veth_pair, NetNs, WatchedChild};

/// Tenant frames: VNI 27 from 10.0.2.4, VNI 150 from 10.1.0.9 and from
/// 10.2.0.9, VNI 999 from 10.0.2.4; each inner frame of the mix, in turn.
fn tenant_capture(tmp: &TempDir) -> std::path::PathBuf {
    let mix = inner::mix();
    let tunnels = [
        (27, Ipv4Addr::new(10, 0, 2, 4)),
        (150, Ipv4Addr::new(10, 1, 0, 9)),
        (150, Ipv4Addr::new(10, 2, 0, 9)),
        (999, Ipv4Addr::new(10, 0, 2, 4)),
    ];
    let mut frames = Vec::new();
    for f in &mix {
        for &(vni, src) in &tunnels {
            frames.extend(vxlan_wrap(std::slice::from_ref(f), vni, src));
        }
    }
    let path = tmp.path("tenants.pcap");
    std::fs::write(&path, pcap_file_bytes(&frames)).expect("write the capture");
    path
}

/// The pcapng interface name of each frame, as tshark reads it: it names
/// the tunnel (VNI, outer source) the frame came through.
fn interface_names(file: &Path) -> Vec<String> {
    let o = output(Command::new("tshark").arg("-r").arg(file).args([
        "-T",
        "fields",
        "-e",
        "frame.interface_name",
    ]));
    assert!(o.status.success(), "tshark: {}", stderr(&o));
    stdout(&o).lines().map(str::to_owned).collect()
}

fn decap(input: &Path, args: &[&str]) -> String {
    let o = output(vxdecap().arg("decap").arg("-r").arg(input).args(args));
    let summary = stderr(&o);
    assert!(o.status.success(), "decap {args:?} failed:\n{summary}");
    summary
}

/// The summary line of the route `rule`: (frames, bytes, dropped).
fn route_line(summary: &str, rule: &str) -> (u64, u64, u64) {
    let line = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("route {rule}: ")))
        .unwrap_or_else(|| panic!("no route {rule:?} in:\n{summary}"));
    let n: Vec<u64> = line
        .split(", ")
        .map(|part| part.split(' ').next().unwrap().parse().expect("a count"))
        .collect();
    (n[0], n[1], n[2])
}

#[test]
fn offline_routes_split_tenants_without_cross_talk() {
    let tmp = TempDir::new("routes-offline");
    let input = tenant_capture(&tmp);
    let t27 = tmp.path("t27.pcapng");
    let web = tmp.path("web150.pcap");
    let b = tmp.path("b.pcapng");
    let summary = decap(
        &input,
        &[
            "--route",
            &format!("vni=27 -> {}", t27.display()),
            "--route",
            &format!(
                "vni=100-199,src=10.1.0.0/16,filter=tcp port 80 -> {}",
                web.display()
            ),
            "--route",
            &format!("vni=100-199,src=10.1.0.0/16,10.2.0.0/16 -> {}", b.display()),
            "--route",
            "default -> drop",
        ],
    );
    let mix = inner::mix();
    let per_tunnel = mix.len() as u64; // 24 frames on each tunnel
                                       // VNI 27: every frame of its tunnel, nothing else.
    let names = interface_names(&t27);
    assert_eq!(names.len() as u64, per_tunnel, "{summary}");
    assert!(
        names.iter().all(|n| n == "vxlan:vni=27,src=10.0.2.4"),
        "{names:?}"
    );
    let data = pcapng_frames(&t27);
    assert_eq!(data, mix, "tenant 27 in order");
    // VNI 150 from 10.1/16 and TCP port 80 (untagged: 6 frames) to web;
    // the rest of VNI 150 from either source to b.
    let web_records = read_pcap(&web);
    let expected_web: Vec<Vec<u8>> = mix
        .iter()
        .filter(|f| {
            f[12..14] == [0x08, 0x00]
                && f[23] == 6
                && (f[34..36] == [0, 80] || f[36..38] == [0, 80])
        })
        .cloned()
        .collect();
    assert_eq!(
        web_records.into_iter().map(|r| r.data).collect::<Vec<_>>(),
        expected_web
    );
    let b_names = interface_names(&b);
    assert_eq!(
        b_names.len() as u64,
        2 * per_tunnel - expected_web.len() as u64
    );
    assert!(b_names
        .iter()
        .all(|n| n == "vxlan:vni=150,src=10.1.0.9" || n == "vxlan:vni=150,src=10.2.0.9"));
    // Counters per route, and the dropped tenant (VNI 999) in the accounting.
    let size: u64 = mix.iter().map(|f| f.len() as u64).sum();
    assert_eq!(
        route_line(&summary, &format!("vni=27 -> {}", t27.display())),
        (per_tunnel, size, 0)
    );
    assert_eq!(route_line(&summary, "default -> drop").0, per_tunnel);
    assert_eq!(route_line(&summary, "default -> drop").2, per_tunnel);
    assert_eq!(
        reason_count(&summary, "route_drop"),
        per_tunnel,
        "{summary}"
    );
    assert_eq!(frames_written(&summary), 3 * per_tunnel, "{summary}");
}

/// The frames of a pcapng file.
fn pcapng_frames(file: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(file).expect("open");
    let mut reader = pcap_file::pcapng::PcapNgReader::new(file).expect("pcapng");
    let mut out = Vec::new();
    while let Some(block) = reader.next_block() {
        if let pcap_file::pcapng::Block::EnhancedPacket(p) = block.expect("block") {
            out.push(p.data.into_owned());
        }
    }
    out
}

#[test]
fn without_a_default_route_unmatched_frames_are_counted_as_no_route() {
    let tmp = TempDir::new("routes-noroute");
    let input = tenant_capture(&tmp);
    let out = tmp.path("only27.pcap");
    let summary = decap(
        &input,
        &["--route", &format!("vni=27 -> {}", out.display())],
    );
    assert_eq!(read_pcap(&out).len(), 24);
    assert_eq!(reason_count(&summary, "no_route"), 72, "{summary}");
    assert_eq!(frames_written(&summary), 24, "{summary}");
}

#[test]
fn the_global_filter_applies_before_routing() {
    let tmp = TempDir::new("routes-filter");
    let input = tenant_capture(&tmp);
    let out = tmp.path("icmp27.pcap");
    let summary = decap(
        &input,
        &[
            "--route",
            &format!("vni=27 -> {}", out.display()),
            "--route",
            "default -> drop",
            "icmp",
        ],
    );
    assert_eq!(read_pcap(&out).len(), 3, "{summary}");
    assert_eq!(reason_count(&summary, "filtered_out"), 96 - 12, "{summary}");
    assert_eq!(reason_count(&summary, "route_drop"), 9, "{summary}");
}

#[test]
fn the_committed_example_config_routes_the_same_way() {
    let tmp = TempDir::new("routes-config");
    let input = tenant_capture(&tmp);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vxdecap.toml");
    // For a real collector: eth1 and /var/lib/vxdecap need not exist here.
    let o = output(
        vxdecap()
            .args(["check-config", "--no-host-checks"])
            .arg(&example),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let setup = stdout(&o);
    assert!(setup.contains("route 1: vni=27 -> "), "{setup}");
    // The example's routes, with its file names under a temp directory and
    // its taps dropped (the file is meant for a real collector).
    let text = std::fs::read_to_string(&example).expect("read the example");
    let dir = tmp.0.display().to_string();
    let text = text
        .replace("/var/lib/vxdecap/", &format!("{dir}/"))
        .replace("\"tap:", "\"drop\" # tap:")
        .replace("tap = ", "# tap = ");
    let config = tmp.path("local.toml");
    std::fs::write(&config, text).expect("write the config");
    let summary = decap(&input, &["--config", config.to_str().unwrap()]);
    let tenant27: u64 = files_starting(&tmp, "tenant-27-")
        .iter()
        .map(|f| interface_names(&tmp.path(f)).len() as u64)
        .sum();
    assert_eq!(tenant27, 24, "{summary}");
}

fn files_starting(tmp: &TempDir, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&tmp.0)
        .expect("read the temp dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

// ---- live ----

const SENDER_UNDERLAY: &str = "10.78.0.1";
const COLLECTOR: &str = "10.78.0.2";

/// A sender namespace with two kernel VXLAN devices, VNI 42 (inner
/// 192.168.42.0/24) and VNI 43 (192.168.43.0/24), towards `eth1` of the
/// collector namespace.
struct TwoTenants {
    sender: NetNs,
    collector: NetNs,
}

impl TwoTenants {
    fn new(tag: &str) -> Self {
        let base = unique_name(tag);
        let sender = NetNs::create(&format!("{base}-tx")).expect("sender netns");
        let collector = NetNs::create(&format!("{base}-rx")).expect("collector netns");
        veth_pair(&sender, "und0", &collector, "eth1").expect("veth pair");
        sender
            .configure("und0", &format!("{SENDER_UNDERLAY}/24"))
            .expect("sender addr");
        collector
            .configure("eth1", &format!("{COLLECTOR}/24"))
            .expect("collector addr");
        for vni in [42u32, 43] {
            VxlanSender {
                dev: &format!("vx{vni}"),
                vni,
                local: SENDER_UNDERLAY,
                remote: COLLECTOR,
                underlay: "und0",
                inner: &format!("192.168.{vni}.1/24"),
                peer: &format!("192.168.{vni}.2"),
                peer_mac: "02:00:00:00:77:02",
            }
            .add(&sender);
        }
        sender
            .run("ping", &["-c", "1", "-W", "2", COLLECTOR])
            .expect("underlay ping");
        Self { sender, collector }
    }

    /// Sends `count` datagrams `v42-NNN` on VNI 42 and `v43-NNN` on VNI
    /// 43, interleaved, with `size` bytes of payload padding.
    fn send(&self, count: usize, size: usize) {
        self.sender
            .spawn_in(move || {
                let a = UdpSocket::bind("192.168.42.1:0")?;
                let b = UdpSocket::bind("192.168.43.1:0")?;
                for i in 0..count {
                    for (socket, vni) in [(&a, 42), (&b, 43)] {
                        let mut payload = format!("v{vni}-{i:03}").into_bytes();
                        payload.resize(size, b'.');
                        socket.send_to(&payload, (format!("192.168.{vni}.2"), 9999))?;
                    }
                    if i % 16 == 15 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                Ok(())
            })
            .expect("enter sender netns")
            .join()
            .expect("sender thread")
            .expect("send datagrams");
    }
}

/// The `vNN-NNN` tags of the inner UDP payloads of `frames`.
fn tags(frames: &[Vec<u8>]) -> Vec<String> {
    frames
        .iter()
        .filter(|d| d.len() > 42 && d[12..14] == [0x08, 0x00] && d[23] == 17)
        .map(|d| String::from_utf8_lossy(&d[42..49]).into_owned())
        .collect()
}

/// The issue's "done when": one process writes rotating per-tenant pcapng
/// files and feeds a live tap at the same time; two tenants, no cross-talk.
#[test]
fn live_rotating_per_tenant_pcapng_and_a_tap_from_one_process() {
    if !privileged("live routes and tap") {
        return;
    }
    let lab = TwoTenants::new("rt");
    let tmp = TempDir::new("routes-live");
    let t42 = tmp.path("tenant42.pcapng");
    let t43 = tmp.path("tenant43.pcapng");
    let capture = RunningCapture::start(
        &lab.collector,
        &[
            "-i",
            "eth1",
            "-C",
            "8k",
            "--route",
            &format!("vni=42 -> {}", t42.display()),
            "--route",
            &format!("vni=43 -> {}", t43.display()),
            "--route",
            "default -> drop",
            "--tap",
            "vxall0",
        ],
    );
    // The tap exists once the capture listens; tcpdump reads it (inbound
    // only: the kernel's own chatter on the tap goes out; immediate mode:
    // a quiet interface's frames would wait in a part-filled TPACKET_V3 block).
    let tap_pcap = tmp.path("tap.pcap");
    let mut tcpdump = WatchedChild::spawn(
        lab.collector.command(
            "tcpdump",
            &[
                "-i",
                "vxall0",
                "-Q",
                "in",
                "-U",
                "-w",
                tap_pcap.to_str().unwrap(),
            ],
        ),
        &["listening on"],
        Duration::from_secs(20),
        None,
    )
    .expect("tcpdump on the tap");
    const N: usize = 150;
    lab.send(N, 200);
    // tcpdump may lag behind (it shares two cores with the capture): wait
    // until its file holds every frame, or a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while complete_records(&tap_pcap) < 2 * N && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let tcpdump = tcpdump
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("tcpdump output");
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");

    let expect = |vni: u32| -> Vec<String> { (0..N).map(|i| format!("v{vni}-{i:03}")).collect() };
    for (prefix, vni) in [("tenant42.pcapng", 42), ("tenant43.pcapng", 43)] {
        let files = files_starting(&tmp, prefix);
        assert!(
            files.len() >= 3,
            "-C 8k rotates {prefix}: {files:?}\n{summary}"
        );
        let mut got = Vec::new();
        for f in &files {
            let path = tmp.path(f);
            assert!(std::fs::metadata(&path).unwrap().len() <= 8 * 1024, "{f}");
            got.extend(tags(&pcapng_frames(&path)));
            let names = interface_names(&path);
            assert!(
                names
                    .iter()
                    .all(|n| n == &format!("vxlan:vni={vni},src={SENDER_UNDERLAY}")),
                "{f}: only tenant {vni}'s tunnel: {names:?}"
            );
        }
        assert_eq!(
            got,
            expect(vni),
            "tenant {vni}: every frame, in order, nothing else\n{summary}"
        );
    }
    let tap_frames: Vec<Vec<u8>> = read_pcap(&tap_pcap).into_iter().map(|r| r.data).collect();
    let mut on_tap = tags(&tap_frames);
    assert_eq!(
        on_tap.len(),
        2 * N,
        "the tap saw both tenants:\n{}\n{summary}",
        tcpdump.stderr
    );
    on_tap.sort();
    let mut both = [expect(42), expect(43)].concat();
    both.sort();
    assert_eq!(on_tap, both);
    assert_eq!(
        route_line(&summary, &format!("vni=42 -> {}", t42.display())).0,
        N as u64
    );
    assert_eq!(
        route_line(&summary, &format!("vni=43 -> {}", t43.display())).0,
        N as u64
    );
    assert!(
        summary.contains("(tap vxall0): 300 inner frames"),
        "{summary}"
    );
    assert!(
        lab.collector
            .ip(&["link", "show", "dev", "vxall0"])
            .is_err(),
        "the tap is removed on exit"
    );
}
