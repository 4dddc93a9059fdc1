//! Decapsulates the shared real and synthetic captures (see `../shared/fixtures/README.md` from
//! the repository root) and checks each frame's documented outcome.
//!
//! The fixtures live outside the repository; set `VXDECAP_FIXTURES` to their directory to use
//! another copy. A missing file fails the test with its path (it never silently passes).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use vxdecap_wire::build::VxlanFrameBuilder;
use vxdecap_wire::decap::inner_orig_len;
use vxdecap_wire::ethernet::{self, EtherType};
use vxdecap_wire::reassembly::is_ipv4_fragment;
use vxdecap_wire::{decapsulate, Decapsulated, PortSet, Push, Reassembler, ReassemblyConfig};
use vxdecap_wire::{ReassemblyEvent, Reject};

fn fixtures_dir() -> PathBuf {
    match std::env::var_os("VXDECAP_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        // userspace/wire -> repository root -> its sibling `shared/fixtures`.
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    }
}

/// Reads a classic pcap file (microsecond, little-endian, Ethernet link type) into its frames.
fn read_pcap(relative: &str) -> Vec<Vec<u8>> {
    let path = fixtures_dir().join(relative);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} cannot be read ({e}): the shared captures are expected at \
             ../shared/fixtures next to the repository; set VXDECAP_FIXTURES to their directory",
            path.display()
        )
    });
    parse_pcap(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn le_u32(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("file ends inside a header at byte {at}"))
}

fn parse_pcap(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    const GLOBAL_HEADER_LEN: usize = 24;
    const RECORD_HEADER_LEN: usize = 16;
    const LINKTYPE_ETHERNET: u32 = 1;

    let magic = le_u32(bytes, 0)?;
    if magic != 0xa1b2_c3d4 {
        return Err(format!(
            "magic {magic:#010x}: not a little-endian microsecond pcap"
        ));
    }
    let link_type = le_u32(bytes, 20)?;
    if link_type != LINKTYPE_ETHERNET {
        return Err(format!("link type {link_type}, expected Ethernet (1)"));
    }
    let mut frames = Vec::new();
    let mut offset = GLOBAL_HEADER_LEN;
    while offset < bytes.len() {
        let incl_len = le_u32(bytes, offset + 8)? as usize;
        let orig_len = le_u32(bytes, offset + 12)? as usize;
        if incl_len != orig_len {
            return Err(format!(
                "record {} was cut by the snap length ({incl_len} of {orig_len} bytes)",
                frames.len()
            ));
        }
        let start = offset + RECORD_HEADER_LEN;
        let frame = bytes
            .get(start..start + incl_len)
            .ok_or_else(|| format!("record {} runs past the end of the file", frames.len()))?;
        frames.push(frame.to_vec());
        offset = start + incl_len;
    }
    Ok(frames)
}

fn inner_ethertype(decap: &Decapsulated<'_>) -> u16 {
    ethernet::Frame::new_checked(decap.inner)
        .expect("inner frames are at least 14 bytes")
        .ethertype()
}

fn assert_zero_copy(frame: &[u8], decap: &Decapsulated<'_>) {
    let end = decap.inner_offset + decap.inner.len();
    assert_eq!(&frame[decap.inner_offset..end], decap.inner);
}

#[test]
fn pcap_reader_rejects_bad_input() {
    assert!(parse_pcap(&[]).is_err());
    assert!(parse_pcap(&[0u8; 24]).is_err());
    let mut header = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    header.extend_from_slice(&[0; 12]);
    header.extend_from_slice(&1u32.to_le_bytes());
    assert_eq!(parse_pcap(&header), Ok(vec![]));
    let mut truncated = header.clone();
    truncated.extend_from_slice(&[0; 8]);
    truncated.extend_from_slice(&10u32.to_le_bytes());
    truncated.extend_from_slice(&10u32.to_le_bytes());
    truncated.extend_from_slice(&[0; 4]);
    assert!(parse_pcap(&truncated).is_err());
}

#[test]
fn tcpdump_vxlan_pcap() {
    let frames = read_pcap("tcpdump/vxlan.pcap");
    assert_eq!(frames.len(), 10);
    let ports = PortSet::default();
    for (i, frame) in frames.iter().enumerate() {
        let decap = decapsulate(frame, &ports)
            .unwrap_or_else(|r| panic!("tcpdump/vxlan.pcap frame {}: {r}", i + 1));
        assert_eq!(decap.vni, 100, "frame {}", i + 1);
        assert_eq!(decap.vxlan_flags, 0x08);
        assert_eq!(decap.outer_dst_port, 4789);
        assert_eq!(decap.inner_offset, 50);
        assert_eq!(decap.outer_vlan_count, 0);
        assert_zero_copy(frame, &decap);
    }

    // Frame 1 (tcpdump: "192.168.203.1.45149 > 192.168.202.1.4789 ... ICMP echo request,
    // length 98"): inner IPv4.
    let first = decapsulate(&frames[0], &ports).expect("frame 1");
    assert_eq!(inner_ethertype(&first), EtherType::IPV4);
    assert_eq!(first.inner.len(), 98);
    assert_eq!(first.outer_src, IpAddr::V4(Ipv4Addr::new(192, 168, 203, 1)));
    assert_eq!(first.outer_dst, IpAddr::V4(Ipv4Addr::new(192, 168, 202, 1)));
    assert_eq!(first.outer_src_port, 45149);
    assert_eq!(&first.inner[..6], &[0x00, 0x30, 0x88, 0x01, 0x00, 0x02]);

    // Frame 2: inner ARP request, broadcast, 42 bytes.
    let second = decapsulate(&frames[1], &ports).expect("frame 2");
    assert_eq!(inner_ethertype(&second), EtherType::ARP);
    assert_eq!(second.inner.len(), 42);
    assert_eq!(&second.inner[..6], &ethernet::BROADCAST);
}

