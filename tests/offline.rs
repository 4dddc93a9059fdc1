//! Offline decapsulation of the shared captures, checked against what
//! tcpdump and tshark decode and against the input bytes.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// Runs `vxdecap decap -r input -w out.pcap extra…`; returns (records, summary).
fn decap(input: &str, extra: &[&str], tmp: &TempDir) -> (Vec<Record>, String) {
    let out = tmp.path("inner.pcap");
    let o = output(
        vxdecap()
            .args(["decap", "-r"])
            .arg(fixture(input))
            .arg("-w")
            .arg(&out)
            .args(extra),
    );
    let summary = stderr(&o);
    assert!(o.status.success(), "decap {input} failed:\n{summary}");
    (read_pcap(&out), summary)
}

/// The inner frame of an untagged IPv4 VXLAN frame with a 20-byte IP header.
fn inner_of(outer: &[u8]) -> &[u8] {
    &outer[14 + 20 + 8 + 8..]
}

#[test]
fn tcpdump_vxlan_capture_gives_the_ten_inner_frames_tcpdump_decodes() {
    let tmp = TempDir::new("tcpdump-vxlan");
    let (records, summary) = decap("tcpdump/vxlan.pcap", &[], &tmp);
    assert_eq!(records.len(), 10, "{summary}");
    assert_eq!(frames_written(&summary), 10);

    // Bytes and timestamps: exactly the input's inner frames, at the input's times.
    let input = read_pcap(&fixture("tcpdump/vxlan.pcap"));
    for (got, outer) in records.iter().zip(&input) {
        assert_eq!(got.data, inner_of(&outer.data));
        assert_eq!(got.timestamp_ns, outer.timestamp_ns);
        assert_eq!(got.orig_len as usize, got.data.len());
    }

    // tcpdump reads our file and decodes each frame as tcpdump's own test expects.
    let expected_text = std::fs::read_to_string(fixture("tcpdump/vxlan.out")).expect("vxlan.out");
    let mut expected = Vec::new();
    let mut stamp = String::new();
    for line in expected_text.lines() {
        if line.starts_with(' ') {
            let fields: Vec<&str> = line.split_whitespace().collect();
            stamp = format!("{} {}", fields[1], fields[2]);
        } else {
            expected.push(format!("{stamp} {line}"));
        }
    }
    let o = output(
        Command::new("tcpdump")
            .env("TZ", "UTC")
            .args(["-e", "-n", "-tttt", "-r"])
            .arg(tmp.path("inner.pcap")),
    );
    assert!(
        o.status.success(),
        "tcpdump could not read our pcap: {}",
        stderr(&o)
    );
    let got: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(got, expected);
}

#[test]
fn legacy_port_8472_is_decoded_only_when_configured() {
    let tmp = TempDir::new("port8472");
    let (records, summary) = decap("tcpdump/vxlan_port_8472.pcap", &[], &tmp);
    assert!(records.is_empty());
    assert_eq!(
        reason_count(&summary, "port_not_configured"),
        10,
        "{summary}"
    );

    let (records, summary) = decap("tcpdump/vxlan_port_8472.pcap", &["--port", "8472"], &tmp);
    assert_eq!(records.len(), 10, "{summary}");
    let reference = read_pcap(&fixture("tcpdump/vxlan.pcap"));
    for (got, outer) in records.iter().zip(&reference) {
        assert_eq!(
            got.data,
            inner_of(&outer.data),
            "same inner frames as on port 4789"
        );
    }
}

#[test]
fn aws_traffic_mirroring_capture_decapsulates_all_hundred_frames() {
    let tmp = TempDir::new("aws");
    let (records, summary) = decap(
        "suricata-verify/aws-traffic-mirroring-vxlan.pcap",
        &[],
        &tmp,
    );
    assert_eq!(records.len(), 100, "{summary}");
    let input = read_pcap(&fixture("suricata-verify/aws-traffic-mirroring-vxlan.pcap"));
    for (got, outer) in records.iter().zip(&input) {
        assert_eq!(got.data, inner_of(&outer.data));
        assert_eq!(got.timestamp_ns, outer.timestamp_ns);
    }
    // tshark sees the inner SSH, DNS and NTP conversations directly.
    let o = output(
        Command::new("tshark")
            .args(["-n", "-r"])
            .arg(tmp.path("inner.pcap"))
            .args(["-T", "fields", "-e", "frame.protocols"]),
    );
    assert!(o.status.success(), "tshark: {}", stderr(&o));
    let protocols = stdout(&o);
    assert_eq!(protocols.lines().count(), 100);
    assert!(
        !protocols.contains("vxlan"),
        "inner frames must not contain VXLAN"
    );
    for proto in ["ssh", "dns", "ntp"] {
        assert!(
            protocols.lines().any(|l| l.contains(proto)),
            "no {proto} in:\n{protocols}"
        );
    }
}

