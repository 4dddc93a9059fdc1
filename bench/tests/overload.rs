//! Overload accounting: a burst offered far above what a debug build of
//! vxdecap can take, with a small UMEM, and every frame the generator sent
//! is found again, written or under a named drop. Needs root.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they measured"
)]

use std::time::Duration;

mod common;

use common::{first_number, number_after, privileged};
use vxdecap::lab::netns::{unique_name, veth_pair, NetNs, WatchedChild};

fn tx_dropped(ns: &NetNs, dev: &str) -> u64 {
    let out = ns
        .run(
            "cat",
            &[&format!("/sys/class/net/{dev}/statistics/tx_dropped")],
        )
        .expect("read veth stats");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count")
}

#[test]
fn every_frame_of_an_overload_burst_is_written_or_counted() {
    if !privileged("overload accounting") {
        return;
    }
    let base = unique_name("ov");
    let tx = NetNs::create(&format!("{base}-tx")).expect("tx netns");
    let rx = NetNs::create(&format!("{base}-rx")).expect("rx netns");
    for ns in [&tx, &rx] {
        // No IPv6 neighbour discovery: only the generator's frames cross.
        ns.run("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            .expect("sysctl");
        ns.run("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"])
            .expect("sysctl");
    }
    veth_pair(&tx, "und0", &rx, "eth1").expect("veth");
    tx.configure("und0", "10.78.0.1/24").expect("addr");
    rx.configure("eth1", "10.78.0.2/24").expect("addr");
    let link = rx.ip(&["-br", "link", "show", "eth1"]).expect("link");
    let mac = String::from_utf8_lossy(&link.stdout)
        .split_whitespace()
        .nth(2)
        .expect("MAC")
        .to_owned();

    // A small UMEM and RX ring, so the burst overflows them.
    let mut capture = WatchedChild::spawn(
        rx.command(
            // `cargo test --workspace` builds vxdecap next to this package's binary.
            std::path::Path::new(env!("CARGO_BIN_EXE_vxdecap-bench"))
                .with_file_name("vxdecap")
                .to_str()
                .expect("utf-8 path"),
            &[
                "capture",
                "-i",
                "eth1",
                "-q",
                "--frame-count",
                "256",
                "--rx-ring",
                "128",
            ],
        ),
        &["listening on"],
        Duration::from_secs(30),
        None,
    )
    .expect("capture starts");
    let dropped_before = tx_dropped(&tx, "und0");
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
                "10.78.0.2",
                "--src",
                "10.78.0.1",
                "--count",
                "200000",
                "--duration",
                "10",
            ],
        )
        .expect("generator");
    let report: serde_json::Value = serde_json::from_slice(&gen.stdout).expect("generator report");
    let sent = report["sent"].as_u64().expect("sent");
    std::thread::sleep(Duration::from_millis(500));
    let veth_dropped = tx_dropped(&tx, "und0") - dropped_before;
    let outcome = capture
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("stop the capture");
    let summary = outcome.stderr;
    assert!(outcome.status.success(), "{summary}");

    let written = first_number(&summary, "inner frames written");
    let not_written = first_number(&summary, "packets not written");
    let kernel = first_number(&summary, "packets dropped by kernel");
    let received = first_number(&summary, "packets received on");
    let redirected = number_after(&summary, "XDP:", "XDP:");
    let passed = number_after(&summary, "XDP:", "redirected to AF_XDP,");
    let backpressure = if summary
        .lines()
        .any(|l| l.ends_with(" analyzer_backpressure"))
    {
        first_number(&summary, " analyzer_backpressure")
    } else {
        0
    };
    eprintln!(
        "sent {sent}: veth dropped {veth_dropped}, XDP redirected {redirected} passed {passed}; \
         received {received} = written {written} + not written {not_written} \
         (backpressure {backpressure}); kernel socket drops {kernel}\n{summary}"
    );
    // Everything the generator sent is VXLAN to 4789: redirected unless veth dropped it.
    assert_eq!(
        sent,
        veth_dropped + redirected,
        "generator = veth drops + XDP redirects"
    );
    assert_eq!(
        redirected,
        received + kernel,
        "XDP redirected = received + kernel socket drops"
    );
    assert_eq!(
        received,
        written + not_written,
        "received = written + named reasons"
    );
    assert_eq!(
        sent,
        written + not_written + kernel + veth_dropped,
        "every frame sent is written or counted under a name"
    );
    assert!(
        kernel + not_written + veth_dropped > 0,
        "the burst overloaded the capture (otherwise this proves little)"
    );
}
