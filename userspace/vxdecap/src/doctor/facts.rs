//! What `doctor` reads from the machine, before judging it: the device
//! stack from sysfs, the kernel's answers (ethtool, netlink), the limits
//! and sockets from procfs. sysfs and procfs are read under a [`Host`]
//! root, so a test builds an Accelerated Networking stack (a netvsc device
//! and its mlx5 VF) as files in a temporary directory; the kernel is asked
//! only for a live host.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::runtime::config::{CaptureConfig, CaptureMode, QueueSelection};
use crate::runtime::receive_work::{parse_cpu_list, ReceiveWork};
use crate::sys::ethtool::{self, Features, HashFields};
use crate::sys::genl::{self, XdpFeatures};
use crate::sys::netlink::{self, Link, XdpAttached};

/// The capability's bit in `CapEff` (linux/capability.h).
const CAP_IPC_LOCK: u32 = 14;

/// Where sysfs and procfs are, and whether the kernel may be asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// sysfs (`/sys`).
    pub sys: PathBuf,
    /// procfs (`/proc`).
    pub proc: PathBuf,
    /// Ask the kernel too (ethtool ioctls, netlink); off for a test's tree,
    /// whose devices do not exist.
    pub kernel: bool,
}

impl Host {
    /// This machine: `/sys`, `/proc`, and the kernel.
    pub fn live() -> Self {
        Self {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
            kernel: true,
        }
    }

    /// A tree of files: `root/sys` and `root/proc`, and no kernel.
    pub fn tree(root: &Path) -> Self {
        Self {
            sys: root.join("sys"),
            proc: root.join("proc"),
            kernel: false,
        }
    }

    pub(crate) fn net(&self, device: &str) -> PathBuf {
        self.sys.join("class/net").join(device)
    }
}

/// A file's text, trimmed.
fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Why something was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unread {
    /// Not asked: a test's tree, or a check that `capture` leaves out.
    NotAsked,
    /// The driver does not answer that question (EOPNOTSUPP).
    Unsupported,
    /// The question failed.
    Failed(String),
}

impl fmt::Display for Unread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAsked => f.write_str("not asked"),
            Self::Unsupported => f.write_str("the driver does not say"),
            Self::Failed(e) => f.write_str(e),
        }
    }
}

/// A kernel answer, or why there is none.
pub type Probe<T> = Result<T, Unread>;

fn probe<T>(ask: bool, question: impl FnOnce() -> io::Result<T>) -> Probe<T> {
    if !ask {
        return Err(Unread::NotAsked);
    }
    question().map_err(|e| {
        if e.raw_os_error() == Some(libc::EOPNOTSUPP) || e.kind() == io::ErrorKind::Unsupported {
            Unread::Unsupported
        } else {
            Unread::Failed(e.to_string())
        }
    })
}

/// What a device is in its stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A Hyper-V netvsc device: the synthetic path (VMBus).
    Synthetic,
    /// An SR-IOV virtual function enslaved to a netvsc device (Accelerated
    /// Networking): where the traffic really arrives.
    Vf {
        /// The netvsc device.
        master: String,
    },
    /// A port of another master (a bridge, a bond).
    Port {
        /// The master.
        master: String,
    },
    /// A device on its own.
    Plain,
}

/// The drivers of netvsc devices.
pub(crate) fn is_netvsc(driver: Option<&str>) -> bool {
    matches!(driver, Some("hv_netvsc" | "netvsc"))
}

/// One device of the stack, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// Name.
    pub name: String,
    /// Driver: the bus driver behind `device/driver`, or what ethtool says
    /// for a virtual device (`veth`).
    pub driver: Option<String>,
    /// Backed by a bus device (PCI, VMBus), not virtual.
    pub physical: bool,
    /// Its role.
    pub role: Role,
    /// Its lower devices (`lower_*`): netvsc's VF.
    pub lowers: Vec<String>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Hardware address (`address`), as sysfs writes it.
    pub mac: Option<String>,
    /// Rx queues.
    pub rx_queues: Option<u32>,
    /// LRO, hardware GRO and the other offloads.
    pub features: Probe<Features>,
    /// The fields UDP over IPv4 is hashed on for RSS.
    pub udp4_hash: Probe<HashFields>,
    /// What XDP the driver supports.
    pub xdp: Probe<XdpFeatures>,
    /// XDP programs attached now.
    pub attached: Probe<XdpAttached>,
    /// Where its receive work runs (interrupts, NAPI threads, channels).
    pub receive_work: ReceiveWork,
}

/// A UDP socket bound to a port of interest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpSocket {
    /// Local port.
    pub port: u16,
    /// From /proc/net/udp6.
    pub v6: bool,
    /// Socket inode.
    pub inode: u64,
    /// The process holding it (`name (pid N)`), if one does.
    pub owner: Option<String>,
}

/// How much to read: everything (`doctor`), or what `capture` checks at
/// start (no XDP features, no receive work: capture finds those itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// All of it.
    Full,
    /// The cheap part.
    Startup,
}

