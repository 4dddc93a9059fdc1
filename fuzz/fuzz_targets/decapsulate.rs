//! `decapsulate` on arbitrary bytes, with one of a few port sets.
//!
//! Input: one selector byte (which `PortSet`), then the outer frame. Besides "never panics",
//! every success must keep the invariants `Decapsulated` documents, and the truncation helpers
//! must agree with each other. The same bytes are also read as the XDP program's receive
//! record (`RxMeta::split`), which must hand back the rest of the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxdecap_wire::decap::{MAX_VLAN_TAGS, VXLAN_GPE_PORT};
use vxdecap_wire::{decapsulate, inner_orig_len, vxlan, PortSet, Reject, RxMeta};

fn port_set(selector: u8) -> PortSet {
    let ports: &[u16] = match selector % 4 {
        0 => &[4789],
        1 => &[4789, 8472],
        2 => &[8472],
        // Azure Gateway Load Balancer's VXLAN ports, GENEVE's, and more: a full set.
        _ => &[4789, 8472, 10800, 10801, 6081, 1, 65535, 4788],
    };
    PortSet::new(ports).expect("valid port sets")
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
            assert!(decap.inner.len() >= 14);
            assert!(decap.vni <= vxlan::MAX_VNI);
            assert_ne!(decap.vxlan_flags & vxlan::FLAG_I, 0);
            assert!(ports.contains(decap.outer_dst_port));
            assert_ne!(decap.outer_dst_port, VXLAN_GPE_PORT);
            assert!(usize::from(decap.outer_vlan_count) <= MAX_VLAN_TAGS);
            assert_eq!(
                decap.outer_vlan_ids().len(),
                usize::from(decap.outer_vlan_count)
            );
            assert_eq!(decap.outer_src.is_ipv4(), decap.outer_dst.is_ipv4());

            let orig = decap.inner_orig_len();
            assert_eq!(orig, inner_orig_len(decap.inner));
            assert!(orig >= decap.inner.len());
            // L2 header (Ethernet and two tags) plus the largest IPv6 packet.
            assert!(orig <= decap.inner.len().max(22 + 40 + 65_535));
            assert_eq!(decap.is_truncated(), orig > decap.inner.len());
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
