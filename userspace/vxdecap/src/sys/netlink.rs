//! rtnetlink (NETLINK_ROUTE): link notifications (an interface appearing,
//! changing, going away), which XDP programs an interface has, and the
//! list of links with their kinds (a kernel VXLAN device and its port).
//! The socket calls are this module's unsafe code (also used by
//! [`super::genl`]); the message parsing is safe and tested on byte
//! fixtures.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_VXLAN_PORT: u16 = 15;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_XDP: u16 = 43;
const IFLA_NUM_RX_QUEUES: u16 = 32;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const IFF_UP: u32 = 1;
const NLMSG_HDR: usize = 16;
const IFINFO: usize = 16;

/// A link appeared, changed or went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// RTM_NEWLINK: a link exists (new or changed).
    New {
        /// ifindex.
        index: u32,
        /// Name.
        name: String,
        /// Hardware address, when the message carried one.
        mac: Option<Vec<u8>>,
        /// Administratively up.
        up: bool,
    },
    /// RTM_DELLINK: the link is gone.
    Gone {
        /// ifindex.
        index: u32,
        /// Name.
        name: String,
    },
}

/// Parses every link message of one netlink datagram; anything else or
/// anything malformed is skipped (never a panic).
pub fn parse_link_messages(mut buf: &[u8]) -> Vec<LinkEvent> {
    let mut events = Vec::new();
    while buf.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < NLMSG_HDR || len > buf.len() {
            break;
        }
        let body = &buf[NLMSG_HDR..len];
        // The bridge reports its ports with ifi_family AF_BRIDGE: an
        // RTM_DELLINK then means "no longer a port", not "gone".
        if (kind == RTM_NEWLINK || kind == RTM_DELLINK)
            && body.len() >= IFINFO
            && i32::from(body[0]) != libc::AF_BRIDGE
        {
            let index = i32::from_ne_bytes([body[4], body[5], body[6], body[7]]) as u32;
            let flags = u32::from_ne_bytes([body[8], body[9], body[10], body[11]]);
            let (mut name, mut mac) = (None, None);
            let mut attrs = &body[IFINFO..];
            while attrs.len() >= 4 {
                let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                let atype = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                let data = &attrs[4..alen];
                match atype {
                    IFLA_IFNAME => {
                        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                        name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
                    }
                    IFLA_ADDRESS => mac = Some(data.to_vec()),
                    _ => {}
                }
                let step = (alen + 3) & !3;
                attrs = attrs.get(step..).unwrap_or_default();
            }
            if let Some(name) = name {
                events.push(if kind == RTM_NEWLINK {
                    LinkEvent::New {
                        index,
                        name,
                        mac,
                        up: flags & IFF_UP != 0,
                    }
                } else {
                    LinkEvent::Gone { index, name }
                });
            }
        }
        let step = (len + 3) & !3;
        buf = buf.get(step..).unwrap_or_default();
    }
    events
}

/// The XDP programs attached to an interface, by mode (their program ids),
/// as rtnetlink reports them (`ip -d link show` prints the same).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpAttached {
    /// Native mode, in the driver (`ip link set dev X xdpdrv off` removes it).
    pub driver: Option<u32>,
    /// Generic mode, in the kernel's receive path (`xdpgeneric off`).
    pub generic: Option<u32>,
    /// Offloaded to the NIC (`xdpoffload off`).
    pub offload: Option<u32>,
}

/// What the kernel says about one link (RTM_GETLINK): its XDP programs and
/// its rx queues. Asked over netlink, so it is this thread's network
/// namespace's link (sysfs shows the namespace it was mounted in).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// The XDP programs attached.
    pub xdp: XdpAttached,
    /// Its number of rx queues (`IFLA_NUM_RX_QUEUES`), when reported.
    pub rx_queues: Option<u32>,
}

/// Asks the kernel about `ifindex` (RTM_GETLINK).
pub fn link_info(ifindex: u32) -> io::Result<LinkInfo> {
    let socket = route_socket(0)?;
    let mut request = Vec::with_capacity(NLMSG_HDR + IFINFO);
    request.extend_from_slice(&((NLMSG_HDR + IFINFO) as u32).to_ne_bytes());
    request.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    request.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    request.extend_from_slice(&0u32.to_ne_bytes()); // to the kernel
    request.extend_from_slice(&[0u8; 4]); // family, padding, type
    request.extend_from_slice(&ifindex.to_ne_bytes());
    request.extend_from_slice(&[0u8; 8]); // flags, change
    send(&socket, &request)?;
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..16 {
        let n = recv(&socket, &mut buf);
        if n <= 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no netlink answer"));
        }
        if let Some(answer) = parse_link_info(&buf[..n as usize], ifindex) {
            return answer.map_err(io::Error::from_raw_os_error);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no RTM_NEWLINK answer",
    ))
}

