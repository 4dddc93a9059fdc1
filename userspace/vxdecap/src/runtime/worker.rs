//! One rx queue's worker: its socket and batch loop, on its own pinned
//! thread; it opens a new socket when the interface comes back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use vxdecap_xsk::RxFrame;
use vxdecap_xsk::{BindMode, RxSocket, SocketConfig, XskError, XskStatistics};

use crate::datapath::analyzers::InlineAnalyzers;
use crate::datapath::idle::{IdlePacer, IdlePolicy, IdleStep, RxPolicy};
use crate::datapath::stage::{DecapStage, RxClock};
use crate::report::stats::StageCounter;
use crate::report::summary::QueueReport;
use crate::sys::cpu::pin_current_thread;

/// Sleep of an idle worker between polls; bounds the reaction time to stop.
pub(crate) const IDLE_POLL_MS: i32 = 50;
/// After the XSKMAP is cleared, frames already on their way still land.
pub(crate) const DRAIN_GRACE: Duration = Duration::from_millis(20);
/// How often workers publish their VNI table and socket counters.
pub(crate) const SLOW_PUBLISH: Duration = Duration::from_millis(250);

/// State shared by the main thread and the workers.
pub(crate) struct Control {
    pub(crate) stop: Arc<AtomicBool>,
    /// The XSKMAP was cleared at shutdown: the rings can only shrink now.
    pub(crate) unregistered: AtomicBool,
    /// Even: the interface is up and workers keep a socket on it; odd: it
    /// went away and workers close theirs. Each change is a new epoch.
    pub(crate) epoch: AtomicU64,
    /// The interface's current name (a VF may come back renamed). Read by
    /// workers only when they (re)open a socket.
    pub(crate) interface: Mutex<String>,
    /// Per worker: the kernel's receive work can run on its core (see
    /// [`ReceiveWork`]); checked by the main thread once a second.
    pub(crate) shared_core: Vec<AtomicBool>,
}

/// A worker's report that its socket for `epoch` is open (or not).
pub(crate) struct SocketReady {
    pub(crate) queue: u32,
    pub(crate) epoch: u64,
    pub(crate) result: Result<BoundSocket, XskError>,
}

/// A socket a worker opened: what to register, and how the worker runs it.
pub(crate) struct BoundSocket {
    pub(crate) fd: std::os::fd::RawFd,
    pub(crate) mode: BindMode,
    pub(crate) policy: RxPolicy,
    /// Why this policy (for the start-up line).
    pub(crate) reason: String,
}

/// One rx queue's socket and batch loop, on its own pinned thread.
pub(crate) struct RxQueueWorker {
    /// Position among the workers (batches carry it back to this worker).
    pub(crate) index: u16,
    pub(crate) queue: u32,
    pub(crate) cpu: Option<usize>,
    pub(crate) socket_config: SocketConfig,
    pub(crate) batch: usize,
    pub(crate) stage: DecapStage,
    pub(crate) control: Arc<Control>,
    /// The receive policy asked for (resolved per socket).
    pub(crate) rx_policy: RxPolicy,
    /// How long [`RxPolicy::Spin`] spins on an empty ring.
    pub(crate) spin: Duration,
    /// What to do on an empty ring, for the current socket.
    pub(crate) idle: IdlePolicy,
    /// The policy of the current socket, and why.
    pub(crate) policy: (RxPolicy, String),
    /// Naps and NAPI kicks of the sockets before the current one.
    pub(crate) naps: u64,
    pub(crate) kicks_before: u64,
    /// Socket counters of the sockets closed before the current one.
    pub(crate) xsk_before: XskStatistics,
    pub(crate) wakeups_before: u64,
    /// Analyzers run in this thread, after each batch (run to completion).
    pub(crate) inline: Option<InlineAnalyzers>,
}

/// What one pass of the batch loop found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// This many frames were received.
    Busy(usize),
    /// The RX ring was empty.
    Empty,
    /// Lossless mode with every lease out: wait for the analyzers.
    Blocked,
}

/// Why a worker's loop over one socket ended.
pub(crate) enum SocketEnd {
    /// The capture is stopping.
    Stop,
    /// The interface went away: the socket is dead.
    Gone,
}

impl RxQueueWorker {
    pub(crate) fn run(mut self, setup: mpsc::Sender<SocketReady>) -> Option<QueueReport> {
        let report = self.capture(setup);
        // Inline analyzers get the last batches, flush and report.
        if let Some(inline) = self.inline.take() {
            inline.finish();
        }
        report
    }

