//! Lock-free hand-over of inner frames from one worker to the analyzer thread.
//!
//! Design: the worker *copies* the inner frames of one receive batch into a
//! [`FrameBatch`] taken from a pool of preallocated batches, then pushes the
//! batch to the analyzer; the analyzer pushes it back to the pool when done.
//! Both directions are bounded lock-free queues, so a worker never blocks,
//! never allocates and never takes a lock, and pays two atomic operations
//! per batch, not per frame. An empty pool means the analyzer is behind and
//! the frames are counted as `analyzer_backpressure` (or, in lossless
//! offline mode, the worker waits). The UMEM frames go back to the fill ring
//! at the end of each receive batch, so the NIC ring never waits on an
//! analyzer.
//!
//! The seam for zero-copy delivery (issue 3) is the batch: a batch that
//! leases UMEM frames instead of owning bytes, with the pool's return queue
//! becoming the frame-return path to the worker's fill ring.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

/// What is known about an inner frame besides its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMeta {
    /// Receive time, nanoseconds since the Unix epoch.
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
}

impl Default for FrameMeta {
    fn default() -> Self {
        FrameMeta {
            timestamp_ns: 0,
            orig_len: 0,
            vni: 0,
            outer_src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            outer_dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            outer_src_port: 0,
            queue: 0,
        }
    }
}

/// A preallocated batch of inner frames packed into one buffer: a worker
/// fills one per receive batch, so the queue costs two atomic operations
/// per batch instead of two per frame.
#[derive(Debug)]
pub struct FrameBatch {
    buf: Box<[u8]>,
    used: usize,
    /// (offset, length) of each frame in `buf`, and its metadata.
    frames: Vec<(usize, usize, FrameMeta)>,
    max_frames: usize,
}

impl FrameBatch {
    fn new(bytes: usize, max_frames: usize) -> Self {
        FrameBatch {
            buf: vec![0u8; bytes].into_boxed_slice(),
            used: 0,
            frames: Vec::with_capacity(max_frames),
            max_frames,
        }
    }

    /// Number of frames in the batch.
    #[inline]
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when the batch holds no frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// True when the next frame of `len` bytes would not fit whole.
    #[inline]
    pub fn is_full_for(&self, len: usize) -> bool {
        self.frames.len() == self.max_frames || (self.used + len > self.buf.len() && self.used > 0)
    }

    /// Appends a copy of `frame` (cut to the batch size if it alone is
    /// larger); returns the bytes kept. The caller checks `is_full_for`
    /// first; a push into a full batch keeps nothing.
    #[inline]
    pub fn push(&mut self, frame: &[u8], meta: FrameMeta) -> usize {
        if self.frames.len() == self.max_frames {
            return 0;
        }
        let len = frame.len().min(self.buf.len() - self.used);
        self.buf[self.used..self.used + len].copy_from_slice(&frame[..len]);
        self.frames.push((self.used, len, meta));
        self.used += len;
        len
    }

    /// The frame at `index` and its metadata.
    #[inline]
    pub fn get(&self, index: usize) -> (&[u8], &FrameMeta) {
        let (offset, len, ref meta) = self.frames[index];
        (&self.buf[offset..offset + len], meta)
    }

    /// Empties the batch for reuse (keeps its memory).
    #[inline]
    pub fn clear(&mut self) {
        self.used = 0;
        self.frames.clear();
    }
}

struct Shared {
    free: ArrayQueue<Box<FrameBatch>>,
    ready: ArrayQueue<Box<FrameBatch>>,
    closed: AtomicBool,
}

/// Creates a channel of `batches` preallocated batches, each holding up
/// to `frames_per_batch` frames in `batch_bytes` bytes.
pub fn frame_channel(
    batches: usize,
    batch_bytes: usize,
    frames_per_batch: usize,
) -> (FrameProducer, FrameConsumer) {
    let batches = batches.max(1);
    let free = ArrayQueue::new(batches);
    for _ in 0..batches {
        // Cannot fail: the queue was made with room for every batch.
        let _ = free.push(Box::new(FrameBatch::new(
            batch_bytes,
            frames_per_batch.max(1),
        )));
    }
    let shared = Arc::new(Shared {
        free,
        ready: ArrayQueue::new(batches),
        closed: AtomicBool::new(false),
    });
    (
        FrameProducer {
            shared: shared.clone(),
        },
        FrameConsumer { shared },
    )
}

