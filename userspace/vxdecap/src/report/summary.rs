//! The end-of-run summary: what was written, and every packet not written
//! under a named reason (tcpdump's "captured / received / dropped", finer).

use std::fmt::Write as _;

use vxdecap_wire::reassembly::ReassemblyEvent;
use vxdecap_wire::Reject;
use vxdecap_xsk::BindMode;
use vxdecap_xsk::XskStatistics;

use crate::analyzer::AnalyzerCounts;
use crate::datapath::idle::RxPolicy;
use crate::input::InputReport;
use crate::report::progress::{AnalyzerReport, LatencySummary};
use crate::report::stats::{StageCounter, StageStats, VniCounts};
use crate::steer::{AttachMode, XdpCounter, XdpCounters};

/// Totals of one run, live or offline.
#[derive(Debug)]
pub struct Summary {
    /// Interface or input file.
    pub source: String,
    /// Where the frames went.
    pub output: String,
    /// XDP attach mode (live only).
    pub attach: Option<AttachMode>,
    /// Per-queue reports (live only).
    pub queues: Vec<QueueReport>,
    /// Decapsulation counters over all queues.
    pub stage: StageStats,
    /// XDP program counters (live only).
    pub xdp: Option<XdpCounters>,
    /// Kernel socket counters over all queues (live only).
    pub xsk: XskStatistics,
    /// Frames the first analyzer passed on (received, less what it counted
    /// as not passed on: filtered out, dropped by a route, …).
    pub written: u64,
    /// Frames decapsulated after the `-c` limit.
    pub after_count_limit: u64,
    /// Frames decapsulated after the output closed.
    pub after_output_closed: u64,
    /// Why the output failed, if it did.
    pub output_error: Option<String>,
    /// Receive-to-analyzer latency (live only).
    pub latency: Option<LatencySummary>,
    /// Every analyzer, the first being the one the fields above describe.
    pub analyzers: Vec<AnalyzerSummary>,
    /// Inner frames per VNI: the busiest, and the sum of all others.
    pub vnis: (Vec<(u32, u64)>, u64),
    /// Times the interface went away and came back (live only).
    pub interface_restarts: u64,
    /// The receive devices of a stack at the end (empty for one device).
    pub devices: Vec<crate::report::device::DeviceRow>,
    /// Receive devices going away and coming back (VF servicing), in order.
    pub device_events: Vec<String>,
    /// What the capture file reader saw (offline only): packets it could
    /// not hand on, odd records, skipped blocks, why it stopped early.
    pub input: Option<InputReport>,
}

/// What one worker saw, read when it stopped.
#[derive(Clone, Debug)]
pub struct QueueReport {
    /// The receive device, when the capture had several (a device stack);
    /// else empty.
    pub device: String,
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
    pub vnis: VniCounts,
}

impl QueueReport {
    /// The queue as the summary names it: its index, prefixed by its
    /// device in a stack (`eth1:0`).
    pub fn label(&self) -> String {
        if self.device.is_empty() {
            self.queue.to_string()
        } else {
            format!("{}:{}", self.device, self.queue)
        }
    }
}

/// Reassembly outcomes of outer fragments that are not the datagram handed
/// on, in packet units: merged into a datagram (`k - 1` of its `k`
/// fragments), or lost with their datagram, by reason.
pub const FRAGMENT_OUTCOMES: [ReassemblyEvent; 14] = [
    ReassemblyEvent::Merged,
    ReassemblyEvent::Duplicate,
    ReassemblyEvent::Overlap,
    ReassemblyEvent::Collision,
    ReassemblyEvent::AmbiguousTail,
    ReassemblyEvent::AmbiguousHead,
    ReassemblyEvent::AmbiguousChecksum,
    ReassemblyEvent::TooLarge,
    ReassemblyEvent::TooManyFragments,
    ReassemblyEvent::Malformed,
    ReassemblyEvent::NotIpv4Fragment,
    ReassemblyEvent::Timeout,
    ReassemblyEvent::EvictedNoSlot,
    ReassemblyEvent::EvictedNoMemory,
];

