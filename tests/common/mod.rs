//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    reason = "each test binary uses some of these helpers, none uses them all"
)]
#![allow(clippy::print_stderr, reason = "tests say what they skip and why")]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `vxdecap` binary built for these tests.
pub(crate) fn vxdecap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vxdecap"))
}

/// Path of the `vxdecap` binary.
pub(crate) fn vxdecap_path() -> &'static str {
    env!("CARGO_BIN_EXE_vxdecap")
}

/// True when privileged tests can run. Without root they skip loudly; with
/// VXDECAP_REQUIRE_PRIVILEGED=1 (set by .ci/run) a skip is a failure.
pub(crate) fn privileged(test: &str) -> bool {
    if vxdecap::lab::netns::is_root() {
        return true;
    }
    assert!(
        !std::env::var("VXDECAP_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1"),
        "{test}: needs root (netns, XDP, AF_XDP) and VXDECAP_REQUIRE_PRIVILEGED=1 forbids skipping"
    );
    eprintln!("SKIPPED {test}: needs root (netns, XDP, AF_XDP); run the suite as root");
    false
}

/// A file of ../shared/fixtures (relative to the project root).
pub(crate) fn fixture(relative: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(relative);
    assert!(
        path.exists(),
        "fixture {} is missing: tests need ../shared/fixtures beside the project",
        path.display()
    );
    path
}

/// A fresh temporary directory, removed on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        // Unique per call: two tests of one binary may share a tag.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("vxdecap-test-{tag}-{}x{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small tmpfs mounted by the test (root only), unmounted on drop: a
/// real filesystem that fills up.
pub(crate) struct SmallFs {
    pub dir: PathBuf,
}

impl SmallFs {
    /// Mounts a tmpfs of `size` (mount's syntax: `256k`) on a fresh directory.
    pub(crate) fn mount(tag: &str, size: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vxdecap-fs-{tag}-{}", std::process::id()));
        let _ = Command::new("umount").arg(&dir).output();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the mount point");
        let o = output(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size}"))
                .arg("tmpfs")
                .arg(&dir),
        );
        assert!(o.status.success(), "mount tmpfs: {}", stderr(&o));
        Self { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).output();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Packets in `file` as capinfos counts them; panics unless capinfos reads
/// the whole file without error (a record cut short is an error).
pub(crate) fn capinfos_packets(file: &std::path::Path) -> u64 {
    let o = output(Command::new("capinfos").args(["-M", "-c"]).arg(file));
    assert!(
        o.status.success(),
        "capinfos cannot read {} whole: {}",
        file.display(),
        stderr(&o)
    );
    let text = stdout(&o);
    text.lines()
        .find_map(|l| l.strip_prefix("Number of packets:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no packet count from capinfos:\n{text}"))
}

/// A pcap of the AWS mirroring capture's 100 frames `copies` times over.
pub(crate) fn repeated_aws_capture(path: &std::path::Path, copies: usize) {
    let bytes = std::fs::read(fixture("suricata-verify/aws-traffic-mirroring-vxlan.pcap"))
        .expect("read the AWS fixture");
    let mut out = bytes[..24].to_vec();
    for _ in 0..copies {
        out.extend_from_slice(&bytes[24..]);
    }
    std::fs::write(path, out).expect("write the big input");
}

/// One pcap record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub timestamp_ns: u64,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Reads every record of a pcap file, with timestamps in nanoseconds.
pub(crate) fn read_pcap(path: &std::path::Path) -> Vec<Record> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("pcap header");
    let mut out = Vec::new();
    while let Some(p) = reader.next_packet() {
        let p = p.expect("pcap record");
        out.push(Record {
            timestamp_ns: p.timestamp.as_nanos() as u64,
            orig_len: p.orig_len,
            data: p.data.into_owned(),
        });
    }
    out
}

/// Runs a command and returns its output, panicking with context if it cannot start.
pub(crate) fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The count of a summary line `  N reason` (0 when absent).
pub(crate) fn reason_count(summary: &str, reason: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            let n = words.next()?.parse().ok()?;
            (words.next()? == reason && words.next().is_none()).then_some(n)
        })
        .unwrap_or(0)
}

