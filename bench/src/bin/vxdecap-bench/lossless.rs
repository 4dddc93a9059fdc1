//! `vxdecap-bench lossless`: the highest rate each receiver carries
//! without loss, found by bisection over paced runs (RFC 2544's
//! throughput, with a loss tolerance).
//!
//! Flat-out delivery is not the same measure: a receiver past its
//! capacity may deliver more than it can carry cleanly (drops spread over
//! a burst), or less (the kernel's receive work starving the tool). The
//! issue's forwarder target (relay ÷ DNAT proxy) is stated on the lossless
//! rate on one core, so that is measured on the shared-core rig by default,
//! where the forwarder's core runs its receive, forwarding and transmit
//! and the generator has a core of its own. (On the other-core rig the
//! forwarders' work runs in softirq on the generator's CPU and slows the
//! generator instead of losing frames, so "lossless" there says little.)
//!
//! The scenarios take their steps in turn, so drift in the machine's
//! speed touches each of them alike.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::report::median;
use crate::run::{Bench, Rig, RunArgs, RunResult, Scenario};

/// Options.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct LosslessArgs {
    /// Receivers to search (names as in `run --scenarios`).
    #[arg(long, value_delimiter = ',', default_value = "relay_xdp,dnat_proxy")]
    pub scenarios: Vec<String>,
    /// Rigs.
    #[arg(long, value_delimiter = ',', default_value = "shared-core")]
    pub rigs: Vec<String>,
    /// Inner frame size in bytes, or `imix`.
    #[arg(long, default_value = "64")]
    pub size: String,
    /// Seconds of traffic per probe.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Paced probes per search, after the flat-out run that bounds it.
    #[arg(long, default_value_t = 7)]
    pub steps: usize,
    /// The share of frames a probe may lose and still count as lossless.
    #[arg(long, default_value_t = 0.001)]
    pub max_loss: f64,
    /// Searches per (rig, scenario); the medians are reported.
    #[arg(long, default_value_t = 1)]
    pub reps: usize,
    /// Results folder (a timestamped subfolder gets results.json and table.md).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

/// One search's outcome.
#[derive(Clone, Debug, serde::Serialize)]
struct Search {
    rig: Rig,
    scenario: Scenario,
    rep: usize,
    /// The flat-out run that bounds the search.
    flat_out: RunResult,
    /// Every paced probe, in order.
    probes: Vec<RunResult>,
}

impl Search {
    /// The lossless probe with the highest offered rate, if any.
    fn best(&self, max_loss: f64) -> Option<&RunResult> {
        self.probes
            .iter()
            .filter(|p| p.lossless_within(max_loss))
            .max_by(|a, b| a.offered_pps.total_cmp(&b.offered_pps))
    }
}

impl RunResult {
    /// Whether this run lost no more than `max_loss` of what was sent.
    fn lossless_within(&self, max_loss: f64) -> bool {
        self.sent > 0 && (self.loss.max(0) as f64) <= max_loss * self.sent as f64
    }
}

/// The bounds of one search, narrowed probe by probe.
struct Bounds {
    /// The highest offered rate seen lossless.
    lo: f64,
    /// The lowest asked rate seen lossy.
    hi: f64,
    /// The next rate to ask for.
    next: f64,
}

impl Bounds {
    /// From the flat-out run: the first probe asks for what it delivered.
    fn new(flat_out: &RunResult) -> Self {
        Self {
            lo: 0.0,
            hi: flat_out.offered_pps,
            next: flat_out.delivered_pps.min(flat_out.offered_pps),
        }
    }

    fn record(&mut self, asked: f64, probe: &RunResult, max_loss: f64) {
        if probe.lossless_within(max_loss) {
            self.lo = self.lo.max(probe.offered_pps.min(asked));
        } else {
            self.hi = self.hi.min(asked);
        }
        self.next = f64::midpoint(self.lo, self.hi);
    }
}

