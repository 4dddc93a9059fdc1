//! Results: a JSON record of every run with medians, a markdown table and an
//! SVG plot per rig and size, written to a timestamped folder and as
//! `latest-*` beside it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::gen::DEFAULT_FRAMES_PER_CALL;
use crate::run::{results_dir, Outcome, Rig, RunArgs, RunResult, Scenario, IDLE_RATE_MPPS};

/// A receiver within this share of the generator's ceiling measures the
/// generator, not itself.
const GENERATOR_BOUND: f64 = 0.9;

/// Medians of one (rig, scenario, size, rate) group.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Median {
    rig: Rig,
    scenario: Scenario,
    size: String,
    target_pps: f64,
    runs: usize,
    offered_pps: f64,
    delivered_pps: f64,
    loss_ratio: f64,
    tool_drops: f64,
    rx_us_per_pkt: f64,
    tool_us_per_pkt: f64,
    tool_core_percent: f64,
    /// Median of the runs' p50, p99 and p99.9 latencies (µs), for vxdecap.
    latency_us: Option<[f64; 3]>,
}

/// The median (the mean of the middle two for an even count; 0 for none).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => f64::midpoint(values[n / 2 - 1], values[n / 2]),
    }
}

#[allow(
    clippy::float_cmp,
    reason = "a target rate of exactly 0.0 marks a flat-out run"
)]
fn medians(results: &[RunResult]) -> Vec<Median> {
    let mut keys: Vec<(Rig, Scenario, String, f64)> = Vec::new();
    for r in results {
        let key = (r.rig, r.scenario, r.size.clone(), r.target_pps);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|(rig, scenario, size, target_pps)| {
            let group: Vec<&RunResult> = results
                .iter()
                .filter(|r| {
                    r.rig == rig
                        && r.scenario == scenario
                        && r.size == size
                        && r.target_pps == target_pps
                })
                .collect();
            let m = |f: &dyn Fn(&RunResult) -> f64| median(group.iter().map(|r| f(r)).collect());
            Median {
                rig,
                scenario,
                size,
                target_pps,
                runs: group.len(),
                offered_pps: m(&|r| r.offered_pps),
                delivered_pps: m(&|r| r.delivered_pps),
                loss_ratio: m(&|r| r.loss.max(0) as f64 / r.sent.max(1) as f64),
                tool_drops: m(&|r| r.tool_drops as f64),
                rx_us_per_pkt: m(&RunResult::rx_us_per_pkt),
                tool_us_per_pkt: m(&RunResult::tool_us_per_pkt),
                tool_core_percent: m(&RunResult::tool_core_percent),
                latency_us: group.iter().all(|r| r.latency_us.is_some()).then(|| {
                    std::array::from_fn(|i| {
                        median(
                            group
                                .iter()
                                .filter_map(|r| r.latency_us.map(|l| l[i]))
                                .collect(),
                        )
                    })
                }),
            }
        })
        .collect()
}

/// The medians of one rig and size.
struct View<'a> {
    medians: Vec<&'a Median>,
}

impl<'a> View<'a> {
    fn new(all: &'a [Median], rig: Rig, size: &str) -> Self {
        View {
            medians: all
                .iter()
                .filter(|m| m.rig == rig && m.size == size)
                .collect(),
        }
    }

    #[allow(
        clippy::float_cmp,
        reason = "a target rate of exactly 0.0 marks a flat-out run"
    )]
    fn find(&self, scenario: Scenario, target: f64) -> Option<&'a Median> {
        self.medians
            .iter()
            .copied()
            .find(|m| m.scenario == scenario && m.target_pps == target)
    }

    /// The generator's ceiling: what it offered into XDP_DROP, flat out.
    fn ceiling(&self) -> Option<f64> {
        self.find(Scenario::XdpDrop, 0.0).map(|m| m.offered_pps)
    }

    fn generator_bound(&self, m: &Median) -> bool {
        m.scenario != Scenario::XdpDrop
            && self
                .ceiling()
                .is_some_and(|c| m.delivered_pps >= GENERATOR_BOUND * c)
    }

    /// The bare AF_XDP variant that delivered most, flat out.
    fn best_af_xdp(&self) -> Option<&'a Median> {
        Scenario::AF_XDP
            .iter()
            .filter_map(|&s| self.find(s, 0.0))
            .max_by(|a, b| a.delivered_pps.total_cmp(&b.delivered_pps))
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} vCPU {cpu}, Linux {}", kernel.trim())
}

