//! The commands: each turns its flags (over the `--config` file) into
//! typed settings, checks them, and runs the library.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use vxdecap::analyzer::{
    Analyzer, OutputFormat, OutputOptions, PcapngOptions, Rotation, RouteSpec,
};
use vxdecap::config::Settings;
use vxdecap::doctor::{diagnose, interfaces_up, Host, Verdict};
use vxdecap::error::error_chain;
use vxdecap::input::{check_outputs_spare_input, CaptureInput, FileId};
use vxdecap::lab::{http_get, http_server, run_lab, LabConfig};
use vxdecap::report::summary::Summary;
use vxdecap::runtime::config::CaptureMode;
use vxdecap::runtime::error::CaptureError;
use vxdecap::runtime::live::run_capture;
use vxdecap::runtime::offline::run_offline;
use vxdecap::wire::reassembly::{Reassembler, ReassemblyConfig};
use vxdecap::wire::PortSet;
use vxdecap_xsk::SocketConfig;

use super::args::{
    CaptureArgs, Command, DecapArgs, DoctorArgs, FormatArg, OutputArgs, ReassemblyArgs, RelayArgs,
    RelayModeArg, TunnelArgs,
};

/// Exit code for bad usage or configuration (as the issue tracker asks).
const EXIT_USAGE: u8 = 2;

/// A configuration or usage problem (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

/// The exit code for an error that ended the command: 2 for bad usage or
/// configuration (another XDP program on the interface is the user's to
/// remove, as a bad flag is), 1 otherwise.
pub(crate) fn exit_code(e: &anyhow::Error) -> ExitCode {
    let configuration = e.downcast_ref::<UsageError>().is_some()
        || e.downcast_ref::<CaptureError>()
            .is_some_and(CaptureError::is_configuration);
    ExitCode::from(if configuration { EXIT_USAGE } else { 1 })
}

