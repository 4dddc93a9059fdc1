//! Bad command lines and configurations: a one-line error naming the fix,
//! exit code 2, nothing attached. These need no root.

mod common;

use common::*;

fn fails_with(args: &[&str], needle: &str) {
    let o = output(vxdecap().args(args));
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "`vxdecap {}` should exit 2; stderr:\n{err}",
        args.join(" ")
    );
    assert!(
        err.contains(needle),
        "`vxdecap {}`: expected {needle:?} in:\n{err}",
        args.join(" ")
    );
}

#[test]
fn nonexistent_interface_is_named() {
    fails_with(
        &["capture", "-i", "nosuchif0", "-w", "/dev/null"],
        "interface nosuchif0 does not exist",
    );
}

#[test]
fn queue_out_of_range_is_refused() {
    fails_with(
        &["capture", "-i", "lo", "--queues", "7", "-w", "/dev/null"],
        "rx queue 7 does not exist on lo",
    );
    fails_with(
        &["capture", "-i", "lo", "--queues", "x", "-w", "/dev/null"],
        "--queues \"x\" is not a list",
    );
}

#[test]
fn bad_ports_are_refused() {
    let fixture = fixture("tcpdump/vxlan.pcap");
    let r = fixture.to_str().unwrap();
    fails_with(&["decap", "-r", r, "--port", "0"], "0");
    fails_with(
        &["decap", "-r", r, "--port", "4789", "--port", "4789"],
        "4789",
    );
    fails_with(&["decap", "-r", r, "--port", "4790"], "VXLAN-GPE");
}

#[test]
fn unwritable_output_is_refused() {
    let fixture = fixture("tcpdump/vxlan.pcap");
    fails_with(
        &[
            "decap",
            "-r",
            fixture.to_str().unwrap(),
            "-w",
            "/nonexistent-dir/x.pcap",
        ],
        "cannot write /nonexistent-dir/x.pcap",
    );
}

#[test]
fn bad_mode_sizes_and_durations_are_refused() {
    fails_with(&["capture", "-i", "lo", "--mode", "turbo"], "turbo");
    fails_with(
        &["capture", "-i", "lo", "--frame-size", "3000"],
        "frame size 3000 is invalid",
    );
    fails_with(
        &["capture", "-i", "lo", "--duration", "0"],
        "--duration must be a positive number",
    );
    fails_with(
        &["capture", "-i", "lo", "--cpus", "0-999"],
        "does not exist",
    );
}

#[test]
fn bad_allowlists_and_metrics_addresses_are_refused() {
    fails_with(
        &["capture", "-i", "lo", "--allow-source", "10.0.0.0/33"],
        "--allow-source: \"10.0.0.0/33\": prefix /33 is longer than 32 bits",
    );
    fails_with(
        &["capture", "-i", "lo", "--allow-source", "nonsense"],
        "is not an address or prefix",
    );
    fails_with(
        &["capture", "-i", "lo", "--vni", "0-16777215"],
        "--vni: VNI list \"0-16777215\" names more than 65536 VNIs",
    );
    fails_with(&["capture", "-i", "lo", "--vni", "9-3"], "low to high");
    let dir = TempDir::new("allow");
    let file = dir.path("allow.txt");
    std::fs::write(&file, "source 10.0.0.1\nports 4789\n").unwrap();
    fails_with(
        &[
            "capture",
            "-i",
            "lo",
            "--allow-file",
            file.to_str().unwrap(),
        ],
        "allow.txt:2: unknown rule \"ports\"",
    );
    fails_with(
        &[
            "capture",
            "-i",
            "lo",
            "--allow-file",
            "/nonexistent/allow.txt",
        ],
        "cannot read allowlist /nonexistent/allow.txt",
    );
    // A port already taken: bind a listener first.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_with(
        &["capture", "-i", "lo", "--metrics", &addr],
        "cannot serve --metrics on",
    );
}