#[test]
fn azure_vtap_frame_gives_the_inner_tcp_syn() {
    let tmp = TempDir::new("azure");
    let (records, summary) = decap("azure/azure-vtap-frame1-reconstructed.pcap", &[], &tmp);
    assert_eq!(records.len(), 1, "{summary}");
    let o = output(
        Command::new("tcpdump")
            .args(["-n", "-t", "-r"])
            .arg(tmp.path("inner.pcap")),
    );
    let text = stdout(&o);
    assert!(
        text.contains("IP 10.0.2.4.54633 > 10.0.2.6.80: Flags [S"),
        "tcpdump said: {text}"
    );
}

#[test]
fn header_oddities_follow_rfc7348_and_every_reject_is_named() {
    let tmp = TempDir::new("oddities");
    let (records, summary) = decap("synthetic/vxlan-header-oddities.pcap", &[], &tmp);
    // Accepted: reserved bits set, GBP-style flags 0x88, the inner ARP broadcast.
    assert_eq!(records.len(), 3, "{summary}");
    assert_eq!(reason_count(&summary, "vxlan_i_flag_clear"), 1, "{summary}");
    assert_eq!(reason_count(&summary, "truncated_vxlan"), 1, "{summary}");
    assert_eq!(
        reason_count(&summary, "port_not_configured"),
        1,
        "{summary}"
    );
    assert!(summary.contains("6 packets read from"), "{summary}");
    assert!(summary.contains("3 packets not written"), "{summary}");
}

#[test]
fn inner_and_outer_vlan_tags_are_handled() {
    let tmp = TempDir::new("vlan");
    let (records, summary) = decap("synthetic/vxlan-vlan-tags.pcap", &[], &tmp);
    assert_eq!(records.len(), 3, "{summary}");
    let o = output(
        Command::new("tcpdump")
            .args(["-e", "-n", "-t", "-r"])
            .arg(tmp.path("inner.pcap")),
    );
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert!(
        lines[0].contains("vlan 100"),
        "inner 802.1Q kept: {lines:?}"
    );
    assert!(
        lines[1].contains("vlan 200") && lines[1].contains("vlan 100"),
        "inner QinQ kept: {lines:?}"
    );
    assert!(
        !lines[2].contains("vlan 42"),
        "outer tag 42 is not part of the inner frame: {lines:?}"
    );
}

#[test]
fn outer_fragments_are_reassembled_or_counted_with_no_reassembly() {
    let tmp = TempDir::new("frag");
    let input = "synthetic/vxlan-outer-ipv4-frag-inorder.pcap";
    let (records, summary) = decap(input, &[], &tmp);
    assert_eq!(
        records.len(),
        3,
        "two small packets and the reassembled one: {summary}"
    );
    assert!(
        summary.contains("2 outer fragments: 1 datagrams reassembled"),
        "{summary}"
    );
    // 4 packets: 3 written, and the first fragment merged into its datagram.
    assert!(
        summary.contains("\n1 packets not written\n  1 fragment_merged\n"),
        "{summary}"
    );
    // The fixture's 1500-byte inner IPv4 packet, whole, between the small ones.
    let big = &records[1].data;
    assert_eq!(big.len(), 14 + 1500, "{summary}");
    assert_eq!(
        u16::from_be_bytes([big[16], big[17]]),
        1500,
        "inner IPv4 total length"
    );
    assert!(records[0].data.len() < 200 && records[2].data.len() < 200);
    // Wireshark agrees the inner packet is intact: its IPv4 checksum verifies.
    let out = tmp.path("inner.pcap");
    let t = output(
        Command::new("tshark")
            .args(["-n", "-o", "ip.check_checksum:TRUE", "-r"])
            .arg(&out)
            .args(["-T", "fields", "-e", "ip.len", "-e", "ip.checksum.status"]),
    );
    // ip.checksum.status 1: "Good".
    assert_eq!(stdout(&t).lines().nth(1), Some("1500\t1"), "{}", stdout(&t));

    let (records, summary) = decap(input, &["--no-reassembly"], &tmp);
    assert_eq!(records.len(), 2, "the two unfragmented packets: {summary}");
    assert_eq!(reason_count(&summary, "outer_fragment"), 2, "{summary}");
}

