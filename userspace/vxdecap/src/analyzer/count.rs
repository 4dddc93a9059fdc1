//! The counting analyzer: frames and bytes, readable from other threads.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Analyzer;
use crate::datapath::batch::Frames;

/// Totals shared with the reporting thread.
#[derive(Debug, Default)]
pub struct CountTotals {
    /// Inner frames seen.
    pub frames: AtomicU64,
    /// Inner bytes seen (captured length).
    pub bytes: AtomicU64,
}

/// Counts frames and bytes; publishes the totals when the queues run dry.
#[derive(Debug)]
pub struct CountAnalyzer {
    frames: u64,
    bytes: u64,
    totals: Arc<CountTotals>,
}

impl CountAnalyzer {
    /// A counter publishing into `totals`.
    pub fn new(totals: Arc<CountTotals>) -> Self {
        Self {
            frames: 0,
            bytes: 0,
            totals,
        }
    }
}

impl Analyzer for CountAnalyzer {
    fn name(&self) -> &'static str {
        "count"
    }

    #[inline]
    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        self.frames += frames.len() as u64;
        self.bytes += frames.iter().map(|f| f.bytes.len() as u64).sum::<u64>();
        Ok(())
    }

    fn can_run_inline(&self) -> bool {
        true
    }

    fn on_idle(&mut self) -> io::Result<()> {
        self.totals.frames.store(self.frames, Ordering::Relaxed);
        self.totals.bytes.store(self.bytes, Ordering::Relaxed);
        Ok(())
    }
}
