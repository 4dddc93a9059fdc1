//! The traffic generator: BPF_PROG_TEST_RUN in live-frames mode with an XDP
//! program that redirects every frame out of the sender's veth.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aya::maps::PerCpuArray;
use aya::programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp};
use aya::EbpfLoader;
use vxdecap_bench::{vxlan_frame, IMIX, INNER_SPORT_OFFSET, OUTER_SPORT_OFFSET};

static TRAFFICGEN: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/trafficgen.bpf.o"));
/// Frames the kernel processes per batch in live-frames mode.
const LIVE_BATCH: u32 = 64;

/// What to send.
#[derive(Clone, Debug, clap::Args)]
pub struct GenArgs {
    /// Interface to send out of (the sender's veth).
    #[arg(long)]
    pub interface: String,
    /// Destination MAC (the receiving veth's).
    #[arg(long)]
    pub dst_mac: String,
    /// Outer source address.
    #[arg(long, default_value = "10.77.0.1")]
    pub src: Ipv4Addr,
    /// Outer destination address.
    #[arg(long, default_value = "10.77.0.2")]
    pub dst: Ipv4Addr,
    /// Inner frame size in bytes (≥ 64), or `imix`.
    #[arg(long, default_value = "64")]
    pub size: String,
    /// Distinct flows (outer and inner UDP source ports).
    #[arg(long, default_value_t = 1024)]
    pub flows: u32,
    /// Frames per second; 0 sends flat out.
    #[arg(long, default_value_t = 0)]
    pub pps: u64,
    /// Seconds to send for.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Stop after this many frames (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
}

/// What was sent.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct GenReport {
    /// Frames the program redirected.
    pub sent: u64,
    /// Seconds spent sending.
    pub seconds: f64,
}

fn parse_mac(text: &str) -> anyhow::Result<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{text} is not a MAC address"))
}

/// The frames to cycle through, each with its share of every round.
fn frames(args: &GenArgs, dst_mac: [u8; 6]) -> anyhow::Result<Vec<(Vec<u8>, u32)>> {
    if args.size == "imix" {
        return Ok(IMIX
            .iter()
            .map(|&(size, share)| (vxlan_frame(size, dst_mac, args.src, args.dst), share))
            .collect());
    }
    let size: usize = args
        .size
        .parse()
        .context("--size takes a byte count or imix")?;
    if !(64..=3000).contains(&size) {
        bail!("--size {size}: use 64 to 3000 bytes");
    }
    Ok(vec![(vxlan_frame(size, dst_mac, args.src, args.dst), 1)])
}

/// Sends as asked and reports what went out.
pub fn run(args: &GenArgs) -> anyhow::Result<GenReport> {
    let ifindex = nix::net::if_::if_nametoindex(args.interface.as_str())
        .with_context(|| format!("no interface {}", args.interface))?;
    let frames = frames(args, parse_mac(&args.dst_mac)?)?;
    let outer = OUTER_SPORT_OFFSET as u32;
    let inner = INNER_SPORT_OFFSET as u32;
    let mut ebpf = EbpfLoader::new()
        .override_global("tx_ifindex", &ifindex, true)
        .override_global("flows", &args.flows.max(1), true)
        .override_global("outer_sport_offset", &outer, true)
        .override_global("inner_sport_offset", &inner, true)
        .load(TRAFFICGEN)
        .context("load the generator program (root needed)")?;
    let program: &mut Xdp = ebpf
        .program_mut("vxdecap_trafficgen")
        .context("program")?
        .try_into()?;
    program.load().context("verify the generator program")?;
    let program: &Xdp = ebpf
        .program("vxdecap_trafficgen")
        .context("program")?
        .try_into()?;
    let sent_map: PerCpuArray<_, u64> = PerCpuArray::try_from(ebpf.map("sent").context("map")?)?;

    // Paced: chunks of about a millisecond of traffic; flat out: large chunks.
    let chunk = if args.pps > 0 {
        (args.pps / 1000).clamp(64, 1 << 20) as u32
    } else {
        1 << 16
    };
    let deadline = Duration::from_secs_f64(args.duration);
    let started = Instant::now();
    let mut issued = 0u64;
    'send: loop {
        for (frame, share) in &frames {
            for _ in 0..*share {
                let mut repeat = chunk;
                if args.count > 0 {
                    if issued >= args.count {
                        break 'send;
                    }
                    repeat = repeat.min((args.count - issued) as u32);
                }
                let options = TestRunOptions {
                    data_in: Some(frame),
                    repeat,
                    attrs: TestRunAttrs::new().xdp_live_frames(LIVE_BATCH),
                    ..Default::default()
                };
                program
                    .test_run(options)
                    .context("BPF_PROG_TEST_RUN live frames")?;
                issued += u64::from(repeat);
                if args.pps > 0 {
                    let due = Duration::from_secs_f64(issued as f64 / args.pps as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                if started.elapsed() >= deadline && args.count == 0 {
                    break 'send;
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let sent = sent_map.get(&0, 0)?.iter().sum();
    Ok(GenReport { sent, seconds })
}
