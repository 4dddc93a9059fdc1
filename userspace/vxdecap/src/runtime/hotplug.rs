//! Interface hot-plug: link events from rtnetlink (`RTMGRP_LINK`).
//!
//! On Azure the Accelerated Networking VF (mlx5) is removed during host
//! servicing and comes back seconds to minutes later, possibly with a new
//! ifindex (and a new name); AF_XDP sockets on it are dead meanwhile. A
//! [`LinkWatcher`] thread reads the kernel's link notifications and hands
//! the capture `LinkEvent`s; the capture tears down and rebuilds the
//! program attachment and the sockets of that interface while the
//! analyzers and outputs keep running.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

pub use crate::sys::netlink::LinkEvent;
use crate::sys::netlink::{parse_link_messages, recv, route_socket};

/// A thread that forwards link events until stopped.
#[derive(Debug)]
pub struct LinkWatcher {
    /// Events, in the order the kernel sent them.
    pub events: mpsc::Receiver<LinkEvent>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl LinkWatcher {
    /// Subscribes to link notifications of this network namespace.
    pub fn start() -> io::Result<Self> {
        let socket = route_socket(libc::RTMGRP_LINK as u32)?;
        let (tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("vxdecap-netlink".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    while !stop.load(Ordering::Relaxed) {
                        let n = recv(&socket, &mut buf);
                        if n <= 0 {
                            // Timeout (checks `stop`) or ENOBUFS (events lost:
                            // the capture also polls the interface by name).
                            continue;
                        }
                        for event in parse_link_messages(&buf[..n as usize]) {
                            if tx.send(event).is_err() {
                                return;
                            }
                        }
                    }
                })?
        };
        Ok(Self {
            events,
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for LinkWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
