//! vxdecap: kernel-bypass VXLAN decapsulation for cloud packet mirroring.
//!
//! The folders follow a packet:
//!
//! ```text
//! NIC ─► XDP program ─► AF_XDP socket ─► worker's batch loop ─► lanes ─► analyzers ─► outputs
//!        steer/          vxdecap-xsk      datapath/                      analyzer/
//! ```
//!
//! - [`steer`] loads the XDP program that steers the tunnel ports to
//!   AF_XDP sockets (and passes everything else to the kernel), with its
//!   decision counters and the source and VNI allowlists.
//! - [`datapath`] is the per-packet path, the same for live capture and
//!   offline replay: a worker's batch loop ([`datapath::worker`]) takes
//!   frames from a source ([`datapath::source`]: an AF_XDP socket from
//!   `vxdecap-xsk`, or a capture file read by [`input`]), the stage
//!   ([`datapath::stage`]) decapsulates them with `vxdecap-wire`, and each
//!   batch of inner frames ([`datapath::batch`]) goes through lock-free
//!   lanes ([`datapath::queue`]) to the analyzer threads
//!   ([`datapath::analyzers`]) and back. Nothing there allocates, locks or
//!   logs per packet.
//! - [`analyzer`] holds the [`Analyzer`] trait and the outputs (pcap,
//!   pcapng, rotation, router, tap, printer, counter), each behind an
//!   optional inner [`filter`].
//! - [`report`] holds what a run tells: counters, progress, metrics text,
//!   the summary.
//! - [`runtime`] starts, watches and stops the threads: live capture
//!   ([`runtime::live`], one worker per rx queue in [`runtime::worker`],
//!   the [`runtime::supervisor`] for hot-plug, SIGHUP and stop conditions),
//!   offline runs ([`runtime::offline`]), the checks made before anything
//!   is attached ([`runtime::preflight`]), and the typed errors
//!   ([`CaptureError`]).
//! - [`doctor`] is the preflight: one verdict per check of the device
//!   stack, offloads, MTU, queues, limits, kernel and port users, which
//!   `vxdecap doctor` prints and `capture` repeats at start when one fails.
//! - [`sys`] is the one module allowed unsafe code (CPUs, rtnetlink and
//!   generic netlink, the ETHTOOL ioctl, the TAP device); the ring and UMEM code is in `vxdecap-xsk`. Everything
//!   else here is safe Rust.
//! - [`config`] reads the TOML file into typed settings; [`lab`] (the `lab`
//!   feature) builds network namespaces for the demo and the tests.
//!
//! To embed vxdecap, start from [`Capture::builder`] (or
//! [`Capture::from_file`]) and implement [`Analyzer`]; see [`api::builder`]
//! for an example. Errors are [`CaptureError`], with every cause kept.
//! The library prints nothing: what a capture tells its user as it runs
//! are `tracing` events with the target [`report::CONSOLE`].
#![deny(unsafe_code)]

pub mod analyzer;
pub mod api;
pub mod config;
pub mod datapath;
pub mod doctor;
pub mod error;
pub mod files;
pub mod filter;
pub mod input;
#[cfg(feature = "lab")]
pub mod lab;
pub mod relay;
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