fn rate_label(target_pps: f64) -> String {
    if target_pps == 0.0 {
        "flat out".to_owned()
    } else {
        format!("{} Mpps", target_pps / 1e6)
    }
}

fn table(medians: &[Median], outcome: &Outcome, args: &RunArgs, machine: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Machine: {}. Generator: BPF_PROG_TEST_RUN live frames, {} runs per call, on CPU 0; every receiver's threads on CPU 1. {} s per run, {} repetition(s), medians. Receiver CPU: busy time of CPU 1 per delivered frame (on the shared-core rig it includes the kernel's receive work).\n",
        machine,
        DEFAULT_FRAMES_PER_CALL,
        args.duration,
        args.reps
    );
    for (rig, calibration) in &outcome.calibration {
        let _ = writeln!(md, "## Rig {}: {}\n", rig.name(), rig.describe());
        let setup = calibration["setup_seconds_per_call"]
            .as_f64()
            .unwrap_or(0.0);
        for size in &args.sizes {
            let view = View::new(medians, *rig, size);
            if view.medians.is_empty() {
                continue;
            }
            size_tables(&mut md, &view, *rig, size, setup, args);
        }
    }
    md
}

fn size_tables(md: &mut String, view: &View<'_>, rig: Rig, size: &str, setup: f64, args: &RunArgs) {
    let ceiling = view.ceiling();
    if let Some(c) = ceiling {
        let call = f64::from(DEFAULT_FRAMES_PER_CALL) / c;
        let _ = writeln!(
            md,
            "Generator ceiling, size {size}: {:.3} Mpps into XDP_DROP; its per-call setup ({:.1} ms) is {:.1} % of a call there. Receivers at ≥ {:.0} % of the ceiling are marked generator-bound: they measure the generator.\n",
            c / 1e6,
            setup * 1e3,
            setup / (call + setup) * 100.0,
            GENERATOR_BOUND * 100.0
        );
    }
    let best = view.best_af_xdp();
    let _ = writeln!(md, "### {}, inner size {size}, flat out\n", rig.name());
    let _ = writeln!(
        md,
        "| receiver | offered Mpps | delivered Mpps | loss | tool's drops | receiver CPU µs/pkt | tool CPU µs/pkt | note |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|");
    for scenario in Scenario::ALL {
        if let Some(m) = view.find(scenario, 0.0) {
            let mut notes = Vec::new();
            if scenario == Scenario::XdpDrop {
                notes.push("generator's ceiling");
            }
            if view.generator_bound(m) {
                notes.push("generator-bound");
            }
            if best.is_some_and(|b| b.scenario == scenario) {
                notes.push("best bare AF_XDP");
            }
            let _ = writeln!(
                md,
                "| {} | {:.3} | {:.3} | {:.2} % | {:.0} | {:.3} | {:.3} | {} |",
                scenario.name(),
                m.offered_pps / 1e6,
                m.delivered_pps / 1e6,
                m.loss_ratio * 100.0,
                m.tool_drops,
                m.rx_us_per_pkt,
                m.tool_us_per_pkt,
                notes.join(", ")
            );
        }
    }
    let paced: Vec<f64> = args.rates.iter().copied().filter(|&r| r > 0.0).collect();
    if !paced.is_empty() {
        let _ = writeln!(
            md,
            "\n#### {}, size {size}: delivered Mpps (loss %) at each offered rate\n",
            rig.name()
        );
        let header: Vec<String> = paced.iter().map(|r| format!("{r} Mpps")).collect();
        let _ = writeln!(md, "| receiver | {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---:|".repeat(paced.len()));
        for scenario in Scenario::ALL {
            let cells: Vec<String> = paced
                .iter()
                .map(|&r| {
                    view.find(scenario, r * 1e6).map_or_else(
                        || "–".into(),
                        |m| {
                            format!(
                                "{:.3} ({:.1} %)",
                                m.delivered_pps / 1e6,
                                m.loss_ratio * 100.0
                            )
                        },
                    )
                })
                .collect();
            if cells.iter().any(|c| c != "–") {
                let _ = writeln!(md, "| {} | {} |", scenario.name(), cells.join(" | "));
            }
        }
        let _ = writeln!(
            md,
            "\n#### {}, size {size}: the tool's CPU, % of one core, at each offered rate\n",
            rig.name()
        );
        let _ = writeln!(md, "| receiver | {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---:|".repeat(paced.len()));
        for scenario in Scenario::ALL {
            let cells: Vec<String> = paced
                .iter()
                .map(|&r| {
                    view.find(scenario, r * 1e6)
                        .map_or_else(|| "–".into(), |m| format!("{:.1}", m.tool_core_percent))
                })
                .collect();
            if cells.iter().any(|c| c != "–") {
                let _ = writeln!(md, "| {} | {} |", scenario.name(), cells.join(" | "));
            }
        }
    }
    latency_table(md, view, rig, size);
    targets(md, view, rig, size, args);
}

