//! The judgements: each check turns the [`Facts`] and the capture's
//! settings into one verdict line, with the reason from the kernel source
//! (docs/azure.md) and the fix.

use crate::doctor::facts::{is_netvsc, Device, Facts, MemlockLimit, Role, UdpSocket, Unread};
use crate::doctor::verdict::{Check, CheckKind, Verdict};
use crate::runtime::config::{CaptureConfig, CaptureMode, QueueSelection};
use crate::runtime::cpus::default_cpus;
use crate::runtime::umem::{fitted_frame_size, frame_needed, largest_frame};
use crate::steer::MAX_QUEUES;

/// The largest MTU netvsc and MANA take an XDP program at, with 4 KiB
/// pages: one page holds XDP's headroom, the frame and skb_shared_info
/// (`netvsc_xdp_set`, `MANA_XDP_MTU_MAX`; docs/azure.md §1.1 and §3).
pub const SINGLE_PAGE_XDP_MTU: u32 = 3506;

/// The checks of `kinds`, in that order.
pub fn evaluate(facts: &Facts, config: &CaptureConfig, kinds: &[CheckKind]) -> Vec<Check> {
    kinds
        .iter()
        .map(|&kind| match kind {
            CheckKind::DeviceStack => device_stack(facts, config),
            CheckKind::RxQueues => rx_queues(facts, config),
            CheckKind::XdpMode => xdp_mode(facts, config),
            CheckKind::Mtu => mtu(facts, config),
            CheckKind::Offloads => offloads(facts),
            CheckKind::UdpHash => udp_hash(facts),
            CheckKind::IrqAffinity => irq_affinity(facts, config),
            CheckKind::Memlock => memlock(facts, config),
            CheckKind::Kernel => kernel(facts),
            CheckKind::PortConsumers => port_consumers(facts, config),
        })
        .collect()
}

/// `eth1: hv_netvsc (synthetic)`.
fn describe(device: &Device) -> String {
    let driver = device.driver.as_deref().unwrap_or("no driver");
    let role = match &device.role {
        Role::Synthetic => "synthetic".to_owned(),
        Role::Vf { master } => format!("VF under {master}"),
        Role::Port { master } => format!("port of {master}"),
        Role::Plain if device.physical => "physical".to_owned(),
        Role::Plain => "virtual".to_owned(),
    };
    format!("{}: {driver} ({role})", device.name)
}

fn device_stack(facts: &Facts, config: &CaptureConfig) -> Check {
    let kind = CheckKind::DeviceStack;
    let named = facts.named();
    let stack: Vec<String> = facts.devices.iter().map(describe).collect();
    let stack = stack.join(", ");
    let vfs: Vec<&str> = facts.devices[1..]
        .iter()
        .filter(|d| matches!(d.role, Role::Vf { .. }))
        .map(|d| d.name.as_str())
        .collect();
    let name = &named.name;
    match &named.role {
        Role::Synthetic if !vfs.is_empty() && config.mode == CaptureMode::Skb => Check::warn(
            kind,
            format!(
                "{stack}: generic XDP on {name} sees the VF's frames as {name}'s own (netvsc_vf_handle_frame), so sockets on {name}'s queues get both paths: inferred from the kernel source, not verified on Azure (docs/azure.md §6.3)"
            ),
            format!(
                "compare the capture's counts with `ethtool -S {name}` (vf_rx_packets) on the VM"
            ),
        ),
        Role::Synthetic if !vfs.is_empty() => Check::ok(
            kind,
            format!(
                "{stack}: capture attaches the program to {name} once (netvsc hands it to {vfs} in driver mode) and binds sockets on {name}'s channels and on every queue of {vfs}, choosing the socket by (device, queue); a VF that host servicing removes is followed (docs/azure.md §6.3, from the kernel source: not verified on Azure)",
                vfs = vfs.join(", ")
            ),
        ),
        Role::Synthetic => Check::ok(
            kind,
            format!("{stack}, no VF: everything arrives on {name}'s channels"),
        ),
        Role::Vf { master } => Check::warn(
            kind,
            format!(
                "{stack}: {name} is the VF of {master} (its lower device with its MAC: Accelerated Networking); host servicing removes it for seconds to minutes (the traffic then arrives on {master}) and it comes back with a new ifindex"
            ),
            format!("capture on {master}: vxdecap then receives on {master} and its VF, and follows the VF through servicing"),
        ),
        _ if named.driver.as_deref() == Some("bridge") && !named.lowers.is_empty() => {
            let vf: Vec<&str> = facts.devices[1..]
                .iter()
                .filter(|d| d.mac.is_some() && d.mac == named.mac)
                .map(|d| d.name.as_str())
                .collect();
            Check::ok(
                kind,
                format!(
                    "{stack}: capture attaches to each port of {name} and binds its queues{}",
                    if vf.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; {} has {name}'s MAC and is taken as its VF (the lab's model of Accelerated Networking), followed when it goes and comes back",
                            vf.join(", ")
                        )
                    }
                ),
            )
        }
        _ if !named.lowers.is_empty() => Check::warn(
            kind,
            format!(
                "{stack}: {name} has lower devices ({}); frames they receive in driver mode are redirected there, and a socket on {name}'s queues does not get them",
                named.lowers.join(", ")
            ),
            "capture on the device that receives, or with --mode skb",
        ),
        _ => Check::ok(kind, stack),
    }
}

