//! `vxdecap relay`: forward mirrored VXLAN to one or more collectors in
//! XDP, with no trip through the kernel's stack. It replaces the DNAT
//! proxy VM that a vTAP aimed at a Private Endpoint needs, and, with
//! several collectors, keeps every inner flow (both directions, both
//! mirror copies) on one collector, which a load balancer hashing the
//! outer headers cannot.
//!
//! - The program ([`crate::steer::relay`], xdp-prog/relay.bpf.c) rewrites
//!   the outer addresses, TTL and checksum and sends the frame on.
//! - [`table`] fills the consistent table that maps a flow's hash to a
//!   collector.
//! - [`fib_watch`] follows the kernel's routing changes and keeps the
//!   program's cache of FIB answers true.
//! - [`health`] polls each collector's `/healthz`; the main thread here
//!   swaps in a new table when one goes or comes back, and publishes the
//!   counters to the summary and the metrics.

pub mod fib_watch;
pub mod health;
pub mod table;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vxdecap_wire::PortSet;

use crate::runtime::metrics_server::{self, Endpoint, Exposition};
use crate::steer::allow::Allowlist;
use crate::steer::relay::{
    FibCacheCounters, RelayCounter, RelayCounters, RelayDest, RelayProgram, MAX_DESTS,
};
use crate::steer::{AttachMode, AttachRequest, SteerError};
use fib_watch::FibWatchStats;
use health::{Health, HealthConfig};

/// How often the main thread looks at the health, the stop flag and the counters.
const TICK: Duration = Duration::from_millis(50);

/// What `vxdecap relay` was asked to do.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The interface the mirrored traffic arrives on.
    pub interface: String,
    /// The collectors (`--to`), in order, all IPv4 or all IPv6.
    pub collectors: Vec<IpAddr>,
    /// UDP destination ports relayed, VXLAN and GENEVE, with the depth limit.
    pub ports: PortSet,
    /// The `--cloud` preset the ports came from, for the start-up line.
    pub cloud: Option<crate::config::cloud::Cloud>,
    /// Sources and VNIs allowed through (from the flags).
    pub allow: Allowlist,
    /// An allowlist file, merged with `allow` and read again on SIGHUP.
    pub allow_file: Option<std::path::PathBuf>,
    /// XDP attach mode.
    pub mode: AttachRequest,
    /// How the collectors' health is polled.
    pub health: HealthConfig,
    /// Serve `/metrics` and `/healthz` there.
    pub metrics: Option<Endpoint>,
    /// Stop after this long.
    pub duration: Option<Duration>,
}

impl RelayConfig {
    /// The checks that need no root and touch nothing: one collector at
    /// least, at most [`MAX_DESTS`], none twice, all of one IP version.
    pub fn check(&self) -> Result<(), RelayError> {
        if self.collectors.is_empty() {
            return Err(RelayError::Config(
                "name at least one collector with --to".into(),
            ));
        }
        if self.collectors.len() > MAX_DESTS {
            return Err(RelayError::Config(format!(
                "{} collectors: at most {MAX_DESTS}",
                self.collectors.len()
            )));
        }
        for (i, a) in self.collectors.iter().enumerate() {
            if self.collectors[..i].contains(a) {
                return Err(RelayError::Config(format!("collector {a} is named twice")));
            }
            if a.is_ipv4() != self.collectors[0].is_ipv4() {
                return Err(RelayError::Config(format!(
                    "collectors {} and {a} differ in IP version: the relay keeps a tunnel's version, so they must be all IPv4 or all IPv6",
                    self.collectors[0]
                )));
            }
        }
        Ok(())
    }
}

/// Relay failures, worded for the user.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Loading, attaching or a map.
    #[error(transparent)]
    Steer(#[from] SteerError),
    /// A bad setting.
    #[error("{0}")]
    Config(String),
    /// No route to a collector.
    #[error("no route to collector {addr}: {detail} (check `ip route get {addr}`)")]
    NoRoute {
        /// The collector.
        addr: IpAddr,
        /// What the kernel said.
        detail: String,
    },
    /// The metrics listener.
    #[error("cannot serve metrics on {endpoint}: {detail}")]
    Metrics {
        /// Where.
        endpoint: String,
        /// Why.
        detail: String,
    },
    /// A thread could not start.
    #[error("cannot start the {what} thread: {detail}")]
    Thread {
        /// Which.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

impl RelayError {
    /// True for what the user has to fix (exit code 2).
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::Config(_) | Self::NoRoute { .. } | Self::Steer(SteerError::Busy { .. })
        ) || matches!(self, Self::Steer(SteerError::NoInterface(_)))
    }
}

