//! Outputs that fail: a full disk (a real tmpfs mounted by the test, so
//! root) and a reader that goes away (`-w - | head`). The summary's count
//! of frames written must be what a reader finds, every other frame must be
//! counted under a reason, and the run must say what failed and exit 1.

mod common;

use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;

use common::*;

/// The total of the summary line `N packets not written`.
fn not_written(summary: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.strip_suffix(" packets not written"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no 'packets not written' line in:\n{summary}"))
}

/// The N of `N packets read from …`.
fn packets_read(summary: &str) -> u64 {
    summary
        .lines()
        .find(|l| l.contains(" packets read from "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no 'packets read' line in:\n{summary}"))
}

/// Every packet read is written or counted under a reason.
fn assert_accounted(summary: &str) {
    assert_eq!(
        packets_read(summary),
        frames_written(summary) + not_written(summary),
        "read = written + not written:\n{summary}"
    );
}

/// Runs `decap -r input extra…`; returns (exit code, stderr).
fn decap(input: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let o = output(vxdecap().args(["decap", "-r"]).arg(input).args(extra));
    (o.status.code(), stderr(&o))
}

fn assert_disk_full(code: Option<i32>, summary: &str, path: &str) {
    assert_eq!(code, Some(1), "{summary}");
    assert!(
        summary.contains(&format!(
            "output error: cannot write {path}: No space left on device"
        )),
        "{summary}"
    );
    assert!(
        reason_count(summary, "output_write_failed") > 0,
        "{summary}"
    );
    assert_accounted(summary);
}

#[test]
fn a_full_disk_counts_only_the_frames_the_file_holds() {
    if !privileged("disk full") {
        return;
    }
    let tmp = TempDir::new("disk-full");
    let input = tmp.path("big.pcap");
    repeated_aws_capture(&input, 30);
    let fs = SmallFs::mount("full", "256k");
    for name in ["o.pcap", "o.pcapng"] {
        let out = fs.path(name);
        let out_name = out.to_str().expect("utf-8");
        let (code, summary) = decap(&input, &["-w", out_name]);
        assert_disk_full(code, &summary, out_name);
        let written = frames_written(&summary);
        assert!(written > 100, "{summary}");
        // capinfos reads the file whole: no half record at its end.
        assert_eq!(capinfos_packets(&out), written, "{name}: {summary}");
        if Path::new(name).extension().is_some_and(|e| e == "pcap") {
            assert_eq!(read_pcap(&out).len() as u64, written, "{summary}");
        }
        std::fs::remove_file(&out).expect("free the space");
    }
}

#[test]
fn a_full_disk_under_rotation_counts_what_the_files_hold() {
    if !privileged("disk full, rotated") {
        return;
    }
    let tmp = TempDir::new("disk-full-rot");
    let input = tmp.path("big.pcap");
    repeated_aws_capture(&input, 30);
    let fs = SmallFs::mount("full-rot", "256k");
    let cases: [(&str, &[&str]); 4] = [
        ("r.pcap", &["-C", "48k"]),
        ("r.pcapng", &["-C", "48k"]),
        // A ring of 3 × 100 KiB on 256 KiB: the disk fills in the third file.
        ("w.pcap", &["-C", "100k", "-W", "3"]),
        ("g-%s.pcap", &["-G", "1", "-W", "5"]),
    ];
    for (name, flags) in cases {
        let pattern = fs.path(name);
        let pattern = pattern.to_str().expect("utf-8");
        let mut args = vec!["-w", pattern];
        args.extend_from_slice(flags);
        let (code, summary) = decap(&input, &args);
        assert_eq!(code, Some(1), "{name}: {summary}");
        assert!(summary.contains("No space left on device"), "{summary}");
        assert_accounted(&summary);
        let mut files: Vec<_> = std::fs::read_dir(&fs.dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}");
        if flags[0] == "-C" {
            assert!(
                files.len() > 2,
                "{name}: rotated before the disk filled: {files:?}"
            );
        }
        let found: u64 = files.iter().map(|f| capinfos_packets(f)).sum();
        assert_eq!(
            found,
            frames_written(&summary),
            "{name} {files:?}: {summary}"
        );
        for f in files {
            std::fs::remove_file(f).expect("free the space");
        }
    }
}

#[test]
fn a_routes_full_disk_is_counted_per_file() {
    if !privileged("disk full, route") {
        return;
    }
    let tmp = TempDir::new("disk-full-route");
    let input = tmp.path("big.pcap");
    repeated_aws_capture(&input, 30);
    let fs = SmallFs::mount("full-route", "256k");
    let out = fs.path("t.pcapng");
    let out_name = out.to_str().expect("utf-8");
    let (code, summary) = decap(
        &input,
        &[
            "--route",
            &format!("vni=5569041 -> {out_name}"),
            "--route",
            "default -> drop",
        ],
    );
    assert_disk_full(code, &summary, out_name);
    let found = capinfos_packets(&out);
    assert_eq!(frames_written(&summary), found, "{summary}");
    let line = format!(
        "  file {out_name}: {found} frames written, {} output_write_failed",
        reason_count(&summary, "output_write_failed")
    );
    assert!(
        summary.lines().any(|l| l == line),
        "{line:?} in:\n{summary}"
    );
}

/// Runs `vxdecap decap -r input extra…` into a pipe whose reader takes
/// `take` bytes and goes away; returns (exit code, stderr, bytes read).
fn decap_into_closed_pipe(
    input: &Path,
    extra: &[&str],
    take: usize,
) -> (Option<i32>, String, usize) {
    let mut child = vxdecap()
        .args(["decap", "-r"])
        .arg(input)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vxdecap");
    let mut pipe = child.stdout.take().expect("stdout");
    let mut got = vec![0u8; take];
    pipe.read_exact(&mut got).expect("the first bytes");
    drop(pipe); // `head -c` exits
    let o = child.wait_with_output().expect("wait");
    (o.status.code(), stderr(&o), got.len())
}

#[test]
fn a_reader_that_goes_away_is_an_error_and_what_it_missed_is_counted() {
    let tmp = TempDir::new("epipe");
    let input = tmp.path("big.pcap");
    repeated_aws_capture(&input, 30);
    for (what, extra) in [
        ("pcap", &["-w", "-"][..]),
        ("pcapng", &["-w", "-", "--format", "pcapng"]),
        ("text", &[]),
    ] {
        let (code, summary, _) = decap_into_closed_pipe(&input, extra, 100);
        assert_eq!(code, Some(1), "{what}: {summary}");
        // One line says what failed (tracing warnings such as "cannot pin" aside).
        let errors: Vec<&str> = summary
            .lines()
            .filter(|l| l.starts_with("output error") || l.contains("Broken pipe"))
            .collect();
        assert_eq!(errors.len(), 1, "{what}: one error line:\n{summary}");
        assert!(
            errors[0].contains("cannot write stdout: Broken pipe"),
            "{what}: {summary}"
        );
        assert!(
            reason_count(&summary, "output_write_failed") > 0,
            "{what}: {summary}"
        );
        // The pipe took at most its buffer: far fewer frames than were read.
        assert!(frames_written(&summary) < 3000, "{what}: {summary}");
        assert_accounted(&summary);
    }
}

#[test]
fn stdout_redirected_to_a_full_disk_is_cut_back_to_whole_records() {
    if !privileged("disk full, stdout") {
        return;
    }
    let tmp = TempDir::new("disk-full-stdout");
    let input = tmp.path("big.pcap");
    repeated_aws_capture(&input, 30);
    let fs = SmallFs::mount("full-stdout", "256k");
    let out = fs.path("o.pcap");
    let o = output(
        vxdecap()
            .args(["decap", "-r"])
            .arg(&input)
            .args(["-w", "-"])
            .stdout(std::fs::File::create(&out).expect("create")),
    );
    let summary = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{summary}");
    assert!(
        summary.contains("cannot write stdout: No space left on device"),
        "{summary}"
    );
    assert_eq!(
        capinfos_packets(&out),
        frames_written(&summary),
        "{summary}"
    );
    assert_accounted(&summary);
}
