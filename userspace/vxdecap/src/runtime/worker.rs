//! One rx queue's live worker, on its own pinned thread: it opens the
//! queue's AF_XDP socket, runs the batch loop over it
//! ([`crate::datapath::worker`]), drains the ring at stop, and opens a new
//! socket when the interface comes back after going away.

use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use vxdecap_xsk::{BindMode, RxFrame, RxSocket, SocketConfig, XskError, XskStatistics};

use crate::datapath::idle::{IdlePolicy, RxPolicy};
use crate::datapath::source::{SocketSettings, SocketSource};
use crate::datapath::worker::{BatchLoop, LoopEnd};
use crate::report::summary::QueueReport;
use crate::sys::cpu::pin_current_thread;

/// After the XSKMAP is cleared, frames already on their way still land.
const DRAIN_GRACE: Duration = Duration::from_millis(20);

/// State shared by the main thread and the workers.
pub(crate) struct Control {
    pub(crate) stop: Arc<AtomicBool>,
    /// The XSKMAP was cleared at shutdown: the rings can only shrink now.
    pub(crate) unregistered: AtomicBool,
    /// The named interface's current name.
    pub(crate) interface: Mutex<String>,
    /// Each receive device's name and epoch (one entry for a capture on
    /// one device; the named device, its VF or its ports for a stack).
    pub(crate) devices: Vec<DeviceControl>,
    /// Per worker: the kernel's receive work can run on its core (see
    /// [`ReceiveWork`](crate::runtime::receive_work::ReceiveWork)); checked by the main thread once a second.
    pub(crate) shared_core: Vec<AtomicBool>,
}

/// One receive device, as its workers follow it.
pub(crate) struct DeviceControl {
    /// Its current name (a VF may come back renamed). Read by workers only
    /// when they (re)open a socket.
    pub(crate) name: Mutex<String>,
    /// Even: the device is there and its workers keep a socket on it; odd:
    /// it went away and they close theirs. Each change is a new epoch.
    pub(crate) epoch: AtomicU64,
}

impl DeviceControl {
    /// A device's control; an absent one (a VF in servicing when the
    /// capture starts) begins in an odd epoch: its workers wait for it.
    pub(crate) fn new(name: &str, present: bool) -> Self {
        Self {
            name: Mutex::new(name.to_owned()),
            epoch: AtomicU64::new(u64::from(!present)),
        }
    }

