//! Offline decapsulation: a pcap or pcapng capture (a file or stdin) pushed
//! through the same stage, queue and analyzers as live capture (lossless:
//! the reader waits for the analyzer instead of dropping).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use vxdecap_wire::reassembly::{Reassembler, ReassemblyConfig};
use vxdecap_wire::PortSet;

use crate::analyzer::Analyzer;
use crate::analyzer::MAX_ANALYZERS;
use crate::datapath::analyzers::{spawn_analyzers, Latency};
use crate::datapath::queue::fan_out;
use crate::datapath::stage::{Backpressure, DecapStage};
use crate::input::CaptureInput;
use crate::report::summary::Summary;
use crate::runtime::error::CaptureError;
use crate::runtime::preflight::SetupError;

/// Offline batches: frames up to this many bytes in all (a larger frame is kept cut and counted).
const OFFLINE_BATCH_BYTES: usize = 256 * 1024;
const OFFLINE_BATCH_FRAMES: usize = 64;
const OFFLINE_BATCHES: usize = 32;

/// Decapsulates every packet of `input` into `analyzers`; stops early
/// after `count` frames written. A damaged or cut input ends the run with
/// the summary of what was read (its `input` report says why).
pub fn run_offline(
    input: CaptureInput,
    output_name: &str,
    ports: PortSet,
    analyzers: Vec<Box<dyn Analyzer>>,
    count: Option<u64>,
    reassembly: Option<ReassemblyConfig>,
) -> Result<Summary, CaptureError> {
    if analyzers.is_empty() || analyzers.len() > MAX_ANALYZERS {
        return Err(CaptureError::Analyzers(analyzers.len()));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (mut senders, receivers) = fan_out(1, analyzers.len(), OFFLINE_BATCHES);
    let mut stage = DecapStage::new(
        ports,
        0,
        senders.remove(0),
        usize::MAX,
        OFFLINE_BATCH_FRAMES,
        Backpressure::Wait,
        stop.clone(),
    );
    if let Some(config) = reassembly {
        let reassembler = Reassembler::new(config).map_err(SetupError::Reassembly)?;
        stage = stage.with_reassembler(reassembler);
    }
    stage.stock_owned(OFFLINE_BATCH_BYTES, OFFLINE_BATCH_FRAMES, 0);
    let threads = spawn_analyzers(receivers, analyzers, count, &stop, Latency::Skip, &[]).map_err(
        |source| CaptureError::Thread {
            what: "the analyzer threads",
            source,
        },
    )?;

    let source = input.name().to_owned();
    let report = input.read(&stop, |packet| {
        stage.handle_captured(
            packet.data,
            packet.link,
            packet.timestamp_ns,
            packet.orig_len,
        );
    });
    stage.finish_fragments();
    stage.flush();
    stage.publish();
    let stats = *stage.stats_mut();
    let vnis = *stage.vnis();
    drop(stage); // closes the queues: the analyzers drain and finish
    let reports = threads
        .into_iter()
        .map(|t| (t.name.clone(), t.join()))
        .collect();
    Ok(Summary::offline(
        &source,
        output_name,
        stats,
        &vnis,
        reports,
        report,
    ))
}
