//! `-w` outputs end to end: pcapng with one interface per tunnel, the format
//! choice, and rotation by size (-C, -W) and by time (-G), each file checked
//! with tshark or capinfos. Inputs are built with the wire crate's
//! VXLAN builder, so they need no root and no fixture.

mod common;

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use vxdecap::wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp, VxlanFrameBuilder};

/// A VXLAN tunnel as the mirroring side sends it.
#[derive(Clone, Copy, Debug)]
struct Tunnel {
    vni: u32,
    src: IpAddr,
    dst: IpAddr,
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn tunnels() -> Vec<Tunnel> {
    let collector = v4(10, 1, 1, 4);
    vec![
        Tunnel {
            vni: 27,
            src: v4(10, 0, 2, 4),
            dst: collector,
        },
        Tunnel {
            vni: 27,
            src: v4(10, 0, 2, 5),
            dst: collector,
        },
        Tunnel {
            vni: 28,
            src: v4(10, 0, 2, 4),
            dst: collector,
        },
        Tunnel {
            vni: 5_569_041,
            src: v4(172, 31, 0, 238),
            dst: v4(172, 31, 17, 188),
        },
        Tunnel {
            vni: 100,
            src: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            dst: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        },
    ]
}

/// Outer frame `n` on `tunnel`: its inner UDP source port is `n`, so frames
/// can be followed across files; the outer UDP source port is `40000 + n`.
fn outer_frame(tunnel: &Tunnel, n: u16, payload_len: usize) -> Vec<u8> {
    let inner = inner_ipv4_udp_frame(&InnerIpv4Udp {
        src_ip: Ipv4Addr::new(192, 168, 0, 1),
        dst_ip: Ipv4Addr::new(192, 168, 0, 2),
        src_port: n,
        dst_port: 53,
        payload_len,
        payload_seed: n as u8,
        ..Default::default()
    })
    .expect("inner frame fits");
    VxlanFrameBuilder::new()
        .outer_src_ip(tunnel.src)
        .outer_dst_ip(tunnel.dst)
        .udp_src_port(40_000 + n)
        .vni(tunnel.vni)
        .inner(&inner)
        .build()
        .expect("consistent outer frame")
}

/// A microsecond pcap file holding `frames`, one per millisecond.
fn pcap_bytes(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = pcap_header();
    for (i, frame) in frames.iter().enumerate() {
        out.extend_from_slice(&pcap_record(frame, i as u32));
    }
    out
}

fn pcap_header() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    out
}

fn pcap_record(frame: &[u8], ms: u32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&1_700_000_000u32.to_le_bytes());
    out.extend_from_slice(&(ms * 1000).to_le_bytes());
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(frame);
    out
}

/// `count` frames cycling over the tunnels, written to `name` in `tmp`.
fn write_input(tmp: &TempDir, name: &str, count: u16, payload_len: usize) -> std::path::PathBuf {
    let tunnels = tunnels();
    let frames: Vec<Vec<u8>> = (0..count)
        .map(|n| outer_frame(&tunnels[n as usize % tunnels.len()], n, payload_len))
        .collect();
    let path = tmp.path(name);
    std::fs::write(&path, pcap_bytes(&frames)).expect("write the input pcap");
    path
}

/// Runs `vxdecap decap -r input args…`; returns the summary (stderr).
fn decap(input: &Path, args: &[&str]) -> String {
    let o = output(vxdecap().arg("decap").arg("-r").arg(input).args(args));
    let summary = stderr(&o);
    assert!(o.status.success(), "decap {args:?} failed:\n{summary}");
    summary
}

/// tshark's tab-separated `fields` for each frame of `file`.
fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(["-T", "fields"]);
    for field in fields {
        cmd.args(["-e", field]);
    }
    let o = output(&mut cmd);
    assert!(
        o.status.success(),
        "tshark cannot read {}: {}",
        file.display(),
        stderr(&o)
    );
    stdout(&o)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Inner UDP source ports (our frame numbers) of `file`, in order.
fn frame_numbers(file: &Path) -> Vec<u16> {
    tshark_fields(file, &["udp.srcport"])
        .iter()
        .map(|f| f[0].parse().expect("a UDP source port"))
        .collect()
}

