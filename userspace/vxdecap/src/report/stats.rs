//! Per-worker counters: plain integers on the hot path, published to
//! atomics once per batch for the reporting thread.

use std::sync::atomic::{AtomicU64, Ordering};

use vxdecap_wire::reassembly::{ReassemblyCounters, ReassemblyEvent};
use vxdecap_wire::Reject;

use crate::analyzer::MAX_ANALYZERS;

/// Counters of the decapsulation stage that are not reject reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum StageCounter {
    /// Outer frames received from the socket or the file.
    Received,
    /// Bytes of those outer frames.
    ReceivedBytes,
    /// Inner frames decapsulated and offered to the analyzers.
    Delivered,
    /// Bytes of those inner frames.
    DeliveredBytes,
    /// Redirected frames without the XDP program's receive record (stamped
    /// with the batch's receive time instead).
    NoRxTimestamp,
    /// Inner frames cut to the slot size (the pcap record keeps the original length).
    TruncatedToSlot,
    /// Inner frames the mirror truncated (AWS PacketLength): written with
    /// their original length in the record.
    TruncatedMirror,
    /// Receive batches that held at least one frame.
    Batches,
    /// Polls of the RX ring that found nothing.
    EmptyPolls,
    /// Reassembled datagrams from a source outside the allowlist (XDP saw
    /// only the first fragment, or the list changed since): dropped.
    FragmentSourceNotAllowed,
    /// Reassembled datagrams with a VNI outside the allowlist (XDP could not
    /// see the VNI when the first fragment ended before the VXLAN header, or
    /// the list changed since): dropped, as `drop_vni_not_allowed` in XDP.
    FragmentVniNotAllowed,
    /// Outer fragments held by datagrams still being reassembled (a gauge).
    FragmentsPending,
    /// Delivered frames whose GENEVE header had the critical bit set: counted, not obeyed
    /// (a capture tool is not the tunnel endpoint the bit speaks to).
    GeneveCritical,
    /// Delivered frames whose GENEVE options ran past their length (the payload still
    /// starts where the header's length says).
    GeneveOptionsMalformed,
    /// Delivered frames of GENEVE with AWS Gateway Load Balancer options and no Traffic
    /// Mirroring VXLAN inside: the inline load balancer path, whose packets are not returned.
    GwlbInline,
    /// Delivered frames that came in GENEVE alone.
    DeliveredGeneve,
    /// Delivered frames that came in VXLAN inside GENEVE (AWS Traffic Mirroring through a
    /// Gateway Load Balancer endpoint).
    DeliveredGeneveVxlan,
}

const STAGE_COUNTERS: usize = 17;
/// Number of slots: stage counters, one per reject reason, one per analyzer
/// (frames that analyzer did not get because it was behind), then the
/// reassembler's event counts and its outcomes in packet units.
pub const COUNTER_SLOTS: usize =
    STAGE_COUNTERS + Reject::COUNT + MAX_ANALYZERS + 2 * ReassemblyEvent::COUNT;
const BACKPRESSURE_SLOT: usize = STAGE_COUNTERS + Reject::COUNT;
const REASSEMBLY_SLOT: usize = BACKPRESSURE_SLOT + MAX_ANALYZERS;
const REASSEMBLY_PACKETS_SLOT: usize = REASSEMBLY_SLOT + ReassemblyEvent::COUNT;

impl StageCounter {
    /// Every counter, in slot order.
    pub const ALL: [Self; STAGE_COUNTERS] = [
        Self::Received,
        Self::ReceivedBytes,
        Self::Delivered,
        Self::DeliveredBytes,
        Self::NoRxTimestamp,
        Self::TruncatedToSlot,
        Self::TruncatedMirror,
        Self::Batches,
        Self::EmptyPolls,
        Self::FragmentSourceNotAllowed,
        Self::FragmentVniNotAllowed,
        Self::FragmentsPending,
        Self::GeneveCritical,
        Self::GeneveOptionsMalformed,
        Self::GwlbInline,
        Self::DeliveredGeneve,
        Self::DeliveredGeneveVxlan,
    ];

