//! Lock-free hand-over of inner-frame batches from workers to analyzers,
//! and the return path that gives leased UMEM frames back to their worker.
//!
//! ```text
//!   worker q ──batch──▶ lane (q, a) ──▶ analyzer a   (one bounded queue per worker × analyzer)
//!      ▲                                    │
//!      └──────────── done (q) ◀─────────────┘        (one bounded queue per worker)
//! ```
//!
//! A worker owns a pool of preallocated [`InnerBatch`]es behind `Arc`s. It
//! fills one per receive batch with leases on UMEM frames, then pushes one
//! clone of the `Arc` into the lane of each analyzer (fan-out costs one
//! reference count and one queue push per analyzer per batch, nothing per
//! frame). An analyzer that is done pushes its clone into the worker's
//! `done` queue. The worker pops `done` at the start of each receive batch:
//! a batch whose `Arc` is unique again has been released by every analyzer,
//! so its frames go back to the fill ring and the batch back to the pool;
//! a clone that is not unique yet is simply dropped (another analyzer still
//! holds the batch and will return it). Analyzers never drop a clone, so a
//! count never reaches zero and nothing is freed or allocated at run time.
//!
//! A lane also counts the frames its analyzer holds, and a lane may hold
//! only its quota of the worker's leasable frames (half of them when there
//! are several analyzers): a slow analyzer cannot pin all of the UMEM and
//! starve the others. A full lane, or one over its quota, means that
//! analyzer is behind: the batch skips it and its frames count as
//! `analyzer_backpressure` for that analyzer only (in lossless mode the
//! worker waits instead). If no analyzer took the batch, the worker
//! recycles its frames at once. The NIC ring never waits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::analyzer::MAX_ANALYZERS;
use crate::datapath::batch::InnerBatch;

struct Lane {
    queue: ArrayQueue<Arc<InnerBatch>>,
    /// Frames in batches pushed here and not yet released by the analyzer.
    held: AtomicUsize,
}

struct WorkerQueues {
    /// One lane per analyzer.
    lanes: Vec<Lane>,
    /// Batches analyzers are done with.
    done: ArrayQueue<Arc<InnerBatch>>,
    /// The worker is gone: nothing more will be pushed.
    closed: AtomicBool,
}

/// Creates the queues between `workers` workers and `analyzers` analyzers,
/// each worker to own `batches` batches (see [`BatchSender::stock`]).
pub fn fan_out(
    workers: usize,
    analyzers: usize,
    batches: usize,
) -> (Vec<BatchSender>, Vec<BatchReceiver>) {
    let analyzers = analyzers.clamp(1, MAX_ANALYZERS);
    let batches = batches.max(1);
    let mut senders = Vec::with_capacity(workers);
    let mut shared = Vec::with_capacity(workers);
    for _ in 0..workers {
        let queues = Arc::new(WorkerQueues {
            lanes: std::iter::repeat_with(|| Lane {
                queue: ArrayQueue::new(batches),
                held: AtomicUsize::new(0),
            })
            .take(analyzers)
            .collect(),
            done: ArrayQueue::new(batches * analyzers),
            closed: AtomicBool::new(false),
        });
        shared.push(Arc::clone(&queues));
        senders.push(BatchSender {
            queues,
            free: Vec::with_capacity(batches),
            leased: 0,
            quota: usize::MAX,
        });
    }
    let receivers = (0..analyzers)
        .map(|analyzer| BatchReceiver {
            workers: shared.clone(),
            analyzer,
        })
        .collect();
    (senders, receivers)
}

/// A worker's end: a pool of batches, the lanes to every analyzer, and the
/// return path.
pub struct BatchSender {
    queues: Arc<WorkerQueues>,
    free: Vec<Arc<InnerBatch>>,
    /// Frames in batches handed out and not yet back.
    leased: usize,
    /// Most frames one lane may hold.
    quota: usize,
}

impl std::fmt::Debug for BatchSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchSender")
            .field("free", &self.free.len())
            .field("leased", &self.leased)
            .finish_non_exhaustive()
    }
}

impl BatchSender {
    /// Fills the pool with batches made by `make` (the worker does this
    /// once its socket, whose UMEM the batches lease from, is open).
    pub fn stock(&mut self, mut make: impl FnMut() -> InnerBatch) {
        while self.free.len() < self.free.capacity() {
            self.free.push(Arc::new(make()));
        }
    }

    /// Limits the frames each lane may hold to `quota`.
    pub fn set_lane_quota(&mut self, quota: usize) {
        self.quota = quota.max(1);
    }

    /// Calls `f` on every batch in the pool.
    pub fn for_each_free(&mut self, mut f: impl FnMut(&mut InnerBatch)) {
        for batch in &mut self.free {
            if let Some(inner) = Arc::get_mut(batch) {
                f(inner);
            }
        }
    }