fn rx_queues(facts: &Facts, config: &CaptureConfig) -> Check {
    let kind = CheckKind::RxQueues;
    let counts: Vec<String> = facts
        .devices
        .iter()
        .map(|d| match d.rx_queues {
            Some(n) => format!("{}: {n}", d.name),
            None => format!("{}: unknown", d.name),
        })
        .collect();
    let counts = counts.join(", ");
    let named = facts.named();
    if let Some(many) = facts
        .devices
        .iter()
        .find(|d| d.rx_queues.is_some_and(|n| n > MAX_QUEUES))
    {
        return Check::fail(
            kind,
            format!("{counts}: vxdecap serves at most {MAX_QUEUES} queues per device"),
            format!(
                "capture some of them (--queues 0-{}) or fewer: ethtool -L {} combined {MAX_QUEUES}",
                MAX_QUEUES - 1,
                many.name
            ),
        );
    }
    if config.mode == CaptureMode::Skb && named.role == Role::Synthetic {
        let synthetic = named.rx_queues.unwrap_or(1);
        if let Some(vf) = facts.receiving().into_iter().find(|d| {
            matches!(d.role, Role::Vf { .. }) && d.rx_queues.is_some_and(|n| n > synthetic)
        }) {
            return Check::warn(
                kind,
                format!(
                    "{counts}: in generic mode the VF's frames keep their queue number, and those of queues {synthetic} and up fold onto {}'s queue 0 (netif_get_rxqueue)",
                    named.name
                ),
                format!("ethtool -L {} combined {synthetic}", vf.name),
            );
        }
    }
    if named.rx_queues.is_none() {
        return Check::warn(
            kind,
            counts,
            "capture opens queue 0 only when the count is unknown",
        );
    }
    let devices: Vec<&str> = facts
        .captured_devices(config)
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    let captured = match &config.queues {
        QueueSelection::All if devices.len() > 1 => {
            format!("every queue of {}", devices.join(" and "))
        }
        QueueSelection::All => format!("all of {}'s", named.name),
        list @ QueueSelection::List(_) if devices.len() > 1 => {
            format!("queues {list} of {}", devices.join(" and "))
        }
        list @ QueueSelection::List(_) => format!("queues {list}"),
    };
    Check::ok(kind, format!("{counts} (capture opens {captured})"))
}