    /// Stable name, as shown in summaries and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::ReceivedBytes => "received_bytes",
            Self::Delivered => "delivered",
            Self::DeliveredBytes => "delivered_bytes",
            Self::NoRxTimestamp => "no_rx_timestamp",
            Self::TruncatedToSlot => "truncated_to_slot",
            Self::TruncatedMirror => "truncated_mirror",
            Self::Batches => "batches",
            Self::EmptyPolls => "empty_polls",
            Self::FragmentSourceNotAllowed => "fragment_source_not_allowed",
            Self::FragmentVniNotAllowed => "fragment_vni_not_allowed",
            Self::FragmentsPending => "fragments_pending",
            Self::GeneveCritical => "geneve_critical",
            Self::GeneveOptionsMalformed => "geneve_options_malformed",
            Self::GwlbInline => "gwlb_inline",
            Self::DeliveredGeneve => "delivered_geneve",
            Self::DeliveredGeneveVxlan => "delivered_geneve_vxlan",
        }
    }
}

/// A worker's own counters; no atomics, no sharing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageStats {
    values: [u64; COUNTER_SLOTS],
}

impl Default for StageStats {
    fn default() -> Self {
        Self {
            values: [0; COUNTER_SLOTS],
        }
    }
}

impl StageStats {
    /// Adds `n` to a stage counter.
    #[inline]
    pub fn add(&mut self, counter: StageCounter, n: u64) {
        self.values[counter as usize] += n;
    }

    /// Counts one frame rejected for `reason`.
    #[inline]
    pub fn reject(&mut self, reason: Reject) {
        self.values[STAGE_COUNTERS + reason.index()] += 1;
    }

    /// Value of a stage counter.
    pub fn get(&self, counter: StageCounter) -> u64 {
        self.values[counter as usize]
    }

    /// Frames rejected for `reason`.
    pub fn rejected(&self, reason: Reject) -> u64 {
        self.values[STAGE_COUNTERS + reason.index()]
    }

    /// Frames rejected for any reason.
    pub fn rejected_total(&self) -> u64 {
        self.values[STAGE_COUNTERS..BACKPRESSURE_SLOT].iter().sum()
    }

    /// Sets the frames analyzer `analyzer` missed because it was behind.
    #[inline]
    pub fn set_analyzer_backpressure(&mut self, analyzer: usize, n: u64) {
        if analyzer < MAX_ANALYZERS {
            self.values[BACKPRESSURE_SLOT + analyzer] = n;
        }
    }

    /// Copies the reassembler's counters.
    #[inline]
    pub fn set_reassembly(&mut self, counters: &ReassemblyCounters) {
        for (event, n) in counters.iter() {
            self.values[REASSEMBLY_SLOT + event.index()] = n;
            self.values[REASSEMBLY_PACKETS_SLOT + event.index()] = counters.packets(event);
        }
        self.values[StageCounter::FragmentsPending as usize] = counters.pending_fragments();
    }

    /// A reassembly event count (fragments, reassembled datagrams, drops by
    /// reason; a timeout is one per datagram).
    pub fn reassembly(&self, event: ReassemblyEvent) -> u64 {
        self.values[REASSEMBLY_SLOT + event.index()]
    }

    /// Outer fragments accounted to a reassembly outcome, in packets
    /// ([`ReassemblyEvent::PACKET_OUTCOMES`]): `merged`, and every fragment
    /// of a dropped datagram under the reason it was dropped for.
    pub fn reassembly_packets(&self, event: ReassemblyEvent) -> u64 {
        self.values[REASSEMBLY_PACKETS_SLOT + event.index()]
    }

    /// Frames analyzer `analyzer` missed because it was behind
    /// (`analyzer_backpressure`).
    pub fn analyzer_backpressure(&self, analyzer: usize) -> u64 {
        if analyzer < MAX_ANALYZERS {
            self.values[BACKPRESSURE_SLOT + analyzer]
        } else {
            0
        }
    }

    /// Adds another worker's counters to these.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.values.iter_mut().zip(other.values.iter()) {
            *a += b;
        }
    }
}

/// The published copy of a worker's counters.
#[derive(Debug)]
pub struct SharedStats {
    values: [AtomicU64; COUNTER_SLOTS],
}

