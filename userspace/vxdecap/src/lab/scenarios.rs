//! `vxdecap lab --scenario …`: the relay's deployments in namespaces.
//!
//! - `private-link`: a source VM with an HTTP server mirrored into kernel
//!   VXLAN → `vxdecap relay` → a "Private Link" hop that DNATs its
//!   endpoint to the collector and SNATs as the Private Link service does
//!   (nftables) → the collector running `vxdecap capture`, which prints the
//!   inner GET and 200 with the outer source it saw.
//! - `fanout`: two tapped VMs talking to each other (each mirrors both
//!   directions of its NIC, so every packet arrives twice), a relay, three
//!   collectors. Every flow lands whole on one collector; a collector
//!   stopped mid-run takes only its own flows elsewhere.
//! - `ilb`: the same VMs behind an nftables load balancer that hashes the
//!   outer header onto 2 collectors, as a cloud load balancer does (the
//!   half-flow problem); then with a tier of 2 relays behind that load
//!   balancer, which splits nothing.
//!
//! ```text
//!  vm-a eth0 10.0.2.4 ───────── vm-b eth0 10.0.2.5       (the conversation)
//!  vm-a und0 10.1.1.5 ─┐     ┌─ vm-b und0 10.1.1.6       (VXLAN mirrors, VNI 27)
//!                      br-u (fabric)─── relay/LB 10.1.1.10…
//!  relay 10.9.0.1 ─── br-c (fabric) ─── collectors 10.9.0.2, .3, .4
//! ```
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the lab is a command: it prints its transcript"
)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::input::CaptureInput;
use crate::lab::netns::{run, unique_name, veth_pair, NetNs, WatchedChild};

/// The VMs' addresses (inner) and underlay addresses.
const VM_A: &str = "10.0.2.4";
const VM_B: &str = "10.0.2.5";
const VM_A_UNDERLAY: &str = "10.1.1.5";
const VM_B_UNDERLAY: &str = "10.1.1.6";
/// Where the VMs' mirrors are sent: the relay, or the load balancer.
const MIRROR_TARGET: &str = "10.1.1.10";
/// The UDP echo service on vm-b the flows talk to.
const ECHO_PORT: u16 = 7777;
/// Flows per round (UDP source ports from 20000).
const FLOWS: u16 = 24;

/// A lab scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// vTAP → relay → Private Link (SNAT) → collector.
    PrivateLink,
    /// Relay → 3 collectors, one stopped mid-run.
    Fanout,
    /// Outer-hash load balancer → 2 collectors, then with 2 relays.
    Ilb,
}

impl std::str::FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "private-link" => Ok(Self::PrivateLink),
            "fanout" => Ok(Self::Fanout),
            "ilb" => Ok(Self::Ilb),
            _ => Err(format!(
                "unknown scenario {s:?}: private-link, fanout or ilb"
            )),
        }
    }
}

/// Runs `scenario` with the `vxdecap` at `exe` and prints its result.
pub fn run_scenario(scenario: Scenario, exe: &str) -> anyhow::Result<()> {
    match scenario {
        Scenario::PrivateLink => private_link(exe),
        Scenario::Fanout => fanout(exe),
        Scenario::Ilb => ilb(exe),
    }
}

/// A namespace per role, removed on drop (the fabric with the bridges last).
struct Lab {
    tag: String,
    namespaces: Vec<NetNs>,
}

impl Lab {
    fn new(scenario: &str) -> Self {
        let tag = unique_name("sc");
        eprintln!("lab {scenario}: namespaces {tag}-*");
        Self {
            tag,
            namespaces: Vec::new(),
        }
    }

    fn ns(&mut self, role: &str) -> anyhow::Result<usize> {
        self.namespaces
            .push(NetNs::create(&format!("{}-{role}", self.tag))?);
        Ok(self.namespaces.len() - 1)
    }

    fn get(&self, i: usize) -> &NetNs {
        &self.namespaces[i]
    }
}

fn configure(ns: &NetNs, dev: &str, addr: &str) -> anyhow::Result<()> {
    ns.configure(dev, addr)
}

