//! The buffer under every file and stdout output: it knows which frames
//! reached the system, so that the count of frames written is what a
//! reader finds, also when a write fails (disk full, `-w - | head`).
//!
//! Records (a pcap record, a pcapng block, a text line) go into the buffer
//! whole, and the buffer is written out only between records, so its start
//! is always a record boundary. When a write fails after the system took
//! part of the buffer, the records wholly inside that part are counted as
//! written (found by walking their length fields: the cold path, nothing is
//! tracked per frame), the rest of the buffer as failed, and the output,
//! when it is a regular file, is cut back to its last whole record, as a
//! careful writer does, so readers do not stumble on a half record at the
//! end. After a failure every further record fails at once (and is
//! counted): an output that lost a frame in the middle does not carry on as
//! if nothing happened.

use std::fs::File;
use std::io::{self, Seek as _, Write};

/// How records are framed, to find whole ones in written bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// A 24-byte file header, then records of a 16-byte header (captured
    /// length at bytes 8..12, little-endian) and the data.
    Pcap,
    /// Blocks with their total length at bytes 4..8 (little-endian);
    /// frames are Enhanced Packet Blocks.
    Pcapng,
    /// Text lines, one per frame.
    Lines,
}

const PCAP_FILE_HEADER: usize = 24;
const PCAP_RECORD_HEADER: usize = 16;
const PCAPNG_EPB: u32 = 6;

impl Framing {
    /// The length and frame count of the whole records at the start of
    /// `bytes`, which start `stream_offset` bytes into the output.
    fn whole_prefix(self, bytes: &[u8], stream_offset: u64) -> (usize, u64) {
        let (mut at, mut frames) = (0usize, 0u64);
        match self {
            Self::Pcap => {
                if stream_offset == 0 {
                    if bytes.len() < PCAP_FILE_HEADER {
                        return (0, 0);
                    }
                    at = PCAP_FILE_HEADER;
                }
                while let Some(header) = bytes.get(at..at + PCAP_RECORD_HEADER) {
                    let incl = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
                    let end = at + PCAP_RECORD_HEADER + incl as usize;
                    if end > bytes.len() {
                        break;
                    }
                    at = end;
                    frames += 1;
                }
            }
            Self::Pcapng => {
                while let Some(header) = bytes.get(at..at + 8) {
                    let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
                    let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
                    let end = at + (len as usize).max(12);
                    if end > bytes.len() {
                        break;
                    }
                    at = end;
                    frames += u64::from(kind == PCAPNG_EPB);
                }
            }
            Self::Lines => {
                for (i, _) in bytes.iter().enumerate().filter(|(_, b)| **b == b'\n') {
                    at = i + 1;
                    frames += 1;
                }
            }
        }
        (at, frames)
    }
}

/// Cuts `partial` bytes off the end of `out` if it is a regular file whose
/// end is where we write (a pipe or a terminal is left alone).
pub(crate) fn cut_file(out: &mut File, partial: u64) -> io::Result<()> {
    let metadata = out.metadata()?;
    if !metadata.is_file() {
        return Ok(());
    }
    let position = out.stream_position()?;
    if metadata.len() == position && partial <= position {
        out.set_len(position - partial)?;
        out.seek(io::SeekFrom::Start(position - partial))?;
    }
    Ok(())
}

/// What to do to the output after a write left part of a record in it.
pub(crate) type CutBack<W> = fn(&mut W, u64) -> io::Result<()>;

/// A write buffer of whole records over `W` (see the module doc).
#[derive(Debug)]
pub(crate) struct RecordOut<W: Write> {
    out: W,
    buf: Vec<u8>,
    /// Write the buffer out before it would pass this many bytes.
    capacity: usize,
    framing: Framing,
    cut_back: Option<CutBack<W>>,
    /// Bytes the system took so far.
    accepted: u64,
    frames_buffered: u64,
    frames_written: u64,
    frames_failed: u64,
    /// The write error that ended the output (kind and text).
    failed: Option<(io::ErrorKind, String)>,
}

impl<W: Write> RecordOut<W> {
    /// A buffer of `capacity` bytes over `out`; after a failed write,
    /// `cut_back` (if any) removes a partial record from `out`.
    pub(crate) fn new(
        out: W,
        capacity: usize,
        framing: Framing,
        cut_back: Option<CutBack<W>>,
    ) -> Self {
        Self {
            out,
            buf: Vec::with_capacity(capacity),
            capacity,
            framing,
            cut_back,
            accepted: 0,
            frames_buffered: 0,
            frames_written: 0,
            frames_failed: 0,
            failed: None,
        }
    }

