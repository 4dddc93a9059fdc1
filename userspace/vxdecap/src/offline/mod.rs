//! Offline decapsulation: a pcap or pcapng file pushed through the same
//! stage, queue and analyzers as live capture (lossless: the reader waits
//! for the analyzer instead of dropping).

mod same_file;

pub use same_file::{check_outputs_spare_input, FileId};

use std::fs::File;
use std::io::{BufReader, Read};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;
use vxdecap_wire::reassembly::{Reassembler, ReassemblyConfig};
use vxdecap_wire::PortSet;

use crate::analyzer::Analyzer;
use crate::pipeline::{spawn_analyzers, Latency};
use crate::queue::{fan_out, MAX_ANALYZERS};
use crate::stage::{Backpressure, DecapStage};
use crate::summary::Summary;

/// Offline batches: frames up to this many bytes in all (a larger frame is kept cut and counted).
const OFFLINE_BATCH_BYTES: usize = 256 * 1024;
const OFFLINE_BATCH_FRAMES: usize = 64;
const OFFLINE_BATCHES: usize = 32;

/// Decapsulates every frame of `input` (pcap or pcapng, Ethernet) into
/// `analyzers`; stops early after `count` frames written.
pub fn run_offline(
    input: &str,
    output_name: &str,
    ports: PortSet,
    analyzers: Vec<Box<dyn Analyzer>>,
    count: Option<u64>,
    reassembly: Option<ReassemblyConfig>,
) -> anyhow::Result<Summary> {
    let mut file = BufReader::new(
        File::open(input).with_context(|| format!("cannot read {input}: check the path"))?,
    );
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .with_context(|| format!("{input} is too short to be a capture file"))?;
    let file = std::io::Cursor::new(magic).chain(file);

    if analyzers.is_empty() || analyzers.len() > MAX_ANALYZERS {
        bail!(
            "{} analyzers given: a run feeds 1 to {MAX_ANALYZERS}",
            analyzers.len()
        );
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
        let reassembler =
            Reassembler::new(config).map_err(|e| anyhow::anyhow!("reassembly settings: {e}"))?;
        stage = stage.with_reassembler(reassembler);
    }
    stage.stock_owned(OFFLINE_BATCH_BYTES, OFFLINE_BATCH_FRAMES, 0);
    let threads = spawn_analyzers(receivers, analyzers, count, &stop, Latency::Skip, &[])
        .context("cannot start the analyzer threads")?;

    let read = match magic {
        [0x0a, 0x0d, 0x0d, 0x0a] => read_pcapng(file, input, &mut stage, &stop),
        _ => read_pcap(file, input, &mut stage, &stop),
    };
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
    read?;
    Ok(Summary::offline(input, output_name, stats, &vnis, reports))
}

fn stopped(stop: &AtomicBool) -> bool {
    stop.load(std::sync::atomic::Ordering::Relaxed)
}

fn read_pcap(
    file: impl Read,
    input: &str,
    stage: &mut DecapStage,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut reader =
        PcapReader::new(file).with_context(|| format!("{input} is not a pcap or pcapng file"))?;
    let datalink = reader.header().datalink;
    if datalink != DataLink::ETHERNET {
        bail!("{input} has link type {datalink:?}: only Ethernet (EN10MB) captures carry VXLAN frames");
    }
    while let Some(packet) = reader.next_packet() {
        let packet = packet.with_context(|| format!("{input}: corrupt packet record"))?;
        stage.handle_copy(
            &packet.data,
            packet.timestamp.as_nanos() as u64,
            packet.orig_len as usize,
        );
        if stopped(stop) {
            break;
        }
    }
    Ok(())
}

fn read_pcapng(
    file: impl Read,
    input: &str,
    stage: &mut DecapStage,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut reader =
        PcapNgReader::new(file).with_context(|| format!("{input} is not a valid pcapng file"))?;
    // Per interface: (is Ethernet, timestamp units per second).
    let mut interfaces: Vec<(bool, u64)> = Vec::new();
    while let Some(block) = reader.next_block() {
        let block = block.with_context(|| format!("{input}: corrupt pcapng block"))?;
        match block {
            Block::SectionHeader(_) => interfaces.clear(),
            Block::InterfaceDescription(idb) => {
                let mut units = 1_000_000u64; // default if_tsresol: microseconds
                for option in &idb.options {
                    if let InterfaceDescriptionOption::IfTsResol(r) = option {
                        units = if r & 0x80 == 0 {
                            10u64.checked_pow(u32::from(*r)).unwrap_or(u64::MAX)
                        } else {
                            1u64.checked_shl(u32::from(r & 0x7f)).unwrap_or(u64::MAX)
                        };
                    }
                }
                interfaces.push((idb.linktype == DataLink::ETHERNET, units));
            }
            Block::EnhancedPacket(epb) => {
                let Some(&(ethernet, units)) = interfaces.get(epb.interface_id as usize) else {
                    bail!(
                        "{input}: packet refers to undeclared interface {}",
                        epb.interface_id
                    );
                };
                if !ethernet {
                    bail!("{input}: interface {} is not Ethernet: only Ethernet captures carry VXLAN frames", epb.interface_id);
                }
                // pcap-file hands the raw timestamp over as if in nanoseconds.
                let raw = epb.timestamp.as_nanos();
                let ns = raw * 1_000_000_000 / u128::from(units.max(1));
                stage.handle_copy(&epb.data, ns as u64, epb.original_len as usize);
            }
            Block::SimplePacket(spb) => {
                // No timestamp in a simple packet block.
                stage.handle_copy(&spb.data, 0, spb.original_len as usize);
            }
            _ => {}
        }
        if stopped(stop) {
            break;
        }
    }
    Ok(())
}