/// `dev` in `ns` joins the bridge `bridge` of `fabric` through a veth whose
/// fabric end is `port` (with GRO on: a frame redirected into a veth by
/// XDP needs NAPI on its peer).
fn plug(fabric: &NetNs, bridge: &str, port: &str, ns: &NetNs, dev: &str) -> anyhow::Result<()> {
    veth_pair(fabric, port, ns, dev)?;
    fabric.ip(&["link", "set", port, "master", bridge])?;
    fabric.ip(&["link", "set", port, "up"])?;
    fabric.run("ethtool", &["-K", port, "gro", "on"])?;
    Ok(())
}

fn bridge(fabric: &NetNs, name: &str) -> anyhow::Result<()> {
    fabric.ip(&["link", "add", name, "type", "bridge"])?;
    fabric.ip(&["link", "set", name, "up"])?;
    Ok(())
}

/// Mirrors both directions of `ns`'s `dev` into a kernel VXLAN device
/// towards `remote`, as a vTAP does.
fn mirror(ns: &NetNs, dev: &str, local: &str, remote: &str, underlay: &str) -> anyhow::Result<()> {
    ns.ip(&[
        "link", "add", "vxtap", "type", "vxlan", "id", "27", "remote", remote, "local", local,
        "dstport", "4789", "dev", underlay,
    ])?;
    ns.ip(&["link", "set", "vxtap", "up"])?;
    ns.run("tc", &["qdisc", "add", "dev", dev, "clsact"])?;
    for direction in ["ingress", "egress"] {
        let filter = format!(
            "filter add dev {dev} {direction} protocol all u32 match u32 0 0 action mirred egress mirror dev vxtap"
        );
        ns.run("tc", &filter.split_whitespace().collect::<Vec<_>>())?;
    }
    Ok(())
}

fn forwarding(ns: &NetNs, dev: &str) -> anyhow::Result<()> {
    ns.run(
        "sysctl",
        &["-qw", &format!("net.ipv4.conf.{dev}.forwarding=1")],
    )?;
    Ok(())
}

fn watched(
    ns: &NetNs,
    exe: &str,
    args: &[&str],
    ready: &'static [&'static str],
    what: &str,
) -> anyhow::Result<WatchedChild> {
    WatchedChild::spawn(ns.command(exe, args), ready, Duration::from_secs(30), None)
        .with_context(|| format!("{what} did not start"))
}

/// Waits until `ns` has resolved `addr` (the relay's health probe does it).
fn wait_for_neighbour(ns: &NetNs, addr: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let o = ns.ip(&["neigh", "show", addr])?;
        if String::from_utf8_lossy(&o.stdout).contains("lladdr") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{addr} was never resolved in {}", ns.name())
}

/// The two tapped VMs, talking over eth0, mirroring to MIRROR_TARGET over
/// the fabric's `br-u`; vm-b runs the UDP echo service.
fn vms(lab: &mut Lab, fabric: usize, exe: &str) -> anyhow::Result<(usize, usize, WatchedChild)> {
    let a = lab.ns("vm-a")?;
    let b = lab.ns("vm-b")?;
    veth_pair(lab.get(a), "eth0", lab.get(b), "eth0")?;
    configure(lab.get(a), "eth0", &format!("{VM_A}/24"))?;
    configure(lab.get(b), "eth0", &format!("{VM_B}/24"))?;
    for (vm, addr) in [(a, VM_A_UNDERLAY), (b, VM_B_UNDERLAY)] {
        let port = format!("u{vm}");
        plug(lab.get(fabric), "br-u", &port, lab.get(vm), "und0")?;
        configure(lab.get(vm), "und0", &format!("{addr}/24"))?;
        mirror(lab.get(vm), "eth0", addr, MIRROR_TARGET, "und0")?;
    }
    let listen = format!("{VM_B}:{ECHO_PORT}");
    let echo = watched(
        lab.get(b),
        exe,
        &["lab-udp-echo", "--listen", &listen],
        &["echoing"],
        "the UDP echo service",
    )?;
    Ok((a, b, echo))
}