    fn capture(&mut self, setup: mpsc::Sender<SocketReady>) -> Option<QueueReport> {
        // Keeps this thread's capabilities permitted across `-Z`.
        crate::runtime::privs::keep_caps_across_setuid();
        if let Some(cpu) = self.cpu {
            if let Err(e) = pin_current_thread(cpu) {
                tracing::warn!(queue = self.queue, cpu, error = %e, "cannot pin the worker; running unpinned");
                self.cpu = None;
            }
        }
        // Allocated here, once: the batch loop allocates nothing.
        let mut tokens: Vec<RxFrame> = Vec::with_capacity(self.batch);
        let mut first = true;
        let mut bind_mode = BindMode::Copy;
        loop {
            let epoch = self.control.epoch.load(Ordering::Acquire);
            let interface = self
                .control
                .interface
                .lock()
                .map(|n| n.clone())
                .unwrap_or_default();
            if !first {
                // After `-Z`, opening a socket needs the kept capabilities.
                let _ = crate::runtime::privs::raise();
            }
            let mut socket =
                match RxSocket::open(&interface, self.queue, &self.socket_config, self.batch) {
                    Ok(socket) => socket,
                    Err(e) => {
                        let _ = setup.send(SocketReady {
                            queue: self.queue,
                            epoch,
                            result: Err(e),
                        });
                        if first {
                            return None;
                        }
                        if !self.wait_for_new_epoch(epoch) {
                            return Some(self.report(bind_mode));
                        }
                        continue;
                    }
                };
            let view = socket.view();
            self.stage.use_umem(&view, self.batch, self.index);
            bind_mode = socket.bind_mode();
            self.choose_policy(&mut socket);
            use std::os::fd::AsRawFd;
            let _ = setup.send(SocketReady {
                queue: self.queue,
                epoch,
                result: Ok(BoundSocket {
                    fd: socket.as_raw_fd(),
                    mode: bind_mode,
                    policy: self.policy.0,
                    reason: self.policy.1.clone(),
                }),
            });
            first = false;
            let end = self.serve(&mut socket, &view, &mut tokens, epoch);
            self.stage.publish();
            self.publish_slow(&socket);
            let xsk = socket.statistics().unwrap_or_default();
            self.xsk_before.merge(&xsk);
            self.wakeups_before += socket.wakeups();
            self.kicks_before += socket.kicks();
            // Leased frames still with the analyzers keep the UMEM mapped (their
            // batches hold a view); the socket closes here.
            drop(socket);
            match end {
                SocketEnd::Stop => return Some(self.report(bind_mode)),
                SocketEnd::Gone => {
                    if !self.wait_for_new_epoch(epoch) {
                        return Some(self.report(bind_mode));
                    }
                }
            }
        }
    }

    /// Resolves the receive policy for a socket just opened, turning on
    /// busy polling when it applies (and falling back to sleeping when the
    /// socket refuses it).
    fn choose_policy(&mut self, socket: &mut RxSocket) {
        let (mut policy, reason) = self.rx_policy.resolve(socket.bind_mode());
        let mut reason = reason.to_owned();
        if policy == RxPolicy::BusyPoll {
            if let Err(e) = socket.enable_busy_poll(&vxdecap_xsk::BusyPoll::default()) {
                policy = RxPolicy::Sleep;
                reason = format!("busy polling refused ({e}); sleeping on an empty ring instead");
            }
        }
        self.idle = IdlePolicy::of(policy, self.spin);
        self.policy = (policy, reason);
    }

