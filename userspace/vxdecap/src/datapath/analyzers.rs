//! Analyzer threads: each drains its lane from every worker into one
//! analyzer and returns the batches to their workers.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::analyzer::{Analyzer, OUTPUT_WRITE_FAILED};
use crate::datapath::batch::InnerBatch;
use crate::datapath::queue::BatchReceiver;
use crate::report::progress::{AnalyzerProgress, AnalyzerReport, LatencySummary};

/// Batches taken from one worker before moving to the next, so one busy
/// worker cannot starve the others.
const DRAIN_BURST: usize = 4;
/// How often the latency quantiles are published while running.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Latency range recorded: 100 ns to 60 s, 3 significant digits.
const LATENCY_LOW_NS: u64 = 100;
const LATENCY_HIGH_NS: u64 = 60_000_000_000;

/// What the analyzer thread measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    /// Record receive-to-hand-over latency (live timestamps are wall-clock receive times).
    Measure,
    /// Timestamps come from a file: nothing to measure.
    Skip,
}

/// One analyzer and what it has done so far: takes batches from its lanes,
/// measures their latency, applies the `-c` limit, and hands them to the
/// analyzer. Runs on an analyzer thread of its own ([`spawn_analyzers`]),
/// or inline in a worker ([`InlineAnalyzers`]).
pub struct AnalyzerRunner {
    receiver: BatchReceiver,
    analyzer: Box<dyn Analyzer>,
    limit: u64,
    stop: Arc<AtomicBool>,
    progress: Arc<AnalyzerProgress>,
    report: AnalyzerReport,
    /// One histogram per worker, allocated here, not per frame.
    per_worker: Vec<Option<Histogram<u64>>>,
    merged: Option<Histogram<u64>>,
    last_publish: Instant,
}

impl std::fmt::Debug for AnalyzerRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyzerRunner")
            .field("analyzer", &self.analyzer.name())
            .field("written", &self.report.written)
            .finish_non_exhaustive()
    }
}

impl AnalyzerRunner {
    /// Runs `analyzer` over the batches of `receiver`; raises `stop` when
    /// `limit` frames have been written or the analyzer fails.
    pub fn new(
        receiver: BatchReceiver,
        analyzer: Box<dyn Analyzer>,
        limit: Option<u64>,
        stop: Arc<AtomicBool>,
        progress: Arc<AnalyzerProgress>,
        latency: Latency,
    ) -> Self {
        let new_histogram =
            || Histogram::<u64>::new_with_bounds(LATENCY_LOW_NS, LATENCY_HIGH_NS, 3).ok();
        let (per_worker, merged) = match latency {
            Latency::Measure => (
                std::iter::repeat_with(&new_histogram)
                    .take(receiver.workers())
                    .collect(),
                new_histogram(),
            ),
            Latency::Skip => (Vec::new(), None),
        };
        Self {
            receiver,
            analyzer,
            limit: limit.unwrap_or(u64::MAX),
            stop,
            progress,
            report: AnalyzerReport::default(),
            per_worker,
            merged,
            last_publish: Instant::now(),
        }
    }

    /// Hands every batch waiting in the lanes to the analyzer (at most a
    /// few per worker in turn, so one busy worker cannot starve the
    /// others); true when there was any.
    pub fn drain(&mut self) -> bool {
        let mut got_any = false;
        for worker in 0..self.receiver.workers() {
            for _ in 0..DRAIN_BURST {
                let Some(batch) = self.receiver.pop(worker) else {
                    break;
                };
                got_any = true;
                self.take(&batch, worker);
                self.receiver.release(batch);
            }
        }
        if got_any {
            self.progress
                .written
                .store(self.report.written, Ordering::Relaxed);
            self.progress
                .after_output_closed
                .store(self.report.after_output_closed, Ordering::Relaxed);
        }
        got_any
    }