/// A collector on the fabric's `br-c` at `addr`, running `vxdecap capture`
/// into `pcap` with its metrics (and /healthz) on `addr`:9419.
fn collector(
    lab: &mut Lab,
    fabric: usize,
    exe: &str,
    n: usize,
    addr: &str,
    pcap: &str,
) -> anyhow::Result<WatchedChild> {
    let c = lab.ns(&format!("c{n}"))?;
    plug(
        lab.get(fabric),
        "br-c",
        &format!("c{n}"),
        lab.get(c),
        "eth1",
    )?;
    configure(lab.get(c), "eth1", &format!("{addr}/24"))?;
    let metrics = format!("{addr}:9419");
    watched(
        lab.get(c),
        exe,
        &[
            "capture",
            "-i",
            "eth1",
            "--mode",
            "skb",
            "-w",
            pcap,
            "--metrics",
            &metrics,
        ],
        &["listening on"],
        "a collector's capture",
    )
}

/// A relay at `inner`/24 on br-u and `outer`/24 on br-c, sending to `to`.
fn relay(
    lab: &mut Lab,
    fabric: usize,
    exe: &str,
    name: &str,
    inner: &str,
    outer: &str,
    to: &[&str],
) -> anyhow::Result<WatchedChild> {
    let r = lab.ns(name)?;
    plug(
        lab.get(fabric),
        "br-u",
        &format!("{name}i"),
        lab.get(r),
        "eth1",
    )?;
    plug(
        lab.get(fabric),
        "br-c",
        &format!("{name}o"),
        lab.get(r),
        "eth2",
    )?;
    configure(lab.get(r), "eth1", &format!("{inner}/24"))?;
    configure(lab.get(r), "eth2", &format!("{outer}/24"))?;
    forwarding(lab.get(r), "eth1")?;
    let mut args = vec![
        "relay",
        "-i",
        "eth1",
        "--mode",
        "skb",
        "--health-interval",
        "200",
    ];
    for t in to {
        args.extend_from_slice(&["--to", t]);
    }
    let child = watched(lab.get(r), exe, &args, &["relaying on"], "the relay")?;
    for t in to {
        wait_for_neighbour(lab.get(r), t)?;
    }
    Ok(child)
}

/// Round `round` of the UDP flows from vm-a to vm-b's echo service.
fn flows(lab: &Lab, vm_a: usize, exe: &str, round: &str) -> anyhow::Result<()> {
    let server = format!("{VM_B}:{ECHO_PORT}");
    let o = lab.get(vm_a).run(
        exe,
        &[
            "lab-udp-flows",
            "--server",
            &server,
            "--flows",
            &FLOWS.to_string(),
            "--tag",
            round,
        ],
    )?;
    eprint!("{}", String::from_utf8_lossy(&o.stdout));
    // Let the last mirrored copies cross the fabric and reach the captures' files.
    std::thread::sleep(Duration::from_secs(1));
    Ok(())
}

/// A conversation: the address and port pairs, each in order.
type FlowKey = ((Ipv4Addr, u16), (Ipv4Addr, u16));

/// For every UDP flow to or from the echo port in the inner frames of
/// `pcap`, the rounds (payload tags) it was seen in and how many frames.
fn flows_in(pcap: &str) -> anyhow::Result<BTreeMap<(FlowKey, String), u64>> {
    let mut out = BTreeMap::new();
    let input = CaptureInput::open(pcap)?;
    let report = input.read(&AtomicBool::new(false), |packet| {
        let f = packet.data;
        if f.len() < 14 + 20 + 8 || f[12..14] != [0x08, 0x00] || f[14 + 9] != 17 {
            return;
        }
        let ihl = usize::from(f[14] & 0x0f) * 4;
        let udp = 14 + ihl;
        let Some(h) = f.get(udp..udp + 8) else { return };
        let src = (
            Ipv4Addr::new(f[26], f[27], f[28], f[29]),
            u16::from_be_bytes([h[0], h[1]]),
        );
        let dst = (
            Ipv4Addr::new(f[30], f[31], f[32], f[33]),
            u16::from_be_bytes([h[2], h[3]]),
        );
        if src.1 != ECHO_PORT && dst.1 != ECHO_PORT {
            return;
        }
        let payload = String::from_utf8_lossy(&f[udp + 8..]);
        let tag = payload
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let key = if src <= dst { (src, dst) } else { (dst, src) };
        *out.entry((key, tag)).or_insert(0) += 1;
    });
    if let Some(e) = report.error {
        bail!("{pcap}: {e}");
    }
    Ok(out)
}

