//! vxdecap as a systemd service (`packaging/vxdecap@.service`). systemd is
//! not PID 1 on the machines the tests run on, so the unit cannot be
//! started; instead:
//! - `systemd-analyze verify` and `security --offline` judge the unit file,
//!   and the exposure score is the README's;
//! - a capture runs as the unit would run it: a non-root user holding
//!   exactly the unit's ambient capabilities and bounding set, no new
//!   privileges, its memlock limit (read from the unit file, so they cannot
//!   drift), under `strace`: every system call it makes must be one the
//!   unit's `SystemCallFilter` allows;
//! - `Type=notify`: a fake `$NOTIFY_SOCKET` gets `READY=1` once frames are
//!   captured, and `STOPPING=1`;
//! - `ExecReload` (SIGHUP) never ends a capture.
//!
//! Everything but the unit file checks needs root (network namespaces).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests say what they measured"
)]

#[path = "common/collector.rs"]
mod collector;
mod common;

use std::collections::BTreeSet;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use collector::{ChildGuard, Collector, WatchedChild};
use common::*;

/// The unit file, from the source tree.
fn unit_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../packaging/vxdecap@.service")
}

/// The values of `key` in the unit's `[Service]` section, in order (a key
/// may be given several times).
fn service_values(key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(unit_path()).expect("read the unit file");
    let mut section = "";
    let mut values = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    values.push(v.trim().to_owned());
                }
            }
        }
    }
    values
}

/// The one value of `key`.
fn service_value(key: &str) -> String {
    let values = service_values(key);
    assert_eq!(values.len(), 1, "{key}= once in the unit: {values:?}");
    values[0].clone()
}

/// The unit's ambient capabilities as setpriv names them (`+bpf,+net_admin…`).
fn setpriv_caps(list: &str) -> String {
    list.split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(",")
}

/// A copy of the unit as the instance `vxdecap@eth1.service`, its binary
/// the one built for these tests, in a temporary directory.
fn unit_instance(tmp: &TempDir) -> PathBuf {
    let text = std::fs::read_to_string(unit_path()).expect("read the unit file");
    let path = tmp.path("vxdecap@eth1.service");
    std::fs::write(&path, text.replace("/usr/bin/vxdecap", vxdecap_path())).expect("write unit");
    path
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let tmp = TempDir::new("sv");
    let unit = unit_instance(&tmp);
    // --man=no: the man pages exist once the package is installed (CI verifies the installed
    // unit with them, see .ci/run).
    let o = output(
        Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit),
    );
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "systemd-analyze verify {}:\n{}{}",
        unit.display(),
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn the_units_exposure_is_the_readmes_and_stays_low() {
    let tmp = TempDir::new("ss");
    let unit = unit_instance(&tmp);
    let o = output(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit),
    );
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    let score = text
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for vxdecap@eth1.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"))
        .to_owned();
    let value: f64 = score.parse().expect("a number");
    assert!(value <= 2.1, "the unit's exposure rose to {value}:\n{text}");
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("read the README");
    assert!(
        readme.contains(&format!("exposure level **{score}**")),
        "the README states another score than systemd-analyze's {score}"
    );
}

