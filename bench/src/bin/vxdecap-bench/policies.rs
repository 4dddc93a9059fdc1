//! `vxdecap-bench policies`: vxdecap's receive policies (`--rx-policy`)
//! against each other and against the bare AF_XDP variants, on both rigs,
//! in one run: the measurement behind the default.

use std::fmt::Write as _;

use anyhow::Context as _;

use crate::report::median;
use crate::run::{Bench, Rig, RunArgs, RunResult, Scenario};

/// Options.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct PolicyArgs {
    /// Rigs (other-core, shared-core).
    #[arg(long, value_delimiter = ',', default_value = "other-core,shared-core")]
    pub rigs: Vec<String>,
    /// Offered rates in Mpps; 0 means flat out.
    #[arg(long, value_delimiter = ',', default_value = "1,0")]
    pub rates: Vec<f64>,
    /// Policies to compare.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "auto,sleep,spin,busy-poll"
    )]
    pub policies: Vec<String>,
    /// Repetitions, alternating the order.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Seconds of traffic per run.
    #[arg(long, default_value_t = 2.0)]
    pub duration: f64,
    /// Inner frame size.
    #[arg(long, default_value = "64")]
    pub size: String,
}

/// Runs the comparison and prints a markdown table of medians.
pub(crate) fn run(args: &PolicyArgs) -> anyhow::Result<()> {
    // One receiver: a policy of vxdecap, or a bare AF_XDP variant.
    let mut receivers: Vec<(String, Scenario, String)> = args
        .policies
        .iter()
        .map(|p| {
            (
                format!("vxdecap -q, --rx-policy {p}"),
                Scenario::VxdecapCount,
                format!("--rx-policy={p}"),
            )
        })
        .collect();
    for s in Scenario::AF_XDP {
        receivers.push((s.name().to_owned(), s, String::new()));
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| rig | rate | receiver | offered Mpps | delivered Mpps | loss | receiver CPU µs/pkt | tool % of a core |"
    );
    let _ = writeln!(md, "|---|---|---|---:|---:|---:|---:|---:|");
    for rig in &args.rigs {
        let rig = match rig.as_str() {
            "other-core" => Rig::OtherCore,
            "shared-core" => Rig::SharedCore,
            other => anyhow::bail!("rig {other:?}: use other-core or shared-core"),
        };
        let bench = Bench::new(rig, 1)?;
        for &rate in &args.rates {
            let mut samples: Vec<Vec<RunResult>> = vec![Vec::new(); receivers.len()];
            for rep in 0..args.reps {
                for i in 0..receivers.len() {
                    let k = (i + rep) % receivers.len();
                    let (name, scenario, extra) = &receivers[k];
                    let run_args = RunArgs {
                        duration: args.duration,
                        vxdecap_args: extra.clone(),
                        ..RunArgs::defaults()
                    };
                    let r = bench
                        .measure(*scenario, &args.size, rate * 1e6, rep, &run_args)
                        .with_context(|| format!("{name} on the {} rig", rig.name()))?;
                    eprintln!(
                        "policies: {:<11} {rate:>4} Mpps {name:<32} offered {:.3} delivered {:.3} Mpps",
                        rig.name(),
                        r.offered_pps / 1e6,
                        r.delivered_pps / 1e6
                    );
                    samples[k].push(r);
                }
            }
            for ((name, _, _), s) in receivers.iter().zip(&samples) {
                let m = |f: &dyn Fn(&RunResult) -> f64| median(s.iter().map(f).collect());
                let _ = writeln!(
                    md,
                    "| {} | {} | {name} | {:.3} | {:.3} | {:.1} % | {:.3} | {:.1} |",
                    rig.name(),
                    if rate == 0.0 {
                        "flat out".to_owned()
                    } else {
                        format!("{rate} Mpps")
                    },
                    m(&|r| r.offered_pps / 1e6),
                    m(&|r| r.delivered_pps / 1e6),
                    m(&|r| r.loss.max(0) as f64 / r.sent.max(1) as f64 * 100.0),
                    m(&RunResult::rx_us_per_pkt),
                    m(&RunResult::tool_core_percent),
                );
            }
        }
    }
    println!("{md}");
    Ok(())
}