/// The receive-to-analyzer latencies vxdecap measured, per run.
fn latency_table(md: &mut String, view: &View<'_>, rig: Rig, size: &str) {
    let latencies: Vec<&Median> = view
        .medians
        .iter()
        .copied()
        .filter(|m| m.latency_us.is_some())
        .collect();
    if !latencies.is_empty() {
        let _ = writeln!(
            md,
            "\n#### {}, size {size}: vxdecap receive-to-analyzer latency (µs: p50 / p99 / p99.9)\n",
            rig.name()
        );
        let _ = writeln!(md, "| receiver | asked rate | latency |");
        let _ = writeln!(md, "|---|---:|---:|");
        for m in latencies {
            if let Some([p50, p99, p999]) = m.latency_us {
                let _ = writeln!(
                    md,
                    "| {} | {} | {p50:.0} / {p99:.0} / {p999:.0} |",
                    m.scenario.name(),
                    rate_label(m.target_pps)
                );
            }
        }
    }
}

fn targets(md: &mut String, view: &View<'_>, rig: Rig, size: &str, args: &RunArgs) {
    let _ = writeln!(
        md,
        "\n#### {}, size {size}: against the targets\n",
        rig.name()
    );
    let flat = |s: Scenario| view.find(s, 0.0);
    let bound = |m: &Median| {
        if view.generator_bound(m) {
            " (generator-bound: not claimed)"
        } else {
            ""
        }
    };
    let ratio = |a: Option<&Median>, b: Option<&Median>| -> String {
        match (a, b) {
            (Some(a), Some(b)) => format!(
                "{:.2}{}",
                a.delivered_pps / b.delivered_pps.max(1e-12),
                bound(a)
            ),
            _ => "–".into(),
        }
    };
    let count = flat(Scenario::VxdecapCount);
    let best = view.best_af_xdp();
    let floor_target = match rig {
        Rig::SharedCore => "≥ 0.9",
        Rig::OtherCore => "≥ 0.95",
    };
    let _ = writeln!(md, "| measure | measured | target |");
    let _ = writeln!(md, "|---|---:|---|");
    let _ = writeln!(
        md,
        "| vxdecap -q ÷ tcpdump, delivered | {} | ≥ 5 |",
        ratio(count, flat(Scenario::TcpdumpNull))
    );
    let _ = writeln!(
        md,
        "| vxdecap -q ÷ best bare AF_XDP ({}), delivered | {} | {floor_target} |",
        best.map_or("–", |b| b.scenario.name()),
        ratio(count, best)
    );
    let [relay, dnat, floor] = Scenario::FORWARDERS.map(flat);
    let relay = forwarder_rows(relay, dnat, floor, &ratio);
    let pcap = ratio(flat(Scenario::VxdecapPcapTmpfs), count);
    let geneve = ratio(flat(Scenario::VxdecapGeneveVxlan), count);
    let _ = writeln!(
        md,
        "| vxdecap pcap to tmpfs ÷ vxdecap -q, delivered | {pcap} | ≥ 0.8 |\n{relay}\n\
         | vxdecap -q, GENEVE(VXLAN) ÷ plain VXLAN, delivered | {geneve} | ≥ 0.9 |"
    );
    // Paced: vxdecap never below tcpdump; where vxdecap loses, bare AF_XDP loses too.
    let mut below = Vec::new();
    let mut alone = Vec::new();
    for &rate in &args.rates {
        let t = rate * 1e6;
        let (Some(v), tcp) = (
            view.find(Scenario::VxdecapCount, t),
            view.find(Scenario::TcpdumpNull, t),
        ) else {
            continue;
        };
        // Paced, the generator offers each receiver a slightly different
        // rate (and less to a receiver whose kernel path slows its core):
        // fewer frames counts only with a larger share lost too.
        let fewer = |tcp: &Median| {
            v.delivered_pps < tcp.delivered_pps * 0.999
                && (t == 0.0 || v.loss_ratio > tcp.loss_ratio + 0.001)
        };
        if tcp.is_some_and(fewer) {
            below.push(rate_label(t));
        }
        let bare_loss = Scenario::AF_XDP
            .iter()
            .filter_map(|&s| view.find(s, t))
            .map(|m| m.loss_ratio)
            .fold(f64::INFINITY, f64::min);
        if t > 0.0 && v.loss_ratio > 0.001 && bare_loss.is_finite() && bare_loss <= 0.001 {
            alone.push(rate_label(t));
        }
    }
    let _ = writeln!(
        md,
        "| rates where vxdecap -q delivered fewer frames than tcpdump (paced: and lost a larger share) | {} | none |",
        if below.is_empty() {
            "none".into()
        } else {
            below.join(", ")
        }
    );
    let _ = writeln!(
        md,
        "| paced rates where vxdecap -q lost > 0.1 % and every bare AF_XDP variant did not | {} | none |",
        if alone.is_empty() { "none".into() } else { alone.join(", ") }
    );
    let idle: Vec<String> = args
        .rates
        .iter()
        .filter(|&&r| r > 0.0 && r < IDLE_RATE_MPPS)
        .filter_map(|&r| view.find(Scenario::VxdecapCount, r * 1e6))
        .map(|m| {
            format!(
                "{:.1} % at {}",
                m.tool_core_percent,
                rate_label(m.target_pps)
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "| vxdecap -q CPU, nearly idle | {} | ≤ 5 % of a core |\n",
        if idle.is_empty() {
            "–".into()
        } else {
            idle.join(", ")
        }
    );
}

/// The relay against the DNAT proxy: forwarded rate and CPU per packet.
/// The forwarders' rows: relay ÷ DNAT proxy, and the rig's floor (a bare
/// redirect) ÷ DNAT proxy, the most any forwarder could show on this rig.
fn forwarder_rows(
    relay: Option<&Median>,
    dnat: Option<&Median>,
    floor: Option<&Median>,
    ratio: &dyn Fn(Option<&Median>, Option<&Median>) -> String,
) -> String {
    let per_packet = |m: Option<&Median>| {
        m.map_or_else(|| "–".to_owned(), |m| format!("{:.3}", m.rx_us_per_pkt))
    };
    format!(
        "| vxdecap relay ÷ nftables DNAT proxy, forwarded flat out | {} | ≥ 5 |\n\
         | the rig's floor (bare XDP redirect) ÷ DNAT proxy: the most any forwarder shows here | {} | – |\n\
         | receiver CPU µs/pkt, relay / DNAT proxy / bare redirect | {} / {} / {} | – |",
        ratio(relay, dnat),
        ratio(floor, dnat),
        per_packet(relay),
        per_packet(dnat),
        per_packet(floor)
    )
}

const COLORS: [&str; 14] = [
    "#444444", "#1f77b4", "#aec7e8", "#17becf", "#d62728", "#ff7f0e", "#2ca02c", "#98df8a",
    "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#000000",
];

fn plot(medians: &[Median], rig: Rig, size: &str) -> String {
    let (w, h, pad) = (900.0, 420.0, 60.0);
    let panel = (w - 3.0 * pad) / 2.0;
    let points: Vec<&Median> = medians
        .iter()
        .filter(|m| m.rig == rig && m.size == size)
        .collect();
    // x: the asked rate; flat-out runs stand at the right, labelled so.
    let max_target = points.iter().map(|m| m.target_pps).fold(0.0, f64::max) / 1e6;
    let flat_x = if max_target > 0.0 {
        max_target * 1.25
    } else {
        1.0
    };
    let x_of = |m: &Median| {
        if m.target_pps == 0.0 {
            flat_x
        } else {
            m.target_pps / 1e6
        }
    };
    let max_x = flat_x * 1.05;
    let max_y = points.iter().map(|m| m.delivered_pps).fold(1.0, f64::max) / 1e6 * 1.05;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let (x0, y0, ph) = (pad, h - pad, h - 2.0 * pad);
    let _ = writeln!(
        svg,
        r#"<text x="{x0}" y="20" font-size="13">Delivered Mpps vs asked rate, {} rig, inner size {size}</text>"#,
        rig.name()
    );
    let _ = writeln!(
        svg,
        r#"<line x1="{x0}" y1="{y0}" x2="{}" y2="{y0}" stroke="black"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{}" stroke="black"/>"#,
        x0 + panel,
        y0 - ph
    );
    let sx = |v: f64| x0 + v / max_x * panel;
    let sy = |v: f64| y0 - v / max_y * ph;
    let mut ticks: Vec<f64> = points
        .iter()
        .filter(|m| m.target_pps > 0.0)
        .map(|m| m.target_pps / 1e6)
        .collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    for t in &ticks {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t}</text>"#,
            sx(*t),
            y0 + 15.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">flat out</text>"#,
        sx(flat_x),
        y0 + 15.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">asked rate (Mpps)</text>"#,
        x0 + panel / 2.0,
        y0 + 32.0
    );
    for tick in 0..=4 {
        let v = max_y * f64::from(tick) / 4.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.1}</text>"#,
            x0 - 5.0,
            sy(v) + 4.0
        );
    }
    for (i, scenario) in Scenario::ALL.iter().enumerate() {
        let mut series: Vec<&&Median> = points.iter().filter(|m| m.scenario == *scenario).collect();
        series.sort_by(|a, b| x_of(a).total_cmp(&x_of(b)));
        let path: Vec<String> = series
            .iter()
            .map(|m| format!("{:.1},{:.1}", sx(x_of(m)), sy(m.delivered_pps / 1e6)))
            .collect();
        let color = COLORS[i % COLORS.len()];
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for p in &path {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{color}"/>"#);
        }
        let ly = 40.0 + 14.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x0 + 10.0,
            ly - 9.0,
            x0 + 24.0,
            ly,
            scenario.name()
        );
    }
    cpu_panel(&mut svg, &points, (pad, panel, ph));
    let _ = writeln!(svg, "</svg>");
    svg
}

