//! The harness: one veth pair per rig, one generator, every receiver
//! scenario in the same run, alternating, repeated; medians reported.
//!
//! Two rigs put the kernel's receive work (veth's NAPI poll, the XDP
//! program, the copy into the socket) in two places:
//! - **other core**: NAPI runs in softirq on the generator's CPU 0, as it
//!   does by default on veth; the receiver's CPU 1 runs only the tool.
//! - **shared core**: the collector's veth gets threaded NAPI and its NAPI
//!   thread is pinned to the receiver's CPU 1, as on a cloud VM where the
//!   vCPU that services a queue's interrupts also runs the worker; CPU 0
//!   runs the generator alone.
//!
//! Every tool's own threads are pinned to CPU 1 in both rigs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use vxdecap::lab::netns::{unique_name, veth_pair_with_queues, NetNs, WatchedChild};

use crate::gen::GenReport;
use crate::receivers::ReceiverReport;

/// The CPU the generator runs on.
pub(crate) const GEN_CPU: usize = 0;
/// The CPU every receiver's threads run on (and, in the shared-core rig,
/// the collector's NAPI thread).
pub(crate) const RX_CPU: usize = 1;

/// Where the kernel's receive work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Rig {
    /// In softirq on the generator's CPU (veth's default).
    OtherCore,
    /// In the collector's NAPI thread, pinned to the receiver's CPU.
    SharedCore,
}

impl Rig {
    /// Stable name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::OtherCore => "other-core",
            Self::SharedCore => "shared-core",
        }
    }

    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        match text {
            "other-core" => Ok(Self::OtherCore),
            "shared-core" => Ok(Self::SharedCore),
            _ => bail!("rig {text:?}: use other-core or shared-core"),
        }
    }

    /// One line saying where each piece of work runs.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::OtherCore => {
                "receive work (veth NAPI, XDP, copy into the socket) in softirq on the generator's CPU 0; the tool alone on CPU 1"
            }
            Self::SharedCore => {
                "receive work in the collector's threaded NAPI, pinned to CPU 1 with the tool; the generator alone on CPU 0"
            }
        }
    }
}

/// The receivers compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Scenario {
    /// XDP_DROP of everything: the generator's ceiling.
    XdpDrop,
    /// Bare AF_XDP (vxdecap's steering and sockets, count and recycle, no
    /// decap) spinning on an empty ring.
    AfXdpSpin,
    /// Bare AF_XDP sleeping in poll() on an empty ring.
    AfXdpSleep,
    /// Bare AF_XDP yielding the CPU on an empty ring, then sleeping.
    AfXdpYield,
    /// vxdecap capture with the counting analyzer, default settings.
    VxdecapCount,
    /// vxdecap capture writing pcap to tmpfs, default settings.
    VxdecapPcapTmpfs,
    /// tcpdump -w /dev/null 'udp port 4789'.
    TcpdumpNull,
    /// tcpdump -w to tmpfs.
    TcpdumpTmpfs,
    /// A kernel VXLAN device on the collector and tcpdump on it (the usual workaround).
    KernelVxlanTcpdump,
    /// netsniff-ng (TPACKET_V3 ring) writing pcap to /dev/null with the same filter.
    NetsniffNg,
    /// vxdecap capture with the counting analyzer, default settings, fed the same inner
    /// frames as AWS Traffic Mirroring through a Gateway Load Balancer endpoint sends them:
    /// GENEVE (6081, AWS options) around the mirror's VXLAN. Fixed sizes only.
    VxdecapGeneveVxlan,
    /// `vxdecap relay` forwarding the mirror to a collector behind a second
    /// link (bpf_redirect); delivered = frames an XDP_DROP program counts
    /// at that collector.
    RelayXdp,
    /// The Private Link write-up's proxy: the kernel forwarding with an
    /// nftables DNAT to the collector and SNAT to itself; counted as for
    /// the relay.
    DnatProxy,
    /// The cheapest forwarder the rig allows: an XDP program that redirects
    /// every frame to the collector with fixed MACs. Its rate bounds what
    /// any forwarder can show here; counted as for the relay.
    RedirectFloor,
}

impl Scenario {
    /// Every scenario, in the base order.
    pub(crate) const ALL: [Self; 14] = [
        Self::XdpDrop,
        Self::AfXdpSpin,
        Self::AfXdpSleep,
        Self::AfXdpYield,
        Self::VxdecapCount,
        Self::VxdecapPcapTmpfs,
        Self::TcpdumpNull,
        Self::TcpdumpTmpfs,
        Self::KernelVxlanTcpdump,
        Self::NetsniffNg,
        Self::VxdecapGeneveVxlan,
        Self::RelayXdp,
        Self::DnatProxy,
        Self::RedirectFloor,
    ];