    /// Appends one record made of `parts`; `frame` says whether it holds a
    /// frame (rather than a file header or an interface block). A record
    /// larger than the buffer still goes in whole (the buffer grows).
    #[inline]
    pub(crate) fn record(&mut self, parts: &[&[u8]], frame: bool) -> io::Result<()> {
        if let Some(error) = &self.failed {
            self.frames_failed += u64::from(frame);
            return Err(io::Error::new(error.0, error.1.clone()));
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.buf.len() + len > self.capacity && !self.buf.is_empty() {
            if let Err(e) = self.write_out() {
                self.frames_failed += u64::from(frame);
                return Err(e);
            }
        }
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        self.frames_buffered += u64::from(frame);
        Ok(())
    }

    /// Writes the buffer out and flushes `W`. After a failure, a no-op (the
    /// error was returned once, and every later record fails).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if self.failed.is_some() {
            return Ok(());
        }
        self.write_out()?;
        self.out.flush()
    }

    /// Counts a frame lost because a record before it (its interface
    /// block) failed.
    pub(crate) fn lose_frame(&mut self) {
        self.frames_failed += 1;
    }

    /// Frames the system took whole.
    pub(crate) fn frames_written(&self) -> u64 {
        self.frames_written
    }

    /// Frames lost to a write error.
    pub(crate) fn frames_failed(&self) -> u64 {
        self.frames_failed
    }

    /// Frames still in the buffer.
    #[cfg(test)]
    fn frames_buffered(&self) -> u64 {
        self.frames_buffered
    }

    /// Whether a write failed.
    #[cfg(test)]
    fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Flushes and returns `W`.
    pub(crate) fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }

    /// Writes the whole buffer; on failure counts what got out whole,
    /// removes a partial record, and marks the output failed.
    fn write_out(&mut self) -> io::Result<()> {
        let mut done = 0;
        let result = loop {
            if done == self.buf.len() {
                break Ok(());
            }
            match self.out.write(&self.buf[done..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(()) => {
                self.accepted += done as u64;
                self.frames_written += self.frames_buffered;
                self.frames_buffered = 0;
                self.buf.clear();
                Ok(())
            }
            Err(e) => {
                self.fail(done, &e);
                Err(e)
            }
        }
    }

    #[cold]
    fn fail(&mut self, done: usize, error: &io::Error) {
        let (whole, frames) = self.framing.whole_prefix(&self.buf[..done], self.accepted);
        self.accepted += done as u64;
        self.frames_written += frames;
        self.frames_failed += self.frames_buffered - frames;
        self.frames_buffered = 0;
        let partial = (done - whole) as u64;
        if partial > 0 {
            if let Some(cut) = self.cut_back {
                match cut(&mut self.out, partial) {
                    Ok(()) => self.accepted -= partial,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot remove a partial record after a failed write")
                    }
                }
            }
        }
        self.buf.clear();
        self.failed = Some((error.kind(), error.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then fails like a full disk.
    struct Full {
        data: Vec<u8>,
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room - self.data.len());
            if n == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[allow(
        clippy::unnecessary_wraps,
        reason = "the signature of a CutBack, whose real ones can fail"
    )]
    fn cut_vec(out: &mut Full, partial: u64) -> io::Result<()> {
        let len = out.data.len() - partial as usize;
        out.data.truncate(len);
        Ok(())
    }

    fn pcap_record(len: usize) -> Vec<u8> {
        let mut r = vec![0u8; 16];
        r[8..12].copy_from_slice(&(len as u32).to_le_bytes());
        r.extend(std::iter::repeat_n(0xab, len));
        r
    }

    #[test]
    fn a_failed_write_counts_the_whole_records_that_got_out_and_cuts_the_rest() {
        // Header (24) + 3 records of 16 + 100: room for the header and 2.5 records.
        let room = 24 + 116 * 2 + 58;
        let mut out = RecordOut::new(
            Full {
                data: Vec::new(),
                room,
            },
            4096,
            Framing::Pcap,
            Some(cut_vec),
        );
        out.record(&[&[0u8; 24]], false).expect("buffered");
        for _ in 0..3 {
            out.record(&[&pcap_record(100)], true).expect("buffered");
        }
        assert_eq!(out.frames_buffered(), 3);
        let err = out.flush().expect_err("the disk is full");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(out.frames_written(), 2);
        assert_eq!(out.frames_failed(), 1);
        assert!(out.is_failed());
        // Later records fail at once and are counted.
        assert!(out.record(&[&pcap_record(10)], true).is_err());
        assert_eq!(out.frames_failed(), 2);
        assert!(out.flush().is_ok(), "the error was reported once");
        let data = out.into_inner().expect("no more writes").data;
        assert_eq!(
            data.len(),
            24 + 2 * 116,
            "cut back to the last whole record"
        );
    }

    #[test]
    fn whole_prefixes_of_each_framing() {
        let mut ng = Vec::new();
        for (kind, len) in [(0x0A0D_0D0Au32, 28u32), (1, 20), (6, 40), (6, 32)] {
            ng.extend_from_slice(&kind.to_le_bytes());
            ng.extend_from_slice(&len.to_le_bytes());
            ng.extend(std::iter::repeat_n(0, len as usize - 8));
        }
        assert_eq!(Framing::Pcapng.whole_prefix(&ng, 0), (120, 2));
        assert_eq!(Framing::Pcapng.whole_prefix(&ng[..119], 0), (88, 1));
        assert_eq!(Framing::Pcapng.whole_prefix(&ng[..30], 0), (28, 0));
        assert_eq!(Framing::Lines.whole_prefix(b"a\nbb\nccc", 7), (5, 2));
        let mut pcap = vec![0u8; 24];
        pcap.extend(pcap_record(5));
        assert_eq!(Framing::Pcap.whole_prefix(&pcap, 0), (45, 1));
        assert_eq!(Framing::Pcap.whole_prefix(&pcap[24..], 24), (21, 1));
        assert_eq!(Framing::Pcap.whole_prefix(&pcap[..20], 0), (0, 0));
    }

    #[test]
    fn a_record_larger_than_the_buffer_goes_out_whole() {
        let mut out = RecordOut::new(Vec::new(), 64, Framing::Pcap, None);
        out.record(&[&[0u8; 24]], false).expect("vec");
        out.record(&[&pcap_record(1000)], true).expect("vec");
        out.record(&[&pcap_record(1)], true).expect("vec");
        assert_eq!(
            out.frames_written(),
            1,
            "the large one went out to make room"
        );
        out.flush().expect("vec");
        assert_eq!(out.frames_written(), 2);
        assert_eq!(out.into_inner().expect("vec").len(), 24 + 1016 + 17);
    }
}
