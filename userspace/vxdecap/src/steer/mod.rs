//! Loads and attaches the XDP steering program (xdp-prog/) with aya.
//!
//! The program is attached through a BPF link, so the kernel detaches it
//! when the last reference goes away: when [`Steering`] is dropped, and
//! also when the process dies, even on SIGKILL.

use std::net::IpAddr;
use std::os::fd::RawFd;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, XskMap};
pub use aya::programs::xdp::XdpLinkId;
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use vxdecap_wire::{PortSet, RxMeta, MAX_PORTS};

pub mod allow;
mod counters;
pub mod relay;

pub use counters::{XdpCounter, XdpCounters};

use allow::Allowlist;

use crate::error::error_chain;

/// The XDP object compiled from xdp-prog/vxdecap.bpf.c by build.rs.
static XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vxdecap.bpf.o"));

/// Constants generated from xdp-prog/vxdecap_shared.h by build.rs.
#[allow(dead_code, reason = "not every constant has a Rust-side use")]
pub(crate) mod shared {
    include!(concat!(env!("OUT_DIR"), "/shared_constants.rs"));
}

/// Mirrors `VXD_MAX_QUEUES` in xdp-prog/vxdecap_shared.h: XSKMAP slots,
/// over all receive devices.
pub const MAX_QUEUES: u32 = 256;
/// Mirrors `VXD_MAX_DEVICES`: receive devices of one capture.
pub const MAX_DEVICES: usize = 16;

// The Rust side must agree with the shared header; a change on one side only fails the build.
const _: () = assert!(MAX_QUEUES as u64 == shared::VXD_MAX_QUEUES);
const _: () = assert!(MAX_DEVICES as u64 == shared::VXD_MAX_DEVICES);
const _: () = assert!(MAX_PORTS as u64 == shared::VXD_MAX_PORTS);
const _: () = assert!(XdpCounter::ALL.len() == shared::VXD_COUNTER_NAMES.len());
const _: () = assert!(RxMeta::LEN as u64 == shared::VXD_META_LEN);
const _: () = assert!(RxMeta::MAGIC as u64 == shared::VXD_META_MAGIC);
const _: () = assert!(RxMeta::TUNNEL_VXLAN as u64 == shared::VXD_TUNNEL_VXLAN);
const _: () = assert!(RxMeta::TUNNEL_GENEVE as u64 == shared::VXD_TUNNEL_GENEVE);

const _: () = assert!(allow::MAX_SOURCES as u64 == shared::VXD_MAX_ALLOW_SOURCES);
const _: () = assert!(allow::MAX_VNIS as u64 == shared::VXD_MAX_ALLOW_VNIS);
const PROGRAM: &str = "vxdecap_steer";
const FILTER_MAP: &str = "vxd_filter";
const ALLOW_V4_MAP: &str = "vxd_allow_v4";
const ALLOW_V6_MAP: &str = "vxd_allow_v6";
const ALLOW_VNI_MAP: &str = "vxd_allow_vni";
const XSK_MAP: &str = "vxd_xsks";
const COUNTER_MAP: &str = "vxd_counters";
const DEVICES_MAP: &str = "vxd_devices";
const DEVICE_STATS_MAP: &str = "vxd_device_stats";

/// What the program did with one receive device's steered frames
/// (`struct vxd_device_stats`, summed over CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// Handed to a socket of the device.
    pub redirected: u64,
    /// Matched, but no socket bound for the (device, queue): passed to the kernel.
    pub no_socket: u64,
}

impl DeviceCounters {
    /// Adds `other` (a program instance before this one).
    pub fn merge(&mut self, other: &Self) {
        self.redirected += other.redirected;
        self.no_socket += other.no_socket;
    }
}

/// How to attach the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachRequest {
    /// Driver (native) mode, else generic (SKB) mode.
    Auto,
    /// Driver mode or fail.
    Driver,
    /// Generic (SKB) mode.
    Skb,
}