    /// The forwarders, whose frames come back to the generator's side.
    pub(crate) const FORWARDERS: [Self; 3] = [Self::RelayXdp, Self::DnatProxy, Self::RedirectFloor];

    /// The bare AF_XDP variants; the best of them is the floor vxdecap is held to.
    pub(crate) const AF_XDP: [Self; 3] = [Self::AfXdpSpin, Self::AfXdpSleep, Self::AfXdpYield];

    /// Stable name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::XdpDrop => "xdp_drop",
            Self::AfXdpSpin => "af_xdp_spin",
            Self::AfXdpSleep => "af_xdp_sleep",
            Self::AfXdpYield => "af_xdp_yield",
            Self::VxdecapCount => "vxdecap_count",
            Self::VxdecapPcapTmpfs => "vxdecap_pcap_tmpfs",
            Self::TcpdumpNull => "tcpdump_null",
            Self::TcpdumpTmpfs => "tcpdump_tmpfs",
            Self::KernelVxlanTcpdump => "kernel_vxlan_tcpdump",
            Self::NetsniffNg => "netsniff_ng",
            Self::VxdecapGeneveVxlan => "vxdecap_geneve_vxlan",
            Self::RelayXdp => "relay_xdp",
            Self::DnatProxy => "dnat_proxy",
            Self::RedirectFloor => "redirect_floor",
        }
    }

    /// The generator's `--encap` for this receiver.
    fn encap(self) -> &'static str {
        match self {
            Self::VxdecapGeneveVxlan => "geneve-vxlan",
            _ => "vxlan",
        }
    }

    /// Whether it runs at inner size `size` (GENEVE(VXLAN)'s IMIX variants would differ from
    /// each other in more words than the generator patches).
    pub(crate) fn runs_at(self, size: &str) -> bool {
        self != Self::VxdecapGeneveVxlan || size != "imix"
    }

    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .with_context(|| format!("scenario {text:?}: use one of {}", Self::names()))
    }

    fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Run at near-idle rates too (where the CPU a tool burns while waiting shows).
    fn at_idle_rates(self) -> bool {
        matches!(
            self,
            Self::VxdecapCount | Self::VxdecapPcapTmpfs | Self::TcpdumpNull | Self::AfXdpSleep
        )
    }
}

/// The collector the forwarders send to: the sink namespace, behind the
/// collector namespace's second link (fwd0 10.78.0.1 → sink0 10.78.0.2).
const FORWARD_TO: &str = "10.78.0.2";

/// Rates below this (Mpps) are "nearly idle": only the scenarios whose idle
/// cost matters run there.
pub(crate) const IDLE_RATE_MPPS: f64 = 0.05;

/// Harness options.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Results folder (a timestamped subfolder is written, and `latest.*` beside it).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Seconds-long smoke for CI: one size, flat out, one repetition, 1 s each.
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of every (rig, size, rate, scenario).
    #[arg(long, default_value_t = 2)]
    pub reps: usize,
    /// Offered rates in Mpps; 0 means flat out. Rates under 0.05 run only
    /// vxdecap, tcpdump and the sleeping bare AF_XDP receiver (idle cost).
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.1,0.3,1,2,4,0")]
    pub rates: Vec<f64>,
    /// Inner frame sizes (bytes) or `imix`.
    #[arg(long, value_delimiter = ',', default_value = "64,imix")]
    pub sizes: Vec<String>,
    /// Seconds of traffic per run.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Distinct flows.
    #[arg(long, default_value_t = 1024)]
    pub flows: u32,
    /// Rigs: other-core (receive work on the generator's CPU), shared-core
    /// (receive work on the receiver's CPU).
    #[arg(long, value_delimiter = ',', default_value = "other-core,shared-core")]
    pub rigs: Vec<String>,
    /// Only these scenarios (default: all).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Extra arguments for vxdecap, space-separated (experiments; the
    /// reported matrix uses the defaults).
    #[arg(long, default_value = "")]
    pub vxdecap_args: String,
}

impl RunArgs {
    /// The defaults of the command line, for callers that build one.
    pub(crate) fn defaults() -> Self {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: RunArgs,
        }
        Wrapper::parse_from(["run"]).args
    }
}

