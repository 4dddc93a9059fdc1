//! The `vxdecap` command: see [`cli`].

mod cli;

use std::process::ExitCode;

use clap::Parser;

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
