//! Live capture: XDP steering → one AF_XDP socket and pinned worker per rx
//! queue → analyzer thread.
//!
//! Start-up order keeps a failed start from leaving anything behind: the
//! output is opened first (by the caller), then the program is attached
//! with an empty XSKMAP (everything still goes to the kernel), then the
//! sockets are bound and registered; any failure drops the link.
//! Shutdown clears the XSKMAP first, so matching traffic goes back to the
//! kernel, then lets each worker drain its RX ring, so every frame that
//! reached a socket is accounted for.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vxdecap_wire::PortSet;
use vxdecap_xsk::{BindMode, BindRequest, RxSocket, SocketConfig, XskStatistics};

use crate::analyzer::Analyzer;
use crate::pipeline::{run_analyzers, AnalyzerProgress, AnalyzerReport, Latency};
use crate::queue::frame_channel;
use crate::stage::{Backpressure, DecapStage};
use crate::stats::{SharedStats, StageCounter, StageStats};
use crate::steer::{AttachRequest, Steering, XdpCounters};
use crate::summary::Summary;

/// Bytes of one analyzer batch (16 full-size frames, or 64 small ones).
const BATCH_BYTES: usize = 32 * 1024;
/// Sleep of an idle worker between polls; bounds the reaction time to stop.
const IDLE_POLL_MS: i32 = 50;
/// After the XSKMAP is cleared, frames already on their way still land.
const DRAIN_GRACE: Duration = Duration::from_millis(20);

/// XDP attach and AF_XDP bind modes, as `--mode` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// Driver XDP (else generic), zero-copy sockets (else copy).
    #[default]
    Auto,
    /// Driver XDP and zero-copy sockets, or fail.
    ZeroCopy,
    /// Driver XDP (else generic), copy-mode sockets.
    Copy,
    /// Generic (SKB) XDP, copy-mode sockets.
    Skb,
}

impl CaptureMode {
    fn attach(self) -> AttachRequest {
        match self {
            CaptureMode::Auto | CaptureMode::Copy => AttachRequest::Auto,
            CaptureMode::ZeroCopy => AttachRequest::Driver,
            CaptureMode::Skb => AttachRequest::Skb,
        }
    }

    fn bind(self) -> BindRequest {
        match self {
            CaptureMode::Auto => BindRequest::Auto,
            CaptureMode::ZeroCopy => BindRequest::ZeroCopy,
            CaptureMode::Copy | CaptureMode::Skb => BindRequest::Copy,
        }
    }
}

/// Which rx queues to capture.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum QueueSelection {
    /// Every rx queue of the interface.
    #[default]
    All,
    /// These queue indices.
    List(Vec<u32>),
}

/// Everything a live capture needs.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// Interface to capture on.
    pub interface: String,
    /// UDP destination ports carrying VXLAN.
    pub ports: PortSet,
    /// Rx queues to open.
    pub queues: QueueSelection,
    /// CPUs for the workers, in queue order (None: one per queue, skipping CPU 0 when possible).
    pub cpus: Option<Vec<usize>>,
    /// Attach and bind modes.
    pub mode: CaptureMode,
    /// Socket and UMEM sizes.
    pub socket: SocketConfig,
    /// Most frames taken off the RX ring at once.
    pub batch: usize,
    /// Frames each worker's analyzer queue holds (in batches of `batch`).
    pub queue_slots: usize,
    /// Stop after writing this many frames.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Print a one-line rate display this often.
    pub stats_interval: Option<Duration>,
    /// Busy-poll an empty RX ring this long before sleeping in poll() (0: sleep at once).
    pub idle_spin: Duration,
    /// Where the frames go, for the summary ("inner.pcap", "stdout").
    pub output_name: String,
}

