//! The `--stats` line: rates since the last line, then totals.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use vxdecap_xsk::XskStatistics;

use crate::report::metrics::Metrics;
use crate::report::stats::{StageCounter, StageStats};
use crate::steer::{XdpCounter, XdpCounters};

/// The `--stats` line: rates since the last line, then totals.
pub(crate) fn stats_line(
    metrics: &Metrics,
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
    let first = metrics.analyzer(0);
    let written = first.map_or(0, |p| p.written.load(Ordering::Relaxed));
    let secs = elapsed.as_secs_f64().max(1e-9);
    let latency = first
        .and_then(super::progress::AnalyzerProgress::latency)
        .map_or(String::new(), |l| {
            format!(
                ", latency p50 {:.0} us p99 {:.0} us",
                l.p50 as f64 / 1e3,
                l.p99 as f64 / 1e3
            )
        });
    let (top, _) = metrics.top_vnis(3);
    let vnis: Vec<String> = top
        .iter()
        .map(|(v, n)| format!("{}:{n}", super::stats::VniKey(*v)))
        .collect();
    let line = format!(
        "{:.0} pps received, {:.0} pps written; totals: received {received}, written {written}, rejected {}, backpressure {}, xsk_rx_ring_full {}, xsk_fill_ring_empty {}, xdp passed {}{latency}; top VNIs {}",
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

pub(crate) fn passed_total(xdp: &XdpCounters) -> u64 {
    XdpCounter::ALL
        .into_iter()
        .filter(|c| c.is_pass())
        .map(|c| xdp.get(c))
        .sum()
}
