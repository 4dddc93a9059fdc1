//! Offline input formats: every link type tcpdump and tshark read VXLAN
//! from, the records they tolerate, pcapng's packet block kinds and mixed
//! interfaces, stdin, and inputs cut short. The fixtures are in
//! tests/fixtures (see its README for how each was made); outputs are
//! checked against tshark's decode of the same input.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// A fixture of this repository's tests/fixtures.
fn local(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    assert!(path.exists(), "fixture {} is missing", path.display());
    path
}

/// `vxdecap decap -r input -w tmp/name extra…`: (exit code, summary, records).
fn decap_to(
    input: &Path,
    tmp: &TempDir,
    name: &str,
    extra: &[&str],
) -> (Option<i32>, String, Vec<Record>) {
    let out = tmp.path(name);
    let o = output(
        vxdecap()
            .args(["decap", "-r"])
            .arg(input)
            .arg("-w")
            .arg(&out)
            .args(extra),
    );
    let records = if out.exists() {
        read_pcap(&out)
    } else {
        Vec::new()
    };
    (o.status.code(), stderr(&o), records)
}

/// Fields only the inner frame has (the last Ethernet header is the inner one).
const INNER_FIELDS: [&str; 12] = [
    "-e",
    "eth.src",
    "-e",
    "eth.dst",
    "-e",
    "eth.type",
    "-e",
    "icmp.type",
    "-e",
    "icmp.seq",
    "-e",
    "arp.opcode",
];

/// tshark's view of the inner frames of a VXLAN capture: per packet, the
/// VNI and the inner Ethernet header, ICMP type and sequence, ARP opcode.
fn tshark_inner(input: &Path) -> Vec<String> {
    let o = output(
        Command::new("tshark")
            .arg("-n")
            .arg("-r")
            .arg(input)
            .args(["-T", "fields", "-E", "occurrence=l", "-e", "vxlan.vni"])
            .args(INNER_FIELDS),
    );
    assert!(
        o.status.success(),
        "tshark {}: {}",
        input.display(),
        stderr(&o)
    );
    stdout(&o).lines().map(str::to_owned).collect()
}

/// The same fields of our (Ethernet) output, with the VNIs given.
fn tshark_plain(output_file: &Path, vni: &str) -> Vec<String> {
    let o = output(
        Command::new("tshark")
            .arg("-n")
            .arg("-r")
            .arg(output_file)
            .args(["-T", "fields", "-E", "occurrence=l"])
            .args(INNER_FIELDS),
    );
    assert!(o.status.success(), "tshark: {}", stderr(&o));
    stdout(&o).lines().map(|l| format!("{vni}\t{l}")).collect()
}

#[test]
fn every_link_type_tcpdump_writes_is_read_and_matches_tshark() {
    let tmp = TempDir::new("link-types");
    // The Ethernet originals, as the reference for the bytes.
    let (_, _, from_eth) = decap_to(&fixture("tcpdump/vxlan.pcap"), &tmp, "eth.pcap", &[]);
    let (_, _, from_eth6) = decap_to(&local("vxlan6.pcap"), &tmp, "eth6.pcap", &[]);
    assert_eq!((from_eth.len(), from_eth6.len()), (10, 6));
    let cases = [
        ("vxlan-sll.pcap", "LINUX_SLL 113", &from_eth),
        ("vxlan-sll2.pcap", "LINUX_SLL2 276", &from_eth),
        ("vxlan-raw.pcap", "RAW 101", &from_eth),
        ("vxlan-dlt12.pcap", "DLT_RAW 12", &from_eth),
        ("vxlan-ipv4.pcap", "IPV4 228", &from_eth),
        ("vxlan6-ipv6.pcap", "IPV6 229", &from_eth6),
        ("vxlan-null.pcap", "NULL 0", &from_eth),
        ("vxlan-loop.pcap", "LOOP 108", &from_eth),
    ];
    for (name, what, reference) in cases {
        let input = local(name);
        let (code, summary, records) = decap_to(&input, &tmp, "out.pcap", &[]);
        assert_eq!(code, Some(0), "{what}: {summary}");
        assert!(
            summary.contains("0 packets not written"),
            "{what}: {summary}"
        );
        // The same inner frames as from the Ethernet capture they were made of.
        let data = |r: &[Record]| r.iter().map(|r| r.data.clone()).collect::<Vec<_>>();
        let (got, want) = (data(&records), data(reference));
        if name.starts_with("vxlan-sll") {
            // tcpdump captured them in its own order: compare as sets.
            let (mut got, mut want) = (got, want);
            got.sort();
            want.sort();
            assert_eq!(got, want, "{what}");
        } else {
            assert_eq!(got, want, "{what}");
            let stamps = |r: &[Record]| r.iter().map(|r| r.timestamp_ns).collect::<Vec<_>>();
            assert_eq!(
                stamps(&records),
                stamps(reference),
                "{what}: timestamps kept"
            );
        }
        // tshark decodes the input's VXLAN to what we wrote.
        let vni = if name.starts_with("vxlan6") {
            "66"
        } else {
            "100"
        };
        assert_eq!(
            tshark_inner(&input),
            tshark_plain(&tmp.path("out.pcap"), vni),
            "{what}"
        );
    }
}

