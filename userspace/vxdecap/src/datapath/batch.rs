//! What analyzers receive: inner frames, in batches, as references into
//! the memory they were received in.
//!
//! A live worker fills an [`InnerBatch`] with *leases* on UMEM frames: the
//! inner frame is a sub-slice of the outer frame the NIC (or the kernel, in
//! copy mode) wrote into the UMEM, and nothing is copied between the worker
//! and the analyzers. The batch goes back to its worker when every analyzer
//! is done with it, and the worker puts its frames back on the fill ring
//! (see [`crate::datapath::queue`]). Offline replay fills the same batch type from a
//! file, into a buffer the batch owns.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;

use vxdecap_wire::{GeneveLayer, Tunnel};
use vxdecap_xsk::{RxFrame, UmemView};

/// What is known about an inner frame besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// Receive time, nanoseconds since the Unix epoch (taken in XDP, live).
    pub timestamp_ns: u64,
    /// Length of the inner frame on the wire (≥ captured length).
    pub orig_len: u32,
    /// VXLAN network identifier.
    pub vni: u32,
    /// Outer source address (the mirroring host or VM).
    pub outer_src: IpAddr,
    /// Outer destination address (the collector).
    pub outer_dst: IpAddr,
    /// Outer UDP source port (carries the inner flow's hash on Azure and AWS).
    pub outer_src_port: u16,
    /// Rx queue the frame arrived on (0 offline).
    pub queue: u16,
    /// Outer UDP destination port (tells Azure Gateway Load Balancer's internal tunnel from
    /// its external one).
    pub outer_dst_port: u16,
    /// The tunnel that carried the frame (the innermost peeled); `vni` is its VNI. Whether a
    /// GENEVE header was peeled around it, and what it said, is [`InnerFrame::geneve`]: kept
    /// out of line, so this stays 64 bytes for VXLAN's sake.
    pub tunnel: Tunnel,
}

impl Default for FrameMeta {
    fn default() -> Self {
        Self {
            timestamp_ns: 0,
            orig_len: 0,
            vni: 0,
            outer_src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            outer_dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            outer_src_port: 0,
            queue: 0,
            outer_dst_port: 0,
            tunnel: Tunnel::Vxlan,
        }
    }
}

/// One decapsulated inner Ethernet frame, as an analyzer sees it.
#[derive(Clone, Copy, Debug)]
pub struct InnerFrame<'a> {
    /// The inner frame's bytes (may be shorter than `meta.orig_len`).
    pub bytes: &'a [u8],
    /// Tunnel and receive metadata.
    pub meta: &'a FrameMeta,
    /// The GENEVE header peeled, when one was: its VNI, flags and the AWS Gateway Load
    /// Balancer options (endpoint id, attachment id, flow cookie) as typed fields. Around a
    /// VXLAN tunnel (AWS Traffic Mirroring into a Gateway Load Balancer endpoint), both
    /// identities are kept: this layer and `meta.vni`. `None` for VXLAN alone.
    pub geneve: Option<&'a GeneveLayer>,
}

/// `Entry::geneve` of a frame that came through no GENEVE header.
const NO_GENEVE: u32 = u32::MAX;

/// `Entry::slot` flag: the frame was copied into the batch's own buffer
/// (offline replay, or an outer datagram reassembled from fragments).
const COPIED: u32 = 1 << 31;

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Index in `frames` (leased), or `COPIED | offset` in `copies`.
    slot: u32,
    start: u32,
    len: u32,
    /// Index in `geneve`, or `NO_GENEVE`.
    geneve: u32,
    meta: FrameMeta,
}

/// A batch of inner frames from one worker: the unit handed to analyzers.
/// All of its memory is allocated once, when the worker starts.
#[derive(Debug)]
pub struct InnerBatch {
    /// The UMEM leased frames are read from (live only; `None` while the
    /// socket is gone).
    view: Option<UmemView>,
    /// Leases UMEM frames (live), as opposed to copying them in (offline).
    leasing: bool,
    /// Leased UMEM frames.
    frames: Vec<RxFrame>,
    /// Frames copied in (fixed capacity).
    copies: Vec<u8>,
    entries: Vec<Entry>,
    /// The GENEVE layers of the frames that came through one, out of line so that
    /// VXLAN's entries stay small (`Entry::geneve` indexes it).
    geneve: Vec<GeneveLayer>,
    capacity: usize,
    /// Index of the worker that filled it (its return path).
    source: u16,
    /// The rx queue its frames arrived on (0 offline).
    queue: u16,
}