    /// Gone (odd epoch: sockets close) or back (even: they reopen), once.
    pub(crate) fn set_present(&self, present: bool) {
        let epoch = self.epoch.load(Ordering::Acquire);
        if (epoch % 2 == 0) != present {
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// A worker's report that its socket for `epoch` is open (or not).
pub(crate) struct SocketReady {
    /// The worker's index.
    pub(crate) worker: usize,
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
    /// Its receive device, in [`Control::devices`].
    pub(crate) device: usize,
    pub(crate) queue: u32,
    pub(crate) cpu: Option<usize>,
    pub(crate) socket_config: SocketConfig,
    pub(crate) batch: usize,
    /// Wait for slow analyzers instead of dropping frames for them.
    pub(crate) lossless: bool,
    /// The stage, the inline analyzers and the loop that feeds them.
    pub(crate) work: BatchLoop,
    pub(crate) control: Arc<Control>,
    /// The receive policy asked for (resolved per socket).
    pub(crate) rx_policy: RxPolicy,
    /// How long [`RxPolicy::Spin`] spins on an empty ring.
    pub(crate) spin: Duration,
    /// What the sockets did, for the report.
    pub(crate) history: SocketHistory,
}

/// What a worker's sockets did, over all of them (the interface may go away
/// and come back).
#[derive(Debug, Default)]
pub(crate) struct SocketHistory {
    /// The bind mode of the last socket.
    bind_mode: Option<BindMode>,
    /// What to do on an empty ring, for the current socket.
    idle: Option<IdlePolicy>,
    /// The policy of the current socket, and why.
    policy: Option<(RxPolicy, String)>,
    /// Naps taken, NAPI kicks and need-wakeup syscalls made, of the sockets
    /// closed so far.
    naps: u64,
    kicks: u64,
    wakeups: u64,
    /// Socket counters of the sockets closed so far.
    xsk: XskStatistics,
}

impl RxQueueWorker {
    /// Captures until the capture stops; the queue's report, or `None` when
    /// not even the first socket could be opened.
    pub(crate) fn run(mut self, setup: mpsc::Sender<SocketReady>) -> Option<QueueReport> {
        let captured = self.capture(&setup);
        // The last batches go out; inline analyzers finish and report.
        let stage = self.work.finish();
        let bind_mode = self.history.bind_mode.filter(|_| captured)?;
        let (rx_policy, rx_policy_reason) = self
            .history
            .policy
            .unwrap_or((RxPolicy::Sleep, String::new()));
        let device = if self.control.devices.len() > 1 {
            self.control.devices[self.device]
                .name
                .lock()
                .map(|n| n.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Some(QueueReport {
            device,
            queue: self.queue,
            cpu: self.cpu,
            bind_mode,
            stats: *stage.stats(),
            xsk: self.history.xsk,
            wakeups: self.history.wakeups,
            rx_policy,
            rx_policy_reason,
            naps: self.history.naps,
            kicks: self.history.kicks,
            vnis: *stage.vnis(),
        })
    }

    /// Opens a socket and serves it, again after the interface comes back;
    /// false when the first socket could not be opened.
    fn capture(&mut self, setup: &mpsc::Sender<SocketReady>) -> bool {
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
        // Failed opens in this epoch (a VF that came back before its queues).
        let mut attempts = 0u32;
        let mut attempts_epoch = u64::MAX;
        loop {
            let epoch = self.control.devices[self.device]
                .epoch
                .load(Ordering::Acquire);
            if first && epoch % 2 == 1 {
                // The device is away at the start: wait for it.
                first = false;
                if !self.wait_for_new_epoch(epoch) {
                    return true;
                }
                continue;
            }
            if !first {
                // After `-Z`, opening a socket needs the kept capabilities.
                let _ = crate::runtime::privs::raise();
            }
            if attempts_epoch != epoch {
                (attempts, attempts_epoch) = (0, epoch);
            }
            let end = match self.open(epoch, setup, attempts == 0) {
                Some(mut socket) => {
                    first = false;
                    self.serve(&mut socket, &mut tokens, epoch)
                }
                None if first => return false,
                None => {
                    attempts += 1;
                    if self.wait_to_retry(epoch, attempts) {
                        continue;
                    }
                    LoopEnd::Gone
                }
            };
            if end == LoopEnd::Stop || !self.wait_for_new_epoch(epoch) {
                return true;
            }
        }
    }

    /// Opens the queue's socket on the interface as it is named now, chooses
    /// its receive policy, and tells the main thread (which registers it).
    /// A failure is reported only when `report` (the first attempt of an
    /// epoch): the main thread says it once, the worker keeps trying.
    fn open(
        &mut self,
        epoch: u64,
        setup: &mpsc::Sender<SocketReady>,
        report: bool,
    ) -> Option<RxSocket> {
        let interface = self.control.devices[self.device]
            .name
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default();
        let mut socket =
            match RxSocket::open(&interface, self.queue, &self.socket_config, self.batch) {
                Ok(socket) => socket,
                Err(e) => {
                    if !report {
                        return None;
                    }
                    let _ = setup.send(SocketReady {
                        worker: usize::from(self.index),
                        queue: self.queue,
                        epoch,
                        result: Err(e),
                    });
                    return None;
                }
            };
        let (policy, reason) = self.choose_policy(&mut socket);
        self.history.bind_mode = Some(socket.bind_mode());
        let _ = setup.send(SocketReady {
            worker: usize::from(self.index),
            queue: self.queue,
            epoch,
            result: Ok(BoundSocket {
                fd: socket.as_raw_fd(),
                mode: socket.bind_mode(),
                policy,
                reason,
            }),
        });
        Some(socket)
    }

    /// Resolves the receive policy for a socket just opened, turning on
    /// busy polling when it applies (and falling back to sleeping when the
    /// socket refuses it).
    fn choose_policy(&mut self, socket: &mut RxSocket) -> (RxPolicy, String) {
        let (mut policy, reason) = self.rx_policy.resolve(socket.bind_mode(), socket.napi_id());
        let mut reason = reason.to_owned();
        if policy == RxPolicy::BusyPoll {
            if let Err(e) = socket.enable_busy_poll(&vxdecap_xsk::BusyPoll::default()) {
                policy = RxPolicy::Sleep;
                reason = format!("busy polling refused ({e}); sleeping on an empty ring instead");
            }
        }
        self.history.idle = Some(IdlePolicy::of(policy, self.spin));
        self.history.policy = Some((policy, reason.clone()));
        (policy, reason)
    }

    /// After a failed open while the device is there (even `epoch`): waits
    /// 200 ms, doubling with each attempt up to 5 s, and says whether to
    /// try again (false: the epoch changed or the capture stops).
    fn wait_to_retry(&self, epoch: u64, attempts: u32) -> bool {
        if epoch % 2 != 0 {
            return false;
        }
        let delay = Duration::from_millis(200)
            .saturating_mul(1 << attempts.min(5))
            .min(Duration::from_secs(5));
        let until = std::time::Instant::now() + delay;
        while std::time::Instant::now() < until {
            let now = self.control.devices[self.device]
                .epoch
                .load(Ordering::Acquire);
            if self.control.stop.load(Ordering::Relaxed) || now != epoch {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Waits until the interface is back (a new even epoch); false when the
    /// capture stops first. Meanwhile the old socket's UMEM is let go of as
    /// the analyzers give its frames back, so the socket closes.
    fn wait_for_new_epoch(&mut self, old: u64) -> bool {
        loop {
            self.work.stage_mut().release_umem();
            if self.control.stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = self.control.devices[self.device]
                .epoch
                .load(Ordering::Acquire);
            if now != old && now % 2 == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The batch loop over one socket, until the capture stops (then the
    /// ring is drained) or the interface goes away; the socket closes.
    fn serve(&mut self, socket: &mut RxSocket, tokens: &mut Vec<RxFrame>, epoch: u64) -> LoopEnd {
        let control = Arc::clone(&self.control);
        let settings = SocketSettings {
            batch: self.batch,
            worker: self.index,
            lossless: self.lossless,
            idle: self
                .history
                .idle
                .unwrap_or_else(|| IdlePolicy::of(RxPolicy::Sleep, Duration::ZERO)),
            epoch: (epoch, &control.devices[self.device].epoch),
            shared_core: &control.shared_core[usize::from(self.index)],
            xsk_before: self.history.xsk,
        };
        let mut source = SocketSource::new(socket, tokens, settings);
        let end = self.work.run(&mut source, &control.stop);
        if end == LoopEnd::Stop {
            // Drain: the XSKMAP slot is cleared first, so the ring only shrinks.
            while !control.unregistered.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(DRAIN_GRACE);
            self.work.drain(&mut source);
        } else if end == LoopEnd::Gone {
            // The device went away: the main thread stopped steering to it
            // before it said so, but frames the program redirected just
            // before may still land; read them before the socket closes.
            std::thread::sleep(DRAIN_GRACE);
            self.work.drain(&mut source);
        }
        self.work.stage_mut().publish();
        source.publish_slow(self.work.stage());
        self.history.naps += source.naps();
        drop(source);
        self.history
            .xsk
            .merge(&socket.statistics().unwrap_or_default());
        self.history.wakeups += socket.wakeups();
        self.history.kicks += socket.kicks();
        // Leased frames still with the analyzers keep the UMEM mapped (their
        // batches hold a view); the socket closes when the caller drops it.
        end
    }
}