#[test]
fn pcapng_input_keeps_frames_and_timestamps() {
    let tmp = TempDir::new("pcapng");
    let ng = tmp.path("vxlan.pcapng");
    let o = output(
        Command::new("editcap")
            .args(["-F", "pcapng"])
            .arg(fixture("tcpdump/vxlan.pcap"))
            .arg(&ng),
    );
    assert!(o.status.success(), "editcap: {}", stderr(&o));
    let out = tmp.path("from-ng.pcap");
    let o = output(vxdecap().args(["decap", "-r"]).arg(&ng).arg("-w").arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let from_ng = read_pcap(&out);
    let (from_pcap, _) = decap("tcpdump/vxlan.pcap", &[], &tmp);
    assert_eq!(from_ng, from_pcap);
}

#[test]
fn count_limit_stops_after_n_frames() {
    let tmp = TempDir::new("count");
    let (records, summary) = decap(
        "suricata-verify/aws-traffic-mirroring-vxlan.pcap",
        &["-c", "7"],
        &tmp,
    );
    assert_eq!(records.len(), 7, "{summary}");
    assert_eq!(frames_written(&summary), 7);
}

#[test]
fn stdout_output_pipes_into_tshark() {
    let mut child = vxdecap()
        .args(["decap", "-r"])
        .arg(fixture("tcpdump/vxlan.pcap"))
        .args(["-w", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vxdecap");
    let pipe = child.stdout.take().expect("stdout");
    let o = output(
        Command::new("tshark")
            .args([
                "-n",
                "-r",
                "-",
                "-T",
                "fields",
                "-e",
                "icmp.type",
                "-e",
                "arp.opcode",
            ])
            .stdin(pipe),
    );
    assert!(child.wait().expect("wait").success());
    let lines: Vec<&str> = std::str::from_utf8(&o.stdout)
        .expect("utf8")
        .lines()
        .collect();
    assert_eq!(
        lines.len(),
        10,
        "tshark read {lines:?}; stderr {}",
        stderr(&o)
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("8\t")).count(),
        4,
        "four echo requests"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("0\t")).count(),
        4,
        "four echo replies"
    );
}

#[test]
fn text_output_without_w_describes_each_frame() {
    let o = output(
        vxdecap()
            .args(["decap", "-r"])
            .arg(fixture("tcpdump/vxlan.pcap")),
    );
    assert!(o.status.success());
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 10);
    assert!(text.lines().next().unwrap().contains("vni 100 (192.168.203.1 > 192.168.202.1) IP 192.168.203.3 > 192.168.203.5: ICMP echo request"), "{text}");
}

#[test]
fn count_only_prints_nothing_per_frame() {
    let o = output(
        vxdecap()
            .args(["decap", "-q", "-r"])
            .arg(fixture("tcpdump/vxlan.pcap")),
    );
    assert!(o.status.success());
    assert!(o.stdout.is_empty(), "no per-frame output with -q");
    assert_eq!(frames_written(&stderr(&o)), 10);
}