/// The plot's right panel: receiver CPU per frame at flat out, a bar per
/// scenario (`pad`, panel width, plot height as the left panel has them).
fn cpu_panel(svg: &mut String, points: &[&Median], (pad, panel, ph): (f64, f64, f64)) {
    let x1 = 2.0 * pad + panel;
    let _ = writeln!(
        svg,
        r#"<text x="{x1}" y="20" font-size="13">Receiver CPU µs per delivered frame, flat out</text>"#
    );
    let flat: Vec<(usize, &&Median)> = Scenario::ALL
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            points
                .iter()
                .find(|m| m.scenario == *s && m.target_pps == 0.0)
                .map(|m| (i, m))
        })
        .collect();
    let max_cpu = flat
        .iter()
        .map(|(_, m)| m.rx_us_per_pkt)
        .fold(0.001, f64::max)
        * 1.1;
    let bar_h = ph / (Scenario::ALL.len() as f64) * 0.7;
    for (row, (i, m)) in flat.iter().enumerate() {
        let y = pad + row as f64 * ph / Scenario::ALL.len() as f64;
        let len = m.rx_us_per_pkt / max_cpu * (panel - 120.0);
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{y:.1}" width="{len:.1}" height="{bar_h:.1}" fill="{}"/><text x="{:.1}" y="{:.1}">{} {:.3}</text>"#,
            x1,
            COLORS[i % COLORS.len()],
            x1 + len + 4.0,
            y + bar_h * 0.7,
            m.scenario.name(),
            m.rx_us_per_pkt
        );
    }
}