fn xdp_mode(facts: &Facts, config: &CaptureConfig) -> Check {
    let kind = CheckKind::XdpMode;
    let named = facts.named();
    let name = &named.name;
    if facts.is_bridge_stack() {
        return bridge_xdp_mode(facts, config);
    }
    let propagated: Vec<&str> = facts.devices[1..]
        .iter()
        .filter(|d| named.role == Role::Synthetic && matches!(d.role, Role::Vf { .. }))
        .map(|d| d.name.as_str())
        .collect();
    let mut check = match (config.mode, &named.xdp) {
        (CaptureMode::Skb, _) => Check::ok(
            kind,
            format!("generic (SKB) XDP on {name}, copy-mode sockets (--mode skb)"),
        ),
        (mode, Ok(features)) => {
            let driver_mode = features.native_redirect();
            let zero_copy = driver_mode && features.zero_copy();
            let why = format!("xdp-features: {}", features.names());
            if mode == CaptureMode::ZeroCopy && !zero_copy {
                return Check::fail(
                    kind,
                    format!("{name} cannot take zero-copy sockets ({why}): --mode zerocopy fails to start"),
                    "--mode auto",
                );
            }
            let attach = if driver_mode {
                "driver (native) XDP"
            } else {
                "generic (SKB) XDP: the driver has no native XDP with redirect"
            };
            let carried = if driver_mode && !propagated.is_empty() {
                format!(
                    ", which netvsc hands to {} in driver mode (not shown by `ip link` there)",
                    propagated.join(", ")
                )
            } else {
                String::new()
            };
            let bind = match mode {
                CaptureMode::Copy => "copy-mode sockets (--mode copy)",
                _ if zero_copy => "zero-copy sockets",
                _ => "copy-mode sockets (no xsk-zerocopy)",
            };
            Check::ok(kind, format!("{attach} on {name}{carried}, {bind} ({why})"))
        }
        (_, Err(Unread::NotAsked)) => Check::warn(kind, format!("{name}: not asked"), ""),
        (_, Err(e)) => Check::warn(
            kind,
            format!(
                "{name}: the kernel does not tell the driver's XDP features ({e}; the netdev family is 6.3+): capture tries driver mode, then generic"
            ),
            "",
        ),
    };
    if let Ok(attached) = &named.attached {
        let programs: Vec<String> = [
            (attached.driver, "driver"),
            (attached.generic, "generic"),
            (attached.offload, "offload"),
        ]
        .iter()
        .filter_map(|&(id, mode)| Some(format!("program {} in {mode} mode", id?)))
        .collect();
        if !programs.is_empty() {
            check.verdict = check.verdict.max(Verdict::Warn);
            check.detail = format!(
                "{}; {name} already has {}: a capture will not start while it is there (another vxdecap?)",
                check.detail,
                programs.join(", ")
            );
            check.hint = Some(format!("see it with `ip -d link show {name}`"));
        }
    }
    check
}

/// A bridge's ports each get the program (the bridge itself none: the
/// kernel would then refuse it on a port that comes back).
fn bridge_xdp_mode(facts: &Facts, config: &CaptureConfig) -> Check {
    let kind = CheckKind::XdpMode;
    let ports: Vec<String> = facts.devices[1..]
        .iter()
        .map(|d| {
            let mode = match (config.mode, &d.xdp) {
                (CaptureMode::Skb, _) => "generic (SKB) XDP, copy-mode sockets".to_owned(),
                (_, Ok(f)) if f.native_redirect() => format!(
                    "driver (native) XDP, {} sockets",
                    if f.zero_copy() && config.mode != CaptureMode::Copy {
                        "zero-copy"
                    } else {
                        "copy-mode"
                    }
                ),
                (_, Ok(_)) => {
                    "generic (SKB) XDP (no native XDP with redirect), copy-mode sockets".to_owned()
                }
                (_, Err(_)) => "driver XDP if it takes it, else generic".to_owned(),
            };
            format!("{} {mode}", d.name)
        })
        .collect();
    Check::ok(
        kind,
        format!(
            "on each port of {}: {}; none on the bridge",
            facts.named().name,
            ports.join("; ")
        ),
    )
}

fn mtu(facts: &Facts, config: &CaptureConfig) -> Check {
    let kind = CheckKind::Mtu;
    let named = facts.named();
    let name = &named.name;
    let Some(mtu) = named.mtu else {
        return Check::warn(kind, format!("{name}: MTU unknown"), "");
    };
    let page = vxdecap_xsk::page_size();
    let size = fitted_frame_size(mtu, config.socket.frame_size, config.auto_frame_size, page);
    let needed = frame_needed(mtu);
    let largest = largest_frame(size);
    let largest_mtu = largest_frame(page).saturating_sub(frame_needed(0));
    if let Some(single_page) = facts.devices.iter().find(|d| {
        d.mtu.is_some_and(|m| m > SINGLE_PAGE_XDP_MTU)
            && (is_netvsc(d.driver.as_deref()) || d.driver.as_deref() == Some("mana"))
    }) {
        return Check::fail(
            kind,
            format!(
                "MTU {} on {}: {} takes no XDP program above MTU {SINGLE_PAGE_XDP_MTU} (one page per frame: docs/azure.md §1.1, §3), so the attach fails",
                single_page.mtu.unwrap_or(mtu),
                single_page.name,
                single_page.driver.as_deref().unwrap_or("the driver"),
            ),
            format!("ip link set dev {name} mtu {SINGLE_PAGE_XDP_MTU} (netvsc passes it to its VF)"),
        );
    }
    if needed > largest {
        return Check::fail(
            kind,
            format!(
                "MTU {mtu} on {name}: frames of up to {needed} bytes (two VLAN tags) do not fit the UMEM frame of {size} bytes (at most {largest} bytes); the kernel drops the bigger ones (xsk_rx_dropped: AF_XDP multi-buffer is not supported yet)"
            ),
            format!(
                "ip link set dev {name} mtu {} (the largest that fits a {page}-byte frame){}",
                largest_mtu.min(mtu),
                if config.auto_frame_size { "" } else { ", or leave --frame-size out" }
            ),
        );
    }
    Check::ok(
        kind,
        format!(
            "MTU {mtu} on {name}: frames of up to {needed} bytes fit UMEM frames of {size} bytes (the largest frame that fits: {largest} bytes)"
        ),
    )
}