/// The source address this host sends from towards `addr`: what the kernel
/// picks for a UDP socket connected there (no packet is sent).
pub fn source_towards(addr: IpAddr) -> Result<IpAddr, RelayError> {
    let no_route = |e: std::io::Error| RelayError::NoRoute {
        addr,
        detail: e.to_string(),
    };
    let socket = unbound_socket(addr).map_err(no_route)?;
    socket.connect((addr, 9)).map_err(no_route)?;
    Ok(socket.local_addr().map_err(no_route)?.ip())
}

/// A UDP socket on any address of `addr`'s family.
fn unbound_socket(addr: IpAddr) -> std::io::Result<UdpSocket> {
    match addr {
        IpAddr::V4(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)),
        IpAddr::V6(_) => UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)),
    }
}

/// Checks that `interface` forwards IPv4 (or IPv6): the kernel's FIB lookup from
/// XDP (`bpf_fib_lookup`) answers only for an interface that does, as a
/// router's; the relay does not change the setting itself.
pub fn check_forwarding(interface: &str, ipv6: bool) -> Result<(), RelayError> {
    let (family, name) = if ipv6 {
        ("IPv6", "ipv6")
    } else {
        ("IPv4", "ipv4")
    };
    let path = format!("/proc/sys/net/{name}/conf/{interface}/forwarding");
    match std::fs::read_to_string(&path) {
        Ok(value) if value.trim() == "1" => Ok(()),
        Ok(_) => Err(RelayError::Config(format!(
            "{family} forwarding is off on {interface}, and the XDP program's FIB lookup needs it on the interface the mirror arrives on: \
             run `sysctl -w net.{name}.conf.{interface}.forwarding=1` (that interface only; the relay forwards only the tunnel ports in XDP, \
             but the kernel then routes other traffic arriving there that is not for this host)"
        ))),
        // No such interface: loading or attaching names it.
        Err(_) => Ok(()),
    }
}

/// What the relay did, for the summary and the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// The program's decisions.
    pub counters: RelayCounters,
    /// Per collector: (address, source, frames, bytes, up).
    pub collectors: Vec<CollectorReport>,
    /// Tables swapped in after a health change.
    pub table_changes: u64,
    /// The FIB cache: frames answered from it, and looked up.
    pub fib: FibCacheCounters,
    /// Why the FIB cache was made stale.
    pub fib_invalidations: FibInvalidations,
}

/// Why the FIB cache was made stale, in a [`RelayReport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FibInvalidations {
    /// On an rtnetlink notification.
    pub events: u64,
    /// On lost notifications (ENOBUFS).
    pub lost: u64,
    /// By the timer.
    pub timer: u64,
    /// The rtnetlink watcher failed: the timer alone keeps the cache true.
    pub watcher_failed: bool,
}

impl FibInvalidations {
    fn of(stats: &FibWatchStats) -> Self {
        Self {
            events: stats.events.load(Ordering::Relaxed),
            lost: stats.lost.load(Ordering::Relaxed),
            timer: stats.timer.load(Ordering::Relaxed),
            watcher_failed: stats.failed.load(Ordering::Relaxed),
        }
    }
}

/// One collector in a [`RelayReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectorReport {
    /// The collector.
    pub addr: IpAddr,
    /// This host's address towards it.
    pub source: IpAddr,
    /// Frames relayed to it.
    pub frames: u64,
    /// Their bytes (Ethernet frames, as relayed).
    pub bytes: u64,
    /// In the table now.
    pub up: bool,
}

impl RelayReport {
    /// The summary printed at exit: every collector, then every reason
    /// with a count; relayed + passed + dropped = frames seen.
    pub fn render(&self, interface: &str) -> String {
        let mut out = String::new();
        let seen: u64 = self.counters.0.iter().sum();
        let relayed = self.counters.relayed();
        let dropped =
            self.counters.get(RelayCounter::DropSource) + self.counters.get(RelayCounter::DropVni);
        let _ = writeln!(
            out,
            "{seen} frames seen on {interface}: {relayed} relayed, {} passed to the kernel, {dropped} dropped",
            seen - relayed - dropped
        );
        for c in &self.collectors {
            let _ = writeln!(
                out,
                "  {} frames ({} bytes) to collector {} from {}{}",
                c.frames,
                c.bytes,
                c.addr,
                c.source,
                if c.up { "" } else { " (down at exit)" }
            );
        }
        for counter in RelayCounter::ALL {
            let n = self.counters.get(counter);
            if n > 0 {
                let _ = writeln!(out, "  {n} {}", counter.name());
            }
        }
        if self.table_changes > 0 {
            let _ = writeln!(
                out,
                "  {} table change(s) after a collector's health changed",
                self.table_changes
            );
        }
        let i = &self.fib_invalidations;
        let _ = writeln!(
            out,
            "  FIB cache: {} hits, {} lookups; made stale on {} routing change(s), {} lost notification(s), {} time(s) by the timer{}",
            self.fib.hits,
            self.fib.lookups,
            i.events,
            i.lost,
            i.timer,
            if i.watcher_failed { " (the rtnetlink watcher failed)" } else { "" }
        );
        out
    }
}

