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
use crate::report::device::DeviceRow;
use crate::report::metrics::Metrics;
use crate::report::stats_line::stats_line;
use crate::report::CONSOLE;
use crate::runtime::config::CaptureConfig;
use crate::runtime::device::{interface_mac, interface_up};
use crate::runtime::hotplug::{LinkEvent, LinkWatcher};
use crate::runtime::preflight::effective_allowlist;
use crate::runtime::receive_work::{NapiDeferral, ReceiveWork};
use crate::runtime::stack::{attach_stack, StackDevice};
use crate::runtime::stack::{is_vf_of, master, StackRole};
use crate::runtime::worker::{Control, SocketReady};
use crate::steer::allow::Allowlist;
use crate::steer::{DeviceCounters, Steering, XdpCounters, XdpLinkId};

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
    /// The workers whose sockets are registered with the program now.
    pub(crate) bound_queues: BTreeSet<usize>,
    /// Each worker's (receive device in `stack`, XSKMAP slot).
    pub(crate) workers: Vec<(usize, u32)>,
    /// The receive devices.
    pub(crate) stack: Vec<StackDevice>,
    /// Each receive device's counters under the ifindexes it had before.
    pub(crate) device_before: Vec<DeviceCounters>,
    /// Links to devices that left the stack, by ifindex: kept attached so
    /// that frames still arriving there are counted (no_socket), detached
    /// when the device is deleted or its successor comes.
    pub(crate) retired_links: Vec<(u32, XdpLinkId)>,
    /// Transitions of the receive devices, for the summary.
    pub(crate) device_events: Vec<String>,
    /// When the capture started (device events are timed from it).
    pub(crate) started: Instant,
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
            workers: Vec::new(),
            stack: Vec::new(),
            device_before: Vec::new(),
            retired_links: Vec::new(),
            device_events: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Each receive device: up or not, and the program's verdicts on its
    /// frames over every ifindex it had; then `other`, for steered frames
    /// from devices outside the stack, when there were any.
    pub(crate) fn device_rows(&self) -> Vec<DeviceRow> {
        let now = self
            .steering
            .as_ref()
            .map(Steering::device_counters)
            .unwrap_or_default();
        let mut rows = self
            .stack
            .iter()
            .enumerate()
            .map(|(d, dev)| {
                // Row d counts the device under every ifindex it had.
                let mut c = self.device_before.get(d).copied().unwrap_or_default();
                if let Some(current) = now.get(d) {
                    c.merge(current);
                }
                DeviceRow {
                    device: dev.device.name.clone(),
                    role: dev.device.role.as_str().to_owned(),
                    // Up: there, with the sockets of all its queues bound.
                    up: dev.present
                        && self.steering.is_some()
                        && (0..self.workers.len())
                            .filter(|&w| self.workers[w].0 == d && self.socket_expected(w))
                            .all(|w| self.bound_queues.contains(&w)),
                    redirected: c.redirected,
                    no_socket: c.no_socket,
                }
            })
            .collect::<Vec<_>>();
        // Steered frames from devices that are not (or no longer) in the
        // stack: counted in the program's last row.
        let mut other = self
            .device_before
            .get(self.stack.len())
            .copied()
            .unwrap_or_default();
        if let Some(current) = now.get(crate::steer::MAX_DEVICES) {
            other.merge(current);
        }
        if other != DeviceCounters::default() {
            rows.push(DeviceRow {
                device: "other".to_owned(),
                role: "none".to_owned(),
                up: false,
                redirected: other.redirected,
                no_socket: other.no_socket,
            });
        }
        rows
    }

    /// The program was dropped (the named device went away): each device's
    /// counts so far are kept.
    fn keep_device_counts(&mut self) {
        let rows = self.device_rows();
        self.device_before = rows
            .iter()
            .map(|r| DeviceCounters {
                redirected: r.redirected,
                no_socket: r.no_socket,
            })
            .collect();
        self.retired_links.clear();
    }

    /// Worker `w` should have a socket bound now: its device is there, with
    /// its queue (a VF may come back with fewer queues; the worker keeps
    /// trying, and frames of a queue without a socket are counted).
    fn socket_expected(&self, w: usize) -> bool {
        let (d, slot) = self.workers[w];
        self.stack
            .get(d)
            .is_none_or(|s| s.present && slot - s.base < s.device.queues)
    }

    /// A transition of a receive device: in the log, the console and the summary.
    fn device_event(&mut self, text: String) {
        tracing::info!(target: CONSOLE, "{text}");
        tracing::info!(event = %text, "receive device transition");
        let at = self.started.elapsed().as_secs_f64();
        self.device_events.push(format!("+{at:.3}s {text}"));
    }

    /// The VF (or a port) went away: the program stops steering to it, its
    /// sockets close (which empties their XSKMAP slots), and the capture
    /// goes on through the other devices.
    fn device_gone(&mut self, d: usize, why: &str) {
        let (name, ifindex, role) = {
            let dev = &self.stack[d];
            (dev.device.name.clone(), dev.device.ifindex, dev.device.role)
        };
        if let Some(steering) = self.steering.as_mut() {
            // Frames still arriving there pass, counted in its row as
            // no_socket (the program stays until the device is deleted).
            let (base, row) = (self.stack[d].base, d as u32);
            if let Err(e) = steering.set_device(ifindex, base, 0, row) {
                tracing::warn!(device = %name, error = %e, "cannot stop steering to the device");
            }
            if let Some(link) = self.stack[d].link.take() {
                self.retired_links.push((ifindex, link));
            }
            for &(device, slot) in &self.workers {
                if device == d {
                    let _ = steering.unregister_socket(slot);
                }
            }
        }
        self.stack[d].present = false;
        self.control.devices[d].set_present(false);
        let workers = &self.workers;
        self.bound_queues.retain(|&w| workers[w].0 != d);
        let others: Vec<String> = self
            .stack
            .iter()
            .filter(|s| s.present)
            .map(|s| s.device.name.clone())
            .collect();
        self.device_event(format!(
            "{name} ({role}, ifindex {ifindex}) {why}: its sockets are closed; capturing through {}",
            if others.is_empty() { "nothing until it comes back".to_owned() } else { others.join(", ") }
        ));
    }

    /// The VF (or a port) came back, maybe renamed, with a new ifindex:
    /// steer to it, attach where the policy says, and open its sockets again.
    fn device_back(&mut self, d: usize, name: &str, ifindex: u32) {
        let config = self.config;
        let Some(steering) = self.steering.as_mut() else {
            return;
        };
        let (base, capacity) = (self.stack[d].base, self.stack[d].capacity);
        // Its predecessor is gone or left the stack: no more counting there.
        for (old, link) in self.retired_links.drain(..) {
            steering.detach(link);
            let _ = steering.remove_device(old);
        }
        if let Err(e) = steering.set_device(ifindex, base, capacity, d as u32) {
            tracing::info!(target: CONSOLE, "{name} is back but cannot be steered to yet: {e}");
            return;
        }
        let dev = &mut self.stack[d];
        if dev.device.attach == crate::runtime::stack::Attach::Here {
            let request = dev.device.attach_request(config.mode.attach());
            match steering.attach_also(name, request) {
                Ok((_, link)) => dev.link = Some(link),
                Err(e) => {
                    let _ = steering.remove_device(ifindex);
                    tracing::info!(target: CONSOLE, "{name} is back but cannot be captured yet: {e}");
                    return;
                }
            }
        }
        let old = std::mem::replace(&mut dev.device.name, name.to_owned());
        dev.device.ifindex = ifindex;
        dev.device.queues = crate::runtime::device::rx_queue_count(name).unwrap_or(1);
        let queues = dev.device.queues;
        dev.present = true;
        let role = dev.device.role;
        if let Ok(mut n) = self.control.devices[d].name.lock() {
            name.clone_into(&mut n);
        }
        self.control.devices[d].set_present(true);
        let renamed = if old == name {
            String::new()
        } else {
            format!(", was {old}")
        };
        let fewer = match queues.cmp(&capacity) {
            std::cmp::Ordering::Less => format!(
                " ({queues} rx queue(s) of the {capacity} it had: its other workers wait for theirs)"
            ),
            std::cmp::Ordering::Greater => format!(
                " ({queues} rx queues; sockets on the first {capacity}, as at start: frames of the others are counted as no_socket)"
            ),
            std::cmp::Ordering::Equal => String::new(),
        };
        self.device_event(format!(
            "{name} ({role}, ifindex {ifindex}{renamed}) came back: binding its sockets again{fewer}"
        ));
    }

    /// A receive device was renamed (udev renames a VF that netvsc
    /// registered as `ethN`, docs/azure.md §5): its workers open their
    /// sockets under the new name from now on.
    fn device_renamed(&mut self, d: usize, name: &str) {
        let old = std::mem::replace(&mut self.stack[d].device.name, name.to_owned());
        if let Ok(mut n) = self.control.devices[d].name.lock() {
            name.clone_into(&mut n);
        }
        let role = self.stack[d].device.role;
        self.device_event(format!("{old} ({role}) is now named {name}"));
    }

    /// Link events for the receive devices of a stack other than the named
    /// one: the VF leaving (RTM_DELLINK, or its master cleared) and coming
    /// back (a new device with the named device as master and its MAC).
    fn on_stack_event(&mut self, event: &LinkEvent) {
        if self.stack.len() < 2 || self.steering.is_none() {
            return;
        }
        let named = self.current_name();
        match event {
            LinkEvent::Gone { index, .. } => {
                if let Some(d) = self.stack_device(*index) {
                    self.device_gone(d, "went away");
                }
                if let Some(at) = self.retired_links.iter().position(|(i, _)| i == index) {
                    let (_, link) = self.retired_links.remove(at);
                    if let Some(steering) = self.steering.as_mut() {
                        steering.detach(link);
                        let _ = steering.remove_device(*index);
                    }
                }
            }
            LinkEvent::New { index, name, .. } => {
                if let Some(d) = self.stack_device(*index) {
                    if master(name).as_deref() != Some(named.as_str()) {
                        self.device_gone(d, "left its master");
                    } else if *name != self.stack[d].device.name {
                        self.device_renamed(d, name);
                    }
                    return;
                }
                self.adopt(&named, name, *index);
            }
        }
    }

    /// The present device (not the named one) with this ifindex.
    fn stack_device(&self, ifindex: u32) -> Option<usize> {
        self.stack.iter().position(|s| {
            s.present && s.device.ifindex == ifindex && s.device.role != StackRole::Named
        })
    }

    /// Takes `name` as the absent device of its role, if it is one for `named`.
    fn adopt(&mut self, named: &str, name: &str, ifindex: u32) {
        let role = if is_vf_of(named, name) {
            StackRole::Vf
        } else if master(name).as_deref() == Some(named) {
            StackRole::Port
        } else {
            return;
        };
        if let Some(d) = self
            .stack
            .iter()
            .position(|s| !s.present && s.device.role == role)
        {
            self.device_back(d, name, ifindex);
        }
    }

    /// The safety net for missed link events: twice a second, each device
    /// of the stack by name and the named device's lowers.
    fn poll_stack(&mut self) {
        if self.stack.len() < 2 || self.steering.is_none() {
            return;
        }
        let named = self.current_name();
        for d in 0..self.stack.len() {
            let dev = &self.stack[d];
            if dev.present && dev.device.role != StackRole::Named {
                let now = nix::net::if_::if_nametoindex(dev.device.name.as_str()).unwrap_or(0);
                if now != dev.device.ifindex {
                    self.device_gone(d, "went away");
                } else if master(&dev.device.name).as_deref() != Some(named.as_str()) {
                    self.device_gone(d, "left its master");
                }
            }
        }
        if self.stack.iter().any(|s| !s.present) {
            for lower in crate::runtime::stack::lowers(&named) {
                let Ok(index) = nix::net::if_::if_nametoindex(lower.as_str()) else {
                    continue;
                };
                if !self
                    .stack
                    .iter()
                    .any(|s| s.present && s.device.ifindex == index)
                {
                    self.adopt(&named, &lower, index);
                }
            }
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
                if self.stack.len() > 1 {
                    metrics.set_devices(self.device_rows());
                }
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
        self.on_stack_event(&event);
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
        self.poll_stack();
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
        self.keep_device_counts();
        if let Some(steering) = self.steering.take() {
            let now = steering.counters().unwrap_or_default();
            self.xdp_before.merge(&now);
        }
        // Its settings went with the device; a new one is set when a socket busy-polls again.
        self.deferral = None;
        // Odd epochs: workers close their sockets and wait.
        for device in &self.control.devices {
            device.set_present(false);
        }
        self.bound_queues.clear();
        tracing::info!(target: CONSOLE,"{name} went away; waiting for it to come back (outputs stay open)");
        tracing::warn!(interface = name, "interface gone");
    }

    fn interface_back(&mut self, name: &str, index: u32) {
        let config = self.config;
        if let Err(e) = crate::runtime::privs::raise() {
            tracing::warn!(error = %error_chain(&e), "cannot raise capabilities");
        }
        let stack = &mut self.stack;
        for d in stack.iter_mut() {
            if d.device.role == StackRole::Named {
                d.device.ifindex = index;
                name.clone_into(&mut d.device.name);
            } else {
                // A lower device is still in the stack when it is there and
                // still has the named device as its master.
                let there = nix::net::if_::if_nametoindex(d.device.name.as_str()).unwrap_or(0);
                d.present = there != 0 && master(&d.device.name).as_deref() == Some(name);
                d.device.ifindex = if d.present { there } else { 0 };
            }
        }
        let attach = Steering::load_with(name, &config.ports, config.reassembly.is_some())
            .and_then(|mut s| {
                s.set_allowlist(&self.allow)?;
                let mode = attach_stack(&mut s, config, stack)?;
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
                // Even epochs: workers open new sockets and report them.
                for (d, device) in self.control.devices.iter().enumerate() {
                    if self
                        .stack
                        .get(d)
                        .is_none_or(|s| s.device.role == StackRole::Named)
                    {
                        if let Ok(mut n) = device.name.lock() {
                            name.clone_into(&mut n);
                        }
                    }
                    device.set_present(self.stack.get(d).is_none_or(|s| s.present));
                }
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
        // A VF away for servicing leaves the capture healthy: the named
        // device takes its traffic.
        let expected = (0..self.workers.len())
            .filter(|&w| self.socket_expected(w))
            .count();
        let (attached, bound, queues) = (
            self.steering.is_some(),
            self.bound_queues.len(),
            if self.workers.is_empty() {
                self.worker_cpus.len()
            } else {
                expected
            },
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
            let (device, slot) = self
                .workers
                .get(ready.worker)
                .copied()
                .unwrap_or((0, ready.queue));
            let epoch = self.control.devices[device].epoch.load(Ordering::Acquire);
            let (Some(steering), true) = (self.steering.as_mut(), ready.epoch == epoch) else {
                continue; // a socket of an epoch that is over
            };
            let label = match self.stack.get(device) {
                Some(s) if self.stack.len() > 1 => {
                    format!("{} queue {}", s.device.name, ready.queue)
                }
                _ => format!("queue {}", ready.queue),
            };
            match ready.result {
                Ok(bound) => match steering.register_socket(slot, bound.fd) {
                    Ok(()) => {
                        self.bound_queues.insert(ready.worker);
                        tracing::info!(
                            target: CONSOLE,
                            "{label} capturing again ({}, receive policy {})",
                            bound.mode, bound.policy
                        );
                        if bound.policy == RxPolicy::BusyPoll && self.deferral.is_none() {
                            self.deferral = defer_interrupts(&self.current_name());
                        }
                    }
                    Err(e) => tracing::info!(target: CONSOLE, "{label}: {e}"),
                },
                // The worker keeps trying, backing off (said once).
                Err(e) => tracing::info!(
                    target: CONSOLE,
                    "{label} not reopened: {}; trying again until it opens",
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
