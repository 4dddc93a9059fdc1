//! Live capture: XDP steering → one AF_XDP socket and pinned worker per rx
//! queue → one thread per analyzer, fed by every worker (fan-out).
//!
//! Start-up order keeps a failed start from leaving anything behind: the
//! output is opened first (by the caller), then the program is attached
//! with an empty XSKMAP (everything still goes to the kernel), then the
//! sockets are bound and registered; any failure drops the link.
//! Shutdown clears the XSKMAP first, so matching traffic goes back to the
//! kernel, then lets each worker drain its RX ring, so every frame that
//! reached a socket is accounted for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use vxdecap_wire::reassembly::Reassembler;
use vxdecap_wire::PortSet;
use vxdecap_xsk::{BindMode, SocketConfig};

use crate::analyzer::{Analyzer, MAX_ANALYZERS};
use crate::datapath::analyzers::{spawn_analyzers, AnalyzerThread, InlineAnalyzers, Latency};
use crate::datapath::idle::RxPolicy;
use crate::datapath::queue::{fan_out, BatchReceiver, BatchSender};
use crate::datapath::stage::{DecapStage, SharedAllowlist};
use crate::datapath::worker::BatchLoop;
use crate::report::metrics::{Metrics, QueueInfo};
use crate::report::stats::{SharedSlow, SharedStats};
use crate::report::summary::{QueueReport, Summary};
use crate::report::CONSOLE;
use crate::runtime::config::{CaptureConfig, QueueSelection};
use crate::runtime::cpus::{analyzer_cpus, resolve_cpus};
use crate::runtime::error::CaptureError;
use crate::runtime::hotplug::LinkWatcher;
use crate::runtime::preflight::{
    check_config, effective_allowlist, metrics_error, resolve_queues, SetupError,
};
use crate::runtime::stack::{
    attach_stack, discover, Attach, ReceiveDevice, StackDevice, StackRole,
};
use crate::runtime::supervisor::{defer_interrupts, Supervisor};
use crate::runtime::umem::frame_size_for_mtu;
use crate::runtime::worker::{
    BoundSocket, Control, DeviceControl, RxQueueWorker, SocketHistory, SocketReady,
};
use crate::steer::allow::Allowlist;
use crate::steer::{AttachMode, SteerError, Steering, MAX_QUEUES};

