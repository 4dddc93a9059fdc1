//! `vxdecap lab` end to end: namespaces, tc mirred into VXLAN, live
//! capture, HTTP through the monitored app, decoded inner conversation.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they measured"
)]

mod common;

use common::*;

/// The lab run by process `pid` left no namespace behind.
fn assert_no_lab_namespaces(pid: u32) {
    let list = output(std::process::Command::new("ip").args(["netns", "list"]));
    let namespaces = String::from_utf8_lossy(&list.stdout);
    assert!(
        !namespaces.contains(&format!("vxlab{pid}x")),
        "lab namespaces left behind: {namespaces}"
    );
}

#[test]
fn lab_shows_the_inner_http_request_and_response_and_cleans_up() {
    if !privileged("lab") {
        return;
    }
    let tmp = TempDir::new("lab");
    let pcap = tmp.path("lab.pcap");
    let child = vxdecap()
        .args(["lab", "--requests", "2", "-w"])
        .arg(&pcap)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lab");
    let pid = child.id();
    let o = child.wait_with_output().expect("lab output");
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        o.status.success(),
        "lab failed:\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains("10.0.2.5."), "{out}");
    assert!(
        out.contains("> 10.0.2.4.80: Flags [P.], length 64: HTTP: GET /page0 HTTP/1.1"),
        "{out}"
    );
    assert!(out.contains("HTTP: GET /page1 HTTP/1.1"), "{out}");
    assert!(out.contains("10.0.2.4.80 > 10.0.2.5."), "{out}");
    assert!(out.contains("HTTP: HTTP/1.1 200 OK"), "{out}");
    assert!(err.contains("lab: torn down"), "{err}");

    // tshark agrees: two GETs and two 200 responses in the kept pcap.
    let t = output(
        std::process::Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&pcap)
            .args([
                "-Y",
                "http",
                "-T",
                "fields",
                "-e",
                "http.request.uri",
                "-e",
                "http.response.code",
            ]),
    );
    let fields = stdout(&t);
    assert_eq!(
        fields.lines().filter(|l| l.starts_with("/page")).count(),
        2,
        "{fields}"
    );
    assert_eq!(
        fields.lines().filter(|l| l.trim() == "200").count(),
        2,
        "{fields}"
    );

    assert_no_lab_namespaces(pid);
}