#[test]
fn truncated_mirrors_keep_their_original_length() {
    use vxdecap::wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp, VxlanFrameBuilder};
    let tmp = TempDir::new("trunc");
    // AWS Traffic Mirroring with PacketLength 100: a 1000-byte inner IPv4
    // packet arrives cut to its first 100 bytes of inner frame.
    let whole = inner_ipv4_udp_frame(&InnerIpv4Udp {
        payload_len: 1000 - 28,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(whole.len(), 14 + 1000);
    let cut = VxlanFrameBuilder::new()
        .vni(7)
        .inner(&whole[..100])
        .build()
        .unwrap();
    let untouched = VxlanFrameBuilder::new()
        .vni(7)
        .inner(&whole)
        .build()
        .unwrap();
    let input = tmp.path("mirror.pcap");
    {
        let file = std::fs::File::create(&input).unwrap();
        let mut w = pcap_file::pcap::PcapWriter::new(file).unwrap();
        for (i, frame) in [&cut, &untouched].iter().enumerate() {
            let ts = std::time::Duration::from_secs(1_700_000_000 + i as u64);
            w.write_packet(&pcap_file::pcap::PcapPacket::new(
                ts,
                frame.len() as u32,
                frame,
            ))
            .unwrap();
        }
    }
    for format in ["pcap", "pcapng"] {
        let out = tmp.path(&format!("inner.{format}"));
        let o = output(
            vxdecap()
                .args(["decap", "-r"])
                .arg(&input)
                .arg("-w")
                .arg(&out),
        );
        let summary = stderr(&o);
        assert!(o.status.success(), "{summary}");
        assert!(
            summary.contains("1 frames truncated by the mirror, written with their original length (truncated_mirror)"),
            "{summary}"
        );
        // tshark reads the captured and the original length of each record.
        let t = output(Command::new("tshark").arg("-r").arg(&out).args([
            "-T",
            "fields",
            "-e",
            "frame.cap_len",
            "-e",
            "frame.len",
        ]));
        assert_eq!(stdout(&t), "100\t1014\n1014\t1014\n", "{format}");
    }
}

#[test]
fn writing_over_the_input_is_refused_before_anything_is_opened() {
    let tmp = TempDir::new("same-file");
    let input = tmp.path("x.pcap");
    std::fs::copy(fixture("tcpdump/vxlan.pcap"), &input).expect("copy the fixture");
    let original = std::fs::read(&input).expect("read");
    std::os::unix::fs::symlink(&input, tmp.path("link.pcap")).expect("symlink");
    std::fs::hard_link(&input, tmp.path("hard.pcap")).expect("hard link");
    std::fs::hard_link(&input, tmp.path("cap.pcap2")).expect("hard link");
    let x = input.to_str().expect("utf-8").to_owned();
    let at = |name: &str| tmp.path(name).to_str().expect("utf-8").to_owned();
    let cases: Vec<Vec<String>> = vec![
        vec!["-w".into(), x.clone()],
        vec!["-w".into(), at("link.pcap")],
        vec!["-w".into(), at("hard.pcap")],
        vec!["-w".into(), format!("{}/./x.pcap", tmp.0.display())],
        // -C 1 writes cap.pcap, cap.pcap1, cap.pcap2, …: the third is the input.
        vec!["-w".into(), at("cap.pcap"), "-C".into(), "1".into()],
        // A route's file, and -w pcapng over a pcap input.
        vec!["--route".into(), format!("vni=100 -> {x}")],
        vec!["-w".into(), x, "--format".into(), "pcapng".into()],
    ];
    for args in cases {
        let o = output(vxdecap().args(["decap", "-r"]).arg(&input).args(&args));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("is the input file") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
        assert_eq!(
            std::fs::read(&input).expect("read"),
            original,
            "{args:?}: the input is intact"
        );
    }
    // Through stdin, with -w naming the file stdin reads.
    let o = output(
        vxdecap()
            .args(["decap", "-r", "-", "-w"])
            .arg(&input)
            .stdin(std::fs::File::open(&input).expect("open")),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(std::fs::read(&input).expect("read"), original);
    // Another file in the same directory is fine.
    let o = output(
        vxdecap()
            .args(["decap", "-r"])
            .arg(&input)
            .arg("-w")
            .arg(tmp.path("out.pcap")),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&input).expect("read"), original);
}

/// Counts the inner frames it is given, by first byte of the inner
/// EtherType (0x08: IPv4, 0x86: IPv6, …).
struct Kinds(std::sync::Arc<std::sync::Mutex<Vec<[u8; 2]>>>);

impl vxdecap::Analyzer for Kinds {
    fn on_batch(&mut self, frames: vxdecap::Frames<'_>) -> std::io::Result<()> {
        let mut seen = self.0.lock().unwrap();
        seen.extend(frames.iter().map(|f| [f.bytes[12], f.bytes[13]]));
        Ok(())
    }
}

/// The library reads a capture file through the same loop as `decap -r`,
/// behind the same inner filter: the ICMP frames of tcpdump's capture, as
/// the command line writes them.
#[test]
fn the_library_reads_a_file_behind_an_inner_filter_as_decap_does() {
    let tmp = TempDir::new("lib-offline");
    let (written, _) = decap("tcpdump/vxlan.pcap", &["icmp"], &tmp);
    let seen = std::sync::Arc::default();
    let summary = vxdecap::Capture::from_file(fixture("tcpdump/vxlan.pcap"))
        .filter("icmp")
        .analyzer(Kinds(std::sync::Arc::clone(&seen)))
        .build()
        .expect("a capture file and a filter that compiles")
        .run()
        .expect("the run");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), written.len(), "{}", summary.render());
    assert_eq!(summary.written, written.len() as u64);
    assert!(seen.iter().all(|kind| *kind == [0x08, 0x00]), "IPv4 only");
    let err = vxdecap::Capture::from_file(fixture("tcpdump/vxlan.pcap"))
        .filter("tcp prot 80")
        .analyzer(Kinds(std::sync::Arc::default()))
        .build()
        .expect_err("a filter libpcap refuses");
    assert!(err.to_string().contains("man pcap-filter"), "{err}");
}

#[test]
fn a_bad_port_list_says_why_in_the_error_message_itself() {
    // A library user printing `err.to_string()` (not the source chain) must see the reason.
    let built = vxdecap::Capture::from_file(fixture("tcpdump/vxlan.pcap"))
        .ports(&[4789, 4789])
        .analyzer(vxdecap::each_frame("none", |_| Ok(())))
        .build();
    let Err(err) = built else {
        panic!("a duplicate port is refused")
    };
    let text = err.to_string();
    assert!(
        text.starts_with("tunnel ports: ") && text.contains("4789"),
        "{text}"
    );
}
