//! `vxdecap lab`: the Azure vTAP demo on one machine.
//!
//! ```text
//!  client ns            app ns (monitored VM)                 collector ns
//!  eth0 10.0.2.5 ─veth─ eth0 10.0.2.4  HTTP :80
//!                         │ tc clsact ingress+egress: mirred mirror
//!                         ▼
//!                       vxtap (VXLAN VNI 27, remote 10.1.1.4)
//!                       und0 10.1.1.5 ───────────veth────────── eth1 10.1.1.4
//!                                                               vxdecap capture -i eth1
//! ```
//! Azure copies both directions of a NIC's traffic into VXLAN towards the
//! collector; here `tc ... action mirred egress mirror` does the copying
//! and a kernel VXLAN device the encapsulation.
//!
//! `--scenario accelnet` makes the collector's `eth1` an Accelerated
//! Networking stack, modelled as in tests/accelnet.rs: `eth1` is a bridge
//! (netvsc's stand-in) with a synthetic port `eth1syn` (peer `und0`) and a
//! VF port `eth1vf` with eth1's MAC (peer `undvf`), over which the app
//! routes the mirror while it exists. Between rounds of requests the VF goes
//! away (the data path switched to `eth1syn` first, as netvsc does) and
//! comes back as `eth1vf2`.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the lab is a command: it prints its transcript"
)]

pub mod netns;
pub mod scenarios;

use std::io::{Read as _, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::input::CaptureInput;

use crate::analyzer::dissect::{describe, time_of_day};
use crate::lab::netns::{veth_pair, ChildGuard, NetNs, WatchedChild};

/// Addresses of the lab, as in the Azure vTAP demo.
pub const APP_ADDR: &str = "10.0.2.4";
/// The client that talks to the app.
pub const CLIENT_ADDR: &str = "10.0.2.5";
/// The collector, where vxdecap runs.
pub const COLLECTOR_ADDR: &str = "10.1.1.4";
/// The app's underlay address (source of the mirrored VXLAN).
pub const APP_UNDERLAY_ADDR: &str = "10.1.1.5";
/// The VNI of the mirror session.
pub const LAB_VNI: u32 = 27;
/// The collector's MAC in the `accelnet` scenario (the bridge's and its VF's).
pub const ACCELNET_MAC: &str = "02:a5:c0:11:ec:01";

/// Lab options.
#[derive(Clone, Debug)]
pub struct LabConfig {
    /// HTTP GETs the client makes.
    pub requests: u32,
    /// Keep the lab and the capture running until Ctrl-C.
    pub keep: bool,
    /// Write the inner pcap here (kept); otherwise a temporary file is used and removed.
    pub write: Option<PathBuf>,
    /// `--mode` passed to the capture.
    pub mode: String,
    /// The `accelnet` scenario: VF servicing on the collector.
    pub accelnet: bool,
}

/// The lab's namespaces; dropping it tears everything down.
#[derive(Debug)]
pub struct LabTopology {
    /// The client namespace.
    pub client: NetNs,
    /// The monitored app VM.
    pub app: NetNs,
    /// The collector VM.
    pub collector: NetNs,
}

impl LabTopology {
    /// Builds the three namespaces, links, VXLAN device and mirror; with
    /// `accelnet`, the collector's `eth1` is a bridge with a synthetic and
    /// a VF port.
    pub fn create(prefix: &str, accelnet: bool) -> anyhow::Result<Self> {
        let client = NetNs::create(&format!("{prefix}-client"))?;
        let app = NetNs::create(&format!("{prefix}-app"))?;
        let collector = NetNs::create(&format!("{prefix}-coll"))?;
        veth_pair(&client, "eth0", &app, "eth0")?;
        if accelnet {
            collector.ip(&["link", "add", "eth1", "type", "bridge"])?;
            collector.ip(&["link", "set", "eth1", "address", ACCELNET_MAC])?;
            veth_pair(&app, "und0", &collector, "eth1syn")?;
            collector.ip(&["link", "set", "eth1syn", "master", "eth1"])?;
            collector.ip(&["link", "set", "eth1syn", "up"])?;
        } else {
            veth_pair(&app, "und0", &collector, "eth1")?;
        }
        client.configure("eth0", &format!("{CLIENT_ADDR}/24"))?;
        app.configure("eth0", &format!("{APP_ADDR}/24"))?;
        app.configure("und0", &format!("{APP_UNDERLAY_ADDR}/24"))?;
        collector.configure("eth1", &format!("{COLLECTOR_ADDR}/24"))?;
        if accelnet {
            route_to_collector(&app, "und0", "20")?;
            add_vf(&app, &collector, "eth1vf", "undvf")?;
        }
        let vni = LAB_VNI.to_string();
        let mut vxlan = vec![
            "link",
            "add",
            "vxtap",
            "type",
            "vxlan",
            "id",
            &vni,
            "remote",
            COLLECTOR_ADDR,
            "local",
            APP_UNDERLAY_ADDR,
            "dstport",
            "4789",
        ];
        // With a VF the route chooses the underlay device.
        if !accelnet {
            vxlan.extend(["dev", "und0"]);
        }
        app.ip(&vxlan)?;
        app.ip(&["link", "set", "vxtap", "up"])?;
        // Mirror both directions of the app's NIC, as vTAP does. A u32 filter
        // matching everything is used instead of matchall, which some
        // kernels (this CI's among them) are built without.
        app.run("tc", &["qdisc", "add", "dev", "eth0", "clsact"])?;
        for direction in ["ingress", "egress"] {
            let filter = format!(
                "filter add dev eth0 {direction} protocol all u32 match u32 0 0 \
                 action mirred egress mirror dev vxtap"
            );
            app.run("tc", &filter.split_whitespace().collect::<Vec<_>>())?;
        }
        Ok(Self {
            client,
            app,
            collector,
        })
    }
}

/// The app's route to the collector over `dev` with `metric`, and a static
/// neighbour there (the collector's MAC).
fn route_to_collector(app: &NetNs, dev: &str, metric: &str) -> anyhow::Result<()> {
    app.ip(&[
        "neigh",
        "replace",
        COLLECTOR_ADDR,
        "lladdr",
        ACCELNET_MAC,
        "dev",
        dev,
        "nud",
        "permanent",
    ])?;
    app.ip(&[
        "route",
        "add",
        COLLECTOR_ADDR,
        "dev",
        dev,
        "metric",
        metric,
        "src",
        APP_UNDERLAY_ADDR,
    ])?;
    Ok(())
}

/// The `accelnet` VF: `vf` in the collector with eth1's MAC, enslaved to
/// eth1; its peer `peer` in the app, carrying the mirror (metric 10).
fn add_vf(app: &NetNs, collector: &NetNs, vf: &str, peer: &str) -> anyhow::Result<()> {
    veth_pair(app, peer, collector, vf)?;
    collector.ip(&["link", "set", vf, "address", ACCELNET_MAC])?;
    collector.ip(&["link", "set", vf, "master", "eth1"])?;
    collector.ip(&["link", "set", vf, "up"])?;
    app.ip(&["link", "set", peer, "up"])?;
    route_to_collector(app, peer, "10")
}

/// AF_XDP sockets open in `ns` (the `XDP` row of /proc/net/protocols).
fn xdp_sockets(ns: &NetNs) -> Option<u64> {
    let out = ns.run("cat", &["/proc/net/protocols"]).ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("XDP "))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
}

