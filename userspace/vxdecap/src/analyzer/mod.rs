//! Analyzers: what happens to each decapsulated inner frame.
//!
//! An analyzer runs on the analyzer thread and sees frames in the order a
//! worker produced them. `on_idle` is called whenever the queues run dry,
//! which is where buffered outputs flush, so `-w -` piped into another tool
//! shows frames promptly without a flush per frame.

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

use crate::queue::FrameMeta;

/// A consumer of inner frames.
pub trait Analyzer: Send {
    /// One inner frame; `bytes` may be shorter than `meta.orig_len`.
    fn on_frame(&mut self, bytes: &[u8], meta: &FrameMeta) -> io::Result<()>;

    /// The queues are empty for now: flush buffered output.
    fn on_idle(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// No more frames will come: flush and close.
    fn finish(&mut self) -> io::Result<()> {
        self.on_idle()
    }
}