    /// Waits until the interface is back (a new even epoch); false when the
    /// capture stops first.
    fn wait_for_new_epoch(&self, old: u64) -> bool {
        loop {
            if self.control.stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = self.control.epoch.load(Ordering::Acquire);
            if now != old && now % 2 == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The batch loop over one socket, until the capture stops (then the
    /// ring is drained) or the interface goes away.
    fn serve(
        &mut self,
        socket: &mut RxSocket,
        view: &vxdecap_xsk::UmemView,
        tokens: &mut Vec<RxFrame>,
        epoch: u64,
    ) -> SocketEnd {
        let mut pacer = IdlePacer::new(self.idle);
        let naps_before = self.naps;
        let mut next_slow = Instant::now();
        while !self.control.stop.load(Ordering::Relaxed) {
            match self.receive_batch(socket, view, tokens) {
                Pass::Busy(frames) => {
                    pacer.busy(frames);
                    continue;
                }
                Pass::Blocked => std::thread::yield_now(),
                Pass::Empty => {
                    if self.control.epoch.load(Ordering::Relaxed) != epoch {
                        // Frames still on the ring are kept: take them, then go.
                        while matches!(self.receive_batch(socket, view, tokens), Pass::Busy(_)) {}
                        return SocketEnd::Gone;
                    }
                    let shared =
                        self.control.shared_core[usize::from(self.index)].load(Ordering::Relaxed);
                    let step = pacer.empty(shared);
                    if let Some(inline) = self.inline.as_mut() {
                        // Outputs flush before any sleep, so a reader sees frames promptly.
                        inline.idle(matches!(step, IdleStep::Nap(_) | IdleStep::Sleep));
                    }
                    match step {
                        // Busy polling kicks NAPI in `receive_batch`: no pause.
                        IdleStep::Spin if self.idle.busy_poll => {}
                        IdleStep::Spin => std::hint::spin_loop(),
                        IdleStep::Nap(nap) => std::thread::sleep(nap),
                        // Sleeps in poll(); also wakes the kernel if it asked.
                        IdleStep::Sleep => {
                            let _ = socket.wait(IDLE_POLL_MS);
                        }
                    }
                }
            }
            // The VNI table and the socket's counters, a few times a second.
            if next_slow.elapsed() >= SLOW_PUBLISH {
                next_slow = Instant::now();
                self.publish_slow(socket);
            }
            self.naps = naps_before + pacer.naps();
        }
        // Drain: the XSKMAP slot is cleared first, so the ring only shrinks.
        while !self.control.unregistered.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(DRAIN_GRACE);
        while matches!(self.receive_batch(socket, view, tokens), Pass::Busy(_)) {}
        SocketEnd::Stop
    }

    fn report(&mut self, bind_mode: BindMode) -> QueueReport {
        self.stage.finish_fragments();
        self.stage.publish();
        QueueReport {
            queue: self.queue,
            cpu: self.cpu,
            bind_mode,
            stats: *self.stage.stats_mut(),
            xsk: self.xsk_before,
            wakeups: self.wakeups_before,
            rx_policy: self.policy.0,
            rx_policy_reason: self.policy.1.clone(),
            naps: self.naps,
            kicks: self.kicks_before,
            vnis: *self.stage.vnis(),
        }
    }

    /// Processes one batch.
    #[inline]
    fn receive_batch(
        &mut self,
        socket: &mut RxSocket,
        view: &vxdecap_xsk::UmemView,
        tokens: &mut Vec<RxFrame>,
    ) -> Pass {
        // Frames every analyzer is done with go back to the fill ring first.
        self.stage.reclaim(|frames| socket.recycle(frames));
        let room = self.stage.intake(self.batch);
        if room == 0 {
            return Pass::Blocked;
        }
        if socket.receive(tokens, room) == 0 {
            // Busy polling: run the queue's receive work here, then look again.
            if !self.idle.busy_poll || {
                socket.kick();
                socket.receive(tokens, room) == 0
            } {
                self.stage.stats_mut().add(StageCounter::EmptyPolls, 1);
                return Pass::Empty;
            }
        }
        // One clock read per batch converts every frame's XDP receive time.
        let clock = RxClock::read();
        let frames = tokens.len();
        for frame in tokens.drain(..) {
            self.stage.handle_leased(frame, view, &clock);
        }
        self.stage.expire_fragments(clock.now_ns);
        self.stage.flush();
        if let Some(inline) = self.inline.as_mut() {
            inline.drain();
        }
        socket.recycle(self.stage.to_recycle());
        self.stage.stats_mut().add(StageCounter::Batches, 1);
        self.stage.publish();
        Pass::Busy(frames)
    }

    /// Publishes the VNI table and the kernel's socket counters (over every
    /// socket this worker had).
    fn publish_slow(&self, socket: &RxSocket) {
        self.stage.publish_vnis();
        if let Ok(xsk) = socket.statistics() {
            self.stage.shared_slow().publish_xsk(&{
                let mut total = self.xsk_before;
                total.merge(&xsk);
                total
            });
        }
    }
}