    #[inline]
    fn take(&mut self, batch: &InnerBatch, worker: usize) {
        let n = batch.len() as u64;
        if let Some(Some(h)) = self.per_worker.get_mut(worker) {
            // One clock read per batch; each frame has its own receive time.
            let now = wall_clock_ns();
            for frame in batch.frames(0..batch.len()).iter() {
                let waited = now
                    .saturating_sub(frame.meta.timestamp_ns)
                    .clamp(LATENCY_LOW_NS, LATENCY_HIGH_NS);
                let _ = h.record(waited);
            }
        }
        let report = &mut self.report;
        if report.output_closed {
            report.after_output_closed += n;
            return;
        }
        let allowed = n.min(self.limit - report.written);
        if allowed > 0 {
            if let Err(e) = self.analyzer.on_batch(batch.frames(0..allowed as usize)) {
                fail(report, e, &self.stop);
                publish_failed(&*self.analyzer, &self.progress);
            }
        }
        report.written += allowed;
        report.after_count_limit += n - allowed;
        if allowed > 0 && report.written == self.limit {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// The lanes ran dry: lets the analyzer flush, and publishes the
    /// latency quantiles about once a second.
    pub fn idle(&mut self) {
        if let Err(e) = self.analyzer.on_idle() {
            fail(&mut self.report, e, &self.stop);
            publish_failed(&*self.analyzer, &self.progress);
        }
        self.publish(false);
    }

    fn publish(&mut self, now: bool) {
        if let Some(m) = self.merged.as_mut() {
            if now || self.last_publish.elapsed() >= PUBLISH_EVERY {
                self.last_publish = Instant::now();
                self.progress.publish_latency(merge(m, &self.per_worker));
            }
        }
    }

    /// True once every worker is gone and the lanes are empty.
    pub fn is_finished(&self) -> bool {
        self.receiver.is_finished()
    }

    /// Finishes the analyzer (flush, close) and reports.
    pub fn finish(mut self) -> AnalyzerReport {
        if let Err(e) = self.analyzer.finish() {
            fail(&mut self.report, e, &self.stop);
        }
        let mut report = self.report;
        report.counts = self.analyzer.counts();
        self.progress
            .written
            .store(report.written, Ordering::Relaxed);
        self.progress
            .write_failed
            .store(report.counts.get(OUTPUT_WRITE_FAILED), Ordering::Relaxed);
        if let Some(m) = self.merged.as_mut() {
            report.latency = merge(m, &self.per_worker);
            self.progress.publish_latency(report.latency);
            report.latency_per_worker = self
                .per_worker
                .iter()
                .map(|h| h.as_ref().and_then(LatencySummary::from_histogram))
                .collect();
        }
        report
    }
}

/// Runs `runner` until every worker is gone and its lanes are empty: the
/// body of an analyzer thread.
pub fn run_analyzer(mut runner: AnalyzerRunner) -> AnalyzerReport {
    loop {
        if runner.drain() {
            // Busy: the latency quantiles are still published once a second.
            runner.publish(false);
            continue;
        }
        if runner.is_finished() {
            break;
        }
        runner.idle();
        std::thread::sleep(Duration::from_micros(200));
    }
    runner.finish()
}

/// Merges the per-worker histograms into `into` and summarizes it.
fn merge(into: &mut Histogram<u64>, parts: &[Option<Histogram<u64>>]) -> Option<LatencySummary> {
    into.reset();
    for h in parts.iter().flatten() {
        // Same bounds and precision: adding cannot fail.
        let _ = into.add(h);
    }
    LatencySummary::from_histogram(into)
}

fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// An output failed: the run stops, and the error is reported (the first
/// one). A reader that went away (`-w - | head`) is an error too: the frames
/// it did not take are lost, so the run says so and exits 1, where tcpdump
/// dies of SIGPIPE.
fn fail(report: &mut AnalyzerReport, error: io::Error, stop: &AtomicBool) {
    stop.store(true, Ordering::Relaxed);
    report.output_closed = true;
    if report.error.is_none() {
        report.error = Some(error);
    }
}

/// Publishes what the analyzer lost to write errors (after an error only:
/// `counts` builds a report).
#[cold]
fn publish_failed(analyzer: &dyn Analyzer, progress: &AnalyzerProgress) {
    progress.write_failed.store(
        analyzer.counts().get(OUTPUT_WRITE_FAILED),
        Ordering::Relaxed,
    );
}

/// A running analyzer: on a thread of its own, or inline in a worker.
#[derive(Debug)]
pub struct AnalyzerThread {
    /// The analyzer's name (for reports and metrics).
    pub name: String,
    /// Its progress, readable while it runs.
    pub progress: Arc<AnalyzerProgress>,
    handle: AnalyzerHandle,
}

#[derive(Debug)]
enum AnalyzerHandle {
    Thread(std::thread::JoinHandle<AnalyzerReport>),
    /// The worker running the analyzer sends its report when it ends.
    Inline(std::sync::mpsc::Receiver<AnalyzerReport>),
}

impl AnalyzerThread {
    /// Waits for the analyzer to end; a panic becomes the report's error.
    pub fn join(self) -> AnalyzerReport {
        let report = match self.handle {
            AnalyzerHandle::Thread(handle) => handle.join().ok(),
            AnalyzerHandle::Inline(report) => report.recv().ok(),
        };
        report.unwrap_or_else(|| AnalyzerReport {
            output_closed: true,
            error: Some(io::Error::other("the analyzer's thread panicked")),
            ..AnalyzerReport::default()
        })
    }

    /// True when the analyzer runs in a worker's thread.
    pub fn is_inline(&self) -> bool {
        matches!(self.handle, AnalyzerHandle::Inline(_))
    }
}

/// Starts one thread per analyzer, analyzer `i` reading `receivers[i]`,
/// pinned to `cpus[i]` when given.
pub fn spawn_analyzers(
    receivers: Vec<BatchReceiver>,
    analyzers: Vec<Box<dyn Analyzer>>,
    limit: Option<u64>,
    stop: &Arc<AtomicBool>,
    latency: Latency,
    cpus: &[Option<usize>],
) -> io::Result<Vec<AnalyzerThread>> {
    let mut threads = Vec::with_capacity(analyzers.len());
    for (i, (receiver, analyzer)) in receivers.into_iter().zip(analyzers).enumerate() {
        let name = analyzer.name().to_owned();
        let progress = Arc::new(AnalyzerProgress::default());
        let cpu = cpus.get(i).copied().flatten();
        let runner = AnalyzerRunner::new(
            receiver,
            analyzer,
            limit,
            Arc::clone(stop),
            Arc::clone(&progress),
            latency,
        );
        let handle = std::thread::Builder::new()
            .name(format!("vxdecap-an{i}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if let Err(e) = crate::sys::cpu::pin_current_thread(cpu) {
                        tracing::warn!(cpu, error = %e, "cannot pin an analyzer thread");
                    }
                }
                run_analyzer(runner)
            })?;
        threads.push(AnalyzerThread {
            name,
            progress,
            handle: AnalyzerHandle::Thread(handle),
        });
    }
    Ok(threads)
}

