//! Results: a JSON record of every run with medians, a markdown table and an
//! SVG plot, written to a timestamped folder and as `latest.*` beside it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::run::{results_dir, RunArgs, RunResult, Scenario};

/// Medians of one (scenario, size, rate) group.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Median {
    scenario: Scenario,
    size: String,
    target_pps: f64,
    runs: usize,
    offered_pps: f64,
    delivered_pps: f64,
    loss_ratio: f64,
    tool_drops: f64,
    cpu_all_s_per_mpkt: f64,
    cpu_tool_s_per_mpkt: f64,
    /// Median of the runs' p50, p99 and p99.9 latencies (µs), for vxdecap.
    latency_us: Option<[f64; 3]>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn medians(results: &[RunResult]) -> Vec<Median> {
    let mut keys: Vec<(Scenario, String, f64)> = Vec::new();
    for r in results {
        let key = (r.scenario, r.size.clone(), r.target_pps);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .map(|(scenario, size, target_pps)| {
            let group: Vec<&RunResult> = results
                .iter()
                .filter(|r| r.scenario == scenario && r.size == size && r.target_pps == target_pps)
                .collect();
            let m = |f: &dyn Fn(&RunResult) -> f64| median(group.iter().map(|r| f(r)).collect());
            Median {
                scenario,
                size,
                target_pps,
                runs: group.len(),
                offered_pps: m(&|r| r.offered_pps),
                delivered_pps: m(&|r| r.delivered_pps),
                loss_ratio: m(&|r| r.loss.max(0) as f64 / r.sent.max(1) as f64),
                tool_drops: m(&|r| r.tool_drops as f64),
                cpu_all_s_per_mpkt: m(&|r| r.cpu_all_per_mpkt()),
                cpu_tool_s_per_mpkt: m(&|r| r.cpu_tool_per_mpkt()),
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

fn find<'a>(
    medians: &'a [Median],
    scenario: Scenario,
    size: &str,
    target: f64,
) -> Option<&'a Median> {
    medians
        .iter()
        .find(|m| m.scenario == scenario && m.size == size && m.target_pps == target)
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

fn table(medians: &[Median], args: &RunArgs) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "Machine: {}. Generator: BPF_PROG_TEST_RUN live frames on CPU 0 into a veth pair; receivers' user-space threads on CPU 1. {} s per run, {} repetition(s), medians.\n", machine(), args.duration, args.reps);
    for size in &args.sizes {
        let _ = writeln!(md, "### Inner frame size {size}, flat out\n");
        let _ = writeln!(md, "| receiver | offered Mpps | delivered Mpps | loss | tool's drops | CPU s/Mpkt, all cores | CPU s/Mpkt, tool |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        for scenario in Scenario::ALL {
            if let Some(m) = find(medians, scenario, size, 0.0) {
                let _ = writeln!(
                    md,
                    "| {} | {:.3} | {:.3} | {:.2} % | {:.0} | {:.3} | {:.3} |",
                    scenario.name(),
                    m.offered_pps / 1e6,
                    m.delivered_pps / 1e6,
                    m.loss_ratio * 100.0,
                    m.tool_drops,
                    m.cpu_all_s_per_mpkt,
                    m.cpu_tool_s_per_mpkt
                );
            }
        }
        let _ = writeln!(
            md,
            "\n#### vxdecap receive-to-analyzer latency, size {size} (µs: p50 / p99 / p99.9)\n"
        );
        let _ = writeln!(md, "| receiver | asked rate | latency |");
        let _ = writeln!(md, "|---|---:|---:|");
        for m in medians.iter().filter(|m| &m.size == size) {
            if let Some([p50, p99, p999]) = m.latency_us {
                let rate = if m.target_pps == 0.0 {
                    "flat out".to_owned()
                } else {
                    format!("{} Mpps", m.target_pps / 1e6)
                };
                let _ = writeln!(
                    md,
                    "| {} | {rate} | {p50:.0} / {p99:.0} / {p999:.0} |",
                    m.scenario.name()
                );
            }
        }
        let paced: Vec<f64> = args.rates.iter().copied().filter(|&r| r > 0.0).collect();
        if !paced.is_empty() {
            let _ = writeln!(
                md,
                "\n#### Delivered Mpps (loss %) at each offered rate, size {size}\n"
            );
            let header: Vec<String> = paced.iter().map(|r| format!("{r} Mpps")).collect();
            let _ = writeln!(md, "| receiver | {} |", header.join(" | "));
            let _ = writeln!(md, "|---|{}", "---:|".repeat(paced.len()));
            for scenario in Scenario::ALL {
                let cells: Vec<String> = paced
                    .iter()
                    .map(|&r| {
                        find(medians, scenario, size, r * 1e6).map_or("–".into(), |m| {
                            format!(
                                "{:.3} ({:.1} %)",
                                m.delivered_pps / 1e6,
                                m.loss_ratio * 100.0
                            )
                        })
                    })
                    .collect();
                let _ = writeln!(md, "| {} | {} |", scenario.name(), cells.join(" | "));
            }
        }
        let _ = writeln!(md, "\n#### Against the targets, size {size}, flat out\n");
        let ratio = |a: Scenario, b: Scenario, f: &dyn Fn(&Median) -> f64| -> Option<f64> {
            let (a, b) = (find(medians, a, size, 0.0)?, find(medians, b, size, 0.0)?);
            Some(f(a) / f(b).max(1e-12))
        };
        let rows: [(&str, Option<f64>, &str); 5] = [
            (
                "vxdecap ÷ bare AF_XDP, delivered",
                ratio(Scenario::VxdecapCount, Scenario::AfXdpBare, &|m| {
                    m.delivered_pps
                }),
                "≥ 0.95",
            ),
            (
                "vxdecap ÷ tcpdump, delivered",
                ratio(Scenario::VxdecapCount, Scenario::TcpdumpNull, &|m| {
                    m.delivered_pps
                }),
                "≥ 5",
            ),
            (
                "vxdecap ÷ tcpdump, CPU per packet (all cores)",
                ratio(Scenario::VxdecapCount, Scenario::TcpdumpNull, &|m| {
                    m.cpu_all_s_per_mpkt
                }),
                "≤ 0.2",
            ),
            (
                "vxdecap ÷ kernel VXLAN + tcpdump, delivered",
                ratio(Scenario::VxdecapCount, Scenario::KernelVxlanTcpdump, &|m| {
                    m.delivered_pps
                }),
                "≥ 2",
            ),
            (
                "vxdecap pcap to tmpfs ÷ vxdecap counting, delivered",
                ratio(Scenario::VxdecapPcapTmpfs, Scenario::VxdecapCount, &|m| {
                    m.delivered_pps
                }),
                "≥ 0.8",
            ),
        ];
        let _ = writeln!(md, "| ratio | measured | target |");
        let _ = writeln!(md, "|---|---:|---|");
        for (name, value, target) in rows {
            let _ = writeln!(
                md,
                "| {name} | {} | {target} |",
                value.map_or("–".into(), |v| format!("{v:.2}"))
            );
        }
        let _ = writeln!(md);
    }
    md
}

const COLORS: [&str; 8] = [
    "#444444", "#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#98df8a", "#9467bd", "#8c564b",
];

fn plot(medians: &[Median], size: &str) -> String {
    let (w, h, pad) = (900.0, 420.0, 60.0);
    let panel = (w - 3.0 * pad) / 2.0;
    let points: Vec<&Median> = medians.iter().filter(|m| m.size == size).collect();
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
        r#"<text x="{x0}" y="20" font-size="13">Delivered Mpps vs asked rate, inner size {size}</text>"#
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
    // Right panel: CPU per million packets at flat out.
    let x1 = 2.0 * pad + panel;
    let _ = writeln!(
        svg,
        r#"<text x="{x1}" y="20" font-size="13">CPU s per million delivered, flat out (all cores)</text>"#
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
        .map(|(_, m)| m.cpu_all_s_per_mpkt)
        .fold(0.001, f64::max)
        * 1.1;
    let bar_h = ph / (Scenario::ALL.len() as f64) * 0.7;
    for (row, (i, m)) in flat.iter().enumerate() {
        let y = pad + row as f64 * ph / Scenario::ALL.len() as f64;
        let len = m.cpu_all_s_per_mpkt / max_cpu * (panel - 120.0);
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{y:.1}" width="{len:.1}" height="{bar_h:.1}" fill="{}"/><text x="{:.1}" y="{:.1}">{} {:.3}</text>"#,
            x1,
            COLORS[i % COLORS.len()],
            x1 + len + 4.0,
            y + bar_h * 0.7,
            m.scenario.name(),
            m.cpu_all_s_per_mpkt
        );
    }
    let _ = writeln!(svg, "</svg>");
    svg
}

/// Writes results.json, table.md and plot-<size>.svg; returns the folder.
pub fn write(out: &Path, results: &[RunResult], args: &RunArgs) -> anyhow::Result<PathBuf> {
    let dir = results_dir(out);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let medians = medians(results);
    let json = serde_json::json!({
        "machine": machine(),
        "duration_s": args.duration,
        "reps": args.reps,
        "flows": args.flows,
        "runs": results,
        "medians": medians,
    });
    let md = table(&medians, args);
    let mut files = vec![
        (
            "results.json".to_owned(),
            serde_json::to_string_pretty(&json)?,
        ),
        ("table.md".to_owned(), md.clone()),
    ];
    for size in &args.sizes {
        files.push((format!("plot-{size}.svg"), plot(&medians, size)));
    }
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