/// Packets in `file` as capinfos counts them (it also checks the file is whole).
fn capinfos_count(file: &Path) -> u64 {
    let o = output(Command::new("capinfos").args(["-M", "-c"]).arg(file));
    assert!(
        o.status.success(),
        "capinfos cannot read {}: {}",
        file.display(),
        stderr(&o)
    );
    let text = stdout(&o);
    text.lines()
        .find_map(|l| l.strip_prefix("Number of packets:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no packet count from capinfos:\n{text}"))
}

/// Names of the files in `tmp` starting with `prefix`, sorted.
fn files_starting(tmp: &TempDir, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&tmp.0)
        .expect("read the temp dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

#[test]
fn pcapng_gives_each_tunnel_its_interface_as_tshark_reads_it() {
    let tmp = TempDir::new("outputs-pcapng");
    let input = write_input(&tmp, "in.pcap", 40, 60);
    let out = tmp.path("out.pcapng");
    let summary = decap(&input, &["-w", out.to_str().unwrap()]);
    assert_eq!(frames_written(&summary), 40, "{summary}");

    let tunnels = tunnels();
    let rows = tshark_fields(
        &out,
        &[
            "frame.interface_id",
            "frame.interface_name",
            "frame.interface_description",
            "frame.comment",
            "udp.srcport",
        ],
    );
    assert_eq!(rows.len(), 40);
    for (n, row) in rows.iter().enumerate() {
        let t = &tunnels[n % tunnels.len()];
        let expected_id = (n % tunnels.len()).to_string();
        assert_eq!(
            row[0], expected_id,
            "frame {n}: interfaces in order of first sight"
        );
        assert_eq!(
            row[1],
            format!("vxlan:vni={},src={}", t.vni, t.src),
            "frame {n}"
        );
        assert_eq!(
            row[2],
            format!("VXLAN VNI {} from {} to {}", t.vni, t.src, t.dst),
            "frame {n}"
        );
        assert_eq!(
            row[3],
            format!(
                "vni={} src={} dst={} sport={}",
                t.vni,
                t.src,
                t.dst,
                40_000 + n
            ),
            "frame {n}"
        );
        assert_eq!(row[4], n.to_string(), "frame {n}: order kept");
    }

    // capinfos agrees: five interfaces, nanosecond resolution.
    let o = output(Command::new("capinfos").arg(&out));
    let info = stdout(&o);
    assert!(info.contains("Number of interfaces in file: 5"), "{info}");
    assert!(info.contains("Time precision = nanoseconds (9)"), "{info}");

    // Same frames, bytes and timestamps as the pcap output of the same input.
    let pcap = tmp.path("out.pcap");
    decap(&input, &["-w", pcap.to_str().unwrap()]);
    let records = read_pcap(&pcap);
    let file = std::fs::File::open(&out).expect("open the pcapng");
    let mut reader = pcap_file::pcapng::PcapNgReader::new(file).expect("section header");
    let mut packets = Vec::new();
    while let Some(block) = reader.next_block() {
        if let pcap_file::pcapng::Block::EnhancedPacket(p) = block.expect("valid block") {
            // if_tsresol 9: pcap-file passes the raw count on, which is then nanoseconds.
            packets.push((
                p.timestamp.as_nanos() as u64,
                p.original_len,
                p.data.into_owned(),
            ));
        }
    }
    let expected: Vec<(u64, u32, Vec<u8>)> = records
        .into_iter()
        .map(|r| (r.timestamp_ns, r.orig_len, r.data))
        .collect();
    assert_eq!(packets, expected);
}

#[test]
fn format_follows_the_name_unless_given() {
    let tmp = TempDir::new("outputs-format");
    let input = write_input(&tmp, "in.pcap", 5, 60);
    let magic = |path: &Path| std::fs::read(path).expect("read output")[..4].to_vec();

    let forced = tmp.path("forced.pcapng");
    decap(
        &input,
        &["--format", "pcap", "-w", forced.to_str().unwrap()],
    );
    assert_eq!(magic(&forced), [0x4d, 0x3c, 0xb2, 0xa1], "nanosecond pcap");

    let plain = tmp.path("plain.pcap");
    decap(&input, &["-w", plain.to_str().unwrap()]);
    assert_eq!(magic(&plain), [0x4d, 0x3c, 0xb2, 0xa1]);

    let o = output(
        vxdecap()
            .args(["decap", "-r"])
            .arg(&input)
            .args(["-w", "-"]),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        o.stdout[..4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        "stdout defaults to pcap"
    );

    let o = output(
        vxdecap()
            .args(["decap", "-r"])
            .arg(&input)
            .args(["--format", "pcapng", "-w", "-"]),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        o.stdout[..4],
        [0x0a, 0x0d, 0x0d, 0x0a],
        "pcapng section header"
    );
}

/// Rotates 300 frames of about 200 bytes into 8 KiB files named like tcpdump's.
fn check_size_rotation(name: &str) {
    let tmp = TempDir::new(&format!("outputs-size-{name}"));
    let input = write_input(&tmp, "in.pcap", 300, 120);
    let out = tmp.path(name);
    let summary = decap(&input, &["-C", "8k", "-w", out.to_str().unwrap()]);
    assert_eq!(frames_written(&summary), 300, "{summary}");

    let files = files_starting(&tmp, name);
    assert!(files.len() >= 5, "expected several files: {files:?}");
    let mut numbers = Vec::new();
    let mut total = 0;
    // tcpdump's order: name, name1, name2, …
    for i in 0..files.len() {
        let file = if i == 0 {
            name.to_owned()
        } else {
            format!("{name}{i}")
        };
        let path = tmp.path(&file);
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{file} missing from {files:?}: {e}"))
            .len();
        assert!(size <= 8192, "{file} is {size} bytes, over -C 8k");
        let count = capinfos_count(&path);
        assert!(count > 0, "{file} is empty");
        total += count;
        numbers.extend(frame_numbers(&path));
    }
    assert_eq!(total, 300, "capinfos counts add up to the frames written");
    assert_eq!(
        numbers,
        (0..300).collect::<Vec<u16>>(),
        "each frame once, in order"
    );
}

#[test]
fn size_rotation_gives_complete_pcapng_files_whose_counts_add_up() {
    check_size_rotation("size.pcapng");
    // Every pcapng file declares the interfaces its frames use.
    let tmp = TempDir::new("outputs-size-ng-idb");
    let input = write_input(&tmp, "in.pcap", 300, 120);
    let out = tmp.path("r.pcapng");
    decap(&input, &["-C", "8k", "-w", out.to_str().unwrap()]);
    let last = files_starting(&tmp, "r.pcapng").len() - 1;
    let rows = tshark_fields(
        &tmp.path(&format!("r.pcapng{last}")),
        &["frame.interface_name"],
    );
    assert!(
        rows.iter().all(|r| r[0].starts_with("vxlan:vni=")),
        "{rows:?}"
    );
}

#[test]
fn size_rotation_gives_complete_pcap_files_whose_counts_add_up() {
    check_size_rotation("size.pcap");
}

#[test]
fn a_w_ring_keeps_exactly_w_files_with_the_newest_frames() {
    let tmp = TempDir::new("outputs-ring");
    let input = write_input(&tmp, "in.pcap", 300, 120);
    let out = tmp.path("ring.pcapng");
    decap(
        &input,
        &["-C", "8k", "-W", "3", "-w", out.to_str().unwrap()],
    );
    let files = files_starting(&tmp, "ring.pcapng");
    assert_eq!(files, ["ring.pcapng0", "ring.pcapng1", "ring.pcapng2"]);
    let mut numbers: Vec<u16> = files
        .iter()
        .flat_map(|f| {
            let path = tmp.path(f);
            assert!(capinfos_count(&path) > 0, "{f} is empty");
            frame_numbers(&path)
        })
        .collect();
    numbers.sort_unstable();
    // The three files hold the last frames, without gap or repeat.
    let first = numbers[0];
    assert_eq!(numbers, (first..300).collect::<Vec<u16>>());
    assert!(first > 0, "older frames were overwritten");
}

#[test]
fn time_rotation_closes_files_while_the_input_is_quiet() {
    let tmp = TempDir::new("outputs-time");
    let fifo = tmp.path("slow.pcap");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let pattern = tmp.path("t-%s.pcapng");
    let unix_secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs()
    };
    let started = unix_secs();
    let child = vxdecap()
        .args(["decap", "-r"])
        .arg(&fifo)
        .args(["-G", "1", "-w", pattern.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start vxdecap decap");

    // 300 frames (several analyzer batches), a 2.5 s pause (the reader
    // blocks, no frame arrives), 100 more.
    let tunnels = tunnels();
    let frame = |n: u16| outer_frame(&tunnels[n as usize % tunnels.len()], n, 60);
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the fifo");
    let mut first = pcap_header();
    for n in 0..300 {
        first.extend_from_slice(&pcap_record(&frame(n), u32::from(n)));
    }
    writer.write_all(&first).expect("write the first half");
    writer.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(2500));
    let mut second = Vec::new();
    for n in 300..400 {
        second.extend_from_slice(&pcap_record(&frame(n), u32::from(n)));
    }
    writer.write_all(&second).expect("write the second half");
    drop(writer);
    let o = child.wait_with_output().expect("wait for vxdecap");
    let summary = stderr(&o);
    assert!(o.status.success(), "{summary}");
    assert_eq!(frames_written(&summary), 400, "{summary}");
    let ended = unix_secs();

    // Files are named by the second they were opened (UTC epoch seconds here).
    let mut files: Vec<(u64, String)> = files_starting(&tmp, "t-")
        .into_iter()
        .map(|f| {
            let secs = f
                .strip_prefix("t-")
                .and_then(|s| s.strip_suffix(".pcapng"))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{f} does not match t-%s.pcapng"));
            (secs, f)
        })
        .collect();
    files.sort();
    // Over about 2.5 s with -G 1: at least two rotations. Frames come in
    // two bursts, and the clock is read every 64 frames under load, so a
    // third file shows a rotation made while no frame came.
    assert!(files.len() >= 3, "{files:?}");
    for pair in files.windows(2) {
        assert!(
            pair[1].0 > pair[0].0,
            "one file per second at most: {files:?}"
        );
    }
    for (secs, f) in &files {
        assert!(
            (started..=ended).contains(secs),
            "{f}: not opened during the run ({started}..={ended})"
        );
    }
    let mut numbers = Vec::new();
    let mut total = 0;
    for (_, f) in &files {
        let path = tmp.path(f);
        total += capinfos_count(&path);
        numbers.extend(frame_numbers(&path));
    }
    assert_eq!(total, 400, "{files:?}");
    assert_eq!(numbers, (0..400).collect::<Vec<u16>>(), "{files:?}");
    let first_file = frame_numbers(&tmp.path(&files[0].1));
    assert!(
        first_file.first() == Some(&0) && first_file.len() < 300,
        "the first file has frames from before the pause only: {first_file:?}"
    );
}

#[test]
fn rotation_flags_that_cannot_work_are_refused() {
    let tmp = TempDir::new("outputs-bad");
    let input = write_input(&tmp, "in.pcap", 1, 60);
    let fails_with = |args: &[&str], needle: &str| {
        let o = output(vxdecap().arg("decap").arg("-r").arg(&input).args(args));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?} should exit 2:\n{err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in:\n{err}"
        );
    };
    let out = tmp.path("x.pcap");
    let out = out.to_str().unwrap();
    fails_with(&["-W", "3", "-w", out], "add -C (size) or -G (time)");
    fails_with(&["-C", "1", "-w", "-"], "stdout (-w -) cannot be rotated");
    fails_with(&["-G", "60", "-w", "cap-%Q"], "%Q, which is not supported");
    fails_with(&["-C", "0", "-w", out], "not a file size");
    fails_with(
        &["-C", "10", "-w", "/nonexistent-dir/x.pcap"],
        "cannot write /nonexistent-dir/x.pcap",
    );
    fails_with(&["--format", "pcapng"], "-w");
    assert!(files_starting(&tmp, "x.pcap").is_empty(), "nothing written");
}
