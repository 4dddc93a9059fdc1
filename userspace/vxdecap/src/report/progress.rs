//! What an analyzer thread reports: its progress while it runs (read by
//! the metrics and the `--stats` line) and its report at the end.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::analyzer::AnalyzerCounts;

/// What one analyzer thread did.
#[derive(Debug, Default)]
pub struct AnalyzerReport {
    /// Frames given to the analyzer.
    pub written: u64,
    /// Frames dequeued after the `-c` limit was reached.
    pub after_count_limit: u64,
    /// Frames dequeued after an output failed or its reader went away.
    pub after_output_closed: u64,
    /// An output failed or its reader went away (`-w - | head`).
    pub output_closed: bool,
    /// The error that stopped the analyzer, if any (a full disk, a reader
    /// that went away).
    pub error: Option<io::Error>,
    /// Receive-to-analyzer latency over all workers (live capture only).
    pub latency: Option<LatencySummary>,
    /// The same per worker, in worker order (live capture only).
    pub latency_per_worker: Vec<Option<LatencySummary>>,
    /// What the analyzer counted itself (filtered out, per route, …).
    pub counts: AnalyzerCounts,
}

/// Quantiles of the time from a frame's receive timestamp to its hand-over
/// to the analyzer, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Frames measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl LatencySummary {
    pub(crate) fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Self {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

/// Progress of one analyzer thread, readable while it runs.
#[derive(Debug, Default)]
pub struct AnalyzerProgress {
    /// Frames given to the analyzer so far.
    pub written: AtomicU64,
    /// Of those, frames its output took but could not write (published
    /// after a write error and at the end).
    pub write_failed: AtomicU64,
    /// Frames dequeued after its output failed, never given to it.
    pub after_output_closed: AtomicU64,
    /// Latency quantiles over the run so far (ns): count, p50, p99, p99.9, max.
    pub latency: [AtomicU64; 5],
}

impl AnalyzerProgress {
    /// The latency quantiles published last, if any frame was measured.
    pub fn latency(&self) -> Option<LatencySummary> {
        let [count, p50, p99, p999, max] =
            std::array::from_fn(|i| self.latency[i].load(Ordering::Relaxed));
        (count > 0).then_some(LatencySummary {
            count,
            p50,
            p99,
            p999,
            max,
        })
    }

    pub(crate) fn publish_latency(&self, summary: Option<LatencySummary>) {
        if let Some(s) = summary {
            for (slot, v) in self
                .latency
                .iter()
                .zip([s.count, s.p50, s.p99, s.p999, s.max])
            {
                slot.store(v, Ordering::Relaxed);
            }
        }
    }
}
