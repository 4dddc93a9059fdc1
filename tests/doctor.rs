//! `vxdecap doctor` on real devices in network namespaces: a clean veth
//! passes (exit 0), a jumbo MTU and a kernel VXLAN device on the port fail
//! (exit 1), a 4-queue veth is counted, a missing interface is a usage
//! error (exit 2); `capture` repeats a failed check at start and is quiet
//! when they pass. The Accelerated Networking stack, which this kernel
//! cannot build, is tested on sysfs trees in `src/doctor/tests.rs`.

mod common;

use common::*;
use vxdecap::lab::netns::{unique_name, veth_pair, veth_pair_with_queues, NetNs};

/// `vxdecap doctor ARGS` inside `ns`: exit code and stdout.
fn doctor_in(ns: &NetNs, args: &[&str]) -> (i32, String) {
    let mut full = vec!["doctor"];
    full.extend_from_slice(args);
    let o = output(&mut ns.command(vxdecap_path(), &full));
    let text = format!("{}{}", stdout(&o), stderr(&o));
    (o.status.code().unwrap_or(-1), text)
}

/// The verdict and detail of check `name` in doctor's output (`FAIL  mtu  …`).
fn verdict<'a>(out: &'a str, name: &str) -> (&'a str, &'a str) {
    out.lines()
        .find_map(|line| {
            let (verdict, rest) = line.split_at_checked(6)?;
            let detail = rest.strip_prefix(name)?;
            Some((verdict.trim(), detail.trim()))
        })
        .unwrap_or_else(|| panic!("no {name:?} line in:\n{out}"))
}

/// A namespace with `veth1` (its peer in a second namespace), up.
fn veth_in_namespace(tag: &str, queues: u32) -> (NetNs, NetNs) {
    let collector = NetNs::create(&unique_name(tag)).expect("netns");
    let peer = NetNs::create(&unique_name(&format!("{tag}p"))).expect("netns");
    if queues > 1 {
        veth_pair_with_queues(&peer, "veth0", &collector, "veth1", queues).expect("veth");
    } else {
        veth_pair(&peer, "veth0", &collector, "veth1").expect("veth");
    }
    peer.configure("veth0", "10.91.0.1/24").expect("address");
    collector
        .configure("veth1", "10.91.0.2/24")
        .expect("address");
    (collector, peer)
}

