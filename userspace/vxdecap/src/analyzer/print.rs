//! Prints one line per inner frame, like tcpdump without `-w`.

use std::fs::File;
use std::io::{self, Write};

use super::output::{on_stdout, stdout_file};
use super::pcap::{failed_counts, write_all_frames};
use super::record_out::{cut_file, Framing, RecordOut};
use super::{Analyzer, AnalyzerCounts};
use crate::analyzer::dissect::{describe, time_of_day};
use crate::datapath::batch::{Frames, InnerFrame};

/// Bytes of lines buffered before they are written out.
const LINE_BUFFER: usize = 64 * 1024;

/// Writes a human-readable line per frame to `out`, through a buffer of
/// whole lines (so a closed pipe counts exactly the lines that got out).
#[derive(Debug)]
pub struct PrintAnalyzer<W: Write> {
    out: RecordOut<W>,
    line: String,
    /// Errors name stdout.
    stdout: bool,
}

impl<W: Write> PrintAnalyzer<W> {
    /// A printer writing to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out: RecordOut::new(out, LINE_BUFFER, Framing::Lines, None),
            line: String::with_capacity(256),
            stdout: false,
        }
    }

    /// Lines lost to a write error.
    pub fn lines_failed(&self) -> u64 {
        self.out.frames_failed()
    }

    fn named(&self, e: io::Error) -> io::Error {
        if self.stdout {
            on_stdout(e)
        } else {
            e
        }
    }
}

impl PrintAnalyzer<File> {
    /// A printer on stdout.
    pub fn stdout() -> io::Result<Self> {
        Ok(Self {
            out: RecordOut::new(stdout_file()?, LINE_BUFFER, Framing::Lines, Some(cut_file)),
            line: String::with_capacity(256),
            stdout: true,
        })
    }
}

impl<W: Write + Send> Analyzer for PrintAnalyzer<W> {
    fn name(&self) -> &'static str {
        "print"
    }

    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        write_all_frames(frames, |f| self.print(f))
    }

    fn on_idle(&mut self) -> io::Result<()> {
        self.out.flush().map_err(|e| self.named(e))
    }

    fn counts(&self) -> AnalyzerCounts {
        failed_counts(self.lines_failed())
    }
}

impl<W: Write + Send> PrintAnalyzer<W> {
    /// One line for `frame`.
    fn print(&mut self, frame: &InnerFrame<'_>) -> io::Result<()> {
        let (bytes, meta) = (frame.bytes, frame.meta);
        self.line.clear();
        time_of_day(meta.timestamp_ns, &mut self.line);
        use std::fmt::Write as _;
        // GENEVE frames say so (and the endpoint, when AWS's options name one); VXLAN's line
        // is as it always was.
        let tunnel = match (frame.geneve, meta.tunnel) {
            (None, _) => "",
            (Some(_), vxdecap_wire::Tunnel::Geneve) => " geneve",
            (Some(_), vxdecap_wire::Tunnel::Vxlan) => " geneve+vxlan",
        };
        let _ = write!(
            self.line,
            "{tunnel} vni {} ({} > {}) ",
            meta.vni, meta.outer_src, meta.outer_dst
        );
        if let Some(id) = frame
            .geneve
            .and_then(vxdecap_wire::GeneveLayer::gwlb_endpoint_id)
        {
            let _ = write!(self.line, "gwlbe {id:#018x} ");
        }
        describe(bytes, &mut self.line);
        self.line.push('\n');
        self.out
            .record(&[self.line.as_bytes()], true)
            .map_err(|e| self.named(e))
    }
}
