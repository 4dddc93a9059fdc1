//! The device stack under the named interface: where the mirrored traffic
//! really arrives, and how to attach and bind on each device.
//!
//! On Azure with Accelerated Networking the named device is netvsc (the
//! synthetic path) and the traffic arrives on its VF (mlx5 or MANA), a
//! lower device with netvsc as master and netvsc's MAC (docs/azure.md §1,
//! §5). An AF_XDP socket takes frames only from the device and queue it is
//! bound to, so the capture binds sockets on every rx queue of every
//! receive device, and the XDP program picks the socket by (ingress
//! ifindex, rx queue).

use std::fmt;

use vxdecap_xsk::BindRequest;

use crate::doctor::facts::{driver, is_netvsc, Host};
use crate::report::CONSOLE;
use crate::runtime::config::CaptureConfig;
use crate::runtime::device::{interface_mac, rx_queue_count};
use crate::steer::{AttachMode, AttachRequest, SteerError, Steering, XdpLinkId};

/// What a receive device is in the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackRole {
    /// The named device, receiving itself (netvsc's synthetic path, or a device on its own).
    Named,
    /// A lower device with the named device's MAC: an SR-IOV VF (Azure), or
    /// its model in the lab. Removed and re-added by host servicing.
    Vf,
    /// Another lower device that receives for the named one (a bridge port).
    Port,
}

impl StackRole {
    /// The label in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Named => "synthetic",
            Self::Vf => "vf",
            Self::Port => "port",
        }
    }
}

impl fmt::Display for StackRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the program reaches a receive device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// Attached to this device by vxdecap.
    Here,
    /// Propagated by the named device's driver: netvsc gives its program to
    /// the VF (`netvsc_vf_setxdp`), and refuses one attached to the VF
    /// directly (-EEXIST, docs/azure.md §1.3).
    ByMaster,
}

/// One device the capture receives on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveDevice {
    /// Name now (a VF may come back under another).
    pub name: String,
    /// ifindex now (a new one after servicing).
    pub ifindex: u32,
    /// Its role.
    pub role: StackRole,
    /// Driver, as sysfs or ethtool names it.
    pub driver: Option<String>,
    /// Rx queues.
    pub queues: u32,
    /// Who attaches the program.
    pub attach: Attach,
}

impl ReceiveDevice {
    /// How its sockets bind: copy on drivers without zero-copy AF_XDP
    /// (netvsc, MANA: docs/azure.md §1.1, §3), else what the capture asks
    /// (zero-copy with copy fallback on mlx5).
    pub fn bind(&self, asked: BindRequest) -> BindRequest {
        if is_netvsc(self.driver.as_deref()) || self.driver.as_deref() == Some("mana") {
            BindRequest::Copy
        } else {
            asked
        }
    }

    /// How the program is attached to it (when vxdecap attaches it): a bridge
    /// has no native XDP, so generic mode; else what the capture asks.
    pub fn attach_request(&self, asked: AttachRequest) -> AttachRequest {
        if self.driver.as_deref() == Some("bridge") {
            AttachRequest::Skb
        } else {
            asked
        }
    }
}

/// A device as sysfs shows it.
fn read_device(host: &Host, name: &str, role: StackRole, attach: Attach) -> Option<ReceiveDevice> {
    let ifindex = nix::net::if_::if_nametoindex(name).ok()?;
    Some(ReceiveDevice {
        name: name.to_owned(),
        ifindex,
        role,
        driver: driver(host, name),
        queues: rx_queue_count(name).unwrap_or(1),
        attach,
    })
}

/// The lower devices of `name` (`/sys/class/net/NAME/lower_*`), by name.
pub fn lowers(name: &str) -> Vec<String> {
    crate::doctor::facts::lower_names(&Host::live().net(name))
}

