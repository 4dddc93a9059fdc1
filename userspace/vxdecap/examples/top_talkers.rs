//! Top talkers per VNI, printed every second: a small analyzer embedded
//! through vxdecap's library API.
//!
//! ```text
//! sudo cargo run --release --example top_talkers -- eth1 [SECONDS]
//! ```
//! Try it in the lab: `sudo vxdecap lab --keep`, then in another shell
//! `sudo ip netns exec <prefix>-coll target/release/examples/top_talkers eth1 30`
//! and make requests as the lab suggests.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use vxdecap::{Analyzer, Capture, Frames, InnerFrame};

/// Inner source addresses per VNI: frames and bytes. One instance lives
/// on its own analyzer thread, so plain collections need no lock.
struct TopTalkers {
    talkers: HashMap<(u32, IpAddr), (u64, u64)>,
    last_print: Instant,
}

impl TopTalkers {
    fn new() -> Self {
        TopTalkers {
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

/// The inner frame's IP source address (Ethernet, up to two VLAN tags).
fn inner_source(frame: &[u8]) -> Option<IpAddr> {
    let mut at = 12;
    let mut ethertype = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
    while matches!(ethertype, 0x8100 | 0x88a8) && at < 20 {
        at += 4;
        ethertype = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
    }
    let ip = at + 2;
    match ethertype {
        0x0800 => {
            let src: [u8; 4] = frame.get(ip + 12..ip + 16)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(src)))
        }
        0x86dd => {
            let src: [u8; 16] = frame.get(ip + 8..ip + 24)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(src)))
        }
        _ => None,
    }
}

impl Analyzer for TopTalkers {
    fn name(&self) -> &str {
        "top_talkers"
    }

    fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
        for frame in frames.iter() {
            self.on_frame(&frame)?;
        }
        if self.last_print.elapsed() >= Duration::from_secs(1) {
            self.print();
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: &InnerFrame<'_>) -> io::Result<()> {
        if let Some(src) = inner_source(frame.bytes) {
            let entry = self.talkers.entry((frame.meta.vni, src)).or_default();
            entry.0 += 1;
            entry.1 += u64::from(frame.meta.orig_len);
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
    let mut args = std::env::args().skip(1);
    let interface = args.next().unwrap_or_else(|| "eth1".into());
    let seconds: f64 = args.next().map_or(Ok(10.0), |s| s.parse())?;
    let capture = Capture::builder(&interface)
        .duration(Duration::from_secs_f64(seconds))
        .analyzer(TopTalkers::new())
        .build()?;
    let stop = capture.stop_handle();
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop)?;
    let summary = capture.run()?;
    eprint!("{}", summary.render());
    Ok(())
}