/// One measured run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct RunResult {
    /// Where the receive work ran.
    pub rig: Rig,
    /// Receiver.
    pub scenario: Scenario,
    /// Inner frame size.
    pub size: String,
    /// Asked rate (0: flat out).
    pub target_pps: f64,
    /// Repetition index.
    pub rep: usize,
    /// Frames the generator sent.
    pub sent: u64,
    /// Seconds the generator sent for (first to last frame).
    pub seconds: f64,
    /// sent / seconds.
    pub offered_pps: f64,
    /// Frames the receiver counted.
    pub delivered: u64,
    /// delivered / seconds.
    pub delivered_pps: f64,
    /// sent − delivered.
    pub loss: i64,
    /// Drops the tool itself reported.
    pub tool_drops: u64,
    /// Wall-clock seconds of the measurement window.
    pub window_s: f64,
    /// Busy CPU seconds of the receiver's CPU in the window.
    pub cpu_rx_s: f64,
    /// Busy CPU seconds of the generator's CPU in the window.
    pub cpu_gen_s: f64,
    /// CPU seconds of the receiving tool's processes (utime + stime).
    pub cpu_tool_s: f64,
    /// vxdecap's receive-to-analyzer latency quantiles p50, p99, p99.9 in µs.
    pub latency_us: Option<[f64; 3]>,
    /// BPF_PROG_TEST_RUN calls the generator made.
    pub gen_calls: u64,
    /// Seconds the generator spent in them.
    pub gen_call_seconds: f64,
}

impl RunResult {
    /// Receiver CPU µs per delivered frame (on the shared-core rig this
    /// includes the kernel's receive work).
    pub(crate) fn rx_us_per_pkt(&self) -> f64 {
        self.cpu_rx_s * 1e6 / self.delivered.max(1) as f64
    }

    /// The tool's own CPU µs per delivered frame.
    pub(crate) fn tool_us_per_pkt(&self) -> f64 {
        self.cpu_tool_s * 1e6 / self.delivered.max(1) as f64
    }

    /// The tool's CPU as a percentage of one core over the window.
    pub(crate) fn tool_core_percent(&self) -> f64 {
        self.cpu_tool_s / self.window_s.max(1e-9) * 100.0
    }
}

/// The sender/collector namespaces of one rig.
pub(crate) struct Bench {
    pub(crate) tx: NetNs,
    pub(crate) rx: NetNs,
    /// Where the forwarders (relay, DNAT proxy) send: a counting XDP_DROP.
    sink: NetNs,
    sink_mac: String,
    /// The collector's interface (unique, so its NAPI thread can be found by name).
    pub(crate) iface: String,
    pub(crate) rig: Rig,
    rx_mac: String,
    exe_dir: PathBuf,
    shm: PathBuf,
}

/// A receiver process inside the collector namespace.
pub(crate) struct Proc {
    child: WatchedChild,
}

impl Proc {
    /// Starts `program` in `ns`, its threads on `cpu` when given.
    pub(crate) fn spawn(
        ns: &NetNs,
        cpu: Option<usize>,
        program: &str,
        args: &[&str],
    ) -> anyhow::Result<Self> {
        let cpu_text = cpu.map(|c| c.to_string());
        let mut full: Vec<&str> = Vec::new();
        let command = match &cpu_text {
            Some(c) => {
                full.extend(["-c", c.as_str(), program]);
                full.extend(args);
                ns.command("taskset", &full)
            }
            None => ns.command(program, args),
        };
        // vxdecap, tcpdump and our helpers say "listening on" (vxdecap relay "relaying on");
        // netsniff-ng says "Running!".
        let child = WatchedChild::spawn(
            command,
            &["listening on", "relaying on", "Running!"],
            Duration::from_secs(20),
            None,
        )?;
        Ok(Self { child })
    }

    pub(crate) fn cpu_ticks(&self) -> u64 {
        process_ticks(self.child.id())
    }

    /// SIGINT, wait; (stdout, stderr).
    pub(crate) fn stop(&mut self) -> anyhow::Result<(String, String)> {
        let outcome = self.child.stop(nix::sys::signal::Signal::SIGINT)?;
        Ok((outcome.stdout, outcome.stderr))
    }
}

/// utime + stime of every thread of `pid` (ticks).
fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // Fields after the command name, which may contain spaces: state is field 3.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    utime + stime
}

/// Busy ticks of each CPU (index = CPU number), from /proc/stat.
pub(crate) fn cpu_busy_ticks() -> Vec<u64> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|line| {
            let values: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal ...
            let total: u64 = values.iter().take(8).sum();
            total - values.get(3).copied().unwrap_or(0) - values.get(4).copied().unwrap_or(0)
        })
        .collect()
}