/// One plot per rig and size: (file name, SVG).
fn plots(medians: &[Median], outcome: &Outcome, sizes: &[String]) -> Vec<(String, String)> {
    outcome
        .calibration
        .iter()
        .flat_map(|(rig, _)| {
            sizes.iter().map(move |size| {
                (
                    format!("plot-{}-{size}.svg", rig.name()),
                    plot(medians, *rig, size),
                )
            })
        })
        .collect()
}

/// Writes results.json, table.md and plot-<rig>-<size>.svg; returns the folder.
pub(crate) fn write(out: &Path, outcome: &Outcome, args: &RunArgs) -> anyhow::Result<PathBuf> {
    let dir = results_dir(out);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let medians = medians(&outcome.results);
    let calibration: Vec<serde_json::Value> = outcome
        .calibration
        .iter()
        .map(|(rig, c)| serde_json::json!({ "rig": rig, "generator": c }))
        .collect();
    let json = serde_json::json!({
        "machine": machine(),
        "duration_s": args.duration,
        "reps": args.reps,
        "flows": args.flows,
        "frames_per_call": DEFAULT_FRAMES_PER_CALL,
        "calibration": calibration,
        "runs": outcome.results,
        "medians": medians,
    });
    let md = table(&medians, outcome, args, &machine());
    let mut files = vec![
        (
            "results.json".to_owned(),
            serde_json::to_string_pretty(&json)?,
        ),
        ("table.md".to_owned(), md.clone()),
    ];
    files.extend(plots(&medians, outcome, &args.sizes));
    for (name, text) in &files {
        std::fs::write(dir.join(name), text)?;
        std::fs::write(out.join(format!("latest-{name}")), text)?;
    }
    println!("{md}");
    eprintln!(
        "bench: results in {} (and {}/latest-*)",
        dir.display(),
        out.display()
    );
    Ok(dir)
}

