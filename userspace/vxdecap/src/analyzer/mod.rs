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
mod filename;
mod output;
mod pcap;
mod pcapng;
mod print;
mod rotate;

use std::io;

pub use count::{CountAnalyzer, CountTotals};
pub use filename::{strftime_utc, FileNamer, PatternError};
pub use output::{open_frame_output, FrameWriter, OutputError, OutputFormat, OutputOptions};
pub use pcap::{PcapWriter, PCAP_NSEC_MAGIC};
pub use pcapng::{PcapngOptions, PcapngWriter, DEFAULT_MAX_TUNNELS};
pub use print::PrintAnalyzer;
pub use rotate::{Clock, RotatingWriter, Rotation, SystemClock, CLOCK_EVERY_FRAMES};

use crate::frame::{Frames, InnerFrame};

/// A consumer of inner frames.
///
/// ```
/// use std::collections::HashMap;
/// use std::io;
/// use vxdecap::analyzer::Analyzer;
/// use vxdecap::frame::InnerFrame;
///
/// /// Inner frames per VNI.
/// #[derive(Default)]
/// struct PerVni(HashMap<u32, u64>);
///
/// impl Analyzer for PerVni {
///     fn on_frame(&mut self, frame: &InnerFrame<'_>) -> io::Result<()> {
///         *self.0.entry(frame.meta.vni).or_default() += 1;
///         Ok(())
///     }
/// }
/// ```
pub trait Analyzer: Send {
    /// A short name for reports and metrics labels.
    fn name(&self) -> &str {
        "analyzer"
    }

    /// A batch of inner frames from one worker (by default, each frame in
    /// turn through [`Analyzer::on_frame`]).
    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        for frame in frames.iter() {
            self.on_frame(&frame)?;
        }
        Ok(())
    }

    /// One inner frame; `frame.bytes` may be shorter than `frame.meta.orig_len`.
    fn on_frame(&mut self, frame: &InnerFrame<'_>) -> io::Result<()>;

    /// The queues are empty for now: flush buffered output.
    fn on_idle(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// No more frames will come: flush and close.
    fn finish(&mut self) -> io::Result<()> {
        self.on_idle()
    }
}
