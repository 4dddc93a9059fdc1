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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use vxdecap_wire::PortSet;
use vxdecap_xsk::{BindMode, BindRequest, RxSocket, SocketConfig, XskStatistics};

use vxdecap_xsk::RxFrame;

use vxdecap_wire::reassembly::{Reassembler, ReassemblyConfig};

use crate::analyzer::Analyzer;
use crate::datapath::analyzers::{spawn_analyzers, AnalyzerThread, InlineAnalyzers, Latency};
use crate::datapath::idle::{IdlePacer, IdlePolicy, IdleStep, NapiDeferral, ReceiveWork, RxPolicy};
use crate::datapath::queue::{fan_out, MAX_ANALYZERS};
use crate::datapath::stage::SharedAllowlist;
use crate::datapath::stage::{Backpressure, DecapStage, RxClock};
use crate::report::metrics::{Endpoint, Metrics, QueueInfo};
use crate::report::stats::{StageCounter, StageStats};
use crate::report::summary::Summary;
use crate::runtime::hotplug::{LinkEvent, LinkWatcher};
use crate::steer::allow::Allowlist;
use crate::steer::{AttachRequest, Steering, XdpCounter, XdpCounters};

/// Sleep of an idle worker between polls; bounds the reaction time to stop.
const IDLE_POLL_MS: i32 = 50;
/// After the XSKMAP is cleared, frames already on their way still land.
const DRAIN_GRACE: Duration = Duration::from_millis(20);
/// How often workers publish their VNI table and socket counters.
const SLOW_PUBLISH: Duration = Duration::from_millis(250);

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
    /// Most frames taken off the RX ring at once (and per analyzer batch).
    pub batch: usize,
    /// Wait for slow analyzers instead of dropping frames for them (the RX
    /// ring backs up instead; the kernel counts what it then drops).
    pub lossless: bool,
    /// Stop after writing this many frames.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Print a one-line rate display this often.
    pub stats_interval: Option<Duration>,
    /// Keep polling an empty RX ring this long before sleeping in poll() (0: sleep at once).
    pub idle_spin: Duration,
    /// How workers wait for frames and who runs the kernel's receive work.
    pub rx_policy: RxPolicy,
    /// Where the frames go, for the summary ("inner.pcap", "stdout").
    pub output_name: String,
    /// Serve Prometheus metrics on this address (every address of a host name).
    pub metrics: Option<Endpoint>,
    /// Sources and VNIs allowed through (enforced in XDP).
    pub allow: Allowlist,
    /// An allowlist file merged with `allow`, read again on SIGHUP.
    pub allow_file: Option<std::path::PathBuf>,
    /// Run as this user once the sockets and outputs are open (`-Z`).
    pub run_as: Option<String>,
    /// Reassemble outer IPv4 fragments with these settings, per worker
    /// (`None`: count them as `outer_fragment`).
    pub reassembly: Option<ReassemblyConfig>,
    /// Raise the UMEM frame size to what the interface MTU needs (up to a
    /// page) when `socket.frame_size` is too small for it.
    pub auto_frame_size: bool,
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
            lossless: false,
            count: None,
            duration: None,
            stats_interval: None,
            idle_spin: Duration::from_millis(1),
            rx_policy: RxPolicy::Auto,
            output_name: "stdout".into(),
            metrics: None,
            allow: Allowlist::default(),
            allow_file: None,
            run_as: None,
            reassembly: Some(ReassemblyConfig::default()),
            auto_frame_size: true,
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
    /// The receive policy the worker ran (of its last socket), and why.
    pub rx_policy: RxPolicy,
    /// Why that policy.
    pub rx_policy_reason: String,
    /// Naps taken at light load (see [`crate::datapath::idle::IdlePacer`]).
    pub naps: u64,
    /// NAPI kicks made when busy polling.
    pub kicks: u64,
    /// Inner frames per VNI.
    pub vnis: crate::report::stats::VniCounts,
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
    let queues: Vec<u32> = match &config.queues {
        QueueSelection::All => (0..available).collect(),
        QueueSelection::List(list) => {
            let mut list = list.clone();
            list.sort_unstable();
            list.dedup();
            list
        }
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
pub(crate) fn online_cpus() -> usize {
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

/// Checks that every CPU of `cpus` exists on this machine.
pub fn check_cpus(cpus: &[usize]) -> anyhow::Result<()> {
    let cores = online_cpus();
    if let Some(bad) = cpus.iter().find(|&&c| c >= cores) {
        bail!(
            "CPU {bad} does not exist: this machine has CPUs 0-{}",
            cores - 1
        );
    }
    Ok(())
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
            check_cpus(cpus)?;
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
/// the queues exist, the CPUs exist, the sizes are valid, the metrics
/// address can be bound. The message names the fix.
pub fn check_config(config: &CaptureConfig) -> anyhow::Result<()> {
    check_setup(config)?;
    if let Some(endpoint) = &config.metrics {
        crate::report::metrics::bind(endpoint).map_err(|e| metrics_error(endpoint, e))?;
    }
    Ok(())
}

/// Settings that have no effect on this machine: more CPUs than queues.
pub fn warnings(config: &CaptureConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    if let (Ok(queues), Some(cpus)) = (resolve_queues(config), &config.cpus) {
        if cpus.len() > queues.len() {
            let unused: Vec<String> = cpus[queues.len()..].iter().map(usize::to_string).collect();
            warnings.push(format!(
                "--cpus names {} CPU(s) for {} queue(s): CPU(s) {} unused (one worker per queue, on the CPUs in order)",
                cpus.len(),
                queues.len(),
                unused.join(",")
            ));
        }
    }
    warnings
}

/// [`check_config`] but for the metrics address, which `check-config`
/// cannot bind while a capture may hold it: what `check-config` and
/// `capture` both check.
pub fn check_setup(config: &CaptureConfig) -> anyhow::Result<()> {
    if let Some(cpus) = &config.cpus {
        check_cpus(cpus)?;
    }
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
    effective_allowlist(config)?;
    if let Some(name) = &config.run_as {
        let user = crate::runtime::privs::check_user(name)?;
        // SIGHUP reads the allow file again, as `user` by then.
        if let Some(file) = &config.allow_file {
            if crate::runtime::privs::readable_as(&user, file) == Some(false) {
                let group = nix::unistd::Group::from_gid(user.gid)
                    .ok()
                    .flatten()
                    .map_or_else(|| user.gid.to_string(), |g| g.name);
                bail!(
                    "allow file {}: {name} cannot read it, and -Z {name} runs as {name} when SIGHUP reloads it: make it readable by {name} (e.g. `chgrp {group} FILE; chmod g+r FILE`, with its directories searchable), or leave out -Z",
                    file.display()
                );
            }
        }
    }
    if let Some(r) = config.reassembly {
        Reassembler::new(r).map_err(|e| anyhow::anyhow!("reassembly settings: {e}"))?;
    }
    Ok(())
}

/// The allowlist from the flags merged with the file's, if any.
fn effective_allowlist(config: &CaptureConfig) -> anyhow::Result<Allowlist> {
    match &config.allow_file {
        None => Ok(config.allow.clone()),
        Some(path) => {
            let file = Allowlist::read(path).map_err(|e| anyhow::anyhow!("{e}"))?;
            config
                .allow
                .merged(&file)
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
    }
}

fn metrics_error(endpoint: &Endpoint, e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot serve --metrics on {endpoint}: {e} (pick a free port and an address of this host)"
    )
}

/// Runs a live capture until `stop` is raised, the count or duration is
/// reached, or an output fails. Each of `analyzers` (at most
/// [`MAX_ANALYZERS`]) runs on its own thread and sees every inner frame.
pub fn run_capture(
    config: &CaptureConfig,
    analyzers: Vec<Box<dyn Analyzer>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Summary> {
    check_config(config)?;
    if analyzers.is_empty() || analyzers.len() > MAX_ANALYZERS {
        bail!(
            "{} analyzers given: a capture feeds 1 to {MAX_ANALYZERS}",
            analyzers.len()
        );
    }
    let queues = resolve_queues(config)?;
    let cpus = resolve_cpus(config, &queues)?;
    let metrics_listeners = config
        .metrics
        .as_ref()
        .map(|endpoint| {
            crate::report::metrics::bind(endpoint).map_err(|e| metrics_error(endpoint, e))
        })
        .transpose()?;

    // Attach first: with an empty XSKMAP the program passes everything to
    // the kernel, so nothing changes for the interface until a socket is
    // registered, and a busy interface is refused before any socket exists.
    let mut steering = Steering::load_with(
        &config.interface,
        &config.ports,
        config.reassembly.is_some(),
    )?;
    let allow = effective_allowlist(config)?;
    steering.set_allowlist(&allow)?;
    // The workers check reassembled datagrams against the same lists.
    let shared_allow: SharedAllowlist = Arc::new(arc_swap::ArcSwap::from_pointee(allow.clone()));
    let attach_mode = steering.attach(config.mode.attach())?;
    if !allow.is_open() {
        eprintln!("vxdecap: allowlist: {allow}");
    }

    // Each analyzer gets a core of its own when there is one, else it shares
    // the last worker's. (Tried: a lower priority for a sharing analyzer and
    // no busy-polling for its worker; the benchmark delivered less.)
    let analyzer_cpus = analyzer_cpus(&cpus, analyzers.len());

    // Leases are bounded so the fill ring always keeps a full RX ring's worth
    // of frames: a slow analyzer then shows up as analyzer_backpressure, not
    // as the kernel finding the fill ring empty.
    let socket_config = SocketConfig {
        frame_size: frame_size_for_mtu(config),
        bind: config.mode.bind(),
        ..config.socket
    };
    let frame_count = config.socket.frame_count as usize;
    let lease_budget = frame_count
        .saturating_sub(config.socket.rx_ring as usize)
        .max(frame_count / 2);
    let pool = (lease_budget / 4).clamp(2, 4096);
    let (senders, receivers) = fan_out(queues.len(), analyzers.len(), pool);
    // Run to completion: with one worker and no core of their own, cheap
    // analyzers run in the worker's thread instead of a thread that would
    // compete with it (and with the kernel's receive work) for its core.
    let run_inline = queues.len() == 1
        && analyzer_cpus.iter().all(|&c| c == cpus[0])
        && analyzers.iter().all(|a| a.can_run_inline());
    let (mut inline_handles, mut inline_analyzers, mut receivers, mut analyzers) = if run_inline {
        let (handles, inline) =
            InlineAnalyzers::new(receivers, analyzers, config.count, &stop, Latency::Measure);
        (handles, Some(inline), Vec::new(), Vec::new())
    } else {
        (Vec::new(), None, receivers, analyzers)
    };

    // Workers open their own sockets (memory local to their CPU) and report back.
    let control = Arc::new(Control {
        stop: stop.clone(),
        unregistered: AtomicBool::new(false),
        epoch: AtomicU64::new(0),
        interface: Mutex::new(config.interface.clone()),
        shared_core: queues.iter().map(|_| AtomicBool::new(false)).collect(),
    });
    let (setup_tx, setup_rx) = mpsc::channel();
    let mut workers = Vec::new();
    let mut shared_stats = Vec::new();
    let mut shared_slow = Vec::new();
    for (index, ((&queue, &cpu), sender)) in queues.iter().zip(cpus.iter()).zip(senders).enumerate()
    {
        let stage = DecapStage::new(
            config.ports,
            queue as u16,
            sender,
            lease_budget,
            config.batch,
            if config.lossless {
                Backpressure::Wait
            } else {
                Backpressure::Drop
            },
            stop.clone(),
        );
        // Allocated once per worker, here, like everything the batch loop uses.
        let mut stage = match config.reassembly {
            Some(r) => stage
                .with_reassembler(
                    Reassembler::new(r).map_err(|e| anyhow::anyhow!("reassembly settings: {e}"))?,
                )
                .with_allowlist(shared_allow.clone()),
            None => stage,
        };
        stage.set_yield_after_batch(!run_inline && cpu.is_some() && analyzer_cpus.contains(&cpu));
        shared_stats.push(stage.shared_stats());
        shared_slow.push(stage.shared_slow());
        let worker = RxQueueWorker {
            index: index as u16,
            queue,
            cpu,
            socket_config,
            batch: config.batch,
            stage,
            control: control.clone(),
            rx_policy: config.rx_policy,
            // Spinning only pays on a core no other worker needs.
            spin: if cpus.iter().filter(|&&c| c == cpu).count() > 1 {
                Duration::ZERO
            } else {
                config.idle_spin
            },
            idle: IdlePolicy::of(RxPolicy::Sleep, Duration::ZERO),
            policy: (RxPolicy::Sleep, String::new()),
            naps: 0,
            kicks_before: 0,
            xsk_before: XskStatistics::default(),
            wakeups_before: 0,
            inline: inline_analyzers.take(),
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
            Ok(SocketReady {
                queue,
                result: Ok(bound),
                ..
            }) => {
                if let Err(e) = steering.register_socket(queue, bound.fd) {
                    setup_error.get_or_insert(anyhow::Error::from(e));
                }
                bind_modes.push((queue, bound));
            }
            Ok(SocketReady { result: Err(e), .. }) => {
                setup_error.get_or_insert(e);
            }
            Err(_) => {
                setup_error.get_or_insert(anyhow::anyhow!("a worker thread died during setup"));
            }
        }
    }
    if let Some(e) = setup_error {
        stop.store(true, Ordering::Relaxed);
        control.unregistered.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        // Dropping `steering` detaches the program: nothing is left attached.
        return Err(e);
    }
    bind_modes.sort_unstable_by_key(|(q, _)| *q);
    // Busy polling keeps the device's interrupts off only with these set.
    let deferral = bind_modes
        .iter()
        .any(|(_, b)| b.policy == RxPolicy::BusyPoll)
        .then(|| defer_interrupts(&config.interface))
        .flatten();
    let mode_text: Vec<String> = bind_modes
        .iter()
        .map(|(q, b)| {
            let cpu = queues
                .iter()
                .position(|x| x == q)
                .and_then(|i| cpus[i])
                .map_or("unpinned".to_owned(), |c| format!("cpu {c}"));
            format!("queue {q} {} {cpu} {}", b.mode, b.policy)
        })
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
    for (queue, bound) in &bind_modes {
        eprintln!(
            "vxdecap: queue {queue} receive policy {}: {}",
            bound.policy, bound.reason
        );
    }
    if run_inline {
        eprintln!("vxdecap: analyzers run in the worker's thread, after each batch (one queue, and no core of their own)");
    }

    let threads = if run_inline {
        std::mem::take(&mut inline_handles)
    } else {
        spawn_analyzers(
            std::mem::take(&mut receivers),
            std::mem::take(&mut analyzers),
            config.count,
            &stop,
            Latency::Measure,
            &analyzer_cpus,
        )
        .context("cannot start the analyzer threads")?
    };

    let metrics = Arc::new(Metrics::new(
        &config.interface,
        queues
            .iter()
            .enumerate()
            .map(|(i, &queue)| QueueInfo {
                queue,
                cpu: cpus[i],
                bind_mode: bind_modes
                    .iter()
                    .find(|(q, _)| *q == queue)
                    .map_or(BindMode::Copy, |(_, b)| b.mode),
                rx_policy: bind_modes
                    .iter()
                    .find(|(q, _)| *q == queue)
                    .map_or(RxPolicy::Sleep, |(_, b)| b.policy),
                stage: shared_stats[i].clone(),
                slow: shared_slow[i].clone(),
            })
            .collect(),
        threads
            .iter()
            .map(|t| (t.name.clone(), t.progress.clone()))
            .collect(),
    ));
    let server = match metrics_listeners {
        Some(listeners) => {
            let addrs: Vec<_> = listeners
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .collect();
            let server = crate::report::metrics::serve(listeners, metrics.clone(), stop.clone())
                .context("cannot start the metrics thread")?;
            for addr in addrs {
                eprintln!("vxdecap: metrics at http://{addr}/metrics");
            }
            Some(server)
        }
        None => None,
    };
    // Link events: the interface may go away and come back (Azure host servicing).
    let watcher = match LinkWatcher::start() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch link events; polling the interface instead");
            None
        }
    };

    let mut supervisor = Supervisor {
        config,
        control: &control,
        steering: Some(steering),
        xdp_before: XdpCounters::default(),
        ifindex: nix::net::if_::if_nametoindex(config.interface.as_str()).unwrap_or(0),
        mac: interface_mac(&config.interface),
        restarts: 0,
        metrics_restarts: metrics.restarts(),
        setup: setup_rx,
        last_poll: Instant::now(),
        allow,
        shared_allow,
        deferral,
        worker_cpus: cpus.clone(),
        receive_work: ReceiveWork::default(),
        last_receive_check: None,
    };
    let mut fatal = None;
    if let Some(user) = &config.run_as {
        // Sockets, program, outputs and the metrics listener are open.
        match crate::runtime::privs::drop_to(user) {
            Ok(()) => eprintln!("vxdecap: running as {user}"),
            Err(e) => {
                // Stop cleanly (detach, close outputs), then report the failure.
                stop.store(true, Ordering::Relaxed);
                fatal = Some(e.context(format!("-Z {user}: cannot drop privileges")));
            }
        }
    }
    // SIGHUP re-reads the allowlist file (registered only when there is one).
    let reload = Arc::new(AtomicBool::new(false));
    let hup = match &config.allow_file {
        Some(_) => Some(
            signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
                .context("cannot install the SIGHUP handler")?,
        ),
        None => None,
    };
    supervisor.wait_for_end(&metrics, &threads, &reload, watcher.as_ref());
    if let Some(id) = hup {
        signal_hook::low_level::unregister(id);
    }
    drop(watcher);

    // Stop order: no new frames to the sockets, drain the rings, then the analyzers.
    stop.store(true, Ordering::Relaxed);
    if let Some(steering) = supervisor.steering.as_mut() {
        for &queue in &queues {
            if let Err(e) = steering.unregister_socket(queue) {
                tracing::warn!(queue, error = %e, "cannot clear the XSKMAP slot");
            }
        }
    }
    control.unregistered.store(true, Ordering::Relaxed);
    let mut reports = Vec::new();
    for handle in workers {
        match handle.join() {
            Ok(Some(report)) => reports.push(report),
            Ok(None) => {}
            Err(_) => tracing::error!("a worker thread panicked"),
        }
    }
    let analyzer_reports = threads
        .into_iter()
        .map(|t| (t.name.clone(), t.join()))
        .collect();
    let xdp = supervisor.xdp_totals();
    let restarts = supervisor.restarts;
    drop(supervisor);
    if let Some(server) = server {
        let _ = server.join();
    }
    reports.sort_by_key(|r| r.queue);
    if let Some(e) = fatal {
        return Err(e);
    }
    let mut summary = Summary::live(config, attach_mode, reports, xdp, analyzer_reports);
    summary.interface_restarts = restarts;
    Ok(summary)
}

/// State shared by the main thread and the workers.
struct Control {
    stop: Arc<AtomicBool>,
    /// The XSKMAP was cleared at shutdown: the rings can only shrink now.
    unregistered: AtomicBool,
    /// Even: the interface is up and workers keep a socket on it; odd: it
    /// went away and workers close theirs. Each change is a new epoch.
    epoch: AtomicU64,
    /// The interface's current name (a VF may come back renamed). Read by
    /// workers only when they (re)open a socket.
    interface: Mutex<String>,
    /// Per worker: the kernel's receive work can run on its core (see
    /// [`ReceiveWork`]); checked by the main thread once a second.
    shared_core: Vec<AtomicBool>,
}

/// A worker's report that its socket for `epoch` is open (or not).
struct SocketReady {
    queue: u32,
    epoch: u64,
    result: anyhow::Result<BoundSocket>,
}

/// A socket a worker opened: what to register, and how the worker runs it.
struct BoundSocket {
    fd: std::os::fd::RawFd,
    mode: BindMode,
    policy: RxPolicy,
    /// Why this policy (for the start-up line).
    reason: String,
}

/// The main thread while capturing: stop conditions, stats lines, metrics,
/// SIGHUP, and the interface going away and coming back.
struct Supervisor<'a> {
    config: &'a CaptureConfig,
    control: &'a Control,
    /// The attached program; `None` while the interface is gone.
    steering: Option<Steering>,
    /// XDP counters of program instances before this one.
    xdp_before: XdpCounters,
    ifindex: u32,
    mac: Option<Vec<u8>>,
    /// Times the interface came back.
    restarts: u64,
    metrics_restarts: Arc<AtomicU64>,
    setup: mpsc::Receiver<SocketReady>,
    last_poll: Instant,
    /// The allowlists in force: changed only by a SIGHUP reload that passes
    /// [`Allowlist::check_reload`], re-applied when the interface comes back.
    allow: Allowlist,
    /// The same lists, for the workers, which check reassembled datagrams
    /// against them (lock-free reads): kept equal to the XDP program's.
    shared_allow: SharedAllowlist,
    /// The device's interrupt deferral while workers busy-poll it.
    deferral: Option<NapiDeferral>,
    /// The workers' CPUs, in worker order.
    worker_cpus: Vec<Option<usize>>,
    /// Where the kernel's receive work ran at the last look, and when that was.
    receive_work: ReceiveWork,
    last_receive_check: Option<Instant>,
}

impl Supervisor<'_> {
    fn xdp_totals(&self) -> XdpCounters {
        let now = self
            .steering
            .as_ref()
            .and_then(|s| s.counters().ok())
            .unwrap_or_default();
        let mut total = self.xdp_before;
        total.merge(&now);
        total
    }

    fn wait_for_end(
        &mut self,
        metrics: &Metrics,
        analyzers: &[AnalyzerThread],
        reload: &AtomicBool,
        watcher: Option<&LinkWatcher>,
    ) {
        let config = self.config;
        let stop = &self.control.stop;
        let started = Instant::now();
        let mut next_stats = config.stats_interval.map(|i| started + i);
        let mut next_xdp = started;
        let mut last = (started, 0u64, 0u64);
        while !stop.load(Ordering::Relaxed) {
            match watcher {
                Some(w) => {
                    if let Ok(event) = w.events.recv_timeout(Duration::from_millis(20)) {
                        self.on_link_event(event);
                    }
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
            self.poll_interface();
            self.register_reopened_sockets();
            self.check_receive_work();
            let now = Instant::now();
            if config
                .duration
                .is_some_and(|d| now.duration_since(started) >= d)
            {
                break;
            }
            if reload.swap(false, Ordering::Relaxed) {
                self.reload_allowlist();
            }
            if now >= next_xdp {
                next_xdp = now + Duration::from_millis(250);
                metrics.set_xdp(self.xdp_totals());
            }
            if let (Some(at), Some(interval)) = (next_stats, config.stats_interval) {
                if now >= at {
                    next_stats = Some(at + interval);
                    let xdp = self.xdp_totals();
                    eprintln!(
                        "{}",
                        stats_line(metrics, analyzers, &xdp, now - last.0, &mut last)
                    );
                    last.0 = now;
                }
            }
        }
    }

    /// SIGHUP: reads the allow file again. A bad file, or one that would
    /// open a closed list without saying `any`, keeps the lists in force;
    /// the message says why.
    fn reload_allowlist(&mut self) {
        let file = self
            .config
            .allow_file
            .as_deref()
            .unwrap_or(std::path::Path::new("-"));
        let result = effective_allowlist(self.config).and_then(|next| {
            self.allow
                .check_reload(&next)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if let Some(steering) = &mut self.steering {
                steering.set_allowlist(&next)?;
            } // else applied when the interface comes back
            Ok(next)
        });
        match result {
            Ok(next) => {
                eprintln!("vxdecap: SIGHUP: allowlist reloaded: {next}");
                self.shared_allow.store(Arc::new(next.clone()));
                self.allow = next;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "allowlist reload refused");
                eprintln!(
                    "vxdecap: SIGHUP: allowlist not changed: {e:#}; still in force: {}",
                    self.allow
                );
            }
        }
    }

    /// Once a second: where can the kernel's receive work for the interface
    /// run, and does that include each worker's core? (Threaded NAPI may be
    /// turned on, or interrupts moved, while the capture runs.) Changes are
    /// logged; workers read their flag on each empty ring.
    fn check_receive_work(&mut self) {
        if self
            .last_receive_check
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_receive_check = Some(Instant::now());
        let work = ReceiveWork::find(&self.current_name());
        if work == self.receive_work && self.receive_work != ReceiveWork::default() {
            return;
        }
        for (i, cpu) in self.worker_cpus.iter().enumerate() {
            // An unpinned worker may run anywhere the receive work runs.
            let shared = match cpu {
                Some(c) => work.shares(*c),
                None => !work.cpus.is_empty(),
            };
            let before = self.control.shared_core[i].swap(shared, Ordering::Relaxed);
            if shared != before {
                let cpu = cpu.map_or("an unpinned worker".to_owned(), |c| format!("CPU {c}"));
                eprintln!(
                    "vxdecap: worker {i} ({cpu}) {} the kernel's receive work ({work})",
                    if shared {
                        "shares its core with"
                    } else {
                        "no longer shares its core with"
                    }
                );
            }
        }
        self.receive_work = work;
    }

    fn current_name(&self) -> String {
        self.control
            .interface
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    fn on_link_event(&mut self, event: LinkEvent) {
        let name = self.current_name();
        match event {
            LinkEvent::Gone { index, name: gone } => {
                if self.steering.is_some() && (index == self.ifindex || gone == name) {
                    self.interface_gone(&gone);
                }
            }
            LinkEvent::New {
                index,
                name: new,
                mac,
                up,
            } => {
                if self.steering.is_some() || !up {
                    return;
                }
                // The same name, or (a VF that came back renamed) the same
                // hardware address while the old name is gone.
                let renamed = new != name
                    && mac.is_some()
                    && mac == self.mac
                    && nix::net::if_::if_nametoindex(name.as_str()).is_err();
                if new == name || renamed {
                    self.interface_back(&new, index);
                }
            }
        }
    }

    /// A safety net for missed notifications (the netlink socket can
    /// overflow): checks the interface by name twice a second.
    fn poll_interface(&mut self) {
        if self.last_poll.elapsed() < Duration::from_millis(500) {
            return;
        }
        self.last_poll = Instant::now();
        let name = self.current_name();
        let index = nix::net::if_::if_nametoindex(name.as_str()).unwrap_or(0);
        match (&self.steering, index) {
            (Some(_), 0) => self.interface_gone(&name),
            (Some(_), i) if i != self.ifindex => {
                self.interface_gone(&name);
                self.interface_back(&name, i);
            }
            (None, i) if i != 0 && interface_up(&name) => self.interface_back(&name, i),
            _ => {}
        }
    }

    fn interface_gone(&mut self, name: &str) {
        if let Some(steering) = self.steering.take() {
            let now = steering.counters().unwrap_or_default();
            self.xdp_before.merge(&now);
        }
        // Its settings went with the device; a new one is set when a socket busy-polls again.
        self.deferral = None;
        // Odd epoch: workers close their sockets and wait.
        self.control.epoch.fetch_add(1, Ordering::AcqRel);
        eprintln!("vxdecap: {name} went away; waiting for it to come back (outputs stay open)");
        tracing::warn!(interface = name, "interface gone");
    }

    fn interface_back(&mut self, name: &str, index: u32) {
        let config = self.config;
        if let Err(e) = crate::runtime::privs::raise() {
            tracing::warn!(error = %e, "cannot raise capabilities");
        }
        let attach = Steering::load_with(name, &config.ports, config.reassembly.is_some())
            .and_then(|mut s| {
                s.set_allowlist(&self.allow)?;
                let mode = s.attach(config.mode.attach())?;
                Ok((s, mode))
            });
        match attach {
            Ok((steering, mode)) => {
                self.steering = Some(steering);
                self.ifindex = index;
                if let Ok(mut n) = self.control.interface.lock() {
                    *n = name.to_owned();
                }
                self.restarts += 1;
                self.metrics_restarts
                    .store(self.restarts, Ordering::Relaxed);
                // Even epoch: workers open new sockets and report them.
                self.control.epoch.fetch_add(1, Ordering::AcqRel);
                eprintln!(
                    "vxdecap: {name} is back (ifindex {index}), XDP {mode} mode; reopening the sockets"
                );
            }
            Err(e) => {
                // Tried again on the next event or poll.
                eprintln!("vxdecap: {name} is back but cannot be captured yet: {e}");
            }
        }
    }

    /// Registers the sockets workers reopened for the current epoch.
    fn register_reopened_sockets(&mut self) {
        while let Ok(ready) = self.setup.try_recv() {
            let epoch = self.control.epoch.load(Ordering::Acquire);
            let (Some(steering), true) = (self.steering.as_mut(), ready.epoch == epoch) else {
                continue; // a socket of an epoch that is over
            };
            match ready.result {
                Ok(bound) => match steering.register_socket(ready.queue, bound.fd) {
                    Ok(()) => {
                        eprintln!(
                            "vxdecap: queue {} capturing again ({}, receive policy {})",
                            ready.queue, bound.mode, bound.policy
                        );
                        if bound.policy == RxPolicy::BusyPoll && self.deferral.is_none() {
                            self.deferral = defer_interrupts(&self.current_name());
                        }
                    }
                    Err(e) => eprintln!("vxdecap: queue {}: {e}", ready.queue),
                },
                Err(e) => eprintln!("vxdecap: queue {} not reopened: {e:#}", ready.queue),
            }
        }
    }
}

/// Sets the device's interrupt deferral for busy polling; a device that
/// refuses it (no sysfs, not permitted) is warned about: busy polling then
/// still runs, with interrupts competing.
fn defer_interrupts(interface: &str) -> Option<NapiDeferral> {
    match NapiDeferral::apply(interface) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("vxdecap: warning: cannot set napi_defer_hard_irqs and gro_flush_timeout on {interface} for busy polling: {e}");
            None
        }
    }
}

