//! vxdecap: kernel-bypass VXLAN decapsulation for cloud packet mirroring.
//!
//! The data path, in module order: [`steer`] loads the XDP program that
//! steers VXLAN to AF_XDP sockets; [`capture`] runs one pinned worker per
//! rx queue over a socket from `vxdecap-xsk`; each worker's [`stage`]
//! decapsulates with `vxdecap-wire` and hands inner frames through a
//! lock-free [`queue`] to the [`pipeline`]'s analyzer thread, which feeds
//! the [`analyzer`]s (pcap and pcapng writers, counter, printer). [`offline`] pushes a
//! capture file through the same stage, queue and analyzers.
//!
//! To embed vxdecap, start from [`Capture::builder`] and implement
//! [`Analyzer`] (see [`builder`] for an example).
//!
//! Unsafe code lives in the `vxdecap-xsk` crate (rings, UMEM), in the two
//! ioctls of [`tap`] and in the netlink socket calls of [`hotplug`];
//! everything else here is safe Rust.
#![deny(unsafe_code)]

pub mod allow;
pub mod analyzer;
pub mod builder;
pub mod capture;
pub mod config;
pub mod dissect;
pub mod files;
pub mod filter;
pub mod frame;
pub mod hotplug;
pub mod lab;
pub mod metrics;
pub mod netns;
pub mod notify;
pub mod offline;
pub mod pipeline;
pub mod privs;
pub mod queue;
pub mod rxpolicy;
pub mod stage;
pub mod stats;
pub mod steer;
pub mod summary;
pub mod tap;

pub use vxdecap_wire as wire;

pub use analyzer::Analyzer;
pub use builder::{Capture, CaptureBuilder, RunningCapture};
pub use capture::CaptureMode;
pub use frame::{FrameMeta, Frames, InnerFrame};
pub use summary::Summary;
