//! The traffic generator: BPF_PROG_TEST_RUN in live-frames mode with an XDP
//! program that redirects every frame out of the sender's veth.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use aya::maps::PerCpuArray;
use aya::programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp};
use aya::EbpfLoader;
use vxdecap_bench::{Encap, IMIX, OUTER_SPORT_OFFSET};

static TRAFFICGEN: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/trafficgen.bpf.o"));
/// Frames the kernel processes per batch in live-frames mode.
const LIVE_BATCH: u32 = 64;

/// What to send.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct GenArgs {
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
    /// How the inner frame is wrapped: `vxlan`, or `geneve-vxlan` (AWS Traffic Mirroring
    /// through a Gateway Load Balancer endpoint; fixed sizes only, not imix).
    #[arg(long, default_value = "vxlan")]
    pub encap: String,
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
    /// Runs of the program per BPF_PROG_TEST_RUN call.
    #[arg(long, default_value_t = DEFAULT_FRAMES_PER_CALL)]
    pub frames_per_call: u32,
    /// Measure the per-call setup cost instead of sending for a duration.
    #[arg(long)]
    pub calibrate: bool,
    /// Write the outer Ethernet and IPv4 headers back before every frame:
    /// for receivers that forward, and so rewrite the page that is sent again.
    #[arg(long)]
    pub restore_outer: bool,
}

/// Mirrors `struct gen_state` in bench/xdp/trafficgen.bpf.c.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct GenState {
    sent: u64,
    start_ns: u64,
    last_ns: u64,
    done: u64,
    due_ps: u64,
}

// SAFETY: five u64 fields, no padding; any bit pattern is valid.
unsafe impl aya::Pod for GenState {}

/// Limits of the program's variant tables (`MAX_*` in trafficgen.bpf.c).
const MAX_VARIANTS: usize = 4;
const MAX_PATCHES: usize = 8;
const MAX_SCHEDULE: usize = 16;

/// Runs of the program per BPF_PROG_TEST_RUN call by default: each call
/// costs about 25 ms of setup, so with 2^24 runs (about 2.5 s at 7 Mpps)
/// the setup is about 1 % of the time (measured by `gen --calibrate`).
pub(crate) const DEFAULT_FRAMES_PER_CALL: u32 = 1 << 24;

/// What was sent.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct GenReport {
    /// Frames the program redirected.
    pub sent: u64,
    /// Seconds from the first frame sent to the last (the program's clock).
    pub seconds: f64,
    /// BPF_PROG_TEST_RUN calls made.
    pub calls: u64,
    /// Seconds spent in those calls, as seen from user space.
    pub call_seconds: f64,
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

fn encap(args: &GenArgs) -> anyhow::Result<Encap> {
    match args.encap.as_str() {
        "vxlan" => Ok(Encap::Vxlan),
        "geneve-vxlan" => Ok(Encap::GeneveVxlan),
        other => bail!("--encap {other}: use vxlan or geneve-vxlan"),
    }
}

/// The frames to send, each with its share of every round.
fn frames(args: &GenArgs, dst_mac: [u8; 6]) -> anyhow::Result<Vec<(Vec<u8>, u32)>> {
    let encap = encap(args)?;
    let mut frames = if args.size == "imix" {
        IMIX.iter()
            .map(|&(size, share)| (encap.frame(size, dst_mac, args.src, args.dst), share))
            .collect()
    } else {
        let size: usize = args
            .size
            .parse()
            .context("--size takes a byte count or imix")?;
        if !(64..=3000).contains(&size) {
            bail!("--size {size}: use 64 to 3000 bytes");
        }
        vec![(encap.frame(size, dst_mac, args.src, args.dst), 1)]
    };
    let port = encap.inner_sport_offset();
    // The program rewrites the inner UDP source port per frame; without a
    // checksum (0 is valid over IPv4) every rewritten frame stays valid.
    for (frame, _) in &mut frames {
        frame[port + 6..port + 8].fill(0);
    }
    Ok(frames)
}