#[test]
fn tcpdump_vxlan_port_8472_pcap() {
    let frames = read_pcap("tcpdump/vxlan_port_8472.pcap");
    assert_eq!(frames.len(), 10);
    let linux_port = PortSet::new(&[8472]).expect("valid port set");
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(
            decapsulate(frame, &PortSet::default()),
            Err(Reject::PortNotConfigured),
            "frame {}",
            i + 1
        );
        let decap = decapsulate(frame, &linux_port)
            .unwrap_or_else(|r| panic!("frame {} with port 8472: {r}", i + 1));
        assert_eq!(decap.vni, 100);
        assert_eq!(decap.outer_dst_port, 8472);
    }
}

#[test]
fn synthetic_header_oddities_pcap() {
    let frames = read_pcap("synthetic/vxlan-header-oddities.pcap");
    assert_eq!(frames.len(), 6);
    let ports = PortSet::default();
    // Per fixtures/README.md, in file order.
    let expected: [Result<u8, Reject>; 6] = [
        Err(Reject::VxlanIFlagClear),   // I flag clear
        Ok(0x08),                       // reserved bits set
        Ok(0x88),                       // GBP-style flags 0x88
        Err(Reject::TruncatedVxlan),    // 3-byte runt VXLAN payload
        Err(Reject::PortNotConfigured), // valid VXLAN on port 8472
        Ok(0x08),                       // inner ARP broadcast
    ];
    for (i, (frame, expected)) in frames.iter().zip(expected).enumerate() {
        let got = decapsulate(frame, &ports).map(|d| d.vxlan_flags);
        assert_eq!(got, expected, "vxlan-header-oddities.pcap frame {}", i + 1);
        if let Ok(decap) = decapsulate(frame, &ports) {
            assert_eq!(decap.vni, 27, "frame {}", i + 1);
            assert_zero_copy(frame, &decap);
        }
    }

    // Frame 2 really has its reserved bits set (so the test means what it says).
    let vxlan = &frames[1][42..50];
    assert_eq!(vxlan, &[0x08, 0xff, 0xff, 0xff, 0x00, 0x00, 0x1b, 0xff]);

    // Frame 5 decapsulates once port 8472 is configured.
    let decap = decapsulate(&frames[4], &PortSet::new(&[4789, 8472]).expect("valid"))
        .expect("frame 5 with port 8472");
    assert_eq!(decap.vni, 27);

    // Frame 6: inner ARP broadcast.
    let arp = decapsulate(&frames[5], &ports).expect("frame 6");
    assert_eq!(inner_ethertype(&arp), EtherType::ARP);
    assert_eq!(&arp.inner[..6], &ethernet::BROADCAST);
}

#[test]
fn aws_traffic_mirroring_pcap() {
    let frames = read_pcap("suricata-verify/aws-traffic-mirroring-vxlan.pcap");
    assert_eq!(frames.len(), 100);
    for (i, frame) in frames.iter().enumerate() {
        let decap = decapsulate(frame, &PortSet::default())
            .unwrap_or_else(|r| panic!("AWS frame {}: {r}", i + 1));
        assert_eq!(decap.vni, 5_569_041, "frame {}", i + 1);
        assert_eq!(decap.outer_src, IpAddr::V4(Ipv4Addr::new(172, 31, 0, 238)));
        assert_eq!(decap.outer_dst, IpAddr::V4(Ipv4Addr::new(172, 31, 17, 188)));
        // Flow-hash source ports; the capture holds 65408..=65525 (the README's "65523" is 2 low).
        assert!(decap.outer_src_port >= 65408, "frame {}", i + 1);
        assert_zero_copy(frame, &decap);
    }
}

#[test]
fn azure_vtap_frame_pcap() {
    let frames = read_pcap("azure/azure-vtap-frame1-reconstructed.pcap");
    assert_eq!(frames.len(), 1);
    let decap = decapsulate(&frames[0], &PortSet::default()).expect("Azure vTAP frame");
    assert_eq!(decap.vni, 27);
    assert_eq!(decap.vxlan_flags, 0x08);
    assert_eq!(decap.outer_src, IpAddr::V4(Ipv4Addr::new(10, 0, 2, 4)));
    assert_eq!(decap.outer_dst, IpAddr::V4(Ipv4Addr::new(10, 1, 1, 4)));
    assert_eq!(decap.outer_src_port, 52889);
    assert_eq!(inner_ethertype(&decap), EtherType::IPV4);
}