/// Runs a live capture until `stop` is raised, the count or duration is
/// reached, or an output fails. Each of `analyzers` (at most
/// [`MAX_ANALYZERS`]) runs on its own thread and sees every inner frame.
pub fn run_capture(
    config: &CaptureConfig,
    analyzers: Vec<Box<dyn Analyzer>>,
    stop: Arc<AtomicBool>,
) -> Result<Summary, CaptureError> {
    check_config(config)?;
    if analyzers.is_empty() || analyzers.len() > MAX_ANALYZERS {
        return Err(CaptureError::Analyzers(analyzers.len()));
    }
    // Before anything is said or attached: a SIGHUP that comes as soon as
    // "listening on" is printed must not end the capture.
    let reload = Reload::register()?;
    // What `vxdecap doctor` would fail or warn about, said before attaching.
    crate::doctor::warn_at_start(config);
    let metrics_listeners = config
        .metrics
        .as_ref()
        .map(|endpoint| {
            crate::runtime::metrics_server::bind(endpoint).map_err(|e| metrics_error(endpoint, e))
        })
        .transpose()?;
    if let Some(warning) = crate::runtime::stack::vf_named_warning(config) {
        tracing::warn!(target: CONSOLE, "{warning}");
    }
    let mut layout = Layout::of(config, analyzers.len())?;
    let (mut steering, allow, attach_mode) = attach(config, &mut layout.stack)?;
    // The workers check reassembled datagrams against the same lists.
    let shared_allow: SharedAllowlist = Arc::new(arc_swap::ArcSwap::from_pointee(allow.clone()));
    let mut workers = Workers::start(config, &layout, analyzers, &stop, &shared_allow)?;
    let bound = workers.register(&mut steering, &layout)?;
    announce(
        config,
        &layout,
        attach_mode,
        &bound,
        workers.inline.is_some(),
    );
    let threads = workers.analyzer_threads(config, &layout, &stop)?;
    let metrics = Arc::new(metrics_of(config, &layout, &bound, &workers, &threads));
    let server = match metrics_listeners {
        Some(listeners) => Some(serve_metrics(listeners, &metrics, &stop)?),
        None => None,
    };

    let control = Arc::clone(&workers.control);
    let setup = workers.take_setup();
    let mut supervisor = Supervisor::new(
        config,
        &control,
        steering,
        setup,
        (allow, shared_allow),
        layout.cpus.clone(),
    );
    supervisor.metrics_restarts = metrics.restarts();
    supervisor.bound_queues = bound.iter().map(|(worker, _)| *worker).collect();
    let slots: Vec<u32> = (0..layout.workers.len()).map(|w| layout.slot(w)).collect();
    let is_stack = layout.stack.len() > 1;
    supervisor.workers = layout
        .workers
        .iter()
        .map(|&(d, _)| d)
        .zip(slots.iter().copied())
        .collect();
    supervisor.stack = std::mem::take(&mut layout.stack);
    // Busy polling keeps the device's interrupts off only with these set.
    if bound.iter().any(|(_, b)| b.policy == RxPolicy::BusyPoll) {
        supervisor.deferral = defer_interrupts(&config.interface);
    }
    let fatal = supervise(config, &mut supervisor, &metrics, &stop, &reload);

    // Stop order: no new frames to the sockets, drain the rings, then the analyzers.
    stop.store(true, Ordering::Relaxed);
    if let Some(steering) = supervisor.steering.as_mut() {
        for &slot in &slots {
            if let Err(e) = steering.unregister_socket(slot) {
                tracing::warn!(slot, error = %e, "cannot clear the XSKMAP slot");
            }
        }
    }
    let reports = workers.join();
    let analyzer_reports = threads
        .into_iter()
        .map(|t| (t.name.clone(), t.join()))
        .collect();
    let xdp = supervisor.xdp_totals();
    let restarts = supervisor.restarts;
    let device_events = std::mem::take(&mut supervisor.device_events);
    let devices = supervisor.device_rows();
    drop(supervisor);
    if let Some(server) = server {
        let _ = server.join();
    }
    if let Some(e) = fatal {
        return Err(e);
    }
    let mut summary = Summary::live(
        &config.interface,
        &config.output_name,
        attach_mode,
        reports,
        xdp,
        analyzer_reports,
    );
    summary.interface_restarts = restarts;
    summary.device_events = device_events;
    if is_stack {
        summary.devices = devices;
    }
    Ok(summary)
}

/// Loads and attaches the program with its allowlists. Attached first:
/// with an empty XSKMAP it passes everything to the kernel, so nothing
/// changes for the interface until a socket is registered, and a busy
/// interface is refused before any socket exists.
fn attach(
    config: &CaptureConfig,
    stack: &mut [StackDevice],
) -> Result<(Steering, Allowlist, AttachMode), CaptureError> {
    let mut steering = Steering::load_with(
        &config.interface,
        &config.ports,
        config.reassembly.is_some(),
    )?;
    let allow = effective_allowlist(config).map_err(SetupError::from)?;
    steering.set_allowlist(&allow)?;
    let mode = attach_stack(&mut steering, config, stack)?;
    if !allow.is_open() {
        tracing::info!(target: CONSOLE, "allowlist: {allow}");
    }
    Ok((steering, allow, mode))
}

