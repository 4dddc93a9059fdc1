//! vxdecap: kernel-bypass VXLAN decapsulation for cloud packet mirroring.
//!
//! The data path, in module order: [`steer`] loads the XDP program that
//! steers VXLAN to AF_XDP sockets; [`runtime::live`] runs one pinned worker
//! per rx queue over a socket from `vxdecap-xsk`; each worker's
//! [`datapath::stage`] decapsulates with `vxdecap-wire` and hands inner
//! frames through a lock-free [`datapath::queue`] to the analyzer threads
//! ([`datapath::analyzers`]), which feed the [`analyzer`]s (pcap and pcapng
//! writers, counter, printer). [`runtime::offline`] pushes a capture file
//! ([`input`]) through the same stage, queue and analyzers.
//!
//! To embed vxdecap, start from [`Capture::builder`] and implement
//! [`Analyzer`] (see [`api::builder`] for an example).
//!
//! Unsafe code lives in the `vxdecap-xsk` crate (rings, UMEM), in the two
//! ioctls of [`sys::tap`] and in the netlink socket calls of
//! [`runtime::hotplug`]; everything else here is safe Rust.
#![deny(unsafe_code)]

pub mod analyzer;
pub mod api;
pub mod config;
pub mod datapath;
pub mod error;
pub mod files;
pub mod filter;
pub mod input;
#[cfg(feature = "lab")]
pub mod lab;
pub mod report;
pub mod runtime;
pub mod select;
pub mod steer;
// The one module allowed unsafe code (each block with its SAFETY comment).
#[allow(unsafe_code, reason = "sys is the crate's one unsafe fence")]
pub mod sys;

pub use vxdecap_wire as wire;
pub use vxdecap_xsk as xsk;

pub use analyzer::{each_frame, Analyzer, AnalyzerCounts};
pub use api::{Capture, CaptureBuilder, RunningCapture};
pub use datapath::batch::{FrameMeta, Frames, InnerFrame};
pub use datapath::idle::RxPolicy;
pub use error::ParseError;
pub use report::summary::Summary;
pub use runtime::config::{CaptureMode, QueueSelection};
pub use runtime::error::{CaptureError, SetupError};
pub use select::Cidr;
pub use steer::allow::Allowlist;
pub use vxdecap_wire::reassembly::ReassemblyConfig;
pub use vxdecap_xsk::{BindMode, SocketConfig, XskStatistics};
