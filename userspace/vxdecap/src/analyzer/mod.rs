//! Analyzers: what happens to each decapsulated inner frame.
//!
//! Each analyzer runs on a thread of its own, so its `&mut self` is
//! per-thread state that needs no locking, and sees every worker's frames
//! in the order that worker produced them. Frames arrive in batches, as
//! references into the memory they were received in: an analyzer that
//! wants to keep bytes past `on_batch` copies them. `on_idle` is called
//! whenever the queues run dry, which is where buffered outputs flush, so
//! `-w -` piped into another tool shows frames promptly without a flush per
//! frame.

mod count;
pub mod dissect;
mod filename;
mod filtered;
mod output;
mod pcap;
mod pcapng;
mod print;
mod record_out;
mod rotate;
mod route;
mod tap;
mod writer;

use std::io;

pub use count::{CountAnalyzer, CountTotals};
pub use filename::{strftime_utc, FileNamer, PatternError};
pub use filtered::Filtered;
pub use output::{open_frame_output, OutputOptions};
pub use pcap::{PcapWriter, OUTPUT_WRITE_FAILED, PCAP_NSEC_MAGIC};
pub use pcapng::{PcapngOptions, PcapngWriter, DEFAULT_MAX_TUNNELS};
pub use print::PrintAnalyzer;
pub use rotate::{Clock, RotatingWriter, Rotation, SystemClock, CLOCK_EVERY_FRAMES};
pub use route::{
    RouteError, RouteMatch, RouteSpec, RouteTarget, RouteTunnel, Router, RouterBuilder,
};
pub use tap::TapWriter;
pub use writer::{FrameWriter, OutputError, OutputFormat};

use crate::datapath::batch::{Frames, InnerFrame};

/// Most analyzers a capture feeds (each one gets every inner frame).
pub const MAX_ANALYZERS: usize = 8;

/// A consumer of inner frames, in batches.
///
/// Only [`Analyzer::on_batch`] must be written: a batch is a run of frames
/// from one worker, in the order received. Work per frame is a loop over
/// [`Frames::iter`]; [`each_frame`] wraps a closure that takes one frame at
/// a time into an analyzer.
///
/// ```
/// use std::collections::HashMap;
/// use std::io;
/// use vxdecap::{Analyzer, Frames};
///
/// /// Inner frames per VNI.
/// #[derive(Default)]
/// struct PerVni(HashMap<u32, u64>);
///
/// impl Analyzer for PerVni {
///     fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
///         for frame in frames.iter() {
///             *self.0.entry(frame.meta.vni).or_default() += 1;
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Analyzer: Send {
    /// A short name for reports and metrics labels.
    #[allow(
        clippy::unnecessary_literal_bound,
        reason = "analyzers may name themselves from their own state (a tap's device)"
    )]
    fn name(&self) -> &str {
        "analyzer"
    }

    /// A batch of inner frames from one worker; each frame's `bytes` may be
    /// shorter than its `meta.orig_len`.
    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()>;

    /// The queues are empty for now: flush buffered output.
    fn on_idle(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// No more frames will come: flush and close.
    fn finish(&mut self) -> io::Result<()> {
        self.on_idle()
    }

    /// True when `on_batch` is short and never blocks for long (no pipe,
    /// socket or device writes that can wait on a reader), so the analyzer
    /// may run in the worker's own thread when it would share the worker's
    /// core anyway: one rx queue and no free core for it. Run to completion
    /// there saves a thread switch per batch and leaves the core to the
    /// worker and the kernel's receive work. Default: false.
    fn can_run_inline(&self) -> bool {
        false
    }

    /// What the analyzer counted besides the frames it was given: frames it
    /// did not pass on, by reason, and per-route counts. Read once, after
    /// [`Analyzer::finish`], for the summary.
    fn counts(&self) -> AnalyzerCounts {
        AnalyzerCounts::default()
    }
}

impl<T: Analyzer + ?Sized> Analyzer for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        (**self).on_batch(frames)
    }
    fn on_idle(&mut self) -> io::Result<()> {
        (**self).on_idle()
    }
    fn finish(&mut self) -> io::Result<()> {
        (**self).finish()
    }
    fn can_run_inline(&self) -> bool {
        (**self).can_run_inline()
    }
    fn counts(&self) -> AnalyzerCounts {
        (**self).counts()
    }
}

/// An analyzer that hands each frame to `on_frame`, named `name`.
///
/// ```
/// use vxdecap::analyzer::each_frame;
///
/// let mut frames = 0u64;
/// let counter = each_frame("frames", move |_frame| {
///     frames += 1;
///     Ok(())
/// });
/// # let _ = counter;
/// ```
pub fn each_frame<F>(name: &'static str, on_frame: F) -> EachFrame<F>
where
    F: FnMut(&InnerFrame<'_>) -> io::Result<()> + Send,
{
    EachFrame { name, on_frame }
}

/// See [`each_frame`].
pub struct EachFrame<F> {
    name: &'static str,
    on_frame: F,
}

impl<F> std::fmt::Debug for EachFrame<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EachFrame")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F> Analyzer for EachFrame<F>
where
    F: FnMut(&InnerFrame<'_>) -> io::Result<()> + Send,
{
    fn name(&self) -> &str {
        self.name
    }

    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        for frame in frames.iter() {
            (self.on_frame)(&frame)?;
        }
        Ok(())
    }
}

/// Counts an analyzer reports at the end of a run (see [`Analyzer::counts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalyzerCounts {
    /// Frames given to the analyzer that reached none of its outputs, by
    /// reason (`filtered_out`, `tap_write_failed`, `tap_frame_too_big`,
    /// `route_drop`, `no_route`), each reason once.
    pub not_passed: Vec<(&'static str, u64)>,
    /// A router's routes, in order.
    pub routes: Vec<RouteCounts>,
    /// File outputs (a `-w` pattern, a route's file), each with the frames
    /// its files hold and the frames lost to write errors.
    pub files: Vec<FileCounts>,
}

/// What one file output (one pattern, all its rotated files) holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// The `-w` name or pattern.
    pub name: String,
    /// Frames in its files: what a reader finds.
    pub written: u64,
    /// Frames it took but could not write (`output_write_failed`).
    pub failed: u64,
}

impl AnalyzerCounts {
    /// Adds `n` frames under `reason`.
    pub fn add(&mut self, reason: &'static str, n: u64) {
        match self.not_passed.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, total)) => *total += n,
            None => self.not_passed.push((reason, n)),
        }
    }

    /// Adds everything `other` did not pass on, and its files (its routes
    /// are not kept).
    pub fn absorb(&mut self, other: &Self) {
        for &(reason, n) in &other.not_passed {
            self.add(reason, n);
        }
        self.files.extend(other.files.iter().cloned());
    }

    /// Frames not passed on under `reason`.
    pub fn get(&self, reason: &str) -> u64 {
        self.not_passed
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Frames not passed on, all reasons.
    pub fn not_passed_total(&self) -> u64 {
        self.not_passed.iter().map(|(_, n)| n).sum()
    }
}

/// What one route of a router took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteCounts {
    /// The route as written (`vni=27 -> inner-27.pcapng`).
    pub route: String,
    /// Frames that matched it (first match).
    pub frames: u64,
    /// Their captured bytes.
    pub bytes: u64,
    /// Of those, frames that reached no output: all of a `drop` route's.
    /// (What an output itself did not pass on, such as a tap's failed
    /// writes, is in the router's `not_passed`: outputs may be shared.)
    pub dropped: u64,
}