    /// Number of analyzers fed.
    #[inline]
    pub fn analyzers(&self) -> usize {
        self.queues.lanes.len()
    }

    /// Frames handed out and not yet returned by every analyzer.
    #[inline]
    pub fn leased(&self) -> usize {
        self.leased
    }

    /// Takes back the batches every analyzer is done with; `recycle` gets
    /// each one to give its frames back (it is then emptied and pooled).
    #[inline]
    pub fn reclaim(&mut self, mut recycle: impl FnMut(&mut InnerBatch)) {
        while let Some(mut batch) = self.queues.done.pop() {
            // Unique: every analyzer has returned its clone. Otherwise one
            // still holds it and will return it later; this clone goes.
            if let Some(inner) = Arc::get_mut(&mut batch) {
                self.leased = self.leased.saturating_sub(inner.len());
                recycle(inner);
                self.free.push(batch);
            }
        }
    }

    /// An empty batch from the pool, if one is free.
    #[inline]
    pub fn take(&mut self) -> Option<Arc<InnerBatch>> {
        self.free.pop()
    }

    /// True when the pool has a batch.
    #[inline]
    pub fn has_free(&self) -> bool {
        !self.free.is_empty()
    }

    /// Gives an unused batch back to the pool.
    #[inline]
    pub fn put_back(&mut self, batch: Arc<InnerBatch>) {
        self.free.push(batch);
    }

    /// Hands `batch` to every analyzer with room; adds the batch's frame
    /// count to `skipped[a]` for each analyzer `a` that had none. With
    /// `wait`, waits for room instead, until `stop` is raised. Returns the
    /// batch when no analyzer took it: the caller recycles its frames.
    #[inline]
    pub fn send(
        &mut self,
        batch: Arc<InnerBatch>,
        wait: bool,
        stop: &AtomicBool,
        skipped: &mut [u64],
    ) -> Option<Arc<InnerBatch>> {
        let frames = batch.len();
        let mut taken = 0;
        for (a, lane) in self.queues.lanes.iter().enumerate() {
            let mut item = Arc::clone(&batch);
            loop {
                let over_quota = lane.held.load(Ordering::Relaxed) + frames > self.quota;
                let pushed = if over_quota {
                    Err(item)
                } else {
                    // Counted first: the analyzer may release the batch at once.
                    lane.held.fetch_add(frames, Ordering::Relaxed);
                    lane.queue.push(item).inspect_err(|_| {
                        lane.held.fetch_sub(frames, Ordering::Relaxed);
                    })
                };
                match pushed {
                    Ok(()) => {
                        taken += 1;
                        break;
                    }
                    Err(back) if wait && !stop.load(Ordering::Relaxed) => {
                        item = back;
                        std::thread::yield_now();
                    }
                    Err(_) => {
                        // The rejected clone is dropped; `batch` keeps the count above zero.
                        if let Some(slot) = skipped.get_mut(a) {
                            *slot += frames as u64;
                        }
                        break;
                    }
                }
            }
        }
        if taken == 0 {
            return Some(batch);
        }
        self.leased += frames;
        // The analyzers hold the batch now; this handle is not needed. The
        // count stays above zero: every clone is in a lane or `done`.
        drop(batch);
        None
    }

    /// True when an analyzer's lane is more than three quarters full.
    #[inline]
    pub fn is_congested(&self) -> bool {
        self.queues
            .lanes
            .iter()
            .any(|lane| lane.queue.len() * 4 > lane.queue.capacity() * 3)
    }
}

impl Drop for BatchSender {
    fn drop(&mut self) {
        self.queues.closed.store(true, Ordering::Release);
    }
}

/// An analyzer's end: one lane from every worker.
pub struct BatchReceiver {
    workers: Vec<Arc<WorkerQueues>>,
    analyzer: usize,
}

