//! [`CaptureError`]: why a capture could not start, or failed while it
//! ran; [`SetupError`]: the checks made before anything is attached. Every
//! cause is kept as a typed source (match on it, or print the chain with
//! [`crate::error::error_chain`]).

use std::path::PathBuf;

use vxdecap_wire::reassembly::ConfigError as ReassemblyError;
use vxdecap_wire::PortSetError;
use vxdecap_xsk::XskError;

use crate::analyzer::MAX_ANALYZERS;
use crate::error::ParseError;
use crate::filter::FilterError;
use crate::runtime::privs::PrivError;
use crate::steer::SteerError;

/// Why a capture (live or offline) could not start, or ended in failure.
/// An output's write error is not one: the run ends with its summary,
/// which says so ([`crate::Summary::failed`]).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The configuration cannot work on this machine (checked before
    /// anything is attached).
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The XDP program could not be loaded, attached or updated.
    #[error(transparent)]
    Steer(#[from] SteerError),
    /// A worker could not open its AF_XDP socket.
    #[error(transparent)]
    Socket(#[from] XskError),
    /// The UDP ports given (the reason in the message itself, as every
    /// other variant's: a caller printing only `to_string()` sees it).
    #[error("tunnel ports: {0}")]
    Ports(PortSetError),
    /// The inner filter does not compile.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The capture file cannot be read (offline).
    #[error(transparent)]
    Input(#[from] ParseError),
    /// No analyzer, or more than [`MAX_ANALYZERS`].
    #[error(
        "{0} analyzers given: a capture feeds 1 to {MAX_ANALYZERS} (add one with .analyzer(...))"
    )]
    Analyzers(usize),
    /// A thread could not be started.
    #[error("cannot start {what}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A thread ended without reporting (it panicked).
    #[error("{0} panicked")]
    Panicked(&'static str),
    /// `-Z`: the capture could not drop root (it stopped cleanly first).
    #[error("-Z {user}: cannot drop privileges")]
    Privileges {
        /// The user asked for.
        user: String,
        /// What failed.
        #[source]
        source: PrivError,
    },
}

impl CaptureError {
    /// True for a problem the user fixes in the configuration (the command
    /// line exits 2 for these): a setting this machine cannot take, or
    /// another XDP program already attached to the interface.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            Self::Setup(_)
                | Self::Ports(_)
                | Self::Filter(_)
                | Self::Analyzers(_)
                | Self::Steer(SteerError::Busy { .. })
        )
    }
}

/// A capture that cannot start on this machine as configured (checked
/// before anything is attached); the message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No such interface in this network namespace.
    #[error("interface {0} does not exist: check the name with `ip link`")]
    NoInterface(String),
    /// A queue the interface does not have.
    #[error(
        "rx queue {queue} does not exist on {interface}: it has {available} rx queue(s), \
         numbered from 0 (see `ethtool -l {interface}`)"
    )]
    NoQueue {
        /// The interface.
        interface: String,
        /// The queue asked for.
        queue: u32,
        /// How many it has.
        available: u32,
    },
    /// An empty queue list.
    #[error("no rx queue selected: use --queues all or a list such as --queues 0,1")]
    NoQueues,
    /// A CPU the machine does not have.
    #[error("CPU {cpu} does not exist: this machine has CPUs 0-{last}")]
    NoCpu {
        /// The CPU asked for.
        cpu: usize,
        /// The highest CPU online.
        last: usize,
    },
    /// Fewer CPUs than queues.
    #[error("--cpus names {cpus} CPU(s) for {queues} queue(s): give one CPU per queue")]
    TooFewCpus {
        /// CPUs named.
        cpus: usize,
        /// Queues captured.
        queues: usize,
    },
    /// Socket or UMEM sizes that cannot work.
    #[error(transparent)]
    Socket(#[from] XskError),
    /// An allowlist (flags or file) that does not parse or is too large.
    #[error(transparent)]
    Allowlist(#[from] ParseError),
    /// The `-Z` user does not exist.
    #[error(transparent)]
    User(#[from] PrivError),
    /// The `-Z` user could not reload the allow file on SIGHUP.
    #[error(
        "allow file {}: {user} cannot read it, and -Z {user} runs as {user} when SIGHUP reloads \
         it: make it readable by {user} (e.g. `chgrp {group} FILE; chmod g+r FILE`, with its \
         directories searchable), or leave out -Z",
        file.display()
    )]
    AllowFileUnreadable {
        /// The allow file.
        file: PathBuf,
        /// The `-Z` user.
        user: String,
        /// That user's primary group.
        group: String,
    },
    /// Reassembly settings out of bounds.
    #[error("reassembly settings")]
    Reassembly(#[source] ReassemblyError),
    /// The metrics address cannot be served.
    #[error("cannot serve --metrics on {endpoint} (pick a free port and an address of this host)")]
    Metrics {
        /// The address as given.
        endpoint: String,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
}
