//! The command line's flags and subcommands: every clap definition of the
//! `vxdecap` binary is in this file (a man page or shell completions are
//! generated from [`Cli`]). Values are parsed into the library's types
//! here, so the commands get typed settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vxdecap::config::parse_file_size;
use vxdecap::datapath::idle::RxPolicy;
use vxdecap::error::ParseError;
use vxdecap::runtime::config::{CaptureMode, QueueSelection};
use vxdecap::runtime::metrics_server::Endpoint;
use vxdecap::select::{parse_list, Written};

/// The tunnels to take: `capture`'s, `decap`'s and `relay`'s alike.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct TunnelArgs {
    /// UDP destination port carrying VXLAN (repeatable; default 4789).
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,
    /// UDP destination port carrying GENEVE (repeatable; default 6081).
    #[arg(long = "geneve-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub geneve_ports: Vec<u16>,
    /// The cloud's mirror format, setting the ports: azure-vtap, azure-gwlb, aws-mirror,
    /// aws-gwlb or gcp (--port and --geneve-port win).
    #[arg(long, value_name = "PRESET")]
    pub cloud: Option<String>,
    /// Most tunnels peeled from one frame, or read through to its flow by the relay
    /// (GENEVE around VXLAN is 2; default 2).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=4))]
    pub max_tunnel_depth: Option<u8>,
}

/// Kernel-bypass VXLAN decapsulation for cloud packet mirroring.
#[derive(Parser, Debug)]
#[command(
    name = "vxdecap",
    version,
    about = "Kernel-bypass VXLAN decapsulation for cloud packet mirroring"
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Capture mirrored VXLAN on an interface and write the inner frames.
    Capture(Box<CaptureArgs>),
    /// Decapsulate a pcap/pcapng capture of VXLAN traffic.
    Decap(Box<DecapArgs>),
    /// Check this machine before a capture: one verdict per check (device
    /// stack, queues, XDP and bind mode, MTU, LRO, UDP hashing, IRQs,
    /// memlock, kernel, other users of the port); exit 1 when a capture
    /// would lose traffic or not start.
    Doctor(DoctorArgs),
    /// Forward mirrored VXLAN to one or more collectors in XDP (rewriting
    /// the outer addresses), keeping each inner flow on one collector.
    Relay(RelayArgs),
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
    /// A live terminal view of a running capture, from its --metrics endpoint.
    #[cfg(feature = "top")]
    Top(vxdecap_top::TopArgs),
    /// Man pages and shell completions from these definitions (for packagers).
    #[command(hide = true)]
    Generate(super::generate::GenerateArgs),
    /// Lab helper: the monitored app's HTTP server.
    #[command(hide = true)]
    LabHttpServer {
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Lab helper: a UDP echo service (and the HTTP server).
    #[command(hide = true)]
    LabUdpEcho {
        /// Address to echo on.
        #[arg(long)]
        listen: SocketAddr,
        /// Also serve the lab's HTTP page here.
        #[arg(long)]
        http: Option<SocketAddr>,
    },
    /// Lab helper: UDP flows to the echo service.
    #[command(hide = true)]
    LabUdpFlows {
        /// The echo service.
        #[arg(long)]
        server: SocketAddr,
        /// Flows (source ports from 20000).
        #[arg(long)]
        flows: u16,
        /// The first word of every datagram.
        #[arg(long)]
        tag: String,
    },
    /// Lab helper: the client's HTTP GETs.
    #[command(hide = true)]
    LabHttpGet {
        /// The server.
        #[arg(long)]
        server: SocketAddr,
        /// Requests to make.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Number of the first page asked for (`/pageN`).
        #[arg(long, default_value_t = 0)]
        first: u32,
        /// Only check that the server answers.
        #[arg(long)]
        probe: bool,
    },
}

