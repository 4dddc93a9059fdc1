//! `vxdecap generate man DIR` and `vxdecap generate completions SHELL DIR`
//! (hidden): the man pages and shell completions, generated from the clap
//! definitions the binary parses with (`clap_mangen`, `clap_complete`), so
//! they cannot drift from the flags. `scripts/package.sh` runs the built
//! binary to make them for the Debian package.
//!
//! Part of the binary (declared in `main.rs`), not of the library: it needs
//! the `Cli` type, and a subcommand follows the definitions wherever they
//! live, where a `build.rs` would need them in a crate of their own.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use roff::{bold, roman, Roff};

/// What to generate.
#[derive(Args, Debug)]
pub(crate) struct GenerateArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// Man pages: vxdecap.1 and vxdecap-SUBCOMMAND.1 into DIR.
    Man {
        /// Output directory (created if missing).
        dir: PathBuf,
    },
    /// The completion script for SHELL into DIR (vxdecap.bash, _vxdecap, vxdecap.fish, …).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
        /// Output directory (created if missing).
        dir: PathBuf,
    },
}

/// Writes what `args` asks for, from `cmd` (the binary's `Cli::command()`),
/// and prints the files written.
pub(crate) fn run(args: GenerateArgs, cmd: clap::Command) -> anyhow::Result<()> {
    let written = match args.what {
        What::Man { dir } => {
            create(&dir)?;
            man_pages(cmd, &dir)?
        }
        What::Completions { shell, dir } => {
            create(&dir)?;
            let mut cmd = without_hidden(cmd);
            vec![clap_complete::generate_to(shell, &mut cmd, "vxdecap", &dir)
                .with_context(|| format!("cannot write the {shell} completions"))?]
        }
    };
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

/// The command with its hidden subcommands left out (clap_complete would
/// offer the lab's helpers and `generate` to every user).
fn without_hidden(cmd: clap::Command) -> clap::Command {
    let visible: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut out = clap::Command::new("vxdecap")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .disable_help_subcommand(true)
        .subcommands(visible);
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    out
}

fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// A page for the command and each visible subcommand (hidden ones, such as
/// the lab's helpers and this one, have none).
fn man_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_owned();
    let date = page_date();
    let mut written = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let page = clap_mangen::Man::new(sub.clone())
            .date(&date)
            .source(format!("vxdecap {version}"))
            .manual("vxdecap manual");
        let path = dir.join(page.get_filename());
        let mut bytes = Vec::new();
        page.render(&mut bytes)?;
        bytes.extend_from_slice(see_also().as_bytes());
        write(&path, &bytes)?;
        written.push(path);
    }
    let page = clap_mangen::Man::new(cmd.clone())
        .date(&date)
        .source(format!("vxdecap {version}"))
        .manual("vxdecap manual");
    let path = dir.join(page.get_filename());
    let mut bytes = Vec::new();
    page.render(&mut bytes)?;
    bytes.extend_from_slice(extra_sections().as_bytes());
    bytes.extend_from_slice(see_also().as_bytes());
    write(&path, &bytes)?;
    written.push(path);
    Ok(written)
}

/// The pages' date: `$SOURCE_DATE_EPOCH` (reproducible builds; package.sh
/// sets it to the commit's time), else today, in UTC.
fn page_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    let mut date = String::new();
    // "%F" is a known conversion: this cannot fail.
    let _ = vxdecap::analyzer::strftime_utc("%F", secs, &mut date);
    date
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// EXIT STATUS, FILES and ENVIRONMENT of the main page (what --help has no room for).
fn extra_sections() -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        ("0", "The run ended normally: end of the input, -c, --duration, or a signal."),
        ("1", "A runtime failure, after the summary: an output that failed (a full disk, a reader that went away), an input damaged or cut short."),
        ("2", "Bad usage or configuration, before anything is attached or any output opened."),
        ("130", "A second SIGINT or SIGTERM (no summary)."),
    ] {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(meaning)]);
    }
    roff.control("SH", ["SIGNALS"]);
    roff.text([roman(
        "SIGINT and SIGTERM stop intake, drain the rings and the analyzer queues, flush the outputs and print the summary. SIGHUP re-reads the --allow-file.",
    )]);
    roff.control("SH", ["FILES"]);
    for (file, what) in [
        (
            "/etc/vxdecap/vxdecap.toml",
            "The configuration the systemd unit reads (capture --config).",
        ),
        (
            "/usr/lib/systemd/system/vxdecap@.service",
            "The unit: systemctl enable --now vxdecap@eth1 captures on eth1 as the user vxdecap.",
        ),
        (
            "/var/lib/vxdecap/IFACE",
            "The unit's working and only writable directory (StateDirectory=vxdecap/%i).",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(file)]);
        roff.text([roman(what)]);
    }
    roff.control("SH", ["ENVIRONMENT"]);
    roff.control("TP", []);
    roff.text([bold("VXDECAP_LOG")]);
    roff.text([roman(
        "A tracing filter for setup and state-change events, such as info or vxdecap=debug (default warn).",
    )]);
    roff.to_roff()
}

fn see_also() -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "vxdecap(1), vxdecap-capture(1), vxdecap-decap(1), vxdecap-top(1), tcpdump(8), pcap-filter(7), systemd.exec(5)",
    )]);
    roff.to_roff()
}
