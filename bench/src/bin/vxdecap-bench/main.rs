//! `vxdecap-bench`: the benchmark harness and its helpers.
//!
//! ```text
//! vxdecap-bench run [--quick] [--rigs other-core,shared-core] [--rates 0.01,0.1,1,0] [--sizes 64,imix] [--reps 2]
//! vxdecap-bench gen --interface und0 --dst-mac MAC [--size 64|1400|imix] [--pps N] [--duration S]
//! vxdecap-bench drop --interface eth1 [--pass]
//! vxdecap-bench xsk-count --interface eth1 [--cpu 1] [--policy spin|sleep|yield]
//! vxdecap-bench lossless [--scenarios relay_xdp,dnat_proxy] [--rigs shared-core] [--steps 7]
//! vxdecap-bench scale [--reps 3] [--size 64]
//! vxdecap-bench policies [--rigs other-core,shared-core] [--rates 1,0] [--reps 3]
//! ```
//! `run` builds its own namespaces and runs the others inside them.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark harness prints its results"
)]

mod gen;
mod lossless;
mod policies;
mod receivers;
mod report;
mod run;
mod scale;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "vxdecap-bench",
    about = "vxdecap against tcpdump and the machine's ceilings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run every scenario and write results (JSON, markdown, SVG).
    Run(run::RunArgs),
    /// The highest rate each receiver carries without loss (bisection over paced runs).
    Lossless(lossless::LosslessArgs),
    /// Delivered rate with 1 and 2 rx queues (and the XDP_DROP ceiling).
    Scale(scale::ScaleArgs),
    /// vxdecap's receive policies against each other and bare AF_XDP, on both rigs.
    Policies(policies::PolicyArgs),
    /// Render table.md and the plots again from a results.json (no measuring).
    Report {
        /// The results.json of a run; its folder gets the new files.
        results: std::path::PathBuf,
    },
    /// Send VXLAN frames with BPF_PROG_TEST_RUN live frames.
    Gen(gen::GenArgs),
    /// Attach an XDP_DROP (or XDP_PASS, or redirecting) program and count frames until SIGINT.
    Drop {
        #[arg(long)]
        interface: String,
        #[arg(long, conflicts_with = "redirect")]
        pass: bool,
        /// Redirect every frame out of this interface instead (the rig's cheapest forwarder).
        #[arg(long, requires_all = ["dst_mac", "src_mac"])]
        redirect: Option<String>,
        /// The redirected frames' destination MAC.
        #[arg(long)]
        dst_mac: Option<String>,
        /// The redirected frames' source MAC.
        #[arg(long)]
        src_mac: Option<String>,
    },
    /// Bare AF_XDP receive, no decap, until SIGINT.
    XskCount {
        #[arg(long)]
        interface: String,
        #[arg(long, default_value_t = 1)]
        cpu: usize,
        /// What to do on an empty ring.
        #[arg(long, value_enum, default_value = "spin")]
        policy: receivers::IdlePolicy,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            run::run(args)?;
        }
        Command::Lossless(args) => {
            lossless::run(&args)?;
        }
        Command::Scale(args) => scale::run(&args)?,
        Command::Policies(args) => policies::run(&args)?,
        Command::Report { results } => report::rerender(&results)?,
        Command::Gen(args) if args.calibrate => println!("{}", gen::calibrate(&args)?),
        Command::Gen(args) => println!("{}", serde_json::to_string(&gen::run(&args)?)?),
        Command::Drop {
            interface,
            pass,
            redirect,
            dst_mac,
            src_mac,
        } => {
            let action = match (redirect, dst_mac, src_mac) {
                (Some(out), Some(dst), Some(src)) => receivers::XdpAction::Redirect {
                    interface: out,
                    macs: receivers::mac_pair(&dst, &src)?,
                },
                _ if pass => receivers::XdpAction::Pass,
                _ => receivers::XdpAction::Drop,
            };
            println!(
                "{}",
                serde_json::to_string(&receivers::xdp_program(&interface, &action)?)?
            )
        }
        Command::XskCount {
            interface,
            cpu,
            policy,
        } => {
            println!(
                "{}",
                serde_json::to_string(&receivers::xsk_count(&interface, cpu, policy)?)?
            )
        }
    }
    Ok(())
}