/// Runs `command`.
pub(crate) fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Capture(args) => capture(*args),
        Command::Decap(args) => decap(*args),
        Command::Doctor(args) => doctor(args),
        Command::Relay(args) => relay(args),
        Command::CheckConfig {
            file,
            no_host_checks,
        } => check_config(&file, no_host_checks),
        Command::Lab(args) => {
            if let super::args::ScenarioArg::Relay(scenario) = args.scenario {
                if args.keep || args.write.is_some() || args.requests.is_some() {
                    return Err(usage(
                        "the relay scenarios (private-link, fanout, ilb) cannot be used with \
                         --keep, -w or --requests",
                    ));
                }
                require_root("lab")?;
                let exe = std::env::current_exe().context("cannot find the vxdecap executable")?;
                let exe = exe.to_str().context("the vxdecap path is not UTF-8")?;
                vxdecap::lab::scenarios::run_scenario(scenario, exe)?;
                return Ok(ExitCode::SUCCESS);
            }
            let stop = stop_flag()?;
            let config = LabConfig {
                requests: args.requests.unwrap_or(3),
                keep: args.keep,
                write: args.write,
                mode: CaptureMode::from(args.mode).to_string(),
                accelnet: args.scenario == super::args::ScenarioArg::Accelnet,
            };
            require_root("lab")?;
            run_lab(&config, stop)?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "top")]
        Command::Top(args) => {
            vxdecap_top::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate(args) => {
            super::generate::run(args, <super::args::Cli as clap::CommandFactory>::command())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::LabHttpServer { listen } => {
            http_server(listen)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::LabUdpEcho { listen, http } => {
            vxdecap::lab::scenarios::udp_echo(listen, http)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::LabUdpFlows { server, flows, tag } => {
            vxdecap::lab::scenarios::udp_flows(server, flows, &tag)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::LabHttpGet {
            server,
            count,
            first,
            probe,
        } => {
            http_get(server, first..first + count, probe)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `check-config FILE`: the checks capture makes, on this machine (the
/// metrics address is not bound: a capture running may hold it).
fn check_config(file: &str, no_host_checks: bool) -> anyhow::Result<ExitCode> {
    let settings = Settings::from_file(file).map_err(|e| usage(e.to_string()))?;
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

fn capture(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    let mut settings = settings(&args.output)?;
    if let Some(i) = args.interface {
        settings.interface = Some(i);
    }
    if let Some(q) = args.queues {
        settings.queues = Some(q);
    }
    if let Some(m) = args.mode {
        settings.mode = Some(m.into());
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
    config.run_as.clone_from(&args.run_as);
    config.reassembly = reassembly(&args.reassembly)?;
    config.auto_frame_size = args.frame_size.is_none();
    config.idle_spin = Duration::from_micros(args.spin_us);
    config.rx_policy = args.rx_policy;
    config.count = args.output.count;
    config.duration = args.duration;
    config.stats_interval = args.stats;
    vxdecap::runtime::preflight::check_config(&config).map_err(|e| usage(error_chain(&e)))?;
    require_capture_capabilities()?;
    let (analyzers, output_name) = analyzers(&settings, args.output.count_only)?;
    config.output_name = output_name;
    let stop = stop_flag()?;
    let summary = run_capture(&config, analyzers, stop)?;
    Ok(finish(&summary))
}

/// `relay -i IFACE --to ADDR…`: until Ctrl-C or --duration, then the summary.
fn relay(args: RelayArgs) -> anyhow::Result<ExitCode> {
    use vxdecap::relay::health::HealthConfig;
    use vxdecap::relay::{run_relay, RelayConfig};
    use vxdecap::steer::AttachRequest;
    // The capture's rules for the ports: --port/--geneve-port, else the preset's, else 4789 and
    // 6081.
    let mut settings = Settings::default();
    apply_tunnels(&args.tunnels, &mut settings)?;
    let ports = settings.port_set().map_err(|e| usage(e.to_string()))?;
    let mut allow = vxdecap::Allowlist::default();
    for cidr in &args.allow_source {
        allow
            .add_source_text(cidr)
            .map_err(|e| usage(format!("--allow-source: {e}")))?;
    }
    if let Some(list) = &args.vni {
        allow
            .add_vni_text(list)
            .map_err(|e| usage(format!("--vni: {e}")))?;
    }
    let config = RelayConfig {
        interface: args.interface.clone(),
        collectors: args.to,
        ports,
        cloud: settings.cloud,
        allow,
        allow_file: args.allow_file.clone(),
        mode: match args.mode {
            RelayModeArg::Auto => AttachRequest::Auto,
            RelayModeArg::Driver => AttachRequest::Driver,
            RelayModeArg::Skb => AttachRequest::Skb,
        },
        health: HealthConfig {
            port: (!args.no_health).then_some(args.health_port),
            interval: Duration::from_millis(args.health_interval),
            timeout: Duration::from_millis(args.health_timeout),
        },
        metrics: args.metrics,
        duration: args.duration,
    };
    config.check().map_err(|e| usage(e.to_string()))?;
    require_root("relay")?;
    let stop = stop_flag()?;
    match run_relay(&config, stop) {
        Ok(report) => {
            eprint!("{}", report.render(&args.interface));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_configuration() => Err(usage(error_chain(&e))),
        Err(e) => Err(e.into()),
    }
}

/// `doctor [-i IFACE]`: every check, one line each, for the interface or
/// for each one up; exit 1 when a check failed on any.
fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let host = Host::live();
    let interfaces = match args.interface {
        Some(interface) => vec![interface],
        None => interfaces_up(&host),
    };
    if interfaces.is_empty() {
        return Err(usage(
            "no interface is up besides loopback: name the capture's with -i IFACE",
        ));
    }
    let mut settings = match &args.config {
        Some(path) => Settings::from_file(path).map_err(|e| usage(e.to_string()))?,
        None => Settings::default(),
    };
    let mut failed = false;
    for interface in &interfaces {
        settings.interface = Some(interface.clone());
        let mut config = settings
            .capture_config()
            .map_err(|e| usage(e.to_string()))?;
        if !args.ports.is_empty() {
            config.ports = ports(&args.ports)?;
        }
        if !args.geneve_ports.is_empty() {
            config.ports = config
                .ports
                .with_geneve(&args.geneve_ports)
                .map_err(|e| usage(format!("--geneve-port: {e}")))?;
        }
        if let Some(mode) = args.mode {
            config.mode = mode.into();
        }
        if let Some(size) = args.frame_size {
            config.socket.frame_size = size;
            config.auto_frame_size = false;
        }
        config
            .socket
            .validate()
            .map_err(|e| usage(format!("--frame-size: {e}")))?;
        let report = diagnose(&host, &config).map_err(|e| usage(e.to_string()))?;
        if interfaces.len() > 1 {
            println!("{interface}:");
        }
        for check in &report.checks {
            println!("{check}");
        }
        let named = |verdict: Verdict| -> Vec<&str> {
            report
                .checks
                .iter()
                .filter(|c| c.verdict == verdict)
                .map(|c| c.kind.name())
                .collect()
        };
        let (failures, warnings) = (named(Verdict::Fail), named(Verdict::Warn));
        if failures.is_empty() {
            println!(
                "{interface}: no check failed ({} warning(s)): a capture would not lose traffic to anything checked here",
                warnings.len()
            );
        } else {
            failed = true;
            println!(
                "{interface}: a capture would lose traffic or not start: {} failed",
                failures.join(", ")
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn decap(args: DecapArgs) -> anyhow::Result<ExitCode> {
    let settings = settings(&args.output)?;
    settings.check().map_err(|e| usage(e.to_string()))?;
    for warning in settings.warnings() {
        eprintln!("vxdecap: warning: {warning}");
    }
    let ports = settings.port_set().map_err(|e| usage(e.to_string()))?;
    if settings.uses_tap() {
        require_root("--tap")?;
    }
    // Before any output is opened (and so created or truncated).
    if let Some(input) = FileId::of_input(&args.read) {
        check_outputs_spare_input(input, &args.read, &settings.file_outputs())
            .map_err(|e| usage(e.to_string()))?;
    }
    // An unreadable input, or one that is not a capture, is refused before
    // the outputs are created.
    let input = CaptureInput::open(&args.read).map_err(|e| usage(e.to_string()))?;
    let reassembly = reassembly(&args.reassembly)?;
    let (analyzers, output_name) = analyzers(&settings, args.output.count_only)?;
    let summary = run_offline(
        input,
        &output_name,
        ports,
        analyzers,
        args.output.count,
        reassembly,
        Arc::new(AtomicBool::new(false)),
    )?;
    Ok(finish(&summary))
}

/// Prints the summary; exit 1 when the output or the input failed.
fn finish(summary: &Summary) -> ExitCode {
    eprint!("{}", summary.render());
    if summary.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The tunnel flags on top of `settings` (a flag given wins over the file).
fn apply_tunnels(tunnels: &TunnelArgs, settings: &mut Settings) -> anyhow::Result<()> {
    if !tunnels.ports.is_empty() {
        settings.ports.clone_from(&tunnels.ports);
    }
    if !tunnels.geneve_ports.is_empty() {
        settings.geneve_ports = Some(tunnels.geneve_ports.clone());
    }
    if let Some(cloud) = &tunnels.cloud {
        settings.cloud = Some(
            cloud
                .parse()
                .map_err(|e: String| usage(format!("--cloud: {e}")))?,
        );
    }
    if tunnels.max_tunnel_depth.is_some() {
        settings.max_depth = tunnels.max_tunnel_depth;
    }
    Ok(())
}

/// The run's settings: the --config file, if any, with the flags on top.
fn settings(output: &OutputArgs) -> anyhow::Result<Settings> {
    let mut settings = match &output.config {
        Some(path) => Settings::from_file(path).map_err(|e| usage(e.to_string()))?,
        None => Settings::default(),
    };
    apply_tunnels(&output.tunnels, &mut settings)?;
    if !output.filter.is_empty() {
        settings.filter = Some(output.filter.join(" "));
    }
    if output.write.is_some() {
        settings.write.clone_from(&output.write);
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
        settings.tap.clone_from(&output.tap);
    }
    if !output.routes.is_empty() {
        settings.routes = output
            .routes
            .iter()
            .map(|rule| RouteSpec::parse(rule, OutputOptions::default()))
            .collect::<Result<_, _>>()
            .map_err(|e| usage(e.to_string()))?;
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

/// The reassembler's settings, checked (`None` with --no-reassembly).
fn reassembly(args: &ReassemblyArgs) -> anyhow::Result<Option<ReassemblyConfig>> {
    if args.no_reassembly {
        return Ok(None);
    }
    let config = ReassemblyConfig {
        max_datagrams: args.reassembly_datagrams,
        memory_budget: args.reassembly_memory.saturating_mul(1 << 20),
        timeout_ns: args.reassembly_timeout.saturating_mul(1_000_000),
        ..ReassemblyConfig::default()
    };
    Reassembler::new(config).map_err(|e| usage(format!("reassembly settings: {e}")))?;
    Ok(Some(config))
}

fn ports(list: &[u16]) -> anyhow::Result<PortSet> {
    if list.is_empty() {
        return Ok(PortSet::default());
    }
    PortSet::new(list).map_err(|e| usage(format!("--port: {e}")))
}

fn require_root(what: &str) -> anyhow::Result<()> {
    if !vxdecap::lab::netns::is_root() {
        return Err(usage(format!(
            "{what} needs root (XDP, AF_XDP and network namespaces): run it with sudo"
        )));
    }
    Ok(())
}

/// Root, or a user holding the capabilities a capture needs (the systemd
/// unit runs it so, with ambient capabilities).
fn require_capture_capabilities() -> anyhow::Result<()> {
    let missing = vxdecap::runtime::privs::missing_capture_capabilities();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
    Err(usage(format!(
        "capture needs root, or the capabilities CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, \
         CAP_NET_RAW and CAP_IPC_LOCK (XDP, AF_XDP); {} missing: run it with sudo, or as \
         the systemd unit vxdecap@IFACE does",
        names.join(", ")
    )))
}

/// SIGINT/SIGTERM raise the returned flag; a second one exits at once.
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handler")?;
    }
    Ok(stop)
}