/// Where each worker and analyzer runs, and the sizes they share.
struct Layout {
    /// The receive devices: the named one alone, or its stack.
    stack: Vec<StackDevice>,
    /// Each worker's (device in `stack`, rx queue).
    workers: Vec<(usize, u32)>,
    /// Each worker's rx queue, in worker order.
    queues: Vec<u32>,
    /// Each worker's CPU, in queue order.
    cpus: Vec<Option<usize>>,
    /// Each analyzer thread's CPU.
    analyzer_cpus: Vec<Option<usize>>,
    /// Socket and UMEM sizes, the frame size fitted to the MTU.
    socket: SocketConfig,
    /// Most frames a worker leases to the analyzers at once.
    lease_budget: usize,
    /// Batches each worker owns.
    pool: usize,
}

impl Layout {
    fn of(config: &CaptureConfig, analyzers: usize) -> Result<Self, CaptureError> {
        let (stack, workers) = stack_layout(config)?;
        let queues: Vec<u32> = workers.iter().map(|&(_, q)| q).collect();
        let cpus = resolve_cpus(config, &queues)?;
        // Each analyzer gets a core of its own when there is one, else it shares
        // the last worker's. (Tried: a lower priority for a sharing analyzer and
        // no busy-polling for its worker; the benchmark delivered less.)
        let analyzer_cpus = analyzer_cpus(&cpus, analyzers);
        let socket = SocketConfig {
            frame_size: frame_size_for_mtu(config),
            bind: config.mode.bind(),
            ..config.socket
        };
        // Leases are bounded so the fill ring always keeps a full RX ring's
        // worth of frames: a slow analyzer then shows up as
        // analyzer_backpressure, not as the kernel finding the fill ring empty.
        let frame_count = config.socket.frame_count as usize;
        let lease_budget = frame_count
            .saturating_sub(config.socket.rx_ring as usize)
            .max(frame_count / 2);
        Ok(Self {
            stack,
            workers,
            queues,
            cpus,
            analyzer_cpus,
            socket,
            lease_budget,
            pool: (lease_budget / 4).clamp(2, 4096),
        })
    }

    /// Worker `index`'s XSKMAP slot.
    fn slot(&self, index: usize) -> u32 {
        let (device, queue) = self.workers[index];
        self.stack[device].base + queue
    }

    /// Run to completion: with one worker and no core of their own, cheap
    /// analyzers run in the worker's thread instead of a thread that would
    /// compete with it (and with the kernel's receive work) for its core.
    fn runs_inline(&self, analyzers: &[Box<dyn Analyzer>]) -> bool {
        self.queues.len() == 1
            && self.analyzer_cpus.iter().all(|&c| c == self.cpus[0])
            && analyzers.iter().all(Analyzer::can_run_inline)
    }

    /// The CPU of worker `index`, as the start-up line says it.
    fn cpu_text(&self, index: usize) -> String {
        self.cpus[index].map_or_else(|| "unpinned".to_owned(), |c| format!("cpu {c}"))
    }

    /// Worker `index`'s name in logs: its queue, prefixed by its device in a stack.
    fn worker_label(&self, index: usize) -> String {
        let (device, queue) = self.workers[index];
        if self.stack.len() > 1 {
            format!("{} queue {queue}", self.stack[device].device.name)
        } else {
            format!("queue {queue}")
        }
    }
}

/// The receive devices, and each worker's (device, rx queue).
type StackLayout = (Vec<StackDevice>, Vec<(usize, u32)>);