/// Where each flow of round `tag` went: flow → collectors (index into
/// `pcaps`) and the frames each got.
fn placement(
    per_collector: &[BTreeMap<(FlowKey, String), u64>],
    tag: &str,
) -> BTreeMap<FlowKey, BTreeMap<usize, u64>> {
    let mut out: BTreeMap<FlowKey, BTreeMap<usize, u64>> = BTreeMap::new();
    for (c, flows) in per_collector.iter().enumerate() {
        for ((key, t), n) in flows {
            if t == tag {
                *out.entry(*key).or_default().entry(c).or_insert(0) += n;
            }
        }
    }
    out
}

fn split_count(placed: &BTreeMap<FlowKey, BTreeMap<usize, u64>>) -> usize {
    placed.values().filter(|c| c.len() > 1).count()
}

fn frames(placed: &BTreeMap<FlowKey, BTreeMap<usize, u64>>) -> u64 {
    placed.values().flat_map(|c| c.values()).sum()
}

fn stop(child: &mut WatchedChild, what: &str) -> anyhow::Result<String> {
    let outcome = child.stop(nix::sys::signal::Signal::SIGINT)?;
    if !outcome.status.success() {
        bail!("{what} exited with {}:\n{}", outcome.status, outcome.stderr);
    }
    Ok(outcome.stderr)
}

fn temp_pcap(lab: &Lab, name: &str) -> String {
    std::env::temp_dir()
        .join(format!("{}-{name}.pcap", lab.tag))
        .to_string_lossy()
        .into_owned()
}