/// The system calls `SystemCallFilter=` allows, its groups expanded by
/// `systemd-analyze syscall-filter`.
fn allowed_syscalls(filter: &str) -> BTreeSet<String> {
    fn expand(item: &str, out: &mut BTreeSet<String>) {
        if !item.starts_with('@') {
            out.insert(item.to_owned());
            return;
        }
        let o = output(Command::new("systemd-analyze").args(["syscall-filter", item]));
        assert!(o.status.success(), "syscall-filter {item}: {}", stderr(&o));
        for line in stdout(&o).lines().skip(1).map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                expand(line, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for item in filter.split_whitespace() {
        assert!(
            !item.starts_with('~'),
            "an allow list is expected: {filter}"
        );
        expand(item, &mut out);
    }
    out
}

/// The system calls in an `strace -f` log made after `program` was executed.
fn traced_syscalls(log: &str, program: &str) -> BTreeSet<String> {
    let exec = format!("execve(\"{program}\"");
    let start = log
        .lines()
        .position(|l| l.contains(&exec))
        .unwrap_or_else(|| panic!("no {exec} in the trace"));
    log.lines()
        .skip(start + 1)
        .filter_map(|line| {
            let rest = line.split_once(' ')?.1.trim_start();
            if rest.starts_with('<') || rest.starts_with("+++") || rest.starts_with("---") {
                return None;
            }
            let name = rest.split('(').next()?;
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| name.to_owned())
        })
        .collect()
}

/// The unit's `ExecStart` for the instance `eth1`, as arguments of the
/// binary: the packaged configuration in place of the installed one.
fn exec_start_args() -> Vec<String> {
    let line = service_value("ExecStart");
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("/usr/bin/vxdecap"), "{line}");
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../packaging/vxdecap.toml");
    words
        .map(|w| match w {
            "/etc/vxdecap/vxdecap.toml" => config.display().to_string(),
            "%i" => "eth1".to_owned(),
            other => other.to_owned(),
        })
        .collect()
}

/// A capture the way the unit runs it: `nobody` (the unit's `vxdecap`
/// user need not exist here) with the unit's ambient capabilities,
/// bounding set and no new privileges, and a memlock limit far below the
/// UMEM's, in `cwd` (its `WorkingDirectory`); `args` follow the binary;
/// under `strace` when `trace` is given.
fn start_as_the_unit(
    collector: &Collector,
    args: &[String],
    cwd: &Path,
    trace: Option<&Path>,
) -> WatchedChild {
    let ambient = setpriv_caps(&service_value("AmbientCapabilities"));
    let bounding = setpriv_caps(&service_value("CapabilityBoundingSet"));
    assert_eq!(service_value("NoNewPrivileges"), "yes");
    // The unit lifts the memlock limit, but raising it needs CAP_SYS_RESOURCE, which the test
    // machines may lack; a 64 KiB limit is stricter, and CAP_IPC_LOCK has to carry the UMEM
    // (16 MiB per queue) past it.
    assert_eq!(service_value("LimitMEMLOCK"), "infinity");
    let memlock = "65536";
    let mut argv: Vec<String> = Vec::new();
    if let Some(log) = trace {
        argv.extend(["strace", "-f", "-qq", "-o"].map(String::from));
        argv.push(log.display().to_string());
        argv.push("--".into());
    }
    argv.extend(["prlimit".to_owned(), format!("--memlock={memlock}")]);
    argv.extend(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--no-new-privs",
        ]
        .map(String::from),
    );
    argv.push(format!("--inh-caps=-all,{ambient}"));
    argv.push(format!("--ambient-caps=-all,{ambient}"));
    argv.push(format!("--bounding-set=-all,{bounding}"));
    argv.push(vxdecap_path().to_owned());
    argv.extend(args.iter().cloned());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut cmd = collector.ns.command(argv[0], &argv[1..]);
    cmd.current_dir(cwd);
    WatchedChild::spawn(cmd, &["listening on"], Duration::from_secs(60), None)
        .unwrap_or_else(|e| panic!("the capture did not start as the unit runs it: {e:#}"))
}

/// Kills the traced capture on drop: killing `strace` (what the watched
/// child is) on a failure would leave its tracee running, holding the
/// namespace and its XDP program.
struct KillTracee(u32);

