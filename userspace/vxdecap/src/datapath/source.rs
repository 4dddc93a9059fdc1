//! Where a worker's outer frames come from: [`SocketSource`], an AF_XDP
//! socket (live), or [`FileSource`], a capture file (offline). The batch
//! loop ([`crate::datapath::worker`]) is the same for both; what differs is
//! a property of the source:
//!
//! - how a batch holds its frames: leases on the UMEM (live) or copies;
//! - what a full analyzer lane means: live, the frames are dropped for that
//!   analyzer (the NIC ring never waits), unless the capture is lossless;
//!   offline, the reader waits (a file can);
//! - what an empty source means: live, the worker waits as its receive
//!   policy says ([`IdlePacer`]); offline, the end of the input;
//! - the clock: live, one wall-clock read per batch converts the XDP
//!   program's receive times; offline, each packet's own time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vxdecap_xsk::{RxFrame, RxSocket, UmemView, XskStatistics};

use crate::datapath::idle::{IdlePacer, IdlePolicy, IdleStep};
use crate::datapath::stage::{Backpressure, DecapStage, RxClock};
use crate::input::CaptureInput;

/// Sleep of an idle worker in poll(); bounds the reaction time to stop.
const IDLE_POLL_MS: i32 = 50;
/// How often a live worker publishes its VNI table and socket counters.
const SLOW_PUBLISH: Duration = Duration::from_millis(250);

/// What one receive found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// `count` frames went to the stage; `now_ns` is the batch's time
    /// (wall clock, ns since the Unix epoch), which expires fragments.
    Frames {
        /// Frames handed to the stage.
        count: usize,
        /// The time of the batch.
        now_ns: u64,
    },
    /// Nothing now; more may come.
    Empty,
    /// Nothing ever again (the end of the input).
    End,
}

/// What a worker does on an empty source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// Wait this way, then look again.
    Wait(IdleStep),
    /// The source is gone (its interface went away): take what is left and end.
    Gone,
}

/// A source of outer frames for the batch loop.
pub trait FrameSource {
    /// Prepares `stage` for this source's frames: how its batches hold them
    /// and what a full analyzer lane means (see the module documentation).
    fn attach(&mut self, stage: &mut DecapStage);

    /// Takes up to `room` frames, handing each to `stage`.
    fn receive(&mut self, stage: &mut DecapStage, room: usize) -> Received;

    /// Takes back frames every analyzer is done with (the fill ring).
    fn recycle(&mut self, frames: std::vec::Drain<'_, RxFrame>);

    /// `frames` were received in one batch.
    #[inline]
    fn busy(&mut self, _frames: usize) {}

    /// The source was empty: what next. A source that is never empty
    /// before its end never waits.
    #[inline]
    fn empty(&mut self) -> Idle {
        Idle::Wait(IdleStep::Spin)
    }

    /// Waits as `step` says.
    #[inline]
    fn wait(&mut self, _step: IdleStep) {}

    /// After each pass that was not busy: housekeeping that runs a few
    /// times a second (live: the VNI table and socket counters).
    #[inline]
    fn tick(&mut self, _stage: &DecapStage) {}
}

/// Frames from an AF_XDP socket, leased to the analyzers in the UMEM they
/// arrived in.
#[derive(Debug)]
pub struct SocketSource<'a> {
    socket: &'a mut RxSocket,
    view: UmemView,
    /// Tokens taken off the RX ring (allocated once, by the worker).
    tokens: &'a mut Vec<RxFrame>,
    /// Frames per batch the pool's batches hold.
    batch: usize,
    /// The worker's position (batches carry it back to it).
    worker: u16,
    backpressure: Backpressure,
    idle: IdlePolicy,
    pacer: IdlePacer,
    /// The interface's epoch when the socket was opened, and now: a change
    /// means the interface went away and the socket is dead.
    epoch: (u64, &'a AtomicU64),
    /// The kernel's receive work can run on the worker's core now.
    shared_core: &'a AtomicBool,
    /// Socket counters of the worker's sockets before this one.
    xsk_before: XskStatistics,
    next_slow: Instant,
}

/// How a [`SocketSource`] runs: what the worker configured.
#[derive(Clone, Copy, Debug)]
pub struct SocketSettings<'a> {
    /// Frames per batch.
    pub batch: usize,
    /// The worker's position among the workers.
    pub worker: u16,
    /// Wait for analyzers instead of dropping frames for them (`--lossless`).
    pub lossless: bool,
    /// What to do on an empty ring (the receive policy, resolved for this socket).
    pub idle: IdlePolicy,
    /// The epoch the socket was opened in, and the capture's current one.
    pub epoch: (u64, &'a AtomicU64),
    /// Set while the kernel's receive work can run on the worker's core.
    pub shared_core: &'a AtomicBool,
    /// Socket counters of the worker's earlier sockets.
    pub xsk_before: XskStatistics,
}

impl<'a> SocketSource<'a> {
    /// Frames from `socket`, read into `tokens`.
    pub fn new(
        socket: &'a mut RxSocket,
        tokens: &'a mut Vec<RxFrame>,
        settings: SocketSettings<'a>,
    ) -> Self {
        SocketSource {
            view: socket.view(),
            socket,
            tokens,
            batch: settings.batch,
            worker: settings.worker,
            backpressure: if settings.lossless {
                Backpressure::Wait
            } else {
                Backpressure::Drop
            },
            idle: settings.idle,
            pacer: IdlePacer::new(settings.idle),
            epoch: settings.epoch,
            shared_core: settings.shared_core,
            xsk_before: settings.xsk_before,
            next_slow: Instant::now(),
        }
    }