/// The relay's `/metrics` and `/healthz`.
#[derive(Debug)]
pub struct RelayMetrics {
    interface: String,
    report: Mutex<RelayReport>,
}

impl Exposition for RelayMetrics {
    fn render(&self) -> String {
        let report = self.report.lock().map(|r| r.clone()).unwrap_or_default();
        let iface = self.interface.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP vxdecap_relay_frames_total Frames the relay's XDP program decided on, by decision.\n# TYPE vxdecap_relay_frames_total counter\n");
        for counter in RelayCounter::ALL {
            let _ = writeln!(
                out,
                "vxdecap_relay_frames_total{{interface=\"{iface}\",reason=\"{}\"}} {}",
                counter.name(),
                report.counters.get(counter)
            );
        }
        out.push_str("# HELP vxdecap_relay_collector_frames_total Frames relayed to each collector.\n# TYPE vxdecap_relay_collector_frames_total counter\n");
        for c in &report.collectors {
            let _ = writeln!(
                out,
                "vxdecap_relay_collector_frames_total{{collector=\"{}\"}} {}",
                c.addr, c.frames
            );
        }
        out.push_str("# HELP vxdecap_relay_collector_bytes_total Bytes relayed to each collector.\n# TYPE vxdecap_relay_collector_bytes_total counter\n");
        for c in &report.collectors {
            let _ = writeln!(
                out,
                "vxdecap_relay_collector_bytes_total{{collector=\"{}\"}} {}",
                c.addr, c.bytes
            );
        }
        out.push_str("# HELP vxdecap_relay_collector_up 1 while the collector is in the table.\n# TYPE vxdecap_relay_collector_up gauge\n");
        for c in &report.collectors {
            let _ = writeln!(
                out,
                "vxdecap_relay_collector_up{{collector=\"{}\"}} {}",
                c.addr,
                u8::from(c.up)
            );
        }
        let _ = writeln!(
            out,
            "# HELP vxdecap_relay_table_changes_total Tables swapped in after a health change.\n# TYPE vxdecap_relay_table_changes_total counter\nvxdecap_relay_table_changes_total {}",
            report.table_changes
        );
        out.push_str("# HELP vxdecap_relay_fib_cache_total Frames that reached the FIB, answered from the per-CPU cache (hit) or looked up (lookup).\n# TYPE vxdecap_relay_fib_cache_total counter\n");
        for (result, n) in [("hit", report.fib.hits), ("lookup", report.fib.lookups)] {
            let _ = writeln!(
                out,
                "vxdecap_relay_fib_cache_total{{interface=\"{iface}\",result=\"{result}\"}} {n}"
            );
        }
        let i = &report.fib_invalidations;
        out.push_str("# HELP vxdecap_relay_fib_invalidations_total Times the FIB cache was made stale, by cause.\n# TYPE vxdecap_relay_fib_invalidations_total counter\n");
        for (cause, n) in [
            ("routing_change", i.events),
            ("lost_notifications", i.lost),
            ("timer", i.timer),
        ] {
            let _ = writeln!(
                out,
                "vxdecap_relay_fib_invalidations_total{{cause=\"{cause}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP vxdecap_relay_fib_watcher_failed 1 if the rtnetlink watcher failed (the cache is then refreshed by a timer).\n# TYPE vxdecap_relay_fib_watcher_failed gauge\nvxdecap_relay_fib_watcher_failed {}",
            u8::from(i.watcher_failed)
        );
        out
    }

    fn health(&self) -> Result<(), String> {
        let report = self
            .report
            .lock()
            .map_err(|_| "relay state unavailable".to_owned())?;
        if report.collectors.iter().any(|c| c.up) {
            Ok(())
        } else {
            Err("no collector is healthy".into())
        }
    }
}

/// Runs the relay until `stop` is raised or the duration ends; returns
/// what it did. Tells its user what it does through `tracing` events with
/// the target [`crate::report::CONSOLE`] (`relaying on …`).
pub fn run_relay(config: &RelayConfig, stop: Arc<AtomicBool>) -> Result<RelayReport, RelayError> {
    config.check()?;
    check_forwarding(&config.interface, config.collectors[0].is_ipv6())?;
    let dests: Vec<RelayDest> = config
        .collectors
        .iter()
        .map(|&addr| {
            Ok(RelayDest {
                addr,
                source: source_towards(addr)?,
            })
        })
        .collect::<Result<_, RelayError>>()?;
    let keys: Vec<String> = config.collectors.iter().map(ToString::to_string).collect();

    let allow = effective_allowlist(config)?;
    let mut program = RelayProgram::load(&config.interface, &config.ports)?;
    program.set_dests(&dests)?;
    program.set_allowlist(&allow)?;
    program.set_table(&table::fill(&keys, &vec![true; keys.len()]))?;

    // SIGHUP re-reads the allow file; registered for the whole run, as its default action
    // would end the relay.
    let reload = Arc::new(AtomicBool::new(false));
    let _sighup = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .map(SignalGuard)
        .map_err(|e| RelayError::Thread {
            what: "SIGHUP handler",
            detail: e.to_string(),
        })?;
    let metrics = Arc::new(RelayMetrics {
        interface: config.interface.clone(),
        report: Mutex::new(RelayReport::default()),
    });
    let metrics_stop = Arc::new(AtomicBool::new(false));
    let server = match &config.metrics {
        Some(endpoint) => {
            let listeners = metrics_server::bind(endpoint).map_err(|e| RelayError::Metrics {
                endpoint: endpoint.text.clone(),
                detail: e.to_string(),
            })?;
            Some(
                metrics_server::serve(listeners, Arc::clone(&metrics), Arc::clone(&metrics_stop))
                    .map_err(|e| RelayError::Thread {
                    what: "metrics",
                    detail: e.to_string(),
                })?,
            )
        }
        None => None,
    };
    let fib_stats = Arc::new(FibWatchStats::default());
    let watcher_stop = Arc::new(AtomicBool::new(false));
    // Stopped and joined however the relay ends (an error below included).
    let _watcher = fib_watch::spawn(
        program.fib_invalidator(),
        Arc::clone(&fib_stats),
        Arc::clone(&watcher_stop),
    )
    .map(|handle| StopOnDrop(watcher_stop, Some(handle)))
    .map_err(|e| RelayError::Thread {
        what: "FIB watcher",
        detail: e.to_string(),
    })?;
    let health = Arc::new(Health::new(dests.len()));
    let prober_stop = Arc::new(AtomicBool::new(false));
    let prober = health::spawn(
        config.collectors.clone(),
        config.health.clone(),
        Arc::clone(&health),
        Arc::clone(&prober_stop),
    )
    .map_err(|e| RelayError::Thread {
        what: "health",
        detail: e.to_string(),
    })?;

    let mut state = RunState {
        program: &mut program,
        dests: &dests,
        keys: &keys,
        allow,
        fib_stats: &fib_stats,
    };
    let result = attach_and_run(config, &mut state, &health, &metrics, &stop, &reload);

    prober_stop.store(true, Ordering::Relaxed);
    metrics_stop.store(true, Ordering::Relaxed);
    let _ = prober.join();
    if let Some(server) = server {
        let _ = server.join();
    }
    result
}

/// Raises a thread's stop flag and joins it when the relay ends, however it ends.
struct StopOnDrop(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(handle) = self.1.take() {
            let _ = handle.join();
        }
    }
}

