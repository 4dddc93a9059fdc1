//! The analyzer thread: drains every worker's queue into the analyzers.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::analyzer::Analyzer;
use crate::queue::FrameConsumer;

/// Batches taken from one queue before moving to the next, so one busy
/// worker cannot starve the others.
const DRAIN_BURST: usize = 4;

/// What the analyzer thread did.
#[derive(Debug, Default)]
pub struct AnalyzerReport {
    /// Frames given to the analyzers.
    pub written: u64,
    /// Frames dequeued after the `-c` limit was reached.
    pub after_count_limit: u64,
    /// Frames dequeued after an output failed or its reader went away.
    pub after_output_closed: u64,
    /// An output failed or its reader went away (`-w - | head`).
    pub output_closed: bool,
    /// The error that stopped an analyzer, if any (a closed pipe is not an error).
    pub error: Option<io::Error>,
    /// Receive-to-analyzer latency (live capture only).
    pub latency: Option<LatencySummary>,
}

/// Quantiles of the time from a frame's receive timestamp to its hand-over
/// to the analyzers, in nanoseconds.
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
    fn from_histogram(h: &Histogram<u64>) -> Self {
        LatencySummary {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// What the analyzer thread measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// Record receive-to-hand-over latency (live timestamps are wall-clock receive times).
    Measure,
    /// Timestamps come from a file: nothing to measure.
    Skip,
}

/// Shared progress of the analyzer thread.
#[derive(Debug, Default)]
pub struct AnalyzerProgress {
    /// Frames given to the analyzers so far.
    pub written: AtomicU64,
}

/// Runs `analyzers` over the frames of `consumers` until every producer is
/// gone and the queues are empty. Raises `stop` when `limit` frames have
/// been written or an analyzer fails.
pub fn run_analyzers(
    mut consumers: Vec<FrameConsumer>,
    mut analyzers: Vec<Box<dyn Analyzer>>,
    limit: Option<u64>,
    stop: Arc<AtomicBool>,
    progress: Arc<AnalyzerProgress>,
    latency: Latency,
) -> AnalyzerReport {
    let mut report = AnalyzerReport::default();
    let limit = limit.unwrap_or(u64::MAX);
    // 1 ns to 60 s at 3 significant digits: allocated once, here, not per frame.
    let mut histogram = match latency {
        Latency::Measure => Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).ok(),
        Latency::Skip => None,
    };
    loop {
        let mut got_any = false;
        for consumer in consumers.iter_mut() {
            for _ in 0..DRAIN_BURST {
                let Some(batch) = consumer.pop() else { break };
                got_any = true;
                if let (Some(h), false) = (histogram.as_mut(), batch.is_empty()) {
                    // Frames of a batch share their receive timestamp: one clock
                    // read and one record per batch.
                    let received = batch.get(0).1.timestamp_ns;
                    let waited = wall_clock_ns().saturating_sub(received).max(1);
                    let _ = h.record_n(waited.min(h.high()), batch.len() as u64);
                }
                for index in 0..batch.len() {
                    let (bytes, meta) = batch.get(index);
                    if report.output_closed {
                        report.after_output_closed += 1;
                    } else if report.written >= limit {
                        report.after_count_limit += 1;
                    } else {
                        for analyzer in analyzers.iter_mut() {
                            if let Err(e) = analyzer.on_frame(bytes, meta) {
                                fail(&mut report, e, &stop);
                            }
                        }
                        report.written += 1;
                        if report.written == limit {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
                consumer.release(batch);
            }
        }
        progress.written.store(report.written, Ordering::Relaxed);
        if got_any {
            continue;
        }
        if consumers.iter().all(FrameConsumer::is_finished) {
            break;
        }
        for analyzer in analyzers.iter_mut() {
            if let Err(e) = analyzer.on_idle() {
                fail(&mut report, e, &stop);
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    for analyzer in analyzers.iter_mut() {
        if let Err(e) = analyzer.finish() {
            fail(&mut report, e, &stop);
        }
    }
    progress.written.store(report.written, Ordering::Relaxed);
    report.latency = histogram
        .as_ref()
        .filter(|h| !h.is_empty())
        .map(LatencySummary::from_histogram);
    report
}

fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn fail(report: &mut AnalyzerReport, error: io::Error, stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
    report.output_closed = true;
    // A reader that went away (`-w - | head`) ends the capture quietly, as in tcpdump.
    if error.kind() != io::ErrorKind::BrokenPipe && report.error.is_none() {
        report.error = Some(error);
    }
}