#[test]
fn lab_tears_down_on_ctrl_c() {
    if !privileged("lab ctrl-c") {
        return;
    }
    let mut child = vxdecap::lab::netns::ChildGuard::new(
        vxdecap()
            .args(["lab", "--keep", "--requests", "1"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn lab"),
    );
    let pid = child.id();
    // Wait until the lab is up, then interrupt it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let list = output(std::process::Command::new("ip").args(["netns", "list"]));
        // The lab's first (and only) namespace set: `unique_name("lab")`.
        if String::from_utf8_lossy(&list.stdout).contains(&format!("vxlab{pid}x0-coll")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "lab did not come up");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    child
        .signal(nix::sys::signal::Signal::SIGINT)
        .expect("SIGINT");
    let _ = child.child_mut();
    let o = child.wait_with_output().expect("lab output");
    let err = stderr(&o);
    assert!(o.status.success(), "lab after Ctrl-C:\n{err}");
    assert!(err.contains("lab: torn down"), "{err}");
    assert_no_lab_namespaces(pid);
}

/// The embedded-analyzer example (examples/top_talkers.rs), built next to
/// the vxdecap binary by `cargo test`.
fn example_path(name: &str) -> std::path::PathBuf {
    let bin = std::path::Path::new(vxdecap_path());
    bin.parent()
        .expect("target dir")
        .join("examples")
        .join(name)
}

#[test]
fn top_talkers_example_reports_the_lab_conversation_per_vni() {
    use vxdecap::lab::netns::{unique_name, ChildGuard, WatchedChild};
    use vxdecap::lab::{LabTopology, APP_ADDR, CLIENT_ADDR};
    if !privileged("example against the lab") {
        return;
    }
    let example = example_path("top_talkers");
    assert!(
        example.exists(),
        "{} missing: cargo test builds the examples",
        example.display()
    );
    let lab = LabTopology::create(&unique_name("ex"), false).expect("lab namespaces");
    let listen = format!("{APP_ADDR}:80");
    let _server = ChildGuard::new(
        lab.app
            .command(vxdecap_path(), &["lab-http-server", "--listen", &listen])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("lab HTTP server"),
    );
    let mut talkers = WatchedChild::spawn(
        lab.collector
            .command(example.to_str().expect("utf-8 path"), &["eth1", "4"]),
        &["listening on"],
        std::time::Duration::from_secs(20),
        None,
    )
    .expect("example starts");
    // The server may need a moment; the client retries its probe.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while lab
        .client
        .run(
            vxdecap_path(),
            &[
                "lab-http-get",
                "--server",
                &listen,
                "--count",
                "0",
                "--probe",
            ],
        )
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "lab HTTP server down");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    lab.client
        .run(
            vxdecap_path(),
            &["lab-http-get", "--server", &listen, "--count", "3"],
        )
        .expect("HTTP GETs");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let outcome = talkers
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("example output");
    assert!(
        outcome.status.success(),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    let last = outcome
        .stdout
        .split("final:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no final report:\n{}", outcome.stdout));
    let line = last
        .lines()
        .find(|l| l.starts_with("vni 27: "))
        .unwrap_or_else(|| panic!("no VNI 27 in:\n{}", outcome.stdout));
    assert!(line.contains(&format!("{CLIENT_ADDR} ")), "{line}");
    assert!(line.contains(&format!("{APP_ADDR} ")), "{line}");
    assert!(
        outcome.stderr.contains("inner frames per VNI: vni 27: "),
        "{}",
        outcome.stderr
    );
}

/// The issue's "done when", against the lab: one vxdecap process writes
/// rotating per-tenant pcapng files and feeds a live tap at the same time.
/// Tenant 27 is the lab's mirrored HTTP; tenant 28 a second VXLAN sender
/// on the app's underlay.
#[test]
fn lab_tenants_go_to_rotating_pcapng_files_and_a_tap_at_once() {
    use std::time::Duration;
    use vxdecap::lab::netns::{unique_name, ChildGuard, WatchedChild};
    use vxdecap::lab::{LabTopology, APP_ADDR, APP_UNDERLAY_ADDR, COLLECTOR_ADDR};
    if !privileged("lab tenants, routes and tap") {
        return;
    }
    let lab = LabTopology::create(&unique_name("lr"), false).expect("lab namespaces");
    // A second tenant: VNI 28 from the same underlay address.
    VxlanSender {
        dev: "vx28",
        vni: 28,
        local: APP_UNDERLAY_ADDR,
        remote: COLLECTOR_ADDR,
        underlay: "und0",
        inner: "192.168.28.1/24",
        peer: "192.168.28.2",
        peer_mac: "02:00:00:00:28:02",
    }
    .add(&lab.app);

    let tmp = TempDir::new("lab-routes");
    let t27 = tmp.path("tenant27.pcapng");
    let t28 = tmp.path("tenant28.pcapng");
    let listen = format!("{APP_ADDR}:80");
    let _server = ChildGuard::new(
        lab.app
            .command(vxdecap_path(), &["lab-http-server", "--listen", &listen])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("lab HTTP server"),
    );
    // A tap made beforehand stays when vxdecap exits, so tcpdump can read
    // every frame vxdecap wrote, also those of the final drain.
    lab.collector
        .ip(&["tuntap", "add", "tenants0", "mode", "tap"])
        .expect("tap device");
    lab.collector
        .ip(&["link", "set", "tenants0", "up"])
        .expect("tap up");
    let mut capture = WatchedChild::spawn(
        lab.collector.command(
            vxdecap_path(),
            &[
                "capture",
                "-i",
                "eth1",
                "-C",
                "4k",
                "--route",
                &format!("vni=27 -> {}", t27.display()),
                "--route",
                &format!("vni=28 -> {}", t28.display()),
                "--tap",
                "tenants0",
            ],
        ),
        &["listening on"],
        Duration::from_secs(20),
        None,
    )
    .expect("capture starts");
    let tap_pcap = tmp.path("tap.pcap");
    let mut tcpdump = WatchedChild::spawn(
        lab.collector.command(
            "tcpdump",
            &[
                "-i",
                "tenants0",
                "--immediate-mode",
                "-s",
                "2048",
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

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lab
        .client
        .run(
            vxdecap_path(),
            &[
                "lab-http-get",
                "--server",
                &listen,
                "--count",
                "0",
                "--probe",
            ],
        )
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "lab HTTP server down");
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.client
        .run(
            vxdecap_path(),
            &["lab-http-get", "--server", &listen, "--count", "5"],
        )
        .expect("HTTP GETs");
    lab.app
        .spawn_in(|| {
            let socket = std::net::UdpSocket::bind("192.168.28.1:0")?;
            for i in 0..60 {
                socket.send_to(format!("t28-{i:03}").as_bytes(), "192.168.28.2:9999")?;
            }
            Ok(())
        })
        .expect("enter the app netns")
        .join()
        .expect("sender thread")
        .expect("tenant 28 datagrams");
    // Stop the capture first: it drains its rings into the outputs and the
    // tap, so nothing reaches the tap after this.
    std::thread::sleep(Duration::from_millis(300));
    let outcome = capture
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("capture output");
    // Until tcpdump has written every frame that reached the tap (it lags
    // behind on two shared cores), or a deadline.
    let written_to_tap = || -> usize {
        lab.collector
            .run("cat", &["/sys/class/net/tenants0/statistics/rx_packets"])
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(0)
    };
    // What vxdecap wrote to the tap (its summary) and what the tap took in.
    let wrote: usize = outcome
        .stderr
        .lines()
        .find_map(|l| l.split("(tap tenants0): ").nth(1))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while complete_records(&tap_pcap) < wrote.max(written_to_tap())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let tap_said = tcpdump
        .stop(nix::sys::signal::Signal::SIGINT)
        .expect("tcpdump output");
    let summary = outcome.stderr;
    assert!(outcome.status.success(), "{summary}");

    let files = |prefix: &str| -> Vec<std::path::PathBuf> {
        let mut names: Vec<_> = std::fs::read_dir(&tmp.0)
            .expect("temp dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .collect();
        names.sort();
        names
    };
    let tshark = |file: &std::path::Path, fields: &[&str], display: &str| -> Vec<String> {
        let mut cmd = std::process::Command::new("tshark");
        cmd.arg("-n")
            .arg("-r")
            .arg(file)
            .args(["-Y", display, "-T", "fields"]);
        for f in fields {
            cmd.args(["-e", f]);
        }
        let o = output(&mut cmd);
        assert!(
            o.status.success(),
            "tshark {}: {}",
            file.display(),
            stderr(&o)
        );
        stdout(&o).lines().map(str::to_owned).collect()
    };
    // Tenant 27: rotated (-C 4k), only its tunnel, and the five GETs with their 200s.
    let t27_files = files("tenant27.pcapng");
    assert!(
        t27_files.len() >= 2,
        "tenant 27 rotates: {t27_files:?}\n{summary}"
    );
    let (mut gets, mut oks) = (std::collections::BTreeSet::new(), 0);
    for f in &t27_files {
        assert!(
            std::fs::metadata(f).unwrap().len() <= 4096,
            "{}",
            f.display()
        );
        let names = tshark(f, &["frame.interface_name"], "frame");
        assert!(
            names
                .iter()
                .all(|n| n == &format!("vxlan:vni=27,src={APP_UNDERLAY_ADDR}")),
            "{}: {names:?}",
            f.display()
        );
        gets.extend(tshark(f, &["http.request.uri"], "http.request"));
        oks += tshark(f, &["http.response.code"], "http.response.code == 200").len();
    }
    // Every GET and a 200 for each (a retransmitted segment may repeat one).
    let pages: std::collections::BTreeSet<String> = (0..5).map(|i| format!("/page{i}")).collect();
    assert_eq!(gets, pages, "{summary}");
    assert!(oks >= 5, "{oks} responses:\n{summary}");
    // Tenant 28: its 60 datagrams, in order, nothing else.
    let mut payloads = Vec::new();
    for f in files("tenant28.pcapng") {
        let names = tshark(&f, &["frame.interface_name"], "frame");
        assert!(names
            .iter()
            .all(|n| n == &format!("vxlan:vni=28,src={APP_UNDERLAY_ADDR}")));
        payloads.extend(tshark(&f, &["data.data"], "udp.dstport == 9999"));
    }
    let expected: Vec<String> = (0..60)
        .map(|i| {
            format!("t28-{i:03}")
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .concat()
        })
        .collect();
    assert_eq!(payloads, expected, "{summary}");
    // The tap got both tenants' frames, as many as the routes wrote.
    let on_tap = tshark(&tap_pcap, &["frame.number"], "frame").len() as u64;
    let routed: u64 = summary
        .lines()
        .filter_map(|l| l.trim().strip_prefix("route vni="))
        .map(|l| {
            l.split(": ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(routed >= 5 * 6 + 60, "{summary}");
    // vxdecap wrote every routed frame to the tap, exactly (its own count).
    let tap_line = format!("(tap tenants0): {routed} inner frames");
    assert!(summary.contains(&tap_line), "{tap_line:?} in:\n{summary}");
    assert!(
        summary.contains("0 tap_write_failed, 0 tap_frame_too_big"),
        "{summary}"
    );
    // tcpdump on the tap: libpcap's ring may still hold the very last frame
    // when tcpdump is stopped (seen once in five CI runs), so allow one.
    assert!(
        on_tap <= routed && on_tap + 1 >= routed,
        "tcpdump on the tap saw {on_tap} of {routed}:\n{}\n{summary}",
        tap_said.stderr
    );
    // Tenant 28's datagrams come last, so the one frame tcpdump may miss is one of them.
    let t28_on_tap = tshark(&tap_pcap, &["frame.number"], "udp.dstport == 9999").len() as u64;
    assert!(
        t28_on_tap <= 60 && t28_on_tap + (routed - on_tap) >= 60,
        "{t28_on_tap} of tenant 28's 60 on the tap:\n{summary}"
    );
    assert_eq!(
        tshark(&tap_pcap, &["frame.number"], "http.request").len(),
        5
    );
    eprintln!(
        "files: {:?} {:?}; tcpdump on the tap: {on_tap} frames\n{summary}",
        t27_files.len(),
        files("tenant28.pcapng").len()
    );
}

/// Runs `vxdecap lab --scenario NAME`; returns (stdout, stderr) after
/// checking it succeeded and left no namespace behind.
fn scenario(name: &str) -> (String, String) {
    let child = vxdecap()
        .args(["lab", "--scenario", name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lab");
    let pid = child.id();
    let o = child.wait_with_output().expect("lab output");
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        o.status.success(),
        "lab {name} failed:\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(
        vxdecap::lab::scenarios::leftover_namespaces(pid).is_empty(),
        "namespaces left behind"
    );
    (out, err)
}

/// The number before `what` on the line that holds it.
fn number_before(text: &str, what: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let at = l.find(what)?;
            l[..at].split_whitespace().last()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no '{what}' in:\n{text}"))
}

#[test]
fn lab_private_link_shows_the_get_and_200_from_the_private_link_nat_address() {
    if !privileged("lab private-link") {
        return;
    }
    let (out, err) = scenario("private-link");
    // The collector sees the Private Link service's NAT address as the outer source, and
    // the inner conversation intact.
    assert!(
        out.contains("vni 27 (10.2.0.1 > 10.2.0.4) IP 10.0.2.5.")
            && out.contains("> 10.0.2.4.80: Flags [P.], length 64: HTTP: GET /page0 HTTP/1.1"),
        "{out}"
    );
    assert!(
        out.contains("vni 27 (10.2.0.1 > 10.2.0.4) IP 10.0.2.4.80 > 10.0.2.5.")
            && out.contains("HTTP: HTTP/1.1 200 OK"),
        "{out}"
    );
    // The relay sent the mirror on in XDP, to the Private Endpoint, from its own address.
    assert!(err.contains("to collector 10.3.0.2 from 10.3.0.1"), "{err}");
    assert!(number_before(&err, " relayed_redirect") > 0, "{err}");
}

#[test]
fn lab_fanout_keeps_every_flow_on_one_collector_and_moves_only_the_stopped_ones() {
    if !privileged("lab fanout") {
        return;
    }
    let (out, err) = scenario("fanout");
    // 24 flows, each seen in both directions by both VMs' mirrors: 96 frames a round.
    assert!(out.contains("round 1: 24 flows, 96 frames"), "{out}\n{err}");
    assert!(out.contains("round 2: 24 flows, 96 frames"), "{out}\n{err}");
    assert!(out.contains("round 1: 0 flow(s) split"), "{out}");
    assert!(out.contains("round 2: 0 flow(s) split"), "{out}");
    // The stopped collector's flows, and only they, went elsewhere.
    let moved = number_before(&out, " flow(s) of the stopped collector");
    assert!(moved > 0, "{out}");
    assert!(
        out.contains(&format!(
            "moved: {moved} flow(s) of the stopped collector, 0 other flow(s)"
        )),
        "{out}"
    );
    assert!(
        out.contains("10.9.0.3 0\n") || out.contains("10.9.0.3 0,"),
        "{out}"
    );
    assert!(err.contains("collector 10.9.0.3 is unhealthy"), "{err}");
    assert!(err.contains("1 table change(s)"), "{err}");
}

#[test]
fn lab_ilb_shows_half_flows_under_outer_hashing_and_none_with_the_relay_tier() {
    if !privileged("lab ilb") {
        return;
    }
    let (out, err) = scenario("ilb");
    assert!(
        out.contains("http://10.9.0.2:9419/healthz answers 200"),
        "{out}"
    );
    assert!(
        out.contains("http://10.9.0.3:9419/healthz answers 200"),
        "{out}"
    );
    let half = number_before(&out, " of 24 flows split across the 2 collectors");
    // Each flow's two mirror copies come from two hosts: an outer hash splits about half.
    assert!(half > 0, "outer hashing split nothing:\n{out}\n{err}");
    assert!(
        out.contains("with the relay tier: 0 of 24 flows split, 96 frames"),
        "{out}\n{err}"
    );
    assert!(out.contains("(half-flows), 96 frames"), "{out}");
}

/// `vxdecap lab --scenario accelnet`: the collector's NIC is the bridge
/// model of an Accelerated Networking stack; two requests before the VF
/// goes away, two while it is away (synthetic path), two after it comes
/// back renamed: every exchange is captured whole, SYN included.
#[test]
fn lab_accelnet_captures_every_round_through_vf_servicing() {
    if !privileged("lab accelnet") {
        return;
    }
    let tmp = TempDir::new("labaccel");
    let pcap = tmp.path("accel.pcap");
    let child = vxdecap()
        .args(["lab", "--scenario", "accelnet", "--requests", "2", "-w"])
        .arg(&pcap)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lab");
    let pid = child.id();
    let o = child.wait_with_output().expect("lab output");
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "lab failed:\n{out}\n{err}");
    for page in 0..6 {
        assert!(
            out.contains(&format!("HTTP: GET /page{page} HTTP/1.1")),
            "/page{page}:\n{out}"
        );
    }
    assert_eq!(
        out.lines().filter(|l| l.contains("Flags [S],")).count(),
        6,
        "every SYN:\n{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("HTTP: HTTP/1.1 200 OK"))
            .count(),
        6,
        "{out}"
    );
    // A deleted bridge port first leaves its bridge (RTM_NEWLINK without
    // the master), then goes (RTM_DELLINK): either may be seen first.
    assert!(
        err.contains("eth1vf (vf, ifindex")
            && (err.contains("went away") || err.contains("left its master")),
        "{err}"
    );
    assert!(
        err.contains("eth1vf2 (vf, ifindex") && err.contains("came back"),
        "{err}"
    );
    assert!(
        err.contains("device eth1vf2 (vf):") && err.contains("device eth1syn (port):"),
        "{err}"
    );
    assert_no_lab_namespaces(pid);
}
