//! The harness: one veth pair, one generator, every receiver scenario, in
//! the same run, alternating, repeated; medians reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use vxdecap::netns::{unique_name, veth_pair_with_queues, NetNs, WatchedChild};

use crate::gen::GenReport;
use crate::receivers::ReceiverReport;

/// The receivers compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// XDP_DROP of everything: the machine's ceiling.
    XdpDrop,
    /// AF_XDP receive and recycle, no decap: the floor our pipeline can reach.
    AfXdpBare,
    /// vxdecap capture with the counting analyzer.
    VxdecapCount,
    /// vxdecap capture writing pcap to tmpfs.
    VxdecapPcapTmpfs,
    /// tcpdump -w /dev/null 'udp port 4789'.
    TcpdumpNull,
    /// tcpdump -w to tmpfs.
    TcpdumpTmpfs,
    /// A kernel VXLAN device on the collector and tcpdump on it (the usual workaround).
    KernelVxlanTcpdump,
    /// netsniff-ng (TPACKET_V3 ring) writing pcap to /dev/null with the same filter.
    NetsniffNg,
}

impl Scenario {
    /// Every scenario, in the base order.
    pub const ALL: [Scenario; 8] = [
        Scenario::XdpDrop,
        Scenario::AfXdpBare,
        Scenario::VxdecapCount,
        Scenario::VxdecapPcapTmpfs,
        Scenario::TcpdumpNull,
        Scenario::TcpdumpTmpfs,
        Scenario::KernelVxlanTcpdump,
        Scenario::NetsniffNg,
    ];

    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::XdpDrop => "xdp_drop",
            Scenario::AfXdpBare => "af_xdp_bare",
            Scenario::VxdecapCount => "vxdecap_count",
            Scenario::VxdecapPcapTmpfs => "vxdecap_pcap_tmpfs",
            Scenario::TcpdumpNull => "tcpdump_null",
            Scenario::TcpdumpTmpfs => "tcpdump_tmpfs",
            Scenario::KernelVxlanTcpdump => "kernel_vxlan_tcpdump",
            Scenario::NetsniffNg => "netsniff_ng",
        }
    }
}

/// Harness options.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Results folder (a timestamped subfolder is written, and `latest.*` beside it).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Seconds-long smoke for CI: one size, flat out, one repetition, 1 s each.
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of every (size, rate, scenario).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Offered rates in Mpps; 0 means flat out.
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,1,1.5,0")]
    pub rates: Vec<f64>,
    /// Inner frame sizes (bytes) or `imix`.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub sizes: Vec<String>,
    /// Seconds of traffic per run.
    #[arg(long, default_value_t = 2.0)]
    pub duration: f64,
    /// Distinct flows.
    #[arg(long, default_value_t = 1024)]
    pub flows: u32,
}

/// One measured run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunResult {
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
    /// Seconds the generator sent for.
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
    /// CPU seconds over all cores during the run (from /proc/stat), generator included.
    pub cpu_all_s: f64,
    /// CPU seconds of the receiving tool's processes (utime + stime).
    pub cpu_tool_s: f64,
    /// vxdecap's receive-to-analyzer latency quantiles p50, p99, p99.9 in µs.
    pub latency_us: Option<[f64; 3]>,
}

impl RunResult {
    /// CPU seconds of all cores per million delivered frames.
    pub fn cpu_all_per_mpkt(&self) -> f64 {
        self.cpu_all_s / (self.delivered.max(1) as f64 / 1e6)
    }

    /// CPU seconds of the tool per million delivered frames.
    pub fn cpu_tool_per_mpkt(&self) -> f64 {
        self.cpu_tool_s / (self.delivered.max(1) as f64 / 1e6)
    }
}

/// The sender/collector namespaces.
pub(crate) struct Bench {
    pub(crate) tx: NetNs,
    pub(crate) rx: NetNs,
    rx_mac: String,
    exe_dir: PathBuf,
    shm: PathBuf,
}

/// A receiver process inside the collector namespace.
pub(crate) struct Proc {
    child: WatchedChild,
}