/// Runs the searches, prints the table and writes the results; returns the results folder.
pub(crate) fn run(args: &LosslessArgs) -> anyhow::Result<PathBuf> {
    let rigs = args
        .rigs
        .iter()
        .map(|r| Rig::parse(r))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let scenarios = args
        .scenarios
        .iter()
        .map(|s| Scenario::parse(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut run_args = RunArgs::defaults();
    run_args.duration = args.duration;
    let mut searches = Vec::new();
    for &rig in &rigs {
        let bench = Bench::new(rig, 1)?;
        for rep in 0..args.reps.max(1) {
            searches.extend(search_in_turn(&bench, &scenarios, rep, args, &run_args)?);
        }
    }
    let table = render(&searches, &rigs, &scenarios, args);
    println!("{table}");
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = args.out.join(format!("lossless-{secs}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_vec_pretty(&searches)?,
    )?;
    std::fs::write(dir.join("table.md"), &table)?;
    eprintln!("lossless: results in {}", dir.display());
    Ok(dir)
}

/// One search per scenario on `bench`, their probes taken in turn.
fn search_in_turn(
    bench: &Bench,
    scenarios: &[Scenario],
    rep: usize,
    args: &LosslessArgs,
    run_args: &RunArgs,
) -> anyhow::Result<Vec<Search>> {
    let measure = |scenario: Scenario, pps: f64| {
        bench
            .measure(scenario, &args.size, pps, rep, run_args)
            .with_context(|| format!("{} at {:.3} Mpps", scenario.name(), pps / 1e6))
    };
    let mut searches = Vec::new();
    let mut bounds = Vec::new();
    for &scenario in scenarios {
        let flat_out = measure(scenario, 0.0)?;
        eprintln!(
            "lossless: {:<11} {:<12} flat out: offered {:.3} Mpps, delivered {:.3} Mpps",
            bench.rig.name(),
            scenario.name(),
            flat_out.offered_pps / 1e6,
            flat_out.delivered_pps / 1e6
        );
        bounds.push(Bounds::new(&flat_out));
        searches.push(Search {
            rig: bench.rig,
            scenario,
            rep,
            flat_out,
            probes: Vec::new(),
        });
    }
    for _ in 0..args.steps {
        for (search, bound) in searches.iter_mut().zip(&mut bounds) {
            // Rates under a thousand frames a second say nothing here.
            let asked = bound.next.max(1e3);
            let probe = measure(search.scenario, asked)?;
            bound.record(asked, &probe, args.max_loss);
            eprintln!(
                "lossless: {:<11} {:<12} asked {:.3} Mpps: offered {:.3}, delivered {:.3}, lost {:.4} % -> [{:.3}, {:.3}]",
                search.rig.name(),
                search.scenario.name(),
                asked / 1e6,
                probe.offered_pps / 1e6,
                probe.delivered_pps / 1e6,
                probe.loss.max(0) as f64 * 100.0 / probe.sent.max(1) as f64,
                bound.lo / 1e6,
                bound.hi / 1e6
            );
            search.probes.push(probe);
        }
    }
    Ok(searches)
}

/// The table: per rig and scenario the medians of the searches, and the
/// ratio of each scenario's lossless rate to the last scenario's (relay ÷
/// DNAT proxy with the default order).
fn render(
    searches: &[Search],
    rigs: &[Rig],
    scenarios: &[Scenario],
    args: &LosslessArgs,
) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Lossless rate: the highest offered rate with at most {:.2} % loss, bisected over {} paced {} s probes below a flat-out run; inner size {}; medians of {} search(es). CPU µs/pkt: busy time of CPU 1 per delivered frame at that rate.\n",
        args.max_loss * 100.0,
        args.steps,
        args.duration,
        args.size,
        args.reps.max(1)
    );
    let _ = writeln!(
        out,
        "| rig | receiver | flat-out delivered Mpps | lossless Mpps | CPU µs/pkt there | ÷ last row's lossless |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
    for &rig in rigs {
        let rows: Vec<(Scenario, f64, f64, f64)> = scenarios
            .iter()
            .map(|&scenario| {
                let mine: Vec<&Search> = searches
                    .iter()
                    .filter(|s| s.rig == rig && s.scenario == scenario)
                    .collect();
                let flat = median(mine.iter().map(|s| s.flat_out.delivered_pps).collect());
                let best: Vec<&RunResult> =
                    mine.iter().filter_map(|s| s.best(args.max_loss)).collect();
                let rate = median(best.iter().map(|r| r.offered_pps).collect());
                let cpu = median(best.iter().map(|r| r.rx_us_per_pkt()).collect());
                (scenario, flat, rate, cpu)
            })
            .collect();
        let base = rows.last().map_or(0.0, |r| r.2);
        for (scenario, flat, rate, cpu) in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {:.3} | {:.3} | {:.3} | {:.2} |",
                rig.name(),
                scenario.name(),
                flat / 1e6,
                rate / 1e6,
                cpu,
                if base > 0.0 { rate / base } else { 0.0 }
            );
        }
    }
    out
}
