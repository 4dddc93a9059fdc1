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

use vxdecap_wire::reassembly::Reassembler;
use vxdecap_wire::PortSet;
use vxdecap_xsk::{BindMode, SocketConfig};

use crate::analyzer::Analyzer;
use crate::analyzer::MAX_ANALYZERS;
use crate::datapath::analyzers::{spawn_analyzers, InlineAnalyzers, Latency};
use crate::datapath::idle::RxPolicy;
use crate::datapath::queue::fan_out;
use crate::datapath::stage::DecapStage;
use crate::datapath::stage::SharedAllowlist;
use crate::datapath::worker::BatchLoop;
use crate::report::metrics::{Metrics, QueueInfo};
use crate::report::summary::Summary;
use crate::report::CONSOLE;
use crate::runtime::config::CaptureConfig;
use crate::runtime::cpus::{analyzer_cpus, resolve_cpus};
use crate::runtime::device::interface_mac;
use crate::runtime::error::CaptureError;
use crate::runtime::hotplug::LinkWatcher;
use crate::runtime::preflight::{
    check_config, effective_allowlist, metrics_error, resolve_queues, SetupError,
};
use crate::runtime::receive_work::ReceiveWork;
use crate::runtime::supervisor::{defer_interrupts, Supervisor};
use crate::runtime::umem::frame_size_for_mtu;
use crate::runtime::worker::{Control, RxQueueWorker, SocketHistory, SocketReady};
use crate::steer::{Steering, XdpCounters};

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
    let queues = resolve_queues(config)?;
    let cpus = resolve_cpus(config, &queues)?;
    let metrics_listeners = config
        .metrics
        .as_ref()
        .map(|endpoint| {
            crate::runtime::metrics_server::bind(endpoint).map_err(|e| metrics_error(endpoint, e))
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
        tracing::info!(target: CONSOLE,"allowlist: {allow}");
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
            stop.clone(),
        );
        // Allocated once per worker, here, like everything the batch loop uses.
        let mut stage = match config.reassembly {
            Some(r) => stage
                .with_reassembler(Reassembler::new(r).map_err(SetupError::Reassembly)?)
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
            lossless: config.lossless,
            work: BatchLoop::new(stage, config.batch, inline_analyzers.take()),
            control: control.clone(),
            rx_policy: config.rx_policy,
            // Spinning only pays on a core no other worker needs.
            spin: if cpus.iter().filter(|&&c| c == cpu).count() > 1 {
                Duration::ZERO
            } else {
                config.idle_spin
            },
            history: SocketHistory::default(),
        };
        let setup_tx = setup_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("vxdecap-rx{queue}"))
            .spawn(move || worker.run(setup_tx))
            .map_err(|source| CaptureError::Thread {
                what: "a worker thread",
                source,
            })?;
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
                    setup_error.get_or_insert(CaptureError::from(e));
                }
                bind_modes.push((queue, bound));
            }
            Ok(SocketReady { result: Err(e), .. }) => {
                setup_error.get_or_insert(CaptureError::from(e));
            }
            Err(_) => {
                setup_error.get_or_insert(CaptureError::Panicked("a worker thread, during setup,"));
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
    tracing::info!(
        target: CONSOLE,
        "listening on {}, UDP port(s) {}, XDP {} mode, AF_XDP {} ({} queue(s)), link-type EN10MB (Ethernet) inner frames",
        config.interface,
        join_ports(&config.ports),
        attach_mode,
        mode_text.join(", "),
        queues.len()
    );
    for (queue, bound) in &bind_modes {
        tracing::info!(
            target: CONSOLE,
            "queue {queue} receive policy {}: {}",
            bound.policy, bound.reason
        );
    }
    if run_inline {
        tracing::info!(target: CONSOLE,"analyzers run in the worker's thread, after each batch (one queue, and no core of their own)");
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
        .map_err(|source| CaptureError::Thread {
            what: "the analyzer threads",
            source,
        })?
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
            let server =
                crate::runtime::metrics_server::serve(listeners, metrics.clone(), stop.clone())
                    .map_err(|source| CaptureError::Thread {
                        what: "the metrics thread",
                        source,
                    })?;
            for addr in addrs {
                tracing::info!(target: CONSOLE,"metrics at http://{addr}/metrics");
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
            Ok(()) => tracing::info!(target: CONSOLE,"running as {user}"),
            Err(e) => {
                // Stop cleanly (detach, close outputs), then report the failure.
                stop.store(true, Ordering::Relaxed);
                fatal = Some(CaptureError::Privileges {
                    user: user.clone(),
                    source: e,
                });
            }
        }
    }
    // SIGHUP re-reads the allowlist file (registered only when there is one).
    let reload = Arc::new(AtomicBool::new(false));
    let hup = match &config.allow_file {
        Some(_) => Some(
            signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone()).map_err(
                |source| CaptureError::Thread {
                    what: "the SIGHUP handler",
                    source,
                },
            )?,
        ),
        None => None,
    };
    supervisor.wait_for_end(&metrics, &reload, watcher.as_ref());
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
    let mut summary = Summary::live(
        &config.interface,
        &config.output_name,
        attach_mode,
        reports,
        xdp,
        analyzer_reports,
    );
    summary.interface_restarts = restarts;
    Ok(summary)
}

pub(crate) fn join_ports(ports: &PortSet) -> String {
    ports
        .as_slice()
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