/// The attach mode obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native XDP in the driver.
    Driver,
    /// Generic XDP in the kernel's receive path.
    Skb,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Driver => "driver",
            Self::Skb => "skb",
        })
    }
}

/// Steering setup failures, worded for the user.
#[derive(Debug, thiserror::Error)]
pub enum SteerError {
    /// The object would not load.
    #[error("cannot load the XDP program: {0} (run as root; the kernel needs BPF and XDP socket support)")]
    Load(String),
    /// No such interface.
    #[error("interface {0} does not exist: check the name with `ip link`")]
    NoInterface(String),
    /// Something else is attached already (a configuration problem for the
    /// user to fix: the command line exits 2).
    #[error(
        "another XDP program is already attached to {interface}: nothing was changed; \
         see it with `ip -d link show {interface}`: {detach}; or capture on another interface"
    )]
    Busy {
        /// Interface.
        interface: String,
        /// How to remove what is attached, for the mode found.
        detach: String,
    },
    /// The kernel refused the attach.
    #[error("cannot attach XDP to {interface} in {mode} mode: {detail}{hint}")]
    Attach {
        /// Interface.
        interface: String,
        /// Mode tried.
        mode: &'static str,
        /// Kernel's answer.
        detail: String,
        /// What to try.
        hint: &'static str,
    },
    /// Queue index beyond the XSKMAP.
    #[error("rx queue {0} is beyond the {MAX_QUEUES} queues vxdecap supports")]
    QueueRange(u32),
    /// Map update or read failed.
    #[error("XDP map {map}: {detail}")]
    Map {
        /// Map name.
        map: &'static str,
        /// What failed.
        detail: String,
    },
}

/// The loaded program: attached or not yet, with its maps.
pub struct Steering {
    ebpf: Ebpf,
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    allow: AllowMaps,
    /// `struct vxd_device` by ifindex: `[slot_base, queues, row, reserved]`.
    devices: HashMap<MapData, u32, [u32; 4]>,
    /// `struct vxd_device_stats` by row: `[redirected, no_socket]`.
    device_stats: PerCpuArray<MapData, [u64; 2]>,
    interface: String,
    mode: Option<AttachMode>,
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering")
            .field("interface", &self.interface)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Steering {
    /// Loads the program with `ports` configured; nothing is attached yet.
    pub fn load(interface: &str, ports: &PortSet) -> Result<Self, SteerError> {
        Self::load_with(interface, ports, false)
    }

    /// As [`Steering::load`]; with `steer_fragments`, outer IPv4 fragments
    /// of steered datagrams go to AF_XDP too (for reassembly in user space).
    pub fn load_with(
        interface: &str,
        ports: &PortSet,
        steer_fragments: bool,
    ) -> Result<Self, SteerError> {
        let (port_array, port_count) = port_globals(ports.as_slice());
        let (geneve_array, geneve_count) = port_globals(ports.geneve());
        let steer_fragments = u32::from(steer_fragments);
        let mut ebpf = EbpfLoader::new()
            .override_global("vxd_ports", &port_array, true)
            .override_global("vxd_port_count", &port_count, true)
            .override_global("vxd_geneve_ports", &geneve_array, true)
            .override_global("vxd_geneve_port_count", &geneve_count, true)
            .override_global("vxd_steer_fragments", &steer_fragments, true)
            .load(XDP_OBJECT)
            .map_err(|e| SteerError::Load(error_chain(&e)))?;
        xdp_program(&mut ebpf, PROGRAM)?
            .load()
            .map_err(|e| SteerError::Load(error_chain(&e)))?;
        let xsks = take_map(&mut ebpf, XSK_MAP)?;
        let counters = take_map(&mut ebpf, COUNTER_MAP)?;
        let allow = AllowMaps::take(&mut ebpf)?;
        let devices = take_map(&mut ebpf, DEVICES_MAP)?;
        let device_stats = take_map(&mut ebpf, DEVICE_STATS_MAP)?;
        let mut steering = Self {
            ebpf,
            xsks,
            counters,
            allow,
            devices,
            device_stats,
            interface: interface.to_owned(),
            mode: None,
        };
        // The named device's queues take the first slots, as before device
        // stacks; a capture over a stack sets its devices again.
        if let Ok(index) = nix::net::if_::if_nametoindex(interface) {
            steering.set_device(index, 0, MAX_QUEUES, 0)?;
        }
        Ok(steering)
    }

    /// Steers the rx queues `0..queues` of device `ifindex` to XSKMAP slots
    /// `slot_base..`, counting its frames in row `row` (below
    /// [`MAX_DEVICES`]) of the per-device counters. With `queues` 0 nothing
    /// is steered, and frames still arriving there are counted in its row
    /// as no_socket (a device that left the stack).
    pub fn set_device(
        &mut self,
        ifindex: u32,
        slot_base: u32,
        queues: u32,
        row: u32,
    ) -> Result<(), SteerError> {
        if slot_base.saturating_add(queues) > MAX_QUEUES {
            return Err(SteerError::QueueRange(slot_base.saturating_add(queues)));
        }
        if row as usize >= MAX_DEVICES {
            return Err(SteerError::Map {
                map: DEVICES_MAP,
                detail: format!("row {row} is beyond the {MAX_DEVICES} receive devices"),
            });
        }
        self.devices
            .insert(ifindex, [slot_base, queues, row, 0], 0)
            .map_err(|e| SteerError::Map {
                map: DEVICES_MAP,
                detail: error_chain(&e),
            })
    }

    /// Forgets device `ifindex` (deleted, or not ours): its frames are
    /// counted in the last row, with other devices without an entry.
    pub fn remove_device(&mut self, ifindex: u32) -> Result<(), SteerError> {
        match self.devices.remove(&ifindex) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(SteerError::Map {
                map: DEVICES_MAP,
                detail: error_chain(&e),
            }),
        }
    }

