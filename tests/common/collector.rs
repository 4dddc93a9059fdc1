//! A collector namespace for the deployment tests (`tests/service.rs`,
//! `tests/prometheus.rs`, `tests/top.rs`): `eth1` in the collector, its veth
//! peer `und0` in a sender namespace, and VXLAN frames made here (known
//! VNIs and counts) sent through an AF_PACKET socket. Both namespaces, and
//! so the veth, go away on drop. Included with `#[path]` next to `common`.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses part of the helpers"
)]

use std::net::Ipv4Addr;

// The library's namespace helpers, named here once for the tests that include this file.
pub(crate) use vxdecap::lab::netns::{
    unique_name, veth_pair, veth_pair_with_queues, ChildGuard, NetNs, WatchedChild,
};

use crate::common::{inner, send_raw, vxlan_wrap, TempDir};

/// The outer source of the frames sent (a mirrored VM).
pub(crate) const MIRROR_SOURCE: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);

/// A sender and a collector namespace joined by a veth pair.
pub(crate) struct Collector {
    /// Where the capture runs (`eth1`, loopback up).
    pub ns: NetNs,
    /// Where frames come from (`und0`).
    pub sender: NetNs,
    queues: u32,
}

impl Collector {
    /// A collector whose `eth1` has `queues` rx queues.
    pub(crate) fn new(tag: &str, queues: u32) -> Self {
        let base = unique_name(tag);
        let sender = NetNs::create(&format!("{base}-tx")).expect("sender netns");
        let ns = NetNs::create(&format!("{base}-rx")).expect("collector netns");
        let collector = Self { ns, sender, queues };
        collector.plug();
        collector
    }

    /// Creates the veth pair (again, after [`Collector::unplug`]): a new
    /// `eth1`, with a new ifindex.
    pub(crate) fn plug(&self) {
        veth_pair_with_queues(&self.sender, "und0", &self.ns, "eth1", self.queues)
            .expect("veth pair");
        self.sender
            .configure("und0", "10.79.0.1/24")
            .expect("sender address");
        self.ns
            .configure("eth1", "10.79.0.2/24")
            .expect("collector address");
    }

    /// Deletes `eth1` (and so its peer), as host servicing removes a NIC.
    pub(crate) fn unplug(&self) {
        self.ns.ip(&["link", "del", "eth1"]).expect("delete eth1");
    }

    /// Whether an XDP program is attached to `eth1`.
    pub(crate) fn xdp_attached(&self) -> bool {
        self.ns
            .ip(&["-o", "link", "show", "eth1"])
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(" xdp"))
    }

    /// Sends `count` VXLAN frames on `vni` (inner UDP, distinct source
    /// ports) from [`MIRROR_SOURCE`].
    pub(crate) fn send(&self, vni: u32, count: usize, tmp: &TempDir) {
        let frames = vxlan_frames(vni, count);
        send_raw(&self.sender, "und0", &frames, tmp);
    }
}

/// `count` VXLAN frames on `vni`, each with its own inner flow.
pub(crate) fn vxlan_frames(vni: u32, count: usize) -> Vec<Vec<u8>> {
    let inner: Vec<Vec<u8>> = (0..count)
        .map(|n| inner::udp(10_000 + (n % 50_000) as u16))
        .collect();
    vxlan_wrap(&inner, vni, MIRROR_SOURCE)
}
