//! The capture's counters in the Prometheus text exposition format
//! (version 0.0.4), for `--metrics` (served by
//! [`crate::runtime::metrics_server`]).
//!
//! Everything is read from what the workers and analyzer threads already
//! publish (atomics, once per batch or every 250 ms), so a scrape costs the
//! data path nothing. The XDP program's per-CPU counters are read by the
//! main thread, which owns the program, and handed over here.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vxdecap_wire::reassembly::ReassemblyEvent;
use vxdecap_wire::Reject;
use vxdecap_xsk::BindMode;

use crate::report::progress::AnalyzerProgress;
use crate::report::stats::{
    SharedSlow, SharedStats, StageCounter, StageStats, TunnelPath, VniCounts, VniKey,
};
use crate::steer::{XdpCounter, XdpCounters};

pub use crate::report::device::DeviceRow;

/// VNIs listed by name; the rest are summed under `vni="other"`.
pub const TOP_VNIS: usize = 20;

/// One rx queue as the metrics show it.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    /// Rx queue index.
    pub queue: u32,
    /// CPU its worker is pinned to.
    pub cpu: Option<usize>,
    /// Bind mode the kernel granted.
    pub bind_mode: BindMode,
    /// The worker's receive policy (see [`crate::datapath::idle`]).
    pub rx_policy: crate::datapath::idle::RxPolicy,
    /// The worker's published counters.
    pub stage: Arc<SharedStats>,
    /// The worker's VNI table and socket counters.
    pub slow: Arc<SharedSlow>,
    /// The receive device's name when the capture has several (a device
    /// stack), else empty: the `queue` label is then `DEVICE:QUEUE`.
    pub device: String,
}

impl QueueInfo {
    /// The `queue` label: the queue index, prefixed by its device in a stack.
    pub fn label(&self) -> String {
        if self.device.is_empty() {
            self.queue.to_string()
        } else {
            format!("{}:{}", self.device, self.queue)
        }
    }
}

/// Everything a scrape reports.
#[derive(Debug)]
pub struct Metrics {
    interface: String,
    queues: Vec<QueueInfo>,
    analyzers: Vec<(String, Arc<AnalyzerProgress>)>,
    xdp: Mutex<XdpCounters>,
    restarts: Arc<AtomicU64>,
    /// The receive devices (empty for a capture on one device).
    devices: Mutex<Vec<DeviceRow>>,
    /// Why the capture cannot take traffic now, as the main thread last
    /// found it (`None`: it can). See [`Metrics::health`].
    unhealthy: Mutex<Option<String>>,
}

impl Metrics {
    /// Metrics of a capture on `interface`.
    pub fn new(
        interface: &str,
        queues: Vec<QueueInfo>,
        analyzers: Vec<(String, Arc<AnalyzerProgress>)>,
    ) -> Self {
        Self {
            interface: interface.to_owned(),
            queues,
            analyzers,
            xdp: Mutex::new(XdpCounters::default()),
            restarts: Arc::default(),
            devices: Mutex::new(Vec::new()),
            unhealthy: Mutex::new(None),
        }
    }

    /// The main thread's verdict on the capture: `Some(reason)` while it
    /// cannot take traffic (the interface gone, sockets not bound yet,
    /// stopping), `None` while it can.
    pub fn set_unhealthy(&self, reason: Option<String>) {
        if let Ok(mut health) = self.unhealthy.lock() {
            *health = reason;
        }
    }

    /// What `/healthz` answers (a load balancer's probe): `Ok` while the
    /// XDP program is attached, every socket is bound and no output has
    /// failed; otherwise the reason, in one line.
    pub fn health(&self) -> Result<(), String> {
        if let Some(reason) = self.unhealthy.lock().ok().and_then(|h| h.clone()) {
            return Err(reason);
        }
        for (name, progress) in &self.analyzers {
            let failed = progress.write_failed.load(Ordering::Relaxed)
                + progress.after_output_closed.load(Ordering::Relaxed);
            if failed > 0 {
                return Err(format!(
                    "the output of {name} failed: {failed} frame(s) not written"
                ));
            }
        }
        Ok(())
    }

