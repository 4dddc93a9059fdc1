//! Prints one line per inner frame, like tcpdump without `-w`.

use std::io::{self, Write};

use super::Analyzer;
use crate::dissect::{describe, time_of_day};
use crate::frame::InnerFrame;

/// Writes a human-readable line per frame to `out`.
#[derive(Debug)]
pub struct PrintAnalyzer<W: Write> {
    out: W,
    line: String,
}

impl<W: Write> PrintAnalyzer<W> {
    /// A printer writing to `out`.
    pub fn new(out: W) -> Self {
        PrintAnalyzer {
            out,
            line: String::with_capacity(256),
        }
    }
}

impl<W: Write + Send> Analyzer for PrintAnalyzer<W> {
    fn name(&self) -> &str {
        "print"
    }

    fn on_frame(&mut self, frame: &InnerFrame<'_>) -> io::Result<()> {
        let (bytes, meta) = (frame.bytes, frame.meta);
        self.line.clear();
        time_of_day(meta.timestamp_ns, &mut self.line);
        use std::fmt::Write as _;
        let _ = write!(
            self.line,
            " vni {} ({} > {}) ",
            meta.vni, meta.outer_src, meta.outer_dst
        );
        describe(bytes, &mut self.line);
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())
    }

    fn on_idle(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
