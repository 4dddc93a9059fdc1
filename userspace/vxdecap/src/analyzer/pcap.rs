//! Nanosecond-resolution classic pcap output (link type Ethernet).

use std::io::{self, Write};

use super::record_out::{CutBack, Framing, RecordOut};
use super::{Analyzer, AnalyzerCounts};
use crate::datapath::batch::{FrameMeta, Frames, InnerFrame};

/// Magic number of a nanosecond-resolution pcap file.
pub const PCAP_NSEC_MAGIC: u32 = 0xa1b2_3c4d;
const LINKTYPE_ETHERNET: u32 = 1;
/// Largest frame a record may hold (libpcap's maximum snaplen).
const SNAPLEN: u32 = 262_144;

/// Bytes buffered in front of the output by [`PcapWriter::new`].
pub(super) const DEFAULT_BUFFER: usize = 64 * 1024;

/// Writes inner frames as pcap records to any `Write` (a file or stdout),
/// through a buffer of whole records: [`PcapWriter::frames_written`] is
/// what reached `W`, also after a write error.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: RecordOut<W>,
    frames: u64,
    bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header (into the buffer).
    pub fn new(out: W) -> io::Result<Self> {
        Self::buffered(out, DEFAULT_BUFFER, None)
    }

    /// A writer with a buffer of `capacity` bytes; `cut_back` removes a
    /// partial record from `out` after a failed write.
    pub(crate) fn buffered(
        out: W,
        capacity: usize,
        cut_back: Option<CutBack<W>>,
    ) -> io::Result<Self> {
        let mut out = RecordOut::new(out, capacity, Framing::Pcap, cut_back);
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&PCAP_NSEC_MAGIC.to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay zero.
        header[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.record(&[&header], false)?;
        Ok(Self {
            out,
            frames: 0,
            bytes: header.len() as u64,
        })
    }

    /// Appends one record.
    #[inline]
    pub fn write_frame(
        &mut self,
        bytes: &[u8],
        timestamp_ns: u64,
        orig_len: u32,
    ) -> io::Result<()> {
        let incl = bytes.len().min(SNAPLEN as usize);
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&((timestamp_ns / 1_000_000_000) as u32).to_le_bytes());
        record[4..8].copy_from_slice(&((timestamp_ns % 1_000_000_000) as u32).to_le_bytes());
        record[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        record[12..16].copy_from_slice(&orig_len.max(incl as u32).to_le_bytes());
        // Taken (written or counted as failed) either way.
        self.frames += 1;
        self.bytes += (record.len() + incl) as u64;
        self.out.record(&[&record, &bytes[..incl]], true)
    }

    /// Appends one record unless that would take the output past `limit`
    /// bytes; returns whether it was written. A record is always written
    /// into a file that holds none yet, so a single large frame cannot stall
    /// a size-rotated output.
    #[inline]
    pub fn write_frame_within(
        &mut self,
        bytes: &[u8],
        meta: &FrameMeta,
        limit: u64,
    ) -> io::Result<bool> {
        let record_len = 16 + bytes.len().min(SNAPLEN as usize) as u64;
        if self.frames > 0 && self.bytes + record_len > limit {
            return Ok(false);
        }
        self.write_frame(bytes, meta.timestamp_ns, meta.orig_len)?;
        Ok(true)
    }

    /// Records taken so far (written, buffered or failed).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Records the output took whole (those a reader finds).
    pub fn frames_written(&self) -> u64 {
        self.out.frames_written()
    }

    /// Records lost to a write error.
    pub fn frames_failed(&self) -> u64 {
        self.out.frames_failed()
    }

    /// Bytes taken so far, the global header included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner()
    }
}

impl<W: Write + Send> Analyzer for PcapWriter<W> {
    fn name(&self) -> &'static str {
        "pcap"
    }

    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        write_all_frames(frames, |f| {
            self.write_frame(f.bytes, f.meta.timestamp_ns, f.meta.orig_len)
        })
    }

    fn on_idle(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn counts(&self) -> AnalyzerCounts {
        failed_counts(self.frames_failed())
    }
}

/// Offers every frame of the batch to `write`, even after one failed (a
/// failed output counts each as `output_write_failed`); returns the first error.
pub(crate) fn write_all_frames(
    frames: Frames<'_>,
    mut write: impl FnMut(&InnerFrame<'_>) -> io::Result<()>,
) -> io::Result<()> {
    let mut result = Ok(());
    for frame in frames.iter() {
        if let Err(e) = write(&frame) {
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}

/// An output's counts: frames lost to write errors.
pub(crate) fn failed_counts(failed: u64) -> AnalyzerCounts {
    let mut counts = AnalyzerCounts::default();
    if failed > 0 {
        counts.add(OUTPUT_WRITE_FAILED, failed);
    }
    counts
}

/// The reason for frames an output took but could not write (disk full, a
/// closed pipe).
pub const OUTPUT_WRITE_FAILED: &str = "output_write_failed";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_bytes_match_the_pcap_format() {
        let mut w = PcapWriter::new(Vec::new()).expect("vec write");
        w.write_frame(&[0xAA; 20], 1_700_000_000_123_456_789, 60)
            .expect("vec write");
        let out = w.into_inner().expect("flush");
        let expected_header: [u8; 24] = [
            0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x04, 0x00, 1,
            0, 0, 0,
        ];
        assert_eq!(out[..24], expected_header);
        assert_eq!(
            u32::from_le_bytes(out[24..28].try_into().unwrap()),
            1_700_000_000
        );
        assert_eq!(
            u32::from_le_bytes(out[28..32].try_into().unwrap()),
            123_456_789
        );
        assert_eq!(
            u32::from_le_bytes(out[32..36].try_into().unwrap()),
            20,
            "incl_len"
        );
        assert_eq!(
            u32::from_le_bytes(out[36..40].try_into().unwrap()),
            60,
            "orig_len"
        );
        assert_eq!(&out[40..], &[0xAA; 20]);
    }
}
