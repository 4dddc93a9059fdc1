//! The embedding API: capture mirrored VXLAN from a program of your own,
//! live on an interface or from a capture file
//! ([`offline`](CaptureBuilder::offline)), through the same batch loop.
//!
//! ```no_run
//! use std::io;
//! use std::time::Duration;
//! use vxdecap::{Analyzer, Capture, CaptureMode, Frames};
//!
//! /// Counts inner frames and bytes; one instance per analyzer thread.
//! #[derive(Default)]
//! struct Bytes {
//!     frames: u64,
//!     bytes: u64,
//! }
//!
//! impl Analyzer for Bytes {
//!     fn on_batch(&mut self, frames: Frames<'_>) -> io::Result<()> {
//!         for frame in frames.iter() {
//!             self.frames += 1;
//!             self.bytes += frame.bytes.len() as u64;
//!         }
//!         Ok(())
//!     }
//!
//!     fn finish(&mut self) -> io::Result<()> {
//!         println!("{} frames, {} bytes", self.frames, self.bytes);
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> anyhow::Result<()> {
//!     let summary = Capture::builder("eth1")
//!         .ports(&[4789])
//!         .mode(CaptureMode::Auto)
//!         .duration(Duration::from_secs(10))
//!         .analyzer(Bytes::default())
//!         .build()?
//!         .run()?;
//!     eprint!("{}", summary.render());
//!     Ok(())
//! }
//! ```
//!
//! Frames reach an analyzer as references into the UMEM they were received
//! in (no copy); each analyzer runs on its own thread, so `&mut self` is
//! per-thread state without locks, and a slow analyzer loses frames (counted
//! as its `analyzer_backpressure`) rather than stalling the NIC, unless the
//! capture is [`lossless`](CaptureBuilder::lossless). A capture file is
//! read at the analyzers' pace instead, and no frame is lost.
//!
//! The library prints nothing: what a capture tells its user as it runs
//! (`listening on …`, warnings) are `tracing` events with the target
//! [`crate::report::CONSOLE`], seen only through a subscriber of yours.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vxdecap_wire::reassembly::{Reassembler, ReassemblyConfig};
use vxdecap_wire::PortSet;

use crate::analyzer::{Analyzer, Filtered, MAX_ANALYZERS};
use crate::filter::InnerFilter;
use crate::input::CaptureInput;
use crate::report::summary::Summary;
use crate::runtime::config::{CaptureConfig, CaptureMode, QueueSelection};
use crate::runtime::error::{CaptureError, SetupError};
use crate::runtime::live::run_capture;
use crate::runtime::offline::run_offline;
use crate::runtime::preflight::check_config;
use crate::steer::allow::Allowlist;

/// A configured capture, ready to run: live, or from a file.
#[derive(Debug)]
pub struct Capture {
    config: CaptureConfig,
    /// The capture file to read, for an offline run.
    input: Option<CaptureInput>,
    analyzers: Vec<Box<dyn Analyzer>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for dyn Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("name", &self.name())
            .finish()
    }
}

impl Capture {
    /// Starts configuring a capture on `interface`: every rx queue, UDP
    /// port 4789, automatic XDP and AF_XDP modes.
    pub fn builder(interface: &str) -> CaptureBuilder {
        CaptureBuilder {
            config: CaptureConfig::new(interface),
            offline: None,
            filter: None,
            ports: Vec::new(),
            geneve_ports: None,
            max_tunnel_depth: None,
            analyzers: Vec::new(),
        }
    }

    /// Starts configuring an offline run over the pcap or pcapng file
    /// `path` (`-`: stdin); see [`CaptureBuilder::offline`].
    pub fn from_file(path: impl Into<PathBuf>) -> CaptureBuilder {
        Self::builder("").offline(path)
    }