/// Bytes in front of a frame in a UMEM chunk: the kernel's XDP headroom
/// and the XDP program's receive record.
const FRAME_OVERHEAD: u32 = 256 + crate::steer::RxMeta::LEN as u32;

/// Largest outer Ethernet frame (two VLAN tags included) one UMEM chunk of
/// `frame_size` bytes holds without AF_XDP multi-buffer.
pub fn largest_frame(frame_size: u32) -> u32 {
    frame_size.saturating_sub(FRAME_OVERHEAD)
}

/// The UMEM frame size: the configured one, raised (when allowed) to what
/// the interface's MTU needs, up to a page. Says what it did, and warns
/// when even a page is too small: such frames the kernel drops and counts
/// (`xsk_rx_dropped`), since AF_XDP without multi-buffer holds one frame
/// per chunk.
fn frame_size_for_mtu(config: &CaptureConfig) -> u32 {
    let configured = config.socket.frame_size;
    let Some(mtu) = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", config.interface))
        .ok()
        .and_then(|m| m.trim().parse::<u32>().ok())
    else {
        return configured;
    };
    let page = vxdecap_xsk::page_size();
    let needed = mtu + 14 + 8; // Ethernet header and two VLAN tags
    let mut size = configured;
    if config.auto_frame_size && largest_frame(size) < needed {
        while largest_frame(size) < needed && size < page {
            size *= 2;
        }
        if size != configured {
            eprintln!(
                "vxdecap: MTU {mtu} on {}: UMEM frames of {size} bytes (frames up to {} bytes)",
                config.interface,
                largest_frame(size)
            );
        }
    }
    if largest_frame(size) < needed {
        eprintln!(
            "vxdecap: warning: MTU {mtu} on {}: frames over {} bytes do not fit a {size}-byte AF_XDP frame; the kernel drops them and counts them as xsk_rx_dropped (multi-buffer AF_XDP is not supported yet)",
            config.interface,
            largest_frame(size)
        );
    }
    size
}