#[test]
fn synthetic_outer_fragments_pcap() {
    let frames = read_pcap("synthetic/vxlan-outer-ipv4-frag-inorder.pcap");
    assert_eq!(frames.len(), 4);
    let outcomes: Vec<_> = frames
        .iter()
        .map(|f| decapsulate(f, &PortSet::default()).map(|d| d.vni))
        .collect();
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    assert_eq!(outcomes[1], Err(Reject::OuterFragment));
    assert_eq!(outcomes[2], Err(Reject::OuterFragment));
    assert!(outcomes[3].is_ok(), "{outcomes:?}");
}

#[test]
fn synthetic_outer_fragments_reassemble() {
    let frames = read_pcap("synthetic/vxlan-outer-ipv4-frag-inorder.pcap");
    let mut reassembler = Reassembler::new(ReassemblyConfig::default()).expect("default config");
    let ports = PortSet::default();
    let mut inner_frames = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        let now_ns = i as u64 * 1_000;
        match decapsulate(frame, &ports) {
            Ok(decap) => inner_frames.push(decap.inner.to_vec()),
            Err(Reject::OuterFragment) => {
                assert!(is_ipv4_fragment(frame), "frame {}", i + 1);
                if let Push::Complete(whole) = reassembler.push(frame, now_ns) {
                    assert_eq!(whole.len(), 14 + 1550, "the README's 1550-byte datagram");
                    let decap = decapsulate(whole, &ports).expect("reassembled frame decaps");
                    inner_frames.push(decap.inner.to_vec());
                }
            }
            Err(other) => panic!("frame {}: {other}", i + 1),
        }
    }
    // Small, big (reassembled from frames 2 and 3), small: in capture order.
    let lengths: Vec<usize> = inner_frames.iter().map(Vec::len).collect();
    assert_eq!(lengths, [52 + 14, 1500 + 14, 52 + 14]);
    assert_eq!(
        reassembler.counters().get(ReassemblyEvent::Reassembled),
        1,
        "{:?}",
        reassembler.counters()
    );
    assert_eq!(reassembler.pending(), 0);
    // The 1500-byte inner IPv4 packet is whole.
    assert_eq!(inner_orig_len(&inner_frames[1]), inner_frames[1].len());
}

#[test]
fn aws_frames_are_not_truncated_and_cut_copies_are() {
    let frames = read_pcap("suricata-verify/aws-traffic-mirroring-vxlan.pcap");
    let ports = PortSet::default();
    for (i, frame) in frames.iter().enumerate() {
        let decap = decapsulate(frame, &ports).expect("AWS frame");
        assert!(!decap.is_truncated(), "frame {}", i + 1);
        assert_eq!(decap.inner_orig_len(), decap.inner.len(), "frame {}", i + 1);
    }
    // What an AWS session with PacketLength 128 would send for the largest frame: the inner
    // frame cut to 128 bytes, the outer headers sized for the cut frame.
    let largest = frames.iter().max_by_key(|f| f.len()).expect("frames");
    let inner = decapsulate(largest, &ports).expect("AWS frame").inner;
    assert_eq!(inner.len(), 1508 - 50);
    let cut = VxlanFrameBuilder::new()
        .outer_src_ip(Ipv4Addr::new(172, 31, 0, 238))
        .outer_dst_ip(Ipv4Addr::new(172, 31, 17, 188))
        .vni(5_569_041)
        .inner(&inner[..128])
        .build()
        .expect("valid");
    let decap = decapsulate(&cut, &ports).expect("cut frame");
    assert_eq!(decap.inner.len(), 128);
    assert!(decap.is_truncated());
    assert_eq!(decap.inner_orig_len(), inner.len());
}

#[test]
fn synthetic_vlan_tags_pcap() {
    let frames = read_pcap("synthetic/vxlan-vlan-tags.pcap");
    assert_eq!(frames.len(), 3);
    let decaps: Vec<_> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            decapsulate(f, &PortSet::default())
                .unwrap_or_else(|r| panic!("vxlan-vlan-tags.pcap frame {}: {r}", i + 1))
        })
        .collect();
    // Inner tags are the inner frame's business: the outer frame is untagged.
    assert_eq!(decaps[0].outer_vlan_count, 0);
    assert_eq!(inner_ethertype(&decaps[0]), EtherType::VLAN);
    assert_eq!(decaps[1].outer_vlan_count, 0);
    assert_eq!(inner_ethertype(&decaps[1]), EtherType::QINQ);
    // Outer 802.1Q 42.
    assert_eq!(decaps[2].outer_vlan_ids(), &[42]);
}