    /// A flag that stops the capture when raised (from any thread or a
    /// signal handler); a live capture then drains its rings and returns.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Runs until stopped, or the duration or frame count is reached (or,
    /// offline, the end of the file). Live capture needs root (or
    /// CAP_NET_ADMIN, CAP_BPF and CAP_NET_RAW).
    pub fn run(self) -> Result<Summary, CaptureError> {
        let config = self.config;
        match self.input {
            None => run_capture(&config, self.analyzers, self.stop),
            Some(input) => run_offline(
                input,
                &config.output_name,
                config.ports,
                self.analyzers,
                config.count,
                config.reassembly,
                self.stop,
            ),
        }
    }

    /// Runs on a background thread; stop it with [`RunningCapture::stop`].
    pub fn spawn(self) -> Result<RunningCapture, CaptureError> {
        let stop = Arc::clone(&self.stop);
        let handle = std::thread::Builder::new()
            .name("vxdecap-capture".into())
            .spawn(move || self.run())
            .map_err(|source| CaptureError::Thread {
                what: "the capture thread",
                source,
            })?;
        Ok(RunningCapture { stop, handle })
    }
}

/// A capture running on a background thread.
#[derive(Debug)]
pub struct RunningCapture {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Result<Summary, CaptureError>>,
}

impl RunningCapture {
    /// Stops the capture and returns its summary.
    pub fn stop(self) -> Result<Summary, CaptureError> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits for the capture to end by itself (duration, count, end of file).
    pub fn join(self) -> Result<Summary, CaptureError> {
        self.handle
            .join()
            .map_err(|_| CaptureError::Panicked("the capture thread"))?
    }
}

/// Configures a [`Capture`]; [`CaptureBuilder::build`] checks everything.
#[derive(Debug)]
pub struct CaptureBuilder {
    config: CaptureConfig,
    offline: Option<PathBuf>,
    filter: Option<String>,
    ports: Vec<u16>,
    geneve_ports: Option<Vec<u16>>,
    max_tunnel_depth: Option<u8>,
    analyzers: Vec<Box<dyn Analyzer>>,
}

impl CaptureBuilder {
    /// Reads the pcap or pcapng file `path` (`-`: stdin) instead of
    /// capturing live: any link type VXLAN is captured in, each packet at
    /// its own time. The ports, filter, reassembly, count and analyzers
    /// apply; the interface, queues, CPUs, modes, sizes, allowlists and
    /// metrics are live settings and are not used. The reader waits for the
    /// analyzers rather than dropping frames.
    #[must_use]
    pub fn offline(mut self, path: impl Into<PathBuf>) -> Self {
        self.offline = Some(path.into());
        self
    }

    /// UDP destination ports carrying VXLAN (default 4789; at most 8).
    #[must_use]
    pub fn ports(mut self, ports: &[u16]) -> Self {
        self.ports = ports.to_vec();
        self
    }

    /// UDP destination ports carrying GENEVE (default 6081; at most 8; none: GENEVE off).
    #[must_use]
    pub fn geneve_ports(mut self, ports: &[u16]) -> Self {
        self.geneve_ports = Some(ports.to_vec());
        self
    }

    /// Most tunnels peeled from one frame (default 2: GENEVE around VXLAN; 1 to 4).
    #[must_use]
    pub fn max_tunnel_depth(mut self, depth: u8) -> Self {
        self.max_tunnel_depth = Some(depth);
        self
    }

    /// Only inner frames that match this tcpdump filter expression (such as
    /// `tcp port 80`) reach the analyzers; the rest are counted as
    /// `filtered_out`. Compiled by libpcap when the capture is built.
    #[must_use]
    pub fn filter(mut self, expression: &str) -> Self {
        self.filter = Some(expression.to_owned());
        self
    }

    /// Rx queues to capture (default: all of them).
    #[must_use]
    pub fn queues(mut self, queues: &[u32]) -> Self {
        self.config.queues = QueueSelection::List(queues.to_vec());
        self
    }

    /// CPUs for the workers, one per queue in queue order (default: one per
    /// queue, skipping CPU 0 when there are more CPUs than queues).
    #[must_use]
    pub fn cpus(mut self, cpus: &[usize]) -> Self {
        self.config.cpus = Some(cpus.to_vec());
        self
    }