/// Outputs and what shapes them (`capture` and `decap`).
#[derive(Args, Debug)]
pub(crate) struct OutputArgs {
    /// Write inner frames to this pcap or pcapng file (`-` for stdout); without it, print one line per frame.
    #[arg(short = 'w', value_name = "FILE")]
    pub write: Option<String>,
    /// Format of -w [default: pcapng for a .pcapng name, pcap otherwise and on stdout].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
    /// Start a new -w (and route) file before one would pass SIZE million bytes (suffix k, m, g: KiB, MiB, GiB).
    #[arg(short = 'C', value_name = "SIZE", value_parser = parse_file_size)]
    pub file_size: Option<u64>,
    /// Start a new -w (and route) file every SECS seconds; the name is then a strftime pattern, expanded in UTC.
    #[arg(short = 'G', value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub rotate_seconds: Option<u64>,
    /// Keep at most N -w (and route) files: with -C a ring FILE0..FILE{N-1}; with -G the newest N.
    #[arg(short = 'W', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub file_count: Option<u32>,
    /// Also write every inner frame to this TAP device (created, brought up, removed on exit).
    #[arg(long, value_name = "NAME")]
    pub tap: Option<String>,
    /// Route frames by tenant: 'vni=27 -> inner-27.pcapng', 'vni=100-199,src=10.1.0.0/16 -> b.pcap',
    /// 'vni=5,filter=tcp port 80 -> tap:web5', 'default -> drop' (repeatable; the first match wins).
    #[arg(long = "route", value_name = "RULE")]
    pub routes: Vec<String>,
    /// Read settings from this TOML file; flags given here win (see examples/vxdecap.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,
    /// Stop after writing this many inner frames.
    #[arg(short = 'c', value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Count only: no per-frame output (the counting analyzer alone).
    #[arg(short = 'q', long = "count-only", conflicts_with_all = ["write", "tap", "routes"])]
    pub count_only: bool,
    #[command(flatten)]
    pub tunnels: TunnelArgs,
    /// Inner filter: a tcpdump filter expression applied to the inner frames
    /// (words are joined with spaces, as in tcpdump), e.g. `tcp port 80`.
    #[arg(value_name = "EXPRESSION")]
    pub filter: Vec<String>,
}

/// `--format`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum FormatArg {
    /// Classic pcap, nanosecond timestamps.
    Pcap,
    /// pcapng, one interface per VXLAN tunnel (VNI, outer source).
    Pcapng,
}

/// Outer IPv4 fragment reassembly (`capture` and `decap`).
#[derive(Args, Debug)]
pub(crate) struct ReassemblyArgs {
    /// Count outer IPv4 fragments as `outer_fragment` instead of reassembling them.
    #[arg(long)]
    pub no_reassembly: bool,
    /// Memory for fragments being reassembled, per worker, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1)]
    pub reassembly_memory: usize,
    /// Drop a datagram not complete this many milliseconds after its first fragment.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub reassembly_timeout: u64,
    /// Datagrams reassembled at once, per worker (the oldest is dropped for a new one).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub reassembly_datagrams: usize,
}