/// The receive devices and one worker per (device, queue): the named
/// device's selected queues when it is alone; every queue of every device
/// of a stack (restricted to `--queues` when given).
fn stack_layout(config: &CaptureConfig) -> Result<StackLayout, CaptureError> {
    let found = discover(
        &config.interface,
        config.mode == crate::runtime::config::CaptureMode::Skb,
    );
    let single = found.len() <= 1 && found.first().is_none_or(|d| d.role == StackRole::Named);
    if single {
        let queues = resolve_queues(config)?;
        let device = found.into_iter().next().unwrap_or_else(|| ReceiveDevice {
            name: config.interface.clone(),
            ifindex: 0,
            role: StackRole::Named,
            driver: None,
            queues: queues.len() as u32,
            attach: Attach::Here,
        });
        let stack = vec![StackDevice {
            device,
            base: 0,
            capacity: MAX_QUEUES,
            link: None,
            present: true,
        }];
        return Ok((stack, queues.into_iter().map(|q| (0, q)).collect()));
    }
    if found.len() > crate::steer::MAX_DEVICES {
        return Err(SteerError::Map {
            map: "vxd_devices",
            detail: format!(
                "{} receive devices under {}: vxdecap serves at most {}",
                found.len(),
                config.interface,
                crate::steer::MAX_DEVICES
            ),
        }
        .into());
    }
    let mut stack = Vec::new();
    let mut workers = Vec::new();
    let mut base = 0u32;
    for (index, device) in found.into_iter().enumerate() {
        let capacity = device.queues.max(1);
        if base + capacity > MAX_QUEUES {
            return Err(SteerError::QueueRange(base + capacity).into());
        }
        for queue in 0..capacity {
            let selected = match &config.queues {
                QueueSelection::All => true,
                QueueSelection::List(list) => list.contains(&queue),
            };
            if selected {
                workers.push((index, queue));
            }
        }
        stack.push(StackDevice {
            present: device.ifindex != 0,
            device,
            base,
            capacity,
            link: None,
        });
        base += capacity;
    }
    if workers.is_empty() {
        return Err(SetupError::NoQueues.into());
    }
    Ok((stack, workers))
}

/// Analyzers to start on threads of their own, with their lanes.
type PendingAnalyzers = (Vec<BatchReceiver>, Vec<Box<dyn Analyzer>>);

/// The worker threads and what they share with the main thread.
struct Workers {
    control: Arc<Control>,
    handles: Vec<JoinHandle<Option<QueueReport>>>,
    /// The workers' reports of the sockets they open (taken by the supervisor).
    setup: Option<mpsc::Receiver<SocketReady>>,
    /// Each worker's published counters and VNI table.
    published: Vec<(Arc<SharedStats>, Arc<SharedSlow>)>,
    /// The analyzers' handles when they run in the (one) worker's thread.
    inline: Option<Vec<AnalyzerThread>>,
    /// Otherwise the analyzers, with their lanes, for threads of their own.
    pending: Option<PendingAnalyzers>,
}

