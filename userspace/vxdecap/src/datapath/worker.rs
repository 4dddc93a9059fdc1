//! The batch loop, the heart of a worker, the same for live capture and
//! offline replay: it runs over any [`FrameSource`].
//!
//! One pass, per receive batch (xdpsock's rx loop):
//!
//! 1. **reclaim**: batches every analyzer is done with come back; their
//!    frames go back to the source (the fill ring);
//! 2. **intake**: how many frames may be taken now (all of them, or, when
//!    frames must not be dropped, as many as can be batched);
//! 3. **receive** up to that many, each decapsulated by the stage as it
//!    comes (one clock read per batch);
//! 4. **expiry** of outer fragments too old to complete;
//! 5. **flush**: the batch goes to every analyzer's lane;
//! 6. **inline analyzers** run on it at once, in this thread, when they
//!    share the worker's core (run to completion);
//! 7. rejected frames go back to the source, and the counters are
//!    **published** for the metrics.
//!
//! An empty source waits as the source says ([`FrameSource::empty`]); a
//! source that ends (a file) ends the loop. Nothing here allocates, locks
//! or logs.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::datapath::analyzers::InlineAnalyzers;
use crate::datapath::idle::IdleStep;
use crate::datapath::source::{FrameSource, Idle, Received};
use crate::datapath::stage::DecapStage;
use crate::report::stats::StageCounter;

/// What one pass of the batch loop found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// This many frames were received.
    Busy(usize),
    /// The source had nothing now.
    Empty,
    /// Every batch is with the analyzers and frames must not be dropped:
    /// wait for them.
    Blocked,
    /// The source has ended.
    End,
}

/// Why [`BatchLoop::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopEnd {
    /// The stop flag was raised.
    Stop,
    /// The source went away (what it still held was taken first).
    Gone,
    /// The source ended (the end of a capture file).
    End,
}

/// A worker's stage and inline analyzers, and the loop that feeds them.
#[derive(Debug)]
pub struct BatchLoop {
    stage: DecapStage,
    /// Most frames taken at once.
    batch: usize,
    /// Analyzers run in this thread, after each batch.
    inline: Option<InlineAnalyzers>,
}

impl BatchLoop {
    /// A loop taking up to `batch` frames at once into `stage`, running
    /// `inline` analyzers (if any) after each batch.
    pub fn new(stage: DecapStage, batch: usize, inline: Option<InlineAnalyzers>) -> Self {
        Self {
            stage,
            batch: batch.max(1),
            inline,
        }
    }

    /// The stage (its counters, VNI table, reassembler).
    pub fn stage(&self) -> &DecapStage {
        &self.stage
    }

    /// The stage, to finish or publish it.
    pub fn stage_mut(&mut self) -> &mut DecapStage {
        &mut self.stage
    }

    /// Runs passes over `source` until `stop` is raised, the source ends, or
    /// it goes away.
    pub fn run<S: FrameSource>(&mut self, source: &mut S, stop: &AtomicBool) -> LoopEnd {
        source.attach(&mut self.stage);
        while !stop.load(Ordering::Relaxed) {
            match self.pass(source) {
                Pass::Busy(frames) => {
                    source.busy(frames);
                    continue;
                }
                Pass::Blocked => std::thread::yield_now(),
                Pass::End => return LoopEnd::End,
                Pass::Empty => match source.empty() {
                    Idle::Gone => {
                        // Frames still in the source are kept: take them, then go.
                        self.drain(source);
                        return LoopEnd::Gone;
                    }
                    Idle::Wait(step) => {
                        if let Some(inline) = self.inline.as_mut() {
                            // Outputs flush before sleeping in poll(), and every few
                            // milliseconds otherwise (naps included), so a reader sees frames soon.
                            inline.idle(step == IdleStep::Sleep);
                        }
                        source.wait(step);
                    }
                },
            }
            source.tick(&self.stage);
        }
        LoopEnd::Stop
    }

    /// Takes every frame the source still holds (at stop, once nothing new
    /// can arrive, or when it went away).
    pub fn drain<S: FrameSource>(&mut self, source: &mut S) {
        while matches!(self.pass(source), Pass::Busy(_)) {}
    }

    /// One receive batch, from reclaim to publish.
    #[inline]
    pub fn pass<S: FrameSource>(&mut self, source: &mut S) -> Pass {
        // Frames every analyzer is done with go back to the source first.
        self.stage.reclaim(|frames| source.recycle(frames));
        let room = self.stage.intake(self.batch);
        if room == 0 {
            return Pass::Blocked;
        }
        let (frames, now_ns) = match source.receive(&mut self.stage, room) {
            Received::Frames { count, now_ns } => (count, now_ns),
            Received::Empty => {
                self.stage.stats_mut().add(StageCounter::EmptyPolls, 1);
                return Pass::Empty;
            }
            Received::End => return Pass::End,
        };
        self.stage.expire_fragments(now_ns);
        self.stage.flush();
        if let Some(inline) = self.inline.as_mut() {
            inline.drain();
        }
        source.recycle(self.stage.to_recycle());
        self.stage.stats_mut().add(StageCounter::Batches, 1);
        self.stage.publish();
        Pass::Busy(frames)
    }