/// `vxdecap capture`.
#[derive(Args, Debug)]
pub(crate) struct CaptureArgs {
    /// Interface receiving the mirrored traffic (or `interface` in --config).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub reassembly: ReassemblyArgs,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = |s: &str| seconds(s, "--duration"))]
    pub duration: Option<Duration>,
    /// Rx queues to capture: `all` (default) or a list such as `0,2-3`.
    #[arg(long, value_name = "LIST", value_parser = queues)]
    pub queues: Option<Written<QueueSelection>>,
    /// CPUs for the workers, one per queue, e.g. `1,2` or `2-5`.
    #[arg(long, value_name = "LIST", value_parser = cpus)]
    pub cpus: Option<Written<Vec<usize>>>,
    /// XDP attach / AF_XDP bind mode [default: auto].
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Print a one-line rate display every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = |s: &str| seconds(s, "--stats"))]
    pub stats: Option<Duration>,
    /// UMEM frame size in bytes (power of two, 2048..=page size); by
    /// default 2048, or a page when the interface MTU needs it.
    #[arg(long)]
    pub frame_size: Option<u32>,
    /// UMEM frames per queue (power of two; also the fill ring size).
    #[arg(long, default_value_t = vxdecap_xsk::DEFAULT_FRAME_COUNT)]
    pub frame_count: u32,
    /// RX ring size per queue (power of two).
    #[arg(long, default_value_t = vxdecap_xsk::DEFAULT_RX_RING)]
    pub rx_ring: u32,
    /// Most frames taken off the RX ring at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub batch: u32,
    /// Microseconds a worker keeps polling an empty ring before sleeping (0: sleep at once).
    #[arg(long, default_value_t = 1000, value_name = "USECS")]
    pub spin_us: u64,
    /// How workers wait for frames: auto (busy-poll on zero-copy sockets,
    /// sleep on copy-mode ones), busy-poll, spin or sleep.
    #[arg(long, default_value = "auto", value_name = "POLICY")]
    pub rx_policy: RxPolicy,
    /// Only VXLAN from this outer source address or prefix (repeatable;
    /// others are dropped in XDP and counted).
    #[arg(long = "allow-source", value_name = "CIDR")]
    pub allow_source: Vec<String>,
    /// Only these VNIs, e.g. `27,100-199` (others are dropped in XDP and counted).
    #[arg(long = "vni", value_name = "LIST")]
    pub vni: Option<String>,
    /// Allowlist file (`source CIDR` / `vni LIST` lines), merged with the
    /// flags and read again on SIGHUP.
    #[arg(long = "allow-file", value_name = "FILE")]
    pub allow_file: Option<PathBuf>,
    /// Drop root and run as USER once the sockets and outputs are open (as tcpdump -Z).
    #[arg(short = 'Z', value_name = "USER")]
    pub run_as: Option<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics while capturing
    /// (a host name such as localhost:9419 serves every address it has).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<Endpoint>,
    /// Never drop a frame for a slow analyzer: workers wait, and the RX ring
    /// backs up instead (the kernel counts what it drops as xsk_rx_ring_full).
    #[arg(long)]
    pub lossless: bool,
}

/// `vxdecap relay`.
#[derive(Args, Debug)]
pub(crate) struct RelayArgs {
    /// Interface receiving the mirrored traffic.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: String,
    /// A collector's address, IPv4 or IPv6 as the mirror's tunnels (repeatable: each inner
    /// flow goes to one of them).
    #[arg(long = "to", value_name = "ADDR", required = true)]
    pub to: Vec<std::net::IpAddr>,
    #[command(flatten)]
    pub tunnels: TunnelArgs,
    /// Only VXLAN or GENEVE from this outer source address or prefix (repeatable;
    /// others are dropped in XDP and counted).
    #[arg(long = "allow-source", value_name = "CIDR")]
    pub allow_source: Vec<String>,
    /// Only these VNIs, e.g. `27,100-199` (others are dropped in XDP and counted).
    #[arg(long = "vni", value_name = "LIST")]
    pub vni: Option<String>,
    /// Allowlist file (`source CIDR` / `vni LIST` lines), merged with the
    /// flags and read again on SIGHUP.
    #[arg(long = "allow-file", value_name = "FILE")]
    pub allow_file: Option<PathBuf>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = RelayModeArg::Auto)]
    pub mode: RelayModeArg,
    /// Port of each collector's /healthz (its capture's --metrics listener).
    #[arg(long, value_name = "PORT", default_value_t = 9419)]
    pub health_port: u16,
    /// Milliseconds between two health probes of a collector.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    pub health_interval: u64,
    /// Milliseconds a probe waits for its answer.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub health_timeout: u64,
    /// Do not poll the collectors' health: every collector stays in the table.
    #[arg(long)]
    pub no_health: bool,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (and /healthz).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<Endpoint>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = |s: &str| seconds(s, "--duration"))]
    pub duration: Option<Duration>,
}

/// The relay's `--mode`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum RelayModeArg {
    /// Driver XDP where possible, else generic.
    Auto,
    /// Driver XDP or fail.
    Driver,
    /// Generic (SKB) XDP.
    Skb,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ModeArg {
    /// Driver XDP and zero-copy where possible, falling back to generic XDP and copy mode.
    Auto,
    /// Driver XDP and zero-copy sockets, or fail.
    Zerocopy,
    /// Copy-mode sockets.
    Copy,
    /// Generic (SKB) XDP and copy-mode sockets.
    Skb,
}