    /// The per-device counters, summed over CPUs, by row: one per receive
    /// device ([`MAX_DEVICES`]), then the row of devices without an entry.
    pub fn device_counters(&self) -> Vec<DeviceCounters> {
        (0..=MAX_DEVICES as u32)
            .map(|row| {
                let mut c = DeviceCounters::default();
                if let Ok(per_cpu) = self.device_stats.get(&row, 0) {
                    for [redirected, no_socket] in per_cpu.iter() {
                        c.redirected += redirected;
                        c.no_socket += no_socket;
                    }
                }
                c
            })
            .collect()
    }

    /// Attaches the program to one more device (a receive device of the
    /// stack other than the named one); the link is returned for [`Steering::detach`].
    pub fn attach_also(
        &mut self,
        interface: &str,
        request: AttachRequest,
    ) -> Result<(AttachMode, XdpLinkId), SteerError> {
        let (mode, link) = self.attach_to(interface, request)?;
        self.mode.get_or_insert(mode);
        Ok((mode, link))
    }

    /// Detaches a link made by [`Steering::attach_also`] (a no-op for a device that is gone).
    pub fn detach(&mut self, link: XdpLinkId) {
        if let Some(program) = self
            .ebpf
            .program_mut(PROGRAM)
            .and_then(|p| <&mut Xdp>::try_from(p).ok())
        {
            let _ = program.detach(link);
        }
    }

    /// Points rx queue `queue` at the AF_XDP socket `fd`.
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<(), SteerError> {
        if queue >= MAX_QUEUES {
            return Err(SteerError::QueueRange(queue));
        }
        let fd = BorrowedRawFd(fd);
        self.xsks.set(queue, fd, 0).map_err(|e| SteerError::Map {
            map: XSK_MAP,
            detail: error_chain(&e),
        })
    }

    /// Attaches the program to the interface through a BPF link.
    pub fn attach(&mut self, request: AttachRequest) -> Result<AttachMode, SteerError> {
        let interface = self.interface.clone();
        let (mode, _) = self.attach_to(&interface, request)?;
        self.mode = Some(mode);
        Ok(mode)
    }

