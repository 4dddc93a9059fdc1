//! `decapsulate` on arbitrary bytes, with one of a few port sets.
//!
//! Input: one selector byte (bits 0-2: which `PortSet`, VXLAN and GENEVE ports and the tunnel
//! depth limit), then the outer frame. Besides "never panics", every success must keep the
//! invariants `Decapsulated` documents — for VXLAN, GENEVE with an Ethernet or a bare IP payload,
//! and VXLAN nested in GENEVE — and the truncation helpers must agree with each other. The same
//! bytes are also read as the XDP program's receive record (`RxMeta::split`), which must hand
//! back the rest of the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxdecap_wire::decap::{MAX_VLAN_TAGS, SYNTHETIC_ETHERNET_LEN, VXLAN_GPE_PORT};
use vxdecap_wire::{decapsulate, inner_orig_len, vxlan, PortSet, Reject, RxMeta, Tunnel};

/// The port set of a selector byte: 0-3 VXLAN sets (with GENEVE on 6081 unless a VXLAN port
/// took it), 4 GENEVE off, 5 two GENEVE ports and depth 1, 6 depth 4, 7 GENEVE on 4789's
/// neighbour and VXLAN on 6081.
fn port_set(selector: u8) -> PortSet {
    let ports: &[u16] = match selector % 8 {
        0 | 4..=6 => &[4789],
        1 => &[4789, 8472],
        2 => &[8472],
        3 => &[4789, 8472, 10800, 10801, 6081, 1, 65535, 4788],
        _ => &[6081],
    };
    let set = PortSet::new(ports).expect("valid port sets");
    match selector % 8 {
        4 => set.with_geneve(&[]).expect("no GENEVE"),
        5 => set
            .with_geneve(&[6081, 7000])
            .expect("two GENEVE ports")
            .with_max_depth(1),
        6 => set.with_max_depth(4),
        7 => set.with_geneve(&[4788]).expect("one GENEVE port"),
        _ => set,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let ports = port_set(selector);
    match decapsulate(frame, &ports) {
        Ok(decap) => {
            let end = decap.inner_offset + decap.inner.len();
            assert_eq!(frame.get(decap.inner_offset..end), Some(decap.inner));
            assert!(decap.vni <= vxlan::MAX_VNI);
            match (decap.tunnel(), decap.bare_ip(), decap.geneve) {
                (Tunnel::Vxlan, None, geneve) => {
                    assert!(decap.inner.len() >= 14);
                    assert_ne!(decap.vxlan_flags & vxlan::FLAG_I, 0);
                    // Alone: to a VXLAN port. Nested: the outermost header is GENEVE's.
                    match geneve {
                        None => assert!(ports.contains(decap.outer_dst_port)),
                        Some(layer) => {
                            assert!(ports.max_depth() >= 2);
                            assert!(layer.protocol == 0x0800 || layer.protocol == 0x86dd);
                            assert!(ports.contains_geneve(decap.outer_dst_port));
                        }
                    }
                }
                (Tunnel::Geneve, bare, Some(layer)) => {
                    assert!(ports.contains_geneve(decap.outer_dst_port));
                    // The outermost GENEVE layer: the same header unless GENEVE was nested.
                    assert!(layer.vni == decap.vni || ports.max_depth() >= 2);
                    assert_eq!(decap.vxlan_flags, 0);
                    match bare {
                        None => assert!(decap.inner.len() >= 14),
                        Some(ethertype) => {
                            assert!(ethertype == 0x0800 || ethertype == 0x86dd);
                            assert_eq!(layer.protocol, ethertype);
                            assert!(decap.inner.len() >= 20);
                            // Room for the synthetic header in place: at least the UDP and
                            // GENEVE headers (16 bytes) come before the payload.
                            assert!(decap.inner_offset >= 14 + 20 + 8 + 8);
                            assert_eq!(decap.frame_offset() + SYNTHETIC_ETHERNET_LEN, decap.inner_offset);
                            assert_eq!(decap.frame_len(), decap.inner.len() + SYNTHETIC_ETHERNET_LEN);
                        }
                    }
                }
                other => panic!("impossible shape {other:?}"),
            }
            assert_ne!(decap.outer_dst_port, VXLAN_GPE_PORT);
            assert!(usize::from(decap.outer_vlan_count) <= MAX_VLAN_TAGS);
            assert_eq!(
                decap.outer_vlan_ids().len(),
                usize::from(decap.outer_vlan_count)
            );
            assert_eq!(decap.outer_src.is_ipv4(), decap.outer_dst.is_ipv4());

            let orig = decap.inner_orig_len();
            if decap.bare_ip().is_none() {
                assert_eq!(orig, inner_orig_len(decap.inner));
            }
            assert!(orig >= decap.frame_len());
            // L2 header (Ethernet and two tags) plus the largest IPv6 packet.
            assert!(orig <= decap.frame_len().max(22 + 40 + 65_535));
            assert_eq!(decap.is_truncated(), orig > decap.frame_len());
        }
        Err(reason) => {
            assert_eq!(Reject::ALL[reason.index()], reason);
            assert!(!reason.name().is_empty());
        }
    }
    // The truncation helper on any bytes, not just on inner frames.
    assert!(inner_orig_len(frame) >= frame.len());
    // The XDP program's receive record, read as the live worker reads it in front of a frame.
    if let Some((meta, rest)) = RxMeta::split(frame) {
        assert_eq!(rest, &frame[RxMeta::LEN..]);
        assert_eq!(meta.to_bytes()[..14], frame[..14]);
    }
});
