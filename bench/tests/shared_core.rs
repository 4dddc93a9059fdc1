//! The kernel's receive work on the worker's own core: the collector's veth
//! gets threaded NAPI and its NAPI thread is pinned to the CPU vxdecap's
//! worker runs on, as on a small cloud VM where one vCPU services a queue's
//! interrupts and runs the worker. A worker that holds that CPU while its
//! ring is empty starves the kernel thread that fills the ring (spinning
//! delivered a few percent of a steady stream); vxdecap's defaults must
//! leave it the CPU, and every frame must still be written or counted.
//! Needs root.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they measured"
)]

use std::time::Duration;

mod common;

use common::{first_number, number_after, privileged};
use vxdecap::lab::netns::{unique_name, veth_pair, NetNs, WatchedChild};

/// The CPU the worker and the NAPI thread share; the generator runs on CPU 0.
const SHARED_CPU: usize = 1;

/// Turns on threaded NAPI for `iface` in `ns` and pins its thread(s) to `cpu`.
fn pin_napi(ns: &NetNs, iface: &str, cpu: usize) -> usize {
    ns.run(
        "sh",
        &["-c", &format!("echo 1 > /sys/class/net/{iface}/threaded")],
    )
    .expect("threaded NAPI");
    let prefix = format!("napi/{iface}-");
    for _ in 0..100 {
        let mut pinned = 0;
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            if comm.trim_end().starts_with(&prefix) {
                let mut set = nix::sched::CpuSet::new();
                set.set(cpu).expect("cpu in range");
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), &set)
                    .expect("pin the NAPI thread");
                pinned += 1;
            }
        }
        if pinned > 0 {
            return pinned;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no NAPI thread {prefix}* appeared");
}

#[test]
fn a_steady_stream_is_captured_when_the_kernels_receive_work_shares_the_workers_core() {
    if !privileged("shared-core capture") {
        return;
    }
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        eprintln!("SKIPPED shared-core capture: needs 2 CPUs");
        return;
    }
    let base = unique_name("sc");
    let tx = NetNs::create(&format!("{base}-tx")).expect("tx netns");
    let rx = NetNs::create(&format!("{base}-rx")).expect("rx netns");
    for ns in [&tx, &rx] {
        ns.run("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            .expect("sysctl");
    }
    // A name of this test only: its NAPI thread is found by it.
    let iface = format!("vxs{:05x}", std::process::id() & 0xfffff);
    veth_pair(&tx, "und0", &rx, &iface).expect("veth");
    tx.configure("und0", "10.79.0.1/24").expect("addr");
    rx.configure(&iface, "10.79.0.2/24").expect("addr");
    let link = rx.ip(&["-br", "link", "show", &iface]).expect("link");
    let mac = String::from_utf8_lossy(&link.stdout)
        .split_whitespace()
        .nth(2)
        .expect("MAC")
        .to_owned();

    // Default settings: one queue, the worker on CPU 1.
    let mut capture = WatchedChild::spawn(
        rx.command(
            std::path::Path::new(env!("CARGO_BIN_EXE_vxdecap-bench"))
                .with_file_name("vxdecap")
                .to_str()
                .expect("utf-8 path"),
            &["capture", "-i", &iface, "-q"],
        ),
        &["listening on"],
        Duration::from_secs(30),
        None,
    )
    .expect("capture starts");
    assert!(pin_napi(&rx, &iface, SHARED_CPU) > 0);
    // A steady 100 000 frames a second for 2 s: a fifteenth of what a release
    // build takes flat out on this rig, within a debug build's reach too. (What
    // each receive policy delivers here flat out is the benchmark's to say:
    // `vxdecap-bench policies`.)
    let gen = tx
        .run(
            "taskset",
            &[
                "-c",
                "0",
                env!("CARGO_BIN_EXE_vxdecap-bench"),
                "gen",
                "--interface",
                "und0",
                "--dst-mac",
                &mac,
                "--dst",
                "10.79.0.2",
                "--src",
                "10.79.0.1",
                "--pps",
                "100000",
                "--duration",
                "2",
            ],
        )
        .expect("generator");
    let report: serde_json::Value = serde_json::from_slice(&gen.stdout).expect("generator report");
    let sent = report["sent"].as_u64().expect("sent");
    std::thread::sleep(Duration::from_millis(300));
    let outcome = capture
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("stop the capture");
    let summary = outcome.stderr;
    assert!(outcome.status.success(), "{summary}");
    let written = first_number(&summary, "inner frames written");
    let not_written = first_number(&summary, "packets not written");
    let kernel = first_number(&summary, "packets dropped by kernel");
    let received = first_number(&summary, "packets received on");
    eprintln!("sent {sent}, written {written}\n{summary}");
    assert!(
        summary.contains("receive policy auto: the kernel gave this socket no NAPI id"),
        "the default policy on a veth socket (no NAPI id), with its reason:\n{summary}"
    );
    assert_eq!(
        received,
        written + not_written,
        "every frame received is counted"
    );
    let redirected = number_after(&summary, "XDP:", "XDP:");
    assert_eq!(
        redirected,
        received + kernel,
        "every frame XDP redirected reached the worker or was counted by the kernel"
    );
    // Frames lost before vxdecap (the veth ring, while the NAPI thread
    // waits for the CPU) are the symptom of a starved kernel thread, but
    // also of any other load on the machine: the benchmark measures the
    // rate (`vxdecap-bench policies`); here the pinned thread must merely
    // have had the CPU for most of the stream.
    assert!(
        written * 2 >= sent,
        "{written} of {sent} frames written with the receive work on the worker's core \
         ({kernel} dropped by the kernel):\n{summary}"
    );
}
