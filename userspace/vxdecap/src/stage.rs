//! The decapsulation stage shared by live workers and offline replay:
//! validate and decapsulate one outer frame, hand the inner frame to the
//! analyzer queue, count everything else under a named reason.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vxdecap_wire::{decapsulate, PortSet};

use crate::queue::{FrameBatch, FrameMeta, FrameProducer};
use crate::stats::{SharedStats, StageCounter, StageStats};

/// What to do when the analyzer has no free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backpressure {
    /// Drop the frame and count it (live capture: never stall the NIC ring).
    Drop,
    /// Wait for a slot (offline replay: lose nothing).
    Wait,
}

/// Decapsulates frames into an analyzer queue.
#[derive(Debug)]
pub struct DecapStage {
    ports: PortSet,
    queue: u16,
    producer: FrameProducer,
    /// The batch being filled; published by `flush` (end of a receive batch) or when full.
    current: Option<Box<FrameBatch>>,
    backpressure: Backpressure,
    stop: Arc<AtomicBool>,
    stats: StageStats,
    shared: Arc<SharedStats>,
}

impl DecapStage {
    /// A stage for rx queue `queue` feeding `producer`. In `Wait` mode a
    /// raised `stop` flag ends the wait (the frame is then counted as
    /// backpressure).
    pub fn new(
        ports: PortSet,
        queue: u16,
        producer: FrameProducer,
        backpressure: Backpressure,
        stop: Arc<AtomicBool>,
    ) -> Self {
        DecapStage {
            ports,
            queue,
            producer,
            current: None,
            backpressure,
            stop,
            stats: StageStats::default(),
            shared: Arc::new(SharedStats::default()),
        }
    }

    /// The counters this stage publishes.
    pub fn shared_stats(&self) -> Arc<SharedStats> {
        self.shared.clone()
    }

    /// The counters so far (owner's view).
    pub fn stats_mut(&mut self) -> &mut StageStats {
        &mut self.stats
    }

    /// Handles one outer frame received at `timestamp_ns`.
    #[inline]
    pub fn handle(&mut self, frame: &[u8], timestamp_ns: u64) {
        self.stats.add(StageCounter::Received, 1);
        self.stats
            .add(StageCounter::ReceivedBytes, frame.len() as u64);
        let decap = match decapsulate(frame, &self.ports) {
            Ok(decap) => decap,
            Err(reason) => {
                self.stats.reject(reason);
                return;
            }
        };
        let len = decap.inner.len();
        if self.current.as_ref().is_some_and(|b| b.is_full_for(len)) {
            self.flush();
        }
        if self.current.is_none() {
            self.current = self.free_batch();
        }
        let Some(batch) = self.current.as_mut() else {
            self.stats.add(StageCounter::AnalyzerBackpressure, 1);
            return;
        };
        let meta = FrameMeta {
            timestamp_ns,
            orig_len: len as u32,
            vni: decap.vni,
            outer_src: decap.outer_src,
            outer_dst: decap.outer_dst,
            outer_src_port: decap.outer_src_port,
            queue: self.queue,
        };
        let kept = batch.push(decap.inner, meta);
        if kept < len {
            self.stats.add(StageCounter::TruncatedToSlot, 1);
        }
        self.stats.add(StageCounter::Delivered, 1);
        self.stats.add(StageCounter::DeliveredBytes, kept as u64);
    }

    /// Hands the frames gathered so far to the analyzer (end of a receive batch).
    #[inline]
    pub fn flush(&mut self) {
        if let Some(batch) = self.current.take() {
            if batch.is_empty() {
                self.current = Some(batch);
            } else {
                self.producer.publish(batch);
                // An analyzer sharing this core needs the CPU to catch up;
                // yielding costs nothing when it runs elsewhere.
                if self.producer.is_low() {
                    std::thread::yield_now();
                }
            }
        }
    }

    #[inline]
    fn free_batch(&mut self) -> Option<Box<FrameBatch>> {
        loop {
            if let Some(batch) = self.producer.take_free() {
                return Some(batch);
            }
            if self.backpressure == Backpressure::Drop || self.stop.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::yield_now();
        }
    }

    /// Publishes the counters (once per batch).
    #[inline]
    pub fn publish(&self) {
        self.shared.publish(&self.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::frame_channel;
    use vxdecap_wire::{build, Reject};

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

    #[test]
    fn delivers_rejects_and_counts_backpressure() {
        let (producer, mut consumer) = frame_channel(1, 2048, 64);
        let stop = Arc::new(AtomicBool::new(false));
        let mut stage = DecapStage::new(PortSet::default(), 3, producer, Backpressure::Drop, stop);
        stage.handle(&vxlan(27, 0x08), 42);
        stage.handle(&vxlan(27, 0x00), 43);
        stage.flush();
        stage.handle(&vxlan(28, 0x08), 44); // no free batch: the only one is in the queue
        stage.publish();
        let batch = consumer.pop().expect("first frame delivered");
        assert_eq!(batch.len(), 1);
        let (bytes, meta) = batch.get(0);
        assert_eq!(meta.vni, 27);
        assert_eq!(meta.timestamp_ns, 42);
        assert_eq!(meta.queue, 3);
        assert_eq!(bytes.len(), 60);
        let stats = stage.shared_stats().snapshot();
        assert_eq!(stats.get(StageCounter::Received), 3);
        assert_eq!(stats.get(StageCounter::Delivered), 1);
        assert_eq!(stats.rejected(Reject::VxlanIFlagClear), 1);
        assert_eq!(stats.get(StageCounter::AnalyzerBackpressure), 1);
    }
}