#[test]
fn outer_fragments_of_a_raw_ip_capture_are_reassembled() {
    let tmp = TempDir::new("frag-raw");
    let (code, summary, records) = decap_to(&local("frag-raw.pcap"), &tmp, "o.pcap", &[]);
    assert_eq!(code, Some(0), "{summary}");
    assert!(
        summary.contains("2 outer fragments: 1 datagrams reassembled"),
        "{summary}"
    );
    let (_, _, reference) = decap_to(
        &fixture("synthetic/vxlan-outer-ipv4-frag-inorder.pcap"),
        &tmp,
        "ref.pcap",
        &[],
    );
    assert_eq!(records.len(), 3, "{summary}");
    assert_eq!(
        records, reference,
        "the same frames as from the Ethernet capture"
    );
}

/// Packets tcpdump prints for `input` (and whether it exited 0).
fn tcpdump_reads(input: &Path) -> (usize, bool) {
    let o = output(Command::new("tcpdump").args(["-n", "-r"]).arg(input));
    // A packet's line starts with its time (the inner frame follows on the
    // next); a record it reads but will not dissect is `[Invalid header: …]`.
    let packets = stdout(&o)
        .lines()
        .filter(|l| {
            (l.as_bytes().first().is_some_and(u8::is_ascii_digit) && l.contains("VXLAN"))
                || l.starts_with("[Invalid header")
        })
        .count();
    (packets, o.status.success())
}

#[test]
fn records_tcpdump_reads_are_read_and_what_is_odd_is_counted() {
    let tmp = TempDir::new("odd");
    let (_, _, reference) = decap_to(&fixture("tcpdump/vxlan.pcap"), &tmp, "ref.pcap", &[]);
    let cases = [
        ("odd-snaplen-zero.pcap", "snaplen 0 read as 262144"),
        (
            "odd-caplen-over-snaplen.pcap",
            "8 records longer than the snaplen, read whole (caplen_over_snaplen)",
        ),
        (
            "odd-caplen-over-origlen.pcap",
            "5 records with a captured length above the original length, taken as the original length (caplen_over_origlen)",
        ),
    ];
    for (name, note) in cases {
        let input = local(name);
        assert_eq!(
            tcpdump_reads(&input),
            (10, true),
            "tcpdump reads all of {name}"
        );
        assert_eq!(tshark_inner(&input).len(), 10, "tshark reads all of {name}");
        let (code, summary, records) = decap_to(&input, &tmp, "o.pcap", &[]);
        assert_eq!(code, Some(0), "{name}: {summary}");
        assert!(
            summary.contains(&format!("input: {note}")),
            "{name}: {summary}"
        );
        let data = |r: &[Record]| r.iter().map(|r| r.data.clone()).collect::<Vec<_>>();
        assert_eq!(data(&records), data(&reference), "{name}: whole frames");
    }
    // Beyond libpcap's maximum: tcpdump stops there with an error, and so do we,
    // with the summary of the three records before it.
    let input = local("odd-caplen-over-max.pcap");
    let (lines, ok) = tcpdump_reads(&input);
    assert_eq!((lines, ok), (3, false), "tcpdump refuses the 4th record");
    let (code, summary, records) = decap_to(&input, &tmp, "o.pcap", &[]);
    assert_eq!(code, Some(1), "{summary}");
    assert_eq!(records.len(), 3, "{summary}");
    assert_eq!(frames_written(&summary), 3, "{summary}");
    assert!(
        summary.contains("input error:")
            && summary.contains("record 4: captured length 300000 is above 262144"),
        "{summary}"
    );
}

#[test]
fn obsolete_packet_blocks_are_read_and_unknown_blocks_counted() {
    let tmp = TempDir::new("opb");
    let input = local("vxlan-opb.pcapng");
    assert_eq!(
        tshark_inner(&input).len(),
        10,
        "tshark reads the 10 packets"
    );
    let (_, _, reference) = decap_to(&fixture("tcpdump/vxlan.pcap"), &tmp, "ref.pcap", &[]);
    let (code, summary, records) = decap_to(&input, &tmp, "o.pcap", &[]);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(records, reference, "frames and timestamps: {summary}");
    assert!(
        summary.contains("input: 1 blocks skipped: 1 of unknown type 0x00000099"),
        "{summary}"
    );
}

