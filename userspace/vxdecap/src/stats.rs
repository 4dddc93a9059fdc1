//! Per-worker counters: plain integers on the hot path, published to
//! atomics once per batch for the reporting thread.

use std::sync::atomic::{AtomicU64, Ordering};

use vxdecap_wire::Reject;

use crate::queue::MAX_ANALYZERS;

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
    /// Receive batches that held at least one frame.
    Batches,
    /// Polls of the RX ring that found nothing.
    EmptyPolls,
}

const STAGE_COUNTERS: usize = 8;
/// Number of slots: stage counters, one per reject reason, then one per
/// analyzer (frames that analyzer did not get because it was behind).
pub const COUNTER_SLOTS: usize = STAGE_COUNTERS + Reject::COUNT + MAX_ANALYZERS;
const BACKPRESSURE_SLOT: usize = STAGE_COUNTERS + Reject::COUNT;

impl StageCounter {
    /// Every counter, in slot order.
    pub const ALL: [StageCounter; STAGE_COUNTERS] = [
        StageCounter::Received,
        StageCounter::ReceivedBytes,
        StageCounter::Delivered,
        StageCounter::DeliveredBytes,
        StageCounter::NoRxTimestamp,
        StageCounter::TruncatedToSlot,
        StageCounter::Batches,
        StageCounter::EmptyPolls,
    ];

    /// Stable name, as shown in summaries and metrics.
    pub fn name(self) -> &'static str {
        match self {
            StageCounter::Received => "received",
            StageCounter::ReceivedBytes => "received_bytes",
            StageCounter::Delivered => "delivered",
            StageCounter::DeliveredBytes => "delivered_bytes",
            StageCounter::NoRxTimestamp => "no_rx_timestamp",
            StageCounter::TruncatedToSlot => "truncated_to_slot",
            StageCounter::Batches => "batches",
            StageCounter::EmptyPolls => "empty_polls",
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
        StageStats {
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
    pub fn merge(&mut self, other: &StageStats) {
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
        SharedStats {
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