    fn attach_to(
        &mut self,
        interface: &str,
        request: AttachRequest,
    ) -> Result<(AttachMode, XdpLinkId), SteerError> {
        attach_program(xdp_program(&mut self.ebpf, PROGRAM)?, interface, request)
    }

    /// Clears the socket of rx queue `queue`: its traffic goes back to the kernel.
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), SteerError> {
        self.xsks.unset(queue).map_err(|e| SteerError::Map {
            map: XSK_MAP,
            detail: error_chain(&e),
        })
    }

    /// Runs the loaded program once on `frame` (BPF_PROG_TEST_RUN, rx queue
    /// 0, nothing attached) and returns its XDP action; the decision
    /// counters count the run as for a received frame.
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, SteerError> {
        self.run_test(frame, None)
    }

    /// As [`Steering::test_run`], as if `frame` arrived on rx queue `queue`
    /// of device `ifindex` (which must exist in this thread's network
    /// namespace with that queue).
    pub fn test_run_on(&self, frame: &[u8], ifindex: u32, queue: u32) -> Result<u32, SteerError> {
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex (the kernel wants data = meta = 0
        // and data_end = the frame's length).
        let len =
            u32::try_from(frame.len()).map_err(|_| SteerError::Load("frame too long".into()))?;
        let mut ctx = [0u8; 24];
        for (i, value) in [0, len, 0, ifindex, queue, 0].into_iter().enumerate() {
            ctx[i * 4..i * 4 + 4].copy_from_slice(&value.to_ne_bytes());
        }
        self.run_test(frame, Some(&ctx))
    }

    fn run_test(&self, frame: &[u8], ctx: Option<&[u8]>) -> Result<u32, SteerError> {
        use aya::programs::{TestRun as _, TestRunOptions};
        let program: &Xdp = self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| SteerError::Load(format!("program {PROGRAM} missing")))?
            .try_into()
            .map_err(|e| SteerError::Load(error_chain(&e)))?;
        let mut out = vec![0u8; frame.len() + 256];
        let options = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ctx_in: ctx,
            ..Default::default()
        };
        let result = program
            .test_run(options)
            .map_err(|e| SteerError::Load(error_chain(&e)))?;
        Ok(result.return_value)
    }

    /// Makes `allow` the allowlist the program enforces, while it runs and
    /// without a gap: new entries are added before a list is switched on,
    /// and stale ones removed after, so an allowed frame is never dropped.
    pub fn set_allowlist(&mut self, allow: &Allowlist) -> Result<(), SteerError> {
        self.allow.write(allow)
    }

    /// The attach mode obtained, once attached.
    pub fn mode(&self) -> Option<AttachMode> {
        self.mode
    }

    /// The program's decision counters, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, SteerError> {
        let mut totals = XdpCounters::default();
        for counter in XdpCounter::ALL {
            let values = self
                .counters
                .get(&(counter as u32), 0)
                .map_err(|e| SteerError::Map {
                    map: COUNTER_MAP,
                    detail: error_chain(&e),
                })?;
            totals.0[counter as usize] = values.iter().sum();
        }
        Ok(totals)
    }
}

/// The allowlist maps (`vxd_filter`, `vxd_allow_v4`, `vxd_allow_v6`,
/// `vxd_allow_vni`), which the capture's and the relay's programs share by
/// name and layout (`xdp-prog/common.h`).
pub(crate) struct AllowMaps {
    /// `struct vxd_filter` as one u64: `sources` in the low half, `vnis` in
    /// the high half (both fields are u32, little-endian host).
    filter: Array<MapData, u64>,
    v4: LpmTrie<MapData, [u8; 4], u8>,
    v6: LpmTrie<MapData, [u8; 16], u8>,
    vni: HashMap<MapData, u32, u8>,
}