/// The program's variant tables: the longest frame is the test frame, and
/// each variant is a prefix of it with some 16-bit words changed.
#[derive(Debug, Default)]
struct Variants {
    base: Vec<u8>,
    len: [u32; MAX_VARIANTS],
    patch_off: [[u16; MAX_PATCHES]; MAX_VARIANTS],
    patch_val: [[u16; MAX_PATCHES]; MAX_VARIANTS],
    schedule: [u8; MAX_SCHEDULE],
    schedule_len: u32,
}

impl Variants {
    fn new(frames: &[(Vec<u8>, u32)]) -> anyhow::Result<Self> {
        if frames.is_empty() || frames.len() > MAX_VARIANTS {
            bail!("1 to {MAX_VARIANTS} frame variants");
        }
        let base = frames
            .iter()
            .map(|(f, _)| f)
            .max_by_key(|f| f.len())
            .context("a frame")?
            .clone();
        let mut v = Self {
            base,
            ..Self::default()
        };
        for (i, (frame, _)) in frames.iter().enumerate() {
            v.len[i] = frame.len() as u32;
            let mut n = 0;
            for off in (0..frame.len() & !1).step_by(2) {
                if frame[off..off + 2] != v.base[off..off + 2] {
                    if n == MAX_PATCHES || off == 0 {
                        bail!("frame variant {i} differs from the longest in too many places");
                    }
                    v.patch_off[i][n] = off as u16;
                    // Written as stored: network byte order is the frame's own.
                    v.patch_val[i][n] = u16::from_ne_bytes([frame[off], frame[off + 1]]);
                    n += 1;
                }
            }
        }
        // Interleave the shares (7:4:1 → a round of 12) so every short
        // stretch of traffic has the mix, not long runs of one size.
        let total: u32 = frames.iter().map(|(_, s)| s).sum();
        if total as usize > MAX_SCHEDULE {
            bail!("frame shares add up to more than {MAX_SCHEDULE}");
        }
        let mut given = vec![0u32; frames.len()];
        for slot in 0..total {
            // The variant furthest behind its share gets the slot.
            let pick = (0..frames.len())
                .max_by(|&a, &b| {
                    let lag = |i: usize| {
                        f64::from(frames[i].1) * f64::from(slot + 1) / f64::from(total)
                            - f64::from(given[i])
                    };
                    lag(a).total_cmp(&lag(b))
                })
                .context("a variant")?;
            given[pick] += 1;
            v.schedule[slot as usize] = pick as u8;
        }
        v.schedule_len = total;
        Ok(v)
    }
}