/// The interface's hardware address, from sysfs.
fn interface_mac(name: &str) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    text.trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

/// True when the interface is administratively up.
fn interface_up(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & 1 != 0)
}

/// The `--stats` line: rates since the last line, then totals.
fn stats_line(
    metrics: &Metrics,
    analyzers: &[AnalyzerThread],
    xdp: &XdpCounters,
    elapsed: Duration,
    last: &mut (Instant, u64, u64),
) -> String {
    let mut total = StageStats::default();
    let mut xsk = XskStatistics::default();
    for q in metrics.queues() {
        total.merge(&q.stage.snapshot());
        xsk.merge(&q.slow.xsk());
    }
    let received = total.get(StageCounter::Received);
    let written = analyzers[0].progress.written.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let latency = analyzers[0].progress.latency().map_or(String::new(), |l| {
        format!(
            ", latency p50 {:.0} us p99 {:.0} us",
            l.p50 as f64 / 1e3,
            l.p99 as f64 / 1e3
        )
    });
    let (top, _) = metrics.top_vnis(3);
    let vnis: Vec<String> = top.iter().map(|(v, n)| format!("{v}:{n}")).collect();
    let line = format!(
        "vxdecap: {:.0} pps received, {:.0} pps written; totals: received {received}, written {written}, rejected {}, backpressure {}, xsk_rx_ring_full {}, xsk_fill_ring_empty {}, xdp passed {}{latency}; top VNIs {}",
        received.saturating_sub(last.1) as f64 / secs,
        written.saturating_sub(last.2) as f64 / secs,
        total.rejected_total(),
        total.analyzer_backpressure(0),
        xsk.rx_ring_full,
        xsk.rx_fill_ring_empty,
        passed_total(xdp),
        if vnis.is_empty() { "-".to_owned() } else { vnis.join(" ") },
    );
    last.1 = received;
    last.2 = written;
    line
}

