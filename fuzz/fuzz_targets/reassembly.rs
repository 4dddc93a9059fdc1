//! The outer IPv4 reassembler on a sequence of fragments carved from the input, at arbitrary
//! times.
//!
//! Input layout (little-endian; an op cut short by the end of the input is skipped):
//!
//! ```text
//! config: 5 bytes  max_datagrams, max_datagram_len choice, extra budget blocks,
//!                  max_fragments, timeout
//! ops:    op byte, then by op % 4
//!   0  raw frame      u16 length, that many bytes (fewer if the input ends): pushed as is
//!   1  carved piece   u16 start (8-byte units), u16 length; op bits: 0x04 template B (else
//!                     A), 0x08 MF set, 0x10 MF set exactly when not the end, 0x20 IP ID 1
//!   2  time step      u32 nanoseconds forward, then expire(now)
//!   3  time jump      u64 absolute time (may go backwards)
//! ```
//!
//! Templates A and B are two VXLAN frames of different sizes between the same outer addresses
//! with IP ID 0 (Azure-like): pieces of both collide under one key.
//!
//! Checked after every op: no panic; one counted outcome per push (`fragments` equals the sum
//! of outcomes, and each outcome count equals what the harness saw); pending datagrams and
//! buffered bytes within their bounds; no allocation growth; any emitted frame consistent
//! (valid IPv4 header and checksum, total length equal to the frame length minus the L2
//! header, not a fragment). When only carved pieces were pushed, an emitted frame holds only
//! template bytes, decapsulates, and with template A alone is exactly A. At the end, expiring
//! past every start time leaves nothing pending.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vxdecap_wire::build::{inner_ipv4_udp_frame, InnerIpv4Udp, VxlanFrameBuilder};
use vxdecap_wire::decap::MAX_VLAN_TAGS;
use vxdecap_wire::reassembly::{ReassemblyCounters, BLOCK_LEN, MAX_L2_HEADER_LEN};
use vxdecap_wire::{
    decapsulate, ipv4, vlan, PortSet, Push, Reassembler, ReassemblyConfig, ReassemblyEvent,
};

/// Offsets in the untagged templates.
const L3: usize = 14;
const PAYLOAD: usize = L3 + 20;

struct Templates {
    a: Vec<u8>,
    b: Vec<u8>,
}

fn templates() -> &'static Templates {
    static TEMPLATES: OnceLock<Templates> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let build = |payload_len, payload_seed| {
            let inner = inner_ipv4_udp_frame(&InnerIpv4Udp {
                payload_len,
                payload_seed,
                ..Default::default()
            })
            .expect("small inner frame");
            VxlanFrameBuilder::new()
                .outer_src_ip(Ipv4Addr::new(10, 0, 2, 4))
                .outer_dst_ip(Ipv4Addr::new(10, 1, 1, 4))
                .udp_src_port(52889)
                .vni(27)
                .inner(&inner)
                .build()
                .expect("valid frame")
        };
        Templates {
            // 1550-byte outer IPv4 datagrams (a 1500-byte inner packet), and 1518-byte ones.
            a: build(1472, 1),
            b: build(1440, 0x80),
        }
    })
}

/// Reads little-endian integers off the front of the input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        self.bytes(8)
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
}

fn config(r: &mut Reader<'_>) -> Option<ReassemblyConfig> {
    let [datagrams, len_choice, extra_blocks, fragments, timeout] = *r.bytes(5)? else {
        return None;
    };
    let max_datagram_len = match len_choice % 4 {
        0 => 1600,
        1 => ReassemblyConfig::DEFAULT_MAX_DATAGRAM_LEN,
        // Smaller than template A: its pieces become too_large.
        2 => 1000,
        _ => 65_535,
    };
    let needed = max_datagram_len.div_ceil(BLOCK_LEN) * BLOCK_LEN;
    Some(ReassemblyConfig {
        max_datagrams: 1 + usize::from(datagrams % 4),
        max_datagram_len,
        max_fragments: 2 + usize::from(fragments % 63),
        memory_budget: needed + usize::from(extra_blocks % 16) * BLOCK_LEN,
        timeout_ns: 1_000 * (1 + u64::from(timeout)),
    })
}

/// A fragment of `template`'s IPv4 payload at `[start, start + len)` (clamped to the payload).
fn carve(template: &[u8], op: u8, start_units: u16, len: u16, out: &mut Vec<u8>) {
    let payload = &template[PAYLOAD..];
    let start = (usize::from(start_units) * 8) % (payload.len() + 8);
    let start = start.min(payload.len());
    let end = (start + usize::from(len)).min(payload.len());
    let more = if op & 0x10 != 0 {
        end < payload.len()
    } else {
        op & 0x08 != 0
    };
    out.clear();
    out.extend_from_slice(&template[..PAYLOAD]);
    out.extend_from_slice(&payload[start..end]);
    let mut ip = ipv4::Packet::new_unchecked(&mut out[L3..]);
    ip.set_total_len((20 + end - start) as u16);
    ip.set_frag_offset(start as u16);
    ip.set_more_frags(more);
    ip.set_ident(u16::from(op & 0x20 != 0));
    ip.fill_checksum();
}