fn offloads(facts: &Facts) -> Check {
    let kind = CheckKind::Offloads;
    // (device, ethtool's word, what it is, whether the driver refuses XDP with it on).
    let mut on = Vec::new();
    let mut unread = Vec::new();
    for device in &facts.devices {
        let mlx5 = device.driver.as_deref() == Some("mlx5_core");
        match &device.features {
            Ok(features) => {
                if features.active("rx-lro") == Some(true) {
                    on.push((device.name.as_str(), "lro", "LRO", true));
                }
                if features.active("rx-gro-hw") == Some(true) {
                    on.push((device.name.as_str(), "rx-gro-hw", "hardware GRO", mlx5));
                }
            }
            Err(e) => unread.push(format!("{} ({e})", device.name)),
        }
    }
    let names: Vec<&str> = facts.devices.iter().map(|d| d.name.as_str()).collect();
    if !on.is_empty() {
        let what: Vec<String> = on
            .iter()
            .map(|(device, _, what, _)| format!("{what} on {device}"))
            .collect();
        let fixes: Vec<String> = on
            .iter()
            .map(|(device, word, _, _)| format!("ethtool -K {device} {word} off"))
            .collect();
        let hint = format!(
            "{} (the package's /usr/libexec/vxdecap/prepare-interface {} does it)",
            fixes.join("; "),
            names[0]
        );
        let what = what.join(", ");
        if on.iter().any(|&(_, _, _, refused)| refused) {
            return Check::fail(
                kind,
                format!(
                    "{what}: netvsc and mlx5 take no XDP program while LRO is on, nor mlx5 while hardware GRO is (netvsc_xdp_set, mlx5e_xdp_allowed): the capture does not start"
                ),
                hint,
            );
        }
        return Check::warn(
            kind,
            format!(
                "{what}: the driver must turn it off to take an XDP program (virtio_net does when the host lets it, generic XDP always does), or refuses"
            ),
            hint,
        );
    }
    if !unread.is_empty() {
        return Check::warn(
            kind,
            format!("cannot read the offloads of {}", unread.join(", ")),
            "",
        );
    }
    Check::ok(
        kind,
        format!("LRO and hardware GRO off on {}", names.join(", ")),
    )
}

fn udp_hash(facts: &Facts) -> Check {
    let kind = CheckKind::UdpHash;
    let mut parts = Vec::new();
    let mut warn: Option<String> = None;
    for device in facts.receiving() {
        let name = &device.name;
        let driver = device.driver.as_deref();
        let (part, hint) = match (&device.udp4_hash, driver) {
            _ if device.rx_queues.unwrap_or(1) <= 1 => {
                (format!("{name}: one rx queue, nothing to spread"), None)
            }
            _ if is_netvsc(driver) => (
                format!("{name}: netvsc hashes received UDP on the IP pair only (rndis_set_rss_param_msg; `rx-flow-hash udp4` there steers transmit, docs/azure.md §6.2), so a few mirror sources fill a few queues"),
                Some("nothing to set on netvsc: with Accelerated Networking the VF receives, and it hashes ports".to_owned()),
            ),
            (_, Some("mana")) => (
                format!("{name}: MANA cannot say which fields it hashes UDP on (no get_rxfh_fields, docs/azure.md §3)"),
                Some("watch the spread over queues with `vxdecap top`".to_owned()),
            ),
            (Ok(fields), _) if fields.has_ports() => {
                (format!("{name}: udp4 hashed on {}", fields.letters()), None)
            }
            (Ok(fields), _) => (
                format!("{name}: udp4 hashed on {} only: one source's VXLAN, whose source ports vary by flow, stays on one queue", fields.letters()),
                Some(format!("ethtool -N {name} rx-flow-hash udp4 sdfn")),
            ),
            (Err(Unread::Unsupported), _) if !device.physical => (
                format!("{name}: {} has no RSS (a frame is received on the queue it was sent to)", driver.unwrap_or("a virtual device")),
                None,
            ),
            (Err(e), _) => (
                format!("{name}: cannot read its udp4 hash ({e})"),
                Some(format!("ethtool -n {name} rx-flow-hash udp4")),
            ),
        };
        parts.push(part);
        if warn.is_none() {
            warn = hint;
        }
    }
    let detail = parts.join("; ");
    match warn {
        Some(hint) => Check::warn(kind, detail, hint),
        None => Check::ok(kind, detail),
    }
}

