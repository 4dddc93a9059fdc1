//! The counting analyzer: frames and bytes, readable from other threads.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Analyzer;
use crate::queue::FrameMeta;

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
        CountAnalyzer {
            frames: 0,
            bytes: 0,
            totals,
        }
    }
}

impl Analyzer for CountAnalyzer {
    #[inline]
    fn on_frame(&mut self, bytes: &[u8], _meta: &FrameMeta) -> io::Result<()> {
        self.frames += 1;
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    fn on_idle(&mut self) -> io::Result<()> {
        self.totals.frames.store(self.frames, Ordering::Relaxed);
        self.totals.bytes.store(self.bytes, Ordering::Relaxed);
        Ok(())
    }
}