impl From<ModeArg> for CaptureMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Auto => Self::Auto,
            ModeArg::Zerocopy => Self::ZeroCopy,
            ModeArg::Copy => Self::Copy,
            ModeArg::Skb => Self::Skb,
        }
    }
}

/// `vxdecap decap`.
#[derive(Args, Debug)]
pub(crate) struct DecapArgs {
    /// Capture file to read (pcap or pcapng; `-` for stdin).
    #[arg(short = 'r', value_name = "FILE")]
    pub read: String,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub reassembly: ReassemblyArgs,
}

/// `vxdecap doctor`.
#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    /// The interface a capture would name [default: every interface that is
    /// up, but loopback and enslaved devices: a VF is checked with its master].
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,
    /// The capture's --mode [default: auto].
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// The capture's UDP port carrying VXLAN (repeatable; default 4789).
    #[arg(long = "port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub ports: Vec<u16>,
    /// The capture's UDP port carrying GENEVE (repeatable; default 6081).
    #[arg(long = "geneve-port", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub geneve_ports: Vec<u16>,
    /// The capture's --frame-size [default: 2048, or a page when the MTU needs it].
    #[arg(long)]
    pub frame_size: Option<u32>,
    /// The capture's settings file (mode, ports, queues, CPUs), as the unit
    /// vxdecap@IFACE reads /etc/vxdecap/vxdecap.toml; flags given here win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,
}

/// `vxdecap lab`.
#[derive(Args, Debug)]
pub(crate) struct LabArgs {
    /// HTTP GETs the client makes [default: 3].
    #[arg(long)]
    pub requests: Option<u32>,
    /// Keep the lab running until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// Keep the inner pcap in this file.
    #[arg(short = 'w', value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Capture mode inside the lab.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
    /// `vtap` (default): the Azure vTAP demo. `accelnet`: the collector's
    /// NIC is an Accelerated Networking stack (modelled by a bridge with a
    /// VF port), and the VF goes away and comes back renamed between
    /// requests. The relay's deployments (no --keep, -w or --requests):
    /// `private-link` (vTAP → relay → Private Link SNAT → collector),
    /// `fanout` (relay → 3 collectors, one stopped mid-run) or `ilb` (an
    /// outer-hash load balancer onto 2 collectors, then with a relay tier).
    #[arg(long, value_name = "NAME", default_value = "vtap")]
    pub scenario: ScenarioArg,
}

/// `vxdecap lab --scenario`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScenarioArg {
    /// The Azure vTAP demo.
    Vtap,
    /// An Accelerated Networking collector through host servicing.
    Accelnet,
    /// One of the relay's deployments.
    Relay(vxdecap::lab::scenarios::Scenario),
}

impl std::str::FromStr for ScenarioArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vtap" => Ok(Self::Vtap),
            "accelnet" => Ok(Self::Accelnet),
            _ => s.parse().map(Self::Relay).map_err(|_| {
                format!("unknown scenario {s:?}: vtap, accelnet, private-link, fanout or ilb")
            }),
        }
    }
}

/// `--queues`: `all` or a list.
fn queues(text: &str) -> Result<Written<QueueSelection>, ParseError> {
    Ok(Written {
        value: QueueSelection::parse(text, "--queues")?,
        text: text.to_owned(),
    })
}

/// `--cpus`: one CPU per worker, in queue order.
fn cpus(text: &str) -> Result<Written<Vec<usize>>, ParseError> {
    Ok(Written {
        value: parse_list(text, "--cpus")?,
        text: text.to_owned(),
    })
}

/// A positive number of seconds (`--duration`, `--stats`).
fn seconds(text: &str, flag: &str) -> Result<Duration, ParseError> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            ParseError::new(format!(
                "{flag} must be a positive number of seconds, not {text}"
            ))
        })
}