impl CaptureConfig {
    /// Defaults for `interface`: all queues, port 4789, auto mode.
    pub fn new(interface: &str) -> Self {
        CaptureConfig {
            interface: interface.to_owned(),
            ports: PortSet::default(),
            queues: QueueSelection::All,
            cpus: None,
            mode: CaptureMode::Auto,
            socket: SocketConfig::default(),
            batch: 64,
            queue_slots: 8192,
            count: None,
            duration: None,
            stats_interval: None,
            idle_spin: Duration::from_millis(1),
            output_name: "stdout".into(),
        }
    }
}

/// What one worker saw, read when it stopped.
#[derive(Clone, Debug)]
pub struct QueueReport {
    /// Rx queue index.
    pub queue: u32,
    /// CPU the worker was pinned to.
    pub cpu: Option<usize>,
    /// Bind mode the kernel granted.
    pub bind_mode: BindMode,
    /// Stage counters.
    pub stats: StageStats,
    /// Kernel socket counters.
    pub xsk: XskStatistics,
    /// Need-wakeup syscalls made.
    pub wakeups: u64,
}

/// Number of rx queues of `interface`, from sysfs.
pub fn rx_queue_count(interface: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{interface}/queues")).ok()?;
    let count = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    u32::try_from(count).ok().filter(|&n| n > 0)
}

/// Checks that `interface` exists in this network namespace.
pub fn interface_exists(interface: &str) -> bool {
    nix::net::if_::if_nametoindex(interface).is_ok()
}

fn resolve_queues(config: &CaptureConfig) -> anyhow::Result<Vec<u32>> {
    let available = rx_queue_count(&config.interface).unwrap_or(1);
    let queues = match &config.queues {
        QueueSelection::All => (0..available).collect(),
        QueueSelection::List(list) => list.clone(),
    };
    if let Some(bad) = queues.iter().find(|&&q| q >= available) {
        bail!(
            "rx queue {bad} does not exist on {}: it has {available} rx queue(s), numbered from 0 (see `ethtool -l {}`)",
            config.interface,
            config.interface
        );
    }
    if queues.is_empty() {
        bail!("no rx queue selected: use --queues all or a list such as --queues 0,1");
    }
    Ok(queues)
}

/// Number of CPUs online (not just those this process may run on now).
fn online_cpus() -> usize {
    let from_sysfs = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|list| {
            list.trim()
                .split(',')
                .map(|part| match part.split_once('-') {
                    Some((_, hi)) => hi.parse::<usize>().ok().map(|h| h + 1),
                    None => part.parse::<usize>().ok().map(|v| v + 1),
                })
                .max()
                .flatten()
        });
    from_sysfs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

fn resolve_cpus(config: &CaptureConfig, queues: &[u32]) -> anyhow::Result<Vec<Option<usize>>> {
    let cores = online_cpus();
    match &config.cpus {
        Some(cpus) => {
            if cpus.len() < queues.len() {
                bail!(
                    "--cpus names {} CPU(s) for {} queue(s): give one CPU per queue",
                    cpus.len(),
                    queues.len()
                );
            }
            if let Some(bad) = cpus.iter().find(|&&c| c >= cores) {
                bail!(
                    "CPU {bad} does not exist: this machine has CPUs 0-{}",
                    cores - 1
                );
            }
            Ok(cpus.iter().take(queues.len()).map(|&c| Some(c)).collect())
        }
        None => {
            let skip_zero = usize::from(cores > queues.len());
            Ok((0..queues.len())
                .map(|i| Some((i + skip_zero) % cores))
                .collect())
        }
    }
}

/// Checks what can be checked without privileges: the interface exists,
/// the queues exist, the CPUs exist, the sizes are valid. The message
/// names the fix.
pub fn check_config(config: &CaptureConfig) -> anyhow::Result<()> {
    if !interface_exists(&config.interface) {
        bail!(
            "interface {} does not exist: check the name with `ip link`",
            config.interface
        );
    }
    config
        .socket
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let queues = resolve_queues(config)?;
    resolve_cpus(config, &queues)?;
    Ok(())
}