/// Analyzers run in a worker's own thread, run to completion: the worker
/// hands each batch to them right after filling it, with no thread switch.
/// Used when there is one worker and the analyzers would share its core
/// anyway (see [`Analyzer::can_run_inline`]).
#[derive(Debug)]
pub struct InlineAnalyzers {
    runners: Vec<(AnalyzerRunner, std::sync::mpsc::Sender<AnalyzerReport>)>,
    last_idle: Instant,
}

/// How often inline analyzers get `on_idle` while their worker's ring is
/// empty (an analyzer thread sleeps 200 µs between its own calls): a
/// buffered output flushes at least this often, and at light load, where
/// the worker naps a few thousand times a second, not at every nap.
const INLINE_IDLE_EVERY: Duration = Duration::from_millis(5);

impl InlineAnalyzers {
    /// Wraps `analyzers` (reading `receivers`) for one worker; the returned
    /// handles give their reports once the worker calls [`InlineAnalyzers::finish`].
    pub fn new(
        receivers: Vec<BatchReceiver>,
        analyzers: Vec<Box<dyn Analyzer>>,
        limit: Option<u64>,
        stop: &Arc<AtomicBool>,
        latency: Latency,
    ) -> (Vec<AnalyzerThread>, Self) {
        let mut handles = Vec::with_capacity(analyzers.len());
        let mut runners = Vec::with_capacity(analyzers.len());
        for (receiver, analyzer) in receivers.into_iter().zip(analyzers) {
            let name = analyzer.name().to_owned();
            let progress = Arc::new(AnalyzerProgress::default());
            let (tx, rx) = std::sync::mpsc::channel();
            runners.push((
                AnalyzerRunner::new(
                    receiver,
                    analyzer,
                    limit,
                    Arc::clone(stop),
                    Arc::clone(&progress),
                    latency,
                ),
                tx,
            ));
            handles.push(AnalyzerThread {
                name,
                progress,
                handle: AnalyzerHandle::Inline(rx),
            });
        }
        (
            handles,
            Self {
                runners,
                last_idle: Instant::now(),
            },
        )
    }

    /// Hands the batches the worker just published to every analyzer.
    #[inline]
    pub fn drain(&mut self) {
        for (runner, _) in &mut self.runners {
            runner.drain();
        }
    }

    /// The worker's ring is empty: `on_idle` for every analyzer, at most
    /// every [`INLINE_IDLE_EVERY`], or now when the worker is about to sleep.
    pub fn idle(&mut self, before_sleep: bool) {
        if !before_sleep && self.last_idle.elapsed() < INLINE_IDLE_EVERY {
            return;
        }
        self.last_idle = Instant::now();
        for (runner, _) in &mut self.runners {
            runner.idle();
        }
    }

    /// The worker is done: the last batches, then finish and report.
    pub fn finish(self) {
        for (mut runner, report) in self.runners {
            while runner.drain() {}
            let _ = report.send(runner.finish());
        }
    }
}