impl std::fmt::Debug for BatchReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchReceiver")
            .field("analyzer", &self.analyzer)
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl BatchReceiver {
    /// Number of workers feeding this analyzer.
    #[inline]
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The next batch from `worker`, if any.
    #[inline]
    pub fn pop(&mut self, worker: usize) -> Option<Arc<InnerBatch>> {
        self.workers.get(worker)?.lanes[self.analyzer].queue.pop()
    }

    /// Returns a batch to the worker that filled it.
    #[inline]
    pub fn release(&mut self, batch: Arc<InnerBatch>) {
        if let Some(worker) = self.workers.get(batch.source()) {
            worker.lanes[self.analyzer]
                .held
                .fetch_sub(batch.len(), Ordering::Relaxed);
            // `done` holds every clone of every batch at once, so this
            // cannot fail; if it did, the clone would just be dropped.
            let _ = worker.done.push(batch);
        }
    }

    /// True once every worker is gone and this analyzer's lanes are empty.
    pub fn is_finished(&self) -> bool {
        // `closed` first: a batch pushed before the worker closed is then
        // visible to the emptiness check.
        self.workers
            .iter()
            .all(|w| w.closed.load(Ordering::Acquire) && w.lanes[self.analyzer].queue.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::batch::FrameMeta;

    fn fill(batch: &mut Arc<InnerBatch>, frames: &[&[u8]]) {
        let inner = Arc::get_mut(batch).expect("a pooled batch is unique");
        for f in frames {
            inner.push_copy(f, FrameMeta::default());
        }
    }

    #[test]
    fn fan_out_delivers_to_every_analyzer_and_returns_after_the_last() {
        let stop = AtomicBool::new(false);
        let (mut senders, mut receivers) = fan_out(1, 2, 2);
        let tx = &mut senders[0];
        tx.stock(|| InnerBatch::owned(64, 4, 0, 0));
        let mut batch = tx.take().expect("pool");
        fill(&mut batch, &[b"one", b"two"]);
        let mut skipped = [0u64; 2];
        assert!(tx.send(batch, false, &stop, &mut skipped).is_none());
        assert_eq!(tx.leased(), 2);
        let a = receivers[0].pop(0).expect("analyzer 0 got it");
        let b = receivers[1].pop(0).expect("analyzer 1 got it");
        assert_eq!(a.frames(0..2).get(1).bytes, b"two");
        assert_eq!(b.frames(0..2).get(0).bytes, b"one");
        receivers[0].release(a);
        let mut recycled = 0;
        tx.reclaim(|_| recycled += 1);
        assert_eq!(recycled, 0, "analyzer 1 still holds the batch");
        receivers[1].release(b);
        tx.reclaim(|batch| {
            recycled += 1;
            batch.clear(|_| {});
        });
        assert_eq!(recycled, 1, "back once both are done");
        assert_eq!(tx.leased(), 0);
        assert_eq!(skipped, [0, 0]);
    }

    #[test]
    fn a_full_lane_skips_only_its_analyzer_and_counts_it() {
        let stop = AtomicBool::new(false);
        let (mut senders, mut receivers) = fan_out(1, 2, 2);
        let tx = &mut senders[0];
        tx.stock(|| InnerBatch::owned(64, 4, 0, 0));
        let mut skipped = [0u64; 2];
        for _ in 0..2 {
            let mut batch = tx.take().expect("pool");
            fill(&mut batch, &[b"x", b"y", b"z"]);
            assert!(tx.send(batch, false, &stop, &mut skipped).is_none());
        }
        assert!(tx.take().is_none(), "both batches are out");
        // Analyzer 1 keeps up; analyzer 0 does not read at all.
        for _ in 0..2 {
            let got = receivers[1].pop(0).expect("batch");
            receivers[1].release(got);
        }
        tx.reclaim(|_| panic!("analyzer 0 still holds both"));
        assert!(tx.take().is_none(), "nothing came back");
        // Lane 0 is full (capacity 2): a third batch reaches analyzer 1 only.
        let mut third = Arc::new(InnerBatch::owned(64, 4, 0, 0));
        fill(&mut third, &[b"p", b"q"]);
        assert!(tx.send(third, false, &stop, &mut skipped).is_none());
        assert_eq!(skipped, [2, 0], "analyzer 0's lane was full");
        let got = receivers[1].pop(0).expect("analyzer 1 got the third");
        assert_eq!(got.len(), 2);
        receivers[1].release(got);
        assert!(!receivers[0].is_finished());
        drop(senders);
        assert!(!receivers[0].is_finished(), "two batches wait in lane 0");
        for _ in 0..2 {
            assert!(receivers[0].pop(0).is_some());
        }
        assert!(receivers[0].is_finished() && receivers[1].is_finished());
    }

    #[test]
    fn a_batch_nobody_takes_comes_back_to_the_caller() {
        let stop = AtomicBool::new(false);
        let (mut senders, _receivers) = fan_out(1, 1, 1);
        let tx = &mut senders[0];
        tx.stock(|| InnerBatch::owned(64, 4, 0, 0));
        let mut skipped = [0u64; 1];
        let mut first = tx.take().expect("pool");
        fill(&mut first, &[b"a"]);
        assert!(tx.send(first, false, &stop, &mut skipped).is_none());
        let mut second = Arc::new(InnerBatch::owned(64, 4, 0, 0));
        fill(&mut second, &[b"b", b"c"]);
        let back = tx.send(second, false, &stop, &mut skipped);
        assert!(back.is_some_and(|b| b.len() == 2));
        assert_eq!(skipped, [2]);
        assert_eq!(tx.leased(), 1, "only the delivered batch is out");
    }
}