#[test]
fn a_clean_veth_passes_and_says_what_capture_would_do() {
    if !privileged("doctor on a clean veth") {
        return;
    }
    let (ns, _peer) = veth_in_namespace("dok", 1);
    let (code, out) = doctor_in(&ns, &["-i", "veth1"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    assert_eq!(
        verdict(&out, "device stack"),
        ("ok", "veth1: veth (virtual)")
    );
    assert_eq!(verdict(&out, "rx queues").0, "ok", "{out}");
    let (mode, detail) = verdict(&out, "xdp mode");
    assert_eq!(mode, "ok", "{out}");
    assert!(detail.starts_with("driver (native) XDP on veth1"), "{out}");
    assert!(detail.contains("copy-mode sockets"), "{out}");
    let (mtu, detail) = verdict(&out, "mtu");
    assert_eq!(mtu, "ok", "{out}");
    assert!(
        detail.contains("the largest frame that fits: 1776 bytes"),
        "{out}"
    );
    assert_eq!(verdict(&out, "lro/gro-hw").0, "ok", "{out}");
    assert_eq!(
        verdict(&out, "memlock").0,
        "ok",
        "root holds CAP_IPC_LOCK: {out}"
    );
    assert_eq!(
        verdict(&out, "port users"),
        (
            "ok",
            "nothing else receives UDP 4789, 6081: no kernel VXLAN device, no UDP socket"
        )
    );
    assert!(out.contains("veth1: no check failed"), "{out}");
    // capture makes the cheap checks again, and says nothing when they pass.
    let o = output(&mut ns.command(
        vxdecap_path(),
        &["capture", "-i", "veth1", "-q", "--duration", "1"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("doctor:"), "{}", stderr(&o));
    // Without -i: the one interface up besides loopback.
    let (code, all) = doctor_in(&ns, &[]);
    assert_eq!(code, 0, "{all}");
    assert!(all.contains("veth1: no check failed"), "{all}");
}

#[test]
fn a_veth_with_four_queues_reports_four() {
    if !privileged("doctor on a 4-queue veth") {
        return;
    }
    let (ns, _peer) = veth_in_namespace("doq", 4);
    let (code, out) = doctor_in(&ns, &["-i", "veth1"]);
    assert_eq!(code, 0, "{out}");
    let (queues, detail) = verdict(&out, "rx queues");
    assert_eq!(queues, "ok", "{out}");
    assert!(
        detail.starts_with("veth1: 4 (capture opens all of veth1's)"),
        "{out}"
    );
    // veth has no RSS: nothing to set, not a failure.
    let (hash, detail) = verdict(&out, "udp hashing");
    assert_eq!(hash, "ok", "{out}");
    assert!(detail.contains("has no RSS"), "{out}");
}

#[test]
fn a_jumbo_mtu_fails_the_mtu_check() {
    if !privileged("doctor on a veth with MTU 9000") {
        return;
    }
    let (ns, _peer) = veth_in_namespace("dom", 1);
    ns.ip(&["link", "set", "veth1", "mtu", "9000"])
        .expect("mtu");
    let (code, out) = doctor_in(&ns, &["-i", "veth1"]);
    assert_eq!(code, 1, "{out}");
    let (mtu, detail) = verdict(&out, "mtu");
    assert_eq!(mtu, "FAIL", "{out}");
    assert!(
        detail.starts_with("MTU 9000 on veth1: frames of up to 9022 bytes (two VLAN tags) do not fit the UMEM frame of 4096 bytes"),
        "{out}"
    );
    assert!(out.contains("fix: ip link set dev veth1 mtu 3802"), "{out}");
    assert!(
        out.contains("veth1: a capture would lose traffic or not start: mtu failed"),
        "{out}"
    );
}

#[test]
fn a_kernel_vxlan_device_on_the_port_fails_the_port_check() {
    if !privileged("doctor with a kernel VXLAN device on 4789") {
        return;
    }
    let (ns, _peer) = veth_in_namespace("dov", 1);
    ns.ip(&[
        "link",
        "add",
        "vxk0",
        "type",
        "vxlan",
        "id",
        "42",
        "dstport",
        "4789",
        "dev",
        "veth1",
        "local",
        "10.91.0.2",
    ])
    .expect("vxlan device");
    ns.ip(&["link", "set", "vxk0", "up"]).expect("up");
    let (code, out) = doctor_in(&ns, &["-i", "veth1"]);
    assert_eq!(code, 1, "{out}");
    let (users, detail) = verdict(&out, "port users");
    assert_eq!(users, "FAIL", "{out}");
    assert!(
        detail.starts_with("kernel VXLAN device vxk0 (dstport 4789) receive UDP 4789, 6081"),
        "{out}"
    );
    assert!(out.contains("port users failed"), "{out}");
    // capture says it at start, as a warning, and runs.
    let o = output(&mut ns.command(
        vxdecap_path(),
        &["capture", "-i", "veth1", "-q", "--duration", "1"],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "vxdecap: warning: doctor: port users FAIL: kernel VXLAN device vxk0 (dstport 4789)"
        ),
        "{}",
        stderr(&o)
    );
    // Another port is not its business.
    let (code, out) = doctor_in(&ns, &["-i", "veth1", "--port", "8472"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(verdict(&out, "port users").0, "ok", "{out}");
}

#[test]
fn a_missing_interface_is_a_usage_error() {
    let o = output(vxdecap().args(["doctor", "-i", "nosuchif0"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("interface nosuchif0 does not exist: check the name with `ip link`"),
        "{}",
        stderr(&o)
    );
}

/// The lab's model of an Accelerated Networking stack (tests/accelnet.rs):
/// a bridge whose port with the bridge's MAC stands for the VF. doctor says
/// what capture does with it (the program on each port, sockets on every
/// port's queues), and warns when the VF itself is named.
#[test]
fn the_lab_stack_is_judged_as_capture_uses_it() {
    if !privileged("the_lab_stack_is_judged_as_capture_uses_it") {
        return;
    }
    let ns = NetNs::create(&unique_name("dlab")).expect("netns");
    let peer = NetNs::create(&unique_name("dlabp")).expect("peer netns");
    let mac = "02:a5:00:00:00:11";
    ns.ip(&["link", "add", "dl0", "type", "bridge"])
        .expect("bridge");
    ns.ip(&["link", "set", "dl0", "address", mac]).expect("mac");
    veth_pair_with_queues(&ns, "dlsyn", &peer, "dlpsyn", 1).expect("synthetic");
    veth_pair_with_queues(&ns, "dlvf", &peer, "dlpvf", 2).expect("vf");
    ns.ip(&["link", "set", "dlvf", "address", mac])
        .expect("vf mac");
    for port in ["dlsyn", "dlvf"] {
        ns.ip(&["link", "set", port, "master", "dl0"])
            .expect("enslave");
        ns.ip(&["link", "set", port, "up"]).expect("up");
    }
    ns.ip(&["link", "set", "dl0", "up"]).expect("up");

    let (code, out) = doctor_in(&ns, &["-i", "dl0"]);
    assert_eq!(code, 0, "{out}");
    let (v, detail) = verdict(&out, "device stack");
    assert_eq!(v, "ok", "{out}");
    assert!(
        detail.contains("dlvf: veth (VF under dl0)")
            && detail.contains("capture attaches to each port of dl0")
            && detail.contains("dlvf has dl0's MAC and is taken as its VF"),
        "{detail}"
    );
    let (_, queues) = verdict(&out, "rx queues");
    assert!(
        queues.contains("dlsyn: 1, dlvf: 2") && queues.contains("every queue of dlsyn and dlvf"),
        "{queues}"
    );
    let (_, mode) = verdict(&out, "xdp mode");
    assert!(
        mode.contains("on each port of dl0")
            && mode.contains("dlvf driver (native) XDP")
            && mode.contains("none on the bridge"),
        "{mode}"
    );

    let (code, out) = doctor_in(&ns, &["-i", "dlvf"]);
    assert_eq!(code, 0, "a warning only: {out}");
    let (v, detail) = verdict(&out, "device stack");
    assert_eq!(v, "WARN", "{out}");
    assert!(detail.contains("servicing removes it"), "{detail}");
    assert!(out.contains("capture on dl0"), "{out}");
}

/// A veth made without `numrxqueues` has 2 rx queues allocated here and 1
/// in use; a socket binds only to a queue in use. Doctor and capture count
/// the queues in use (ETHTOOL_GCHANNELS): before, both took the allocated
/// count from netlink, and the capture failed to start, binding queue 1.
#[test]
fn queues_allocated_but_not_in_use_are_not_opened() {
    if !privileged("queues in use on a default veth") {
        return;
    }
    let collector = NetNs::create(&unique_name("dqa")).expect("netns");
    let peer = NetNs::create(&unique_name("dqap")).expect("netns");
    let status = std::process::Command::new("ip")
        .args([
            "link",
            "add",
            "veth1",
            "netns",
            collector.name(),
            "type",
            "veth",
        ])
        .args(["peer", "name", "veth0", "netns", peer.name()])
        .status()
        .expect("ip link add");
    assert!(status.success(), "veth without numrxqueues");
    peer.configure("veth0", "10.92.0.1/24").expect("address");
    collector
        .configure("veth1", "10.92.0.2/24")
        .expect("address");
    let shown = output(&mut collector.command("ip", &["-d", "link", "show", "veth1"]));
    assert!(
        !stdout(&shown).contains("numrxqueues 1 "),
        "one allocated queue: this test needs more (a machine with 2 CPUs or more)"
    );
    let (code, out) = doctor_in(&collector, &["-i", "veth1"]);
    assert_eq!(code, 0, "{out}");
    let (_, detail) = verdict(&out, "rx queues");
    assert!(detail.starts_with("veth1: 1 "), "{out}");
    let capture = RunningCapture::start(&collector, &["-i", "veth1", "-q"]);
    let (ok, err) = capture.stop();
    assert!(ok, "{err}");
    assert!(!err.contains("rx queue 1"), "{err}");
}