impl Workers {
    /// Starts one worker per queue; each opens its own socket (memory local
    /// to its CPU) and reports back.
    fn start(
        config: &CaptureConfig,
        layout: &Layout,
        analyzers: Vec<Box<dyn Analyzer>>,
        stop: &Arc<AtomicBool>,
        shared_allow: &SharedAllowlist,
    ) -> Result<Self, CaptureError> {
        let (senders, receivers) = fan_out(layout.queues.len(), analyzers.len(), layout.pool);
        let run_inline = layout.runs_inline(&analyzers);
        let (mut workers, mut inline_analyzers) = if run_inline {
            let (handles, inline) =
                InlineAnalyzers::new(receivers, analyzers, config.count, stop, Latency::Measure);
            (
                Self::new(config, layout, stop, Some(handles), None),
                Some(inline),
            )
        } else {
            let pending = Some((receivers, analyzers));
            (Self::new(config, layout, stop, None, pending), None)
        };
        let (setup_tx, setup_rx) = mpsc::channel();
        workers.setup = Some(setup_rx);
        for (index, sender) in senders.into_iter().enumerate() {
            let stage = worker_stage(
                config,
                layout,
                index,
                sender,
                (shared_allow, stop),
                run_inline,
            )?;
            workers
                .published
                .push((stage.shared_stats(), stage.shared_slow()));
            let work = BatchLoop::new(stage, config.batch, inline_analyzers.take());
            let worker = workers.worker(config, layout, index, work);
            let setup_tx = setup_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("vxdecap-rx{index}"))
                .spawn(move || worker.run(setup_tx))
                .map_err(|source| CaptureError::Thread {
                    what: "a worker thread",
                    source,
                })?;
            workers.handles.push(handle);
        }
        Ok(workers)
    }

    fn new(
        config: &CaptureConfig,
        layout: &Layout,
        stop: &Arc<AtomicBool>,
        inline: Option<Vec<AnalyzerThread>>,
        pending: Option<PendingAnalyzers>,
    ) -> Self {
        let control = Arc::new(Control {
            stop: Arc::clone(stop),
            unregistered: AtomicBool::new(false),
            interface: Mutex::new(config.interface.clone()),
            devices: layout
                .stack
                .iter()
                .map(|d| DeviceControl::new(&d.device.name, d.present))
                .collect(),
            shared_core: layout
                .queues
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
        });
        Self {
            control,
            handles: Vec::new(),
            setup: None,
            published: Vec::new(),
            inline,
            pending,
        }
    }

    /// The worker of queue number `index` in the layout.
    fn worker(
        &self,
        config: &CaptureConfig,
        layout: &Layout,
        index: usize,
        work: BatchLoop,
    ) -> RxQueueWorker {
        let cpu = layout.cpus[index];
        RxQueueWorker {
            index: index as u16,
            device: layout.workers[index].0,
            queue: layout.queues[index],
            cpu,
            socket_config: SocketConfig {
                bind: layout.stack[layout.workers[index].0]
                    .device
                    .bind(layout.socket.bind),
                ..layout.socket
            },
            batch: config.batch,
            lossless: config.lossless,
            work,
            control: Arc::clone(&self.control),
            rx_policy: config.rx_policy,
            // Spinning only pays on a core no other worker needs.
            spin: if layout.cpus.iter().filter(|&&c| c == cpu).count() > 1 {
                Duration::ZERO
            } else {
                config.idle_spin
            },
            history: SocketHistory::default(),
        }
    }

    /// Waits for every worker's socket and puts it in the XSKMAP, by queue.
    /// On any failure the workers stop and the first error is returned
    /// (dropping `steering` then detaches the program: nothing is left).
    fn register(
        &mut self,
        steering: &mut Steering,
        layout: &Layout,
    ) -> Result<Vec<(usize, BoundSocket)>, CaptureError> {
        let mut bound = Vec::new();
        let mut error = None;
        let setup = self.setup.as_ref().expect("the workers' setup channel");
        // Workers of a device away at the start (a VF in servicing) report
        // when it comes.
        let expected = layout
            .workers
            .iter()
            .filter(|(d, _)| layout.stack[*d].present)
            .count();
        for _ in 0..expected {
            match setup.recv() {
                Ok(SocketReady {
                    worker,
                    result: Ok(socket),
                    ..
                }) => {
                    if let Err(e) = steering.register_socket(layout.slot(worker), socket.fd) {
                        error.get_or_insert_with(|| CaptureError::from(e));
                    }
                    bound.push((worker, socket));
                }
                Ok(SocketReady { result: Err(e), .. }) => {
                    error.get_or_insert_with(|| CaptureError::from(e));
                }
                Err(_) => {
                    error.get_or_insert(CaptureError::Panicked("a worker thread, during setup,"));
                }
            }
        }
        if let Some(e) = error {
            self.control.stop.store(true, Ordering::Relaxed);
            self.control.unregistered.store(true, Ordering::Relaxed);
            for handle in self.handles.drain(..) {
                let _ = handle.join();
            }
            return Err(e);
        }
        bound.sort_unstable_by_key(|(q, _)| *q);
        Ok(bound)
    }

    /// The analyzers: in the worker's thread, or started on threads of
    /// their own, pinned as the layout says.
    fn analyzer_threads(
        &mut self,
        config: &CaptureConfig,
        layout: &Layout,
        stop: &Arc<AtomicBool>,
    ) -> Result<Vec<AnalyzerThread>, CaptureError> {
        if let Some(inline) = self.inline.take() {
            return Ok(inline);
        }
        let (receivers, analyzers) = self.pending.take().unwrap_or_default();
        spawn_analyzers(
            receivers,
            analyzers,
            config.count,
            stop,
            Latency::Measure,
            &layout.analyzer_cpus,
        )
        .map_err(|source| CaptureError::Thread {
            what: "the analyzer threads",
            source,
        })
    }

    fn take_setup(&mut self) -> mpsc::Receiver<SocketReady> {
        self.setup.take().expect("the workers' setup channel")
    }

    /// Lets the workers drain their rings (the XSKMAP is clear) and
    /// collects their reports, by queue.
    fn join(self) -> Vec<QueueReport> {
        self.control.unregistered.store(true, Ordering::Relaxed);
        let mut reports = Vec::new();
        for handle in self.handles {
            match handle.join() {
                Ok(Some(report)) => reports.push(report),
                Ok(None) => {}
                Err(_) => tracing::error!("a worker thread panicked"),
            }
        }
        reports.sort_by_key(|r| r.queue);
        reports
    }
}

