//! What the screen shows, computed from two scrapes: rates are the
//! counters' differences over the time between the scrapes (none on the
//! first one), totals are the counters themselves. Pure functions over
//! [`Sample`]s, so they are tested without a terminal or a capture.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::exposition::Sample;

/// A counter: its rate since the previous scrape and its total.
#[derive(Clone, Debug, PartialEq)]
pub struct Rate {
    /// What is counted: a VNI, a drop reason, an XDP decision.
    pub name: String,
    /// Per second since the previous scrape (`None` on the first).
    pub per_sec: Option<f64>,
    /// The counter.
    pub total: f64,
}

/// One rx queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueRow {
    /// Rx queue index.
    pub queue: String,
    /// The worker's CPU (`none` when unpinned).
    pub cpu: String,
    /// AF_XDP bind mode (`copy`, `zerocopy`).
    pub bind_mode: String,
    /// The worker's receive policy.
    pub rx_policy: String,
    /// Frames received.
    pub received: Rate,
    /// Bytes received (rate in bytes per second).
    pub bytes: Rate,
    /// Inner frames decapsulated.
    pub decapsulated: Rate,
    /// Frames of this queue rejected or dropped, all reasons.
    pub lost: Rate,
}

/// Receive-to-analyzer latency of one analyzer, in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyRow {
    /// The analyzer (`count`, `pcap`, `router`, …).
    pub analyzer: String,
    /// p50, p99, p99.9 and the maximum, over the run so far.
    pub quantiles: [Option<f64>; 4],
}

/// Everything on the screen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct View {
    /// The captured interface.
    pub interface: String,
    /// Per rx queue, in queue order.
    pub queues: Vec<QueueRow>,
    /// Inner frames per VNI (`other` for the rest), busiest first.
    pub vnis: Vec<Rate>,
    /// Frames lost, by reason, over all queues: the busiest first; reasons
    /// that never counted anything are left out.
    pub drops: Vec<Rate>,
    /// The XDP program's decisions that counted anything, busiest first.
    pub xdp: Vec<Rate>,
    /// Per analyzer.
    pub latency: Vec<LatencyRow>,
    /// Times the interface went away and came back.
    pub restarts: f64,
}

/// Sums of the samples of `name`, keyed by the values of `keys` (joined
/// with a space).
fn sums(samples: &[Sample], name: &str, keys: &[&str]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == name) {
        let key: Vec<&str> = keys.iter().map(|k| s.label(k).unwrap_or("")).collect();
        *out.entry(key.join(" ")).or_insert(0.0) += s.value;
    }
    out
}

