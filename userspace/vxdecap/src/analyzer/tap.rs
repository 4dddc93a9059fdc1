//! The `--tap` output: every inner frame written to a TAP device.
//!
//! A tap takes one frame per `write` and nothing like `sendmmsg`, so this
//! is a syscall per frame; it runs on its analyzer thread, never in the rx
//! workers. Frames the kernel would refuse anyway (longer than the device
//! MTU plus their Ethernet and VLAN headers) are counted as
//! `tap_frame_too_big` instead of written; failed writes as
//! `tap_write_failed` (the capture goes on).

use std::io;
use std::time::{Duration, Instant};

use super::{Analyzer, AnalyzerCounts};
use crate::datapath::batch::{Frames, InnerFrame};
use crate::sys::tap::{TapDevice, TapError};

/// How often the device MTU is read again after a frame was too big for
/// it (someone may have raised it with `ip link set NAME mtu 9000`).
const MTU_RECHECK: Duration = Duration::from_secs(1);

/// Writes inner frames to a tap device.
#[derive(Debug)]
pub struct TapWriter {
    device: TapDevice,
    label: String,
    mtu: usize,
    mtu_read: Instant,
    written: u64,
    write_failed: u64,
    too_big: u64,
}

impl TapWriter {
    /// Creates the tap device `name`, brings it up and writes to it.
    pub fn create(name: &str) -> Result<Self, TapError> {
        Ok(Self::new(TapDevice::create(name)?))
    }

    /// Writes to an existing device.
    pub fn new(device: TapDevice) -> Self {
        Self {
            label: format!("tap {}", device.name()),
            mtu: device.mtu(),
            mtu_read: Instant::now(),
            device,
            written: 0,
            write_failed: 0,
            too_big: 0,
        }
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

/// Length of the Ethernet header with up to two VLAN tags.
#[inline]
fn l2_header_len(frame: &[u8]) -> usize {
    let mut len = 14;
    while len < 22 && matches!(frame.get(len - 2..len), Some([0x81, 0x00] | [0x88, 0xa8])) {
        len += 4;
    }
    len
}

impl TapWriter {
    /// Writes `frame` to the device; one too big for its MTU, or a write
    /// the device refuses, is counted.
    fn send(&mut self, frame: &InnerFrame<'_>) {
        let bytes = frame.bytes;
        if bytes.len().saturating_sub(l2_header_len(bytes)) > self.mtu {
            if self.mtu_read.elapsed() >= MTU_RECHECK {
                self.mtu = self.device.mtu();
                self.mtu_read = Instant::now();
            }
            if bytes.len().saturating_sub(l2_header_len(bytes)) > self.mtu {
                self.too_big += 1;
                return;
            }
        }
        match self.device.send(bytes) {
            Ok(()) => self.written += 1,
            Err(e) => {
                if self.write_failed == 0 {
                    tracing::warn!(tap = self.device.name(), error = %e, "tap write failed (counted as tap_write_failed)");
                }
                self.write_failed += 1;
            }
        }
    }
}

impl Analyzer for TapWriter {
    fn name(&self) -> &str {
        &self.label
    }

    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        // A tap takes one frame per write; what it refuses is counted, and
        // the device is never an error that stops the run.
        for frame in frames.iter() {
            self.send(&frame);
        }
        Ok(())
    }

    fn counts(&self) -> AnalyzerCounts {
        let mut counts = AnalyzerCounts::default();
        counts.add("tap_write_failed", self.write_failed);
        counts.add("tap_frame_too_big", self.too_big);
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_length_counts_vlan_tags() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        assert_eq!(l2_header_len(&f), 14);
        let mut q = vec![0u8; 12];
        q.extend_from_slice(&[0x81, 0x00, 0, 100, 0x08, 0x00]);
        assert_eq!(l2_header_len(&q), 18);
        let mut qinq = vec![0u8; 12];
        qinq.extend_from_slice(&[0x88, 0xa8, 0, 200, 0x81, 0x00, 0, 100, 0x08, 0x00]);
        assert_eq!(l2_header_len(&qinq), 22);
        assert_eq!(l2_header_len(&[0u8; 3]), 14);
    }
}