impl InnerBatch {
    /// An empty batch of up to `capacity` frames leased from `view`'s UMEM,
    /// plus `copy_bytes` for frames that are not in the UMEM (reassembled),
    /// filled by worker `source` from rx queue `queue`.
    pub fn leased(
        view: UmemView,
        capacity: usize,
        copy_bytes: usize,
        source: u16,
        queue: u16,
    ) -> Self {
        Self {
            view: Some(view),
            leasing: true,
            frames: Vec::with_capacity(capacity),
            copies: Vec::with_capacity(copy_bytes),
            entries: Vec::with_capacity(capacity),
            geneve: Vec::with_capacity(capacity),
            capacity,
            source,
            queue,
        }
    }

    /// An empty batch of up to `capacity` frames copied into `bytes` bytes,
    /// filled by worker `source` from rx queue `queue`.
    pub fn owned(bytes: usize, capacity: usize, source: u16, queue: u16) -> Self {
        Self {
            view: None,
            leasing: false,
            frames: Vec::new(),
            copies: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(capacity),
            geneve: Vec::with_capacity(capacity),
            capacity,
            source,
            queue,
        }
    }

    /// Number of inner frames.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the batch holds no frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Index of the worker that filled it.
    #[inline]
    pub fn source(&self) -> usize {
        usize::from(self.source)
    }

