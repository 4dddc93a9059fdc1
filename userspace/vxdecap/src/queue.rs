//! Lock-free hand-over of inner frames from one worker to the analyzer thread.
//!
//! Design (issue 2): the worker *copies* each inner frame into a slot taken
//! from a pool of preallocated slots, then pushes the slot to the analyzer;
//! the analyzer pushes it back to the pool when done. Both directions are
//! bounded lock-free queues, so a worker never blocks, never allocates and
//! never takes a lock; an empty pool means the analyzer is behind and the
//! frame is counted as `analyzer_backpressure` (or, in lossless offline
//! mode, the worker waits). The UMEM frame goes back to the fill ring at the
//! end of each batch, so the NIC ring never waits on an analyzer.
//!
//! The seam for zero-copy delivery (issue 3) is the slot: a slot that
//! leases a UMEM frame instead of owning bytes, with the pool's return
//! queue becoming the frame-return path to the worker's fill ring.

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

/// One preallocated buffer carrying an inner frame.
#[derive(Debug)]
pub struct FrameSlot {
    buf: Box<[u8]>,
    len: usize,
    /// Metadata of the frame in the slot.
    pub meta: FrameMeta,
}

impl FrameSlot {
    /// The inner frame bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Copies `frame` in, truncating it to the slot size; returns the
    /// number of bytes kept.
    #[inline]
    pub fn fill(&mut self, frame: &[u8], meta: FrameMeta) -> usize {
        let len = frame.len().min(self.buf.len());
        self.buf[..len].copy_from_slice(&frame[..len]);
        self.len = len;
        self.meta = meta;
        len
    }
}

struct Shared {
    free: ArrayQueue<Box<FrameSlot>>,
    ready: ArrayQueue<Box<FrameSlot>>,
    closed: AtomicBool,
}

/// Creates a channel of `slots` buffers of `slot_size` bytes each.
pub fn frame_channel(slots: usize, slot_size: usize) -> (FrameProducer, FrameConsumer) {
    let slots = slots.max(1);
    let free = ArrayQueue::new(slots);
    for _ in 0..slots {
        let slot = Box::new(FrameSlot {
            buf: vec![0u8; slot_size].into_boxed_slice(),
            len: 0,
            meta: FrameMeta::default(),
        });
        // Cannot fail: the queue was made with room for every slot.
        let _ = free.push(slot);
    }
    let shared = Arc::new(Shared {
        free,
        ready: ArrayQueue::new(slots),
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
    /// A free slot, or `None` when the analyzer holds them all.
    #[inline]
    pub fn take_free(&mut self) -> Option<Box<FrameSlot>> {
        self.shared.free.pop()
    }

    /// Hands a filled slot to the analyzer.
    #[inline]
    pub fn publish(&mut self, slot: Box<FrameSlot>) {
        // The ready queue has room for every slot, so this cannot fail.
        let _ = self.shared.ready.push(slot);
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
    /// The next filled slot, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<Box<FrameSlot>> {
        self.shared.ready.pop()
    }

    /// Returns a slot to the producer's pool.
    #[inline]
    pub fn release(&mut self, slot: Box<FrameSlot>) {
        let _ = self.shared.free.push(slot);
    }

    /// True once the producer is gone and every published slot was taken.
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
    fn slots_circulate_without_loss_and_exhaustion_is_visible() {
        let (mut tx, mut rx) = frame_channel(2, 16);
        let mut a = tx.take_free().expect("first slot");
        assert_eq!(
            a.fill(
                b"0123456789abcdefXYZ",
                FrameMeta {
                    vni: 7,
                    ..Default::default()
                }
            ),
            16
        );
        tx.publish(a);
        let b = tx.take_free().expect("second slot");
        assert!(
            tx.take_free().is_none(),
            "pool of two is empty after two takes"
        );
        tx.publish(b);
        let got = rx.pop().expect("published slot");
        assert_eq!(got.bytes(), b"0123456789abcdef");
        assert_eq!(got.meta.vni, 7);
        rx.release(got);
        assert!(tx.take_free().is_some(), "released slot is reusable");
        assert!(!rx.is_finished());
        drop(tx);
        assert!(!rx.is_finished(), "one slot is still ready");
        assert!(rx.pop().is_some());
        assert!(rx.is_finished());
    }
}