/// Host servicing on the `accelnet` collector: the data path leaves the VF
/// (the app's route over it goes), the VF is deleted, and a new one comes
/// back as `eth1vf2`; returns once the capture has bound it (two sockets:
/// the synthetic port's and the VF's).
fn service_the_vf(lab: &LabTopology) -> anyhow::Result<()> {
    eprintln!("lab: servicing: the data path leaves the VF eth1vf, which is removed");
    lab.app
        .ip(&["route", "del", COLLECTOR_ADDR, "dev", "undvf"])?;
    std::thread::sleep(Duration::from_millis(20));
    lab.collector.ip(&["link", "del", "eth1vf"])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while xdp_sockets(&lab.collector) != Some(1) {
        if Instant::now() > deadline {
            bail!("the capture kept a socket on the removed VF");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn vf_back(lab: &LabTopology) -> anyhow::Result<()> {
    eprintln!("lab: the VF comes back as eth1vf2 (new ifindex, same MAC)");
    veth_pair(&lab.app, "undvf2", &lab.collector, "eth1vf2")?;
    lab.collector
        .ip(&["link", "set", "eth1vf2", "address", ACCELNET_MAC])?;
    lab.collector
        .ip(&["link", "set", "eth1vf2", "master", "eth1"])?;
    lab.collector.ip(&["link", "set", "eth1vf2", "up"])?;
    lab.app.ip(&["link", "set", "undvf2", "up"])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while xdp_sockets(&lab.collector) != Some(2) {
        if Instant::now() > deadline {
            bail!("the capture did not bind the VF that came back");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The socket exists; the capture's main thread puts it in the XSKMAP
    // within its 20 ms loop.
    std::thread::sleep(Duration::from_millis(200));
    route_to_collector(&lab.app, "undvf2", "10")
}

/// A change to the lab between rounds of requests.
type LabStep = fn(&LabTopology) -> anyhow::Result<()>;

/// Runs the lab and prints the decapsulated conversation; returns the
/// capture summary lines and the conversation.
pub fn run_lab(config: &LabConfig, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the vxdecap executable")?;
    let exe = exe
        .to_str()
        .context("the vxdecap path is not UTF-8")?
        .to_owned();
    let prefix = netns::unique_name("lab");
    eprintln!("lab: building namespaces {prefix}-client, {prefix}-app, {prefix}-coll");
    let lab = LabTopology::create(&prefix, config.accelnet)?;

    let temp_pcap;
    let pcap_path = if let Some(path) = &config.write {
        path.clone()
    } else {
        temp_pcap = TempFile(std::env::temp_dir().join(format!("{prefix}-inner.pcap")));
        temp_pcap.0.clone()
    };
    let pcap_arg = pcap_path
        .to_str()
        .context("pcap path is not UTF-8")?
        .to_owned();

    let listen = format!("{APP_ADDR}:80");
    let server = ChildGuard::new(
        lab.app
            .command(&exe, &["lab-http-server", "--listen", &listen])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the lab HTTP server")?,
    );

    eprintln!("lab: starting vxdecap capture -i eth1 in {prefix}-coll");
    let capture_cmd = lab.collector.command(
        &exe,
        &[
            "capture",
            "-i",
            "eth1",
            "-w",
            &pcap_arg,
            "--mode",
            &config.mode,
        ],
    );
    let mut capture = WatchedChild::spawn(
        capture_cmd,
        &["listening on"],
        Duration::from_secs(20),
        Some("  [capture] "),
    )
    .context("the capture did not start (see its messages above)")?;
    wait_for_http(&lab, &exe, &listen)?;

    let rounds: &[Option<LabStep>] = if config.accelnet {
        &[None, Some(service_the_vf), Some(vf_back)]
    } else {
        &[None]
    };
    for (round, step) in rounds.iter().enumerate() {
        if let Some(step) = step {
            step(&lab)?;
        }
        let first = round as u32 * config.requests;
        eprintln!(
            "lab: client {CLIENT_ADDR} sends {} HTTP GET(s) to {APP_ADDR}",
            config.requests
        );
        let gets = lab.client.run(
            &exe,
            &[
                "lab-http-get",
                "--server",
                &listen,
                "--count",
                &config.requests.to_string(),
                "--first",
                &first.to_string(),
            ],
        )?;
        eprint!("{}", String::from_utf8_lossy(&gets.stdout));
    }

    if config.keep {
        eprintln!(
            "lab: running; more requests: `ip netns exec {prefix}-client {exe} lab-http-get --server {APP_ADDR}:80 --count 5`; Ctrl-C to stop and tear down."
        );
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    } else {
        // Let the last mirrored frames cross the underlay.
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = capture.stop(nix::sys::signal::Signal::SIGINT)?.status;
    drop(server);
    if !status.success() {
        bail!("the capture exited with {status}");
    }

    println!("Decapsulated inner conversation (VNI {LAB_VNI}, from {pcap_arg}):");
    print_pcap(&pcap_path, &mut std::io::stdout())?;
    drop(lab);
    eprintln!("lab: torn down");
    Ok(())
}

fn wait_for_http(lab: &LabTopology, exe: &str, listen: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = lab.app.run(
            exe,
            &[
                "lab-http-get",
                "--server",
                listen,
                "--count",
                "0",
                "--probe",
            ],
        );
        if probe.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the lab HTTP server did not come up on {listen}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Prints one line per frame of a pcap file.
pub fn print_pcap(path: &std::path::Path, out: &mut impl Write) -> anyhow::Result<usize> {
    let name = path.to_str().context("the lab's pcap path is not UTF-8")?;
    let input = CaptureInput::open(name)?;
    let mut line = String::new();
    let mut n = 0;
    let mut written = Ok(());
    let report = input.read(&AtomicBool::new(false), |packet| {
        n += 1;
        line.clear();
        time_of_day(packet.timestamp_ns, &mut line);
        line.push(' ');
        describe(packet.data, &mut line);
        if written.is_ok() {
            written = writeln!(out, "{n:4} {line}");
        }
    });
    written?;
    if let Some(e) = report.error {
        bail!("{e}");
    }
    Ok(n)
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The lab app's HTTP server: answers every GET with 200 and a short body.
pub fn http_server(listen: SocketAddr) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16_384 {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let body = "Hello from the monitored app VM\n";
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
    }
    Ok(())
}

/// The lab client: a GET of `/pageN` for each N of `pages`, printing each
/// status line.
pub fn http_get(
    server: SocketAddr,
    pages: std::ops::Range<u32>,
    probe: bool,
) -> anyhow::Result<()> {
    if probe {
        TcpStream::connect_timeout(&server, Duration::from_millis(500))?;
        return Ok(());
    }
    for i in pages {
        let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(3))
            .with_context(|| format!("cannot connect to {server}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        let request = format!(
            "GET /page{i} HTTP/1.1\r\nHost: {}\r\nUser-Agent: vxdecap-lab\r\n\r\n",
            server.ip()
        );
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response.lines().next().unwrap_or("(no response)");
        println!("GET /page{i} -> {status}");
    }
    Ok(())
}
