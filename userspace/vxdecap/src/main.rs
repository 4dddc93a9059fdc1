//! The `vxdecap` command: see [`cli`].
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command line prints its results and errors"
)]

mod cli;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    cli::log::init();
    let cli = cli::args::Cli::parse();
    match cli::run::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vxdecap: {e:#}");
            cli::run::exit_code(&e)
        }
    }
}
