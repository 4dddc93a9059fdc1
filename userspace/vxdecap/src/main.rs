//! The `vxdecap` command line.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use vxdecap::analyzer::{Analyzer, OutputFormat, OutputOptions, PcapngOptions, Rotation};
use vxdecap::config::{parse_file_size, RouteRule, Settings};
use vxdecap::error::error_chain;
use vxdecap::input::{check_outputs_spare_input, CaptureInput, FileId};
use vxdecap::lab::{http_get, http_server, run_lab, LabConfig};
use vxdecap::report::summary::Summary;
use vxdecap::runtime::error::CaptureError;
use vxdecap::runtime::live::run_capture;
use vxdecap::runtime::offline::run_offline;
use vxdecap::wire::reassembly::{Reassembler, ReassemblyConfig};
use vxdecap::wire::PortSet;
use vxdecap_xsk::SocketConfig;

/// Exit code for bad usage or configuration (as the issue tracker asks).
const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "vxdecap",
    version,
    about = "Kernel-bypass VXLAN decapsulation for cloud packet mirroring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Capture mirrored VXLAN on an interface and write the inner frames.
    Capture(Box<CaptureArgs>),
    /// Decapsulate a pcap/pcapng capture of VXLAN traffic.
    Decap(Box<DecapArgs>),
    /// Build a local Azure-vTAP-like lab in network namespaces and capture in it.
    Lab(LabArgs),
    /// Check a configuration file as `capture` would on this machine, and
    /// print the setup it gives.
    CheckConfig {
        /// The TOML file (see examples/vxdecap.toml).
        file: String,
        /// Leave out the checks against this machine (interface, queues,
        /// CPUs, output directories): for a file meant for another machine.
        #[arg(long)]
        no_host_checks: bool,
    },
    /// Lab helper: the monitored app's HTTP server.
    #[command(hide = true)]
    LabHttpServer {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Lab helper: the client's HTTP GETs.
    #[command(hide = true)]
    LabHttpGet {
        #[arg(long)]
        server: SocketAddr,
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long)]
        probe: bool,
    },
}

#[derive(Args, Debug)]
struct OutputArgs {
    /// Write inner frames to this pcap or pcapng file (`-` for stdout); without it, print one line per frame.
    #[arg(short = 'w', value_name = "FILE")]
    write: Option<String>,
    /// Format of -w [default: pcapng for a .pcapng name, pcap otherwise and on stdout].
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<FormatArg>,
    /// Start a new -w (and route) file before one would pass SIZE million bytes (suffix k, m, g: KiB, MiB, GiB).
    #[arg(short = 'C', value_name = "SIZE", value_parser = parse_file_size)]
    file_size: Option<u64>,
    /// Start a new -w (and route) file every SECS seconds; the name is then a strftime pattern, expanded in UTC.
    #[arg(short = 'G', value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    rotate_seconds: Option<u64>,
    /// Keep at most N -w (and route) files: with -C a ring FILE0..FILE{N-1}; with -G the newest N.
    #[arg(short = 'W', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    file_count: Option<u32>,
    /// Also write every inner frame to this TAP device (created, brought up, removed on exit).
    #[arg(long, value_name = "NAME")]
    tap: Option<String>,
    /// Route frames by tenant: 'vni=27 -> inner-27.pcapng', 'vni=100-199,src=10.1.0.0/16 -> b.pcap',
    /// 'vni=5,filter=tcp port 80 -> tap:web5', 'default -> drop' (repeatable; the first match wins).
    #[arg(long = "route", value_name = "RULE")]
    routes: Vec<String>,
    /// Read settings from this TOML file; flags given here win (see examples/vxdecap.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
    /// Stop after writing this many inner frames.
    #[arg(short = 'c', value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Count only: no per-frame output (the counting analyzer alone).
    #[arg(short = 'q', long = "count-only", conflicts_with_all = ["write", "tap", "routes"])]
    count_only: bool,
    /// UDP destination port carrying VXLAN (repeatable; default 4789).
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    ports: Vec<u16>,
    /// Inner filter: a tcpdump filter expression applied to the inner frames
    /// (words are joined with spaces, as in tcpdump), e.g. `tcp port 80`.
    #[arg(value_name = "EXPRESSION")]
    filter: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    /// Classic pcap, nanosecond timestamps.
    Pcap,
    /// pcapng, one interface per VXLAN tunnel (VNI, outer source).
    Pcapng,
}

#[derive(Args, Debug)]
struct ReassemblyArgs {
    /// Count outer IPv4 fragments as `outer_fragment` instead of reassembling them.
    #[arg(long)]
    no_reassembly: bool,
    /// Memory for fragments being reassembled, per worker, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1)]
    reassembly_memory: usize,
    /// Drop a datagram not complete this many milliseconds after its first fragment.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    reassembly_timeout: u64,
    /// Datagrams reassembled at once, per worker (the oldest is dropped for a new one).
    #[arg(long, value_name = "N", default_value_t = 64)]
    reassembly_datagrams: usize,
}

