//! A fixed amount of hot-path work, for instruction counts per packet:
//!
//! ```text
//! valgrind --tool=callgrind target/release/vxdecap-decap-loop decap 1000000
//! valgrind --tool=callgrind target/release/vxdecap-decap-loop decap 0
//! ```
//! (Ir of the first − Ir of the second) / 1,000,000 = instructions per packet.
//! `decap` runs `decapsulate` alone (`geneve-decap` on GENEVE(VXLAN) frames carrying the same
//! inner frames); `stage` (`geneve-stage`) runs the stage's per-frame
//! path with a copy into the batch (decap, counters, copy, batch hand-over
//! and return, as offline replay does), single-threaded. The live path
//! leases UMEM frames instead of copying and needs a socket: the harness
//! (`vxdecap-bench run`) measures it.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark prints its result"
)]

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use vxdecap::datapath::queue::fan_out;
use vxdecap::datapath::stage::DecapStage;
use vxdecap_wire::{decapsulate, PortSet};

/// `decapsulate` as a call of its own: every field of the result is written (into the
/// caller's memory), none can be left out because the loop reads only two.
#[inline(never)]
fn decapsulate_whole<'a>(
    frame: &'a [u8],
    ports: &PortSet,
) -> Result<vxdecap_wire::Decapsulated<'a>, vxdecap_wire::Reject> {
    decapsulate(frame, ports)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "decap".into());
    let n: u64 = args
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // `geneve-decap` / `geneve-stage`: the same inner frames as AWS Traffic Mirroring through
    // a Gateway Load Balancer endpoint sends them (GENEVE with the AWS options around VXLAN).
    let geneve = mode.starts_with("geneve-");
    let mode = mode.trim_start_matches("geneve-").to_owned();
    let frames: Vec<Vec<u8>> = (0..16)
        .map(|i| {
            if geneve {
                vxdecap_bench::geneve_vxlan_frame(
                    56 + i,
                    [0xff; 6],
                    std::net::Ipv4Addr::new(10, 0, 2, 4),
                    std::net::Ipv4Addr::new(10, 1, 1, 4),
                )
            } else {
                vxdecap_bench::sample_frame(14 + i)
            }
        })
        .collect();
    let ports = PortSet::default();
    match mode.as_str() {
        "decap" => {
            let mut acc = 0u64;
            for i in 0..n {
                if let Ok(d) = decapsulate_whole(black_box(&frames[(i % 16) as usize]), &ports) {
                    acc = acc.wrapping_add(u64::from(d.vni) + d.inner.len() as u64);
                }
            }
            println!("{acc}");
        }
        "stage" => {
            let (mut senders, mut receivers) = fan_out(1, 1, 4);
            let stop = Arc::new(AtomicBool::new(false));
            let mut stage = DecapStage::new(ports, 0, senders.remove(0), usize::MAX, 64, stop);
            stage.stock_owned(64 * 2048, 64, 0);
            let mut seen = 0u64;
            for i in 0..n {
                stage.handle_copy(black_box(&frames[(i % 16) as usize]), i, 0);
                if i % 64 == 63 {
                    stage.flush();
                    stage.publish();
                    while let Some(batch) = receivers[0].pop(0) {
                        seen += batch.len() as u64;
                        receivers[0].release(batch);
                    }
                    stage.reclaim(|_| {});
                }
            }
            println!("{seen}");
        }
        other => {
            eprintln!("mode {other}: use decap, stage, geneve-decap or geneve-stage");
            std::process::exit(2);
        }
    }
}