/// Asks the kernel which XDP programs `ifindex` has.
pub fn xdp_attached(ifindex: u32) -> io::Result<XdpAttached> {
    link_info(ifindex).map(|info| info.xdp)
}

/// The XDP programs of `ifindex` from an RTM_NEWLINK message in `buf`, a
/// kernel error (errno) for an NLMSG_ERROR, `None` if neither is there.
pub fn parse_xdp_attached(buf: &[u8], ifindex: u32) -> Option<Result<XdpAttached, i32>> {
    parse_link_info(buf, ifindex).map(|answer| answer.map(|info| info.xdp))
}

/// What an RTM_NEWLINK message in `buf` says about `ifindex`, a kernel
/// error (errno) for an NLMSG_ERROR, `None` if neither is there.
pub fn parse_link_info(mut buf: &[u8], ifindex: u32) -> Option<Result<LinkInfo, i32>> {
    while buf.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < NLMSG_HDR || len > buf.len() {
            return None;
        }
        let body = &buf[NLMSG_HDR..len];
        if kind == NLMSG_ERROR && body.len() >= 4 {
            let errno = -i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
            return Some(Err(errno));
        }
        if kind == RTM_NEWLINK
            && body.len() >= IFINFO
            && u32::from_ne_bytes([body[4], body[5], body[6], body[7]]) == ifindex
        {
            let mut found = LinkInfo::default();
            for (atype, data) in attributes(&body[IFINFO..]) {
                match atype {
                    IFLA_XDP => found.xdp = xdp_programs(data),
                    IFLA_NUM_RX_QUEUES => {
                        found.rx_queues = data
                            .first_chunk::<4>()
                            .map(|b| u32::from_ne_bytes(*b))
                            .filter(|&n| n > 0);
                    }
                    _ => {}
                }
            }
            return Some(Ok(found));
        }
        let step = (len + 3) & !3;
        buf = buf.get(step..).unwrap_or_default();
    }
    None
}

/// The program ids of a nested `IFLA_XDP` attribute, by mode.
fn xdp_programs(nest: &[u8]) -> XdpAttached {
    let mut found = XdpAttached::default();
    for (xtype, value) in attributes(nest) {
        let id = (value.len() >= 4)
            .then(|| u32::from_ne_bytes([value[0], value[1], value[2], value[3]]))
            .filter(|&id| id != 0);
        match xtype {
            IFLA_XDP_DRV_PROG_ID => found.driver = id,
            IFLA_XDP_SKB_PROG_ID => found.generic = id,
            IFLA_XDP_HW_PROG_ID => found.offload = id,
            _ => {}
        }
    }
    found
}

/// One link of the namespace, as a dump of RTM_GETLINK lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Administratively up.
    pub up: bool,
    /// Its kind (`IFLA_INFO_KIND`: `vxlan`, `veth`, `bridge`), for a
    /// virtual device.
    pub kind: Option<String>,
    /// A VXLAN device's UDP destination port (`IFLA_VXLAN_PORT`), which it
    /// also listens on.
    pub vxlan_port: Option<u16>,
    /// The ifindex of its master (a bridge, a bond, netvsc for its VF).
    pub master: Option<u32>,
}

/// Every link of this thread's network namespace (`ip -d link`).
pub fn links() -> io::Result<Vec<Link>> {
    let socket = route_socket(0)?;
    let mut request = Vec::with_capacity(NLMSG_HDR + IFINFO);
    request.extend_from_slice(&((NLMSG_HDR + IFINFO) as u32).to_ne_bytes());
    request.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    request.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    request.extend_from_slice(&0u32.to_ne_bytes()); // to the kernel
    request.extend_from_slice(&[0u8; IFINFO]); // every family, every link
    send(&socket, &request)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut found = Vec::new();
    // A dump comes in datagrams of a few dozen links each, then NLMSG_DONE.
    for _ in 0..4096 {
        let n = recv(&socket, &mut buf);
        if n <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "netlink dump cut short",
            ));
        }
        let (links, end) = parse_links(&buf[..n as usize]);
        found.extend(links);
        match end {
            Some(Ok(())) => return Ok(found),
            Some(Err(errno)) => return Err(io::Error::from_raw_os_error(errno)),
            None => {}
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "netlink dump without end",
    ))
}