impl ReassemblyArgs {
    /// The reassembler's settings, checked (`None` with --no-reassembly).
    fn config(&self) -> anyhow::Result<Option<ReassemblyConfig>> {
        if self.no_reassembly {
            return Ok(None);
        }
        let config = ReassemblyConfig {
            max_datagrams: self.reassembly_datagrams,
            memory_budget: self.reassembly_memory.saturating_mul(1 << 20),
            timeout_ns: self.reassembly_timeout.saturating_mul(1_000_000),
            ..ReassemblyConfig::default()
        };
        Reassembler::new(config).map_err(|e| usage(format!("reassembly settings: {e}")))?;
        Ok(Some(config))
    }
}

#[derive(Args, Debug)]
struct CaptureArgs {
    /// Interface receiving the mirrored traffic (or `interface` in --config).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    interface: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    reassembly: ReassemblyArgs,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Rx queues to capture: `all` (default) or a list such as `0,2-3`.
    #[arg(long, value_name = "LIST")]
    queues: Option<String>,
    /// CPUs for the workers, one per queue, e.g. `1,2` or `2-5`.
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// XDP attach / AF_XDP bind mode [default: auto].
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Print a one-line rate display every SECS seconds.
    #[arg(long, value_name = "SECS")]
    stats: Option<f64>,
    /// UMEM frame size in bytes (power of two, 2048..=page size); by
    /// default 2048, or a page when the interface MTU needs it.
    #[arg(long)]
    frame_size: Option<u32>,
    /// UMEM frames per queue (power of two; also the fill ring size).
    #[arg(long, default_value_t = vxdecap_xsk::DEFAULT_FRAME_COUNT)]
    frame_count: u32,
    /// RX ring size per queue (power of two).
    #[arg(long, default_value_t = vxdecap_xsk::DEFAULT_RX_RING)]
    rx_ring: u32,
    /// Most frames taken off the RX ring at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    batch: u32,
    /// Microseconds a worker keeps polling an empty ring before sleeping (0: sleep at once).
    #[arg(long, default_value_t = 1000, value_name = "USECS")]
    spin_us: u64,
    /// How workers wait for frames: auto (busy-poll on zero-copy sockets,
    /// sleep on copy-mode ones), busy-poll, spin or sleep.
    #[arg(long, default_value = "auto", value_name = "POLICY")]
    rx_policy: String,
    /// Only VXLAN from this outer source address or prefix (repeatable;
    /// others are dropped in XDP and counted).
    #[arg(long = "allow-source", value_name = "CIDR")]
    allow_source: Vec<String>,
    /// Only these VNIs, e.g. `27,100-199` (others are dropped in XDP and counted).
    #[arg(long = "vni", value_name = "LIST")]
    vni: Option<String>,
    /// Allowlist file (`source CIDR` / `vni LIST` lines), merged with the
    /// flags and read again on SIGHUP.
    #[arg(long = "allow-file", value_name = "FILE")]
    allow_file: Option<PathBuf>,
    /// Drop root and run as USER once the sockets and outputs are open (as tcpdump -Z).
    #[arg(short = 'Z', value_name = "USER")]
    run_as: Option<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics while capturing
    /// (a host name such as localhost:9419 serves every address it has).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<vxdecap::runtime::metrics_server::Endpoint>,
    /// Never drop a frame for a slow analyzer: workers wait, and the RX ring
    /// backs up instead (the kernel counts what it drops as xsk_rx_ring_full).
    #[arg(long)]
    lossless: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    /// Driver XDP and zero-copy where possible, falling back to generic XDP and copy mode.
    Auto,
    /// Driver XDP and zero-copy sockets, or fail.
    Zerocopy,
    /// Copy-mode sockets.
    Copy,
    /// Generic (SKB) XDP and copy-mode sockets.
    Skb,
}

#[derive(Args, Debug)]
struct DecapArgs {
    /// Capture file to read (pcap or pcapng; `-` for stdin).
    #[arg(short = 'r', value_name = "FILE")]
    read: String,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    reassembly: ReassemblyArgs,
}

#[derive(Args, Debug)]
struct LabArgs {
    /// HTTP GETs the client makes.
    #[arg(long, default_value_t = 3)]
    requests: u32,
    /// Keep the lab running until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Keep the inner pcap in this file.
    #[arg(short = 'w', value_name = "FILE")]
    write: Option<PathBuf>,
    /// Capture mode inside the lab.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    mode: ModeArg,
}

