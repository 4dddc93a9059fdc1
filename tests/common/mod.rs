//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `vxdecap` binary built for these tests.
pub fn vxdecap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vxdecap"))
}

/// Path of the `vxdecap` binary.
pub fn vxdecap_path() -> &'static str {
    env!("CARGO_BIN_EXE_vxdecap")
}

/// True when privileged tests can run. Without root they skip loudly; with
/// VXDECAP_REQUIRE_PRIVILEGED=1 (set by .ci/run) a skip is a failure.
pub fn privileged(test: &str) -> bool {
    if vxdecap::netns::is_root() {
        return true;
    }
    if std::env::var("VXDECAP_REQUIRE_PRIVILEGED").is_ok_and(|v| v == "1") {
        panic!("{test}: needs root (netns, XDP, AF_XDP) and VXDECAP_REQUIRE_PRIVILEGED=1 forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs root (netns, XDP, AF_XDP); run the suite as root");
    false
}

/// A file of ../shared/fixtures (relative to the project root).
pub fn fixture(relative: &str) -> PathBuf {
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
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vxdecap-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One pcap record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub timestamp_ns: u64,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Reads every record of a pcap file, with timestamps in nanoseconds.
pub fn read_pcap(path: &std::path::Path) -> Vec<Record> {
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
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The count of a summary line `  N reason` (0 when absent).
pub fn reason_count(summary: &str, reason: &str) -> u64 {
    summary
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let n = words.next()?.parse().ok()?;
            (words.next()? == reason && words.next().is_none()).then_some(n)
        })
        .next()
        .unwrap_or(0)
}

/// The N of the summary line `N inner frames written to …`.
pub fn frames_written(summary: &str) -> u64 {
    summary
        .lines()
        .find(|l| l.contains("inner frames written to"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no 'inner frames written' line in:\n{summary}"))
}

/// A `vxdecap capture` running inside a namespace.
pub struct RunningCapture {
    child: vxdecap::netns::WatchedChild,
}

impl RunningCapture {
    /// Starts `vxdecap capture args…` in `ns` and waits until it listens.
    pub fn start(ns: &vxdecap::netns::NetNs, args: &[&str]) -> RunningCapture {
        let mut full = vec!["capture"];
        full.extend_from_slice(args);
        let cmd = ns.command(vxdecap_path(), &full);
        let child = vxdecap::netns::WatchedChild::spawn(
            cmd,
            &["listening on"],
            std::time::Duration::from_secs(30),
            None,
        )
        .unwrap_or_else(|e| panic!("capture did not start: {e:#}"));
        RunningCapture { child }
    }

    /// The capture's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, then waits; returns (success, stderr).
    pub fn stop(self) -> (bool, String) {
        self.stop_with(nix::sys::signal::Signal::SIGINT)
    }

    /// Sends `signal`, then waits; returns (success, stderr).
    pub fn stop_with(mut self, signal: nix::sys::signal::Signal) -> (bool, String) {
        let outcome = self.child.stop(signal).expect("stop the capture");
        (outcome.status.success(), outcome.stderr)
    }

    /// SIGKILL, then waits; returns stderr so far.
    pub fn kill(&mut self) -> String {
        self.child
            .stop(nix::sys::signal::Signal::SIGKILL)
            .map(|o| o.stderr)
            .unwrap_or_default()
    }
}