fn rate(name: String, now: f64, before: Option<f64>, elapsed: Option<Duration>) -> Rate {
    let per_sec = match (before, elapsed) {
        // A counter that went down belongs to a capture that restarted.
        (Some(b), Some(dt)) if dt.as_secs_f64() > 0.0 && now >= b => {
            Some((now - b) / dt.as_secs_f64())
        }
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    Rate {
        name,
        per_sec,
        total: now,
    }
}

/// Rates of the keyed sums of `name` between two scrapes.
fn rates(
    now: &[Sample],
    before: Option<&[Sample]>,
    elapsed: Option<Duration>,
    name: &str,
    keys: &[&str],
) -> Vec<Rate> {
    let old = before.map(|b| sums(b, name, keys));
    sums(now, name, keys)
        .into_iter()
        .map(|(key, value)| {
            let previous = old.as_ref().map(|o| o.get(&key).copied().unwrap_or(0.0));
            rate(key, value, previous, elapsed)
        })
        .collect()
}

/// Busiest first (by rate, then total), names breaking ties.
fn busiest_first(rows: &mut [Rate]) {
    rows.sort_by(|a, b| {
        let key = |r: &Rate| (r.per_sec.unwrap_or(0.0), r.total);
        key(b)
            .partial_cmp(&key(a))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// The view of scrape `now`, with rates against `before` taken `elapsed` earlier.
pub fn view(now: &[Sample], before: Option<(&[Sample], Duration)>) -> View {
    let (old, elapsed) = match before {
        Some((b, dt)) => (Some(b), Some(dt)),
        None => (None, None),
    };
    let queues = queue_rows(now, old, elapsed);
    let mut vnis = rates(now, old, elapsed, "vxdecap_vni_frames_total", &["vni"]);
    vnis.retain(|r| r.total > 0.0);
    busiest_first(&mut vnis);

    let (drops, xdp) = drop_rows(now, old, elapsed);
    View {
        interface: now
            .iter()
            .find(|s| s.name == "vxdecap_queue_info")
            .and_then(|s| s.label("interface"))
            .unwrap_or("?")
            .to_owned(),
        queues,
        vnis,
        drops,
        xdp,
        latency: latency_rows(now),
        restarts: sums(now, "vxdecap_interface_restarts_total", &[])
            .values()
            .sum(),
    }
}

/// One row per rx queue (from `vxdecap_queue_info`), in queue order.
fn queue_rows(now: &[Sample], old: Option<&[Sample]>, elapsed: Option<Duration>) -> Vec<QueueRow> {
    let per_queue = |name: &str| -> BTreeMap<String, Rate> {
        rates(now, old, elapsed, name, &["queue"])
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect()
    };
    let received = per_queue("vxdecap_received_frames_total");
    let bytes = per_queue("vxdecap_received_bytes_total");
    let decapsulated = per_queue("vxdecap_decapsulated_frames_total");
    // A queue's losses: its rejects and drops, all reasons summed.
    let lost_sums = |samples: &[Sample]| -> BTreeMap<String, f64> {
        let mut out = sums(samples, "vxdecap_rejected_frames_total", &["queue"]);
        for (q, n) in sums(samples, "vxdecap_dropped_frames_total", &["queue"]) {
            *out.entry(q).or_insert(0.0) += n;
        }
        out
    };
    let lost_now = lost_sums(now);
    let lost_old = old.map(lost_sums);
    let zero = |q: &str| Rate {
        name: q.to_owned(),
        per_sec: None,
        total: 0.0,
    };
    let mut queues: Vec<QueueRow> = now
        .iter()
        .filter(|s| s.name == "vxdecap_queue_info")
        .map(|s| {
            let q = s.label("queue").unwrap_or("?").to_owned();
            let lost_before = lost_old.as_ref().map(|o| o.get(&q).copied().unwrap_or(0.0));
            QueueRow {
                cpu: s.label("cpu").unwrap_or("?").to_owned(),
                bind_mode: s.label("bind_mode").unwrap_or("?").to_owned(),
                rx_policy: s.label("rx_policy").unwrap_or("?").to_owned(),
                received: received.get(&q).cloned().unwrap_or_else(|| zero(&q)),
                bytes: bytes.get(&q).cloned().unwrap_or_else(|| zero(&q)),
                decapsulated: decapsulated.get(&q).cloned().unwrap_or_else(|| zero(&q)),
                lost: rate(
                    q.clone(),
                    lost_now.get(&q).copied().unwrap_or(0.0),
                    lost_before,
                    elapsed,
                ),
                queue: q,
            }
        })
        .collect();
    queues.sort_by_key(|q| q.queue.parse::<u32>().unwrap_or(u32::MAX));

    queues
}

/// Every reason a frame was lost, busiest first, and the XDP program's
/// decisions (its drops are among the former too).
fn drop_rows(
    now: &[Sample],
    old: Option<&[Sample]>,
    elapsed: Option<Duration>,
) -> (Vec<Rate>, Vec<Rate>) {
    let mut drops = Vec::new();
    drops.extend(rates(
        now,
        old,
        elapsed,
        "vxdecap_rejected_frames_total",
        &["reason"],
    ));
    for r in rates(
        now,
        old,
        elapsed,
        "vxdecap_dropped_frames_total",
        &["cause", "analyzer"],
    ) {
        let name = match r.name.split_once(' ') {
            Some((cause, analyzer)) if !analyzer.is_empty() => format!("{cause} ({analyzer})"),
            _ => r.name.trim().to_owned(),
        };
        drops.push(Rate { name, ..r });
    }
    for r in rates(
        now,
        old,
        elapsed,
        "vxdecap_analyzer_lost_frames_total",
        &["reason", "analyzer"],
    ) {
        let name = match r.name.split_once(' ') {
            Some((reason, analyzer)) => format!("{reason} ({analyzer})"),
            None => r.name.clone(),
        };
        drops.push(Rate { name, ..r });
    }
    let mut fragments = rates(
        now,
        old,
        elapsed,
        "vxdecap_fragment_packets_total",
        &["outcome"],
    );
    fragments.retain(|r| r.name != "fragment_merged");
    drops.extend(fragments);
    drops.extend(rates(
        now,
        old,
        elapsed,
        "vxdecap_allowlist_dropped_datagrams_total",
        &["reason"],
    ));
    let mut xdp = rates(now, old, elapsed, "vxdecap_xdp_frames_total", &["decision"]);
    drops.extend(xdp.iter().filter(|r| r.name.starts_with("drop_")).cloned());
    xdp.retain(|r| r.total > 0.0);
    busiest_first(&mut xdp);
    drops.retain(|r| r.total > 0.0);
    busiest_first(&mut drops);

    (drops, xdp)
}

/// The receive-to-analyzer latency quantiles, per analyzer.
fn latency_rows(now: &[Sample]) -> Vec<LatencyRow> {
    let mut latency: BTreeMap<String, [Option<f64>; 4]> = BTreeMap::new();
    for s in now
        .iter()
        .filter(|s| s.name == "vxdecap_receive_latency_seconds")
    {
        let slot = match s.label("quantile") {
            Some("0.5") => 0,
            Some("0.99") => 1,
            Some("0.999") => 2,
            Some("1") => 3,
            _ => continue,
        };
        let analyzer = s.label("analyzer").unwrap_or("?").to_owned();
        latency.entry(analyzer).or_default()[slot] = Some(s.value);
    }

    latency
        .into_iter()
        .map(|(analyzer, quantiles)| LatencyRow {
            analyzer,
            quantiles,
        })
        .collect()
}

#[cfg(test)]
#[allow(
    clippy::float_cmp,
    reason = "the values are exact: parsed from text or summed from integers"
)]
mod tests {
    use super::*;
    use crate::exposition::parse;

    /// A scrape as vxdecap renders it: two queues, two VNIs, drops.
    fn scrape(rx0: u64, rx1: u64, vni27: u64, vni100: u64, ring_full: u64) -> Vec<Sample> {
        let text = format!(
            r#"vxdecap_queue_info{{interface="eth1",queue="0",cpu="1",bind_mode="copy",rx_policy="sleep"}} 1
vxdecap_queue_info{{interface="eth1",queue="1",cpu="2",bind_mode="copy",rx_policy="sleep"}} 1
vxdecap_received_frames_total{{queue="0"}} {rx0}
vxdecap_received_frames_total{{queue="1"}} {rx1}
vxdecap_received_bytes_total{{queue="0"}} {}
vxdecap_received_bytes_total{{queue="1"}} {}
vxdecap_decapsulated_frames_total{{queue="0"}} {rx0}
vxdecap_decapsulated_frames_total{{queue="1"}} {}
vxdecap_rejected_frames_total{{queue="0",reason="truncated_vxlan"}} 0
vxdecap_rejected_frames_total{{queue="1",reason="truncated_vxlan"}} 2
vxdecap_dropped_frames_total{{queue="0",cause="xsk_rx_ring_full"}} {ring_full}
vxdecap_dropped_frames_total{{queue="1",cause="xsk_rx_ring_full"}} 0
vxdecap_dropped_frames_total{{queue="0",cause="analyzer_backpressure",analyzer="pcap"}} 0
vxdecap_xdp_frames_total{{interface="eth1",decision="redirected"}} {}
vxdecap_xdp_frames_total{{interface="eth1",decision="drop_vni_not_allowed"}} 5
vxdecap_vni_frames_total{{vni="27"}} {vni27}
vxdecap_vni_frames_total{{vni="100"}} {vni100}
vxdecap_vni_frames_total{{vni="other"}} 0
vxdecap_receive_latency_seconds{{analyzer="pcap",quantile="0.5"}} 0.0002
vxdecap_receive_latency_seconds{{analyzer="pcap",quantile="0.99"}} 0.001
vxdecap_receive_latency_seconds{{analyzer="pcap",quantile="0.999"}} 0.002
vxdecap_receive_latency_seconds{{analyzer="pcap",quantile="1"}} 0.004
vxdecap_interface_restarts_total{{interface="eth1"}} 1
"#,
            rx0 * 100,
            rx1 * 100,
            rx1 - 2,
            rx0 + rx1,
        );
        parse(&text).unwrap()
    }

    #[test]
    fn first_scrape_has_totals_and_no_rates() {
        let v = view(&scrape(10, 20, 25, 5, 0), None);
        assert_eq!(v.interface, "eth1");
        assert_eq!(v.queues.len(), 2);
        assert_eq!(v.queues[1].received.total, 20.0);
        assert_eq!(v.queues[1].received.per_sec, None);
        assert_eq!(v.queues[1].lost.total, 2.0);
        assert_eq!(v.vnis[0].name, "27");
        assert_eq!(v.restarts, 1.0);
        assert_eq!(
            v.latency,
            [LatencyRow {
                analyzer: "pcap".into(),
                quantiles: [Some(0.0002), Some(0.001), Some(0.002), Some(0.004)]
            }]
        );
    }

    #[test]
    fn rates_are_differences_over_the_interval_and_drops_are_by_reason() {
        let before = scrape(10, 20, 25, 5, 0);
        let now = scrape(1010, 520, 125, 1405, 30);
        let v = view(&now, Some((&before, Duration::from_millis(500))));
        assert_eq!(v.queues[0].received.per_sec, Some(2000.0));
        assert_eq!(v.queues[0].bytes.per_sec, Some(200_000.0));
        assert_eq!(v.queues[1].decapsulated.per_sec, Some(1000.0));
        assert_eq!(v.queues[0].lost.per_sec, Some(60.0));
        // VNI 100 is now the busiest.
        let names: Vec<&str> = v.vnis.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["100", "27"]);
        assert_eq!(v.vnis[0].per_sec, Some(2800.0));
        // Reasons that never counted are left out; the busiest first.
        let drops: Vec<(&str, Option<f64>, f64)> = v
            .drops
            .iter()
            .map(|r| (r.name.as_str(), r.per_sec, r.total))
            .collect();
        assert_eq!(
            drops,
            [
                ("xsk_rx_ring_full", Some(60.0), 30.0),
                ("drop_vni_not_allowed", Some(0.0), 5.0),
                ("truncated_vxlan", Some(0.0), 2.0),
            ]
        );
    }

    #[test]
    fn a_counter_that_went_down_is_a_restart_not_a_negative_rate() {
        let before = scrape(1000, 20, 25, 5, 0);
        let now = scrape(10, 20, 25, 5, 0);
        let v = view(&now, Some((&before, Duration::from_secs(1))));
        assert_eq!(v.queues[0].received.per_sec, Some(0.0));
    }
}
