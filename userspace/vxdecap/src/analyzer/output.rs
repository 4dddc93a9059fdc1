//! The `-w` output: format choice (pcap or pcapng) and opening it, with or
//! without rotation.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::pcap::{failed_counts, write_all_frames};
use super::pcapng::{PcapngOptions, PcapngWriter};
use super::record_out::{cut_file, CutBack};
use super::rotate::{RotatingWriter, Rotation, SystemClock};
use super::{Analyzer, AnalyzerCounts, PatternError, PcapWriter};
use crate::datapath::batch::{FrameMeta, Frames, InnerFrame};

/// Buffer in front of stdout: small, so a reader sees frames soon.
const STDOUT_BUFFER: usize = 64 * 1024;

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
    pub fn for_path(path: &str) -> OutputFormat {
        let pcapng = Path::new(path)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pcapng"));
        if pcapng {
            OutputFormat::Pcapng
        } else {
            OutputFormat::Pcap
        }
    }
}

/// How to write `-w`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// `--format`; `None` chooses by the file name.
    pub format: Option<OutputFormat>,
    /// `-C`, `-G`, `-W`.
    pub rotation: Rotation,
    /// pcapng settings (ignored for pcap).
    pub pcapng: PcapngOptions,
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

/// Opens `path` (`-` for stdout) as the analyzer writing every inner frame.
///
/// This is what `-w`, `--format`, `-C`, `-G` and `-W` build: a
/// [`FrameWriter`] on stdout, or a [`RotatingWriter`] over files (which with
/// no rotation asked for writes the one file).
pub fn open_frame_output(
    path: &str,
    options: &OutputOptions,
) -> Result<Box<dyn Analyzer>, OutputError> {
    let format = options.format.unwrap_or(OutputFormat::for_path(path));
    options.rotation.check()?;
    if path == "-" {
        if options.rotation.is_rotating() {
            return Err(OutputError::Rotation(
                "-C and -G need a file name: stdout (-w -) cannot be rotated",
            ));
        }
        let open = |source| OutputError::Open {
            path: "stdout".to_owned(),
            source,
        };
        let out = stdout_file().map_err(open)?;
        let writer =
            FrameWriter::buffered(format, options.pcapng, out, STDOUT_BUFFER, Some(cut_file))
                .map_err(open)?;
        return Ok(Box::new(StdoutWriter(writer)));
    }
    let writer = RotatingWriter::new(path, format, options.pcapng, options.rotation, SystemClock)?;
    Ok(Box::new(writer))
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
            OutputFormat::Pcap => FrameWriter::Pcap(PcapWriter::new(out)?),
            OutputFormat::Pcapng => FrameWriter::Pcapng(PcapngWriter::with_options(out, pcapng)?),
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
            OutputFormat::Pcap => FrameWriter::Pcap(PcapWriter::buffered(out, capacity, cut_back)?),
            OutputFormat::Pcapng => {
                FrameWriter::Pcapng(PcapngWriter::buffered(out, pcapng, capacity, cut_back)?)
            }
        })
    }

    /// Appends one frame.
    #[inline]
    pub fn write_frame(&mut self, bytes: &[u8], meta: &FrameMeta) -> io::Result<()> {
        match self {
            FrameWriter::Pcap(w) => w.write_frame(bytes, meta.timestamp_ns, meta.orig_len),
            FrameWriter::Pcapng(w) => w.write_frame(bytes, meta),
        }
    }

    /// Appends one frame unless the output would pass `limit` bytes (see
    /// [`PcapWriter::write_frame_within`]); returns whether it was written.
    #[inline]
    pub fn write_frame_within(
        &mut self,
        bytes: &[u8],
        meta: &FrameMeta,
        limit: u64,
    ) -> io::Result<bool> {
        match self {
            FrameWriter::Pcap(w) => w.write_frame_within(bytes, meta, limit),
            FrameWriter::Pcapng(w) => w.write_frame_within(bytes, meta, limit),
        }
    }

    /// Frames taken so far (written, buffered or failed).
    pub fn frames(&self) -> u64 {
        match self {
            FrameWriter::Pcap(w) => w.frames(),
            FrameWriter::Pcapng(w) => w.frames(),
        }
    }

    /// Frames the output took whole (those a reader finds).
    pub fn frames_written(&self) -> u64 {
        match self {
            FrameWriter::Pcap(w) => w.frames_written(),
            FrameWriter::Pcapng(w) => w.frames_written(),
        }
    }

    /// Frames lost to a write error.
    pub fn frames_failed(&self) -> u64 {
        match self {
            FrameWriter::Pcap(w) => w.frames_failed(),
            FrameWriter::Pcapng(w) => w.frames_failed(),
        }
    }

    /// Bytes taken so far, headers included.
    pub fn bytes_written(&self) -> u64 {
        match self {
            FrameWriter::Pcap(w) => w.bytes_written(),
            FrameWriter::Pcapng(w) => w.bytes_written(),
        }
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            FrameWriter::Pcap(w) => w.flush(),
            FrameWriter::Pcapng(w) => w.flush(),
        }
    }

    /// Flushes and returns the writer.
    pub fn into_inner(self) -> io::Result<W> {
        match self {
            FrameWriter::Pcap(w) => w.into_inner(),
            FrameWriter::Pcapng(w) => w.into_inner(),
        }
    }
}

impl<W: Write + Send> Analyzer for FrameWriter<W> {
    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        write_all_frames(frames, |f| self.on_frame(f))
    }

    fn on_frame(&mut self, frame: &InnerFrame<'_>) -> io::Result<()> {
        self.write_frame(frame.bytes, frame.meta)
    }

    fn on_idle(&mut self) -> io::Result<()> {
        self.flush()
    }

    fn counts(&self) -> AnalyzerCounts {
        failed_counts(self.frames_failed())
    }
}

/// `-w -`: the frame writer on stdout, its errors naming stdout.
#[derive(Debug)]
struct StdoutWriter(FrameWriter<File>);

impl Analyzer for StdoutWriter {
    fn name(&self) -> &str {
        "stdout"
    }

    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        self.0.on_batch(frames).map_err(on_stdout)
    }

    fn on_frame(&mut self, frame: &InnerFrame<'_>) -> io::Result<()> {
        self.0.on_frame(frame).map_err(on_stdout)
    }

    fn on_idle(&mut self) -> io::Result<()> {
        self.0.flush().map_err(on_stdout)
    }

    fn counts(&self) -> AnalyzerCounts {
        self.0.counts()
    }
}

/// Stdout as a `File` (a duplicate of descriptor 1): writes go straight to
/// the system, so the record buffer knows what got out (`io::Stdout` would
/// buffer again).
pub(crate) fn stdout_file() -> io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

/// Names stdout in a write error (the kind is kept).
#[cold]
pub(crate) fn on_stdout(e: io::Error) -> io::Error {
    let hint = if e.kind() == io::ErrorKind::BrokenPipe {
        ": the reader of the output went away"
    } else {
        ""
    };
    io::Error::new(e.kind(), format!("cannot write stdout: {e}{hint}"))
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

    #[test]
    fn stdout_cannot_rotate() {
        let options = OutputOptions {
            rotation: Rotation {
                file_size: Some(1_000_000),
                ..Rotation::default()
            },
            ..OutputOptions::default()
        };
        let err = open_frame_output("-", &options).expect_err("rotating stdout is refused");
        assert!(err.to_string().contains("stdout"), "{err}");
    }
}