/// The checks every emitted frame must pass; returns its IPv4 payload.
fn check_emitted<'a>(frame: &'a [u8], config: &ReassemblyConfig) -> &'a [u8] {
    assert!(frame.len() <= MAX_L2_HEADER_LEN + config.max_datagram_len);
    let (ethertype, l3) = vlan::skip_tags(frame, MAX_VLAN_TAGS).expect("L2 header intact");
    assert_eq!(ethertype, 0x0800);
    let ip = ipv4::Packet::new_checked(&frame[l3..]).expect("a valid IPv4 header");
    assert_eq!(
        usize::from(ip.total_len()),
        frame.len() - l3,
        "total length"
    );
    assert!(usize::from(ip.total_len()) <= config.max_datagram_len);
    assert!(!ip.is_fragment());
    assert!(ip.verify_checksum());
    ip.payload()
}

fn check_counters(counters: &ReassemblyCounters, seen: &[u64; ReassemblyEvent::COUNT]) {
    assert_eq!(
        counters.get(ReassemblyEvent::Fragments),
        counters.fragment_outcomes()
    );
    for event in ReassemblyEvent::FRAGMENT_OUTCOMES {
        assert_eq!(counters.get(event), seen[event.index()], "{}", event.name());
    }
    // Every fragment once in packet units: reassembled, merged, lost by reason, or waiting.
    assert_eq!(
        counters.get(ReassemblyEvent::Fragments),
        counters.packet_outcomes() + counters.pending_fragments()
    );
}

fuzz_target!(|data: &[u8]| {
    let templates = templates();
    let mut input = Reader(data);
    let Some(config) = config(&mut input) else {
        return;
    };
    let mut reassembler = Reassembler::new(config).expect("the harness builds valid configs");
    let allocated = reassembler.allocated_bytes();
    let ports = PortSet::default();
    let mut seen = [0u64; ReassemblyEvent::COUNT];
    let mut now = 0u64;
    let mut latest = 0u64;
    let mut used_raw = false;
    let mut used_b = false;
    let mut piece = Vec::with_capacity(2048);

    while let Some(op) = input.u8() {
        let frame: &[u8] = match op % 4 {
            0 => {
                let Some(len) = input.u16() else { break };
                let len = usize::from(len).min(input.0.len());
                used_raw = true;
                input.bytes(len).unwrap_or_default()
            }
            1 => {
                let (Some(start), Some(len)) = (input.u16(), input.u16()) else {
                    break;
                };
                let template = if op & 0x04 != 0 {
                    used_b = true;
                    &templates.b
                } else {
                    &templates.a
                };
                carve(template, op, start, len, &mut piece);
                &piece
            }
            2 => {
                let Some(step) = input.u32() else { break };
                now = now.saturating_add(u64::from(step));
                latest = latest.max(now);
                reassembler.expire(now);
                assert!(reassembler.pending() <= config.max_datagrams);
                continue;
            }
            _ => {
                let Some(at) = input.u64() else { break };
                now = at;
                latest = latest.max(now);
                continue;
            }
        };

        match reassembler.push(frame, now) {
            Push::Complete(whole) => {
                seen[ReassemblyEvent::Reassembled.index()] += 1;
                let payload = check_emitted(whole, &config);
                if !used_raw {
                    let (a, b) = (&templates.a[PAYLOAD..], &templates.b[PAYLOAD..]);
                    assert!(payload.len() == a.len() || payload.len() == b.len());
                    for (i, byte) in payload.iter().enumerate() {
                        assert!(
                            a.get(i) == Some(byte) || b.get(i) == Some(byte),
                            "byte {i} is from neither template"
                        );
                    }
                    if !used_b {
                        assert_eq!(payload, a, "template A alone must come back whole");
                    }
                    let decap = decapsulate(whole, &ports).expect("template frames decapsulate");
                    assert_eq!(decap.vni, 27);
                } else {
                    let _ = decapsulate(whole, &ports);
                }
            }
            Push::Held => seen[ReassemblyEvent::Held.index()] += 1,
            Push::Dropped(reason) => {
                assert!(ReassemblyEvent::FRAGMENT_OUTCOMES.contains(&reason));
                seen[reason.index()] += 1;
            }
        }
        check_counters(reassembler.counters(), &seen);
        assert!(reassembler.pending() <= config.max_datagrams);
        assert!(reassembler.buffered_bytes() <= config.memory_budget);
        assert_eq!(reassembler.allocated_bytes(), allocated);
    }

    // Past every start time, nothing is left.
    if let Some(end) = latest.checked_add(config.timeout_ns) {
        reassembler.expire(end);
        assert_eq!(reassembler.pending(), 0);
        assert_eq!(reassembler.buffered_bytes(), 0);
    }
    check_counters(reassembler.counters(), &seen);
});