    /// XDP attach and AF_XDP bind modes.
    #[must_use]
    pub fn mode(mut self, mode: CaptureMode) -> Self {
        self.config.mode = mode;
        self
    }

    /// Outer sources and VNIs allowed through (dropped in XDP otherwise, and
    /// counted); default: every source and VNI.
    #[must_use]
    pub fn allowlist(mut self, allow: Allowlist) -> Self {
        self.config.allow = allow;
        self
    }

    /// An allowlist file (`source …` and `vni …` lines), merged with
    /// [`allowlist`](Self::allowlist); the capture reads it again when
    /// the process gets SIGHUP.
    #[must_use]
    pub fn allow_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.allow_file = Some(path.into());
        self
    }

    /// Outer IPv4 fragments: reassembled with these settings, per worker
    /// (default: [`ReassemblyConfig::default`]), or with `None` counted as
    /// `outer_fragment` instead.
    #[must_use]
    pub fn reassembly(mut self, reassembly: Option<ReassemblyConfig>) -> Self {
        self.config.reassembly = reassembly;
        self
    }

    /// Wait for slow analyzers instead of dropping frames for them.
    #[must_use]
    pub fn lossless(mut self, lossless: bool) -> Self {
        self.config.lossless = lossless;
        self
    }

    /// Stop after this long.
    #[must_use]
    pub fn duration(mut self, duration: Duration) -> Self {
        self.config.duration = Some(duration);
        self
    }

    /// Stop after the first analyzer has received this many frames.
    #[must_use]
    pub fn count(mut self, count: u64) -> Self {
        self.config.count = Some(count);
        self
    }

    /// Serve Prometheus metrics on this address while running.
    #[must_use]
    pub fn metrics(mut self, addr: SocketAddr) -> Self {
        self.config.metrics = Some(addr.into());
        self
    }

    /// Socket and UMEM sizes (frame size, frame count, RX ring).
    #[must_use]
    pub fn socket(mut self, socket: vxdecap_xsk::SocketConfig) -> Self {
        self.config.socket = socket;
        self
    }

    /// Adds an analyzer; each runs on its own thread and sees every inner
    /// frame (at most 8).
    #[must_use]
    pub fn analyzer(mut self, analyzer: impl Analyzer + 'static) -> Self {
        self.analyzers.push(Box::new(analyzer));
        self
    }

    /// Adds an analyzer already boxed.
    #[must_use]
    pub fn boxed_analyzer(mut self, analyzer: Box<dyn Analyzer>) -> Self {
        self.analyzers.push(analyzer);
        self
    }

    /// Checks the configuration (interface, queues, CPUs, sizes, ports,
    /// filter, analyzers; offline, the file's header); the error names the
    /// fix.
    pub fn build(mut self) -> Result<Capture, CaptureError> {
        if !self.ports.is_empty() {
            self.config.ports = PortSet::new(&self.ports).map_err(CaptureError::Ports)?;
        }
        if let Some(geneve) = &self.geneve_ports {
            self.config.ports = self
                .config
                .ports
                .with_geneve(geneve)
                .map_err(CaptureError::Ports)?;
        }
        if let Some(depth) = self.max_tunnel_depth {
            self.config.ports = self.config.ports.with_max_depth(depth);
        }
        if self.analyzers.is_empty() || self.analyzers.len() > MAX_ANALYZERS {
            return Err(CaptureError::Analyzers(self.analyzers.len()));
        }
        if let Some(expression) = &self.filter {
            let filter = InnerFilter::compile(expression)?;
            self.analyzers = self
                .analyzers
                .into_iter()
                .map(|a| -> Box<dyn Analyzer> { Box::new(Filtered::new(filter.clone(), a)) })
                .collect();
        }
        let input = if let Some(path) = &self.offline {
            if let Some(r) = self.config.reassembly {
                Reassembler::new(r).map_err(SetupError::Reassembly)?;
            }
            Some(CaptureInput::open(&path.to_string_lossy())?)
        } else {
            check_config(&self.config)?;
            None
        };
        Ok(Capture {
            config: self.config,
            input,
            analyzers: self.analyzers,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }
}
