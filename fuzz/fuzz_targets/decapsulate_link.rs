//! `decapsulate_link` on arbitrary bytes, for every capture link type and a few port sets.
//!
//! Input: one selector byte (bits 0-1: the port set, as in the `decapsulate` target's first
//! four, GENEVE on 6081 where no VXLAN port took it; bits 2-4: the link type, in the order of
//! `LINKS`), then the captured frame. Besides "never panics":
//! a success keeps `Decapsulated`'s invariants, Ethernet gives exactly what `decapsulate`
//! gives, and any link type gives what `decapsulate` gives for the same packet behind an
//! Ethernet header (the header `link_payload` reads is the only difference).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vxdecap_wire::decap::MAX_VLAN_TAGS;
use vxdecap_wire::link::{decapsulate_link, link_payload, LinkType};
use vxdecap_wire::{decapsulate, vxlan, PortSet, Reject};

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
];

fn port_set(selector: u8) -> PortSet {
    let ports: &[u16] = match selector % 4 {
        0 => &[4789],
        1 => &[4789, 8472],
        2 => &[8472],
        _ => &[4789, 8472, 10800, 10801, 6081, 1, 65535, 4788],
    };
    PortSet::new(ports).expect("valid port sets")
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let ports = port_set(selector);
    let link = LINKS[usize::from(selector >> 2) % LINKS.len()];
    let result = decapsulate_link(frame, link, &ports);
    match &result {
        Ok(decap) => {
            let end = decap.inner_offset + decap.inner.len();
            assert_eq!(frame.get(decap.inner_offset..end), Some(decap.inner));
            assert!(decap.inner.len() >= if decap.bare_ip().is_some() { 20 } else { 14 });
            assert!(decap.vni <= vxlan::MAX_VNI);
            if decap.geneve.is_none() {
                assert_ne!(decap.vxlan_flags & vxlan::FLAG_I, 0);
                assert!(ports.contains(decap.outer_dst_port));
            } else {
                assert!(ports.contains_geneve(decap.outer_dst_port));
            }
            assert!(usize::from(decap.outer_vlan_count) <= MAX_VLAN_TAGS);
            assert_eq!(decap.outer_src.is_ipv4(), decap.outer_dst.is_ipv4());
        }
        Err(reason) => assert_eq!(Reject::ALL[reason.index()], *reason),
    }
    if link == LinkType::Ethernet {
        assert_eq!(result, decapsulate(frame, &ports));
        return;
    }
    // The same packet behind an Ethernet header decapsulates the same way.
    let Ok((ethertype, offset)) = link_payload(frame, link) else {
        assert!(result.is_err());
        return;
    };
    let mut ethernet = vec![0u8; 12];
    ethernet.extend_from_slice(&ethertype.to_be_bytes());
    ethernet.extend_from_slice(&frame[offset..]);
    let reference = decapsulate(&ethernet, &ports);
    match (&result, &reference) {
        (Ok(got), Ok(want)) => {
            assert_eq!(got.inner, want.inner);
            assert_eq!(got.inner_offset + 14, want.inner_offset + offset);
            assert_eq!(
                (got.vni, got.outer_src, got.outer_dst, got.outer_src_port),
                (want.vni, want.outer_src, want.outer_dst, want.outer_src_port)
            );
            assert_eq!(
                (got.tunnel(), got.bare_ip(), got.geneve),
                (want.tunnel(), want.bare_ip(), want.geneve)
            );
        }
        (Err(got), Err(want)) => assert_eq!(got, want),
        _ => panic!("{link:?}: {result:?} but behind Ethernet {reference:?}"),
    }
});