/// Everything the checks judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The named device first, then its lower devices.
    pub devices: Vec<Device>,
    /// RLIMIT_MEMLOCK's soft limit, if readable.
    pub memlock: Option<MemlockLimit>,
    /// CAP_IPC_LOCK in the effective set: the UMEM is not charged to the limit.
    pub ipc_lock: bool,
    /// `uname -r`.
    pub kernel_release: Option<String>,
    /// The namespace's links (for kernel VXLAN devices).
    pub links: Probe<Vec<Link>>,
    /// UDP sockets bound to the capture's ports.
    pub udp_sockets: Vec<UdpSocket>,
    /// CPUs online.
    pub online_cpus: usize,
}

impl Facts {
    /// Reads what the checks need for `config.interface`; `None` when the
    /// interface does not exist.
    pub fn gather(host: &Host, config: &CaptureConfig, depth: Depth) -> Option<Self> {
        let named = device(host, &config.interface, depth)?;
        let mut devices = vec![named];
        let lowers = devices[0].lowers.clone();
        devices.extend(lowers.iter().filter_map(|l| device(host, l, depth)));
        let status = read(&host.proc.join("self/status")).unwrap_or_default();
        let ipc_lock = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0);
        let online_cpus = read(&host.sys.join("devices/system/cpu/online"))
            .and_then(|list| parse_cpu_list(&list).into_iter().max())
            .map_or_else(crate::sys::cpu::online_cpus, |last| last + 1);
        Some(Self {
            devices,
            memlock: memlock(host),
            ipc_lock,
            kernel_release: read(&host.proc.join("sys/kernel/osrelease")),
            links: probe(host.kernel, netlink::links),
            udp_sockets: udp_sockets(host, &config.ports.all().collect::<Vec<_>>()),
            online_cpus,
        })
    }

    /// The named device.
    pub fn named(&self) -> &Device {
        &self.devices[0]
    }

    /// The devices the mirror arrives on: the VFs under the named device
    /// when it has any, the ports of a bridge, else the named device.
    pub fn receiving(&self) -> Vec<&Device> {
        if self.is_bridge_stack() {
            return self.devices[1..].iter().collect();
        }
        let vfs: Vec<&Device> = self.devices[1..]
            .iter()
            .filter(|d| matches!(d.role, Role::Vf { .. }))
            .collect();
        if vfs.is_empty() {
            vec![self.named()]
        } else {
            vfs
        }
    }

    /// The named device is a bridge with ports: the lab's model of a stack,
    /// where capture receives on the ports.
    pub fn is_bridge_stack(&self) -> bool {
        self.named().driver.as_deref() == Some("bridge") && self.devices.len() > 1
    }

    /// The devices whose queues a capture opens (as `runtime::stack`
    /// finds them): netvsc and its VFs (netvsc alone with `--mode skb`), a
    /// bridge's ports, else the named device.
    pub fn captured_devices(&self, config: &CaptureConfig) -> Vec<&Device> {
        if self.is_bridge_stack() {
            return self.devices[1..].iter().collect();
        }
        let mut devices = vec![self.named()];
        if self.named().role == Role::Synthetic && config.mode != CaptureMode::Skb {
            devices.extend(
                self.devices[1..]
                    .iter()
                    .filter(|d| matches!(d.role, Role::Vf { .. })),
            );
        }
        devices
    }

    /// The rx queues a capture opens, over its devices.
    pub fn captured_queues(&self, config: &CaptureConfig) -> usize {
        self.captured_devices(config)
            .iter()
            .map(|d| {
                let queues = d.rx_queues.unwrap_or(1);
                match &config.queues {
                    QueueSelection::All => queues as usize,
                    QueueSelection::List(list) => list.iter().filter(|&&q| q < queues).count(),
                }
            })
            .sum()
    }
}

/// The interfaces to check when none is named: up, not loopback, and not
/// enslaved (a VF or a port is checked with its master), by name.
pub fn interfaces_up(host: &Host) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(host.sys.join("class/net"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let flags = read(&host.net(name).join("flags"))
                .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
                .unwrap_or(0);
            let up = flags & libc::IFF_UP as u32 != 0;
            let loopback = flags & libc::IFF_LOOPBACK as u32 != 0;
            up && !loopback && !host.net(name).join("master").exists()
        })
        .collect();
    names.sort();
    names
}

/// The lower devices (`lower_*` links) in a device's sysfs directory, by name, sorted.
pub(crate) fn lower_names(dir: &Path) -> Vec<String> {
    let mut lowers: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.strip_prefix("lower_").map(str::to_owned)
        })
        .collect();
    lowers.sort();
    lowers
}