/// Runs a live capture until `stop` is raised, the count or duration is
/// reached, or an output fails. `analyzers` receive the inner frames.
pub fn run_capture(
    config: &CaptureConfig,
    analyzers: Vec<Box<dyn Analyzer>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Summary> {
    check_config(config)?;
    let queues = resolve_queues(config)?;
    let cpus = resolve_cpus(config, &queues)?;

    // Attach first: with an empty XSKMAP the program passes everything to
    // the kernel, so nothing changes for the interface until a socket is
    // registered, and a busy interface is refused before any socket exists.
    let mut steering = Steering::load(&config.interface, &config.ports)?;
    let attach_mode = steering.attach(config.mode.attach())?;

    // The analyzer gets a core of its own when there is one, else it shares
    // the last worker's. (Tried: a lower priority for a sharing analyzer and
    // no busy-polling for its worker; the benchmark delivered less.)
    let analyzer_cpu = analyzer_cpu(&cpus);

    // Workers open their own sockets (memory local to their CPU) and report back.
    let unregistered = Arc::new(AtomicBool::new(false));
    let (setup_tx, setup_rx) = mpsc::channel();
    let mut consumers = Vec::new();
    let mut workers = Vec::new();
    let mut shared_stats = Vec::new();
    for (&queue, &cpu) in queues.iter().zip(cpus.iter()) {
        // Small batches, many of them: at low rates every receive batch (often a
        // single frame) takes a whole batch, so the pool's count, not its
        // bytes, bounds how far the analyzer may fall behind.
        let batch_bytes = BATCH_BYTES.max(config.socket.frame_size as usize);
        let batches = (config.queue_slots * config.socket.frame_size as usize / batch_bytes).max(2);
        let (producer, consumer) = frame_channel(batches, batch_bytes, config.batch);
        consumers.push(consumer);
        let stage = DecapStage::new(
            config.ports,
            queue as u16,
            producer,
            Backpressure::Drop,
            stop.clone(),
        );
        shared_stats.push(stage.shared_stats());
        let worker = RxQueueWorker {
            interface: config.interface.clone(),
            queue,
            cpu,
            socket_config: SocketConfig {
                bind: config.mode.bind(),
                ..config.socket
            },
            batch: config.batch,
            stage,
            stop: stop.clone(),
            unregistered: unregistered.clone(),
            // Busy-polling only pays on a core no other worker needs.
            spin: if cpus.iter().filter(|&&c| c == cpu).count() > 1 {
                Duration::ZERO
            } else {
                config.idle_spin
            },
        };
        let setup_tx = setup_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("vxdecap-rx{queue}"))
            .spawn(move || worker.run(setup_tx))
            .context("cannot start a worker thread")?;
        workers.push(handle);
    }
    drop(setup_tx);

    let mut bind_modes = Vec::new();
    let mut setup_error = None;
    for _ in 0..workers.len() {
        match setup_rx.recv() {
            Ok(Ok((queue, fd, mode))) => {
                if let Err(e) = steering.register_socket(queue, fd) {
                    setup_error.get_or_insert(anyhow::Error::from(e));
                }
                bind_modes.push((queue, mode));
            }
            Ok(Err(e)) => {
                setup_error.get_or_insert(e);
            }
            Err(_) => {
                setup_error.get_or_insert(anyhow::anyhow!("a worker thread died during setup"));
            }
        }
    }
    if let Some(e) = setup_error {
        stop.store(true, Ordering::Relaxed);
        unregistered.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        // Dropping `steering` detaches the program: nothing is left attached.
        return Err(e);
    }
    bind_modes.sort_unstable_by_key(|(q, _)| *q);
    let mode_text: Vec<String> = bind_modes
        .iter()
        .map(|(q, m)| format!("queue {q} {m}"))
        .collect();
    tracing::info!(
        interface = %config.interface,
        xdp = %attach_mode,
        sockets = %mode_text.join(", "),
        "capture started"
    );
    eprintln!(
        "vxdecap: listening on {}, UDP port(s) {}, XDP {} mode, AF_XDP {} ({} queue(s)), link-type EN10MB (Ethernet) inner frames",
        config.interface,
        join_ports(&config.ports),
        attach_mode,
        mode_text.join(", "),
        queues.len()
    );

    let progress = Arc::new(AnalyzerProgress::default());
    let analyzer = {
        let stop = stop.clone();
        let progress = progress.clone();
        let count = config.count;
        std::thread::Builder::new()
            .name("vxdecap-analyzer".into())
            .spawn(move || {
                if let Some(cpu) = analyzer_cpu {
                    if let Err(e) = pin_current_thread(cpu) {
                        tracing::warn!(cpu, error = %e, "cannot pin the analyzer thread");
                    }
                }
                run_analyzers(
                    consumers,
                    analyzers,
                    count,
                    stop,
                    progress,
                    Latency::Measure,
                )
            })
            .context("cannot start the analyzer thread")?
    };

    wait_for_end(config, &stop, &steering, &shared_stats, &progress);

    // Stop order: no new frames to the sockets, drain the rings, then the analyzer.
    stop.store(true, Ordering::Relaxed);
    for &queue in &queues {
        if let Err(e) = steering.unregister_socket(queue) {
            tracing::warn!(queue, error = %e, "cannot clear the XSKMAP slot");
        }
    }
    unregistered.store(true, Ordering::Relaxed);
    let mut reports = Vec::new();
    for handle in workers {
        match handle.join() {
            Ok(Some(report)) => reports.push(report),
            Ok(None) => {}
            Err(_) => tracing::error!("a worker thread panicked"),
        }
    }
    let analyzer_report: AnalyzerReport = analyzer
        .join()
        .map_err(|_| anyhow::anyhow!("the analyzer thread panicked"))?;
    let xdp = steering.counters().unwrap_or_default();
    drop(steering);
    reports.sort_by_key(|r| r.queue);
    Ok(Summary::live(
        config,
        attach_mode,
        reports,
        xdp,
        analyzer_report,
    ))
}