/// Sends as asked and reports what went out.
pub(crate) fn run(args: &GenArgs) -> anyhow::Result<GenReport> {
    let ifindex = nix::net::if_::if_nametoindex(args.interface.as_str())
        .with_context(|| format!("no interface {}", args.interface))?;
    let frames = frames(args, parse_mac(&args.dst_mac)?)?;
    let variants = Variants::new(&frames)?;
    let outer = OUTER_SPORT_OFFSET as u32;
    let inner = encap(args)?.inner_sport_offset() as u32;
    let count = frames.len() as u32;
    let duration_ns = if args.count > 0 && args.duration <= 0.0 {
        0
    } else {
        (args.duration * 1e9) as u64
    };
    let restore = u32::from(args.restore_outer);
    let longest = frames
        .iter()
        .map(|(f, _)| f)
        .max_by_key(|f| f.len())
        .context("a frame")?;
    let mut outer_header = [0u16; 17];
    for (word, pair) in outer_header.iter_mut().zip(longest.chunks_exact(2)) {
        *word = u16::from_ne_bytes([pair[0], pair[1]]);
    }
    let mut ebpf = EbpfLoader::new()
        .override_global("tx_ifindex", &ifindex, true)
        .override_global("restore_outer", &restore, true)
        .override_global("outer_header", &outer_header, true)
        .override_global("flows", &args.flows.max(1), true)
        .override_global("pps", &args.pps, true)
        .override_global("duration_ns", &duration_ns, true)
        .override_global("max_frames", &args.count, true)
        .override_global("outer_sport_offset", &outer, true)
        .override_global("inner_sport_offset", &inner, true)
        .override_global("variants", &count, true)
        .override_global("variant_len", &variants.len, true)
        .override_global("patch_off", &variants.patch_off, true)
        .override_global("patch_val", &variants.patch_val, true)
        .override_global("schedule_len", &variants.schedule_len, true)
        .override_global("schedule", &variants.schedule, true)
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
    let read_state = || -> anyhow::Result<GenState> {
        let all = state.get(&0, 0)?;
        // The generator runs pinned to one CPU; sum in case it moved.
        Ok(all
            .iter()
            .filter(|s| s.start_ns != 0)
            .fold(GenState::default(), |acc, s| GenState {
                sent: acc.sent + s.sent,
                start_ns: if acc.start_ns == 0 {
                    s.start_ns
                } else {
                    acc.start_ns.min(s.start_ns)
                },
                last_ns: acc.last_ns.max(s.last_ns),
                done: acc.done | s.done,
                due_ps: 0,
            }))
    };

    // Few, large calls: the program decides what is sent and when to stop.
    let per_call = args.frames_per_call.max(LIVE_BATCH);
    let mut calls = 0u64;
    let started = Instant::now();
    // A safety net in case the program never reports done (a count never reached).
    let give_up = Duration::from_secs_f64(args.duration.max(0.0) + 60.0);
    loop {
        // A count-limited run makes no call much longer than what is left to send.
        let repeat = match args.count {
            0 => per_call,
            count => {
                let left = count.saturating_sub(read_state()?.sent);
                u32::try_from(left.div_ceil(u64::from(LIVE_BATCH)) * u64::from(LIVE_BATCH))
                    .unwrap_or(per_call)
                    .clamp(LIVE_BATCH, per_call)
            }
        };
        let options = TestRunOptions {
            data_in: Some(&variants.base),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(LIVE_BATCH),
            ..Default::default()
        };
        program
            .test_run(options)
            .context("BPF_PROG_TEST_RUN live frames")?;
        calls += 1;
        if read_state()?.done != 0 || started.elapsed() > give_up {
            break;
        }
    }
    let call_seconds = started.elapsed().as_secs_f64();
    let end = read_state()?;
    Ok(GenReport {
        sent: end.sent,
        seconds: end.last_ns.saturating_sub(end.start_ns) as f64 / 1e9,
        calls,
        call_seconds,
    })
}

/// The fixed cost of one BPF_PROG_TEST_RUN call, measured with calls of one
/// live batch, against the time per frame in large calls: what share of a
/// call of `frames_per_call` runs is setup.
pub(crate) fn calibrate(args: &GenArgs) -> anyhow::Result<serde_json::Value> {
    let mut small = args.clone();
    small.duration = 0.0;
    small.count = 0;
    let timed = |frames_per_call: u32, calls: u32| -> anyhow::Result<f64> {
        let mut a = small.clone();
        a.frames_per_call = frames_per_call;
        a.count = u64::from(frames_per_call) * u64::from(calls);
        a.duration = 0.0;
        let t = Instant::now();
        let report = run(&a)?;
        Ok(t.elapsed().as_secs_f64() / report.calls.max(1) as f64)
    };
    let per_small_call = timed(LIVE_BATCH, 200)?;
    let per_big_call = timed(args.frames_per_call, 3)?;
    Ok(serde_json::json!({
        "setup_seconds_per_call": per_small_call,
        "seconds_per_call": per_big_call,
        "frames_per_call": args.frames_per_call,
        "setup_share": per_small_call / per_big_call,
    }))
}