impl AllowMaps {
    /// Takes the four maps out of a loaded program.
    pub(crate) fn take(ebpf: &mut Ebpf) -> Result<Self, SteerError> {
        Ok(Self {
            filter: take_map(ebpf, FILTER_MAP)?,
            v4: take_map(ebpf, ALLOW_V4_MAP)?,
            v6: take_map(ebpf, ALLOW_V6_MAP)?,
            vni: take_map(ebpf, ALLOW_VNI_MAP)?,
        })
    }

    /// Writes `allow` without a gap: new entries before a list is switched
    /// on, stale ones removed after.
    pub(crate) fn write(&mut self, allow: &Allowlist) -> Result<(), SteerError> {
        let Self {
            filter,
            v4: allow_v4,
            v6: allow_v6,
            vni: allow_vni,
        } = self;
        let map_err = |map: &'static str| {
            move |e: MapError| SteerError::Map {
                map,
                detail: error_chain(&e),
            }
        };
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for cidr in &allow.sources {
            match cidr.addr {
                IpAddr::V4(a) => v4.push(Key::new(u32::from(cidr.prefix), a.octets())),
                IpAddr::V6(a) => v6.push(Key::new(u32::from(cidr.prefix), a.octets())),
            }
        }
        for key in &v4 {
            allow_v4.insert(key, 1, 0).map_err(map_err(ALLOW_V4_MAP))?;
        }
        for key in &v6 {
            allow_v6.insert(key, 1, 0).map_err(map_err(ALLOW_V6_MAP))?;
        }
        if let Some(vnis) = &allow.vnis {
            for &vni in vnis {
                allow_vni
                    .insert(vni, 1, 0)
                    .map_err(map_err(ALLOW_VNI_MAP))?;
            }
        }
        let flags =
            u64::from(allow.restricts_sources()) | (u64::from(allow.restricts_vnis()) << 32);
        filter.set(0, flags, 0).map_err(map_err(FILTER_MAP))?;
        // Now the stale entries, which the switched lists no longer need.
        let stale_v4: Vec<Key<[u8; 4]>> = allow_v4
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !v4.iter().any(|n| same_key(n, k)))
            .collect();
        for key in stale_v4 {
            allow_v4.remove(&key).map_err(map_err(ALLOW_V4_MAP))?;
        }
        let stale_v6: Vec<Key<[u8; 16]>> = allow_v6
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !v6.iter().any(|n| same_key(n, k)))
            .collect();
        for key in stale_v6 {
            allow_v6.remove(&key).map_err(map_err(ALLOW_V6_MAP))?;
        }
        let keep = allow.vnis.clone().unwrap_or_default();
        let stale_vnis: Vec<u32> = allow_vni
            .keys()
            .filter_map(Result::ok)
            .filter(|v| !keep.contains(v))
            .collect();
        for vni in stale_vnis {
            allow_vni.remove(&vni).map_err(map_err(ALLOW_VNI_MAP))?;
        }
        Ok(())
    }
}

/// A list of ports (host order) as a program's rodata wants it: a fixed
/// array and the count in use. A [`PortSet`] holds at most [`MAX_PORTS`] of
/// each tunnel.
pub(crate) fn port_globals(list: &[u16]) -> ([u16; MAX_PORTS], u32) {
    let mut array = [0u16; MAX_PORTS];
    array[..list.len()].copy_from_slice(list);
    (array, list.len() as u32)
}

/// The XDP program `name` of a loaded object.
pub(crate) fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp, SteerError> {
    ebpf.program_mut(name)
        .ok_or_else(|| SteerError::Load(format!("program {name} missing from the object")))?
        .try_into()
        .map_err(|e| SteerError::Load(error_chain(&e)))
}

