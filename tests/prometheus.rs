//! A real Prometheus (Debian's `prometheus` server) scrapes a live capture's
//! `--metrics` every second, on loopback in the capture's network
//! namespace; its HTTP API must then give back exactly what was sent: the
//! frame counters, the per-VNI series, the reject reason, the XDP
//! decisions. The same server evaluates every query of the Grafana
//! dashboard (`deploy/grafana/vxdecap.json`), and a second test checks
//! that every metric the dashboard names is one the binary exports. Needs
//! root (the capture); skips loudly without it.

#[path = "common/collector.rs"]
mod collector;
mod common;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use collector::{Collector, WatchedChild, MIRROR_SOURCE};
use common::*;

const METRICS: &str = "127.0.0.1:9423";
const PROMETHEUS: &str = "127.0.0.1:9424";

/// The dashboard, parsed.
fn dashboard() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/vxdecap.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every `expr` of the dashboard's panels (and of its variables' queries).
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(dashboard, &mut out);
    out
}

/// The `vxdecap_…` metric names a query refers to.
fn metric_names(query: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = query.as_bytes();
    let mut at = 0;
    while let Some(found) = query[at..].find("vxdecap_") {
        let start = at + found;
        let end = start
            + bytes[start..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .unwrap_or(bytes.len() - start);
        names.insert(query[start..end].to_owned());
        at = end;
    }
    names
}

/// A dashboard query as Prometheus can run it: Grafana's variables filled in.
fn runnable(query: &str) -> String {
    query
        .replace("$__rate_interval", "5s")
        .replace("$instance", ".*")
}

/// Runs `f` in the collector's namespace (where the loopback endpoints are).
fn in_ns<T: Send + 'static>(
    collector: &Collector,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> T {
    collector
        .ns
        .spawn_in(f)
        .expect("enter the collector netns")
        .join()
        .expect("thread in the netns")
        .expect("request in the netns")
}

/// GET `path` from `addr` (HTTP/1.0, the whole body).
fn get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP response from {addr}{path}"))?;
    anyhow::ensure!(head.contains(" 200 "), "{addr}{path}: {head}\n{body}");
    Ok(body.to_owned())
}

/// Percent-encodes a query for a URL.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query to Prometheus's HTTP API: the result vector.
fn query(collector: &Collector, promql: &str) -> Vec<serde_json::Value> {
    let path = format!("/api/v1/query?query={}", encode(promql));
    let body = in_ns(collector, move || get(PROMETHEUS, &path));
    let json: serde_json::Value = serde_json::from_str(&body).expect("API JSON");
    assert_eq!(json["status"], "success", "{promql}: {json}");
    json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The single value of an instant query (None while it has no result).
fn value(collector: &Collector, promql: &str) -> Option<f64> {
    let result = query(collector, promql);
    assert!(result.len() <= 1, "{promql}: {result:?}");
    result.first().map(|r| {
        r["value"][1]
            .as_str()
            .expect("a sample value")
            .parse()
            .expect("a number")
    })
}

/// Debian's Prometheus server, scraping `target` every second; killed on drop.
fn start_prometheus(collector: &Collector, tmp: &TempDir, target: &str) -> WatchedChild {
    let config = tmp.path("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: vxdecap\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write the Prometheus configuration");
    let data = tmp.path("tsdb");
    let cmd = collector.ns.command(
        "prometheus",
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", data.display()),
            &format!("--web.listen-address={PROMETHEUS}"),
        ],
    );
    WatchedChild::spawn(
        cmd,
        &["Server is ready to receive web requests"],
        Duration::from_secs(60),
        None,
    )
    .unwrap_or_else(|e| panic!("prometheus did not start: {e:#}"))
}

