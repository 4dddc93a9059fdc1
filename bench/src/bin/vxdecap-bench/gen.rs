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

/// Mirrors `struct gen_state` in bench/xdp/trafficgen.bpf.c.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct GenState {
    sent: u64,
    start_ns: u64,
}

// SAFETY: two u64 fields, no padding; any bit pattern is valid.
unsafe impl aya::Pod for GenState {}

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
        .override_global("pps", &args.pps, true)
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
    let state: PerCpuArray<_, GenState> = PerCpuArray::try_from(ebpf.map("state").context("map")?)?;

    // Each call costs tens of milliseconds of setup, so calls are large; the
    // program itself paces (token bucket) when a rate is asked for.
    let chunk: u64 = 1 << 16;
    let deadline = Duration::from_secs_f64(args.duration);
    let started = Instant::now();
    let sent_so_far =
        || -> anyhow::Result<u64> { Ok(state.get(&0, 0)?.iter().map(|s| s.sent).sum()) };
    'send: loop {
        for (frame, share) in &frames {
            for _ in 0..*share {
                let mut repeat = chunk;
                if args.count > 0 {
                    let sent = sent_so_far()?;
                    if sent >= args.count {
                        break 'send;
                    }
                    if args.pps == 0 {
                        repeat = repeat.min(args.count - sent);
                    }
                }
                let options = TestRunOptions {
                    data_in: Some(frame),
                    repeat: repeat as u32,
                    attrs: TestRunAttrs::new().xdp_live_frames(LIVE_BATCH),
                    ..Default::default()
                };
                program
                    .test_run(options)
                    .context("BPF_PROG_TEST_RUN live frames")?;
                if started.elapsed() >= deadline && args.count == 0 {
                    break 'send;
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(GenReport {
        sent: sent_so_far()?,
        seconds,
    })
}