fn irq_affinity(facts: &Facts, config: &CaptureConfig) -> Check {
    let kind = CheckKind::IrqAffinity;
    let workers = config
        .cpus
        .clone()
        .unwrap_or_else(|| default_cpus(facts.captured_queues(config), facts.online_cpus));
    let list = |cpus: &[usize]| -> String {
        let cpus: Vec<String> = cpus.iter().map(usize::to_string).collect();
        cpus.join(",")
    };
    let mut parts = Vec::new();
    let mut shared = Vec::new();
    for device in facts.receiving() {
        parts.push(format!("{}: {}", device.name, device.receive_work));
        shared.extend(
            workers
                .iter()
                .copied()
                .filter(|&cpu| device.receive_work.shares(cpu)),
        );
    }
    shared.sort_unstable();
    shared.dedup();
    let detail = format!("{}; workers on CPU(s) {}", parts.join("; "), list(&workers));
    if shared.is_empty() {
        return Check::ok(kind, detail);
    }
    Check::warn(
        kind,
        format!(
            "{detail}: CPU(s) {} take both, and a worker there sleeps in poll() so the kernel's receive work can run",
            list(&shared)
        ),
        "for line rate, keep the queues' interrupts off the workers' CPUs (echo CPU > /proc/irq/N/smp_affinity_list), or give --cpus other CPUs",
    )
}

fn memlock(facts: &Facts, config: &CaptureConfig) -> Check {
    let kind = CheckKind::Memlock;
    let queues = facts.captured_queues(config) as u64;
    let frame = u64::from(match facts.named().mtu {
        Some(mtu) => fitted_frame_size(
            mtu,
            config.socket.frame_size,
            config.auto_frame_size,
            vxdecap_xsk::page_size(),
        ),
        None => config.socket.frame_size,
    });
    let need = queues * u64::from(config.socket.frame_count) * frame;
    let umem = format!(
        "{} MiB of UMEM ({queues} queue(s) × {} frames × {frame} bytes)",
        need >> 20,
        config.socket.frame_count
    );
    let limit = match facts.memlock {
        Some(MemlockLimit::Unlimited) => "unlimited".to_owned(),
        Some(MemlockLimit::Bytes(bytes)) => format!("{} KiB", bytes >> 10),
        None => "unknown".to_owned(),
    };
    if facts.ipc_lock {
        return Check::ok(
            kind,
            format!("CAP_IPC_LOCK held: {umem} not charged to RLIMIT_MEMLOCK ({limit})"),
        );
    }
    match facts.memlock {
        Some(MemlockLimit::Bytes(bytes)) if bytes < need => Check::fail(
            kind,
            format!(
                "RLIMIT_MEMLOCK {limit} (per user) < {umem}: the kernel refuses to register it (ENOBUFS, xdp_umem_account_pages)"
            ),
            "run as root or with CAP_IPC_LOCK (the unit vxdecap@IFACE has it), or raise the limit (ulimit -l unlimited; LimitMEMLOCK=infinity)",
        ),
        None => Check::warn(kind, format!("RLIMIT_MEMLOCK unknown; {umem}"), ""),
        _ => Check::ok(kind, format!("RLIMIT_MEMLOCK {limit} holds {umem}")),
    }
}

