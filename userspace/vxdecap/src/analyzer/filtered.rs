//! `Filtered<A>`: an inner filter in front of an analyzer.
//!
//! The filter runs on the analyzer's own thread, not in the rx workers:
//! the workers' whole per-frame budget is about 300 instructions, and an
//! interpreted filter of 10–30 BPF instructions would be a large share of
//! it, paid for frames every analyzer may want. Each filtered analyzer
//! evaluates the filter itself (a `-w` file and a tap with the same filter
//! both run it), which costs a little CPU on analyzer threads and nothing on
//! the data path. Matching frames go on in runs, so the analyzer behind
//! still gets batches.

use std::io;

use super::{Analyzer, AnalyzerCounts};
use crate::datapath::batch::Frames;
use crate::filter::InnerFilter;

/// Passes on the frames `filter` matches; counts the others as `filtered_out`.
///
/// ```
/// use vxdecap::analyzer::{CountAnalyzer, Filtered};
/// use vxdecap::filter::InnerFilter;
///
/// let web = InnerFilter::compile("tcp port 80 or tcp port 443").unwrap();
/// let analyzer = Filtered::new(web, CountAnalyzer::new(Default::default()));
/// ```
#[derive(Debug)]
pub struct Filtered<A> {
    filter: InnerFilter,
    inner: A,
    not_matched: u64,
}

impl<A: Analyzer> Filtered<A> {
    /// `inner` behind `filter`.
    pub fn new(filter: InnerFilter, inner: A) -> Self {
        Self {
            filter,
            inner,
            not_matched: 0,
        }
    }

    /// Frames the filter rejected so far.
    pub fn filtered_out(&self) -> u64 {
        self.not_matched
    }

    /// The analyzer behind the filter.
    pub fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: Analyzer> Analyzer for Filtered<A> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        // Every run goes on even after an error, so each frame is either
        // filtered out or accounted for by the analyzer behind.
        let mut result = Ok(());
        let mut pass = |inner: &mut A, run| {
            if let Err(e) = inner.on_batch(run) {
                if result.is_ok() {
                    result = Err(e);
                }
            }
        };
        let mut run_start = 0;
        for (i, frame) in frames.iter().enumerate() {
            if !self.filter.matches(frame.bytes, frame.meta.orig_len) {
                self.not_matched += 1;
                if run_start < i {
                    pass(&mut self.inner, frames.slice(run_start..i));
                }
                run_start = i + 1;
            }
        }
        if run_start < frames.len() {
            pass(&mut self.inner, frames.slice(run_start..frames.len()));
        }
        result
    }

    fn on_idle(&mut self) -> io::Result<()> {
        self.inner.on_idle()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.inner.finish()
    }

    fn can_run_inline(&self) -> bool {
        self.inner.can_run_inline()
    }

    fn counts(&self) -> AnalyzerCounts {
        let mut counts = self.inner.counts();
        counts.add("filtered_out", self.not_matched);
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::batch::{FrameMeta, InnerBatch};

    /// Records batch sizes and the first byte of each frame.
    #[derive(Default)]
    struct Record {
        batches: Vec<usize>,
        firsts: Vec<u8>,
    }

    impl Analyzer for Record {
        fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
            self.batches.push(frames.len());
            self.firsts.extend(frames.iter().map(|f| f.bytes[0]));
            Ok(())
        }
    }

    #[test]
    fn matching_frames_go_on_in_runs_and_the_rest_are_counted() {
        // First byte 0xff: broadcast destination, which `ether broadcast` matches.
        let frame = |first: u8| {
            let mut f = vec![first; 6];
            f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
            f
        };
        let mut batch = InnerBatch::owned(4096, 16, 0, 0);
        for first in [0xff, 0xff, 1, 0xff, 2, 3, 0xff] {
            batch.push_copy(&frame(first), FrameMeta::default());
        }
        let filter = InnerFilter::compile("ether broadcast").expect("filter");
        let mut filtered = Filtered::new(filter, Record::default());
        filtered
            .on_batch(batch.frames(0..batch.len()))
            .expect("no error");
        assert_eq!(filtered.inner().batches, [2, 1, 1]);
        assert_eq!(filtered.inner().firsts, [0xff; 4]);
        assert_eq!(filtered.counts().get("filtered_out"), 3);
    }
}