    /// The rx queue its frames arrived on (0 offline).
    #[inline]
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// True when no further frame fits.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity
    }

    /// True when a copy of `len` bytes would not fit whole (an empty copy
    /// buffer takes any frame, cut to its size).
    #[inline]
    pub fn is_full_for(&self, len: usize) -> bool {
        self.is_full()
            || (!self.copies.is_empty() && self.copies.len() + len > self.copies.capacity())
    }

    /// Adds a leased UMEM frame whose inner frame is `inner` (a range of
    /// the frame's bytes), which came through `geneve` (if any). Gives the
    /// frame back when the batch leases nothing or is full.
    #[inline]
    pub fn push_leased(
        &mut self,
        frame: RxFrame,
        inner: Range<usize>,
        meta: FrameMeta,
        geneve: Option<&GeneveLayer>,
    ) -> Result<(), RxFrame> {
        if self.view.is_none() || self.is_full() {
            return Err(frame);
        }
        let geneve = self.keep_geneve(geneve);
        self.entries.push(Entry {
            slot: self.frames.len() as u32,
            start: inner.start as u32,
            len: inner.len() as u32,
            geneve,
            meta,
        });
        self.frames.push(frame);
        Ok(())
    }

    /// Adds a copy of `bytes` (cut to the buffer when it alone is larger);
    /// returns the bytes kept, 0 when the batch is full.
    #[inline]
    pub fn push_copy(&mut self, bytes: &[u8], meta: FrameMeta) -> usize {
        // VXLAN's path: no prefix and no GENEVE layer, so small enough to inline.
        if self.is_full() {
            return 0;
        }
        let start = self.copies.len();
        let kept = bytes.len().min(self.copies.capacity() - start);
        self.copies.extend_from_slice(&bytes[..kept]);
        self.entries.push(Entry {
            slot: COPIED | start as u32,
            start: 0,
            len: kept as u32,
            geneve: NO_GENEVE,
            meta,
        });
        kept
    }

    /// [`push_copy`](Self::push_copy) of a frame that came through `geneve`: an Ethernet
    /// payload (GENEVE(VXLAN) among them), so no prefix.
    #[inline]
    pub fn push_copy_through(
        &mut self,
        bytes: &[u8],
        meta: FrameMeta,
        geneve: &GeneveLayer,
    ) -> usize {
        if self.is_full() {
            return 0;
        }
        let geneve = self.keep_geneve(Some(geneve));
        let start = self.copies.len();
        let kept = bytes.len().min(self.copies.capacity() - start);
        self.copies.extend_from_slice(&bytes[..kept]);
        self.entries.push(Entry {
            slot: COPIED | start as u32,
            start: 0,
            len: kept as u32,
            geneve,
            meta,
        });
        kept
    }

    /// Adds a copy of `prefix` then `bytes` as one frame (a synthetic Ethernet header and a
    /// bare IP packet), which came through `geneve` (if any), cut to the buffer as
    /// [`push_copy`](Self::push_copy) does.
    #[inline]
    pub fn push_copy_prefixed(
        &mut self,
        prefix: &[u8],
        bytes: &[u8],
        meta: FrameMeta,
        geneve: Option<&GeneveLayer>,
    ) -> usize {
        if self.is_full() {
            return 0;
        }
        let geneve = self.keep_geneve(geneve);
        let start = self.copies.len();
        let room = self.copies.capacity() - start;
        let head = prefix.len().min(room);
        self.copies.extend_from_slice(&prefix[..head]);
        let kept = head + bytes.len().min(room - head);
        self.copies.extend_from_slice(&bytes[..kept - head]);
        self.entries.push(Entry {
            slot: COPIED | start as u32,
            start: 0,
            len: kept as u32,
            geneve,
            meta,
        });
        kept
    }

    /// Keeps `layer` beside the entries; its index, or `NO_GENEVE`. Within capacity: an
    /// entry is pushed with each layer, and the caller checked that one fits.
    #[inline]
    fn keep_geneve(&mut self, layer: Option<&GeneveLayer>) -> u32 {
        match layer {
            None => NO_GENEVE,
            Some(layer) => {
                self.geneve.push(*layer);
                (self.geneve.len() - 1) as u32
            }
        }
    }

    /// The frame at `index` (< `len()`).
    #[inline]
    pub fn get(&self, index: usize) -> InnerFrame<'_> {
        let entry = &self.entries[index];
        let (start, end) = (entry.start as usize, (entry.start + entry.len) as usize);
        let bytes = if entry.slot & COPIED != 0 {
            let at = (entry.slot & !COPIED) as usize;
            self.copies.get(at + start..at + end)
        } else {
            match (&self.view, self.frames.get(entry.slot as usize)) {
                (Some(view), Some(frame)) => view.bytes(frame).get(start..end),
                _ => None,
            }
        };
        InnerFrame {
            bytes: bytes.unwrap_or(&[]),
            meta: &entry.meta,
            geneve: self.geneve.get(entry.geneve as usize),
        }
    }

    /// The frames `range` of the batch, as analyzers see them.
    #[inline]
    pub fn frames(&self, range: Range<usize>) -> Frames<'_> {
        let end = range.end.min(self.len());
        Frames {
            batch: self,
            range: range.start.min(end)..end,
        }
    }

    /// Points an empty leased batch at another UMEM (its socket was
    /// replaced after the interface came back); nothing for owned batches.
    pub fn rebind(&mut self, to: &UmemView) {
        let same = self.view.as_ref().is_some_and(|v| v.same_umem(to));
        if self.leasing && self.frames.is_empty() && !same {
            self.view = Some(to.clone());
        }
    }

    /// Lets go of the UMEM when the batch is empty (its socket is gone);
    /// [`InnerBatch::rebind`] points it at the next one.
    pub fn release_view(&mut self) {
        if self.frames.is_empty() {
            self.view = None;
        }
    }

    /// Empties the batch and hands its leased frames to `recycle`. Keeps
    /// the memory.
    pub fn clear(&mut self, recycle: impl FnOnce(std::vec::Drain<'_, RxFrame>)) {
        self.entries.clear();
        self.geneve.clear();
        self.copies.clear();
        recycle(self.frames.drain(..));
    }
}

/// A run of consecutive frames of one batch, handed to
/// [`Analyzer::on_batch`](crate::analyzer::Analyzer::on_batch).
#[derive(Clone, Debug)]
pub struct Frames<'a> {
    batch: &'a InnerBatch,
    range: Range<usize>,
}

impl<'a> Frames<'a> {
    /// Number of frames.
    #[inline]
    pub fn len(&self) -> usize {
        self.range.len()
    }