/// One device, read; `None` when sysfs does not have it.
fn device(host: &Host, name: &str, depth: Depth) -> Option<Device> {
    let dir = host.net(name);
    if !dir.is_dir() {
        return None;
    }
    let driver = driver(host, name);
    let role = role(host, name, driver.as_deref());
    let lowers = lower_names(&dir);
    let ifindex = nix::net::if_::if_nametoindex(name).ok();
    let ask = host.kernel;
    let full = depth == Depth::Full;
    // The queues in use, as capture counts them (runtime::device::rx_queue_count).
    let channels = probe(ask, || ethtool::rx_channels(name)).ok();
    let netlink_queues = || netlink::link_info(ifindex.filter(|_| ask)?).ok()?.rx_queues;
    Some(Device {
        name: name.to_owned(),
        driver,
        physical: dir.join("device").exists(),
        role,
        lowers,
        mtu: read(&dir.join("mtu")).and_then(|m| m.parse().ok()),
        mac: read(&dir.join("address")),
        rx_queues: channels
            .or_else(|| sysfs_rx_queues(&dir))
            .or_else(netlink_queues),
        features: probe(ask, || ethtool::features(name)),
        udp4_hash: probe(ask, || ethtool::udp4_hash(name)),
        xdp: probe(ask && full, || {
            genl::xdp_features(ifindex.ok_or_else(|| io::Error::other("no ifindex"))?)
        }),
        attached: probe(ask && full, || {
            netlink::xdp_attached(ifindex.ok_or_else(|| io::Error::other("no ifindex"))?)
        }),
        receive_work: if full {
            ReceiveWork::find_in(&host.sys, &host.proc, name)
        } else {
            ReceiveWork::default()
        },
    })
}

/// The driver: the bus driver's directory name, or (live) ethtool's answer.
pub(crate) fn driver(host: &Host, name: &str) -> Option<String> {
    let bus = std::fs::read_link(host.net(name).join("device/driver"))
        .ok()
        .and_then(|target| Some(target.file_name()?.to_string_lossy().into_owned()));
    bus.or_else(|| {
        host.kernel
            .then(|| ethtool::driver(name).ok())
            .flatten()
            .filter(|d| !d.is_empty())
    })
}

/// The device's role from its driver and its master's.
fn role(host: &Host, name: &str, driver: Option<&str>) -> Role {
    if is_netvsc(driver) {
        return Role::Synthetic;
    }
    let master = std::fs::read_link(host.net(name).join("master"))
        .ok()
        .and_then(|target| Some(target.file_name()?.to_string_lossy().into_owned()));
    let mac = |device: &str| read(&host.net(device).join("address"));
    match master {
        // netvsc enslaves nothing but its VF (netvsc_vf_join).
        Some(master) if is_netvsc(self::driver(host, &master).as_deref()) => Role::Vf { master },
        // A lower device with its master's MAC: a VF as capture finds one
        // (the lab models Accelerated Networking with a bridge).
        Some(master) if mac(name).is_some() && mac(name) == mac(&master) => Role::Vf { master },
        Some(master) => Role::Port { master },
        None => Role::Plain,
    }
}

fn sysfs_rx_queues(dir: &Path) -> Option<u32> {
    let count = std::fs::read_dir(dir.join("queues"))
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    u32::try_from(count).ok().filter(|&n| n > 0)
}

/// RLIMIT_MEMLOCK's soft limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemlockLimit {
    /// No limit.
    Unlimited,
    /// At most this many bytes.
    Bytes(u64),
}

/// The soft RLIMIT_MEMLOCK from `/proc/self/limits`.
fn memlock(host: &Host) -> Option<MemlockLimit> {
    let limits = read(&host.proc.join("self/limits"))?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    let soft = line
        .trim_start_matches("Max locked memory")
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        Some(MemlockLimit::Unlimited)
    } else {
        soft.parse().ok().map(MemlockLimit::Bytes)
    }
}

/// UDP sockets (IPv4 and IPv6) bound to one of `ports`, with the process
/// holding each when one does.
fn udp_sockets(host: &Host, ports: &[u16]) -> Vec<UdpSocket> {
    let mut found = Vec::new();
    for (file, v6) in [("net/udp", false), ("net/udp6", true)] {
        let table = read(&host.proc.join(file)).unwrap_or_default();
        for line in table.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(port) = fields
                .get(1)
                .and_then(|local| local.rsplit_once(':'))
                .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
            else {
                continue;
            };
            if !ports.contains(&port) {
                continue;
            }
            let inode = fields.get(9).and_then(|i| i.parse().ok()).unwrap_or(0);
            found.push(UdpSocket {
                port,
                v6,
                inode,
                owner: None,
            });
        }
    }
    if !found.is_empty() {
        find_owners(host, &mut found);
    }
    found
}

/// Names the process holding each socket (`/proc/PID/fd/*` → `socket:[inode]`).
fn find_owners(host: &Host, sockets: &mut [UdpSocket]) {
    let wanted: Vec<String> = sockets
        .iter()
        .map(|s| format!("socket:[{}]", s.inode))
        .collect();
    for entry in std::fs::read_dir(&host.proc)
        .into_iter()
        .flatten()
        .flatten()
    {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for fd in std::fs::read_dir(entry.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            for (socket, want) in sockets.iter_mut().zip(&wanted) {
                if socket.owner.is_none() && target.as_os_str() == want.as_str() {
                    let comm = read(&entry.path().join("comm")).unwrap_or_else(|| "?".into());
                    socket.owner = Some(format!("{comm} (pid {pid})"));
                }
            }
        }
    }
}