/// The worker's end: takes free slots and publishes filled ones.
pub struct FrameProducer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FrameProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameProducer")
            .field("free", &self.shared.free.len())
            .finish()
    }
}

impl FrameProducer {
    /// An empty batch, or `None` when the analyzer holds them all.
    #[inline]
    pub fn take_free(&mut self) -> Option<Box<FrameBatch>> {
        self.shared.free.pop()
    }

    /// True when fewer than a quarter of the batches are free: the analyzer
    /// is falling behind.
    #[inline]
    pub fn is_low(&self) -> bool {
        self.shared.free.len() * 4 < self.shared.free.capacity()
    }

    /// Hands a filled batch to the analyzer.
    #[inline]
    pub fn publish(&mut self, batch: Box<FrameBatch>) {
        // The ready queue has room for every batch, so this cannot fail.
        let _ = self.shared.ready.push(batch);
    }
}

impl Drop for FrameProducer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

/// The analyzer's end: takes filled slots and returns them.
pub struct FrameConsumer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for FrameConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameConsumer")
            .field("ready", &self.shared.ready.len())
            .finish()
    }
}

impl FrameConsumer {
    /// The next filled batch, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<Box<FrameBatch>> {
        self.shared.ready.pop()
    }

    /// Empties a batch and returns it to the producer's pool.
    #[inline]
    pub fn release(&mut self, mut batch: Box<FrameBatch>) {
        batch.clear();
        let _ = self.shared.free.push(batch);
    }

    /// True once the producer is gone and every published batch was taken.
    pub fn is_finished(&self) -> bool {
        // Check `closed` first: a slot published before the producer closed
        // is then guaranteed to be visible to the `is_empty` check.
        self.shared.closed.load(Ordering::Acquire) && self.shared.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_circulate_without_loss_and_exhaustion_is_visible() {
        let (mut tx, mut rx) = frame_channel(2, 16, 2);
        let mut a = tx.take_free().expect("first batch");
        assert!(!a.is_full_for(10));
        assert_eq!(
            a.push(
                b"0123456789",
                FrameMeta {
                    vni: 7,
                    ..Default::default()
                }
            ),
            10
        );
        assert!(
            a.is_full_for(10),
            "16 bytes cannot hold a second 10-byte frame"
        );
        assert!(!a.is_full_for(6));
        assert_eq!(
            a.push(
                b"abcdef",
                FrameMeta {
                    vni: 8,
                    ..Default::default()
                }
            ),
            6
        );
        assert!(a.is_full_for(1), "two frames is the most");
        assert_eq!(a.push(b"x", FrameMeta::default()), 0);
        tx.publish(a);
        let b = tx.take_free().expect("second batch");
        assert!(
            tx.take_free().is_none(),
            "pool of two is empty after two takes"
        );
        tx.publish(b);
        let got = rx.pop().expect("published batch");
        assert_eq!(got.len(), 2);
        assert_eq!(got.get(0).0, b"0123456789");
        assert_eq!(
            got.get(1),
            (
                &b"abcdef"[..],
                &FrameMeta {
                    vni: 8,
                    ..Default::default()
                }
            )
        );
        rx.release(got);
        let reused = tx.take_free().expect("released batch is reusable");
        assert!(reused.is_empty(), "released batches come back empty");
        assert!(!rx.is_finished());
        drop(tx);
        assert!(!rx.is_finished(), "one batch is still ready");
        assert!(rx.pop().is_some());
        assert!(rx.is_finished());
    }

    #[test]
    fn an_oversized_frame_is_cut_to_the_batch() {
        let (mut tx, _rx) = frame_channel(1, 8, 4);
        let mut batch = tx.take_free().expect("batch");
        assert!(
            !batch.is_full_for(20),
            "an empty batch takes any frame, cut"
        );
        assert_eq!(batch.push(&[1u8; 20], FrameMeta::default()), 8);
    }
}
