//! The decapsulation stage shared by live workers and offline replay:
//! validate and decapsulate one outer frame, hand the inner frame to the
//! analyzers, count everything else under a named reason.
//!
//! Live, an inner frame is a lease on the UMEM frame it arrived in
//! ([`DecapStage::handle_leased`]); offline, it is copied out of the file's
//! record ([`DecapStage::handle_copy`]). Either way it travels in an
//! [`InnerBatch`] published once per receive batch ([`DecapStage::flush`]).

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vxdecap_wire::link::link_payload;
use vxdecap_wire::reassembly::{Push, Reassembler};
use vxdecap_wire::{
    decapsulate, decapsulate_link, inner_orig_len, synthetic_ethernet, GeneveLayer, LinkType,
    PortSet, Reject, RxMeta, Tunnel,
};
use vxdecap_xsk::{RxFrame, UmemView};

use crate::analyzer::MAX_ANALYZERS;
use crate::datapath::batch::{FrameMeta, InnerBatch};
use crate::datapath::queue::BatchSender;
use crate::report::stats::{
    SharedSlow, SharedStats, StageCounter, StageStats, TunnelPath, VniCounts,
};
use crate::steer::allow::Allowlist;

/// The allowlists as the workers see them: replaced whole when they change
/// (SIGHUP), read without a lock, and only for reassembled datagrams (XDP
/// checks every other frame).
pub type SharedAllowlist = Arc<arc_swap::ArcSwap<Allowlist>>;

/// What to do when an analyzer has no room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Skip that analyzer and count it (live capture: never stall the NIC ring).
    Drop,
    /// Wait for room (offline replay, `--lossless`: lose nothing).
    Wait,
}

/// Converts the XDP program's CLOCK_MONOTONIC receive times to wall-clock
/// time; re-read once per receive batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct RxClock {
    /// Wall-clock time now, ns since the Unix epoch.
    pub now_ns: u64,
    /// CLOCK_REALTIME − CLOCK_MONOTONIC, ns.
    pub offset_ns: i64,
}

impl RxClock {
    /// Reads both clocks. The realtime read is bracketed by two monotonic
    /// reads and the offset taken against their midpoint; a bracket wider
    /// than 20 µs (the thread was preempted between reads) is read again,
    /// up to three times, keeping the tightest, so one unlucky batch cannot
    /// shift its frames' times by a scheduler slice.
    #[inline]
    pub fn read() -> Self {
        let mut best: Option<(u64, Self)> = None;
        for _ in 0..3 {
            let before = clock_ns(nix::time::ClockId::CLOCK_MONOTONIC);
            let real = clock_ns(nix::time::ClockId::CLOCK_REALTIME);
            let after = clock_ns(nix::time::ClockId::CLOCK_MONOTONIC);
            let width = after.saturating_sub(before);
            let mid = before + width / 2;
            let clock = Self {
                now_ns: real,
                offset_ns: real as i64 - mid as i64,
            };
            if best.as_ref().is_none_or(|(w, _)| width < *w) {
                best = Some((width, clock));
            }
            if width < 20_000 {
                break;
            }
        }
        best.map_or_else(Self::default, |(_, clock)| clock)
    }

    /// Wall-clock time of a monotonic receive time.
    #[inline]
    pub fn wall(&self, mono_ns: u64) -> u64 {
        (mono_ns as i64).saturating_add(self.offset_ns).max(0) as u64
    }
}