impl Proc {
    pub(crate) fn spawn(ns: &NetNs, program: &str, args: &[&str]) -> anyhow::Result<Proc> {
        // vxdecap, tcpdump and our helpers say "listening on"; netsniff-ng says "Running!".
        let child = WatchedChild::spawn(
            ns.command(program, args),
            &["listening on", "Running!"],
            Duration::from_secs(20),
            None,
        )?;
        Ok(Proc { child })
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

/// Busy ticks over all CPUs, from /proc/stat.
pub(crate) fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = values.iter().take(8).sum();
    total - values.get(3).copied().unwrap_or(0) - values.get(4).copied().unwrap_or(0)
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
    pub(crate) fn new(queues: u32) -> anyhow::Result<Bench> {
        let base = unique_name("bench");
        let tx = NetNs::create(&format!("{base}-tx"))?;
        let rx = NetNs::create(&format!("{base}-rx"))?;
        for ns in [&tx, &rx] {
            ns.run("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
            ns.run("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
        }
        veth_pair_with_queues(&tx, "und0", &rx, "eth1", queues)?;
        // IMIX's 1518-byte inner frames are 1568 bytes with VXLAN: a cloud
        // underlay carries them, so the bench link does too.
        tx.ip(&["link", "set", "und0", "mtu", "1600"])?;
        rx.ip(&["link", "set", "eth1", "mtu", "1600"])?;
        tx.configure("und0", "10.77.0.1/24")?;
        rx.configure("eth1", "10.77.0.2/24")?;
        let link = rx.ip(&["-br", "link", "show", "eth1"])?;
        let rx_mac = String::from_utf8_lossy(&link.stdout)
            .split_whitespace()
            .nth(2)
            .context("eth1 MAC")?
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
        let shm = PathBuf::from("/dev/shm");
        Ok(Bench {
            tx,
            rx,
            rx_mac,
            exe_dir,
            shm,
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

    /// Starts the receiver(s) of `scenario`.
    fn start(&self, scenario: Scenario) -> anyhow::Result<Vec<Proc>> {
        let vxdecap = self.exe("vxdecap");
        let bench = self.exe("vxdecap-bench");
        let pcap = self.tmpfs_file("vxdecap.pcap");
        let tcpdump_pcap = self.tmpfs_file("tcpdump.pcap");
        Ok(match scenario {
            Scenario::XdpDrop => vec![Proc::spawn(
                &self.rx,
                &bench,
                &["drop", "--interface", "eth1"],
            )?],
            Scenario::AfXdpBare => {
                vec![Proc::spawn(
                    &self.rx,
                    &bench,
                    &["xsk-count", "--interface", "eth1", "--cpu", "1"],
                )?]
            }
            Scenario::VxdecapCount => {
                vec![Proc::spawn(
                    &self.rx,
                    &vxdecap,
                    &["capture", "-i", "eth1", "-q", "--cpus", "1"],
                )?]
            }
            Scenario::VxdecapPcapTmpfs => {
                vec![Proc::spawn(
                    &self.rx,
                    &vxdecap,
                    &["capture", "-i", "eth1", "-w", &pcap, "--cpus", "1"],
                )?]
            }
            Scenario::TcpdumpNull | Scenario::TcpdumpTmpfs => {
                let out = if scenario == Scenario::TcpdumpNull {
                    "/dev/null"
                } else {
                    tcpdump_pcap.as_str()
                };
                // veth accepts redirected frames only when its peer runs XDP: XDP_PASS.
                let pass =
                    Proc::spawn(&self.rx, &bench, &["drop", "--pass", "--interface", "eth1"])?;
                let tcpdump = Proc::spawn(
                    &self.rx,
                    "tcpdump",
                    &["-i", "eth1", "-n", "-w", out, "udp port 4789"],
                )?;
                vec![tcpdump, pass]
            }
            Scenario::NetsniffNg => {
                let pass =
                    Proc::spawn(&self.rx, &bench, &["drop", "--pass", "--interface", "eth1"])?;
                // -V: without it netsniff-ng 0.6.8 prints no statistics on exit.
                let args = [
                    "--in",
                    "eth1",
                    "--out",
                    "/dev/null",
                    "--silent",
                    "-V",
                    "--ring-size",
                    "64MiB",
                    "--bind-cpu",
                    "1",
                    "udp port 4789",
                ];
                let sniff = Proc::spawn(&self.rx, "netsniff-ng", &args)?;
                vec![sniff, pass]
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
                    "eth1",
                    "nolearning",
                ])?;
                self.rx.ip(&["link", "set", "vxlan0", "up"])?;
                let pass =
                    Proc::spawn(&self.rx, &bench, &["drop", "--pass", "--interface", "eth1"])?;
                let tcpdump = Proc::spawn(
                    &self.rx,
                    "tcpdump",
                    &["-i", "vxlan0", "-n", "-w", "/dev/null"],
                )?;
                vec![tcpdump, pass]
            }
        })
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
            Scenario::XdpDrop | Scenario::AfXdpBare => {
                let report: ReceiverReport = serde_json::from_str(out.trim())
                    .with_context(|| format!("receiver said: {out}{err}"))?;
                (report.delivered, report.drops)
            }
            Scenario::VxdecapCount | Scenario::VxdecapPcapTmpfs => {
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
        for name in ["vxdecap.pcap", "tcpdump.pcap"] {
            let _ = std::fs::remove_file(self.tmpfs_file(name));
        }
        Ok((result.0, result.1, latency))
    }

    fn generate(
        &self,
        size: &str,
        pps: u64,
        duration: f64,
        flows: u32,
    ) -> anyhow::Result<GenReport> {
        self.generate_on(0, size, pps, duration, flows)
    }

    /// Runs the generator pinned to `cpu`. Frames redirected into a veth
    /// land on the peer's rx queue numbered after the sending CPU.
    pub(crate) fn generate_on(
        &self,
        cpu: usize,
        size: &str,
        pps: u64,
        duration: f64,
        flows: u32,
    ) -> anyhow::Result<GenReport> {
        let cpu = cpu.to_string();
        let out = self.tx.run(
            "taskset",
            &[
                "-c",
                &cpu,
                &self.exe("vxdecap-bench"),
                "gen",
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
            ],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).with_context(|| format!("generator said: {text}"))
    }

    fn measure(
        &self,
        scenario: Scenario,
        size: &str,
        target_pps: f64,
        rep: usize,
        args: &RunArgs,
    ) -> anyhow::Result<RunResult> {
        let mut procs = self.start(scenario)?;
        std::thread::sleep(Duration::from_millis(200));
        let busy0 = machine_busy_ticks();
        let tool0: u64 = procs.iter().map(Proc::cpu_ticks).sum();
        let gen = self.generate(size, target_pps as u64, args.duration, args.flows)?;
        std::thread::sleep(Duration::from_millis(300));
        let tool1: u64 = procs.iter().map(Proc::cpu_ticks).sum();
        let busy1 = machine_busy_ticks();
        let (delivered, tool_drops, latency_us) = self.finish(scenario, &mut procs)?;
        let hz = ticks_per_second();
        Ok(RunResult {
            scenario,
            size: size.to_owned(),
            target_pps,
            rep,
            sent: gen.sent,
            seconds: gen.seconds,
            offered_pps: gen.sent as f64 / gen.seconds,
            delivered,
            delivered_pps: delivered as f64 / gen.seconds,
            loss: gen.sent as i64 - delivered as i64,
            tool_drops,
            cpu_all_s: (busy1 - busy0) as f64 / hz,
            cpu_tool_s: (tool1 - tool0) as f64 / hz,
            latency_us,
        })
    }
}

/// Runs every scenario and writes the results; returns the results folder.
pub fn run(mut args: RunArgs) -> anyhow::Result<PathBuf> {
    if args.quick {
        args.reps = 1;
        args.rates = vec![0.0];
        args.sizes = vec!["64".into()];
        args.duration = 1.0;
    }
    // Ctrl-C ends the run between measurements; the namespaces are removed
    // and what was measured so far is written.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, interrupted.clone())?;
    }
    let bench = Bench::new(1)?;
    let mut results = Vec::new();
    let scenarios = Scenario::ALL;
    for size in &args.sizes {
        for &rate in &args.rates {
            for rep in 0..args.reps {
                // Alternate the order between repetitions: the machine is shared and noisy.
                for i in 0..scenarios.len() {
                    if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                        eprintln!("bench: interrupted; writing what was measured");
                        drop(bench);
                        return crate::report::write(&args.out, &results, &args);
                    }
                    let scenario = scenarios[(i + rep * 3) % scenarios.len()];
                    let pps = rate * 1e6;
                    let result = bench
                        .measure(scenario, size, pps, rep, &args)
                        .with_context(|| {
                            format!("{} size {size} rate {rate} Mpps", scenario.name())
                        })?;
                    eprintln!(
                        "bench: {:<22} size {size:>5} offered {:>6.3} Mpps delivered {:>6.3} Mpps loss {:>9} cpu(all) {:>6.2} s/Mpkt cpu(tool) {:>6.2} s/Mpkt",
                        scenario.name(),
                        result.offered_pps / 1e6,
                        result.delivered_pps / 1e6,
                        result.loss,
                        result.cpu_all_per_mpkt(),
                        result.cpu_tool_per_mpkt()
                    );
                    results.push(result);
                }
            }
        }
    }
    crate::report::write(&args.out, &results, &args)
}

/// Where a results file goes.
pub fn results_dir(out: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    out.join(format!("run-{secs}"))
}
