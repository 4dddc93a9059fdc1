//! Keeps the relay program's FIB cache true: a thread follows the kernel's
//! routing notifications (rtnetlink) and makes every cached answer stale
//! ([`FibInvalidator::invalidate`]) on any of them, off the data path.
//!
//! The program caches, per CPU and collector, what `bpf_fib_lookup` said:
//! next-hop and source MACs, egress ifindex and the MTU it checked, for
//! the ingress and TOS it was asked with. That answer can change with:
//! - a neighbour (RTM_NEWNEIGH/RTM_DELNEIGH: a new MAC, `ip neigh replace`,
//!   a move to FAILED, garbage collection);
//! - a route, a rule or a nexthop object (IPv4 and IPv6);
//! - a link (up/down, MTU, MAC, gone: IPv4 flushes a dead device's routes
//!   without a route notification, so the link's own is what tells);
//! - an address (a connected route comes or goes with it);
//! - forwarding on the ingress (netconf, `net.ipv4.conf.*.forwarding`).
//!
//! Any datagram on the socket invalidates: they are rare next to frames,
//! and telling which could matter would be a second FIB. The kernel does
//! not notify everything the lookup reads: a learned path MTU (a
//! next-hop exception) and its expiry, `net.ipv4.ip_forward_use_pmtu` and
//! the multipath hash's sysctls come with no notification, so the thread
//! also invalidates every [`SAFETY_NET`]. Lost notifications (ENOBUFS)
//! invalidate too; if the socket fails, the thread says so once, counts
//! it, and invalidates every [`FALLBACK`] for the rest of the run.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::CONSOLE;
use crate::steer::relay::FibInvalidator;
use crate::sys::netlink::{recv, route_socket};

/// Invalidated at least this often, notification or not.
pub const SAFETY_NET: Duration = Duration::from_secs(1);
/// How often without the rtnetlink socket.
pub const FALLBACK: Duration = Duration::from_millis(100);

/// The rtnetlink groups whose notifications can change a FIB answer.
pub fn groups() -> u32 {
    // Groups above the legacy RTMGRP_ masks: group n is bit n - 1 (all ≤ 32).
    let group = |n: libc::c_uint| 1u32 << (n - 1);
    (libc::RTMGRP_LINK
        | libc::RTMGRP_NEIGH
        | libc::RTMGRP_IPV4_IFADDR
        | libc::RTMGRP_IPV4_ROUTE
        | libc::RTMGRP_IPV4_RULE
        | libc::RTMGRP_IPV6_IFADDR
        | libc::RTMGRP_IPV6_ROUTE) as u32
        | group(libc::RTNLGRP_IPV6_RULE)
        | group(libc::RTNLGRP_IPV4_NETCONF)
        | group(libc::RTNLGRP_IPV6_NETCONF)
        | group(libc::RTNLGRP_NEXTHOP)
}

/// Why the cache was made stale, counted for the summary and the metrics.
#[derive(Debug, Default)]
pub struct FibWatchStats {
    /// On an rtnetlink notification.
    pub events: AtomicU64,
    /// Notifications lost (ENOBUFS): on the chance one mattered.
    pub lost: AtomicU64,
    /// By the timer ([`SAFETY_NET`], or [`FALLBACK`] without the socket).
    pub timer: AtomicU64,
    /// The socket failed (or never opened): the timer alone keeps the cache true.
    pub failed: AtomicBool,
}

/// Starts the thread; it runs until `stop` is raised. It never fails to
/// keep the cache true: without a socket it falls back to the timer.
pub fn spawn(
    invalidator: FibInvalidator,
    stats: Arc<FibWatchStats>,
    stop: Arc<AtomicBool>,
) -> io::Result<std::thread::JoinHandle<()>> {
    // Opened here, so that a failure is told before the program is attached.
    match route_socket(groups()) {
        Ok(socket) => start(Some(socket), invalidator, stats, stop),
        Err(e) => spawn_timer_only(
            invalidator,
            stats,
            stop,
            &format!("cannot follow routing changes: {e}"),
        ),
    }
}

/// Starts the thread without rtnetlink, as after the socket failed for
/// `why` (told once, and counted as a failure): the cache is made stale
/// every [`FALLBACK`].
pub fn spawn_timer_only(
    invalidator: FibInvalidator,
    stats: Arc<FibWatchStats>,
    stop: Arc<AtomicBool>,
    why: &str,
) -> io::Result<std::thread::JoinHandle<()>> {
    fail(&stats, why);
    start(None, invalidator, stats, stop)
}

fn start(
    socket: Option<OwnedFd>,
    invalidator: FibInvalidator,
    stats: Arc<FibWatchStats>,
    stop: Arc<AtomicBool>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vxdecap-fib".into())
        .spawn(move || watch(socket, &invalidator, &stats, &stop))
}

/// Notes the watcher's failure, once, and says what follows.
fn fail(stats: &FibWatchStats, why: &str) {
    if !stats.failed.swap(true, Ordering::Relaxed) {
        tracing::warn!(target: CONSOLE, "{why}; the relay's FIB cache is now refreshed every {} ms instead", FALLBACK.as_millis());
    }
}

fn watch(
    mut socket: Option<OwnedFd>,
    invalidator: &FibInvalidator,
    stats: &FibWatchStats,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    let mut map_failed = false;
    let mut invalidate = |counter: &AtomicU64, last: &mut Instant| {
        counter.fetch_add(1, Ordering::Relaxed);
        *last = Instant::now();
        if let Err(e) = invalidator.invalidate() {
            // The map write itself failing is as bad as the socket: say it once.
            if !map_failed {
                map_failed = true;
                tracing::warn!(target: CONSOLE, "cannot refresh the relay's FIB cache: {e}");
            }
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let period = if let Some(s) = &socket {
            // Waits 100 ms at most (the socket's timeout).
            let n = recv(s, &mut buf);
            if n > 0 {
                invalidate(&stats.events, &mut last);
            } else if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR) => {}
                    Some(libc::ENOBUFS) => invalidate(&stats.lost, &mut last),
                    _ => {
                        fail(stats, &format!("the rtnetlink socket failed: {e}"));
                        socket = None;
                    }
                }
            }
            SAFETY_NET
        } else {
            // Short sleeps, to see `stop` soon.
            std::thread::sleep(Duration::from_millis(50));
            FALLBACK
        };
        if last.elapsed() >= period {
            invalidate(&stats.timer, &mut last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_groups_are_the_kernels_rtnlgrp_numbers_as_bits() {
        let g = groups();
        // RTNLGRP_LINK 1, NEIGH 3, IPV4_IFADDR 5, IPV4_ROUTE 7, IPV4_RULE 8, IPV6_IFADDR 9,
        // IPV6_ROUTE 11, IPV6_RULE 19, IPV4_NETCONF 24, IPV6_NETCONF 25, NEXTHOP 32.
        for n in [1, 3, 5, 7, 8, 9, 11, 19, 24, 25, 32] {
            assert_ne!(g & (1 << (n - 1)), 0, "group {n}");
        }
        assert_eq!(g.count_ones(), 11);
    }
}
