//! Top talkers per VNI, printed every second: a small analyzer embedded
//! through vxdecap's library API.
//!
//! ```text
//! sudo cargo run --release --example top_talkers -- eth1 [SECONDS]
//! ```
//! Try it in the lab: `sudo vxdecap lab --keep`, then in another shell
//! `sudo ip netns exec <prefix>-coll target/release/examples/top_talkers eth1 30`
//! and make requests as the lab suggests.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example prints what it finds"
)]

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vxdecap::wire::{ethernet::EtherType, ipv4, ipv6, vlan};
use vxdecap::{Analyzer, Capture, Frames};

/// Inner source addresses per VNI: frames and bytes. One instance lives
/// on its own analyzer thread, so plain collections need no lock.
struct TopTalkers {
    talkers: HashMap<(u32, IpAddr), (u64, u64)>,
    last_print: Instant,
}

impl TopTalkers {
    fn new() -> Self {
        Self {
            talkers: HashMap::new(),
            last_print: Instant::now(),
        }
    }

    fn print(&mut self) {
        let mut vnis: Vec<u32> = self.talkers.keys().map(|(vni, _)| *vni).collect();
        vnis.sort_unstable();
        vnis.dedup();
        for vni in vnis {
            let mut rows: Vec<(IpAddr, u64, u64)> = self
                .talkers
                .iter()
                .filter(|((v, _), _)| *v == vni)
                .map(|((_, ip), (frames, bytes))| (*ip, *frames, *bytes))
                .collect();
            rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
            let top: Vec<String> = rows
                .iter()
                .take(5)
                .map(|(ip, frames, bytes)| format!("{ip} {frames} frames {bytes} bytes"))
                .collect();
            println!("vni {vni}: {}", top.join("; "));
        }
        self.last_print = Instant::now();
    }
}

/// The inner frame's IP source address (Ethernet, up to two VLAN tags),
/// read through vxdecap's zero-copy header views: each checks its length
/// once, and no accessor can panic after that.
fn inner_source(frame: &[u8]) -> Option<IpAddr> {
    let (ethertype, at) = vlan::skip_tags(frame, 2)?;
    let ip = frame.get(at..)?;
    match ethertype {
        EtherType::IPV4 => Some(ipv4::Packet::new_checked(ip).ok()?.src_addr().into()),
        EtherType::IPV6 => Some(ipv6::Packet::new_checked(ip).ok()?.src_addr().into()),
        _ => None,
    }
}

impl Analyzer for TopTalkers {
    fn name(&self) -> &'static str {
        "top_talkers"
    }

    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        for frame in frames.iter() {
            if let Some(src) = inner_source(frame.bytes) {
                let entry = self.talkers.entry((frame.meta.vni, src)).or_default();
                entry.0 += 1;
                entry.1 += u64::from(frame.meta.orig_len);
            }
        }
        if self.last_print.elapsed() >= Duration::from_secs(1) {
            self.print();
        }
        Ok(())
    }

    fn on_idle(&mut self) -> io::Result<()> {
        if self.last_print.elapsed() >= Duration::from_secs(1) && !self.talkers.is_empty() {
            self.print();
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        println!("final:");
        self.print();
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    // What the capture tells as it runs (`listening on …`, warnings) are
    // tracing events: print them on stderr.
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_target(false)
        .init();
    let mut args = std::env::args().skip(1);
    let interface = args.next().unwrap_or_else(|| "eth1".into());
    let seconds: f64 = args.next().map_or(Ok(10.0), |s| s.parse())?;
    let capture = Capture::builder(&interface)
        .duration(Duration::from_secs_f64(seconds))
        .analyzer(TopTalkers::new())
        .build()?;
    let stop = capture.stop_handle();
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop)?;
    let summary = capture.run()?;
    eprint!("{}", summary.render());
    Ok(())
}