/// Unregisters a signal handler when the relay ends, however it ends.
struct SignalGuard(signal_hook::SigId);

impl Drop for SignalGuard {
    fn drop(&mut self) {
        signal_hook::low_level::unregister(self.0);
    }
}

/// The flags' allowlist merged with the allow file's.
fn effective_allowlist(config: &RelayConfig) -> Result<Allowlist, RelayError> {
    match &config.allow_file {
        None => Ok(config.allow.clone()),
        Some(path) => Allowlist::read(path)
            .and_then(|file| config.allow.merged(&file))
            .map_err(|e| RelayError::Config(format!("{}: {e}", path.display()))),
    }
}

/// What the main loop works on.
struct RunState<'a> {
    program: &'a mut RelayProgram,
    dests: &'a [RelayDest],
    keys: &'a [String],
    /// The allowlists in force.
    allow: Allowlist,
    /// Why the FIB cache was made stale.
    fib_stats: &'a FibWatchStats,
}

impl RunState<'_> {
    /// SIGHUP: the allow file again. A bad file, or one that would open a
    /// closed list without saying `any`, keeps the lists in force.
    fn reload(&mut self, config: &RelayConfig) {
        let Some(file) = &config.allow_file else {
            tracing::info!(target: crate::report::CONSOLE, "SIGHUP: no --allow-file, nothing to reload");
            return;
        };
        let next = effective_allowlist(config).and_then(|next| {
            self.allow
                .check_reload(&next)
                .map_err(|e| RelayError::Config(format!("{}: {e}", file.display())))?;
            self.program.set_allowlist(&next)?;
            Ok(next)
        });
        match next {
            Ok(next) => {
                tracing::info!(target: crate::report::CONSOLE, "SIGHUP: allowlist reloaded: {next}");
                self.allow = next;
            }
            Err(e) => tracing::info!(
                target: crate::report::CONSOLE,
                "SIGHUP: allowlist not changed: {e}; still in force: {}",
                self.allow
            ),
        }
    }
}