/// The master of `name`, if it has one.
pub fn master(name: &str) -> Option<String> {
    let target = std::fs::read_link(format!("/sys/class/net/{name}/master")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// The receive devices of a capture on `named`, the named device's own
/// entry first when it receives itself:
/// - netvsc: itself (synthetic path, attached here) and its VF (the
///   program propagated by netvsc);
/// - a bridge (the lab's model of the stack): its ports, each attached
///   here; the one with the bridge's MAC is the VF (a program on the bridge
///   itself would make the kernel refuse one on a port that comes back:
///   "Cannot attach when an upper device already has a program");
/// - anything else: itself.
///
/// With `generic` (`--mode skb`) netvsc receives alone: generic XDP is not
/// propagated to the VF, whose frames reach netvsc's generic hook as
/// netvsc's own (docs/azure.md §6.3, mode B).
pub fn discover(named: &str, generic: bool) -> Vec<ReceiveDevice> {
    let host = Host::live();
    let driver = driver(&host, named);
    let mac = interface_mac(named);
    let role_of = |lower: &str| {
        if mac.is_some() && interface_mac(lower) == mac {
            StackRole::Vf
        } else {
            StackRole::Port
        }
    };
    if is_netvsc(driver.as_deref()) {
        let mut devices: Vec<ReceiveDevice> =
            read_device(&host, named, StackRole::Named, Attach::Here)
                .into_iter()
                .collect();
        devices.extend(
            lowers(named)
                .iter()
                .filter(|_| !generic)
                .filter(|l| role_of(l) == StackRole::Vf)
                .filter_map(|l| read_device(&host, l, StackRole::Vf, Attach::ByMaster)),
        );
        if !generic && devices.len() == 1 {
            // No VF now (servicing, or not registered yet at boot): its
            // place is kept, with netvsc's channel count, for when it comes.
            let queues = devices[0].queues;
            devices.push(absent_vf(queues, Attach::ByMaster));
        }
        devices
    } else if driver.as_deref() == Some("bridge") && !lowers(named).is_empty() {
        let mut devices: Vec<ReceiveDevice> = lowers(named)
            .iter()
            .filter_map(|l| read_device(&host, l, role_of(l), Attach::Here))
            .collect();
        if !devices.iter().any(|d| d.role == StackRole::Vf) {
            devices.push(absent_vf(1, Attach::Here));
        }
        devices
    } else {
        read_device(&host, named, StackRole::Named, Attach::Here)
            .into_iter()
            .collect()
    }
}

/// The place of a VF that is away when the capture starts: no name or
/// ifindex yet, `queues` sockets when it comes.
fn absent_vf(queues: u32, attach: Attach) -> ReceiveDevice {
    ReceiveDevice {
        name: "vf".to_owned(),
        ifindex: 0,
        role: StackRole::Vf,
        driver: None,
        queues,
        attach,
    }
}

/// Whether a device that appeared (RTM_NEWLINK) is a VF coming back for a
/// capture on `named`: its master is the named device and its MAC is the
/// named device's.
pub fn is_vf_of(named: &str, candidate: &str) -> bool {
    master(candidate).as_deref() == Some(named)
        && interface_mac(candidate).is_some()
        && interface_mac(candidate) == interface_mac(named)
}

/// The warning when `-i` names a VF directly: servicing removes it.
pub fn vf_named_warning(config: &CaptureConfig) -> Option<String> {
    let master = master(&config.interface)?;
    let host = Host::live();
    let netvsc = is_netvsc(driver(&host, &master).as_deref());
    let same_mac = interface_mac(&master) == interface_mac(&config.interface);
    (netvsc || same_mac).then(|| {
        format!(
            "{} is a lower device of {master}{}: host servicing removes it, and the capture would stop until it came back; capture on its master instead: -i {master}",
            config.interface,
            if netvsc { " (an Accelerated Networking VF)" } else { "" }
        )
    })
}

/// Steers every device of `stack` to its slots and attaches the program
/// where the policy says (once on netvsc, which propagates it to its VF;
/// on each receive device elsewhere). The mode of the first attachment.
pub(crate) fn attach_stack(
    steering: &mut Steering,
    config: &CaptureConfig,
    stack: &mut [StackDevice],
) -> Result<AttachMode, SteerError> {
    if let [only] = stack {
        if only.device.role == StackRole::Named {
            // One device: its queues own the XSKMAP from slot 0, as always.
            return steering.attach(only.device.attach_request(config.mode.attach()));
        }
    }
    if let Ok(named) = nix::net::if_::if_nametoindex(config.interface.as_str()) {
        steering.remove_device(named)?;
    }
    let mut mode = None;
    // A device away (a VF in servicing) is taken up when it comes back.
    for (row, d) in stack.iter_mut().enumerate().filter(|(_, d)| d.present) {
        steering.set_device(d.device.ifindex, d.base, d.capacity, row as u32)?;
        if d.device.attach == Attach::Here {
            let (m, link) = steering.attach_also(
                &d.device.name,
                d.device.attach_request(config.mode.attach()),
            )?;
            d.link = Some(link);
            mode.get_or_insert(m);
            tracing::info!(target: CONSOLE, "XDP attached to {} ({}, {}) in {m} mode", d.device.name, d.device.role, d.device.driver.as_deref().unwrap_or("unknown driver"));
        } else {
            tracing::info!(target: CONSOLE, "XDP reaches {} ({}) through its master, which propagates its program", d.device.name, d.device.role);
        }
    }
    mode.ok_or_else(|| SteerError::Load("no device of the stack to attach to".into()))
}

/// A receive device of the capture and its XSKMAP slots.
#[derive(Debug)]
pub(crate) struct StackDevice {
    /// The device as found (name and ifindex updated when it comes back).
    pub(crate) device: ReceiveDevice,
    /// Its first XSKMAP slot.
    pub(crate) base: u32,
    /// Its slots: the rx queues it had at start.
    pub(crate) capacity: u32,
    /// The link that attaches the program to it, when vxdecap attached it.
    pub(crate) link: Option<XdpLinkId>,
    /// Its sockets are bound (it is there).
    pub(crate) present: bool,
}