pub(crate) fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// p50, p99 and p99.9 (µs) from vxdecap's `latency receive to analyzer: p50 X us, p99 Y us, p99.9 Z us, …` line.
fn parse_latency(text: &str) -> Option<[f64; 3]> {
    let line = text
        .lines()
        .find(|l| l.starts_with("latency receive to analyzer:"))?;
    let mut values = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse::<f64>().ok());
    Some([values.next()?, values.next()?, values.next()?])
}

/// The first integer on the line of `text` that contains `needle`.
pub(crate) fn number_before(text: &str, needle: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
}

impl Bench {
    /// Namespaces joined by a veth pair with `queues` rx and tx queues.
    pub(crate) fn new(rig: Rig, queues: u32) -> anyhow::Result<Self> {
        let base = unique_name("bench");
        let tx = NetNs::create(&format!("{base}-tx"))?;
        let rx = NetNs::create(&format!("{base}-rx"))?;
        for ns in [&tx, &rx] {
            ns.run("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
            ns.run("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
        }
        // A name of this run only: its NAPI thread is `napi/<name>-<id>`.
        let iface = format!("vxb{:05x}", std::process::id() & 0xfffff);
        veth_pair_with_queues(&tx, "und0", &rx, &iface, queues)?;
        // IMIX's 1518-byte inner frames are 1568 bytes with VXLAN: a cloud
        // underlay carries them, so the bench link does too.
        tx.ip(&["link", "set", "und0", "mtu", "1600"])?;
        rx.ip(&["link", "set", &iface, "mtu", "1600"])?;
        tx.configure("und0", "10.77.0.1/24")?;
        rx.configure(&iface, "10.77.0.2/24")?;
        let link = rx.ip(&["-br", "link", "show", &iface])?;
        let rx_mac = String::from_utf8_lossy(&link.stdout)
            .split_whitespace()
            .nth(2)
            .context("collector MAC")?
            .to_owned();
        let sink = NetNs::create(&format!("{base}-sink"))?;
        sink.run("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
        veth_pair_with_queues(&rx, "fwd0", &sink, "sink0", queues)?;
        rx.configure("fwd0", "10.78.0.1/24")?;
        sink.configure("sink0", "10.78.0.2/24")?;
        let sink_link = sink.ip(&["-br", "link", "show", "sink0"])?;
        let sink_mac = String::from_utf8_lossy(&sink_link.stdout)
            .split_whitespace()
            .nth(2)
            .context("sink MAC")?
            .to_owned();
        let exe_dir = std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .to_path_buf();
        if !exe_dir.join("vxdecap").exists() {
            bail!(
                "{} not found: build it first (cargo build --release -p vxdecap)",
                exe_dir.join("vxdecap").display()
            );
        }
        Ok(Self {
            tx,
            rx,
            sink,
            sink_mac,
            iface,
            rig,
            rx_mac,
            exe_dir,
            shm: PathBuf::from("/dev/shm"),
        })
    }

    /// The collector veth's MAC address.
    pub(crate) fn rx_mac(&self) -> &str {
        &self.rx_mac
    }

    pub(crate) fn exe(&self, name: &str) -> String {
        self.exe_dir.join(name).to_string_lossy().into_owned()
    }

    fn tmpfs_file(&self, name: &str) -> String {
        self.shm
            .join(format!("{}-{name}", self.rx.name()))
            .to_string_lossy()
            .into_owned()
    }

    /// Shared-core rig: makes the collector's NAPI threaded (once a program
    /// is attached, so NAPI exists) and pins its thread(s) to the receiver's
    /// CPU. Returns how many threads were pinned.
    pub(crate) fn pin_napi(&self) -> anyhow::Result<usize> {
        let path = format!("/sys/class/net/{}/threaded", self.iface);
        // Writing 1 when it is already 1 is harmless; a new NAPI (a program
        // attached again) gets a new thread, which is why this runs per start.
        self.rx.run("sh", &["-c", &format!("echo 1 > {path}")])?;
        let prefix = format!("napi/{}-", self.iface);
        let mut pinned = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        while pinned == 0 && Instant::now() < deadline {
            for entry in std::fs::read_dir("/proc")?.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                if comm.trim_end().starts_with(&prefix) {
                    let mut set = nix::sched::CpuSet::new();
                    set.set(RX_CPU)?;
                    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), &set)
                        .with_context(|| format!("pin {} to CPU {RX_CPU}", comm.trim()))?;
                    pinned += 1;
                }
            }
            if pinned == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if pinned == 0 {
            bail!("no NAPI thread {prefix}* appeared after threaded NAPI was turned on");
        }
        Ok(pinned)
    }

    /// Starts the receiver(s) of `scenario`, all pinned to the receiver's CPU.
    fn start(&self, scenario: Scenario, extra: &str) -> anyhow::Result<Vec<Proc>> {
        let vxdecap = self.exe("vxdecap");
        let bench = self.exe("vxdecap-bench");
        let pcap = self.tmpfs_file("vxdecap.pcap");
        let tcpdump_pcap = self.tmpfs_file("tcpdump.pcap");
        let iface = self.iface.as_str();
        let cpu = Some(RX_CPU);
        let rx_cpu = RX_CPU.to_string();
        // veth accepts redirected frames only when its peer runs XDP: XDP_PASS
        // for the tools on the kernel's packet path.
        let pass = || {
            Proc::spawn(
                &self.rx,
                cpu,
                &bench,
                &["drop", "--pass", "--interface", iface],
            )
        };
        let xsk = |policy: &str| {
            let args = [
                "xsk-count",
                "--interface",
                iface,
                "--cpu",
                &rx_cpu,
                "--policy",
                policy,
            ];
            Proc::spawn(&self.rx, cpu, &bench, &args)
        };
        Ok(match scenario {
            Scenario::XdpDrop => {
                vec![Proc::spawn(
                    &self.rx,
                    cpu,
                    &bench,
                    &["drop", "--interface", iface],
                )?]
            }
            Scenario::AfXdpSpin => vec![xsk("spin")?],
            Scenario::AfXdpSleep => vec![xsk("sleep")?],
            Scenario::AfXdpYield => vec![xsk("yield")?],
            // Defaults, with the worker on the receiver's CPU (where it would
            // go by default with one queue on two CPUs anyway).
            Scenario::VxdecapCount | Scenario::VxdecapPcapTmpfs | Scenario::VxdecapGeneveVxlan => {
                let mut args = vec!["capture", "-i", iface, "--cpus", &rx_cpu];
                if scenario == Scenario::VxdecapPcapTmpfs {
                    args.extend(["-w", &pcap]);
                } else {
                    args.push("-q");
                }
                args.extend(extra.split_whitespace());
                vec![Proc::spawn(&self.rx, cpu, &vxdecap, &args)?]
            }
            Scenario::TcpdumpNull | Scenario::TcpdumpTmpfs => {
                let out = if scenario == Scenario::TcpdumpNull {
                    "/dev/null"
                } else {
                    tcpdump_pcap.as_str()
                };
                let pass = pass()?;
                let tcpdump = Proc::spawn(
                    &self.rx,
                    cpu,
                    "tcpdump",
                    &["-i", iface, "-n", "-w", out, "udp port 4789"],
                )?;
                vec![tcpdump, pass]
            }
            Scenario::NetsniffNg => {
                let pass = pass()?;
                // -V: without it netsniff-ng 0.6.8 prints no statistics on exit.
                let args = [
                    "--in",
                    iface,
                    "--out",
                    "/dev/null",
                    "--silent",
                    "-V",
                    "--ring-size",
                    "64MiB",
                    "--bind-cpu",
                    &rx_cpu,
                    "udp port 4789",
                ];
                let sniff = Proc::spawn(&self.rx, cpu, "netsniff-ng", &args)?;
                vec![sniff, pass]
            }
            Scenario::RelayXdp | Scenario::DnatProxy | Scenario::RedirectFloor => {
                self.start_forwarder(scenario, extra)?
            }
            Scenario::KernelVxlanTcpdump => {
                self.rx.ip(&[
                    "link",
                    "add",
                    "vxlan0",
                    "type",
                    "vxlan",
                    "id",
                    "27",
                    "dstport",
                    "4789",
                    "local",
                    "10.77.0.2",
                    "dev",
                    iface,
                    "nolearning",
                ])?;
                self.rx.ip(&["link", "set", "vxlan0", "up"])?;
                let pass = pass()?;
                let tcpdump = Proc::spawn(
                    &self.rx,
                    cpu,
                    "tcpdump",
                    &["-i", "vxlan0", "-n", "-w", "/dev/null"],
                )?;
                vec![tcpdump, pass]
            }
        })
    }

    /// Starts a forwarder (`vxdecap relay`, or the nftables DNAT proxy) and
    /// the XDP_DROP program that counts what it forwards to the sink.
    fn start_forwarder(&self, scenario: Scenario, extra: &str) -> anyhow::Result<Vec<Proc>> {
        let vxdecap = self.exe("vxdecap");
        let bench = self.exe("vxdecap-bench");
        let iface = self.iface.as_str();
        let cpu = Some(RX_CPU);
        // The collector is the sink namespace behind fwd0, where an XDP_DROP program
        // counts what arrives; both forwarders send there from their own address.
        self.rx.ip(&[
            "neigh",
            "replace",
            FORWARD_TO,
            "lladdr",
            &self.sink_mac,
            "dev",
            "fwd0",
            "nud",
            "permanent",
        ])?;
        self.rx.run(
            "sysctl",
            &["-qw", &format!("net.ipv4.conf.{iface}.forwarding=1")],
        )?;
        let counter = Proc::spawn(&self.sink, None, &bench, &["drop", "--interface", "sink0"])?;
        if scenario == Scenario::RelayXdp {
            let mut args = vec!["relay", "-i", iface, "--to", FORWARD_TO, "--no-health"];
            args.extend(extra.split_whitespace());
            Ok(vec![counter, Proc::spawn(&self.rx, cpu, &vxdecap, &args)?])
        } else if scenario == Scenario::RedirectFloor {
            let fwd = self.rx.ip(&["-br", "link", "show", "fwd0"])?;
            let fwd_mac = String::from_utf8_lossy(&fwd.stdout)
                .split_whitespace()
                .nth(2)
                .context("fwd0 MAC")?
                .to_owned();
            let args = [
                "drop",
                "--interface",
                iface,
                "--redirect",
                "fwd0",
                "--dst-mac",
                &self.sink_mac,
                "--src-mac",
                &fwd_mac,
            ];
            Ok(vec![counter, Proc::spawn(&self.rx, cpu, &bench, &args)?])
        } else {
            let rules = format!(
                "table ip vxbench {{\n  chain pre {{ type nat hook prerouting priority dstnat; ip daddr 10.77.0.2 udp dport 4789 dnat to {FORWARD_TO}; }}\n  chain post {{ type nat hook postrouting priority srcnat; ip daddr {FORWARD_TO} udp dport 4789 snat to 10.78.0.1; }}\n}}\n"
            );
            let file = self.tmpfs_file("dnat.nft");
            std::fs::write(&file, rules)?;
            let loaded = self.rx.run("nft", &["-f", &file]);
            let _ = std::fs::remove_file(&file);
            loaded?;
            // veth accepts redirected frames only when it runs XDP: XDP_PASS.
            let pass = Proc::spawn(
                &self.rx,
                cpu,
                &bench,
                &["drop", "--pass", "--interface", iface],
            )?;
            Ok(vec![counter, pass])
        }
    }

    /// Stops the receivers and reads (delivered, tool drops, latency quantiles).
    fn finish(
        &self,
        scenario: Scenario,
        procs: &mut [Proc],
    ) -> anyhow::Result<(u64, u64, Option<[f64; 3]>)> {
        let mut outputs = Vec::new();
        for p in procs.iter_mut() {
            outputs.push(p.stop()?);
        }
        let (out, err) = &outputs[0];
        let latency = parse_latency(err);
        let result = match scenario {
            Scenario::XdpDrop
            | Scenario::AfXdpSpin
            | Scenario::AfXdpSleep
            | Scenario::AfXdpYield
            | Scenario::RelayXdp
            | Scenario::DnatProxy
            | Scenario::RedirectFloor => {
                let report: ReceiverReport = serde_json::from_str(out.trim())
                    .with_context(|| format!("receiver said: {out}{err}"))?;
                (report.delivered, report.drops)
            }
            Scenario::VxdecapCount | Scenario::VxdecapPcapTmpfs | Scenario::VxdecapGeneveVxlan => {
                let written = number_before(err, "inner frames written")
                    .with_context(|| format!("vxdecap said: {err}"))?;
                let drops = number_before(err, "packets dropped by kernel").unwrap_or(0)
                    + number_before(err, "analyzer_backpressure").unwrap_or(0);
                (written, drops)
            }
            Scenario::NetsniffNg => {
                let all = format!("{out}{err}");
                let passed = number_before(&all, "packets passed filter")
                    .with_context(|| format!("netsniff-ng said: {all}"))?;
                (
                    passed,
                    number_before(&all, "packets failed filter").unwrap_or(0),
                )
            }
            Scenario::TcpdumpNull | Scenario::TcpdumpTmpfs | Scenario::KernelVxlanTcpdump => {
                let captured = number_before(err, "packets captured")
                    .with_context(|| format!("tcpdump said: {err}"))?;
                (
                    captured,
                    number_before(err, "packets dropped by kernel").unwrap_or(0),
                )
            }
        };
        if scenario == Scenario::KernelVxlanTcpdump {
            self.rx.ip(&["link", "del", "vxlan0"])?;
        }
        if scenario == Scenario::DnatProxy {
            self.rx.run("nft", &["delete", "table", "ip", "vxbench"])?;
        }
        if Scenario::FORWARDERS.contains(&scenario) {
            self.rx.ip(&["neigh", "del", FORWARD_TO, "dev", "fwd0"])?;
            self.rx.run(
                "sysctl",
                &["-qw", &format!("net.ipv4.conf.{}.forwarding=0", self.iface)],
            )?;
        }
        for name in ["vxdecap.pcap", "tcpdump.pcap"] {
            let _ = std::fs::remove_file(self.tmpfs_file(name));
        }
        Ok((result.0, result.1, latency))
    }

    /// The generator's arguments (after the program name).
    fn gen_args(&self, size: &str, pps: u64, duration: f64, flows: u32) -> Vec<String> {
        self.gen_args_encap(size, pps, duration, flows, "vxlan")
    }

    /// [`Bench::gen_args`] with the frames wrapped as `encap` says.
    fn gen_args_encap(
        &self,
        size: &str,
        pps: u64,
        duration: f64,
        flows: u32,
        encap: &str,
    ) -> Vec<String> {
        [
            "gen",
            "--encap",
            encap,
            "--interface",
            "und0",
            "--dst-mac",
            &self.rx_mac,
            "--size",
            size,
            "--pps",
            &pps.to_string(),
            "--duration",
            &duration.to_string(),
            "--flows",
            &flows.to_string(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Runs the generator pinned to `cpu`, its frames wrapped as `encap` says. Frames
    /// redirected into a veth land on the peer's rx queue numbered after the sending CPU.
    /// With `restore_outer`, it writes the outer headers back before every frame (for the
    /// forwarders, which rewrite the page it sends again).
    #[allow(
        clippy::too_many_arguments,
        reason = "one generator run's knobs, each a CLI flag"
    )]
    pub(crate) fn generate_on(
        &self,
        cpu: usize,
        size: &str,
        pps: u64,
        duration: f64,
        flows: u32,
        encap: &str,
        restore_outer: bool,
    ) -> anyhow::Result<GenReport> {
        let cpu = cpu.to_string();
        let exe = self.exe("vxdecap-bench");
        let mut args = self.gen_args_encap(size, pps, duration, flows, encap);
        if restore_outer {
            args.push("--restore-outer".into());
        }
        let mut full = vec!["-c", cpu.as_str(), exe.as_str()];
        full.extend(args.iter().map(String::as_str));
        let out = self.tx.run("taskset", &full)?;
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).with_context(|| format!("generator said: {text}"))
    }

    /// The generator's fixed cost per BPF_PROG_TEST_RUN call (s).
    fn calibrate(&self) -> anyhow::Result<serde_json::Value> {
        // The frames need a receiver that accepts them: XDP_DROP.
        let mut drop = self.start(Scenario::XdpDrop, "")?;
        let exe = self.exe("vxdecap-bench");
        let gen_cpu = GEN_CPU.to_string();
        let mut args = vec!["-c".to_owned(), gen_cpu, exe];
        args.extend(self.gen_args("64", 0, 0.0, 1));
        args.push("--calibrate".into());
        let out = self.tx.run(
            "taskset",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        drop[0].stop()?;
        let out = out?;
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).with_context(|| format!("calibration said: {text}"))
    }

    pub(crate) fn measure(
        &self,
        scenario: Scenario,
        size: &str,
        target_pps: f64,
        rep: usize,
        args: &RunArgs,
    ) -> anyhow::Result<RunResult> {
        let mut procs = self.start(scenario, &args.vxdecap_args)?;
        if self.rig == Rig::SharedCore {
            self.pin_napi()?;
            // vxdecap looks at where the receive work runs once a second.
            std::thread::sleep(Duration::from_millis(1200));
        }
        std::thread::sleep(Duration::from_millis(200));
        let hz = ticks_per_second();
        let t0 = Instant::now();
        let busy0 = cpu_busy_ticks();
        let tool0: u64 = procs.iter().map(Proc::cpu_ticks).sum();
        let gen = self.generate_on(
            GEN_CPU,
            size,
            target_pps as u64,
            args.duration,
            args.flows,
            scenario.encap(),
            Scenario::FORWARDERS.contains(&scenario),
        )?;
        std::thread::sleep(Duration::from_millis(300));
        let tool1: u64 = procs.iter().map(Proc::cpu_ticks).sum();
        let busy1 = cpu_busy_ticks();
        let window_s = t0.elapsed().as_secs_f64();
        let (delivered, tool_drops, latency_us) = self.finish(scenario, &mut procs)?;
        let cpu_s = |cpu: usize| {
            busy1
                .get(cpu)
                .copied()
                .unwrap_or(0)
                .saturating_sub(busy0.get(cpu).copied().unwrap_or(0)) as f64
                / hz
        };
        let seconds = gen.seconds.max(1e-9);
        Ok(RunResult {
            rig: self.rig,
            scenario,
            size: size.to_owned(),
            target_pps,
            rep,
            sent: gen.sent,
            seconds,
            offered_pps: gen.sent as f64 / seconds,
            delivered,
            delivered_pps: delivered as f64 / seconds,
            loss: gen.sent as i64 - delivered as i64,
            tool_drops,
            window_s,
            cpu_rx_s: cpu_s(RX_CPU),
            cpu_gen_s: cpu_s(GEN_CPU),
            cpu_tool_s: tool1.saturating_sub(tool0) as f64 / hz,
            latency_us,
            gen_calls: gen.calls,
            gen_call_seconds: gen.call_seconds,
        })
    }
}

/// What the harness measured, for the report.
pub(crate) struct Outcome {
    /// Every run.
    pub results: Vec<RunResult>,
    /// Per rig: the generator's calibration (setup cost per call).
    pub calibration: Vec<(Rig, serde_json::Value)>,
}

/// Runs every scenario on every rig and writes the results; returns the results folder.
pub(crate) fn run(mut args: RunArgs) -> anyhow::Result<PathBuf> {
    if args.quick {
        args.reps = 1;
        args.rates = vec![0.0];
        args.sizes = vec!["64".into()];
        args.duration = 1.0;
        args.rigs = vec!["shared-core".into()];
    }
    let rigs = args
        .rigs
        .iter()
        .map(|r| Rig::parse(r))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios
            .iter()
            .map(|s| Scenario::parse(s))
            .collect::<anyhow::Result<_>>()?
    };
    // Ctrl-C ends the run between measurements; the namespaces are removed
    // and what was measured so far is written.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, std::sync::Arc::clone(&interrupted))?;
    }
    let mut outcome = Outcome {
        results: Vec::new(),
        calibration: Vec::new(),
    };
    'rigs: for &rig in &rigs {
        let bench = Bench::new(rig, 1)?;
        let calibration = bench.calibrate().context("generator calibration")?;
        eprintln!(
            "bench: {} rig; generator calibration {calibration}",
            rig.name()
        );
        outcome.calibration.push((rig, calibration));
        for size in &args.sizes {
            for &rate in &args.rates {
                let here: Vec<Scenario> = scenarios
                    .iter()
                    .copied()
                    .filter(|s| rate == 0.0 || rate >= IDLE_RATE_MPPS || s.at_idle_rates())
                    .filter(|s| s.runs_at(size))
                    .collect();
                for rep in 0..args.reps {
                    // Alternate the order between repetitions: the machine is shared and noisy.
                    for i in 0..here.len() {
                        if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                            eprintln!("bench: interrupted; writing what was measured");
                            break 'rigs;
                        }
                        let scenario = here[(i + rep * 3) % here.len()];
                        let result = bench.measure(scenario, size, rate * 1e6, rep, &args);
                        let result = match result {
                            // Ctrl-C reaches the generator too: keep what was measured.
                            Err(_) if interrupted.load(std::sync::atomic::Ordering::Relaxed) => {
                                eprintln!("bench: interrupted; writing what was measured");
                                break 'rigs;
                            }
                            r => r.with_context(|| {
                                format!(
                                    "{} on the {} rig, size {size}, rate {rate} Mpps",
                                    scenario.name(),
                                    rig.name()
                                )
                            })?,
                        };
                        eprintln!(
                            "bench: {:<11} {:<20} size {size:>5} offered {:>6.3} Mpps delivered {:>6.3} Mpps loss {:>9} rx cpu {:>6.3} us/pkt tool {:>5.1} % of a core",
                            rig.name(),
                            scenario.name(),
                            result.offered_pps / 1e6,
                            result.delivered_pps / 1e6,
                            result.loss,
                            result.rx_us_per_pkt(),
                            result.tool_core_percent(),
                        );
                        outcome.results.push(result);
                    }
                }
            }
        }
    }
    crate::report::write(&args.out, &outcome, &args)
}

/// Where a results file goes.
pub(crate) fn results_dir(out: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    out.join(format!("run-{secs}"))
}