impl Default for SharedStats {
    fn default() -> Self {
        Self {
            values: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl SharedStats {
    /// Publishes `stats` (called by the owning worker, once per batch).
    #[inline]
    pub fn publish(&self, stats: &StageStats) {
        for (slot, value) in self.values.iter().zip(stats.values.iter()) {
            slot.store(*value, Ordering::Relaxed);
        }
    }

    /// The last published counters.
    pub fn snapshot(&self) -> StageStats {
        StageStats {
            values: std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed)),
        }
    }
}

/// The tunnels a frame came through, as metrics label them and per-VNI counts keep them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TunnelPath {
    /// VXLAN alone.
    Vxlan = 0,
    /// GENEVE alone.
    Geneve = 1,
    /// VXLAN inside GENEVE (AWS Traffic Mirroring through a Gateway Load Balancer endpoint).
    GeneveVxlan = 2,
}

impl TunnelPath {
    /// Every path, in label order.
    pub const ALL: [Self; 3] = [Self::Vxlan, Self::Geneve, Self::GeneveVxlan];

    /// The path of a frame: its innermost tunnel, and whether a GENEVE header was around it.
    #[inline]
    pub fn of(tunnel: vxdecap_wire::Tunnel, through_geneve: bool) -> Self {
        match (tunnel, through_geneve) {
            (vxdecap_wire::Tunnel::Vxlan, false) => Self::Vxlan,
            (vxdecap_wire::Tunnel::Vxlan, true) => Self::GeneveVxlan,
            (vxdecap_wire::Tunnel::Geneve, _) => Self::Geneve,
        }
    }

    /// The metrics label value: `vxlan`, `geneve`, `geneve_vxlan`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::Geneve => "geneve",
            Self::GeneveVxlan => "geneve_vxlan",
        }
    }

    /// The key [`VniCounts`] counts `vni` of this path under: the VNI in the low 24 bits,
    /// the path above (0 for VXLAN, so a VXLAN key is the VNI itself).
    #[inline]
    pub const fn vni_key(self, vni: u32) -> u32 {
        (vni & 0x00ff_ffff) | ((self as u32) << 24)
    }
}

/// A per-VNI key as shown: `27` for VXLAN (as always), `geneve:7`, `geneve+vxlan:4242`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VniKey(pub u32);

impl std::fmt::Display for VniKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vni = self.0 & 0x00ff_ffff;
        match self.0 >> 24 {
            0 => write!(f, "{vni}"),
            1 => write!(f, "geneve:{vni}"),
            _ => write!(f, "geneve+vxlan:{vni}"),
        }
    }
}

/// Distinct VNIs a worker counts on its own; frames of further VNIs count
/// as "other". Bounded, so forged traffic with random VNIs cannot grow it.
pub const VNI_SLOTS: usize = 64;
const EMPTY_VNI: u32 = u32::MAX; // VNIs are 24 bits: never a real one

/// Inner frames per VNI: a fixed open-addressing table, no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VniCounts {
    keys: [u32; VNI_SLOTS],
    counts: [u64; VNI_SLOTS],
    /// Frames of VNIs that found no free slot.
    pub other: u64,
}

impl Default for VniCounts {
    fn default() -> Self {
        Self {
            keys: [EMPTY_VNI; VNI_SLOTS],
            counts: [0; VNI_SLOTS],
            other: 0,
        }
    }
}

impl VniCounts {
    /// Counts one frame of `vni` (a VXLAN VNI, or a key of [`TunnelPath::vni_key`]).
    #[inline]
    pub fn add(&mut self, vni: u32) {
        let start = (vni.wrapping_mul(0x9E37_79B9) >> 26) as usize; // 6 bits: 0..64
        for probe in 0..VNI_SLOTS {
            let slot = (start + probe) % VNI_SLOTS;
            if self.keys[slot] == vni {
                self.counts[slot] += 1;
                return;
            }
            if self.keys[slot] == EMPTY_VNI {
                self.keys[slot] = vni;
                self.counts[slot] = 1;
                return;
            }
        }
        self.other += 1;
    }