fn attach_and_run(
    config: &RelayConfig,
    state: &mut RunState<'_>,
    health: &Health,
    metrics: &RelayMetrics,
    stop: &AtomicBool,
    reload: &AtomicBool,
) -> Result<RelayReport, RelayError> {
    let dests = state.dests;
    let mode: AttachMode = state.program.attach(config.mode)?;
    let to: Vec<String> = dests
        .iter()
        .map(|d| format!("{} (from {})", d.addr, d.source))
        .collect();
    tracing::info!(
        target: crate::report::CONSOLE,
        "relaying on {}, {}, XDP {mode} mode, to {}",
        config.interface,
        crate::config::describe_ports(&config.ports, config.cloud),
        to.join(", ")
    );
    prime_neighbours(dests);
    let mut unresolved = 0;
    let mut primed = Instant::now();
    let started = Instant::now();
    let mut generation = 0;
    let mut up = vec![true; dests.len()];
    let mut table_changes = 0;
    loop {
        let (now_generation, now_up) = health.snapshot();
        if now_generation != generation {
            generation = now_generation;
            if now_up != up {
                up = now_up;
                // With every collector down, keep sending to all: a broken
                // health check must not black-hole the mirror.
                let live = if up.iter().any(|&u| u) {
                    up.clone()
                } else {
                    vec![true; up.len()]
                };
                state.program.set_table(&table::fill(state.keys, &live))?;
                table_changes += 1;
            }
        }
        if reload.swap(false, Ordering::Relaxed) {
            state.reload(config);
        }
        let mut report = report(state.program, dests, &up, table_changes)?;
        report.fib_invalidations = FibInvalidations::of(state.fib_stats);
        // Frames passed for want of a neighbour: have the kernel resolve it (twice a second
        // at most).
        let no_neighbour = report.counters.get(RelayCounter::PassNoNeighbour);
        if no_neighbour > unresolved && primed.elapsed() >= Duration::from_millis(500) {
            prime_neighbours(dests);
            primed = Instant::now();
        }
        unresolved = no_neighbour;
        if let Ok(mut shared) = metrics.report.lock() {
            *shared = report.clone();
        }
        if stop.load(Ordering::Relaxed) || config.duration.is_some_and(|d| started.elapsed() >= d) {
            return Ok(report);
        }
        std::thread::sleep(TICK);
    }
}

/// Sends an empty datagram to each collector's discard port (9): the kernel
/// resolves the next hop's MAC for it, which the XDP program's FIB lookup
/// then finds. (The collector answers with an ICMP port unreachable at
/// most.)
fn prime_neighbours(dests: &[RelayDest]) {
    for d in dests {
        if let Ok(socket) = unbound_socket(d.addr) {
            let _ = socket.send_to(&[], (d.addr, 9));
        }
    }
}

fn report(
    program: &RelayProgram,
    dests: &[RelayDest],
    up: &[bool],
    table_changes: u64,
) -> Result<RelayReport, RelayError> {
    let per_dest = program.dest_counters(dests.len())?;
    Ok(RelayReport {
        counters: program.counters()?,
        collectors: dests
            .iter()
            .zip(per_dest)
            .zip(up)
            .map(|((d, (frames, bytes)), &up)| CollectorReport {
                addr: d.addr,
                source: d.source,
                frames,
                bytes,
                up,
            })
            .collect(),
        table_changes,
        fib: program.fib_counters()?,
        fib_invalidations: FibInvalidations::default(),
    })
}