/// The links of one datagram of a link dump, and how the dump ended if it
/// did here (NLMSG_DONE, or an error's errno); malformed parts are skipped.
pub fn parse_links(mut buf: &[u8]) -> (Vec<Link>, Option<Result<(), i32>>) {
    let mut links = Vec::new();
    while buf.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < NLMSG_HDR || len > buf.len() {
            break;
        }
        let body = &buf[NLMSG_HDR..len];
        match kind {
            NLMSG_DONE => return (links, Some(Ok(()))),
            NLMSG_ERROR if body.len() >= 4 => {
                let errno = -i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                return (links, Some(if errno == 0 { Ok(()) } else { Err(errno) }));
            }
            RTM_NEWLINK if body.len() >= IFINFO => links.extend(parse_link(body)),
            _ => {}
        }
        buf = buf.get((len + 3) & !3..).unwrap_or_default();
    }
    (links, None)
}

/// One RTM_NEWLINK body (ifinfomsg and attributes); `None` without a name.
fn parse_link(body: &[u8]) -> Option<Link> {
    let mut link = Link {
        index: u32::from_ne_bytes([body[4], body[5], body[6], body[7]]),
        up: u32::from_ne_bytes([body[8], body[9], body[10], body[11]]) & IFF_UP != 0,
        ..Link::default()
    };
    let mut named = false;
    for (atype, data) in attributes(&body[IFINFO..]) {
        match atype {
            IFLA_IFNAME => {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                link.name = String::from_utf8_lossy(&data[..end]).into_owned();
                named = true;
            }
            IFLA_MASTER => {
                link.master = data.first_chunk::<4>().map(|b| u32::from_ne_bytes(*b));
            }
            IFLA_LINKINFO => {
                for (itype, value) in attributes(data) {
                    match itype {
                        IFLA_INFO_KIND => {
                            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                            link.kind = Some(String::from_utf8_lossy(&value[..end]).into_owned());
                        }
                        IFLA_INFO_DATA => {
                            link.vxlan_port = attributes(value)
                                .find(|&(t, _)| t == IFLA_VXLAN_PORT)
                                .and_then(|(_, port)| port.first_chunk::<2>())
                                .map(|b| u16::from_be_bytes(*b));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    // IFLA_VXLAN_PORT means a destination port only on a VXLAN device.
    if link.kind.as_deref() != Some("vxlan") {
        link.vxlan_port = None;
    }
    named.then_some(link)
}

/// The (type, value) pairs of a run of netlink attributes; stops at the
/// first malformed one.
pub(crate) fn attributes(mut attrs: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if attrs.len() < 4 {
            return None;
        }
        let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let atype = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if alen < 4 || alen > attrs.len() {
            return None;
        }
        let data = &attrs[4..alen];
        attrs = attrs.get((alen + 3) & !3..).unwrap_or_default();
        Some((atype, data))
    })
}

/// A NETLINK_ROUTE socket subscribed to the multicast `groups` (0: none,
/// for requests), with a 100 ms receive timeout (so its reader can
/// check for a stop).
pub(crate) fn route_socket(groups: u32) -> io::Result<OwnedFd> {
    netlink_socket(libc::NETLINK_ROUTE, groups)
}

/// A netlink socket of `protocol` (NETLINK_ROUTE, NETLINK_GENERIC)
/// subscribed to `groups`, with a 100 ms receive timeout.
pub(crate) fn netlink_socket(protocol: i32, groups: u32) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes integer arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_nl.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = groups;
    // SAFETY: `addr` is a valid sockaddr_nl of the size given.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: `timeout` is a valid timeval of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// Sends one netlink message to the kernel.
pub(crate) fn send(socket: &OwnedFd, message: &[u8]) -> io::Result<()> {
    // SAFETY: `message` is valid for reads of its length and `socket` is
    // open; an unconnected netlink socket sends to the kernel.
    let n = unsafe {
        libc::send(
            socket.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One datagram into `buf`; its length, or ≤ 0 on timeout or error.
pub(crate) fn recv(socket: &OwnedFd, buf: &mut [u8]) -> isize {
    // SAFETY: `buf` is valid for writes of its length and `socket` is open.
    unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, index: i32, flags: u32, name: &str, mac: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        for (t, data) in [
            (IFLA_IFNAME, [name.as_bytes(), &[0]].concat()),
            (IFLA_ADDRESS, mac.to_vec()),
        ] {
            let len = 4 + data.len();
            attrs.extend_from_slice(&(len as u16).to_ne_bytes());
            attrs.extend_from_slice(&t.to_ne_bytes());
            attrs.extend_from_slice(&data);
            while attrs.len() % 4 != 0 {
                attrs.push(0);
            }
        }
        link_message(kind, index, flags, &attrs)
    }

    /// A netlink message of `kind` carrying an ifinfomsg for `index` with
    /// `flags`, then `attrs`.
    fn link_message(kind: u16, index: i32, flags: u32, attrs: &[u8]) -> Vec<u8> {
        let mut info = vec![0u8; IFINFO];
        info[4..8].copy_from_slice(&index.to_ne_bytes());
        info[8..12].copy_from_slice(&flags.to_ne_bytes());
        let len = NLMSG_HDR + info.len() + attrs.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&info);
        m.extend_from_slice(attrs);
        m
    }

    #[test]
    fn link_messages_parse_and_garbage_is_skipped() {
        let mut buf = message(RTM_NEWLINK, 7, IFF_UP, "eth1", &[2, 0, 0, 0, 0, 1]);
        buf.extend(message(RTM_DELLINK, 7, 0, "eth1", &[]));
        buf.extend(message(24, 1, 0, "route", &[])); // RTM_NEWROUTE: not a link
        let events = parse_link_messages(&buf);
        assert_eq!(
            events,
            vec![
                LinkEvent::New {
                    index: 7,
                    name: "eth1".into(),
                    mac: Some(vec![2, 0, 0, 0, 0, 1]),
                    up: true
                },
                LinkEvent::Gone {
                    index: 7,
                    name: "eth1".into()
                },
            ]
        );
        for cut in 0..buf.len() {
            let _ = parse_link_messages(&buf[..cut]);
        }
        let mut bad = buf.clone();
        bad[0] = 0xff; // length beyond the buffer
        assert!(parse_link_messages(&bad).is_empty());
    }

    /// A bridge port leaving its bridge: the bridge's RTM_DELLINK (family
    /// AF_BRIDGE) is not the device going away. It was taken for it: a
    /// capture on a bridge port stopped, and a VF that left its master had
    /// its program detached while frames still arrived.
    #[test]
    fn bridge_port_messages_are_not_link_events() {
        let mut port_gone = message(RTM_DELLINK, 7, 0, "eth1", &[]);
        port_gone[NLMSG_HDR] = libc::AF_BRIDGE as u8;
        assert!(parse_link_messages(&port_gone).is_empty());
        let mut port_new = message(RTM_NEWLINK, 7, IFF_UP, "eth1", &[2, 0, 0, 0, 0, 1]);
        port_new[NLMSG_HDR] = libc::AF_BRIDGE as u8;
        assert!(parse_link_messages(&port_new).is_empty());
    }

    /// An RTM_NEWLINK for `index` with an IFLA_XDP nest of (type, u32) attributes.
    fn xdp_message(index: i32, xdp: &[(u16, u32)]) -> Vec<u8> {
        let mut nest = Vec::new();
        nest.extend_from_slice(&[5, 0, 2, 0, 2, 0, 0, 0]); // IFLA_XDP_ATTACHED = 2, padded
        for &(t, v) in xdp {
            nest.extend_from_slice(&8u16.to_ne_bytes());
            nest.extend_from_slice(&t.to_ne_bytes());
            nest.extend_from_slice(&v.to_ne_bytes());
        }
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&((4 + nest.len()) as u16).to_ne_bytes());
        attrs.extend_from_slice(&(IFLA_XDP | 0x8000).to_ne_bytes()); // NLA_F_NESTED
        attrs.extend_from_slice(&nest);
        link_message(RTM_NEWLINK, index, 0, &attrs)
    }

    #[test]
    fn xdp_attachments_parse_by_mode() {
        let generic = xdp_message(7, &[(IFLA_XDP_SKB_PROG_ID, 950), (4, 950)]);
        assert_eq!(
            parse_xdp_attached(&generic, 7),
            Some(Ok(XdpAttached {
                generic: Some(950),
                ..XdpAttached::default()
            }))
        );
        assert_eq!(parse_xdp_attached(&generic, 8), None, "another interface");
        let both = xdp_message(7, &[(IFLA_XDP_DRV_PROG_ID, 3), (IFLA_XDP_HW_PROG_ID, 4)]);
        assert_eq!(
            parse_xdp_attached(&both, 7),
            Some(Ok(XdpAttached {
                driver: Some(3),
                generic: None,
                offload: Some(4),
            }))
        );
        let mut error = vec![0u8; NLMSG_HDR + 4];
        error[0] = (NLMSG_HDR + 4) as u8;
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[16..20].copy_from_slice(&(-libc::ENODEV).to_ne_bytes());
        assert_eq!(parse_xdp_attached(&error, 7), Some(Err(libc::ENODEV)));
        for cut in 0..generic.len() {
            let _ = parse_xdp_attached(&generic[..cut], 7);
        }
    }

    #[test]
    fn the_rx_queue_count_parses_beside_the_xdp_programs() {
        let mut message = xdp_message(7, &[(IFLA_XDP_SKB_PROG_ID, 950)]);
        message.extend_from_slice(&8u16.to_ne_bytes());
        message.extend_from_slice(&IFLA_NUM_RX_QUEUES.to_ne_bytes());
        message.extend_from_slice(&4u32.to_ne_bytes());
        let len = message.len() as u32;
        message[..4].copy_from_slice(&len.to_ne_bytes());
        let info = parse_link_info(&message, 7)
            .expect("an answer")
            .expect("no error");
        assert_eq!(info.rx_queues, Some(4));
        assert_eq!(info.xdp.generic, Some(950));
        for cut in 0..message.len() {
            let _ = parse_link_info(&message[..cut], 7);
        }
    }
    /// A netlink attribute: header, value, padding to 4 bytes.
    fn attr(t: u16, value: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&t.to_ne_bytes());
        a.extend_from_slice(value);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn newlink(index: i32, flags: u32, attrs: &[u8]) -> Vec<u8> {
        let mut info = vec![0u8; IFINFO];
        info[4..8].copy_from_slice(&index.to_ne_bytes());
        info[8..12].copy_from_slice(&flags.to_ne_bytes());
        let len = NLMSG_HDR + info.len() + attrs.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&info);
        m.extend_from_slice(attrs);
        m
    }

    #[test]
    fn a_link_dump_gives_kinds_vxlan_ports_masters_and_its_end() {
        let vxlan_data = attr(IFLA_VXLAN_PORT, &4789u16.to_be_bytes());
        let linkinfo = [
            attr(IFLA_INFO_KIND, b"vxlan\0"),
            attr(IFLA_INFO_DATA | 0x8000, &vxlan_data),
        ]
        .concat();
        let mut dump = newlink(
            5,
            IFF_UP,
            &[
                attr(IFLA_IFNAME, b"vxlan0\0"),
                attr(IFLA_LINKINFO | 0x8000, &linkinfo),
            ]
            .concat(),
        );
        // A bridge port with a VXLAN-looking attribute that is not a VXLAN port.
        let bridge_info = [
            attr(IFLA_INFO_KIND, b"veth\0"),
            attr(IFLA_INFO_DATA, &vxlan_data),
        ]
        .concat();
        dump.extend(newlink(
            6,
            0,
            &[
                attr(IFLA_IFNAME, b"enP1s1\0"),
                attr(IFLA_MASTER, &3u32.to_ne_bytes()),
                attr(IFLA_LINKINFO, &bridge_info),
            ]
            .concat(),
        ));
        let (links, end) = parse_links(&dump);
        assert_eq!(end, None, "no NLMSG_DONE yet");
        assert_eq!(
            links,
            [
                Link {
                    index: 5,
                    name: "vxlan0".into(),
                    up: true,
                    kind: Some("vxlan".into()),
                    vxlan_port: Some(4789),
                    master: None,
                },
                Link {
                    index: 6,
                    name: "enP1s1".into(),
                    up: false,
                    kind: Some("veth".into()),
                    vxlan_port: None,
                    master: Some(3),
                },
            ]
        );
        let mut done = vec![0u8; NLMSG_HDR + 4];
        done[0] = (NLMSG_HDR + 4) as u8;
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        let (links, end) = parse_links(&done);
        assert!(links.is_empty());
        assert_eq!(end, Some(Ok(())));
        for cut in 0..dump.len() {
            let _ = parse_links(&dump[..cut]);
        }
    }
}