    /// The count of interface restarts (the main thread updates it).
    pub fn restarts(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.restarts)
    }

    /// The queues reported.
    pub fn queues(&self) -> &[QueueInfo] {
        &self.queues
    }

    /// The progress of analyzer `index`, if there is one.
    pub fn analyzer(&self, index: usize) -> Option<&AnalyzerProgress> {
        self.analyzers.get(index).map(|(_, progress)| &**progress)
    }

    /// Stores the receive devices' state (main thread).
    pub fn set_devices(&self, rows: Vec<DeviceRow>) {
        if let Ok(mut devices) = self.devices.lock() {
            *devices = rows;
        }
    }

    /// The receive devices' state, as last stored.
    pub fn devices(&self) -> Vec<DeviceRow> {
        self.devices.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Stores the XDP program's latest counters (main thread).
    pub fn set_xdp(&self, counters: XdpCounters) {
        if let Ok(mut xdp) = self.xdp.lock() {
            *xdp = counters;
        }
    }

    /// The busiest VNIs over all queues, and the frames of all the others.
    pub fn top_vnis(&self, n: usize) -> (Vec<(u32, u64)>, u64) {
        let tables: Vec<VniCounts> = self.queues.iter().map(|q| q.slow.vnis()).collect();
        VniCounts::top(tables.iter(), n)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let iface = escape(&self.interface);
        let stages: Vec<_> = self.queues.iter().map(|q| q.stage.snapshot()).collect();
        self.render_queues(&mut out, &iface, &stages);
        self.render_fragments(&mut out, &stages);
        self.render_tunnels(&mut out, &stages);
        self.render_drops(&mut out, &stages);
        self.render_xdp_and_vnis(&mut out, &iface);
        self.render_analyzers(&mut out);
        self.render_devices(&mut out);
        out
    }

    /// The receive devices of a stack: up or not, and the program's per-device verdicts.
    fn render_devices(&self, out: &mut String) {
        let devices = self.devices();
        if devices.is_empty() {
            return;
        }
        header(
            out,
            "vxdecap_device_up",
            "gauge",
            "Receive devices of the stack (named device, VF, ports): 1 while its sockets are bound.",
        );
        for d in &devices {
            let _ = writeln!(
                out,
                "vxdecap_device_up{{device=\"{}\",role=\"{}\"}} {}",
                escape(&d.device),
                d.role,
                u8::from(d.up)
            );
        }
        header(
            out,
            "vxdecap_device_xdp_frames_total",
            "counter",
            "Steered frames per receive device: redirected to its sockets, or passed for want of a socket on its (device, queue).",
        );
        for d in &devices {
            for (verdict, n) in [("redirected", d.redirected), ("no_socket", d.no_socket)] {
                let _ = writeln!(
                    out,
                    "vxdecap_device_xdp_frames_total{{device=\"{}\",role=\"{}\",verdict=\"{verdict}\"}} {n}",
                    escape(&d.device),
                    d.role
                );
            }
        }
    }

    /// The queues, their frame and byte counters, interface restarts.
    fn render_queues(&self, out: &mut String, iface: &str, stages: &[StageStats]) {
        header(
            out,
            "vxdecap_queue_info",
            "gauge",
            "Rx queues captured: worker CPU, AF_XDP bind mode and receive policy (value 1).",
        );
        for q in &self.queues {
            let cpu = q.cpu.map_or_else(|| "none".to_owned(), |c| c.to_string());
            let _ = writeln!(
                out,
                "vxdecap_queue_info{{interface=\"{iface}\",queue=\"{}\",cpu=\"{cpu}\",bind_mode=\"{}\",rx_policy=\"{}\"}} 1",
                q.label(), q.bind_mode, q.rx_policy
            );
        }
        let per_queue = [
            (
                StageCounter::Received,
                "vxdecap_received_frames_total",
                "Outer frames received from the AF_XDP socket.",
            ),
            (
                StageCounter::ReceivedBytes,
                "vxdecap_received_bytes_total",
                "Bytes of those outer frames.",
            ),
            (
                StageCounter::Delivered,
                "vxdecap_decapsulated_frames_total",
                "Inner frames decapsulated and offered to the analyzers.",
            ),
            (
                StageCounter::DeliveredBytes,
                "vxdecap_decapsulated_bytes_total",
                "Bytes of those inner frames.",
            ),
            (
                StageCounter::NoRxTimestamp,
                "vxdecap_no_rx_timestamp_frames_total",
                "Frames without the XDP receive record, stamped in user space.",
            ),
        ];
        for (counter, name, help) in per_queue {
            header(out, name, "counter", help);
            for (q, s) in self.queues.iter().zip(stages) {
                let _ = writeln!(out, "{name}{{queue=\"{}\"}} {}", q.label(), s.get(counter));
            }
        }
        header(
            out,
            "vxdecap_interface_restarts_total",
            "counter",
            "Times the interface went away and came back (hot-plug), sockets rebuilt.",
        );
        let _ = writeln!(
            out,
            "vxdecap_interface_restarts_total{{interface=\"{iface}\"}} {}",
            self.restarts.load(Ordering::Relaxed)
        );
    }

    /// Outer fragments, the allowlists on reassembled datagrams, truncated mirrors.
    fn render_fragments(&self, out: &mut String, stages: &[StageStats]) {
        header(
            out,
            "vxdecap_outer_fragments_total",
            "counter",
            "Outer IPv4 fragment reassembly, per queue: fragments taken, datagrams reassembled, and fragments or datagrams dropped by reason.",
        );
        for (q, s) in self.queues.iter().zip(stages) {
            for event in ReassemblyEvent::ALL {
                let _ = writeln!(
                    out,
                    "vxdecap_outer_fragments_total{{queue=\"{}\",event=\"{}\"}} {}",
                    q.label(),
                    event.name(),
                    s.reassembly(event)
                );
            }
        }
        header(
            out,
            "vxdecap_fragment_packets_total",
            "counter",
            "Outer IPv4 fragments not handed on as a datagram of their own, in packets, per queue: merged into a reassembled datagram (k-1 of its k fragments), or dropped with their datagram by reason; with the frames written and the other reasons they add up to the frames received.",
        );
        for (q, s) in self.queues.iter().zip(stages) {
            for event in crate::report::summary::FRAGMENT_OUTCOMES {
                let _ = writeln!(
                    out,
                    "vxdecap_fragment_packets_total{{queue=\"{}\",outcome=\"{}\"}} {}",
                    q.label(),
                    crate::report::summary::fragment_reason(event),
                    s.reassembly_packets(event)
                );
            }
        }
        header(
            out,
            "vxdecap_fragments_pending",
            "gauge",
            "Outer IPv4 fragments held by datagrams still being reassembled, per queue.",
        );
        for (q, s) in self.queues.iter().zip(stages) {
            let _ = writeln!(
                out,
                "vxdecap_fragments_pending{{queue=\"{}\"}} {}",
                q.label(),
                s.get(StageCounter::FragmentsPending)
            );
        }
        header(
            out,
            "vxdecap_allowlist_dropped_datagrams_total",
            "counter",
            "Reassembled datagrams dropped in user space by the allowlists (XDP could not see their VXLAN header, or the lists changed since their first fragment), per queue and reason.",
        );
        for (q, s) in self.queues.iter().zip(stages) {
            for counter in [
                StageCounter::FragmentSourceNotAllowed,
                StageCounter::FragmentVniNotAllowed,
            ] {
                let _ = writeln!(
                    out,
                    "vxdecap_allowlist_dropped_datagrams_total{{queue=\"{}\",reason=\"{}\"}} {}",
                    q.label(),
                    counter.name(),
                    s.get(counter)
                );
            }
        }
        header(
            out,
            "vxdecap_truncated_mirror_frames_total",
            "counter",
            "Inner frames the mirror cut short (written with their original length).",
        );
        for (q, s) in self.queues.iter().zip(stages) {
            let _ = writeln!(
                out,
                "vxdecap_truncated_mirror_frames_total{{queue=\"{}\"}} {}",
                q.label(),
                s.get(StageCounter::TruncatedMirror)
            );
        }
    }

    /// Frames per tunnel path, and GENEVE events worth noting.
    fn render_tunnels(&self, out: &mut String, stages: &[StageStats]) {
        header(
            out,
            "vxdecap_tunnel_frames_total",
            "counter",
            "Inner frames decapsulated, per queue and tunnel path: vxlan, geneve, geneve_vxlan (VXLAN inside GENEVE).",
        );
        for (q, s) in self.queues.iter().zip(stages) {
            let geneve = s.get(StageCounter::DeliveredGeneve);
            let nested = s.get(StageCounter::DeliveredGeneveVxlan);
            let vxlan = s
                .get(StageCounter::Delivered)
                .saturating_sub(geneve + nested);
            for (path, n) in TunnelPath::ALL.into_iter().zip([vxlan, geneve, nested]) {
                let _ = writeln!(
                    out,
                    "vxdecap_tunnel_frames_total{{queue=\"{}\",tunnel=\"{}\"}} {n}",
                    q.queue,
                    path.name()
                );
            }
        }
        header(
            out,
            "vxdecap_geneve_frames_total",
            "counter",
            "GENEVE frames delivered with something to note, per queue: a critical option (counted, not obeyed), options running past their length, and the inline load balancer path (AWS options, no Traffic Mirroring VXLAN inside: packets not returned).",
        );
        for (q, s) in self.queues.iter().zip(stages) {
            for counter in [
                StageCounter::GeneveCritical,
                StageCounter::GeneveOptionsMalformed,
                StageCounter::GwlbInline,
            ] {
                let _ = writeln!(
                    out,
                    "vxdecap_geneve_frames_total{{queue=\"{}\",event=\"{}\"}} {}",
                    q.queue,
                    counter.name(),
                    s.get(counter)
                );
            }
        }
    }

    /// Rejects and drops, by reason and cause.
    fn render_drops(&self, out: &mut String, stages: &[StageStats]) {
        header(
            out,
            "vxdecap_rejected_frames_total",
            "counter",
            "Received frames that were not valid VXLAN, by reason.",
        );
        for (q, s) in self.queues.iter().zip(stages) {
            for reason in Reject::ALL {
                let _ = writeln!(
                    out,
                    "vxdecap_rejected_frames_total{{queue=\"{}\",reason=\"{}\"}} {}",
                    q.label(),
                    reason.name(),
                    s.rejected(reason)
                );
            }
        }
        header(out, "vxdecap_dropped_frames_total", "counter", "Frames lost before an analyzer, by cause: AF_XDP socket counters (XDP_STATISTICS) and analyzer backpressure.");
        for (q, s) in self.queues.iter().zip(stages) {
            let xsk = q.slow.xsk();
            for (cause, n) in [
                ("xsk_rx_ring_full", xsk.rx_ring_full),
                ("xsk_fill_ring_empty", xsk.rx_fill_ring_empty),
                ("xsk_rx_dropped", xsk.rx_dropped),
                ("xsk_rx_invalid_descs", xsk.rx_invalid_descs),
            ] {
                let _ = writeln!(
                    out,
                    "vxdecap_dropped_frames_total{{queue=\"{}\",cause=\"{cause}\"}} {n}",
                    q.label()
                );
            }
            for (a, (name, _)) in self.analyzers.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "vxdecap_dropped_frames_total{{queue=\"{}\",cause=\"analyzer_backpressure\",analyzer=\"{}\"}} {}",
                    q.label(),
                    escape(name),
                    s.analyzer_backpressure(a)
                );
            }
        }
    }

    /// The XDP program's decisions and the busiest VNIs.
    fn render_xdp_and_vnis(&self, out: &mut String, iface: &str) {
        header(out, "vxdecap_xdp_frames_total", "counter", "Decisions of the XDP steering program: redirected to AF_XDP, or passed to the kernel and why.");
        let xdp = self.xdp.lock().map(|x| *x).unwrap_or_default();
        for counter in XdpCounter::ALL {
            let _ = writeln!(
                out,
                "vxdecap_xdp_frames_total{{interface=\"{iface}\",decision=\"{}\"}} {}",
                counter.name(),
                xdp.get(counter)
            );
        }
        header(
            out,
            "vxdecap_vni_frames_total",
            "counter",
            "Inner frames per VNI: the busiest by name, the rest as vni=\"other\".",
        );
        let (top, other) = self.top_vnis(TOP_VNIS);
        for (vni, n) in top {
            let vni = VniKey(vni);
            let _ = writeln!(out, "vxdecap_vni_frames_total{{vni=\"{vni}\"}} {n}");
        }
        let _ = writeln!(out, "vxdecap_vni_frames_total{{vni=\"other\"}} {other}");
    }

    /// Per analyzer: frames, losses, receive-to-analyzer latency.
    fn render_analyzers(&self, out: &mut String) {
        header(
            out,
            "vxdecap_analyzer_frames_total",
            "counter",
            "Inner frames handed to each analyzer.",
        );
        for (name, progress) in &self.analyzers {
            let _ = writeln!(
                out,
                "vxdecap_analyzer_frames_total{{analyzer=\"{}\"}} {}",
                escape(name),
                progress.written.load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "vxdecap_analyzer_lost_frames_total",
            "counter",
            "Inner frames meant for an analyzer that its output did not write: output_write_failed (taken, then a write error such as a full disk or a closed pipe), after_output_closed (arrived after that error).",
        );
        for (name, progress) in &self.analyzers {
            for (reason, n) in [
                ("output_write_failed", &progress.write_failed),
                ("after_output_closed", &progress.after_output_closed),
            ] {
                let _ = writeln!(
                    out,
                    "vxdecap_analyzer_lost_frames_total{{analyzer=\"{}\",reason=\"{reason}\"}} {}",
                    escape(name),
                    n.load(Ordering::Relaxed)
                );
            }
        }
        header(out, "vxdecap_receive_latency_seconds", "gauge", "Time from the XDP receive timestamp to the hand-over to the analyzer, over the run so far (hdrhistogram, per worker, merged).");
        for (name, progress) in &self.analyzers {
            if let Some(l) = progress.latency() {
                for (q, ns) in [
                    ("0.5", l.p50),
                    ("0.99", l.p99),
                    ("0.999", l.p999),
                    ("1", l.max),
                ] {
                    let _ = writeln!(
                        out,
                        "vxdecap_receive_latency_seconds{{analyzer=\"{}\",quantile=\"{q}\"}} {}",
                        escape(name),
                        ns as f64 / 1e9
                    );
                }
            }
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_every_family_once_and_escapes_labels() {
        let stage = Arc::new(SharedStats::default());
        let slow = Arc::new(SharedSlow::default());
        let progress = Arc::new(AnalyzerProgress::default());
        let mut vnis = VniCounts::default();
        vnis.add(27);
        slow.publish_vnis(&vnis);
        let metrics = Metrics::new(
            "eth\"1",
            vec![QueueInfo {
                device: String::new(),
                queue: 0,
                cpu: Some(1),
                bind_mode: BindMode::Copy,
                rx_policy: crate::datapath::idle::RxPolicy::Sleep,
                stage,
                slow,
            }],
            vec![("pcap".into(), Arc::clone(&progress))],
        );
        progress.write_failed.store(7, Ordering::Relaxed);
        let text = metrics.render();
        assert!(
            text.contains(
                "vxdecap_analyzer_lost_frames_total{analyzer=\"pcap\",reason=\"output_write_failed\"} 7"
            ),
            "{text}"
        );
        assert!(text.contains("interface=\"eth\\\"1\""), "{text}");
        assert!(
            text.contains("vxdecap_vni_frames_total{vni=\"27\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vxdecap_vni_frames_total{vni=\"other\"} 0"),
            "{text}"
        );
        assert!(text.contains("bind_mode=\"copy\""), "{text}");
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
        let mut names: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(|l| l.split(' ').nth(2).unwrap_or_default())
            .collect();
        let all = names.len();
        names.dedup();
        assert_eq!(names.len(), all, "each family declared once");
    }
}
