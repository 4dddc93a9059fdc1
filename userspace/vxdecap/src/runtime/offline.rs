//! Offline decapsulation: a pcap or pcapng capture (a file or stdin) pushed
//! through the same batch loop, stage, queues and analyzers as live capture
//! ([`FileSource`] waits for the analyzers instead of dropping).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use vxdecap_wire::reassembly::{Reassembler, ReassemblyConfig};
use vxdecap_wire::PortSet;

use crate::analyzer::Analyzer;
use crate::analyzer::MAX_ANALYZERS;
use crate::datapath::analyzers::{spawn_analyzers, Latency};
use crate::datapath::queue::fan_out;
use crate::datapath::source::FileSource;
use crate::datapath::stage::DecapStage;
use crate::datapath::worker::BatchLoop;
use crate::input::CaptureInput;
use crate::report::summary::Summary;
use crate::runtime::error::CaptureError;
use crate::runtime::preflight::SetupError;

/// Offline batches: frames up to this many bytes in all (a larger frame is kept cut and counted).
const OFFLINE_BATCH_BYTES: usize = 256 * 1024;
const OFFLINE_BATCH_FRAMES: usize = 64;
const OFFLINE_BATCHES: usize = 32;

/// Decapsulates every packet of `input` into `analyzers`; stops early
/// after `count` frames written, or when `stop` is raised. A damaged or cut input ends the run with
/// the summary of what was read (its `input` report says why).
pub fn run_offline(
    input: CaptureInput,
    output_name: &str,
    ports: PortSet,
    analyzers: Vec<Box<dyn Analyzer>>,
    count: Option<u64>,
    reassembly: Option<ReassemblyConfig>,
    stop: Arc<AtomicBool>,
) -> Result<Summary, CaptureError> {
    if analyzers.is_empty() || analyzers.len() > MAX_ANALYZERS {
        return Err(CaptureError::Analyzers(analyzers.len()));
    }
    let (mut senders, receivers) = fan_out(1, analyzers.len(), OFFLINE_BATCHES);
    let mut stage = DecapStage::new(
        ports,
        0,
        senders.remove(0),
        usize::MAX,
        OFFLINE_BATCH_FRAMES,
        Arc::clone(&stop),
    );
    if let Some(config) = reassembly {
        let reassembler = Reassembler::new(config).map_err(SetupError::Reassembly)?;
        stage = stage.with_reassembler(reassembler);
    }
    let threads = spawn_analyzers(receivers, analyzers, count, &stop, Latency::Skip, &[]).map_err(
        |source| CaptureError::Thread {
            what: "the analyzer threads",
            source,
        },
    )?;

    // The worker's batch loop, over the file: it waits for the analyzers
    // instead of dropping frames, and ends with the input.
    let mut source = FileSource::new(input, &stop, OFFLINE_BATCH_BYTES, OFFLINE_BATCH_FRAMES);
    let mut work = BatchLoop::new(stage, OFFLINE_BATCH_FRAMES, None);
    work.run(&mut source, &stop);
    let stage = work.finish();
    let name = source.name().to_owned();
    let report = source.into_report();
    let stats = *stage.stats();
    let vnis = *stage.vnis();
    drop(stage); // closes the queues: the analyzers drain and finish
    let reports = threads
        .into_iter()
        .map(|t| (t.name.clone(), t.join()))
        .collect();
    Ok(Summary::offline(
        &name,
        output_name,
        stats,
        &vnis,
        reports,
        report,
    ))
}