fn wait_for_end(
    config: &CaptureConfig,
    stop: &AtomicBool,
    steering: &Steering,
    shared: &[Arc<SharedStats>],
    progress: &AnalyzerProgress,
) {
    let started = Instant::now();
    let mut next_stats = config.stats_interval.map(|i| started + i);
    let mut last = (started, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if config
            .duration
            .is_some_and(|d| now.duration_since(started) >= d)
        {
            break;
        }
        if let (Some(at), Some(interval)) = (next_stats, config.stats_interval) {
            if now >= at {
                next_stats = Some(at + interval);
                let mut total = StageStats::default();
                for s in shared {
                    total.merge(&s.snapshot());
                }
                let received = total.get(StageCounter::Received);
                let written = progress.written.load(Ordering::Relaxed);
                let secs = now.duration_since(last.0).as_secs_f64().max(1e-9);
                let xdp = steering.counters().unwrap_or_default();
                eprintln!(
                    "vxdecap: {:.0} pps received, {:.0} pps written; totals: received {received}, written {written}, rejected {}, backpressure {}, xdp passed {}",
                    (received - last.1) as f64 / secs,
                    (written - last.2) as f64 / secs,
                    total.rejected_total(),
                    total.get(StageCounter::AnalyzerBackpressure),
                    passed_total(&xdp),
                );
                last = (now, received, written);
            }
        }
    }
}

fn passed_total(xdp: &XdpCounters) -> u64 {
    xdp.0.iter().skip(1).sum()
}

