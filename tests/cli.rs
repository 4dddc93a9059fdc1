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

#[test]
fn the_committed_example_config_passes_check_config() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/vxdecap.toml");
    // It names eth1 and /var/lib/vxdecap, which this machine need not have.
    let o = output(
        vxdecap()
            .args(["check-config", "--no-host-checks"])
            .arg(&example),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let setup = stdout(&o);
    for line in [
        "interface: eth1",
        "tap: vxdecap0",
        "route 2: vni=100-199,src=10.1.0.0/16,filter=tcp port 80 or tcp port 443 -> tap:tenant-b-web",
        "route 4: default -> drop",
        "allowlist: sources 10.1.0.0/16,fd00::/64, 102 VNI(s)",
    ] {
        assert!(setup.contains(line), "{line:?} missing from:\n{setup}");
    }
}

#[test]
fn bad_config_files_exit_2_with_one_line_naming_the_fix() {
    let tmp = TempDir::new("cli-config");
    for (text, needle) in [
        ("interfce = \"eth1\"\n", "unknown field `interfce`"),
        (
            "[allow]\nsources = [\"10.0.0.0/33\"]\n",
            "[allow] sources: \"10.0.0.0/33\": prefix /33 is longer than 32 bits",
        ),
        ("[allow]\nvnis = [\"9-3\"]\n", "[allow] vnis: VNI range"),
        ("[[route]]\nvni = [27]\n", "add to = "),
        (
            "[[route]]\nvni = [27]\nto = \"a.pcap\"\nfilter = \"tcp prot 80\"\n",
            "man pcap-filter",
        ),
        ("mode = \"fast\"\n", "use one of auto, zerocopy, copy, skb"),
        (
            "[output]\nwrite = \"a.pcap\"\nfile_size = -5\n",
            "file_size: expected a size such as 100 (MB), \"512k\" or \"2g\", found -5",
        ),
        (
            "[allow]\nvnis = [-1]\n",
            "line 2: expected a VNI from 0 to 16777215 such as 27, or a range such as \"100-199\", found -1",
        ),
    ] {
        let path = tmp.path("bad.toml");
        std::fs::write(&path, text).expect("write the config");
        let o = output(vxdecap().arg("check-config").arg(&path));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{text:?}: {err}");
        assert!(err.contains(needle), "{text:?}: {err}");
        assert!(err.contains("bad.toml"), "names the file: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    fails_with(
        &["check-config", "/nonexistent.toml"],
        "cannot read the config file",
    );
}

#[test]
fn bad_routes_taps_and_file_flags_are_refused() {
    let fixture = fixture("tcpdump/vxlan.pcap");
    let r = fixture.to_str().unwrap();
    fails_with(
        &["decap", "-r", r, "--route", "vni=27 x.pcap"],
        "SELECTOR -> OUTPUT",
    );
    fails_with(
        &["decap", "-r", r, "--route", "vni=1-2-3 -> x.pcap"],
        "not a VNI",
    );
    fails_with(&["decap", "-r", r, "--tap", "a/b"], "an interface name");
    fails_with(
        &["decap", "-r", r, "--tap", "tap%d"],
        "--tap \"tap%d\": '%' asks the kernel to choose the name",
    );
    fails_with(
        &["decap", "-r", r, "--route", "vni=27 -> tap:t%d"],
        "--tap \"t%d\": '%' asks the kernel to choose the name",
    );
    fails_with(&["decap", "-r", r, "-C", "10"], "add -w FILE");
    fails_with(&["capture", "-w", "/dev/null"], "no interface: give -i");
}

#[test]
fn flags_win_over_the_config_file() {
    let tmp = TempDir::new("cli-override");
    let config = tmp.path("c.toml");
    let from_file = tmp.path("from-file.pcap");
    let from_flag = tmp.path("from-flag.pcap");
    std::fs::write(
        &config,
        format!(
            "filter = \"icmp\"\n[output]\nwrite = \"{}\"\n",
            from_file.display()
        ),
    )
    .expect("write the config");
    let r = fixture("tcpdump/vxlan.pcap");
    // The file's output and filter: the 8 ICMP frames of the 10.
    let o = output(
        vxdecap()
            .args(["decap", "--config"])
            .arg(&config)
            .arg("-r")
            .arg(&r),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_pcap(&from_file).len(), 8);
    // -w and the expression given as flags win.
    let o = output(
        vxdecap()
            .args(["decap", "--config"])
            .arg(&config)
            .arg("-r")
            .arg(&r)
            .arg("-w")
            .arg(&from_flag)
            .arg("arp"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_pcap(&from_flag).len(), 2);
}

/// Runs `vxdecap args…` with its address space capped at 2 GiB and a
/// deadline of `secs`: a read that never ends must fail here, not hang
/// the suite or eat the machine's memory. Returns (exit code, stderr).
fn run_bounded(args: &[&str], secs: u64) -> (Option<i32>, String) {
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("ulimit -v 2097152; exec \"$0\" \"$@\"")
        .arg(vxdecap_path())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vxdecap");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().expect("wait for vxdecap") {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`vxdecap {}` still running after {secs} s", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn config_and_allow_files_must_be_small_regular_files() {
    let tmp = TempDir::new("cli-files");
    let fifo = tmp.path("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let big = tmp.path("big.txt");
    // Comments only, so it would parse if it were read: one byte over 1 MiB.
    let mut text = "# padding\n".repeat((1 << 20) / 10 + 1);
    text.truncate((1 << 20) + 1);
    std::fs::write(&big, &text).unwrap();
    let config_naming = |file: &std::path::Path| {
        let path = tmp.path("names-a-file.toml");
        std::fs::write(&path, format!("[allow]\nfile = \"{}\"\n", file.display())).unwrap();
        path
    };
    let (fifo, big, dir) = (
        fifo.to_str().unwrap(),
        big.to_str().unwrap(),
        tmp.0.to_str().unwrap(),
    );
    for (args, needle) in [
        (
            vec!["capture", "-i", "lo", "--allow-file", "/dev/zero"],
            "allowlist /dev/zero: it is a character device, not a regular file".to_owned(),
        ),
        (
            vec!["capture", "-i", "lo", "--allow-file", fifo],
            format!("allowlist {fifo}: it is a FIFO (named pipe), not a regular file"),
        ),
        (
            vec!["capture", "-i", "lo", "--allow-file", dir],
            format!("allowlist {dir}: it is a directory, not a regular file"),
        ),
        (
            vec!["capture", "-i", "lo", "--allow-file", big],
            format!("allowlist {big}: it is larger than 1 MiB"),
        ),
        (
            vec!["capture", "-i", "lo", "--config", "/dev/zero"],
            "config file /dev/zero: it is a character device, not a regular file".to_owned(),
        ),
        (
            vec!["check-config", "/dev/zero"],
            "config file /dev/zero: it is a character device".to_owned(),
        ),
        (
            vec!["check-config", fifo],
            format!("config file {fifo}: it is a FIFO (named pipe)"),
        ),
        (
            vec!["decap", "-r", "/dev/null", "--config", big],
            format!("config file {big}: it is larger than 1 MiB"),
        ),
    ] {
        let (code, err) = run_bounded(&args, 10);
        assert_eq!(code, Some(2), "`vxdecap {}`: {err}", args.join(" "));
        assert!(
            err.contains(&needle),
            "`vxdecap {}`: expected {needle:?} in {err}",
            args.join(" ")
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    for named in ["/dev/zero", fifo] {
        let config = config_naming(std::path::Path::new(named));
        let (code, err) = run_bounded(&["check-config", config.to_str().unwrap()], 10);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "[allow] file: cannot read allowlist {named}: it is"
            )),
            "{err}"
        );
    }
}

#[test]
fn allow_files_that_would_open_a_list_by_omission_are_refused_at_start() {
    let tmp = TempDir::new("cli-allow-open");
    let file = tmp.path("allow.txt");
    let path = file.to_str().unwrap();
    for (text, needle) in [
        (
            "source\nvni 42\n",
            "allow.txt:1: `source` needs an address or prefix",
        ),
        ("", "allow.txt: no rules"),
        ("# nothing yet\n", "allow.txt: no rules"),
        (
            "source 10.0.0.0/1",
            "allow.txt:1: the last line does not end with a newline",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        fails_with(&["capture", "-i", "lo", "--allow-file", path], needle);
        let config = tmp.path("c.toml");
        std::fs::write(&config, format!("[allow]\nfile = \"{path}\"\n")).unwrap();
        fails_with(&["check-config", config.to_str().unwrap()], needle);
    }
}

#[test]
fn check_config_refuses_what_capture_refuses() {
    let tmp = TempDir::new("cli-same-checks");
    let config = tmp.path("c.toml");
    for (text, needle, capture_too) in [
        ("interface = \"lo\"\nqueues = [0, 0]\n", "--queues names 0 twice", true),
        ("queues = \"1,1\"\n", "--queues names 1 twice", false),
        ("interface = \"lo\"\ncpus = \"4095\"\n", "CPU 4095 does not exist", true),
        ("cpus = \"4095\"\n", "CPU 4095 does not exist", false),
        ("interface = \"nosuchif0\"\n", "interface nosuchif0 does not exist", true),
        ("interface = \"lo\"\nqueues = [7]\n", "rx queue 7 does not exist on lo", true),
        (
            "interface = \"lo\"\n[output]\nwrite = \"/nonexistent-vxdecap-dir/x.pcap\"\n",
            "cannot write /nonexistent-vxdecap-dir/x.pcap: directory /nonexistent-vxdecap-dir: No such file or directory",
            true,
        ),
        (
            "[[route]]\nvni = [27]\nto = \"/nonexistent-vxdecap-dir/t27.pcap\"\n",
            "cannot write /nonexistent-vxdecap-dir/t27.pcap",
            false,
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let path = config.to_str().unwrap();
        fails_with(&["check-config", path], needle);
        if capture_too {
            fails_with(&["capture", "--config", path], needle);
        }
    }
    // A file for another machine: the checks against this one are left out.
    std::fs::write(&config, "interface = \"nosuchif0\"\ncpus = \"4095\"\n").unwrap();
    let o = output(vxdecap().args(["check-config", "--no-host-checks", config.to_str().unwrap()]));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn settings_without_effect_are_warned_about() {
    let tmp = TempDir::new("cli-no-effect");
    let config = tmp.path("c.toml");
    std::fs::write(
        &config,
        "[[route]]\nvni = [27]\nto = \"drop\"\n[[route]]\ndefault = true\nto = \"drop\"\n[[route]]\nvni = [5]\nto = \"drop\"\n",
    )
    .unwrap();
    let o = output(vxdecap().arg("check-config").arg(&config));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: ")
            && stderr(&o).contains("route 3 (vni=5 -> drop) comes after route 2 (default -> drop), which takes every frame: it never matches"),
        "{}",
        stderr(&o)
    );
    let fixture = fixture("tcpdump/vxlan.pcap");
    let o = output(vxdecap().args([
        "decap",
        "-r",
        fixture.to_str().unwrap(),
        "--route",
        "vni=0-16777215 -> drop",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let o = output(vxdecap().args([
        "decap",
        "-r",
        fixture.to_str().unwrap(),
        "--route",
        "default -> drop",
        "--route",
        "vni=5 -> drop",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("warning: route 2 (vni=5 -> drop) comes after route 1 (default -> drop)"),
        "{}",
        stderr(&o)
    );
    // One queue on lo, two CPUs: the second is unused.
    if std::thread::available_parallelism().map_or(1, usize::from) >= 2 {
        std::fs::write(&config, "interface = \"lo\"\ncpus = \"0,1\"\n").unwrap();
        let o = output(vxdecap().arg("check-config").arg(&config));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("--cpus names 2 CPU(s) for 1 queue(s): CPU(s) 1 unused"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn relay_and_lab_scenario_mistakes_are_named() {
    fails_with(
        &["relay", "-i", "lo", "--to", "10.0.0.1", "--to", "fd00::1"],
        "collectors 10.0.0.1 and fd00::1 differ in IP version",
    );
    fails_with(
        &["relay", "-i", "lo", "--to", "10.0.0.1", "--to", "10.0.0.1"],
        "collector 10.0.0.1 is named twice",
    );
    fails_with(&["relay", "-i", "lo"], "--to <ADDR>");
    // The relay's tunnel ports follow the capture's rules and words.
    fails_with(
        &["relay", "-i", "lo", "--to", "10.0.0.1", "--cloud", "nosuch"],
        "--cloud: unknown cloud \"nosuch\": give one of azure-vtap, azure-gwlb, aws-mirror, aws-gwlb, gcp",
    );
    fails_with(
        &[
            "relay",
            "-i",
            "lo",
            "--to",
            "10.0.0.1",
            "--geneve-port",
            "4789",
        ],
        "--geneve-port:",
    );
    fails_with(
        &["lab", "--scenario", "nosuch"],
        "unknown scenario \"nosuch\": vtap, accelnet, private-link, fanout or ilb",
    );
    fails_with(
        &["lab", "--scenario", "fanout", "--keep"],
        "cannot be used with",
    );
}

#[test]
fn diagnostics_to_a_pipe_carry_no_colour_codes() {
    // stderr is a pipe here, as under systemd or `2> log`: tracing's lines must be plain text.
    let tmp = TempDir::new("cli-ansi");
    let o = output(
        vxdecap()
            .env("VXDECAP_LOG", "debug")
            .arg("decap")
            .arg("-r")
            .arg(fixture("tcpdump/vxlan.pcap"))
            .arg("-w")
            .arg(tmp.path("out.pcap")),
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("DEBUG"), "no diagnostic line to check:\n{err}");
    assert!(
        !err.contains('\x1b'),
        "colour codes in piped stderr:\n{err:?}"
    );
}