#[test]
fn prometheus_scrapes_a_live_capture_and_gets_back_what_was_sent() {
    if !privileged("a real Prometheus against a live capture") {
        return;
    }
    let collector = Collector::new("pm", 2);
    let tmp = TempDir::new("pm");
    let capture = RunningCapture::start(&collector.ns, &["-i", "eth1", "-q", "--metrics", METRICS]);
    let mut prometheus = start_prometheus(&collector, &tmp, METRICS);

    collector.send(27, 600, &tmp);
    collector.send(100, 200, &tmp);
    let rejected: Vec<Vec<u8>> = (0..20u16)
        .map(|n| {
            vxdecap::wire::build::VxlanFrameBuilder::new()
                .outer_src_ip(MIRROR_SOURCE)
                .outer_dst_ip(std::net::Ipv4Addr::new(10, 79, 0, 2))
                .udp_src_port(50_000 + n)
                .vxlan_flags(0)
                .vni(27)
                .inner(&inner::udp(n))
                .build()
                .expect("a frame with the I flag clear")
        })
        .collect();
    send_raw(&collector.sender, "und0", &rejected, &tmp);

    // Until a scrape after the last frame has been stored.
    let deadline = Instant::now() + Duration::from_secs(30);
    let received = loop {
        let received = value(&collector, "sum(vxdecap_received_frames_total)");
        if received == Some(820.0) || Instant::now() > deadline {
            break received;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        received,
        Some(820.0),
        "frames received, as Prometheus stored them"
    );
    assert_eq!(value(&collector, "up{job=\"vxdecap\"}"), Some(1.0));
    assert_eq!(
        value(&collector, "sum(vxdecap_decapsulated_frames_total)"),
        Some(800.0)
    );
    assert_eq!(
        value(&collector, "vxdecap_vni_frames_total{vni=\"27\"}"),
        Some(600.0)
    );
    assert_eq!(
        value(&collector, "vxdecap_vni_frames_total{vni=\"100\"}"),
        Some(200.0)
    );
    assert_eq!(
        value(&collector, "vxdecap_vni_frames_total{vni=\"other\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(
            &collector,
            "sum(vxdecap_rejected_frames_total{reason=\"vxlan_i_flag_clear\"})"
        ),
        Some(20.0)
    );
    assert_eq!(
        value(
            &collector,
            "vxdecap_xdp_frames_total{decision=\"redirected\",interface=\"eth1\"}"
        ),
        Some(820.0)
    );
    // Every queue is a series of its own (two rx queues).
    assert_eq!(query(&collector, "vxdecap_queue_info").len(), 2);
    // The TYPE lines reached Prometheus's metadata.
    let metadata = in_ns(&collector, || {
        get(
            PROMETHEUS,
            "/api/v1/metadata?metric=vxdecap_received_frames_total",
        )
    });
    assert!(metadata.contains("\"type\":\"counter\""), "{metadata}");

    // Every query of the Grafana dashboard runs, and the traffic panels have data.
    std::thread::sleep(Duration::from_secs(2));
    for q in dashboard_queries(&dashboard()) {
        if q.starts_with("label_values(") {
            continue; // a Grafana function, not PromQL
        }
        let promql = runnable(&q);
        let result = query(&collector, &promql);
        if q.contains("vxdecap_vni_frames_total")
            || q.contains("vxdecap_received_frames_total")
            || q.contains("vxdecap_receive_latency_seconds")
            || q.contains("vxdecap_queue_info")
        {
            assert!(
                !result.is_empty(),
                "the dashboard query {promql} has no data"
            );
        }
    }

    let outcome = prometheus
        .stop(nix::sys::signal::Signal::SIGTERM)
        .expect("stop prometheus");
    assert!(outcome.status.success(), "prometheus: {}", outcome.stderr);
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    assert_eq!(frames_written(&summary), 800, "{summary}");
}

#[test]
fn the_grafana_dashboard_names_only_metrics_the_binary_exports() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "vxdecap");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut names = BTreeSet::new();
    for panel in panels {
        assert!(panel["gridPos"]["w"].as_u64().is_some(), "{panel}");
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for t in targets {
            assert!(t["refId"].is_string(), "{t}");
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}");
        }
    }
    for q in dashboard_queries(&dashboard) {
        names.extend(metric_names(&q));
    }
    for family in [
        "vxdecap_received_frames_total",
        "vxdecap_vni_frames_total",
        "vxdecap_rejected_frames_total",
        "vxdecap_dropped_frames_total",
        "vxdecap_receive_latency_seconds",
    ] {
        assert!(names.contains(family), "the dashboard lacks {family}");
    }
    if !privileged("the dashboard's metrics against a live capture") {
        return;
    }
    let collector = Collector::new("pg", 1);
    let capture = RunningCapture::start(&collector.ns, &["-i", "eth1", "-q", "--metrics", METRICS]);
    let body = in_ns(&collector, || get(METRICS, "/metrics"));
    let (ok, summary) = capture.stop();
    assert!(ok, "{summary}");
    let exported: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let unknown: Vec<&String> = names.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard names metrics vxdecap does not export: {unknown:?} (exported: {exported:?})"
    );
}