fn main() -> ExitCode {
    cli::log::init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vxdecap: {e:#}");
            // Another XDP program on the interface is the user's to remove, as a bad flag is.
            let configuration = e.downcast_ref::<UsageError>().is_some()
                || e.downcast_ref::<CaptureError>()
                    .is_some_and(CaptureError::is_configuration);
            ExitCode::from(if configuration { EXIT_USAGE } else { 1 })
        }
    }
}

/// A configuration or usage problem (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Capture(args) => capture(*args),
        Command::Decap(args) => decap(*args),
        Command::CheckConfig {
            file,
            no_host_checks,
        } => {
            let settings = Settings::from_file(&file).map_err(|e| usage(e.to_string()))?;
            // The checks capture makes, on this machine (the metrics address
            // is not bound: a capture running may hold it).
            let warnings = settings
                .check_capture(!no_host_checks)
                .map_err(|e| usage(format!("{file}: {e}")))?;
            for warning in warnings {
                eprintln!("vxdecap: warning: {file}: {warning}");
            }
            print!("{}", settings.render());
            eprintln!("{file}: ok");
            Ok(ExitCode::SUCCESS)
        }
        Command::Lab(args) => {
            let stop = stop_flag()?;
            let config = LabConfig {
                requests: args.requests,
                keep: args.keep,
                write: args.write,
                mode: mode_name(args.mode).to_owned(),
            };
            require_root("lab")?;
            run_lab(&config, stop)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::LabHttpServer { listen } => {
            http_server(listen)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::LabHttpGet {
            server,
            count,
            probe,
        } => {
            http_get(server, count, probe)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn capture(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    let mut settings = settings(&args.output)?;
    if let Some(i) = args.interface {
        settings.interface = Some(i);
    }
    if let Some(q) = args.queues {
        settings.queues = Some(q);
    }
    if let Some(m) = args.mode {
        settings.mode = Some(mode_name(m).to_owned());
    }
    if args.metrics.is_some() {
        settings.metrics = args.metrics;
    }
    settings.lossless |= args.lossless;
    if let Some(c) = args.cpus {
        settings.cpus = Some(c);
    }
    if settings.interface.is_none() {
        return Err(usage(
            "no interface: give -i IFACE or interface = \"…\" in the --config file",
        ));
    }
    // What check-config checks, then the flags only capture has.
    for warning in settings
        .check_capture(true)
        .map_err(|e| usage(e.to_string()))?
    {
        eprintln!("vxdecap: warning: {warning}");
    }
    let mut config = settings
        .capture_config()
        .map_err(|e| usage(e.to_string()))?;
    config.socket = SocketConfig {
        frame_size: args.frame_size.unwrap_or(vxdecap_xsk::DEFAULT_FRAME_SIZE),
        frame_count: args.frame_count,
        rx_ring: args.rx_ring,
        ..SocketConfig::default()
    };
    config.batch = args.batch as usize;
    // The file's allowlists, with the flags' added.
    for cidr in &args.allow_source {
        config
            .allow
            .add_source_text(cidr)
            .map_err(|e| usage(format!("--allow-source: {e}")))?;
    }
    if let Some(list) = &args.vni {
        config
            .allow
            .add_vni_text(list)
            .map_err(|e| usage(format!("--vni: {e}")))?;
    }
    if let Some(file) = &args.allow_file {
        config.allow_file = Some(file.clone());
    }
    config.run_as = args.run_as.clone();
    config.reassembly = args.reassembly.config()?;
    config.auto_frame_size = args.frame_size.is_none();
    config.idle_spin = Duration::from_micros(args.spin_us);
    config.rx_policy =
        vxdecap::datapath::idle::RxPolicy::parse(&args.rx_policy).ok_or_else(|| {
            usage(format!(
                "--rx-policy {}: use auto, busy-poll, spin or sleep",
                args.rx_policy
            ))
        })?;
    config.count = args.output.count;
    config.duration = seconds(args.duration, "--duration")?;
    config.stats_interval = seconds(args.stats, "--stats")?;
    vxdecap::runtime::preflight::check_config(&config).map_err(|e| usage(error_chain(&e)))?;
    require_root("capture")?;
    let (analyzers, output_name) = analyzers(&settings, args.output.count_only)?;
    config.output_name = output_name;
    let stop = stop_flag()?;
    let summary = run_capture(&config, analyzers, stop)?;
    finish(&summary)
}

fn decap(args: DecapArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(&args.output)?;
    settings.check().map_err(|e| usage(e.to_string()))?;
    for warning in settings.warnings() {
        eprintln!("vxdecap: warning: {warning}");
    }
    let ports = ports(&settings.ports)?;
    if settings.tap.is_some() || settings.routes.iter().any(|r| r.rule.contains("tap:")) {
        require_root("--tap")?;
    }
    // Before any output is opened (and so created or truncated).
    if let Some(input) = FileId::of_input(&args.read) {
        let outputs = settings.file_outputs().map_err(|e| usage(e.to_string()))?;
        check_outputs_spare_input(input, &args.read, &outputs).map_err(|e| usage(e.to_string()))?;
    }
    // An unreadable input, or one that is not a capture, is refused before
    // the outputs are created.
    let input = CaptureInput::open(&args.read).map_err(|e| usage(e.to_string()))?;
    let reassembly = args.reassembly.config()?;
    let (analyzers, output_name) = analyzers(&settings, args.output.count_only)?;
    let summary = run_offline(
        input,
        &output_name,
        ports,
        analyzers,
        args.output.count,
        reassembly,
    )?;
    finish(&summary)
}

/// Prints the summary; exit 1 when the output or the input failed.
fn finish(summary: &Summary) -> anyhow::Result<ExitCode> {
    eprint!("{}", summary.render());
    Ok(if summary.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The run's settings: the --config file, if any, with the flags on top.
fn settings(output: &OutputArgs) -> anyhow::Result<Settings> {
    let mut settings = match &output.config {
        Some(path) => Settings::from_file(path).map_err(|e| usage(e.to_string()))?,
        None => Settings::default(),
    };
    if !output.ports.is_empty() {
        settings.ports = output.ports.clone();
    }
    if !output.filter.is_empty() {
        settings.filter = Some(output.filter.join(" "));
    }
    if output.write.is_some() {
        settings.write = output.write.clone();
    }
    let flags = output_options(output);
    if flags.format.is_some() {
        settings.output.format = flags.format;
    }
    let rotation = &mut settings.output.rotation;
    rotation.file_size = flags.rotation.file_size.or(rotation.file_size);
    rotation.interval = flags.rotation.interval.or(rotation.interval);
    rotation.files = flags.rotation.files.or(rotation.files);
    if output.tap.is_some() {
        settings.tap = output.tap.clone();
    }
    if !output.routes.is_empty() {
        settings.routes = output
            .routes
            .iter()
            .map(|rule| RouteRule {
                rule: rule.clone(),
                output: OutputOptions::default(),
            })
            .collect();
    }
    if output.count_only {
        settings.write = None;
        settings.tap = None;
        settings.routes.clear();
    }
    let rotating = settings.output.rotation != Rotation::default();
    if settings.write.is_none()
        && (settings.output.format.is_some() || (rotating && settings.routes.is_empty()))
    {
        return Err(usage(
            "--format, -C, -G and -W shape file outputs: add -w FILE (or a --route to a file)",
        ));
    }
    Ok(settings)
}

fn analyzers(
    settings: &Settings,
    count_only: bool,
) -> anyhow::Result<(Vec<Box<dyn Analyzer>>, String)> {
    settings
        .build_outputs(count_only)
        .map_err(|e| usage(e.to_string()))
}

/// What the -w flags ask of the writer (format, rotation).
fn output_options(output: &OutputArgs) -> OutputOptions {
    OutputOptions {
        format: output.format.map(|f| match f {
            FormatArg::Pcap => OutputFormat::Pcap,
            FormatArg::Pcapng => OutputFormat::Pcapng,
        }),
        rotation: Rotation {
            file_size: output.file_size,
            interval: output.rotate_seconds.map(Duration::from_secs),
            files: output.file_count,
        },
        pcapng: PcapngOptions::default(),
    }
}

fn ports(list: &[u16]) -> anyhow::Result<PortSet> {
    if list.is_empty() {
        return Ok(PortSet::default());
    }
    PortSet::new(list).map_err(|e| usage(format!("--port: {e}")))
}

fn seconds(value: Option<f64>, flag: &str) -> anyhow::Result<Option<Duration>> {
    value
        .map(|s| {
            if s.is_finite() && s > 0.0 {
                Ok(Duration::from_secs_f64(s))
            } else {
                Err(usage(format!(
                    "{flag} must be a positive number of seconds, not {s}"
                )))
            }
        })
        .transpose()
}

fn mode_name(mode: ModeArg) -> &'static str {
    match mode {
        ModeArg::Auto => "auto",
        ModeArg::Zerocopy => "zerocopy",
        ModeArg::Copy => "copy",
        ModeArg::Skb => "skb",
    }
}

fn require_root(what: &str) -> anyhow::Result<()> {
    if !vxdecap::lab::netns::is_root() {
        return Err(usage(format!(
            "{what} needs root (XDP, AF_XDP and network namespaces): run it with sudo"
        )));
    }
    Ok(())
}

/// SIGINT/SIGTERM raise the returned flag; a second one exits at once.
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, stop.clone())
            .context("cannot install the signal handler")?;
        signal_hook::flag::register(signal, stop.clone())
            .context("cannot install the signal handler")?;
    }
    Ok(stop)
}