/// `fragment_overlap`, `fragment_timeout`, …: the summary's and metrics' name.
pub fn fragment_reason(event: ReassemblyEvent) -> &'static str {
    match event {
        ReassemblyEvent::Merged => "fragment_merged",
        ReassemblyEvent::Duplicate => "fragment_duplicate",
        ReassemblyEvent::Overlap => "fragment_overlap",
        ReassemblyEvent::Collision => "fragment_collision",
        ReassemblyEvent::AmbiguousTail => "fragment_ambiguous_tail",
        ReassemblyEvent::AmbiguousHead => "fragment_ambiguous_head",
        ReassemblyEvent::AmbiguousChecksum => "fragment_ambiguous_checksum",
        ReassemblyEvent::TooLarge => "fragment_too_large",
        ReassemblyEvent::TooManyFragments => "fragment_too_many",
        ReassemblyEvent::Malformed => "fragment_malformed",
        ReassemblyEvent::NotIpv4Fragment => "fragment_not_ipv4",
        ReassemblyEvent::Timeout => "fragment_datagram_timeout",
        ReassemblyEvent::EvictedNoSlot => "fragment_datagram_evicted",
        ReassemblyEvent::EvictedNoMemory => "fragment_datagram_evicted_no_memory",
        other => other.name(),
    }
}

/// VNIs named in the summary.
const SUMMARY_VNIS: usize = 10;

/// What one analyzer got.
#[derive(Debug, Clone)]
pub struct AnalyzerSummary {
    /// Its name.
    pub name: String,
    /// Frames it received.
    pub written: u64,
    /// Frames it missed because it was behind.
    pub backpressure: u64,
    /// Frames it got after its `-c` limit.
    pub after_count_limit: u64,
    /// Frames it got after its output closed.
    pub after_output_closed: u64,
    /// Why its output failed, if it did.
    pub error: Option<String>,
    /// Receive-to-hand-over latency over all workers (live only).
    pub latency: Option<LatencySummary>,
    /// The same per worker (live only).
    pub latency_per_worker: Vec<Option<LatencySummary>>,
    /// What it counted itself: frames not passed on by reason, routes.
    pub counts: AnalyzerCounts,
}

fn analyzer_summaries(
    stage: &StageStats,
    analyzers: Vec<(String, AnalyzerReport)>,
) -> Vec<AnalyzerSummary> {
    analyzers
        .into_iter()
        .enumerate()
        .map(|(i, (name, r))| AnalyzerSummary {
            name,
            written: r.written,
            backpressure: stage.analyzer_backpressure(i),
            after_count_limit: r.after_count_limit,
            after_output_closed: r.after_output_closed,
            error: r.error.map(|e| e.to_string()),
            latency: r.latency,
            latency_per_worker: r.latency_per_worker,
            counts: r.counts,
        })
        .collect()
}

fn latency_text(l: &LatencySummary) -> String {
    let us = |ns: u64| ns as f64 / 1000.0;
    format!(
        "p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us ({} frames)",
        us(l.p50),
        us(l.p99),
        us(l.p999),
        us(l.max),
        l.count
    )
}

impl Summary {
    /// The summary of a live capture.
    pub fn live(
        interface: &str,
        output: &str,
        attach: AttachMode,
        queues: Vec<QueueReport>,
        xdp: XdpCounters,
        analyzers: Vec<(String, AnalyzerReport)>,
    ) -> Self {
        let mut stage = StageStats::default();
        let mut xsk = XskStatistics::default();
        let vnis = VniCounts::top(queues.iter().map(|q| &q.vnis), SUMMARY_VNIS);
        for q in &queues {
            stage.merge(&q.stats);
            xsk.merge(&q.xsk);
        }
        Self::new(
            interface.to_owned(),
            output.to_owned(),
            Some(attach),
            queues,
            &stage,
            Some(xdp),
            xsk,
            analyzers,
            vnis,
        )
    }

    /// The summary of an offline run.
    pub fn offline(
        source: &str,
        output: &str,
        stage: StageStats,
        vnis: &VniCounts,
        analyzers: Vec<(String, AnalyzerReport)>,
        input: InputReport,
    ) -> Self {
        let mut summary = Self::new(
            source.to_owned(),
            output.to_owned(),
            None,
            Vec::new(),
            &stage,
            None,
            XskStatistics::default(),
            analyzers,
            VniCounts::top([vnis], SUMMARY_VNIS),
        );
        summary.input = Some(input);
        summary
    }

