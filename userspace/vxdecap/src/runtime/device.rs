//! What sysfs and the kernel say about the capture interface.

/// Number of rx queues of `interface` a socket can bind: those in use
/// (`real_num_rx_queues`), not those allocated. They differ on mlx5 (its
/// channels can grow), on virtio_net with fewer CPUs than queue pairs, and
/// on a veth made without `numrxqueues` (2 allocated here, 1 in use); a
/// socket on a queue beyond those in use fails to bind. Asked first with
/// ETHTOOL_GCHANNELS (this thread's network namespace, which a program
/// embedding the library may have entered with setns while sysfs still
/// shows another's), then from sysfs's `rx-N` (one per queue in use), and
/// last over netlink (IFLA_NUM_RX_QUEUES: allocated, the only count left).
pub fn rx_queue_count(interface: &str) -> Option<u32> {
    crate::sys::ethtool::rx_channels(interface)
        .ok()
        .or_else(|| sysfs_rx_queue_count(interface))
        .or_else(|| {
            let index = nix::net::if_::if_nametoindex(interface).ok()?;
            crate::sys::netlink::link_info(index).ok()?.rx_queues
        })
}

/// Number of rx queues in use of `interface`, from sysfs.
fn sysfs_rx_queue_count(interface: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{interface}/queues")).ok()?;
    let count = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    u32::try_from(count).ok().filter(|&n| n > 0)
}

/// Checks that `interface` exists in this network namespace.
pub fn interface_exists(interface: &str) -> bool {
    nix::net::if_::if_nametoindex(interface).is_ok()
}

/// The interface's hardware address, from sysfs.
pub(crate) fn interface_mac(name: &str) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    text.trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

/// True when the interface is administratively up.
pub(crate) fn interface_up(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
        .ok()
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & 1 != 0)
}