    /// Naps taken at light load so far.
    pub fn naps(&self) -> u64 {
        self.pacer.naps()
    }

    /// Publishes the VNI table and the kernel's socket counters (over every
    /// socket the worker had).
    pub fn publish_slow(&self, stage: &DecapStage) {
        stage.publish_vnis();
        if let Ok(xsk) = self.socket.statistics() {
            let mut total = self.xsk_before;
            total.merge(&xsk);
            stage.shared_slow().publish_xsk(&total);
        }
    }
}

impl FrameSource for SocketSource<'_> {
    fn attach(&mut self, stage: &mut DecapStage) {
        stage.use_umem(&self.view, self.batch, self.worker);
        stage.set_backpressure(self.backpressure);
    }

    #[inline]
    fn receive(&mut self, stage: &mut DecapStage, room: usize) -> Received {
        if self.socket.receive(self.tokens, room) == 0 {
            // Busy polling: run the queue's receive work here, then look again.
            if !self.idle.busy_poll || {
                self.socket.kick();
                self.socket.receive(self.tokens, room) == 0
            } {
                return Received::Empty;
            }
        }
        // One clock read per batch converts every frame's XDP receive time.
        let clock = RxClock::read();
        let count = self.tokens.len();
        for frame in self.tokens.drain(..) {
            stage.handle_leased(frame, &self.view, &clock);
        }
        Received::Frames {
            count,
            now_ns: clock.now_ns,
        }
    }

    #[inline]
    fn recycle(&mut self, frames: std::vec::Drain<'_, RxFrame>) {
        self.socket.recycle(frames);
    }

    #[inline]
    fn busy(&mut self, frames: usize) {
        self.pacer.busy(frames);
    }

    fn empty(&mut self) -> Idle {
        let (opened, now) = self.epoch;
        if now.load(Ordering::Relaxed) != opened {
            return Idle::Gone;
        }
        Idle::Wait(self.pacer.empty(self.shared_core.load(Ordering::Relaxed)))
    }

    fn wait(&mut self, step: IdleStep) {
        match step {
            // Busy polling kicks NAPI in `receive`: no pause.
            IdleStep::Spin if self.idle.busy_poll => {}
            IdleStep::Spin => std::hint::spin_loop(),
            IdleStep::Nap(nap) => std::thread::sleep(nap),
            // Sleeps in poll(); also wakes the kernel if it asked.
            IdleStep::Sleep => {
                let _ = self.socket.wait(IDLE_POLL_MS);
            }
        }
    }

    fn tick(&mut self, stage: &DecapStage) {
        if self.next_slow.elapsed() >= SLOW_PUBLISH {
            self.next_slow = Instant::now();
            self.publish_slow(stage);
        }
    }
}

/// Frames read from a capture file (or stdin), copied into batches of
/// their own; the reader waits for the analyzers rather than dropping.
#[derive(Debug)]
pub struct FileSource<'a> {
    input: CaptureInput,
    stop: &'a AtomicBool,
    /// Bytes and frames of each batch.
    batch_bytes: usize,
    batch_frames: usize,
}

impl<'a> FileSource<'a> {
    /// Reads `input` until its end or until `stop` is raised (checked
    /// before each packet), into batches of up to `batch_frames` frames and
    /// `batch_bytes` bytes.
    pub fn new(
        input: CaptureInput,
        stop: &'a AtomicBool,
        batch_bytes: usize,
        batch_frames: usize,
    ) -> Self {
        FileSource {
            input,
            stop,
            batch_bytes,
            batch_frames,
        }
    }

    /// The input's name.
    pub fn name(&self) -> &str {
        self.input.name()
    }

    /// The reader's report (what it could not hand on, why it stopped).
    pub fn into_report(self) -> crate::input::InputReport {
        self.input.into_report()
    }
}

impl FrameSource for FileSource<'_> {
    fn attach(&mut self, stage: &mut DecapStage) {
        stage.stock_owned(self.batch_bytes, self.batch_frames, 0);
        stage.set_backpressure(Backpressure::Wait);
    }

    #[inline]
    fn receive(&mut self, stage: &mut DecapStage, room: usize) -> Received {
        let mut count = 0;
        let mut now_ns = 0;
        let mut deliver = |packet: crate::input::Packet<'_>| {
            // The file's timestamps are the clock: stale datagrams expire
            // at each packet, as they would have live.
            stage.handle_captured(
                packet.data,
                packet.link,
                packet.timestamp_ns,
                packet.orig_len,
            );
            now_ns = packet.timestamp_ns;
        };
        while count < room
            && !self.stop.load(Ordering::Relaxed)
            && self.input.next_packet(&mut deliver)
        {
            count += 1;
        }
        if count == 0 {
            return Received::End;
        }
        Received::Frames { count, now_ns }
    }

    #[inline]
    fn recycle(&mut self, _frames: std::vec::Drain<'_, RxFrame>) {
        // Copied frames lease nothing.
    }
}