/// Removes the scenario's pcaps on drop.
struct Files(Vec<String>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn fanout(exe: &str) -> anyhow::Result<()> {
    let mut lab = Lab::new("fanout");
    let fabric = lab.ns("fabric")?;
    bridge(lab.get(fabric), "br-u")?;
    bridge(lab.get(fabric), "br-c")?;
    let (vm_a, _vm_b, mut echo) = vms(&mut lab, fabric, exe)?;
    let addrs = ["10.9.0.2", "10.9.0.3", "10.9.0.4"];
    let pcaps: Vec<String> = (1..=3).map(|n| temp_pcap(&lab, &format!("c{n}"))).collect();
    let _files = Files(pcaps.clone());
    let mut collectors = Vec::new();
    for (n, addr) in addrs.iter().enumerate() {
        collectors.push(collector(&mut lab, fabric, exe, n + 1, addr, &pcaps[n])?);
    }
    let mut relay = relay(
        &mut lab,
        fabric,
        exe,
        "relay",
        MIRROR_TARGET,
        "10.9.0.1",
        &addrs,
    )?;
    eprintln!(
        "lab fanout: round 1, {FLOWS} UDP flows between {VM_A} and {VM_B}, mirrored by both VMs"
    );
    flows(&lab, vm_a, exe, "r1")?;
    let gone = 1;
    eprintln!(
        "lab fanout: stopping the capture on collector {} (its /healthz goes away)",
        addrs[gone]
    );
    stop(&mut collectors[gone], "collector")?;
    std::thread::sleep(Duration::from_millis(1200));
    eprintln!("lab fanout: round 2, the same flows");
    flows(&lab, vm_a, exe, "r2")?;
    let relay_said = stop(&mut relay, "relay")?;
    for (n, c) in collectors.iter_mut().enumerate() {
        if n != gone {
            stop(c, "collector")?;
        }
    }
    let _ = echo.stop(nix::sys::signal::Signal::SIGTERM);
    eprint!("{relay_said}");

    let seen: Vec<_> = pcaps
        .iter()
        .map(|p| flows_in(p))
        .collect::<Result<_, _>>()?;
    let r1 = placement(&seen, "r1");
    let r2 = placement(&seen, "r2");
    let per = |placed: &BTreeMap<FlowKey, BTreeMap<usize, u64>>| {
        (0..addrs.len())
            .map(|c| {
                format!(
                    "{} {}",
                    addrs[c],
                    placed.values().filter(|p| p.contains_key(&c)).count()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let home = |p: &BTreeMap<usize, u64>| p.keys().next().copied();
    let moved: Vec<(Option<usize>, Option<usize>)> = r1
        .iter()
        .map(|(k, p)| (home(p), r2.get(k).and_then(home)))
        .filter(|(a, b)| a != b)
        .collect();
    let moved_own = moved.iter().filter(|(a, _)| *a == Some(gone)).count();
    println!(
        "round 1: {} flows, {} frames (both directions, both mirror copies); flows per collector: {}",
        r1.len(),
        frames(&r1),
        per(&r1)
    );
    println!(
        "round 1: {} flow(s) split across collectors",
        split_count(&r1)
    );
    println!(
        "collector {} stopped: the relay took it out of its table",
        addrs[gone]
    );
    println!(
        "round 2: {} flows, {} frames; flows per collector: {}",
        r2.len(),
        frames(&r2),
        per(&r2)
    );
    println!(
        "round 2: {} flow(s) split across collectors",
        split_count(&r2)
    );
    println!(
        "moved: {moved_own} flow(s) of the stopped collector, {} other flow(s)",
        moved.len() - moved_own
    );
    drop(lab);
    eprintln!("lab fanout: torn down");
    Ok(())
}

fn ilb(exe: &str) -> anyhow::Result<()> {
    let mut lab = Lab::new("ilb");
    let fabric = lab.ns("fabric")?;
    bridge(lab.get(fabric), "br-u")?;
    bridge(lab.get(fabric), "br-c")?;
    let (vm_a, _vm_b, mut echo) = vms(&mut lab, fabric, exe)?;
    // The load balancer: the VMs' mirror target, hashing the outer source address and port.
    let lb = lab.ns("lb")?;
    plug(lab.get(fabric), "br-u", "lbi", lab.get(lb), "eth1")?;
    plug(lab.get(fabric), "br-c", "lbo", lab.get(lb), "eth2")?;
    configure(lab.get(lb), "eth1", &format!("{MIRROR_TARGET}/24"))?;
    configure(lab.get(lb), "eth2", "10.9.0.1/24")?;
    lab.get(lb)
        .run("sysctl", &["-qw", "net.ipv4.conf.all.forwarding=1"])?;
    lab.get(lb)
        .run("sysctl", &["-qw", "net.ipv4.conf.all.send_redirects=0"])?;
    let addrs = ["10.9.0.2", "10.9.0.3"];
    let pcaps: Vec<String> = ["c1", "c2", "c1-relayed", "c2-relayed"]
        .iter()
        .map(|n| temp_pcap(&lab, n))
        .collect();
    let _files = Files(pcaps.clone());
    let mut collectors = Vec::new();
    for (n, addr) in addrs.iter().enumerate() {
        collectors.push(collector(&mut lab, fabric, exe, n + 1, addr, &pcaps[n])?);
    }
    let rules_file = temp_pcap(&lab, "rules").replace(".pcap", ".nft");
    // Health probes, as the cloud's load balancer makes them, before the pool is formed.
    let probes = lab.get(lb).spawn_in(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(addrs.map(|a| {
            let target = SocketAddr::from((a.parse::<Ipv4Addr>().expect("address"), 9419));
            rt.block_on(crate::relay::health::probe(target, Duration::from_secs(1)))
        }))
    })?;
    let probes = probes
        .join()
        .map_err(|_| anyhow::anyhow!("probe thread"))??;
    for (a, p) in addrs.iter().zip(&probes) {
        match p {
            Ok(()) => println!("load balancer: http://{a}:9419/healthz answers 200: in the pool"),
            Err(e) => bail!("collector {a} is not healthy: {e}"),
        }
    }
    balance(lab.get(lb), &rules_file, addrs)?;
    lab.get(lb).run("ping", &["-c1", "-W1", addrs[0]])?;
    lab.get(lb).run("ping", &["-c1", "-W1", addrs[1]])?;
    eprintln!(
        "lab ilb: {FLOWS} UDP flows, the load balancer hashing the outer header onto 2 collectors"
    );
    flows(&lab, vm_a, exe, "direct")?;

    // The relay tier: the same load balancer now spreads over 2 relays, each of which sends
    // every flow to the collector the inner flow hashes to.
    let mut relays = Vec::new();
    for (n, (inner, outer)) in [("10.1.1.11", "10.9.0.11"), ("10.1.1.12", "10.9.0.12")]
        .into_iter()
        .enumerate()
    {
        relays.push(relay(
            &mut lab,
            fabric,
            exe,
            &format!("r{n}"),
            inner,
            outer,
            &addrs,
        )?);
    }
    balance(lab.get(lb), &rules_file, ["10.1.1.11", "10.1.1.12"])?;
    lab.get(lb).run("ping", &["-c1", "-W1", "10.1.1.11"])?;
    lab.get(lb).run("ping", &["-c1", "-W1", "10.1.1.12"])?;
    eprintln!("lab ilb: the same flows, with 2 relays behind the load balancer");
    flows(&lab, vm_a, exe, "relayed")?;
    let mut said = String::new();
    for r in &mut relays {
        said.push_str(&stop(r, "relay")?);
    }
    for c in &mut collectors {
        stop(c, "collector")?;
    }
    let _ = echo.stop(nix::sys::signal::Signal::SIGTERM);
    eprint!("{said}");
    let seen: Vec<_> = pcaps[..2]
        .iter()
        .map(|p| flows_in(p))
        .collect::<Result<_, _>>()?;
    let direct = placement(&seen, "direct");
    let relayed = placement(&seen, "relayed");
    println!(
        "outer-header load balancing: {} of {} flows split across the 2 collectors (half-flows), {} frames",
        split_count(&direct),
        direct.len(),
        frames(&direct)
    );
    println!(
        "with the relay tier: {} of {} flows split, {} frames",
        split_count(&relayed),
        relayed.len(),
        frames(&relayed)
    );
    drop(lab);
    eprintln!("lab ilb: torn down");
    Ok(())
}

/// Makes `lb` send the mirrors to one of `targets` by a hash of the outer
/// source address and port, per packet and without state, as a cloud load
/// balancer's 5-tuple hash does (the destination rewritten before routing).
fn balance(lb: &NetNs, file: &str, targets: [&str; 2]) -> anyhow::Result<()> {
    let rules = format!(
        "flush ruleset\ntable ip ilb {{\n  chain pre {{ type filter hook prerouting priority raw; \
         ip daddr {MIRROR_TARGET} udp dport 4789 notrack ip daddr set jhash ip saddr . udp sport mod 2 map {{ 0 : {}, 1 : {} }}; }}\n}}\n",
        targets[0], targets[1]
    );
    std::fs::write(file, rules)?;
    let result = lb.run("nft", &["-f", file]);
    let _ = std::fs::remove_file(file);
    result.map(|_| ())
}

fn private_link(exe: &str) -> anyhow::Result<()> {
    let mut lab = Lab::new("private-link");
    let client = lab.ns("client")?;
    let vm = lab.ns("vm")?;
    let relay_ns = lab.ns("relay")?;
    let pl = lab.ns("pl")?;
    let coll = lab.ns("coll")?;
    veth_pair(lab.get(client), "eth0", lab.get(vm), "eth0")?;
    veth_pair(lab.get(vm), "und0", lab.get(relay_ns), "eth1")?;
    veth_pair(lab.get(relay_ns), "eth2", lab.get(pl), "pe0")?;
    veth_pair(lab.get(pl), "pls0", lab.get(coll), "eth1")?;
    configure(lab.get(client), "eth0", "10.0.2.5/24")?;
    configure(lab.get(vm), "eth0", "10.0.2.4/24")?;
    configure(lab.get(vm), "und0", "10.1.1.5/24")?;
    configure(lab.get(relay_ns), "eth1", "10.1.1.10/24")?;
    // The customer VNet's Private Endpoint is 10.3.0.2; the provider side of the Private Link
    // service NATs to 10.2.0.1; the collector is 10.2.0.4 in the provider VNet.
    configure(lab.get(relay_ns), "eth2", "10.3.0.1/24")?;
    configure(lab.get(pl), "pe0", "10.3.0.2/24")?;
    configure(lab.get(pl), "pls0", "10.2.0.1/24")?;
    configure(lab.get(coll), "eth1", "10.2.0.4/24")?;
    lab.get(pl).run("ethtool", &["-K", "pe0", "gro", "on"])?;
    lab.get(pl)
        .run("sysctl", &["-qw", "net.ipv4.conf.all.forwarding=1"])?;
    let rules = "table ip privatelink {\n  chain pre { type nat hook prerouting priority dstnat; ip daddr 10.3.0.2 udp dport 4789 dnat to 10.2.0.4; }\n  chain post { type nat hook postrouting priority srcnat; ip daddr 10.2.0.4 udp dport 4789 snat to 10.2.0.1; }\n}\n";
    let file = temp_pcap(&lab, "pl").replace(".pcap", ".nft");
    std::fs::write(&file, rules)?;
    let loaded = lab.get(pl).run("nft", &["-f", &file]);
    let _ = std::fs::remove_file(&file);
    loaded?;
    lab.get(pl).run("ping", &["-c1", "-W1", "10.2.0.4"])?;
    mirror(lab.get(vm), "eth0", "10.1.1.5", "10.1.1.10", "und0")?;
    forwarding(lab.get(relay_ns), "eth1")?;

    let mut server = watched(
        lab.get(vm),
        exe,
        &[
            "lab-udp-echo",
            "--listen",
            "10.0.2.4:7777",
            "--http",
            "10.0.2.4:80",
        ],
        &["echoing"],
        "the VM's HTTP server",
    )?;
    // No -w: the capture prints a line per inner frame with the outer addresses it saw.
    let mut capture = watched(
        lab.get(coll),
        exe,
        &["capture", "-i", "eth1", "--mode", "skb"],
        &["listening on"],
        "the collector's capture",
    )?;
    // The Private Endpoint forwards only the tunnel port: no health checks through it.
    let mut relay = watched(
        lab.get(relay_ns),
        exe,
        &[
            "relay",
            "-i",
            "eth1",
            "--mode",
            "skb",
            "--to",
            "10.3.0.2",
            "--no-health",
        ],
        &["relaying on"],
        "the relay",
    )?;
    wait_for_neighbour(lab.get(relay_ns), "10.3.0.2")?;
    eprintln!("lab private-link: client 10.0.2.5 GETs http://10.0.2.4/ on the mirrored VM");
    let get = lab.get(client).run(
        exe,
        &["lab-http-get", "--server", "10.0.2.4:80", "--count", "1"],
    )?;
    eprint!("{}", String::from_utf8_lossy(&get.stdout));
    std::thread::sleep(Duration::from_millis(400));
    let relay_said = stop(&mut relay, "relay")?;
    let outcome = capture.stop(nix::sys::signal::Signal::SIGINT)?;
    let _ = server.stop(nix::sys::signal::Signal::SIGTERM);
    eprint!("{relay_said}");
    if !outcome.status.success() {
        bail!(
            "the capture exited with {}:\n{}",
            outcome.status,
            outcome.stderr
        );
    }
    println!("At the collector (vni, outer source > outer destination, inner frame):");
    for line in outcome.stdout.lines().filter(|l| l.contains("HTTP")) {
        println!("{line}");
    }
    drop(lab);
    eprintln!("lab private-link: torn down");
    Ok(())
}

/// The lab's UDP echo service (`lab-udp-echo`): every datagram back to its
/// sender; with `http`, also the lab's HTTP server there.
pub fn udp_echo(listen: SocketAddr, http: Option<SocketAddr>) -> anyhow::Result<()> {
    let socket = UdpSocket::bind(listen).with_context(|| format!("cannot bind {listen}"))?;
    if let Some(http) = http {
        std::thread::spawn(move || super::http_server(http));
    }
    println!("echoing on {listen}");
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let _ = socket.send_to(&buf[..n], from);
    }
}

/// The lab's flows (`lab-udp-flows`): `flows` UDP sockets on ports 20000
/// and up each send `TAG flow N` to `server` and wait for the echo.
pub fn udp_flows(server: SocketAddr, flows: u16, tag: &str) -> anyhow::Result<()> {
    let mut answered = 0;
    for n in 0..flows {
        let socket = UdpSocket::bind(("0.0.0.0", 20_000 + n))
            .with_context(|| format!("cannot bind port {}", 20_000 + n))?;
        socket.set_read_timeout(Some(Duration::from_secs(1)))?;
        socket.send_to(format!("{tag} flow {n}").as_bytes(), server)?;
        let mut buf = [0u8; 256];
        if socket.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
    }
    println!("{tag}: {answered} of {flows} flows answered");
    if answered < flows {
        bail!("{} flow(s) got no echo", flows - answered);
    }
    Ok(())
}

/// Every namespace of a scenario is gone once it returns (test helper).
pub fn leftover_namespaces(pid: u32) -> Vec<String> {
    let Ok(o) = run("ip", &["netns", "list"]) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with(&format!("vxsc{pid}x")))
        .map(str::to_owned)
        .collect()
}