/// The stage of worker `index`: its lanes, lease budget and batch size,
/// and the reassembler and allowlists (allocated once, here, like
/// everything the batch loop uses).
fn worker_stage(
    config: &CaptureConfig,
    layout: &Layout,
    index: usize,
    sender: BatchSender,
    (shared_allow, stop): (&SharedAllowlist, &Arc<AtomicBool>),
    run_inline: bool,
) -> Result<DecapStage, CaptureError> {
    let stage = DecapStage::new(
        config.ports,
        layout.queues[index] as u16,
        sender,
        layout.lease_budget,
        config.batch,
        Arc::clone(stop),
    );
    let mut stage = match config.reassembly {
        Some(r) => stage
            .with_reassembler(Reassembler::new(r).map_err(SetupError::Reassembly)?)
            .with_allowlist(Arc::clone(shared_allow)),
        None => stage,
    };
    let cpu = layout.cpus[index];
    stage
        .set_yield_after_batch(!run_inline && cpu.is_some() && layout.analyzer_cpus.contains(&cpu));
    Ok(stage)
}

/// The start-up lines: the interface, ports, modes and sockets, each
/// queue's receive policy, where the analyzers run.
fn announce(
    config: &CaptureConfig,
    layout: &Layout,
    attach_mode: AttachMode,
    bound: &[(usize, BoundSocket)],
    run_inline: bool,
) {
    let sockets: Vec<String> = bound
        .iter()
        .map(|(w, b)| {
            format!(
                "{} {} {} {}",
                layout.worker_label(*w),
                b.mode,
                layout.cpu_text(*w),
                b.policy
            )
        })
        .collect();
    tracing::info!(
        interface = %config.interface,
        xdp = %attach_mode,
        sockets = %sockets.join(", "),
        "capture started"
    );
    tracing::info!(
        target: CONSOLE,
        "listening on {}, UDP port(s) {}{}, XDP {} mode, AF_XDP {} ({} queue(s)), link-type EN10MB (Ethernet) inner frames",
        config.interface,
        join_ports(&config.ports),
        config
            .cloud
            .map_or(String::new(), |c| format!(" (cloud preset {c})")),
        attach_mode,
        sockets.join(", "),
        layout.queues.len()
    );
    for (worker, socket) in bound {
        tracing::info!(
            target: CONSOLE,
            "{} receive policy {}: {}",
            layout.worker_label(*worker),
            socket.policy,
            socket.reason
        );
    }
    if run_inline {
        tracing::info!(target: CONSOLE, "analyzers run in the worker's thread, after each batch (one queue, and no core of their own)");
    }
}

