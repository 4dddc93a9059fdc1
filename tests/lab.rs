//! `vxdecap lab` end to end: namespaces, tc mirred into VXLAN, live
//! capture, HTTP through the monitored app, decoded inner conversation.

mod common;

use common::*;

/// The lab run by process `pid` left no namespace behind.
fn assert_no_lab_namespaces(pid: u32) {
    let list = output(std::process::Command::new("ip").args(["netns", "list"]));
    let namespaces = String::from_utf8_lossy(&list.stdout);
    assert!(
        !namespaces.contains(&format!("vxlab{pid}")),
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
    let mut child = vxdecap::netns::ChildGuard::new(
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
        if String::from_utf8_lossy(&list.stdout).contains(&format!("vxlab{pid}-coll")) {
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
    use vxdecap::lab::{LabTopology, APP_ADDR, CLIENT_ADDR};
    use vxdecap::netns::{unique_name, ChildGuard, WatchedChild};
    if !privileged("example against the lab") {
        return;
    }
    let example = example_path("top_talkers");
    assert!(
        example.exists(),
        "{} missing: cargo test builds the examples",
        example.display()
    );
    let lab = LabTopology::create(&unique_name("ex")).expect("lab namespaces");
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