#[test]
fn pcapng_interfaces_are_read_by_their_own_link_type() {
    let tmp = TempDir::new("mixed");
    // One Ethernet and one Linux cooked interface: all 20 packets.
    let input = local("mixed-eth-sll.pcapng");
    let (code, summary, records) = decap_to(&input, &tmp, "o.pcap", &[]);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(records.len(), 20, "{summary}");
    assert_eq!(
        tshark_inner(&input),
        tshark_plain(&tmp.path("o.pcap"), "100")
    );
    // An interface of link type 147 carries no IP: its packet is counted.
    let input = local("mixed-user0.pcapng");
    let (code, summary, records) = decap_to(&input, &tmp, "o.pcap", &[]);
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(records.len(), 10, "{summary}");
    assert!(summary.contains("11 packets read from"), "{summary}");
    assert_eq!(
        reason_count(&summary, "link_type_unsupported"),
        1,
        "{summary}"
    );
    assert!(
        summary.contains("1 packets on interface 1 of section 1 with link type 147"),
        "{summary}"
    );
}

#[test]
fn stdin_is_read_as_pcap_or_pcapng() {
    let tmp = TempDir::new("stdin");
    let pcap = fixture("suricata-verify/aws-traffic-mirroring-vxlan.pcap");
    let ng = tmp.path("aws.pcapng");
    let o = output(
        Command::new("editcap")
            .args(["-F", "pcapng"])
            .arg(&pcap)
            .arg(&ng),
    );
    assert!(o.status.success(), "editcap: {}", stderr(&o));
    let (_, _, reference) = decap_to(&pcap, &tmp, "ref.pcap", &[]);
    assert_eq!(reference.len(), 100);
    for input in [&pcap, &ng] {
        let out = tmp.path("stdin.pcap");
        let mut child = vxdecap()
            .args(["decap", "-r", "-", "-w"])
            .arg(&out)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Fed through a pipe in small writes, as a live producer would.
        let bytes = std::fs::read(input).expect("read");
        let mut stdin = child.stdin.take().expect("stdin");
        for chunk in bytes.chunks(700) {
            stdin.write_all(chunk).expect("write");
        }
        drop(stdin);
        let o = child.wait_with_output().expect("wait");
        let summary = stderr(&o);
        assert!(o.status.success(), "{summary}");
        assert!(summary.contains("100 packets read from stdin"), "{summary}");
        assert_eq!(read_pcap(&out), reference, "{}", input.display());
    }
}

#[test]
fn a_cut_input_ends_with_the_summary_and_the_cut_record_counted() {
    let tmp = TempDir::new("cut");
    let pcap = fixture("suricata-verify/aws-traffic-mirroring-vxlan.pcap");
    let ng = tmp.path("aws.pcapng");
    let o = output(
        Command::new("editcap")
            .args(["-F", "pcapng"])
            .arg(&pcap)
            .arg(&ng),
    );
    assert!(o.status.success(), "editcap: {}", stderr(&o));
    for input in [&pcap, &ng] {
        let bytes = std::fs::read(input).expect("read");
        // Cut in the middle of the file: inside some record.
        let cut = tmp.path("cut");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        let whole = capinfos_count_tolerant(&cut);
        let (code, summary, records) = decap_to(&cut, &tmp, "o.pcap", &[]);
        assert_eq!(code, Some(1), "{summary}");
        assert_eq!(records.len() as u64, whole, "{summary}");
        assert_eq!(
            frames_written(&summary),
            whole,
            "the summary is printed: {summary}"
        );
        assert_eq!(reason_count(&summary, "input_record_cut"), 1, "{summary}");
        assert!(
            summary.contains(&format!("{} packets read from", whole + 1)),
            "the cut record is counted: {summary}"
        );
        assert!(
            summary.contains("input error:") && summary.contains("is cut short"),
            "{summary}"
        );
    }
}

/// Packets capinfos reads from a file cut short (it reports the cut).
fn capinfos_count_tolerant(file: &Path) -> u64 {
    let o = output(Command::new("capinfos").args(["-M", "-c"]).arg(file));
    assert!(
        stderr(&o).contains("cut short"),
        "capinfos sees the cut: {}",
        stderr(&o)
    );
    stdout(&o)
        .lines()
        .find_map(|l| l.strip_prefix("Number of packets:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a packet count")
}

#[test]
fn a_file_that_is_not_a_capture_is_a_usage_error_before_outputs_exist() {
    let tmp = TempDir::new("notcap");
    let text = tmp.path("notes.txt");
    std::fs::write(&text, "hello, this is not a capture\n").expect("write");
    let empty = tmp.path("empty.pcap");
    std::fs::write(&empty, b"").expect("write");
    for (input, says) in [
        (&text, "is not a pcap or pcapng capture"),
        (&empty, "is empty"),
        (&tmp.path("missing.pcap"), "cannot read"),
    ] {
        let out = tmp.path("never.pcap");
        let o = output(
            vxdecap()
                .args(["decap", "-r"])
                .arg(input)
                .arg("-w")
                .arg(&out),
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
        assert!(!out.exists(), "no output file is created");
    }
}