fn join_ports(ports: &PortSet) -> String {
    ports
        .as_slice()
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

type SetupResult = anyhow::Result<(u32, std::os::fd::RawFd, BindMode)>;

/// One rx queue's socket and batch loop, on its own pinned thread.
struct RxQueueWorker {
    interface: String,
    queue: u32,
    cpu: Option<usize>,
    socket_config: SocketConfig,
    batch: usize,
    stage: DecapStage,
    stop: Arc<AtomicBool>,
    unregistered: Arc<AtomicBool>,
    /// How long to busy-poll an empty ring before sleeping.
    spin: Duration,
}

impl RxQueueWorker {
    fn run(mut self, setup: mpsc::Sender<SetupResult>) -> Option<QueueReport> {
        if let Some(cpu) = self.cpu {
            if let Err(e) = pin_current_thread(cpu) {
                tracing::warn!(queue = self.queue, cpu, error = %e, "cannot pin the worker; running unpinned");
                self.cpu = None;
            }
        }
        let mut socket =
            match RxSocket::open(&self.interface, self.queue, &self.socket_config, self.batch) {
                Ok(socket) => socket,
                Err(e) => {
                    let _ = setup.send(Err(anyhow::Error::from(e)));
                    return None;
                }
            };
        use std::os::fd::AsRawFd;
        let _ = setup.send(Ok((self.queue, socket.as_raw_fd(), socket.bind_mode())));
        drop(setup);

        // Spin on an empty ring for a while before sleeping in poll(): waking a
        // halted vCPU takes long enough for a burst to overflow the RX ring.
        let mut idle_since: Option<Instant> = None;
        while !self.stop.load(Ordering::Relaxed) {
            if self.receive_batch(&mut socket) {
                idle_since = None;
                continue;
            }
            let idle = *idle_since.get_or_insert_with(Instant::now);
            if idle.elapsed() < self.spin {
                std::hint::spin_loop();
            } else {
                // Sleeps in poll(); also wakes the kernel if it asked.
                let _ = socket.wait(IDLE_POLL_MS);
            }
        }
        // Drain: the XSKMAP slot is cleared first, so the ring only shrinks.
        while !self.unregistered.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(DRAIN_GRACE);
        while self.receive_batch(&mut socket) {}
        self.stage.publish();
        Some(QueueReport {
            queue: self.queue,
            cpu: self.cpu,
            bind_mode: socket.bind_mode(),
            stats: *self.stage.stats_mut(),
            xsk: socket.statistics().unwrap_or_default(),
            wakeups: socket.wakeups(),
        })
    }

    /// Processes one batch; false when the ring was empty.
    #[inline]
    fn receive_batch(&mut self, socket: &mut RxSocket) -> bool {
        let batch = socket.rx_batch();
        if batch.is_empty() {
            self.stage.stats_mut().add(StageCounter::EmptyPolls, 1);
            return false;
        }
        let now = wall_clock_ns();
        for frame in batch.iter() {
            self.stage.handle(frame, now);
        }
        drop(batch);
        self.stage.flush();
        self.stage.stats_mut().add(StageCounter::Batches, 1);
        self.stage.publish();
        true
    }
}

/// Pins the calling thread to `cpu`.
fn pin_current_thread(cpu: usize) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
}

/// The analyzer thread's CPU: a free one other than CPU 0 (where interrupts
/// and other work tend to land) if there is one, else the last worker's.
/// Left to the scheduler, it was seen sharing the busiest core and losing
/// frames to backpressure that a shared worker core did not lose.
fn analyzer_cpu(workers: &[Option<usize>]) -> Option<usize> {
    let used: Vec<usize> = workers.iter().flatten().copied().collect();
    (1..online_cpus())
        .find(|c| !used.contains(c))
        .or_else(|| used.last().copied())
}

/// Nanoseconds since the Unix epoch (read once per batch).
fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Opens `-w` output: a file, or stdout for `-`.
pub fn open_output(path: &str) -> anyhow::Result<Box<dyn Write + Send>> {
    if path == "-" {
        return Ok(Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        )));
    }
    let file = std::fs::File::create(path).with_context(|| {
        format!("cannot write {path}: check the directory exists and is writable")
    })?;
    Ok(Box::new(std::io::BufWriter::with_capacity(1 << 20, file)))
}
