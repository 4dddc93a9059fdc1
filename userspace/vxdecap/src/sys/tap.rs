//! TAP devices: a virtual Ethernet interface that inner frames are written
//! to, so that any tool reading an interface (tcpdump, Zeek, Suricata,
//! softflowd, ntopng) sees the tenant's traffic as if on a NIC of its own.
//!
//! The device is created non-persistent: it exists while vxdecap holds its
//! file descriptor, so it goes away on exit, even on SIGKILL. The two
//! ioctls that create it and bring it up are this crate's only unsafe code
//! (the `sys` module below).

use std::fs::File;
use std::io::{self, Write as _};

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_NAME_LEN: usize = 15;

/// Why a tap device cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name is not a usable interface name.
    #[error("--tap {0:?}: an interface name has 1 to 15 characters, none of them '/', ':' or whitespace")]
    BadName(String),
    /// A `%d` pattern: the kernel would choose the name.
    #[error(
        "--tap {0:?}: '%' asks the kernel to choose the name (tap%d gives tap0, tap1, …, whichever is free), \
         which the tools reading the tap cannot know before it exists: give the name itself, such as vxdecap0"
    )]
    PatternName(String),
    /// /dev/net/tun is missing or not accessible.
    #[error("cannot open /dev/net/tun for --tap {name}: {source}: load the tun module (`modprobe tun`) and run as root (CAP_NET_ADMIN)")]
    Open {
        /// The device name.
        name: String,
        /// What the system said.
        source: io::Error,
    },
    /// TUNSETIFF refused.
    #[error("cannot create tap device {name}: {source}: {hint}")]
    Create {
        /// The device name.
        name: String,
        /// What the system said.
        source: io::Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// The device could not be brought up.
    #[error("cannot bring tap device {name} up: {source}")]
    Up {
        /// The device name.
        name: String,
        /// What the system said.
        source: io::Error,
    },
}

/// A TAP device (IFF_TAP | IFF_NO_PI): each write is one Ethernet frame.
#[derive(Debug)]
pub struct TapDevice {
    file: File,
    name: String,
}

impl TapDevice {
    /// Creates the device `name` (or attaches to a persistent tap of that
    /// name, e.g. from `ip tuntap add NAME mode tap`) and brings it up.
    pub fn create(name: &str) -> Result<Self, TapError> {
        check_name(name)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map_err(|source| TapError::Open {
                name: name.to_owned(),
                source,
            })?;
        sys::set_tap(&file, name).map_err(|source| {
            let hint = match source.raw_os_error() {
                Some(libc::EBUSY) => "another process holds it: stop it or choose another name",
                Some(libc::EINVAL) => {
                    "an interface of that name exists and is not a tap: choose another name"
                }
                Some(libc::EPERM) => "run as root (CAP_NET_ADMIN)",
                _ => "check `ip link show` for a clash",
            };
            TapError::Create {
                name: name.to_owned(),
                source,
                hint,
            }
        })?;
        sys::set_up(name).map_err(|source| TapError::Up {
            name: name.to_owned(),
            source,
        })?;
        tracing::info!(tap = name, "tap device up");
        Ok(Self {
            file,
            name: name.to_owned(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's MTU now (from sysfs; 1500 if it cannot be read).
    pub fn mtu(&self) -> usize {
        std::fs::read_to_string(format!("/sys/class/net/{}/mtu", self.name))
            .ok()
            .and_then(|m| m.trim().parse().ok())
            .unwrap_or(1500)
    }

    /// Writes one Ethernet frame: the kernel takes it whole or not at all.
    #[inline]
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let n = self.file.write(frame)?;
        if n == frame.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, "short tap write"))
        }
    }
}

/// Checks a tap name before any syscall. A `%d` pattern, which the kernel
/// would expand to the first free `tap0`, `tap1`, …, is refused: the
/// consumers of a tap (tcpdump -i, Zeek, Suricata) are pointed at it by
/// name before it exists, a name that changes from run to run would leave
/// them reading nothing, and a persistent tap made beforehand for them
/// cannot match a pattern.
pub fn check_name(name: &str) -> Result<(), TapError> {
    if name.contains('%') {
        return Err(TapError::PatternName(name.to_owned()));
    }
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(TapError::BadName(name.to_owned()))
    }
}

/// The ioctls, and all of this crate's unsafe code.
mod sys {
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsRawFd as _, OwnedFd};

    /// `struct ifreq` with `name` (checked: at most 15 bytes, no NUL).
    fn ifreq(name: &str) -> libc::ifreq {
        // SAFETY: ifreq is plain old data (a name array and a union of
        // integers, addresses and a pointer); all-zero is a valid value of each.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = src as libc::c_char;
        }
        req
    }

    /// TUNSETIFF: makes `tun` (an open /dev/net/tun) the tap device `name`.
    pub(super) fn set_tap(tun: &File, name: &str) -> io::Result<()> {
        let mut req = ifreq(name);
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: the fd is open for the duration of the call; TUNSETIFF reads
        // and writes one `struct ifreq`, which `req` is, alive and exclusive.
        let rc = unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP, on a datagram socket.
    pub(super) fn set_up(name: &str) -> io::Result<()> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let sock: OwnedFd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(io::Error::from)?;
        let mut req = ifreq(name);
        // SAFETY: `sock` is open; SIOCGIFFLAGS fills `ifr_flags` of the
        // `struct ifreq` it is given, which `req` is.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just wrote the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        // SAFETY: as above; SIOCSIFFLAGS reads the name and flags of `req`.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_any_syscall() {
        for bad in ["", "a/b", "x:1", "sixteen-chars-xx", "a b", ".."] {
            assert!(
                matches!(TapDevice::create(bad), Err(TapError::BadName(_))),
                "{bad:?}"
            );
        }
        for pattern in ["tap%d", "%d", "vx%s"] {
            let e = TapDevice::create(pattern).unwrap_err();
            assert!(matches!(e, TapError::PatternName(_)), "{pattern:?}: {e}");
            assert!(
                e.to_string().contains("asks the kernel to choose the name"),
                "{e}"
            );
        }
    }
}
