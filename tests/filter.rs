//! Inner filters end to end: `vxdecap decap -r in -w out FILTER` keeps
//! exactly the frames `tcpdump -r all.pcap -w expected.pcap FILTER` keeps
//! from the unfiltered output, frame for frame (bytes, lengths, times).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Runs `vxdecap decap -r input -w out args…`; returns the summary.
fn decap(input: &Path, out: &Path, args: &[&str]) -> String {
    let o = output(
        vxdecap()
            .arg("decap")
            .arg("-r")
            .arg(input)
            .arg("-w")
            .arg(out)
            .args(args),
    );
    let summary = stderr(&o);
    assert!(o.status.success(), "decap {args:?} failed:\n{summary}");
    summary
}

/// What tcpdump keeps of `all` with `filter`.
fn tcpdump_filter(all: &Path, filter: &str, out: &Path) -> Vec<Record> {
    let o = output(
        Command::new("tcpdump")
            .arg("-r")
            .arg(all)
            .arg("-w")
            .arg(out)
            .arg(filter),
    );
    assert!(o.status.success(), "tcpdump {filter:?}: {}", stderr(&o));
    read_pcap(out)
}

const FILTERS: &[&str] = &[
    "tcp port 80",
    "udp",
    "icmp",
    "arp",
    "host 10.0.2.6",
    "vlan",
    "vlan 100 and tcp port 80",
    "ip6",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)",
    "not tcp",
    "greater 100",
    "host 203.0.113.99",
];

fn inputs(tmp: &TempDir) -> Vec<PathBuf> {
    let crafted = tmp.path("mix.pcap");
    let frames = vxlan_wrap(&inner::mix(), 27, std::net::Ipv4Addr::new(10, 0, 2, 4));
    std::fs::write(&crafted, pcap_file_bytes(&frames)).expect("write the mix");
    vec![
        crafted,
        fixture("tcpdump/vxlan.pcap"),
        fixture("suricata-verify/aws-traffic-mirroring-vxlan.pcap"),
        fixture("azure/azure-vtap-frame1-reconstructed.pcap"),
        fixture("synthetic/vxlan-vlan-tags.pcap"),
    ]
}

#[test]
fn filtered_output_equals_tcpdump_filtering_the_unfiltered_output() {
    let tmp = TempDir::new("filter-e2e");
    let mut matched_somewhere = vec![0usize; FILTERS.len()];
    for input in inputs(&tmp) {
        let all = tmp.path("all.pcap");
        decap(&input, &all, &[]);
        let all_records = read_pcap(&all);
        assert!(!all_records.is_empty(), "{}", input.display());
        for (i, filter) in FILTERS.iter().enumerate() {
            let got_path = tmp.path("got.pcap");
            let summary = decap(&input, &got_path, &[filter]);
            let got = read_pcap(&got_path);
            let expected = tcpdump_filter(&all, filter, &tmp.path("expected.pcap"));
            assert_eq!(
                got,
                expected,
                "{filter:?} on {}:\n{summary}",
                input.display()
            );
            assert_eq!(frames_written(&summary), got.len() as u64, "{summary}");
            assert_eq!(
                reason_count(&summary, "filtered_out"),
                (all_records.len() - got.len()) as u64,
                "{filter:?} on {}:\n{summary}",
                input.display()
            );
            matched_somewhere[i] += got.len();
        }
    }
    for (filter, n) in FILTERS.iter().zip(&matched_somewhere) {
        if *filter == "host 203.0.113.99" {
            assert_eq!(*n, 0, "{filter} matches nothing");
        } else {
            assert!(
                *n > 0,
                "{filter:?} matched no frame of any input: a weak test"
            );
        }
    }
}

#[test]
fn the_filter_may_be_several_words_and_keeps_the_expected_frames() {
    let tmp = TempDir::new("filter-words");
    let input = tmp.path("mix.pcap");
    let mix = inner::mix();
    let frames = vxlan_wrap(&mix, 27, std::net::Ipv4Addr::new(10, 0, 2, 4));
    std::fs::write(&input, pcap_file_bytes(&frames)).expect("write the mix");
    let out = tmp.path("web.pcap");
    // tcpdump-style: the words of the expression as separate arguments.
    let summary = decap(&input, &out, &["tcp", "dst", "port", "80"]);
    let got: Vec<Vec<u8>> = read_pcap(&out).into_iter().map(|r| r.data).collect();
    let expected: Vec<Vec<u8>> = mix
        .iter()
        .filter(|f| {
            let tagged = f[12..14] == [0x81, 0x00];
            // Untagged TCP to port 80 only: `tcp` without `vlan` does not look inside tags.
            !tagged && f[12..14] == [0x08, 0x00] && f[23] == 6 && f[36..38] == [0, 80]
        })
        .cloned()
        .collect();
    assert_eq!(expected.len(), 3);
    assert_eq!(got, expected, "{summary}");
    assert_eq!(reason_count(&summary, "filtered_out"), 21, "{summary}");
    assert!(summary.contains("3 inner frames written"), "{summary}");
}

#[test]
fn a_bad_filter_is_refused_with_exit_code_2_and_nothing_written() {
    let tmp = TempDir::new("filter-bad");
    let out = tmp.path("x.pcap");
    for (filter, needle) in [
        ("tcp prot 80", "man pcap-filter"),
        ("ip and not ip", "rejects all packets"),
    ] {
        let o = output(
            vxdecap()
                .args(["decap", "-r"])
                .arg(fixture("tcpdump/vxlan.pcap"))
                .arg("-w")
                .arg(&out)
                .arg(filter),
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{filter}: {err}");
        assert!(err.contains(needle), "{filter}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(!out.exists(), "nothing written");
    }
}
