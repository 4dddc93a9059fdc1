//! Generic netlink's `netdev` family (Linux 6.3+): what XDP a device's
//! driver supports (`xdp-features`: native XDP, redirect, AF_XDP zero-copy),
//! as `ynl --family netdev --do dev-get` shows it. Uses the netlink socket
//! calls of [`super::netlink`]; the parsing is safe and tested on bytes.

use std::io;

use super::netlink::{attributes, netlink_socket, recv, send};

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_HDR: usize = 16;
const GENL_HDR: usize = 4;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;

/// A driver's XDP features (`enum netdev_xdp_act`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpFeatures(pub u64);

impl XdpFeatures {
    /// XDP_PASS, XDP_DROP, XDP_TX, XDP_ABORTED: native XDP.
    pub const BASIC: u64 = 1;
    /// XDP_REDIRECT, which AF_XDP needs.
    pub const REDIRECT: u64 = 2;
    /// AF_XDP zero-copy sockets.
    pub const XSK_ZEROCOPY: u64 = 8;
    /// Multi-buffer (frames over a page).
    pub const RX_SG: u64 = 32;

    /// Native XDP with redirect: what a driver-mode attach for AF_XDP needs.
    pub fn native_redirect(self) -> bool {
        self.0 & (Self::BASIC | Self::REDIRECT) == Self::BASIC | Self::REDIRECT
    }

    /// AF_XDP zero-copy.
    pub fn zero_copy(self) -> bool {
        self.0 & Self::XSK_ZEROCOPY != 0
    }

    /// The names `ynl` prints: `basic, redirect, xsk-zerocopy`.
    pub fn names(self) -> String {
        let names: Vec<&str> = [
            (Self::BASIC, "basic"),
            (Self::REDIRECT, "redirect"),
            (4, "ndo-xmit"),
            (Self::XSK_ZEROCOPY, "xsk-zerocopy"),
            (16, "hw-offload"),
            (Self::RX_SG, "rx-sg"),
            (64, "ndo-xmit-sg"),
        ]
        .iter()
        .filter(|&&(bit, _)| self.0 & bit != 0)
        .map(|&(_, name)| name)
        .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    }
}

/// The XDP features of `ifindex` in this thread's network namespace.
/// `ENOENT` from a kernel without the netdev family (before 6.3).
pub fn xdp_features(ifindex: u32) -> io::Result<XdpFeatures> {
    let socket = netlink_socket(libc::NETLINK_GENERIC, 0)?;
    let name = attribute(CTRL_ATTR_FAMILY_NAME, b"netdev\0");
    send(
        &socket,
        &message(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, &name),
    )?;
    let family = u16_attribute(&answer(&socket)?, CTRL_ATTR_FAMILY_ID)?;
    let index = attribute(NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes());
    send(&socket, &message(family, NETDEV_CMD_DEV_GET, 1, &index))?;
    let attrs = answer(&socket)?;
    let features = attributes(&attrs)
        .find(|&(t, _)| t == NETDEV_A_DEV_XDP_FEATURES)
        .and_then(|(_, v)| v.first_chunk::<8>().map(|b| u64::from_ne_bytes(*b)))
        .ok_or_else(missing)?;
    Ok(XdpFeatures(features))
}

/// The u16 attribute `kind` of `attrs`.
fn u16_attribute(attrs: &[u8], kind: u16) -> io::Result<u16> {
    attributes(attrs)
        .find(|&(t, _)| t == kind)
        .and_then(|(_, v)| v.first_chunk::<2>().map(|b| u16::from_ne_bytes(*b)))
        .ok_or_else(missing)
}

fn missing() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "attribute missing from the answer",
    )
}

/// The attributes of the answer to the request just sent, or the kernel's error.
fn answer(socket: &std::os::fd::OwnedFd) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 16 * 1024];
    let n = recv(socket, &mut buf);
    if n <= 0 {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "no netlink answer"));
    }
    match parse_answer(&buf[..n as usize]) {
        Some(Ok(attrs)) => Ok(attrs.to_vec()),
        Some(Err(errno)) => Err(io::Error::from_raw_os_error(errno)),
        None => Err(io::Error::new(io::ErrorKind::InvalidData, "no answer")),
    }
}

/// The attributes of the first generic netlink answer in `buf`, or the
/// errno of an NLMSG_ERROR; `None` if neither is there.
fn parse_answer(buf: &[u8]) -> Option<Result<&[u8], i32>> {
    let len = u32::from_ne_bytes(*buf.first_chunk::<4>()?) as usize;
    let kind = u16::from_ne_bytes(*buf.get(4..)?.first_chunk::<2>()?);
    let body = buf.get(NLMSG_HDR..len)?;
    if kind == NLMSG_ERROR {
        let errno = -i32::from_ne_bytes(*body.first_chunk::<4>()?);
        return Some(Err(errno));
    }
    Some(Ok(body.get(GENL_HDR..)?))
}

/// A request of `family`: netlink header, genl header (`cmd`, `version`), `attrs`.
fn message(family: u16, cmd: u8, version: u8, attrs: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDR + GENL_HDR + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&family.to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // to the kernel
    m.extend_from_slice(&[cmd, version, 0, 0]);
    m.extend_from_slice(attrs);
    m
}

/// One attribute, padded to 4 bytes.
fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(4 + value.len() + 3);
    a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(value);
    a.resize(a.len().next_multiple_of(4), 0);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_parses_and_an_error_gives_its_errno() {
        let attrs = [
            attribute(NETDEV_A_DEV_IFINDEX, &7u32.to_ne_bytes()),
            attribute(NETDEV_A_DEV_XDP_FEATURES, &0x2bu64.to_ne_bytes()),
        ]
        .concat();
        let reply = message(30, NETDEV_CMD_DEV_GET, 1, &attrs);
        let body = parse_answer(&reply).expect("an answer").expect("no error");
        let features = attributes(body)
            .find(|&(t, _)| t == NETDEV_A_DEV_XDP_FEATURES)
            .and_then(|(_, v)| v.first_chunk::<8>().map(|b| u64::from_ne_bytes(*b)));
        let features = XdpFeatures(features.expect("the features"));
        assert!(features.native_redirect() && features.zero_copy());
        assert_eq!(features.names(), "basic, redirect, xsk-zerocopy, rx-sg");
        assert!(!XdpFeatures(XdpFeatures::BASIC).native_redirect());
        assert_eq!(XdpFeatures(0).names(), "none");

        let mut error = message(NLMSG_ERROR, 0, 0, &[]);
        error[16..20].copy_from_slice(&(-libc::ENODEV).to_ne_bytes());
        assert_eq!(parse_answer(&error), Some(Err(libc::ENODEV)));
        for cut in 0..reply.len() {
            let _ = parse_answer(&reply[..cut]);
        }
    }
}
