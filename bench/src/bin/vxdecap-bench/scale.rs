//! `vxdecap-bench scale`: delivered rate with 1 and 2 rx queues.
//!
//! The collector's veth gets 2 rx queues. Frames the generator redirects
//! into a veth land on the rx queue numbered after the sending CPU, so one
//! generator pinned to CPU 0 feeds queue 0, and generators on CPUs 0 and 1
//! feed queues 0 and 1. Each configuration runs flat out, alternating,
//! `reps` times; the XDP_DROP ceiling is measured the same way with 1 and 2
//! generators, because on a small VM the generators (and the veth receive
//! work they drive) take CPU from the receiver.

use std::time::Duration;

use anyhow::Context as _;

use crate::receivers::ReceiverReport;
use crate::report::median;
use crate::run::{number_before, Bench, Proc, Rig};

/// Options.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct ScaleArgs {
    /// Repetitions of every configuration.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Seconds of traffic per run.
    #[arg(long, default_value_t = 2.0)]
    pub duration: f64,
    /// Inner frame size in bytes, or `imix`.
    #[arg(long, default_value = "64")]
    pub size: String,
}

#[derive(Clone, Copy, Debug)]
enum Receiver {
    XdpDrop,
    Vxdecap,
}

/// One configuration's medians: (offered Mpps, delivered Mpps).
fn measure(
    bench: &Bench,
    receiver: Receiver,
    queues: usize,
    args: &ScaleArgs,
) -> anyhow::Result<(f64, f64)> {
    let mut procs = match receiver {
        Receiver::XdpDrop => vec![Proc::spawn(
            &bench.rx,
            None,
            &bench.exe("vxdecap-bench"),
            &["drop", "--interface", &bench.iface],
        )?],
        Receiver::Vxdecap => {
            let (list, cpus) = if queues == 1 {
                ("0", "1")
            } else {
                ("0,1", "1,0")
            };
            vec![Proc::spawn(
                &bench.rx,
                None,
                &bench.exe("vxdecap"),
                &[
                    "capture",
                    "-i",
                    &bench.iface,
                    "-q",
                    "--queues",
                    list,
                    "--cpus",
                    cpus,
                ],
            )?]
        }
    };
    std::thread::sleep(Duration::from_millis(200));
    let generators: Vec<_> = (0..queues)
        .map(|cpu| {
            let size = args.size.clone();
            let duration = args.duration;
            let tx = bench.tx.name().to_owned();
            let exe = bench.exe("vxdecap-bench");
            let rx_mac = bench.rx_mac().to_owned();
            std::thread::spawn(move || -> anyhow::Result<(u64, f64)> {
                let out = std::process::Command::new("ip")
                    .args([
                        "netns",
                        "exec",
                        &tx,
                        "taskset",
                        "-c",
                        &cpu.to_string(),
                        &exe,
                    ])
                    .args([
                        "gen",
                        "--interface",
                        "und0",
                        "--dst-mac",
                        &rx_mac,
                        "--size",
                        &size,
                    ])
                    .args(["--duration", &duration.to_string()])
                    .output()?;
                let report: crate::gen::GenReport = serde_json::from_slice(&out.stdout)
                    .with_context(|| {
                        format!("generator said: {}", String::from_utf8_lossy(&out.stderr))
                    })?;
                Ok((report.sent, report.seconds))
            })
        })
        .collect();
    let mut sent = 0;
    let mut seconds: f64 = 0.0;
    for g in generators {
        let (n, s) = g
            .join()
            .map_err(|_| anyhow::anyhow!("generator thread"))??;
        sent += n;
        seconds = seconds.max(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (out, err) = procs[0].stop()?;
    let delivered = match receiver {
        Receiver::XdpDrop => {
            let report: ReceiverReport = serde_json::from_str(out.trim())
                .with_context(|| format!("receiver said: {out}{err}"))?;
            report.delivered
        }
        Receiver::Vxdecap => {
            if std::env::var_os("VXDECAP_BENCH_SUMMARY").is_some() {
                eprintln!("{err}");
            }
            number_before(&err, "inner frames written")
                .with_context(|| format!("vxdecap said: {err}"))?
        }
    };
    Ok((
        sent as f64 / seconds / 1e6,
        delivered as f64 / seconds / 1e6,
    ))
}

/// Runs the comparison and prints a table.
pub(crate) fn run(args: &ScaleArgs) -> anyhow::Result<()> {
    let bench = Bench::new(Rig::OtherCore, 2)?;
    let configs = [
        (Receiver::XdpDrop, 1),
        (Receiver::XdpDrop, 2),
        (Receiver::Vxdecap, 1),
        (Receiver::Vxdecap, 2),
    ];
    let mut samples: Vec<Vec<(f64, f64)>> = vec![Vec::new(); configs.len()];
    for rep in 0..args.reps.max(1) {
        for i in 0..configs.len() {
            let k = (i + rep) % configs.len();
            let (receiver, queues) = configs[k];
            let r = measure(&bench, receiver, queues, args)?;
            eprintln!(
                "scale: {receiver:?} {queues} queue(s): offered {:.3} Mpps, delivered {:.3} Mpps",
                r.0, r.1
            );
            samples[k].push(r);
        }
    }
    println!("| receiver | rx queues (generators) | offered Mpps | delivered Mpps |");
    println!("|---|---:|---:|---:|");
    let mut delivered = Vec::new();
    for ((receiver, queues), s) in configs.iter().zip(&samples) {
        let offered = median(s.iter().map(|r| r.0).collect());
        let got = median(s.iter().map(|r| r.1).collect());
        delivered.push(got);
        println!("| {receiver:?} | {queues} | {offered:.3} | {got:.3} |");
    }
    println!();
    println!(
        "vxdecap 2 queues / 1 queue: {:.2}; XDP_DROP 2 generators / 1: {:.2}",
        delivered[3] / delivered[2].max(1e-9),
        delivered[1] / delivered[0].max(1e-9)
    );
    Ok(())
}
