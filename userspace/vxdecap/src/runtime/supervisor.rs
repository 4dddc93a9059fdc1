//! The main thread while a live capture runs: stop conditions, `--stats`
//! lines, metrics, SIGHUP allowlist reloads, the kernel's receive work, and
//! the interface going away and coming back (hot-plug).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::datapath::idle::RxPolicy;
use crate::datapath::stage::SharedAllowlist;
use crate::error::error_chain;
use crate::report::metrics::Metrics;
use crate::report::stats_line::stats_line;
use crate::report::CONSOLE;
use crate::runtime::config::CaptureConfig;
use crate::runtime::device::{interface_mac, interface_up};
use crate::runtime::hotplug::{LinkEvent, LinkWatcher};
use crate::runtime::preflight::effective_allowlist;
use crate::runtime::receive_work::{NapiDeferral, ReceiveWork};
use crate::runtime::worker::{Control, SocketReady};
use crate::steer::allow::Allowlist;
use crate::steer::{Steering, XdpCounters};

/// The main thread while capturing: stop conditions, stats lines, metrics,
/// SIGHUP, and the interface going away and coming back.
pub(crate) struct Supervisor<'a> {
    pub(crate) config: &'a CaptureConfig,
    pub(crate) control: &'a Control,
    /// The attached program; `None` while the interface is gone.
    pub(crate) steering: Option<Steering>,
    /// XDP counters of program instances before this one.
    pub(crate) xdp_before: XdpCounters,
    pub(crate) ifindex: u32,
    pub(crate) mac: Option<Vec<u8>>,
    /// Times the interface came back.
    pub(crate) restarts: u64,
    pub(crate) metrics_restarts: Arc<AtomicU64>,
    pub(crate) setup: mpsc::Receiver<SocketReady>,
    pub(crate) last_poll: Instant,
    /// The allowlists in force: changed only by a SIGHUP reload that passes
    /// [`Allowlist::check_reload`], re-applied when the interface comes back.
    pub(crate) allow: Allowlist,
    /// The same lists, for the workers, which check reassembled datagrams
    /// against them (lock-free reads): kept equal to the XDP program's.
    pub(crate) shared_allow: SharedAllowlist,
    /// The device's interrupt deferral while workers busy-poll it.
    pub(crate) deferral: Option<NapiDeferral>,
    /// The workers' CPUs, in worker order.
    pub(crate) worker_cpus: Vec<Option<usize>>,
    /// Where the kernel's receive work ran at the last look, and when that was.
    pub(crate) receive_work: ReceiveWork,
    pub(crate) last_receive_check: Option<Instant>,
    /// The rx queues whose sockets are registered with the program now.
    pub(crate) bound_queues: BTreeSet<u32>,
}

impl<'a> Supervisor<'a> {
    /// The main thread's watch over a capture whose program `steering`
    /// enforces `allow` (also in `shared_allow` for the workers).
    pub(crate) fn new(
        config: &'a CaptureConfig,
        control: &'a Control,
        steering: Steering,
        setup: mpsc::Receiver<SocketReady>,
        (allow, shared_allow): (Allowlist, SharedAllowlist),
        worker_cpus: Vec<Option<usize>>,
    ) -> Self {
        Supervisor {
            config,
            control,
            steering: Some(steering),
            xdp_before: XdpCounters::default(),
            ifindex: nix::net::if_::if_nametoindex(config.interface.as_str()).unwrap_or(0),
            mac: interface_mac(&config.interface),
            restarts: 0,
            metrics_restarts: Arc::default(),
            setup,
            last_poll: Instant::now(),
            allow,
            shared_allow,
            deferral: None,
            worker_cpus,
            receive_work: ReceiveWork::default(),
            last_receive_check: None,
            bound_queues: BTreeSet::new(),
        }
    }

    pub(crate) fn xdp_totals(&self) -> XdpCounters {
        let now = self
            .steering
            .as_ref()
            .and_then(|s| s.counters().ok())
            .unwrap_or_default();
        let mut total = self.xdp_before;
        total.merge(&now);
        total
    }

