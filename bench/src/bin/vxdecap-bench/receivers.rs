//! Receivers the harness needs besides vxdecap and tcpdump: the XDP_DROP
//! ceiling (and an XDP_PASS program that lets a veth accept redirected
//! frames for the skb-path tools), and a bare AF_XDP receive loop that
//! counts frames without decapsulating them.

use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aya::maps::PerCpuArray;
use aya::programs::{Xdp, XdpMode};
use aya::EbpfLoader;
use vxdecap::steer::{AttachRequest, Steering};
use vxdecap::wire::PortSet;
use vxdecap_xsk::{RxSocket, SocketConfig};

static DROP: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/drop.bpf.o"));

/// What a receiver counted.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ReceiverReport {
    /// Frames the receiver got.
    pub delivered: u64,
    /// Frames it knows it lost (kernel socket drops).
    pub drops: u64,
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    Ok(stop)
}

/// What the bench's XDP program does with every frame.
#[derive(Clone, Debug)]
pub(crate) enum XdpAction {
    /// Count and drop.
    Drop,
    /// Count and pass to the kernel.
    Pass,
    /// Count and redirect to this interface with these destination and
    /// source MACs (the rig's cheapest forwarder).
    Redirect { interface: String, macs: [u8; 12] },
}

/// Destination and source MACs (`aa:bb:…`) as the 12 bytes that start a frame.
pub(crate) fn mac_pair(dst: &str, src: &str) -> anyhow::Result<[u8; 12]> {
    let mut out = [0u8; 12];
    for (half, text) in out.chunks_exact_mut(6).zip([dst, src]) {
        let bytes: Vec<u8> = text
            .split(':')
            .map(|b| u8::from_str_radix(b, 16))
            .collect::<Result<_, _>>()
            .with_context(|| format!("MAC {text:?}"))?;
        anyhow::ensure!(bytes.len() == 6, "MAC {text:?}: six bytes");
        half.copy_from_slice(&bytes);
    }
    Ok(out)
}

/// Attaches the drop, pass or redirect program in driver mode until SIGINT; counts frames.
pub(crate) fn xdp_program(interface: &str, action: &XdpAction) -> anyhow::Result<ReceiverReport> {
    let stop = stop_flag()?;
    let mut loader = EbpfLoader::new();
    let (ifindex, macs) = match action {
        XdpAction::Redirect { interface, macs } => (
            nix::net::if_::if_nametoindex(interface.as_str())
                .with_context(|| format!("interface {interface}"))?,
            *macs,
        ),
        _ => (0, [0; 12]),
    };
    loader
        .override_global("redirect_ifindex", &ifindex, true)
        .override_global("redirect_macs", &macs, true);
    let mut ebpf = loader
        .load(DROP)
        .context("load the drop program (root needed)")?;
    let name = match action {
        XdpAction::Drop => "vxdecap_bench_drop",
        XdpAction::Pass => "vxdecap_bench_pass",
        XdpAction::Redirect { .. } => "vxdecap_bench_redirect",
    };
    let program: &mut Xdp = ebpf.program_mut(name).context("program")?.try_into()?;
    program.load()?;
    program
        .attach(interface, XdpMode::Driver)
        .with_context(|| format!("attach to {interface}"))?;
    eprintln!("vxdecap-bench: listening on {interface} ({name})");
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let counts: PerCpuArray<_, u64> = PerCpuArray::try_from(ebpf.map("dropped").context("map")?)?;
    Ok(ReceiverReport {
        delivered: counts.get(&0, 0)?.iter().sum(),
        drops: 0,
    })
}

/// How the bare AF_XDP receiver waits on an empty ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum IdlePolicy {
    /// Spin for about a millisecond, then sleep in poll().
    Spin,
    /// Sleep in poll() at once.
    Sleep,
    /// Yield the CPU for about a millisecond, then sleep in poll().
    Yield,
}

/// Bare AF_XDP receive on queue 0 with vxdecap's steering: count, recycle,
/// nothing else.
pub(crate) fn xsk_count(
    interface: &str,
    cpu: usize,
    policy: IdlePolicy,
) -> anyhow::Result<ReceiverReport> {
    let stop = stop_flag()?;
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    let mut steering = Steering::load(interface, &PortSet::default())?;
    steering.attach(AttachRequest::Auto)?;
    let mut socket = RxSocket::open(interface, 0, &SocketConfig::default(), 64)?;
    steering.register_socket(0, socket.as_raw_fd())?;
    eprintln!(
        "vxdecap-bench: listening on {interface} (bare AF_XDP, {} mode, {policy:?} when idle)",
        socket.bind_mode()
    );
    let spin = match policy {
        IdlePolicy::Sleep => Duration::ZERO,
        IdlePolicy::Spin | IdlePolicy::Yield => Duration::from_millis(1),
    };
    let mut delivered = 0u64;
    let mut idle_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let batch = socket.rx_batch();
        if !batch.is_empty() {
            delivered += batch.len() as u64;
            idle_since = None;
            continue;
        }
        drop(batch);
        if idle_since.get_or_insert_with(Instant::now).elapsed() < spin {
            match policy {
                IdlePolicy::Yield => std::thread::yield_now(),
                _ => std::hint::spin_loop(),
            }
        } else {
            let _ = socket.wait(50);
        }
    }
    steering.unregister_socket(0)?;
    loop {
        let batch = socket.rx_batch();
        if batch.is_empty() {
            break;
        }
        delivered += batch.len() as u64;
    }
    let stats = socket.statistics()?;
    Ok(ReceiverReport {
        delivered,
        drops: stats.rx_ring_full + stats.rx_dropped,
    })
}
