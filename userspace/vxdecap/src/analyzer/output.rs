//! The `-w` output: opening it, on stdout or as files with or without
//! rotation.

use std::fs::File;
use std::io;

use super::pcapng::PcapngOptions;
use super::record_out::cut_file;
use super::rotate::{RotatingWriter, Rotation, SystemClock};
use super::writer::{FrameWriter, OutputError, OutputFormat};
use super::{Analyzer, AnalyzerCounts};
use crate::datapath::batch::Frames;

/// Buffer in front of stdout: small, so a reader sees frames soon.
const STDOUT_BUFFER: usize = 64 * 1024;

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

/// Opens `path` (`-` for stdout) as the analyzer writing every inner frame.
///
/// This is what `-w`, `--format`, `-C`, `-G` and `-W` build: a
/// [`FrameWriter`] on stdout, or a [`RotatingWriter`] over files (which with
/// no rotation asked for writes the one file).
pub fn open_frame_output(
    path: &str,
    options: &OutputOptions,
) -> Result<Box<dyn Analyzer>, OutputError> {
    let format = options
        .format
        .unwrap_or_else(|| OutputFormat::for_path(path));
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

/// `-w -`: the frame writer on stdout, its errors naming stdout.
#[derive(Debug)]
struct StdoutWriter(FrameWriter<File>);

impl Analyzer for StdoutWriter {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        self.0.on_batch(frames).map_err(on_stdout)
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
    use std::os::fd::AsFd as _;
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
