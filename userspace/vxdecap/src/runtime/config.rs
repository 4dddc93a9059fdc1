//! What a live capture is asked to do: interface, ports, queues, CPUs,
//! modes, sizes, limits, outputs' name, metrics, allowlists, privileges.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use vxdecap_wire::reassembly::ReassemblyConfig;
use vxdecap_wire::PortSet;
use vxdecap_xsk::{BindRequest, SocketConfig};

use crate::datapath::idle::RxPolicy;
use crate::error::ParseError;
use crate::runtime::metrics_server::Endpoint;
use crate::select::parse_list;
use crate::steer::allow::Allowlist;
use crate::steer::AttachRequest;

/// XDP attach and AF_XDP bind modes, as `--mode` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// Driver XDP (else generic), zero-copy sockets (else copy).
    #[default]
    Auto,
    /// Driver XDP and zero-copy sockets, or fail.
    ZeroCopy,
    /// Driver XDP (else generic), copy-mode sockets.
    Copy,
    /// Generic (SKB) XDP, copy-mode sockets.
    Skb,
}

impl CaptureMode {
    /// Every mode, by its `--mode` name.
    pub const ALL: [(Self, &'static str); 4] = [
        (Self::Auto, "auto"),
        (Self::ZeroCopy, "zerocopy"),
        (Self::Copy, "copy"),
        (Self::Skb, "skb"),
    ];

    pub(crate) fn attach(self) -> AttachRequest {
        match self {
            Self::Auto | Self::Copy => AttachRequest::Auto,
            Self::ZeroCopy => AttachRequest::Driver,
            Self::Skb => AttachRequest::Skb,
        }
    }

    pub(crate) fn bind(self) -> BindRequest {
        match self {
            Self::Auto => BindRequest::Auto,
            Self::ZeroCopy => BindRequest::ZeroCopy,
            Self::Copy | Self::Skb => BindRequest::Copy,
        }
    }
}

impl fmt::Display for CaptureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(mode, _)| mode == self)
            .map_or("auto", |(_, name)| name);
        f.write_str(name)
    }
}

impl FromStr for CaptureMode {
    type Err = ParseError;

    /// `auto`, `zerocopy`, `copy` or `skb`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .find(|(_, name)| *name == text)
            .map(|(mode, _)| *mode)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(_, name)| *name).collect();
                ParseError::new(format!("{text:?}: use one of {}", names.join(", ")))
            })
    }
}

/// Which rx queues to capture.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum QueueSelection {
    /// Every rx queue of the interface.
    #[default]
    All,
    /// These queue indices.
    List(Vec<u32>),
}

impl QueueSelection {
    /// `all`, or a list such as `0,2-3` (`what` names the flag or key in
    /// the error).
    pub fn parse(text: &str, what: &str) -> Result<Self, ParseError> {
        if text.trim() == "all" {
            return Ok(Self::All);
        }
        let list = parse_list(text, what)?;
        let queues = list
            .into_iter()
            .map(|q| {
                u32::try_from(q)
                    .map_err(|_| ParseError::new(format!("{what}: queue {q} is out of range")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self::List(queues))
    }
}

impl fmt::Display for QueueSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::List(queues) => {
                let list: Vec<String> = queues.iter().map(u32::to_string).collect();
                f.write_str(&list.join(","))
            }
        }
    }
}

/// Everything a live capture needs.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// Interface to capture on.
    pub interface: String,
    /// UDP destination ports carrying VXLAN and GENEVE, and the tunnel depth limit.
    pub ports: PortSet,
    /// The `--cloud` preset the ports came from, for the start-up line.
    pub cloud: Option<crate::config::cloud::Cloud>,
    /// Rx queues to open.
    pub queues: QueueSelection,
    /// CPUs for the workers, in queue order (None: one per queue, skipping CPU 0 when possible).
    pub cpus: Option<Vec<usize>>,
    /// Attach and bind modes.
    pub mode: CaptureMode,
    /// Socket and UMEM sizes.
    pub socket: SocketConfig,
    /// Most frames taken off the RX ring at once (and per analyzer batch).
    pub batch: usize,
    /// Wait for slow analyzers instead of dropping frames for them (the RX
    /// ring backs up instead; the kernel counts what it then drops).
    pub lossless: bool,
    /// Stop after writing this many frames.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Print a one-line rate display this often.
    pub stats_interval: Option<Duration>,
    /// Keep polling an empty RX ring this long before sleeping in poll() (0: sleep at once).
    pub idle_spin: Duration,
    /// How workers wait for frames and who runs the kernel's receive work.
    pub rx_policy: RxPolicy,
    /// Where the frames go, for the summary ("inner.pcap", "stdout").
    pub output_name: String,
    /// Serve Prometheus metrics on this address (every address of a host name).
    pub metrics: Option<Endpoint>,
    /// Sources and VNIs allowed through (enforced in XDP).
    pub allow: Allowlist,
    /// An allowlist file merged with `allow`, read again on SIGHUP.
    pub allow_file: Option<std::path::PathBuf>,
    /// Run as this user once the sockets and outputs are open (`-Z`).
    pub run_as: Option<String>,
    /// Reassemble outer IPv4 fragments with these settings, per worker
    /// (`None`: count them as `outer_fragment`).
    pub reassembly: Option<ReassemblyConfig>,
    /// Raise the UMEM frame size to what the interface MTU needs (up to a
    /// page) when `socket.frame_size` is too small for it.
    pub auto_frame_size: bool,
}

impl CaptureConfig {
    /// Defaults for `interface`: all queues, port 4789, auto mode.
    pub fn new(interface: &str) -> Self {
        Self {
            interface: interface.to_owned(),
            ports: PortSet::default(),
            cloud: None,
            queues: QueueSelection::All,
            cpus: None,
            mode: CaptureMode::Auto,
            socket: SocketConfig::default(),
            batch: 64,
            lossless: false,
            count: None,
            duration: None,
            stats_interval: None,
            idle_spin: Duration::from_millis(1),
            rx_policy: RxPolicy::Auto,
            output_name: "stdout".into(),
            metrics: None,
            allow: Allowlist::default(),
            allow_file: None,
            run_as: None,
            reassembly: Some(ReassemblyConfig::default()),
            auto_frame_size: true,
        }
    }
}