/// What a scrape reports: every queue's counters and every analyzer's progress.
fn metrics_of(
    config: &CaptureConfig,
    layout: &Layout,
    bound: &[(usize, BoundSocket)],
    workers: &Workers,
    threads: &[AnalyzerThread],
) -> Metrics {
    let socket = |worker: usize| bound.iter().find(|(w, _)| *w == worker).map(|(_, b)| b);
    let queues = layout
        .queues
        .iter()
        .zip(&workers.published)
        .enumerate()
        .map(|(i, (&queue, (stage, slow)))| QueueInfo {
            device: if layout.stack.len() > 1 {
                layout.stack[layout.workers[i].0].device.name.clone()
            } else {
                String::new()
            },
            queue,
            cpu: layout.cpus[i],
            bind_mode: socket(i).map_or(BindMode::Copy, |b| b.mode),
            rx_policy: socket(i).map_or(RxPolicy::Sleep, |b| b.policy),
            stage: Arc::clone(stage),
            slow: Arc::clone(slow),
        })
        .collect();
    let analyzers = threads
        .iter()
        .map(|t| (t.name.clone(), Arc::clone(&t.progress)))
        .collect();
    Metrics::new(&config.interface, queues, analyzers)
}

/// Serves `metrics` on the listeners bound at the start.
fn serve_metrics(
    listeners: Vec<std::net::TcpListener>,
    metrics: &Arc<Metrics>,
    stop: &Arc<AtomicBool>,
) -> Result<JoinHandle<()>, CaptureError> {
    let addrs: Vec<_> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let server =
        crate::runtime::metrics_server::serve(listeners, Arc::clone(metrics), Arc::clone(stop))
            .map_err(|source| CaptureError::Thread {
                what: "the metrics thread",
                source,
            })?;
    for addr in addrs {
        tracing::info!(target: CONSOLE, "metrics at http://{addr}/metrics");
    }
    Ok(server)
}

/// The main thread while the capture runs: drops root for `-Z`, reloads
/// the allow file on SIGHUP, follows the interface through link events,
/// until the capture is to stop. Returns a failure that stopped it early
/// (after which it still stops cleanly).
fn supervise(
    config: &CaptureConfig,
    supervisor: &mut Supervisor<'_>,
    metrics: &Metrics,
    stop: &AtomicBool,
    reload: &Reload,
) -> Option<CaptureError> {
    // Link events: the interface may go away and come back (Azure host servicing).
    let watcher = match LinkWatcher::start() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch link events; polling the interface instead");
            None
        }
    };
    let mut fatal = None;
    if let Some(user) = &config.run_as {
        // Sockets, program, outputs and the metrics listener are open.
        match crate::runtime::privs::drop_to(user) {
            Ok(()) => tracing::info!(target: CONSOLE, "running as {user}"),
            Err(source) => {
                // Stop cleanly (detach, close outputs), then report the failure.
                stop.store(true, Ordering::Relaxed);
                fatal = Some(CaptureError::Privileges {
                    user: user.clone(),
                    source,
                });
            }
        }
    }
    crate::runtime::notify::ready(&config.interface, supervisor.worker_cpus.len());
    supervisor.wait_for_end(metrics, &reload.flag, watcher.as_ref());
    metrics.set_unhealthy(Some(
        "stopping: draining the rings and flushing the outputs".to_owned(),
    ));
    crate::runtime::notify::stopping();
    fatal
}

/// SIGHUP re-reads the allowlist file. Registered even without one, for
/// the whole capture: its default action would end it (`systemctl reload`,
/// `kill -HUP`). A SIGHUP before the supervisor runs waits in the flag.
struct Reload {
    flag: Arc<AtomicBool>,
    id: signal_hook::SigId,
}

impl Reload {
    fn register() -> Result<Self, CaptureError> {
        let flag = Arc::new(AtomicBool::new(false));
        let id = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&flag))
            .map_err(|source| CaptureError::Thread {
                what: "the SIGHUP handler",
                source,
            })?;
        Ok(Self { flag, id })
    }
}

impl Drop for Reload {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.id);
    }
}

/// `4789` for VXLAN alone; `4789 (VXLAN), 6081 (GENEVE)` with GENEVE ports too.
pub(crate) fn join_ports(ports: &PortSet) -> String {
    let join = |list: &[u16]| {
        list.iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if ports.geneve().is_empty() {
        join(ports.as_slice())
    } else {
        format!(
            "{} (VXLAN), {} (GENEVE)",
            join(ports.as_slice()),
            join(ports.geneve())
        )
    }
}