    pub(crate) fn wait_for_end(
        &mut self,
        metrics: &Metrics,
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
            metrics.set_unhealthy(self.unhealthy());
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
                    tracing::info!(
                        target: CONSOLE,
                        "{}",
                        stats_line(metrics, &xdp, now - last.0, &mut last)
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
        if self.config.allow_file.is_none() {
            tracing::info!(target: CONSOLE, "SIGHUP: no --allow-file, nothing to reload");
            return;
        }
        let result = self.apply_allow_file();
        match result {
            Ok(next) => {
                tracing::info!(target: CONSOLE,"SIGHUP: allowlist reloaded: {next}");
                self.shared_allow.store(Arc::new(next.clone()));
                self.allow = next;
            }
            Err(e) => {
                let why = error_chain(&*e);
                tracing::warn!(error = %why, "allowlist reload refused");
                tracing::info!(
                    target: CONSOLE,
                    "SIGHUP: allowlist not changed: {why}; still in force: {}",
                    self.allow
                );
            }
        }
    }

    /// Reads the allow file again and applies it to the XDP program, if
    /// it may replace the lists in force.
    fn apply_allow_file(&mut self) -> Result<Allowlist, Box<dyn std::error::Error>> {
        let next = effective_allowlist(self.config)?;
        if let Err(e) = self.allow.check_reload(&next) {
            let file = self
                .config
                .allow_file
                .as_deref()
                .unwrap_or_else(|| Path::new("-"));
            return Err(e.at(file.display()).into());
        }
        if let Some(steering) = &mut self.steering {
            steering.set_allowlist(&next)?;
        } // else applied when the interface comes back
        Ok(next)
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
                tracing::info!(
                    target: CONSOLE,
                    "worker {i} ({cpu}) {} the kernel's receive work ({work})",
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
        self.bound_queues.clear();
        tracing::info!(target: CONSOLE,"{name} went away; waiting for it to come back (outputs stay open)");
        tracing::warn!(interface = name, "interface gone");
    }

    fn interface_back(&mut self, name: &str, index: u32) {
        let config = self.config;
        if let Err(e) = crate::runtime::privs::raise() {
            tracing::warn!(error = %error_chain(&e), "cannot raise capabilities");
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
                    name.clone_into(&mut n);
                }
                self.restarts += 1;
                self.metrics_restarts
                    .store(self.restarts, Ordering::Relaxed);
                // Even epoch: workers open new sockets and report them.
                self.control.epoch.fetch_add(1, Ordering::AcqRel);
                tracing::info!(
                    target: CONSOLE,
                    "{name} is back (ifindex {index}), XDP {mode} mode; reopening the sockets"
                );
            }
            Err(e) => {
                // Tried again on the next event or poll.
                tracing::info!(target: CONSOLE,"{name} is back but cannot be captured yet: {e}");
            }
        }
    }

    /// Why the capture cannot take traffic now, if it cannot (for `/healthz`).
    fn unhealthy(&self) -> Option<String> {
        let (attached, bound, queues) = (
            self.steering.is_some(),
            self.bound_queues.len(),
            self.worker_cpus.len(),
        );
        // Every 20 ms: the name is looked up only when there is something to say.
        if attached && bound >= queues {
            return None;
        }
        unhealthy(&self.current_name(), attached, bound, queues)
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
                        self.bound_queues.insert(ready.queue);
                        tracing::info!(
                            target: CONSOLE,
                            "queue {} capturing again ({}, receive policy {})",
                            ready.queue, bound.mode, bound.policy
                        );
                        if bound.policy == RxPolicy::BusyPoll && self.deferral.is_none() {
                            self.deferral = defer_interrupts(&self.current_name());
                        }
                    }
                    Err(e) => tracing::info!(target: CONSOLE,"queue {}: {e}", ready.queue),
                },
                Err(e) => tracing::info!(
                    target: CONSOLE,
                    "queue {} not reopened: {}",
                    ready.queue,
                    error_chain(&e)
                ),
            }
        }
    }
}

/// Sets the device's interrupt deferral for busy polling; a device that
/// refuses it (no sysfs, not permitted) is warned about: busy polling then
/// still runs, with interrupts competing.
pub(crate) fn defer_interrupts(interface: &str) -> Option<NapiDeferral> {
    match NapiDeferral::apply(interface) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(target: CONSOLE,"cannot set napi_defer_hard_irqs and gro_flush_timeout on {interface} for busy polling: {e}");
            None
        }
    }
}

/// The reason a capture on `interface` cannot take traffic: its program is
/// not `attached` (the interface is gone), or only `bound` of its `queues`
/// sockets are registered (being reopened); `None` when it can.
pub(crate) fn unhealthy(
    interface: &str,
    attached: bool,
    bound: usize,
    queues: usize,
) -> Option<String> {
    if !attached {
        return Some(format!(
            "{interface} is gone: waiting for it to come back (no XDP program attached)"
        ));
    }
    (bound < queues).then(|| {
        format!("{interface}: {bound} of {queues} AF_XDP socket(s) bound; reopening the others")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_only_with_the_program_attached_and_every_socket_bound() {
        assert_eq!(unhealthy("eth1", true, 2, 2), None);
        let gone = unhealthy("eth1", false, 0, 2).expect("unhealthy");
        assert!(gone.starts_with("eth1 is gone"), "{gone}");
        assert_eq!(
            unhealthy("eth1", true, 1, 2).as_deref(),
            Some("eth1: 1 of 2 AF_XDP socket(s) bound; reopening the others")
        );
    }
}