    /// (VNI, frames) of every counted VNI, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.keys
            .iter()
            .zip(self.counts.iter())
            .filter(|(&k, _)| k != EMPTY_VNI)
            .map(|(&k, &c)| (k, c))
    }

    /// The `n` busiest VNIs over several tables, busiest first, and the
    /// frames of all the others (including each table's overflow).
    pub fn top<'a>(tables: impl IntoIterator<Item = &'a Self>, n: usize) -> (Vec<(u32, u64)>, u64) {
        let mut merged: Vec<(u32, u64)> = Vec::new();
        let mut other = 0;
        for table in tables {
            other += table.other;
            for (vni, count) in table.iter() {
                match merged.iter_mut().find(|(v, _)| *v == vni) {
                    Some(entry) => entry.1 += count,
                    None => merged.push((vni, count)),
                }
            }
        }
        merged.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if merged.len() > n {
            other += merged[n..].iter().map(|(_, c)| c).sum::<u64>();
            merged.truncate(n);
        }
        (merged, other)
    }
}

/// The published copy of a worker's VNI table and socket counters, which
/// change less often than the stage counters and are published less often.
#[derive(Debug)]
pub struct SharedSlow {
    vni_keys: [AtomicU64; VNI_SLOTS],
    vni_counts: [AtomicU64; VNI_SLOTS],
    vni_other: AtomicU64,
    /// Kernel socket counters: rx_dropped, rx_ring_full, rx_fill_ring_empty, rx_invalid_descs.
    xsk: [AtomicU64; 4],
}

impl Default for SharedSlow {
    fn default() -> Self {
        Self {
            vni_keys: std::array::from_fn(|_| AtomicU64::new(u64::from(EMPTY_VNI))),
            vni_counts: std::array::from_fn(|_| AtomicU64::new(0)),
            vni_other: AtomicU64::new(0),
            xsk: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl SharedSlow {
    /// Publishes a VNI table.
    pub fn publish_vnis(&self, table: &VniCounts) {
        for i in 0..VNI_SLOTS {
            self.vni_keys[i].store(u64::from(table.keys[i]), Ordering::Relaxed);
            self.vni_counts[i].store(table.counts[i], Ordering::Relaxed);
        }
        self.vni_other.store(table.other, Ordering::Relaxed);
    }

    /// The last published VNI table.
    pub fn vnis(&self) -> VniCounts {
        VniCounts {
            keys: std::array::from_fn(|i| self.vni_keys[i].load(Ordering::Relaxed) as u32),
            counts: std::array::from_fn(|i| self.vni_counts[i].load(Ordering::Relaxed)),
            other: self.vni_other.load(Ordering::Relaxed),
        }
    }

    /// Publishes the kernel's socket counters.
    pub fn publish_xsk(&self, xsk: &vxdecap_xsk::XskStatistics) {
        let values = [
            xsk.rx_dropped,
            xsk.rx_ring_full,
            xsk.rx_fill_ring_empty,
            xsk.rx_invalid_descs,
        ];
        for (slot, v) in self.xsk.iter().zip(values) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    /// The last published socket counters.
    pub fn xsk(&self) -> vxdecap_xsk::XskStatistics {
        let [rx_dropped, rx_ring_full, rx_fill_ring_empty, rx_invalid_descs] =
            std::array::from_fn(|i| self.xsk[i].load(Ordering::Relaxed));
        vxdecap_xsk::XskStatistics {
            rx_dropped,
            rx_ring_full,
            rx_fill_ring_empty,
            rx_invalid_descs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_table_is_bounded_and_top_merges_tables() {
        let mut a = VniCounts::default();
        for _ in 0..5 {
            a.add(27);
        }
        a.add(28);
        let mut b = VniCounts::default();
        b.add(27);
        for vni in 0..100u32 {
            b.add(1000 + vni);
        }
        assert_eq!(b.iter().count(), VNI_SLOTS, "the table never grows");
        assert_eq!(b.other, 101 - VNI_SLOTS as u64);
        let (top, other) = VniCounts::top([&a, &b], 2);
        assert_eq!(top, vec![(27, 6), (28, 1)]);
        assert_eq!(other, 100, "every other frame is in other");
        let shared = SharedSlow::default();
        shared.publish_vnis(&a);
        assert_eq!(shared.vnis(), a);
    }
}