fn clock_ns(clock: nix::time::ClockId) -> u64 {
    nix::time::clock_gettime(clock).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

/// Decapsulates frames into batches for the analyzers.
#[derive(Debug)]
pub struct DecapStage {
    ports: PortSet,
    queue: u16,
    sender: BatchSender,
    /// The batch being filled; published by `flush` (end of a receive batch) or when full.
    current: Option<Arc<InnerBatch>>,
    /// Most frames leased out at once (keeps enough UMEM frames for the fill ring).
    lease_budget: usize,
    /// Frames to put back on the fill ring after this receive batch.
    recycle: Vec<RxFrame>,
    backpressure: Backpressure,
    stop: Arc<AtomicBool>,
    stats: StageStats,
    skipped: [u64; MAX_ANALYZERS],
    vnis: VniCounts,
    shared: Arc<SharedStats>,
    slow: Arc<SharedSlow>,
    /// The UMEM leased batches read from now (live only; `None` while the
    /// socket is gone).
    view: Option<UmemView>,
    /// The batch pool holds leased batches (stocked at the first socket).
    stocked: bool,
    /// Outer IPv4 fragments are put back together here (`None`: counted
    /// as `outer_fragment` rejects instead).
    reassembler: Option<Box<Reassembler>>,
    /// Checked on reassembled datagrams (`None`: no allowlists).
    allow: Option<SharedAllowlist>,
    /// Yield after each published batch (an analyzer shares this core).
    yield_after_batch: bool,
    /// An outer fragment of a capture without Ethernet (offline), given an
    /// Ethernet header for the reassembler; reused.
    relinked: Vec<u8>,
}

/// Set when the inline load balancer warning has been given: once per process, by whichever
/// worker first sees the inline path.
static INLINE_WARNED: AtomicBool = AtomicBool::new(false);

/// Bytes each live batch keeps for reassembled frames, which are not in
/// the UMEM (two 1550-byte datagrams, the common Azure case).
pub const REASSEMBLED_BYTES_PER_BATCH: usize = 4096;

impl DecapStage {
    /// A stage for rx queue `queue` feeding `sender`'s analyzers, leasing
    /// at most `lease_budget` frames at once, recycling up to `batch`
    /// frames per receive batch. Frames are dropped for an analyzer with
    /// no room until [`set_backpressure`](Self::set_backpressure) says to
    /// wait (the frame source decides); while waiting, a raised `stop`
    /// flag ends the wait (the frames then count as backpressure).
    pub fn new(
        ports: PortSet,
        queue: u16,
        sender: BatchSender,
        lease_budget: usize,
        batch: usize,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let mut sender = sender;
        // With several analyzers, one that falls behind may hold at most half
        // of the leasable frames, so the others keep receiving.
        if sender.analyzers() > 1 {
            sender.set_lane_quota(lease_budget / 2);
        }
        Self {
            ports,
            queue,
            sender,
            current: None,
            lease_budget: lease_budget.max(1),
            // A receive batch's rejects plus one whole batch nobody took.
            recycle: Vec::with_capacity(2 * batch.max(1) + 1),
            backpressure: Backpressure::Drop,
            stop,
            stats: StageStats::default(),
            skipped: [0; MAX_ANALYZERS],
            vnis: VniCounts::default(),
            shared: Arc::new(SharedStats::default()),
            slow: Arc::new(SharedSlow::default()),
            view: None,
            stocked: false,
            reassembler: None,
            allow: None,
            yield_after_batch: false,
            relinked: Vec::new(),
        }
    }

    /// What to do when an analyzer has no room: drop the frames for it
    /// (a NIC ring must never wait) or wait (a file, `--lossless`).
    pub fn set_backpressure(&mut self, backpressure: Backpressure) {
        self.backpressure = backpressure;
    }

    /// Reassembles outer IPv4 fragments with `reassembler` (allocated once, here).
    #[must_use]
    pub fn with_reassembler(mut self, reassembler: Reassembler) -> Self {
        self.reassembler = Some(Box::new(reassembler));
        self
    }

    /// Checks reassembled datagrams against `allow` (the source and VNI
    /// lists the XDP program enforces on whole frames), as it is at the time.
    #[must_use]
    pub fn with_allowlist(mut self, allow: SharedAllowlist) -> Self {
        self.allow = Some(allow);
        self
    }

    /// Counts every datagram still incomplete as timed out (end of the run).
    pub fn finish_fragments(&mut self) {
        self.expire_fragments(u64::MAX);
    }

    /// Drops datagrams whose first fragment came too long before `now_ns`
    /// (once per receive batch).
    #[inline]
    pub fn expire_fragments(&mut self, now_ns: u64) {
        if let Some(r) = self.reassembler.as_mut() {
            if r.pending() > 0 {
                r.expire(now_ns);
            }
        }
    }

    /// Leases frames of `view`'s UMEM from now on: the first time, fills the
    /// batch pool (`frames` per batch, tagged as coming from worker
    /// `worker` and this stage's rx queue); after a socket was replaced, points the pool's batches at
    /// the new UMEM (batches still with analyzers follow when they return).
    pub fn use_umem(&mut self, view: &UmemView, frames: usize, worker: u16) {
        if !self.stocked {
            self.stocked = true;
            let copies = if self.reassembler.is_some() {
                REASSEMBLED_BYTES_PER_BATCH
            } else {
                0
            };
            let queue = self.queue;
            self.sender
                .stock(|| InnerBatch::leased(view.clone(), frames, copies, worker, queue));
        }
        self.sender.for_each_free(|batch| batch.rebind(view));
        if let Some(current) = self.current.as_mut().and_then(Arc::get_mut) {
            current.rebind(view);
        }
        self.view = Some(view.clone());
    }

    /// The socket went away (its device was removed): frames the analyzers
    /// are done with are dropped rather than recycled (their UMEM goes with
    /// the socket), and idle batches let go of the UMEM, so that the socket
    /// closes once the last batch still with an analyzer comes back. Called
    /// while the worker waits for the device, never on the receive path.
    pub fn release_umem(&mut self) {
        self.view = None;
        // Dropping the drained frames forgets them: the fill ring is gone.
        self.reclaim(|_frames| {});
        self.recycle.clear();
        self.sender.for_each_free(InnerBatch::release_view);
        if let Some(current) = self.current.as_mut().and_then(Arc::get_mut) {
            current.release_view();
        }
    }

    /// Fills the batch pool with batches of `frames` frames copied into `bytes` bytes.
    pub fn stock_owned(&mut self, bytes: usize, frames: usize, worker: u16) {
        let queue = self.queue;
        self.sender
            .stock(|| InnerBatch::owned(bytes, frames, worker, queue));
    }

    /// The counters this stage publishes.
    pub fn shared_stats(&self) -> Arc<SharedStats> {
        Arc::clone(&self.shared)
    }

    /// The VNI table and socket counters this stage publishes (less often).
    pub fn shared_slow(&self) -> Arc<SharedSlow> {
        Arc::clone(&self.slow)
    }

    /// Inner frames per VNI so far (owner's view).
    pub fn vnis(&self) -> &VniCounts {
        &self.vnis
    }

    /// Publishes the VNI table (every few hundred milliseconds, not per batch).
    pub fn publish_vnis(&self) {
        self.slow.publish_vnis(&self.vnis);
    }

    /// The counters so far (owner's view).
    pub fn stats(&self) -> &StageStats {
        &self.stats
    }

    /// The counters so far, to add to (owner's view).
    pub fn stats_mut(&mut self) -> &mut StageStats {
        &mut self.stats
    }

    /// Takes back the batches the analyzers are done with; `recycle` puts
    /// their frames back on the fill ring. Call before each receive batch.
    #[inline]
    pub fn reclaim(&mut self, mut recycle: impl FnMut(std::vec::Drain<'_, RxFrame>)) {
        let view = self.view.as_ref();
        self.sender.reclaim(|batch| {
            batch.clear(&mut recycle);
            if let Some(view) = view {
                batch.rebind(view);
            }
        });
    }

    /// How many frames the worker may take off the RX ring now, of `max`:
    /// all of them when frames may be dropped; in lossless mode only as
    /// many as can be leased and batched, so the stage never has to drop
    /// (the RX ring backs up instead, and the kernel counts what it drops).
    #[inline]
    pub fn intake(&self, max: usize) -> usize {
        if self.backpressure == Backpressure::Drop {
            return max;
        }
        if self.current.is_none() && !self.sender.has_free() {
            return 0;
        }
        max.min(self.lease_budget.saturating_sub(self.sender.leased()))
    }

    /// Frames to put back on the fill ring now (rejects, and batches no
    /// analyzer had room for).
    #[inline]
    pub fn to_recycle(&mut self) -> std::vec::Drain<'_, RxFrame> {
        self.recycle.drain(..)
    }

    /// Handles one redirected frame (the XDP program's receive record, then
    /// the outer frame) leased from the UMEM `view` maps.
    #[inline]
    pub fn handle_leased(&mut self, mut frame: RxFrame, view: &UmemView, clock: &RxClock) {
        let data = view.bytes(&frame);
        let (timestamp_ns, outer, skip) = if let Some((meta, outer)) = RxMeta::split(data) {
            (clock.wall(meta.rx_ns), outer, RxMeta::LEN)
        } else {
            self.stats.add(StageCounter::NoRxTimestamp, 1);
            (clock.now_ns, data, 0)
        };
        self.stats.add(StageCounter::Received, 1);
        self.stats
            .add(StageCounter::ReceivedBytes, outer.len() as u64);
        // Matched by reference: moving the result out would copy it once more per frame.
        let result = decapsulate(outer, &self.ports);
        let decap = match &result {
            Ok(decap) => decap,
            Err(Reject::OuterFragment) if self.reassembler.is_some() => {
                // The reassembler keeps a copy: the UMEM frame goes back now.
                self.reassemble(outer, timestamp_ns);
                self.recycle.push(frame);
                return;
            }
            Err(reason) => {
                self.stats.reject(*reason);
                self.recycle.push(frame);
                return;
            }
        };
        if let Some(layer) = &decap.geneve {
            // Out of the frame's borrow: a bare IP payload's frame is written below.
            let (meta, range, layer) = self.leased_geneve_meta(decap, layer, skip, timestamp_ns);
            if let Some(ethertype) = layer.bare_ip() {
                // A bare IP payload: its synthetic Ethernet header goes over the end of the
                // GENEVE header, already read, so the frame stays a lease (no copy).
                Self::write_synthetic(view, &mut frame, range.start, ethertype);
            }
            self.lease(frame, range, meta, Some(&layer));
            return;
        }
        // VXLAN alone reads no GENEVE state: its path is as before GENEVE.
        let (len, start) = (decap.inner.len(), skip + decap.inner_offset);
        let meta = self.vxlan_meta(decap, timestamp_ns, 0);
        self.lease(frame, start..start + len, meta, None);
    }

    /// The metadata of a leased frame that came through `layer` (which it returns, out of
    /// the frame's borrow), and where the frame as written lies in the UMEM frame (`skip`
    /// bytes of receive record first). Out of line, off VXLAN's path.
    #[inline(never)]
    fn leased_geneve_meta(
        &mut self,
        decap: &vxdecap_wire::Decapsulated<'_>,
        layer: &GeneveLayer,
        skip: usize,
        timestamp_ns: u64,
    ) -> (FrameMeta, Range<usize>, GeneveLayer) {
        let start = skip + decap.frame_offset();
        let meta = self.geneve_meta(decap, layer, timestamp_ns, 0);
        (meta, start..start + decap.frame_len(), *layer)
    }

    /// Puts `frame`'s inner `range` into the current batch as a lease, counted as
    /// delivered; the frame goes back to the fill ring when the lease budget or the batches
    /// are exhausted (counted as skipped).
    #[inline(always)]
    fn lease(
        &mut self,
        frame: RxFrame,
        range: Range<usize>,
        meta: FrameMeta,
        geneve: Option<&GeneveLayer>,
    ) {
        let len = range.len();
        self.stats.add(StageCounter::Delivered, 1);
        self.stats.add(StageCounter::DeliveredBytes, len as u64);
        // Too many frames out: the fill ring must keep enough to receive into.
        if self.sender.leased() + self.current.as_ref().map_or(0, |b| b.len()) >= self.lease_budget
        {
            self.skip_all(1);
            self.recycle.push(frame);
            return;
        }
        let Some(batch) = self.batch_for(None) else {
            self.skip_all(1);
            self.recycle.push(frame);
            return;
        };
        // The pooled batch is unique until published (`batch_for` checked it).
        let Some(batch) = Arc::get_mut(batch) else {
            self.skip_all(1);
            self.recycle.push(frame);
            return;
        };
        if let Err(frame) = batch.push_leased(frame, range, meta, geneve) {
            self.skip_all(1);
            self.recycle.push(frame);
        }
    }

    /// Handles one outer frame read from a file, received at `timestamp_ns`;
    /// `orig_len` is the record's original length (≥ `frame.len()` when the
    /// capture cut it).
    #[inline]
    pub fn handle_copy(&mut self, frame: &[u8], timestamp_ns: u64, orig_len: usize) {
        self.handle_captured(frame, LinkType::Ethernet, timestamp_ns, orig_len);
    }

    /// [`DecapStage::handle_copy`] for a frame of a capture's link type
    /// `link` (Linux cooked, raw IP, …): the link-layer header is read in
    /// place of Ethernet.
    #[inline]
    pub fn handle_captured(
        &mut self,
        frame: &[u8],
        link: LinkType,
        timestamp_ns: u64,
        orig_len: usize,
    ) {
        self.stats.add(StageCounter::Received, 1);
        self.stats
            .add(StageCounter::ReceivedBytes, frame.len() as u64);
        // File timestamps are the clock: stale datagrams time out as live.
        self.expire_fragments(timestamp_ns);
        self.deliver_copy(
            frame,
            link,
            timestamp_ns,
            orig_len.saturating_sub(frame.len()),
        );
    }

    /// Hands an outer IPv4 fragment to the reassembler; a datagram it
    /// completes is delivered as a copy (it is no longer in any UMEM frame).
    fn reassemble(&mut self, fragment: &[u8], timestamp_ns: u64) {
        let Some(mut reassembler) = self.reassembler.take() else {
            return;
        };
        if let Push::Complete(whole) = reassembler.push(fragment, timestamp_ns) {
            // Reassembled frames carry no fragment bits: no way back here.
            self.deliver(whole, LinkType::Ethernet, timestamp_ns, 0, true);
        }
        self.reassembler = Some(reassembler);
    }

    /// The reassembler takes Ethernet frames: a fragment of another link
    /// type gets an Ethernet header (zero addresses) in place of its own.
    #[cold]
    fn reassemble_relinked(&mut self, fragment: &[u8], link: LinkType, timestamp_ns: u64) {
        let Ok((ethertype, offset)) = link_payload(fragment, link) else {
            return; // the fragment was recognised, so its link header parsed
        };
        let mut relinked = std::mem::take(&mut self.relinked);
        relinked.clear();
        relinked.extend_from_slice(&[0u8; 12]);
        relinked.extend_from_slice(&ethertype.to_be_bytes());
        relinked.extend_from_slice(fragment.get(offset..).unwrap_or_default());
        self.reassemble(&relinked, timestamp_ns);
        self.relinked = relinked;
    }

    /// Decapsulates `outer` and copies the inner frame into the batch;
    /// `missing` bytes of the outer frame were cut before it reached us.
    #[inline]
    fn deliver_copy(&mut self, outer: &[u8], link: LinkType, timestamp_ns: u64, missing: usize) {
        self.deliver(outer, link, timestamp_ns, missing, false);
    }

    /// [`deliver_copy`](Self::deliver_copy); a `reassembled` datagram is
    /// checked against the allowlists first.
    #[inline]
    fn deliver(
        &mut self,
        outer: &[u8],
        link: LinkType,
        timestamp_ns: u64,
        missing: usize,
        reassembled: bool,
    ) {
        // Matched by reference: moving the result out would copy it once more per frame.
        let result = decapsulate_link(outer, link, &self.ports);
        let decap = match &result {
            Ok(decap) => decap,
            Err(Reject::OuterFragment) if self.reassembler.is_some() => {
                if link == LinkType::Ethernet {
                    self.reassemble(outer, timestamp_ns);
                } else {
                    self.reassemble_relinked(outer, link, timestamp_ns);
                }
                return;
            }
            Err(reason) => {
                self.stats.reject(*reason);
                return;
            }
        };
        if reassembled {
            if let Some(allow) = &self.allow {
                let allow = allow.load();
                let refused = if !allow.allows_source(decap.outer_src) {
                    Some(StageCounter::FragmentSourceNotAllowed)
                } else if !allow.allows_vni(decap.outer_vni()) {
                    Some(StageCounter::FragmentVniNotAllowed)
                } else {
                    None
                };
                if let Some(counter) = refused {
                    self.stats.add(counter, 1);
                    return;
                }
            }
        }
        if let Some(layer) = &decap.geneve {
            self.deliver_geneve(decap, layer, timestamp_ns, missing);
            return;
        }
        // VXLAN alone: the path as before GENEVE, no GENEVE state read.
        let len = decap.inner.len();
        let meta = self.vxlan_meta(decap, timestamp_ns, missing);
        self.stats.add(StageCounter::Delivered, 1);
        let Some(batch) = self.batch_for(Some(len)).and_then(Arc::get_mut) else {
            self.skip_all(1);
            return;
        };
        let kept = batch.push_copy(decap.inner, meta);
        if kept < len {
            self.stats.add(StageCounter::TruncatedToSlot, 1);
        }
        self.stats.add(StageCounter::DeliveredBytes, kept as u64);
    }

    /// [`deliver`](Self::deliver) of a frame that came through `layer`: a bare IP payload
    /// gets its synthetic Ethernet header, and the layer is kept beside the frame. Out of
    /// line: inlined, it costs plain VXLAN's path registers.
    #[inline(never)]
    fn deliver_geneve(
        &mut self,
        decap: &vxdecap_wire::Decapsulated<'_>,
        layer: &GeneveLayer,
        timestamp_ns: u64,
        missing: usize,
    ) {
        let len = decap.frame_len();
        let meta = self.geneve_meta(decap, layer, timestamp_ns, missing);
        self.stats.add(StageCounter::Delivered, 1);
        let Some(batch) = self.batch_for(Some(len)).and_then(Arc::get_mut) else {
            self.skip_all(1);
            return;
        };
        // An Ethernet frame (GENEVE(VXLAN) among them) needs no prefix.
        let kept = match layer.bare_ip() {
            None => batch.push_copy_through(decap.inner, meta, layer),
            Some(ethertype) => batch.push_copy_prefixed(
                &synthetic_ethernet(ethertype),
                decap.inner,
                meta,
                Some(layer),
            ),
        };
        if kept < len {
            self.stats.add(StageCounter::TruncatedToSlot, 1);
        }
        self.stats.add(StageCounter::DeliveredBytes, kept as u64);
    }

    /// The metadata of a frame that came through VXLAN alone; `missing` outer bytes were cut
    /// by a capture.
    #[inline]
    fn vxlan_meta(
        &mut self,
        decap: &vxdecap_wire::Decapsulated<'_>,
        timestamp_ns: u64,
        missing: usize,
    ) -> FrameMeta {
        self.vnis.add(decap.vni);
        // A mirror that cut the inner packet (AWS PacketLength, the target's
        // MTU) leaves the inner IP length saying more than the frame holds.
        let orig_len = inner_orig_len(decap.inner).max(decap.inner.len() + missing);
        if orig_len > decap.inner.len() {
            self.stats.add(StageCounter::TruncatedMirror, 1);
        }
        FrameMeta {
            timestamp_ns,
            orig_len: orig_len as u32,
            vni: decap.vni,
            outer_src: decap.outer_src,
            outer_dst: decap.outer_dst,
            outer_src_port: decap.outer_src_port,
            queue: self.queue,
            outer_dst_port: decap.outer_dst_port,
            tunnel: Tunnel::Vxlan,
        }
    }

    /// The metadata of a frame that came through GENEVE: its per-VNI key, the
    /// GENEVE counters, and the length as written (with a synthetic Ethernet header).
    /// Inlined into the two GENEVE paths, which are out of VXLAN's way.
    #[inline(always)]
    fn geneve_meta(
        &mut self,
        decap: &vxdecap_wire::Decapsulated<'_>,
        layer: &GeneveLayer,
        timestamp_ns: u64,
        missing: usize,
    ) -> FrameMeta {
        // What the layer says is read once (the `Decapsulated` methods would each read it).
        let (tunnel, bare_ip) = (decap.tunnel(), layer.bare_ip());
        self.geneve_layer(layer, tunnel, decap.vni);
        // An Ethernet payload's lengths as VXLAN's; a bare IP one's behind its header.
        let (frame_len, inner_orig_len) = match bare_ip {
            None => (decap.inner.len(), inner_orig_len(decap.inner)),
            Some(_) => (decap.frame_len(), decap.inner_orig_len()),
        };
        let orig_len = inner_orig_len.max(frame_len + missing);
        if orig_len > frame_len {
            self.stats.add(StageCounter::TruncatedMirror, 1);
        }
        FrameMeta {
            timestamp_ns,
            orig_len: orig_len as u32,
            vni: decap.vni,
            outer_src: decap.outer_src,
            outer_dst: decap.outer_dst,
            outer_src_port: decap.outer_src_port,
            queue: self.queue,
            outer_dst_port: decap.outer_dst_port,
            tunnel,
        }
    }

    /// Counts what a GENEVE header said that the frame does not show: a critical option
    /// (not obeyed), malformed options, and the inline load balancer path (AWS options with
    /// no Traffic Mirroring VXLAN inside), which is also warned about once.
    #[inline(always)]
    fn geneve_layer(&mut self, layer: &GeneveLayer, tunnel: Tunnel, vni: u32) {
        let path = TunnelPath::of(tunnel, true);
        self.vnis.add(path.vni_key(vni));
        self.stats.add(
            match path {
                TunnelPath::GeneveVxlan => StageCounter::DeliveredGeneveVxlan,
                _ => StageCounter::DeliveredGeneve,
            },
            1,
        );
        if layer.critical() || layer.options_malformed() || tunnel == Tunnel::Geneve {
            self.geneve_rare(layer, tunnel);
        }
    }

    /// [`geneve_layer`](Self::geneve_layer)'s counts that AWS's GENEVE(VXLAN) never needs.
    #[cold]
    fn geneve_rare(&mut self, layer: &GeneveLayer, tunnel: Tunnel) {
        if layer.critical() {
            self.stats.add(StageCounter::GeneveCritical, 1);
        }
        if layer.options_malformed() {
            self.stats.add(StageCounter::GeneveOptionsMalformed, 1);
        }
        if tunnel == Tunnel::Geneve && layer.gwlb().is_present() {
            self.stats.add(StageCounter::GwlbInline, 1);
            // A relaxed load per inline frame once warned; the swap decides the one worker.
            if !INLINE_WARNED.load(Ordering::Relaxed)
                && !INLINE_WARNED.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(
                    queue = self.queue,
                    endpoint_id = layer.gwlb_endpoint_id().map(|id| format!("{id:#018x}")),
                    "GENEVE with AWS Gateway Load Balancer options and no Traffic Mirroring \
                     VXLAN inside: this is the inline load balancer path, whose packets the \
                     load balancer expects back; vxdecap does not return them, so the traffic \
                     it steers here is blackholed (counted as gwlb_inline)"
                );
            }
        }
    }

    /// Writes the synthetic Ethernet header of a bare IP payload at `at` in a leased frame.
    #[cold]
    fn write_synthetic(view: &UmemView, frame: &mut RxFrame, at: usize, ethertype: u16) {
        // `at` lies 14 bytes before the payload, after the UDP and GENEVE headers.
        view.write_at(frame, at, &synthetic_ethernet(ethertype));
    }

    /// The batch to add a frame to (a lease, or a copy of `copy` bytes): the
    /// current one, or a fresh one from the pool after publishing a full one.
    #[inline(always)]
    fn batch_for(&mut self, copy: Option<usize>) -> Option<&mut Arc<InnerBatch>> {
        let room = self.current.as_ref().is_some_and(|b| match copy {
            Some(len) => !b.is_full_for(len),
            None => !b.is_full(),
        });
        if !room {
            self.next_batch();
        }
        self.current.as_mut()
    }

    /// [`batch_for`](Self::batch_for) once a batch is full or none is current: publishes the
    /// full one and takes a fresh one from the pool (once per batch, not per frame).
    #[inline(never)]
    fn next_batch(&mut self) {
        if self.current.is_some() {
            self.flush();
        }
        if self.current.is_none() {
            self.current = self.free_batch();
        }
    }

    #[inline]
    fn skip_all(&mut self, frames: u64) {
        for slot in &mut self.skipped[..self.sender.analyzers()] {
            *slot += frames;
        }
    }

    /// Hands the frames gathered so far to the analyzers (end of a receive batch).
    #[inline]
    pub fn flush(&mut self) {
        let Some(batch) = self.current.take() else {
            return;
        };
        if batch.is_empty() {
            self.current = Some(batch);
            return;
        }
        let wait = self.backpressure == Backpressure::Wait;
        if let Some(mut unsent) = self.sender.send(batch, wait, &self.stop, &mut self.skipped) {
            // No analyzer had room: the frames go back to the fill ring now.
            if let Some(inner) = Arc::get_mut(&mut unsent) {
                let recycle = &mut self.recycle;
                inner.clear(|frames| recycle.extend(frames));
            }
            self.sender.put_back(unsent);
        }
        // An analyzer sharing this core needs the CPU to catch up: a worker
        // that never idles at a steady rate would otherwise hold the core
        // for whole scheduler slices while leases pile up. Yielding costs
        // little when nothing else is runnable.
        if self.yield_after_batch
            || self.sender.is_congested()
            || self.sender.leased() * 2 > self.lease_budget
        {
            std::thread::yield_now();
        }
    }

    /// Yield the CPU after each published batch (the worker shares its core
    /// with an analyzer thread).
    pub fn set_yield_after_batch(&mut self, on: bool) {
        self.yield_after_batch = on;
    }

    #[inline]
    fn free_batch(&mut self) -> Option<Arc<InnerBatch>> {
        loop {
            if let Some(batch) = self.sender.take() {
                return Some(batch);
            }
            if self.backpressure == Backpressure::Drop || self.stop.load(Ordering::Relaxed) {
                return None;
            }
            // Batches come back as the analyzers finish them (offline, or
            // live in lossless mode, where `intake` let no more frames in
            // than there are batches for, so this does not wait there).
            let recycle = &mut self.recycle;
            self.sender
                .reclaim(|batch| batch.clear(|frames| recycle.extend(frames)));
            std::thread::yield_now();
        }
    }

    /// Publishes the counters (once per batch).
    #[inline]
    pub fn publish(&mut self) {
        for (a, &n) in self.skipped.iter().enumerate() {
            self.stats.set_analyzer_backpressure(a, n);
        }
        if let Some(r) = &self.reassembler {
            self.stats.set_reassembly(r.counters());
        }
        self.shared.publish(&self.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::queue::fan_out;
    use vxdecap_wire::build;

    fn vxlan(vni: u32, flags: u8) -> Vec<u8> {
        let inner =
            build::inner_ipv4_udp_frame(&build::InnerIpv4Udp::default()).expect("inner frame");
        build::VxlanFrameBuilder::new()
            .vni(vni)
            .vxlan_flags(flags)
            .inner(&inner)
            .build()
            .expect("outer frame")
    }

    /// Collects what a tracing subscriber writes.
    #[derive(Clone, Default)]
    struct Log(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The inline load balancer warning is given once per process: two workers' stages that
    /// both see the inline path (AWS options around bare IPv4, no VXLAN inside) warn once
    /// between them, and count every frame. The flag is the process's own, so this is the
    /// only test of the library that sends the inline path.
    #[test]
    fn the_inline_load_balancer_warning_is_given_once_per_process() {
        let inner = build::inner_ipv4_udp_frame(&build::InnerIpv4Udp::default()).expect("inner");
        let frame = build::GeneveFrameBuilder::new()
            .protocol(0x0800)
            .aws_gwlb(0x0a1b_2c3d_4e5f_6071, 2, 3)
            .payload(&inner[14..])
            .build()
            .expect("GENEVE");
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for queue in 0..2 {
                let (mut senders, _receivers) = fan_out(1, 1, 1);
                senders[0].stock(|| InnerBatch::owned(4096, 64, queue, queue));
                let stop = Arc::new(AtomicBool::new(false));
                let mut stage =
                    DecapStage::new(PortSet::default(), queue, senders.remove(0), 64, 64, stop);
                for t in 0..3 {
                    stage.handle_copy(&frame, t, 0);
                }
                assert_eq!(
                    stage.stats.get(StageCounter::GwlbInline),
                    3,
                    "worker {queue}"
                );
            }
        });
        let log = String::from_utf8(log.0.lock().expect("log").clone()).expect("UTF-8");
        assert_eq!(
            log.matches("inline load balancer path").count(),
            1,
            "one warning for both workers:\n{log}"
        );
        assert!(log.contains("0x0a1b2c3d4e5f6071"), "{log}");
    }

    #[test]
    fn delivers_rejects_and_counts_backpressure() {
        let (mut senders, mut receivers) = fan_out(1, 1, 1);
        senders[0].stock(|| InnerBatch::owned(2048, 64, 0, 0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut stage = DecapStage::new(
            PortSet::default(),
            3,
            senders.remove(0),
            usize::MAX,
            64,
            stop,
        );
        stage.handle_copy(&vxlan(27, 0x08), 42, 0);
        stage.handle_copy(&vxlan(27, 0x00), 43, 0);
        stage.flush();
        stage.handle_copy(&vxlan(28, 0x08), 44, 0); // no free batch: the only one is out
        stage.publish();
        let batch = receivers[0].pop(0).expect("first frame delivered");
        assert_eq!(batch.len(), 1);
        let frame = batch.get(0);
        assert_eq!(frame.meta.vni, 27);
        assert_eq!(frame.meta.timestamp_ns, 42);
        assert_eq!(frame.meta.queue, 3);
        assert_eq!(frame.bytes.len(), 60);
        let stats = stage.shared_stats().snapshot();
        assert_eq!(stats.get(StageCounter::Received), 3);
        assert_eq!(stats.get(StageCounter::Delivered), 2);
        assert_eq!(stats.rejected(Reject::VxlanIFlagClear), 1);
        assert_eq!(stats.analyzer_backpressure(0), 1);
    }

    /// An outer frame with IP ID `ident` carrying an inner UDP packet of
    /// `payload` bytes (seeded by `seed`), VNI `vni`, from `src`.
    fn datagram(ident: u16, vni: u32, seed: u8, src: [u8; 4]) -> Vec<u8> {
        let inner = build::inner_ipv4_udp_frame(&build::InnerIpv4Udp {
            payload_len: 1472,
            payload_seed: seed,
            ..Default::default()
        })
        .expect("inner frame");
        build::VxlanFrameBuilder::new()
            .outer_src_ip(std::net::Ipv4Addr::from(src))
            .ipv4_ident(ident)
            .vni(vni)
            .inner(&inner)
            .build()
            .expect("outer frame")
    }

    /// Received = written + every named reason, on fragment traffic with
    /// loss, reordering, duplicates, and VXLAN whose first fragment ends
    /// before the VXLAN header (VNI and source allowlists in user space).
    #[test]
    fn fragment_traffic_adds_up_in_packets_and_the_allowlists_hold() {
        let (mut senders, mut receivers) = fan_out(1, 1, 4);
        senders[0].stock(|| InnerBatch::owned(256 * 1024, 256, 0, 0));
        let stage = DecapStage::new(
            PortSet::default(),
            0,
            senders.remove(0),
            usize::MAX,
            64,
            Arc::new(AtomicBool::new(false)),
        )
        .with_reassembler(Reassembler::new(Default::default()).expect("reassembler"));
        let mut allow = Allowlist::default();
        allow.add_source("192.0.2.0/24".parse().unwrap()).unwrap();
        allow
            .add_vnis(crate::steer::allow::parse_vnis("27").unwrap())
            .unwrap();
        let shared: SharedAllowlist = Arc::new(arc_swap::ArcSwap::from_pointee(allow));
        let mut stage = stage.with_allowlist(Arc::clone(&shared));

        let allowed_src = [192, 0, 2, 1];
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let frag = |f: &[u8]| build::fragment_ipv4(f, 1500).expect("fragments");
        let udp_only_first = |f: &[u8]| build::fragment_ipv4_at(f, &[8]).expect("fragments");
        // IP ID 0 stream: whole, lost tail then a swapped pair, lost head,
        // duplicate tail, lost tail, whole, and a head that waits to the end.
        let s: Vec<Vec<Vec<u8>>> = (0..8)
            .map(|n| frag(&datagram(0, 27, n, allowed_src)))
            .collect();
        frames.extend([&s[0][0], &s[0][1]].map(Clone::clone));
        frames.push(s[1][0].clone()); // tail of 1 lost
        frames.extend([&s[2][1], &s[2][0]].map(Clone::clone)); // swapped
        frames.push(s[3][1].clone()); // head of 3 lost
        frames.extend([&s[4][0], &s[4][1], &s[4][1]].map(Clone::clone)); // duplicate tail
        frames.push(s[5][0].clone()); // tail of 5 lost
        frames.extend([&s[6][0], &s[6][1]].map(Clone::clone));
        frames.push(s[7][0].clone());
        // Numbered datagrams whose first fragment is the outer UDP header alone:
        // VNI 27 passes, VNI 4242 and a source outside the list do not.
        frames.extend(udp_only_first(&datagram(7, 27, 10, allowed_src)));
        frames.extend(udp_only_first(&datagram(8, 4242, 11, allowed_src)));
        frames.extend(udp_only_first(&datagram(9, 27, 12, [198, 51, 100, 7])));
        // After a reload that allows VNI 4242 too, it passes.
        let received = frames.len() as u64;
        for (i, f) in frames.iter().enumerate() {
            stage.handle_copy(f, i as u64 * 1000, f.len());
        }
        let mut reloaded = (**shared.load()).clone();
        reloaded
            .add_vnis(crate::steer::allow::parse_vnis("4242").unwrap())
            .unwrap();
        shared.store(Arc::new(reloaded));
        for f in udp_only_first(&datagram(10, 4242, 13, allowed_src)) {
            stage.handle_copy(&f, 100_000, f.len());
        }
        let received = received + 2;
        stage.finish_fragments();
        stage.flush();
        stage.publish();

        let mut written = Vec::new();
        while let Some(batch) = receivers[0].pop(0) {
            for i in 0..batch.len() {
                let frame = batch.get(i);
                written.push((frame.meta.vni, frame.bytes[14 + 20 + 8]));
            }
        }
        // The inner UDP payload's first byte is its seed.
        assert_eq!(written, [(27, 0), (27, 4), (27, 6), (27, 10), (4242, 13)]);

        let stats = stage.shared_stats().snapshot();
        assert_eq!(stats.get(StageCounter::Received), received);
        let p = |e| stats.reassembly_packets(e);
        use vxdecap_wire::ReassemblyEvent as E;
        assert_eq!(p(E::Merged), 7, "datagrams 0, 4, 6, and 7 to 10 by IP ID");
        // H1 + T2 and H2 + T3 have the right lengths; their inner checksums tell.
        assert_eq!(p(E::AmbiguousChecksum), 4);
        assert_eq!(p(E::AmbiguousTail), 1, "the second tail of 4");
        assert_eq!(p(E::AmbiguousHead), 1, "head of 5, replaced by 6");
        assert_eq!(p(E::Timeout), 1, "head of 7");
        assert_eq!(stats.get(StageCounter::FragmentVniNotAllowed), 1);
        assert_eq!(stats.get(StageCounter::FragmentSourceNotAllowed), 1);
        assert_eq!(stats.get(StageCounter::FragmentsPending), 0);
        // Every packet once: written, or under a named reason.
        let summary = crate::report::summary::Summary::offline(
            "test",
            "test",
            stats,
            stage.vnis(),
            vec![(
                "count".to_owned(),
                crate::report::progress::AnalyzerReport {
                    written: written.len() as u64,
                    ..Default::default()
                },
            )],
            Default::default(),
        );
        let named: u64 = summary.not_written().iter().map(|(_, n)| n).sum();
        assert_eq!(
            summary.written + named,
            received,
            "{:?}",
            summary.not_written()
        );
    }

    #[test]
    fn the_monotonic_receive_time_becomes_wall_clock_time() {
        let clock = RxClock {
            now_ns: 1_700_000_000_000_000_000,
            offset_ns: 1_699_999_000_000_000_000,
        };
        assert_eq!(clock.wall(1_000_000_000_000_000), 1_700_999_000_000_000_000);
        assert_eq!(clock.wall(0), 1_699_999_000_000_000_000);
        let now = RxClock::read();
        let mono = clock_ns(nix::time::ClockId::CLOCK_MONOTONIC);
        let wall = now.wall(mono);
        assert!(wall >= now.now_ns && wall - now.now_ns < 1_000_000_000);
    }
}