    /// The loop is over: outer fragments still waiting count as timed out,
    /// the last batch goes out, and inline analyzers finish and report.
    pub fn finish(mut self) -> DecapStage {
        self.stage.finish_fragments();
        self.stage.flush();
        self.stage.publish();
        if let Some(inline) = self.inline.take() {
            inline.finish();
        }
        self.stage
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::Duration;

    use vxdecap_wire::reassembly::{Reassembler, ReassemblyConfig, ReassemblyEvent};
    use vxdecap_wire::{build, PortSet};

    use super::*;
    use crate::analyzer::Analyzer;
    use crate::datapath::analyzers::{AnalyzerThread, Latency};
    use crate::datapath::batch::Frames;
    use crate::datapath::queue::fan_out;
    use crate::datapath::source::FileSource;
    use crate::input::CaptureInput;
    use crate::report::progress::AnalyzerReport;

    /// Records each inner frame's VNI and the first byte of its UDP payload.
    struct Recorder(Arc<Mutex<Vec<(u32, u8)>>>);

    impl Analyzer for Recorder {
        fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
            let mut seen = self.0.lock().expect("not poisoned");
            for frame in frames.iter() {
                seen.push((frame.meta.vni, frame.bytes[14 + 20 + 8]));
            }
            Ok(())
        }

        fn can_run_inline(&self) -> bool {
            true
        }
    }

    /// An outer frame with VNI `vni` whose inner UDP payload starts with
    /// `seed`, from outer IP ID `ident`, of `payload_len` bytes.
    fn vxlan(vni: u32, seed: u8, ident: u16, payload_len: usize) -> Vec<u8> {
        let inner = build::inner_ipv4_udp_frame(&build::InnerIpv4Udp {
            payload_len,
            payload_seed: seed,
            ..Default::default()
        })
        .expect("inner frame");
        build::VxlanFrameBuilder::new()
            .vni(vni)
            .ipv4_ident(ident)
            .inner(&inner)
            .build()
            .expect("outer frame")
    }

    /// A little-endian microsecond pcap of Ethernet `frames`, one every
    /// `step_us` microseconds.
    fn pcap(frames: &[Vec<u8>], step_us: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65_535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (i, frame) in frames.iter().enumerate() {
            let us = u64::from(step_us) * i as u64;
            out.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(frame);
        }
        out
    }

    /// The batch loop over a capture in memory, with inline analyzers, as
    /// `decap -r` runs it but in this thread: no root, no NIC. A pool of
    /// two batches for hundreds of frames only lasts if every pass
    /// reclaims what the analyzer returned.
    #[test]
    fn the_batch_loop_runs_offline_with_inline_analyzers_and_accounts_for_every_packet() {
        let mut frames = Vec::new();
        let mut expected = Vec::new();
        for i in 0..300u16 {
            let (vni, seed) = (27 + u32::from(i % 3), (i % 251) as u8);
            frames.push(vxlan(vni, seed, 0, 32));
            expected.push((vni, seed));
            if i % 50 == 49 {
                frames.push(b"not vxlan: a runt".to_vec()); // rejected
            }
        }
        // A fragmented datagram comes back whole; a lone first fragment
        // times out (the file's clock passes its timeout).
        let whole = vxlan(99, 7, 4242, 1472);
        frames.extend(build::fragment_ipv4(&whole, 1500).expect("fragments"));
        expected.push((99, 7));
        let lone = build::fragment_ipv4(&vxlan(99, 8, 4343, 1472), 1500).expect("fragments");
        frames.push(lone[0].clone());
        frames.extend((0..20).map(|i| vxlan(5, i, 0, 32)));
        expected.extend((0..20).map(|i| (5, i)));
        let records = frames.len() as u64;
        // 100 ms apart: the 1 s reassembly timeout passes within the file.
        let bytes = pcap(&frames, 100_000);

        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let stop = Arc::new(AtomicBool::new(false));
            let (mut senders, receivers) = fan_out(1, 1, 2);
            let stage = DecapStage::new(
                PortSet::default(),
                0,
                senders.remove(0),
                usize::MAX,
                64,
                Arc::clone(&stop),
            )
            .with_reassembler(Reassembler::new(ReassemblyConfig::default()).expect("reassembler"));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let analyzers: Vec<Box<dyn Analyzer>> = vec![Box::new(Recorder(Arc::clone(&seen)))];
            let (handles, inline) =
                InlineAnalyzers::new(receivers, analyzers, None, &stop, Latency::Skip);
            let input =
                CaptureInput::from_reader("memory".into(), Box::new(io::Cursor::new(bytes)))
                    .expect("a pcap");
            let mut source = FileSource::new(input, &stop, 64 * 2048, 64);
            let mut work = BatchLoop::new(stage, 64, Some(inline));
            let end = work.run(&mut source, &stop);
            let stage = work.finish();
            let reports: Vec<AnalyzerReport> =
                handles.into_iter().map(AnalyzerThread::join).collect();
            let seen = seen.lock().expect("not poisoned").clone();
            let _ = tx.send((end, *stage.stats(), seen, reports, source.into_report()));
        });
        let (end, stats, seen, reports, input) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the loop ended (a pool that is never reclaimed would block it)");

        assert_eq!(end, LoopEnd::End);
        assert_eq!(input.error, None);
        assert_eq!(seen, expected, "every inner frame once, in order");
        assert_eq!(reports[0].written, expected.len() as u64);
        assert_eq!(stats.get(StageCounter::Received), records);
        assert_eq!(stats.get(StageCounter::Delivered), expected.len() as u64);
        assert_eq!(stats.rejected_total(), 6, "the six runts");
        assert_eq!(stats.reassembly_packets(ReassemblyEvent::Merged), 1);
        assert_eq!(stats.reassembly_packets(ReassemblyEvent::Timeout), 1);
        assert!(
            stats.get(StageCounter::Batches) >= records / 64,
            "one pass per 64 packets at most"
        );
        // Received = written + every named reason.
        let named = stats.rejected_total()
            + stats.reassembly_packets(ReassemblyEvent::Merged)
            + stats.reassembly_packets(ReassemblyEvent::Timeout);
        assert_eq!(reports[0].written + named, records);
    }
}