    /// Why the run failed, if it did: the output's error, or the input's.
    pub fn failed(&self) -> bool {
        self.output_error.is_some() || self.input.as_ref().is_some_and(|i| i.error.is_some())
    }

    /// Packets read or received: decapsulated or not, and (offline) those
    /// the reader could not hand on.
    pub fn received(&self) -> u64 {
        self.stage.get(StageCounter::Received)
            + self
                .input
                .as_ref()
                .map_or(0, InputReport::not_decoded_total)
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "every part of a summary, live or offline, once"
    )]
    fn new(
        source: String,
        output: String,
        attach: Option<AttachMode>,
        queues: Vec<QueueReport>,
        stage: &StageStats,
        xdp: Option<XdpCounters>,
        xsk: XskStatistics,
        analyzers: Vec<(String, AnalyzerReport)>,
        vnis: (Vec<(u32, u64)>, u64),
    ) -> Self {
        let analyzers = analyzer_summaries(stage, analyzers);
        let first = analyzers.first().cloned();
        Self {
            source,
            output,
            attach,
            queues,
            stage: *stage,
            xdp,
            xsk,
            written: first
                .as_ref()
                .map_or(0, |a| a.written.saturating_sub(a.counts.not_passed_total())),
            after_count_limit: first.as_ref().map_or(0, |a| a.after_count_limit),
            after_output_closed: first.as_ref().map_or(0, |a| a.after_output_closed),
            output_error: analyzers.iter().find_map(|a| a.error.clone()),
            latency: first.and_then(|a| a.latency),
            analyzers,
            vnis,
            interface_restarts: 0,
            devices: Vec::new(),
            device_events: Vec::new(),
            input: None,
        }
    }

    /// Every reason a received packet was not written, with its count
    /// (zeros included, in a fixed order).
    pub fn not_written(&self) -> Vec<(&'static str, u64)> {
        let mut reasons: Vec<(&'static str, u64)> = Vec::new();
        if let Some(input) = &self.input {
            reasons.extend(input.not_decoded.iter().copied());
        }
        reasons.extend(
            Reject::ALL
                .iter()
                .map(|&r| (r.name(), self.stage.rejected(r))),
        );
        reasons.push(("analyzer_backpressure", self.stage.analyzer_backpressure(0)));
        // Outer fragments, in packets: merged into a datagram that goes on
        // (once, as itself), or dropped alone or with their datagram.
        for event in FRAGMENT_OUTCOMES {
            reasons.push((fragment_reason(event), self.stage.reassembly_packets(event)));
        }
        reasons.push((
            "fragments_pending",
            self.stage.get(StageCounter::FragmentsPending),
        ));
        for counter in [
            StageCounter::FragmentSourceNotAllowed,
            StageCounter::FragmentVniNotAllowed,
        ] {
            reasons.push((counter.name(), self.stage.get(counter)));
        }
        reasons.push(("after_count_limit", self.after_count_limit));
        reasons.push(("after_output_closed", self.after_output_closed));
        if let Some(first) = self.analyzers.first() {
            reasons.extend(first.counts.not_passed.iter().copied());
        }
        reasons
    }

    /// Packets the kernel dropped before they reached a socket: (name, count).
    pub fn kernel_drops(&self) -> [(&'static str, u64); 2] {
        [
            ("xsk_rx_ring_full", self.xsk.rx_ring_full),
            ("xsk_rx_dropped", self.xsk.rx_dropped),
        ]
    }

    /// The tcpdump-style text printed on stderr at the end.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_totals(&mut out);
        self.render_not_written(&mut out);
        self.render_drops(&mut out);
        self.render_vnis_and_analyzers(&mut out);
        self.render_notes(&mut out);
        out
    }

    /// What was written, and what was received where.
    fn render_totals(&self, out: &mut String) {
        let received = self.received();
        let _ = writeln!(
            out,
            "{} inner frames written to {}",
            self.written, self.output
        );
        match self.attach {
            Some(mode) => {
                let binds: Vec<String> =
                    self.queues
                        .iter()
                        .map(|q| {
                            let cpu = q
                                .cpu
                                .map_or_else(|| "unpinned".to_owned(), |c| format!("cpu {c}"));
                            let batches = q.stats.get(StageCounter::Batches);
                            let per_batch =
                                q.stats.get(StageCounter::Received) as f64 / batches.max(1) as f64;
                            let naps = if q.naps > 0 {
                                format!(", {} naps", q.naps)
                            } else {
                                String::new()
                            };
                            format!(
                            "queue {} {} {cpu} {} {batches} batches of {per_batch:.1} frames{naps}",
                            q.label(), q.bind_mode, q.rx_policy
                        )
                        })
                        .collect();
                let _ = writeln!(
                    out,
                    "{received} packets received on {} (XDP {mode} mode; AF_XDP {})",
                    self.source,
                    binds.join(", ")
                );
            }
            None => {
                let _ = writeln!(out, "{received} packets read from {}", self.source);
            }
        }
    }

    /// Every reason a packet was not written, and the notes on fragments, truncation and timestamps.
    fn render_not_written(&self, out: &mut String) {
        let not_written: Vec<_> = self
            .not_written()
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
        let total: u64 = not_written.iter().map(|(_, n)| n).sum();
        let _ = writeln!(out, "{total} packets not written");
        for (name, n) in &not_written {
            let _ = writeln!(out, "  {n} {name}");
        }
        let fragments = self.stage.reassembly(ReassemblyEvent::Fragments);
        if fragments > 0 {
            let _ = writeln!(
                out,
                "{fragments} outer fragments: {} datagrams reassembled from {} of them (the others are counted above; incomplete ones at the end count as fragment_datagram_timeout)",
                self.stage.reassembly(ReassemblyEvent::Reassembled),
                self.stage.reassembly(ReassemblyEvent::Reassembled)
                    + self.stage.reassembly_packets(ReassemblyEvent::Merged),
            );
        }
        let cut = self.stage.get(StageCounter::TruncatedMirror);
        if cut > 0 {
            let _ = writeln!(
                out,
                "{cut} frames truncated by the mirror, written with their original length (truncated_mirror)"
            );
        }
        let geneve = self.stage.get(StageCounter::DeliveredGeneve);
        let nested = self.stage.get(StageCounter::DeliveredGeneveVxlan);
        if geneve + nested > 0 {
            let _ = writeln!(
                out,
                "tunnels: {} vxlan, {geneve} geneve, {nested} geneve_vxlan (VXLAN inside GENEVE); geneve_critical {}, geneve_options_malformed {}, gwlb_inline {}",
                self.stage
                    .get(StageCounter::Delivered)
                    .saturating_sub(geneve + nested),
                self.stage.get(StageCounter::GeneveCritical),
                self.stage.get(StageCounter::GeneveOptionsMalformed),
                self.stage.get(StageCounter::GwlbInline),
            );
        }
        if self.stage.get(StageCounter::GwlbInline) > 0 {
            let _ = writeln!(
                out,
                "warning: {} frames came on the inline AWS Gateway Load Balancer path (GENEVE with its options, no Traffic Mirroring VXLAN inside): the load balancer expects them back, and vxdecap does not return them (gwlb_inline)",
                self.stage.get(StageCounter::GwlbInline)
            );
        }
        let truncated = self.stage.get(StageCounter::TruncatedToSlot);
        if truncated > 0 {
            let _ = writeln!(
                out,
                "{truncated} frames written truncated (truncated_to_slot)"
            );
        }
        let unstamped = self.stage.get(StageCounter::NoRxTimestamp);
        if unstamped > 0 {
            let _ = writeln!(
                out,
                "{unstamped} frames stamped in user space: no XDP receive record (no_rx_timestamp)"
            );
        }
    }

    /// What the kernel dropped, and what the XDP program decided.
    fn render_drops(&self, out: &mut String) {
        if self.attach.is_some() {
            let drops = self.kernel_drops();
            let kernel: u64 = drops.iter().map(|(_, n)| n).sum();
            let parts: Vec<String> = drops
                .iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "{kernel} packets dropped by kernel ({})",
                parts.join(", ")
            );
        }
        if let Some(xdp) = &self.xdp {
            let named = |pick: &dyn Fn(XdpCounter) -> bool| -> (u64, String) {
                let picked: Vec<XdpCounter> =
                    XdpCounter::ALL.into_iter().filter(|&c| pick(c)).collect();
                let parts: Vec<String> = picked
                    .iter()
                    .filter(|&&c| xdp.get(c) > 0)
                    .map(|&c| format!("{} {}", c.name(), xdp.get(c)))
                    .collect();
                let total = picked.iter().map(|&c| xdp.get(c)).sum();
                let text = if parts.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", parts.join(", "))
                };
                (total, text)
            };
            let (passed_total, passed) = named(&|c| c.is_pass());
            let (dropped_total, dropped) =
                named(&|c| matches!(c, XdpCounter::DropSource | XdpCounter::DropVni));
            let fragments = xdp.get(XdpCounter::FragmentSteered);
            let _ = writeln!(
                out,
                "XDP: {} redirected to AF_XDP{}, {passed_total} passed to the kernel{passed}{}",
                xdp.get(XdpCounter::Redirected),
                if fragments > 0 {
                    format!(" ({fragments} outer fragments)")
                } else {
                    String::new()
                },
                if dropped_total > 0 {
                    format!(", {dropped_total} dropped by the allowlists{dropped}")
                } else {
                    String::new()
                }
            );
        }
    }

    /// The busiest VNIs, and every analyzer after the first with its routes and files.
    fn render_vnis_and_analyzers(&self, out: &mut String) {
        if !self.vnis.0.is_empty() {
            let mut line: Vec<String> = self
                .vnis
                .0
                .iter()
                .map(|(vni, n)| format!("vni {}: {n}", super::stats::VniKey(*vni)))
                .collect();
            if self.vnis.1 > 0 {
                line.push(format!("other: {}", self.vnis.1));
            }
            let _ = writeln!(out, "inner frames per VNI: {}", line.join(", "));
        }
        for (i, a) in self.analyzers.iter().enumerate() {
            if i > 0 {
                let not_passed =
                    a.counts
                        .not_passed
                        .iter()
                        .fold(String::new(), |mut text, (reason, n)| {
                            let _ = write!(text, ", {n} {reason}");
                            text
                        });
                let _ = writeln!(
                    out,
                    "analyzer {i} ({}): {} inner frames, {} analyzer_backpressure, {} after_count_limit, {} after_output_closed{not_passed}",
                    a.name, a.written, a.backpressure, a.after_count_limit, a.after_output_closed
                );
            }
            for r in &a.counts.routes {
                let _ = writeln!(
                    out,
                    "  route {}: {} frames, {} bytes, {} dropped",
                    r.route, r.frames, r.bytes, r.dropped
                );
            }
            // A router's files (a -w file is the headline already).
            if !a.counts.routes.is_empty() {
                for f in &a.counts.files {
                    let failed = if f.failed > 0 {
                        format!(", {} output_write_failed", f.failed)
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        out,
                        "  file {}: {} frames written{failed}",
                        f.name, f.written
                    );
                }
            }
        }
    }

    /// Latency, interface restarts, the input's report and the output's error.
    fn render_notes(&self, out: &mut String) {
        if let Some(l) = &self.latency {
            let _ = writeln!(out, "latency receive to analyzer: {}", latency_text(l));
            if let Some(first) = self.analyzers.first() {
                if first.latency_per_worker.len() > 1 {
                    for (q, l) in self.queues.iter().zip(&first.latency_per_worker) {
                        if let Some(l) = l {
                            let _ = writeln!(out, "  queue {}: {}", q.label(), latency_text(l));
                        }
                    }
                }
            }
        }
        if self.interface_restarts > 0 {
            let _ = writeln!(
                out,
                "{} went away and came back {} time(s) (interface_restarts)",
                self.source, self.interface_restarts
            );
        }
        for d in &self.devices {
            let _ = writeln!(
                out,
                "device {} ({}): {} frame(s) redirected, {} without a socket (passed), {} at the end",
                d.device,
                d.role,
                d.redirected,
                d.no_socket,
                if d.up { "up" } else { "gone" }
            );
        }
        for event in &self.device_events {
            let _ = writeln!(out, "device event: {event}");
        }
        if let Some(input) = &self.input {
            for line in input.lines() {
                let _ = writeln!(out, "{line}");
            }
            if let Some(e) = &input.error {
                let _ = writeln!(out, "input error: {e}");
            }
        }
        if let Some(e) = &self.output_error {
            let _ = writeln!(out, "output error: {e}");
        }
    }
}
