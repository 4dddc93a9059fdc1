//! A fixed amount of hot-path work, for instruction counts per packet:
//!
//! ```text
//! valgrind --tool=callgrind target/release/vxdecap-decap-loop decap 1000000
//! valgrind --tool=callgrind target/release/vxdecap-decap-loop decap 0
//! ```
//! (Ir of the first − Ir of the second) / 1,000,000 = instructions per packet.
//! `decap` runs `decapsulate` alone; `stage` runs the worker's whole
//! per-frame path (decap, counters, copy into the analyzer batch, batch
//! hand-over and return), single-threaded.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use vxdecap::queue::frame_channel;
use vxdecap::stage::{Backpressure, DecapStage};
use vxdecap_wire::{decapsulate, PortSet};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "decap".into());
    let n: u64 = args
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let frames: Vec<Vec<u8>> = (0..16)
        .map(|i| vxdecap_bench::sample_frame(14 + i))
        .collect();
    let ports = PortSet::default();
    match mode.as_str() {
        "decap" => {
            let mut acc = 0u64;
            for i in 0..n {
                if let Ok(d) = decapsulate(black_box(&frames[(i % 16) as usize]), &ports) {
                    acc = acc.wrapping_add(u64::from(d.vni) + d.inner.len() as u64);
                }
            }
            println!("{acc}");
        }
        "stage" => {
            let (producer, mut consumer) = frame_channel(4, 64 * 2048, 64);
            let stop = Arc::new(AtomicBool::new(false));
            let mut stage = DecapStage::new(ports, 0, producer, Backpressure::Drop, stop);
            let mut seen = 0u64;
            for i in 0..n {
                stage.handle(black_box(&frames[(i % 16) as usize]), i);
                if i % 64 == 63 {
                    stage.flush();
                    stage.publish();
                    while let Some(batch) = consumer.pop() {
                        seen += batch.len() as u64;
                        consumer.release(batch);
                    }
                }
            }
            println!("{seen}");
        }
        other => {
            eprintln!("mode {other}: use decap or stage");
            std::process::exit(2);
        }
    }
}
