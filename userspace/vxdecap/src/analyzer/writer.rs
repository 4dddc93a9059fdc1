//! One capture file being written: its format (pcap or pcapng) and the
//! writer for it; and why an output cannot be opened.

use std::io::{self, Write};
use std::path::Path;

use super::pcap::{failed_counts, write_all_frames};
use super::pcapng::{PcapngOptions, PcapngWriter};
use super::record_out::CutBack;
use super::{Analyzer, AnalyzerCounts, PatternError, PcapWriter};
use crate::datapath::batch::{FrameMeta, Frames, InnerFrame};

/// A capture file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Classic pcap, nanosecond timestamps, one link type for the file.
    Pcap,
    /// pcapng with one interface per tunnel (VNI, outer source).
    Pcapng,
}

impl OutputFormat {
    /// The format `path` asks for: pcapng for a `.pcapng` name (any case),
    /// pcap otherwise and for stdout (`-`).
    pub fn for_path(path: &str) -> Self {
        let pcapng = Path::new(path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pcapng"));
        if pcapng {
            Self::Pcapng
        } else {
            Self::Pcap
        }
    }
}

/// Why `-w` cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The file cannot be created.
    #[error("cannot write {path}: {source}: check the directory exists and is writable")]
    Open {
        /// The file.
        path: String,
        /// What the system said.
        source: io::Error,
    },
    /// The file name pattern is not usable with `-G`.
    #[error("-w {path}: {source}")]
    Pattern {
        /// The pattern.
        path: String,
        /// What is wrong with it.
        source: PatternError,
    },
    /// Rotation settings that do not go together.
    #[error("{0}")]
    Rotation(&'static str),
}

/// A pcap or pcapng writer.
#[derive(Debug)]
pub enum FrameWriter<W: Write> {
    /// Classic pcap.
    Pcap(PcapWriter<W>),
    /// pcapng.
    Pcapng(PcapngWriter<W>),
}

impl<W: Write> FrameWriter<W> {
    /// Writes the file header (pcap global header or pcapng section header).
    pub fn new(format: OutputFormat, pcapng: PcapngOptions, out: W) -> io::Result<Self> {
        Ok(match format {
            OutputFormat::Pcap => Self::Pcap(PcapWriter::new(out)?),
            OutputFormat::Pcapng => Self::Pcapng(PcapngWriter::with_options(out, pcapng)?),
        })
    }

    /// The same with a buffer of `capacity` bytes and a way to remove a
    /// partial record from `out` after a failed write.
    pub(crate) fn buffered(
        format: OutputFormat,
        pcapng: PcapngOptions,
        out: W,
        capacity: usize,
        cut_back: Option<CutBack<W>>,
    ) -> io::Result<Self> {
        Ok(match format {
            OutputFormat::Pcap => Self::Pcap(PcapWriter::buffered(out, capacity, cut_back)?),
            OutputFormat::Pcapng => {
                Self::Pcapng(PcapngWriter::buffered(out, pcapng, capacity, cut_back)?)
            }
        })
    }

    /// Appends one frame.
    #[inline]
    pub fn write_frame(&mut self, bytes: &[u8], meta: &FrameMeta) -> io::Result<()> {
        match self {
            Self::Pcap(w) => w.write_frame(bytes, meta.timestamp_ns, meta.orig_len),
            Self::Pcapng(w) => w.write_frame(bytes, meta),
        }
    }

    /// Appends one frame as analyzers receive it (pcapng's comment tells its GENEVE layer).
    #[inline]
    pub fn write_inner(&mut self, frame: &InnerFrame<'_>) -> io::Result<()> {
        match self {
            Self::Pcap(w) => {
                w.write_frame(frame.bytes, frame.meta.timestamp_ns, frame.meta.orig_len)
            }
            Self::Pcapng(w) => w.write_inner(frame),
        }
    }

    /// Appends one frame unless the output would pass `limit` bytes (see
    /// [`PcapWriter::write_frame_within`]); returns whether it was written.
    #[inline]
    pub fn write_frame_within(&mut self, frame: &InnerFrame<'_>, limit: u64) -> io::Result<bool> {
        match self {
            Self::Pcap(w) => w.write_frame_within(frame.bytes, frame.meta, limit),
            Self::Pcapng(w) => w.write_frame_within(frame, limit),
        }
    }

    /// Frames taken so far (written, buffered or failed).
    pub fn frames(&self) -> u64 {
        match self {
            Self::Pcap(w) => w.frames(),
            Self::Pcapng(w) => w.frames(),
        }
    }

    /// Frames the output took whole (those a reader finds).
    pub fn frames_written(&self) -> u64 {
        match self {
            Self::Pcap(w) => w.frames_written(),
            Self::Pcapng(w) => w.frames_written(),
        }
    }

    /// Frames lost to a write error.
    pub fn frames_failed(&self) -> u64 {
        match self {
            Self::Pcap(w) => w.frames_failed(),
            Self::Pcapng(w) => w.frames_failed(),
        }
    }

    /// Bytes taken so far, headers included.
    pub fn bytes_written(&self) -> u64 {
        match self {
            Self::Pcap(w) => w.bytes_written(),
            Self::Pcapng(w) => w.bytes_written(),
        }
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Pcap(w) => w.flush(),
            Self::Pcapng(w) => w.flush(),
        }
    }

    /// Flushes and returns the writer.
    pub fn into_inner(self) -> io::Result<W> {
        match self {
            Self::Pcap(w) => w.into_inner(),
            Self::Pcapng(w) => w.into_inner(),
        }
    }
}

impl<W: Write + Send> Analyzer for FrameWriter<W> {
    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        write_all_frames(frames, |f| self.write_inner(f))
    }

    fn on_idle(&mut self) -> io::Result<()> {
        self.flush()
    }

    fn counts(&self) -> AnalyzerCounts {
        failed_counts(self.frames_failed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension_and_stdout_is_pcap() {
        assert_eq!(OutputFormat::for_path("a.pcapng"), OutputFormat::Pcapng);
        assert_eq!(OutputFormat::for_path("dir/A.PCAPNG"), OutputFormat::Pcapng);
        assert_eq!(OutputFormat::for_path("a.pcap"), OutputFormat::Pcap);
        assert_eq!(OutputFormat::for_path("pcapng"), OutputFormat::Pcap);
        assert_eq!(OutputFormat::for_path("-"), OutputFormat::Pcap);
    }
}