fn passed_total(xdp: &XdpCounters) -> u64 {
    XdpCounter::ALL
        .into_iter()
        .filter(|c| c.is_pass())
        .map(|c| xdp.get(c))
        .sum()
}

fn join_ports(ports: &PortSet) -> String {
    ports
        .as_slice()
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// One rx queue's socket and batch loop, on its own pinned thread.
struct RxQueueWorker {
    /// Position among the workers (batches carry it back to this worker).
    index: u16,
    queue: u32,
    cpu: Option<usize>,
    socket_config: SocketConfig,
    batch: usize,
    stage: DecapStage,
    control: Arc<Control>,
    /// The receive policy asked for (resolved per socket).
    rx_policy: RxPolicy,
    /// How long [`RxPolicy::Spin`] spins on an empty ring.
    spin: Duration,
    /// What to do on an empty ring, for the current socket.
    idle: IdlePolicy,
    /// The policy of the current socket, and why.
    policy: (RxPolicy, String),
    /// Naps and NAPI kicks of the sockets before the current one.
    naps: u64,
    kicks_before: u64,
    /// Socket counters of the sockets closed before the current one.
    xsk_before: XskStatistics,
    wakeups_before: u64,
    /// Analyzers run in this thread, after each batch (run to completion).
    inline: Option<InlineAnalyzers>,
}

/// What one pass of the batch loop found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// This many frames were received.
    Busy(usize),
    /// The RX ring was empty.
    Empty,
    /// Lossless mode with every lease out: wait for the analyzers.
    Blocked,
}

/// Why a worker's loop over one socket ended.
enum SocketEnd {
    /// The capture is stopping.
    Stop,
    /// The interface went away: the socket is dead.
    Gone,
}

impl RxQueueWorker {
    fn run(mut self, setup: mpsc::Sender<SocketReady>) -> Option<QueueReport> {
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
                            result: Err(anyhow::Error::from(e)),
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

/// Pins the calling thread to `cpu`.
pub(crate) fn pin_current_thread(cpu: usize) -> nix::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
}

/// The analyzer threads' CPUs: free ones other than CPU 0 (where
/// interrupts and other work tend to land) while there are any, then the
/// last worker's. Left to the scheduler, an analyzer was seen sharing the
/// busiest core and losing frames to backpressure that a shared worker core
/// did not lose.
fn analyzer_cpus(workers: &[Option<usize>], analyzers: usize) -> Vec<Option<usize>> {
    let used: Vec<usize> = workers.iter().flatten().copied().collect();
    let mut free = (1..online_cpus()).filter(|c| !used.contains(c));
    (0..analyzers)
        .map(|_| free.next().or_else(|| used.last().copied()))
        .collect()
}