    /// True when there is no frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// The rx queue the frames arrived on (as [`FrameMeta::queue`]; 0
    /// offline).
    #[inline]
    pub fn queue(&self) -> usize {
        usize::from(self.batch.queue())
    }

    /// The frame at `index` (< `len()`).
    #[inline]
    pub fn get(&self, index: usize) -> InnerFrame<'a> {
        self.batch.get(self.range.start + index)
    }

    /// The frames `range` of these (indices relative to this run, cut to it).
    #[inline]
    #[must_use]
    pub fn slice(&self, range: Range<usize>) -> Self {
        let end = self.range.start + range.end.min(self.len());
        let start = (self.range.start + range.start).min(end);
        Frames {
            batch: self.batch,
            range: start..end,
        }
    }

    /// The frames in order.
    #[inline]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = InnerFrame<'a>> + 'a {
        let batch = self.batch;
        self.range.clone().map(move |i| batch.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_batches_keep_frames_in_order_and_respect_their_bounds() {
        let mut batch = InnerBatch::owned(16, 2, 3, 3);
        assert!(!batch.is_full_for(10));
        let meta = FrameMeta {
            vni: 7,
            ..FrameMeta::default()
        };
        assert_eq!(batch.push_copy(b"0123456789", meta), 10);
        assert!(batch.is_full_for(10), "16 bytes cannot hold 20");
        assert_eq!(batch.push_copy(b"abcdef", FrameMeta::default()), 6);
        assert!(batch.is_full_for(1), "two frames is the most");
        assert_eq!(batch.push_copy(b"x", meta), 0);
        let frames = batch.frames(0..10);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames.queue(), 3);
        assert_eq!(frames.get(0).bytes, b"0123456789");
        assert_eq!(frames.get(0).meta.vni, 7);
        let all: Vec<&[u8]> = frames.iter().map(|f| f.bytes).collect();
        assert_eq!(all, [&b"0123456789"[..], &b"abcdef"[..]]);
        assert_eq!(batch.frames(1..2).get(0).bytes, b"abcdef");
        let tail = frames.slice(1..5);
        assert_eq!((tail.len(), tail.get(0).bytes), (1, &b"abcdef"[..]));
        assert!(frames.slice(3..9).is_empty());
        #[allow(
            clippy::reversed_empty_ranges,
            reason = "a reversed range is what this checks"
        )]
        let reversed = frames.slice(1..0);
        assert!(reversed.is_empty());
        batch.clear(|frames| assert_eq!(frames.count(), 0, "owned batches lease nothing"));
        assert!(batch.is_empty());
        assert!(!batch.is_full_for(16));
    }

    /// VXLAN's per-frame metadata stays one cache line: the GENEVE layer lives beside the
    /// entries, and only the frames that came through one have it.
    #[test]
    fn the_geneve_layer_is_kept_out_of_line() {
        assert!(size_of::<FrameMeta>() <= 64);
        let mut batch = InnerBatch::owned(64, 3, 0, 0);
        let layer = GeneveLayer::new(9, 0x6558, 6081);
        assert_eq!(batch.push_copy(b"vxlan", FrameMeta::default()), 5);
        let kept = batch.push_copy_prefixed(b"ab", b"cd", FrameMeta::default(), Some(&layer));
        assert_eq!(kept, 4);
        assert_eq!(batch.push_copy(b"again", FrameMeta::default()), 5);
        let frames = batch.frames(0..3);
        let layers: Vec<_> = frames.iter().map(|f| f.geneve.copied()).collect();
        assert_eq!(layers, [None, Some(layer), None]);
        assert_eq!(frames.get(1).bytes, b"abcd");
        batch.clear(|_| {});
        assert_eq!(batch.push_copy(b"x", FrameMeta::default()), 1);
        assert_eq!(batch.get(0).geneve, None, "cleared with the entries");
    }

    #[test]
    fn an_oversized_frame_is_cut_to_the_buffer() {
        let mut batch = InnerBatch::owned(8, 4, 0, 0);
        assert!(
            !batch.is_full_for(20),
            "an empty batch takes any frame, cut"
        );
        assert_eq!(batch.push_copy(&[1u8; 20], FrameMeta::default()), 8);
    }
}