/// `6.18.0-1-amd64` → (6, 18).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn kernel(facts: &Facts) -> Check {
    let kind = CheckKind::Kernel;
    let Some(release) = facts.kernel_release.as_deref() else {
        return Check::warn(kind, "kernel release unknown", "");
    };
    let Some(version) = kernel_version(release) else {
        return Check::warn(kind, format!("cannot read the version of {release}"), "");
    };
    // From the version, not probed: a probe of each would attach a program
    // or bind a socket. Versions from the kernel's history (docs/azure.md §2.1).
    let features = [
        ((5, 4), "need_wakeup"),
        ((5, 9), "BPF links for XDP"),
        ((5, 11), "preferred busy polling"),
        ((6, 15), "NAPI ids for copy-mode sockets"),
    ];
    let have: Vec<&str> = features
        .iter()
        .filter(|(since, _)| version >= *since)
        .map(|(_, name)| *name)
        .collect();
    let lack: Vec<String> = features
        .iter()
        .filter(|(since, _)| version < *since)
        .map(|((major, minor), name)| format!("{name} (Linux {major}.{minor})"))
        .collect();
    let detail = format!(
        "Linux {release}: {} (from the version, not probed)",
        if have.is_empty() {
            "none".to_owned()
        } else {
            have.join(", ")
        }
    );
    if version < (5, 4) {
        return Check::fail(
            kind,
            format!(
                "{detail}; lacks {}: the sockets' bind fails",
                lack.join(", ")
            ),
            "Linux 5.4 or later (Debian 12 has 6.1)",
        );
    }
    if !lack.is_empty() {
        return Check::warn(
            kind,
            format!("{detail}; lacks {}", lack.join(", ")),
            "a newer kernel (Debian 12 backports, or 13)",
        );
    }
    Check::ok(kind, detail)
}

fn port_consumers(facts: &Facts, config: &CaptureConfig) -> Check {
    let kind = CheckKind::PortConsumers;
    // GENEVE's ports too: a kernel GENEVE device or a socket there loses the same way.
    let ports: Vec<u16> = config.ports.all().collect();
    let ports = ports.as_slice();
    let port_list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let port_list = port_list.join(", ");
    let mut up = Vec::new();
    let mut down = Vec::new();
    let mut device_ports = Vec::new();
    if let Ok(links) = &facts.links {
        for link in links {
            let Some(port) = link.vxlan_port.filter(|p| ports.contains(p)) else {
                continue;
            };
            let what = format!("kernel VXLAN device {} (dstport {port})", link.name);
            if link.up {
                device_ports.push(port);
                up.push(what);
            } else {
                down.push(what);
            }
        }
    }
    for socket in &facts.udp_sockets {
        // A VXLAN device's own socket has no process: it is named above.
        if socket.owner.is_none() && device_ports.contains(&socket.port) {
            continue;
        }
        up.push(describe_socket(socket));
    }
    if !up.is_empty() {
        return Check::fail(
            kind,
            format!(
                "{} receive UDP {port_list}: vxdecap's XDP program takes that port before the kernel, so they get nothing while a capture runs, and they take what vxdecap passes to the kernel (queues without a socket) instead of it being counted",
                up.join(", ")
            ),
            "remove it (ip link del DEV) or stop the program, or mirror to another port (--port)",
        );
    }
    let listed = match &facts.links {
        Ok(_) => "no kernel VXLAN device, no UDP socket",
        Err(_) => "no UDP socket (kernel VXLAN devices not listed)",
    };
    if !down.is_empty() {
        return Check::warn(
            kind,
            format!(
                "{} (down): it takes UDP {port_list} when brought up",
                down.join(", ")
            ),
            "remove it: ip link del DEV",
        );
    }
    let check = Check::ok(
        kind,
        format!("nothing else receives UDP {port_list}: {listed}"),
    );
    match &facts.links {
        Err(Unread::Failed(e)) => {
            Check::warn(kind, format!("{}; the links: {e}", check.detail), "")
        }
        _ => check,
    }
}

fn describe_socket(socket: &UdpSocket) -> String {
    let family = if socket.v6 { "udp6" } else { "udp" };
    match &socket.owner {
        Some(owner) => format!("a {family} socket on port {} of {owner}", socket.port),
        None => format!(
            "a {family} socket on port {} that no process holds (a kernel socket: a VXLAN or FOU device?)",
            socket.port
        ),
    }
}