/// The N of the summary line `N inner frames written to …`.
pub(crate) fn frames_written(summary: &str) -> u64 {
    summary
        .lines()
        .find(|l| l.contains("inner frames written to"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no 'inner frames written' line in:\n{summary}"))
}

/// A `vxdecap capture` running inside a namespace.
pub(crate) struct RunningCapture {
    child: vxdecap::lab::netns::WatchedChild,
}

impl RunningCapture {
    /// Starts `vxdecap capture args…` in `ns` and waits until it listens.
    pub(crate) fn start(ns: &vxdecap::lab::netns::NetNs, args: &[&str]) -> Self {
        let mut full = vec!["capture"];
        full.extend_from_slice(args);
        let cmd = ns.command(vxdecap_path(), &full);
        let child = vxdecap::lab::netns::WatchedChild::spawn(
            cmd,
            &["listening on"],
            std::time::Duration::from_secs(30),
            None,
        )
        .unwrap_or_else(|e| panic!("capture did not start: {e:#}"));
        Self { child }
    }

    /// The capture's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, then waits; returns (success, stderr).
    pub(crate) fn stop(self) -> (bool, String) {
        self.stop_with(nix::sys::signal::Signal::SIGINT)
    }

    /// Sends `signal`, then waits; returns (success, stderr).
    pub(crate) fn stop_with(mut self, signal: nix::sys::signal::Signal) -> (bool, String) {
        let outcome = self.child.stop(signal).expect("stop the capture");
        (outcome.status.success(), outcome.stderr)
    }

    /// SIGKILL, then waits; returns stderr so far.
    pub(crate) fn kill(&mut self) -> String {
        self.child
            .stop(nix::sys::signal::Signal::SIGKILL)
            .map(|o| o.stderr)
            .unwrap_or_default()
    }
}

/// A microsecond pcap file (Ethernet) holding `frames`, one per millisecond
/// from 2023-11-14T22:13:20Z.
pub(crate) fn pcap_file_bytes(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    for (i, frame) in frames.iter().enumerate() {
        out.extend_from_slice(&1_700_000_000u32.to_le_bytes());
        out.extend_from_slice(&(i as u32 * 1000).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// Inner frames of many kinds, for filters: `(what, frame)`.
pub(crate) mod inner {
    /// Ethernet + optional 802.1Q tag + IPv4 (10.0.2.4 → 10.0.2.6) + TCP with `flags`.
    pub(crate) fn tcp(src_port: u16, dst_port: u16, flags: u8, vlan: Option<u16>) -> Vec<u8> {
        let mut f = ethernet(vlan, 0x0800);
        f.extend_from_slice(&ipv4_header(6, 20, [10, 0, 2, 4], [10, 0, 2, 6]));
        f.extend_from_slice(&src_port.to_be_bytes());
        f.extend_from_slice(&dst_port.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f
    }

    /// IPv4 UDP 192.168.0.1:src_port → 192.168.0.2:53 with a small payload.
    pub(crate) fn udp(src_port: u16) -> Vec<u8> {
        let mut f = ethernet(None, 0x0800);
        f.extend_from_slice(&ipv4_header(17, 12, [192, 168, 0, 1], [192, 168, 0, 2]));
        f.extend_from_slice(&src_port.to_be_bytes());
        f.extend_from_slice(&[0, 53, 0, 12, 0, 0, b'q', b'u', b'e', b'r']);
        f
    }

    /// ICMP echo request 10.0.2.4 → 10.0.2.6.
    pub(crate) fn icmp() -> Vec<u8> {
        let mut f = ethernet(None, 0x0800);
        f.extend_from_slice(&ipv4_header(1, 8, [10, 0, 2, 4], [10, 0, 2, 6]));
        f.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]);
        f
    }

    /// IPv6 UDP 2001:db8::1 → 2001:db8::2, port 53.
    pub(crate) fn udp6() -> Vec<u8> {
        let mut f = ethernet(None, 0x86dd);
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        f
    }

    /// ARP request, broadcast.
    pub(crate) fn arp() -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[
            0x02, 0, 0, 0, 0, 1, 10, 0, 2, 4, 0, 0, 0, 0, 0, 0, 10, 0, 2, 6,
        ]);
        f
    }

    fn ethernet(vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
        if let Some(id) = vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&id.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn ipv4_header(protocol: u8, payload: u16, src: [u8; 4], dst: [u8; 4]) -> [u8; 20] {
        let total = (20 + payload).to_be_bytes();
        let mut h = [
            0x45, 0, total[0], total[1], 0, 1, 0x40, 0, 64, protocol, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&dst);
        let sum = h
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        h
    }

    /// One of each kind, several times over, in a mixed order.
    pub(crate) fn mix() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for round in 0..3u16 {
            out.push(tcp(54_633 + round, 80, 0x02, None));
            out.push(udp(5_000 + round));
            out.push(tcp(80, 54_633 + round, 0x12, None));
            out.push(icmp());
            out.push(tcp(40_000 + round, 443, 0x10, None));
            out.push(udp6());
            out.push(tcp(54_700 + round, 80, 0x02, Some(100)));
            out.push(arp());
        }
        out
    }
}

/// Wraps each inner frame in VXLAN on the tunnel `vni` from `src`.
pub(crate) fn vxlan_wrap(inner: &[Vec<u8>], vni: u32, src: std::net::Ipv4Addr) -> Vec<Vec<u8>> {
    inner
        .iter()
        .enumerate()
        .map(|(n, f)| {
            vxdecap::wire::build::VxlanFrameBuilder::new()
                .outer_src_ip(src)
                .outer_dst_ip(std::net::Ipv4Addr::new(10, 1, 1, 4))
                .udp_src_port(40_000 + n as u16)
                .vni(vni)
                .inner(f)
                .build()
                .expect("consistent outer frame")
        })
        .collect()
}

/// Complete records in a pcap file being written (0 before its header).
pub(crate) fn complete_records(path: &std::path::Path) -> usize {
    let bytes = std::fs::read(path).unwrap_or_default();
    let (mut at, mut n) = (24, 0);
    while let Some(header) = bytes.get(at..at + 16) {
        let len = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
        if bytes.len() < at + 16 + len {
            break;
        }
        at += 16 + len;
        n += 1;
    }
    n
}

/// A kernel VXLAN device that plays a mirroring host: it sends VNI `vni`
/// from `local` to `remote` over `underlay`, has the inner address
/// `inner` (a prefix), and a static neighbour `peer` at `peer_mac`, so
/// only the test's own frames go out (no ARP, no IPv6 autoconfiguration).
pub(crate) struct VxlanSender<'a> {
    pub dev: &'a str,
    pub vni: u32,
    pub local: &'a str,
    pub remote: &'a str,
    pub underlay: &'a str,
    pub inner: &'a str,
    pub peer: &'a str,
    pub peer_mac: &'a str,
}

impl VxlanSender<'_> {
    /// Creates the device in `ns`.
    pub(crate) fn add(&self, ns: &vxdecap::lab::netns::NetNs) {
        let vni = self.vni.to_string();
        ns.ip(&[
            "link",
            "add",
            self.dev,
            "type",
            "vxlan",
            "id",
            &vni,
            "remote",
            self.remote,
            "local",
            self.local,
            "dstport",
            "4789",
            "dev",
            self.underlay,
        ])
        .expect("vxlan device");
        ns.ip(&["link", "set", self.dev, "addrgenmode", "none"])
            .expect("addrgenmode");
        ns.configure(self.dev, self.inner).expect("vxlan address");
        ns.ip(&[
            "neigh",
            "add",
            self.peer,
            "lladdr",
            self.peer_mac,
            "dev",
            self.dev,
        ])
        .expect("static neighbour");
    }
}