/// Attaches `program` to `interface` through a BPF link, in the modes
/// `request` allows (driver first for `Auto`); the capture's and the
/// relay's programs both go through here.
pub(crate) fn attach_program(
    program: &mut Xdp,
    interface: &str,
    request: AttachRequest,
) -> Result<(AttachMode, XdpLinkId), SteerError> {
    let interface = interface.to_owned();
    let attempts: &[(XdpMode, AttachMode)] = match request {
        AttachRequest::Auto => &[
            (XdpMode::Driver, AttachMode::Driver),
            (XdpMode::Skb, AttachMode::Skb),
        ],
        AttachRequest::Driver => &[(XdpMode::Driver, AttachMode::Driver)],
        AttachRequest::Skb => &[(XdpMode::Skb, AttachMode::Skb)],
    };
    let mut last = None;
    for (xdp_mode, mode) in attempts {
        match program.attach(&interface, *xdp_mode) {
            Ok(link) => return Ok((*mode, link)),
            Err(aya::programs::ProgramError::UnknownInterface { .. }) => {
                return Err(SteerError::NoInterface(interface));
            }
            Err(e) => {
                let errno = os_error(&e);
                if matches!(errno, Some(libc::EBUSY | libc::EEXIST)) {
                    let detach = detach_hint(&interface);
                    return Err(SteerError::Busy { interface, detach });
                }
                let (mode_name, hint) = match mode {
                    AttachMode::Driver => (
                        "driver",
                        " (the driver may lack native XDP: use --mode skb)",
                    ),
                    AttachMode::Skb => ("skb", ""),
                };
                last = Some(SteerError::Attach {
                    interface: interface.clone(),
                    mode: mode_name,
                    detail: error_chain(&e),
                    hint,
                });
            }
        }
    }
    Err(last.unwrap_or_else(|| SteerError::Load("no attach mode to try".into())))
}

fn same_key<K: aya::Pod + PartialEq>(a: &Key<K>, b: &Key<K>) -> bool {
    a.prefix_len() == b.prefix_len() && a.data() == b.data()
}

fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, SteerError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| SteerError::Load(format!("map {name} missing from the object")))?;
    T::try_from(map).map_err(|e| SteerError::Map {
        map: name,
        detail: error_chain(&e),
    })
}

/// How to remove the XDP program(s) attached to `interface`: `ip link set
/// … off` with the word for the mode found (`xdp off` leaves a generic-mode
/// program in place), or, for a program held by a BPF link (another
/// vxdecap, say), which `ip link` cannot remove, the link to detach.
fn detach_hint(interface: &str) -> String {
    let unknown = format!(
        "detach it with `ip link set dev {interface} xdpgeneric off` (or `xdpdrv off`, `xdpoffload off`, for the mode it shows)"
    );
    let Ok(attached) = nix::net::if_::if_nametoindex(interface)
        .map_err(std::io::Error::from)
        .and_then(crate::sys::netlink::xdp_attached)
    else {
        return unknown;
    };
    let links: Vec<(u32, u32)> = aya::programs::loaded_links()
        .filter_map(Result::ok)
        .filter(|l| matches!(l.link_type(), Ok(aya::programs::links::LinkType::Xdp)))
        .map(|l| (l.id(), l.program_id()))
        .collect();
    let steps: Vec<String> = [
        (attached.generic, "generic", "xdpgeneric"),
        (attached.driver, "driver", "xdpdrv"),
        (attached.offload, "offload", "xdpoffload"),
    ]
    .into_iter()
    .filter_map(|(id, mode, word)| {
        let id = id?;
        Some(match links.iter().find(|&&(_, program)| program == id) {
            Some((link, _)) => format!(
                "program {id} ({mode} mode) is held by BPF link {link}, which `ip link` cannot remove: stop the process that holds it (another vxdecap?) or run `bpftool link detach id {link}`"
            ),
            None => format!(
                "program {id} is in {mode} mode: detach it with `ip link set dev {interface} {word} off`"
            ),
        })
    })
    .collect();
    if steps.is_empty() {
        unknown
    } else {
        steps.join("; ")
    }
}

/// A raw fd handed to aya's map update, which only reads its number.
struct BorrowedRawFd(RawFd);

impl std::os::fd::AsRawFd for BorrowedRawFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

fn os_error(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return Some(code);
            }
        }
        current = e.source();
    }
    None
}