impl Drop for KillTracee {
    fn drop(&mut self) {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.0)).unwrap_or_default();
        if comm.trim() == "vxdecap" {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.0 as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The `Cap*:` mask and `Uid:` line of a process.
fn proc_status(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
        .to_owned()
}

/// The capability mask (CapEff format) of a list such as `CAP_BPF CAP_NET_RAW`.
fn cap_mask(list: &str) -> u64 {
    list.split_whitespace()
        .map(|c| {
            let cap: caps::Capability = c.parse().expect("a capability name");
            1u64 << cap.index()
        })
        .fold(0, |a, b| a | b)
}

#[test]
fn a_capture_runs_with_only_the_units_user_capabilities_and_system_calls() {
    if !privileged("the unit's sandbox") {
        return;
    }
    let collector = Collector::new("su", 1);
    let tmp = TempDir::new("su");
    // nobody writes the outputs, as the unit's user writes /var/lib/vxdecap.
    let out = tmp.path("out");
    std::fs::create_dir(&out).unwrap();
    nix::unistd::chown(&out, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let allow = tmp.path("allow.txt");
    std::fs::write(&allow, "source 10.79.0.0/24\nvni 27\n").unwrap();
    let trace = tmp.path("strace.log");
    // The unit's command line with the packaged configuration (a ring of
    // pcapng files in the working directory, metrics on 127.0.0.1:9419).
    let mut args = exec_start_args();
    args.extend(["--allow-file".to_owned(), allow.display().to_string()]);
    let mut capture = start_as_the_unit(&collector, &args, &out, Some(&trace));
    // strace runs the capture as its child: find the capture's own pid.
    let pid = (0..100)
        .find_map(|_| {
            let found = std::fs::read_to_string(format!(
                "/proc/{}/task/{}/children",
                capture.id(),
                capture.id()
            ))
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse::<u32>().ok());
            if found.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            found
        })
        .expect("the capture under strace");
    let _tracee = KillTracee(pid);
    assert_eq!(proc_status(pid, "Uid:"), "65534\t65534\t65534\t65534");
    let want = cap_mask(&service_value("AmbientCapabilities"));
    for key in ["CapEff:", "CapPrm:", "CapAmb:"] {
        let mask = u64::from_str_radix(&proc_status(pid, key), 16).unwrap();
        assert_eq!(
            mask, want,
            "{key} {mask:x}: exactly the unit's capabilities"
        );
    }
    let bounding = u64::from_str_radix(&proc_status(pid, "CapBnd:"), 16).unwrap();
    assert_eq!(bounding, cap_mask(&service_value("CapabilityBoundingSet")));
    assert_eq!(proc_status(pid, "NoNewPrivs:"), "1");

    collector.send(27, 200, &tmp);
    collector.send(28, 50, &tmp); // not allowed: dropped in XDP
                                  // A scrape, so the metrics server's calls are traced too.
    let scrape = collector
        .ns
        .spawn_in(|| {
            use std::io::{Read as _, Write as _};
            let mut s = std::net::TcpStream::connect("127.0.0.1:9419")?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })
        .expect("enter the collector netns")
        .join()
        .expect("scrape thread")
        .expect("scrape");
    assert!(scrape.contains("vxdecap_received_frames_total"), "{scrape}");
    // SIGHUP re-reads the allow file as the user (ExecReload).
    std::fs::write(&allow, "source 10.79.0.0/24\nvni 27,28\n").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    collector.send(28, 100, &tmp);
    // Host servicing: the interface goes away and comes back; the program
    // is loaded again with only these capabilities (CAP_PERFMON among them).
    collector.unplug();
    std::thread::sleep(Duration::from_millis(500));
    collector.plug();
    let back = Instant::now();
    while back.elapsed() < Duration::from_secs(10) && !collector.xdp_attached() {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(collector.xdp_attached(), "the program is attached again");
    std::thread::sleep(Duration::from_millis(500));
    collector.send(27, 100, &tmp);
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let outcome = capture
        .stop(nix::sys::signal::Signal::SIGCONT)
        .expect("wait for the capture");
    let summary = outcome.stderr;
    assert!(outcome.status.success(), "{summary}");
    assert!(summary.contains("SIGHUP: allowlist reloaded"), "{summary}");
    assert!(
        summary.contains("went away and came back 1 time(s)"),
        "{summary}"
    );
    assert_eq!(frames_written(&summary), 400, "{summary}");
    assert!(summary.contains("drop_vni_not_allowed 50"), "{summary}");
    // The packaged configuration's output, in the working directory.
    assert_eq!(capinfos_packets(&out.join("inner.pcapng0")), 400);

    let log = std::fs::read_to_string(&trace).expect("read the trace");
    let made = traced_syscalls(&log, vxdecap_path());
    assert!(
        made.contains("bpf") && made.contains("sched_setaffinity"),
        "{made:?}"
    );
    let allowed = allowed_syscalls(&service_value("SystemCallFilter"));
    let refused: Vec<&String> = made.difference(&allowed).collect();
    assert!(
        refused.is_empty(),
        "system calls the unit's SystemCallFilter would refuse (EPERM): {refused:?}"
    );
    eprintln!(
        "{} distinct system calls, all allowed by the unit",
        made.len()
    );
}

#[test]
fn ready_is_notified_once_frames_are_captured_and_stopping_at_the_end() {
    if !privileged("sd_notify readiness") {
        return;
    }
    let collector = Collector::new("sn", 2);
    let tmp = TempDir::new("sn");
    let socket_path = tmp.path("notify");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the fake notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let pcap = tmp.path("inner.pcap");
    let mut cmd = collector.ns.command(
        vxdecap_path(),
        &["capture", "-i", "eth1", "-w", pcap.to_str().unwrap()],
    );
    cmd.env("NOTIFY_SOCKET", &socket_path);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = ChildGuard::new(cmd.spawn().expect("start the capture"));
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification within 30 s");
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    assert!(
        first.contains("STATUS=capturing on eth1, 2 rx queue(s)"),
        "{first:?}"
    );
    // Ready means capturing: frames sent at once are all written.
    assert!(collector.xdp_attached());
    collector.send(27, 300, &tmp);
    std::thread::sleep(Duration::from_millis(300));
    child.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    let n = socket.recv(&mut buf).expect("STOPPING=1");
    let last = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(last.lines().any(|l| l == "STOPPING=1"), "{last:?}");
    let out = child.wait_with_output().expect("the capture ends");
    let summary = stderr(&out);
    assert!(out.status.success(), "{summary}");
    assert_eq!(frames_written(&summary), 300, "{summary}");
}

#[test]
fn a_sighup_without_an_allow_file_is_logged_and_the_capture_goes_on() {
    if !privileged("SIGHUP without an allow file") {
        return;
    }
    let collector = Collector::new("sh", 1);
    let tmp = TempDir::new("sh");
    let capture = RunningCapture::start(&collector.ns, &["-i", "eth1", "-q"]);
    collector.send(27, 50, &tmp);
    std::thread::sleep(Duration::from_millis(200));
    // What `systemctl reload` (ExecReload=kill -HUP) does.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(capture.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        std::fs::read_to_string(format!("/proc/{}/stat", capture.pid()))
            .is_ok_and(|s| !s.contains(") Z ")),
        "the capture survives SIGHUP"
    );
    collector.send(27, 50, &tmp);
    std::thread::sleep(Duration::from_millis(200));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(
        summary.contains("SIGHUP: no --allow-file, nothing to reload"),
        "{summary}"
    );
    assert_eq!(frames_written(&summary), 100, "{summary}");
}

#[test]
fn dash_z_keeps_what_a_capture_needs_to_reattach_after_hot_plug() {
    if !privileged("-Z and hot-plug") {
        return;
    }
    let collector = Collector::new("sz", 1);
    let tmp = TempDir::new("sz");
    let capture = RunningCapture::start(&collector.ns, &["-i", "eth1", "-q", "-Z", "nobody"]);
    collector.send(27, 100, &tmp);
    std::thread::sleep(Duration::from_millis(200));
    collector.unplug();
    std::thread::sleep(Duration::from_millis(500));
    collector.plug();
    let back = Instant::now();
    while back.elapsed() < Duration::from_secs(10) && !collector.xdp_attached() {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        collector.xdp_attached(),
        "the program is loaded and attached again as nobody"
    );
    std::thread::sleep(Duration::from_millis(500));
    collector.send(27, 100, &tmp);
    std::thread::sleep(Duration::from_millis(300));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert!(summary.contains("running as nobody"), "{summary}");
    assert!(
        summary.contains("went away and came back 1 time(s)"),
        "{summary}"
    );
    assert_eq!(frames_written(&summary), 200, "{summary}");
}