/// Sends hand-made Ethernet frames out of `dev` in `ns` through an
/// AF_PACKET socket (Debian's python3 does the socket work, so the tests
/// need no unsafe code), pausing 2 ms every 16 frames so that a receiving
/// veth's backlog never overflows.
pub(crate) fn send_raw(
    ns: &vxdecap::lab::netns::NetNs,
    dev: &str,
    frames: &[Vec<u8>],
    tmp: &TempDir,
) {
    let script = r#"
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
data = open(sys.argv[2], "rb").read()
at = sent = 0
while at < len(data):
    (n,) = struct.unpack(">I", data[at:at + 4])
    s.send(data[at + 4:at + 4 + n])
    at += 4 + n
    sent += 1
    if sent % 16 == 0:
        time.sleep(0.002)
print(sent)
"#;
    let path = tmp.path(&format!("raw-{}.bin", frames.len()));
    let mut bytes = Vec::new();
    for frame in frames {
        bytes.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        bytes.extend_from_slice(frame);
    }
    std::fs::write(&path, bytes).expect("write the frames");
    let out = ns
        .run(
            "/usr/bin/python3",
            &["-c", script, dev, path.to_str().expect("utf-8 path")],
        )
        .expect("run python3");
    assert!(
        out.status.success(),
        "raw send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        frames.len().to_string(),
        "every frame sent"
    );
}

/// Checks the summary's accounting: every packet received is written or
/// counted under a named reason, exactly once. Returns (received, written).
pub(crate) fn assert_packets_add_up(summary: &str) -> (u64, u64) {
    let number_before = |marker: &str| -> u64 {
        summary
            .lines()
            .find(|l| l.contains(marker))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no '{marker}' line in:\n{summary}"))
    };
    let received = number_before(" packets received on ");
    let not_written = number_before(" packets not written");
    let written = frames_written(summary);
    assert_eq!(
        received,
        written + not_written,
        "received = written + named reasons:\n{summary}"
    );
    (received, written)
}