/// `vxdecap-bench report`: renders `table.md` and the plots again, beside
/// `results`, from the runs a `results.json` holds (after the report's
/// rules change, with no new measurement).
pub(crate) fn rerender(results: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(results).with_context(|| format!("read {}", results.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parse {}", results.display()))?;
    let runs: Vec<RunResult> = serde_json::from_value(json["runs"].clone()).context("runs")?;
    let calibration = json["calibration"]
        .as_array()
        .context("calibration")?
        .iter()
        .map(|c| {
            Ok((
                serde_json::from_value(c["rig"].clone())?,
                c["generator"].clone(),
            ))
        })
        .collect::<anyhow::Result<Vec<(Rig, serde_json::Value)>>>()?;
    let mut args = RunArgs::defaults();
    args.reps = json["reps"].as_u64().map_or(args.reps, |r| r as usize);
    args.duration = json["duration_s"].as_f64().unwrap_or(args.duration);
    args.rates.clear();
    args.sizes.clear();
    for run in &runs {
        let rate = run.target_pps / 1e6;
        if !args.rates.contains(&rate) {
            args.rates.push(rate);
        }
        if !args.sizes.contains(&run.size) {
            args.sizes.push(run.size.clone());
        }
    }
    // Paced rates ascending, flat out (0) last, as the command line gives them.
    args.rates.sort_by(|a, b| {
        (*a == 0.0, *a)
            .partial_cmp(&(*b == 0.0, *b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let outcome = Outcome {
        results: runs,
        calibration,
    };
    let medians = medians(&outcome.results);
    let machine = json["machine"].as_str().unwrap_or("unknown machine");
    let dir = results.parent().unwrap_or_else(|| Path::new("."));
    std::fs::write(
        dir.join("table.md"),
        table(&medians, &outcome, &args, machine),
    )?;
    for (name, svg) in plots(&medians, &outcome, &args.sizes) {
        std::fs::write(dir.join(name), svg)?;
    }
    eprintln!(
        "bench: table.md and plots written again in {}",
        dir.display()
    );
    Ok(())
}
