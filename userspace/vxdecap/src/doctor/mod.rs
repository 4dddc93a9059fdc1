//! `vxdecap doctor`: the preflight. Before a capture, it reads the device
//! stack, the offloads, the MTU, the queues and their interrupts, the
//! limits, the kernel and the other users of the VXLAN port, and gives one
//! [`Check`] per question with a [`Verdict`]: `Fail` where a capture would
//! lose traffic or not start. `capture` makes the cheap checks again at
//! start ([`warn_at_start`]) and says only what is wrong.
//!
//! The facts ([`Facts`]) are read under a [`Host`] root, so tests build a
//! stack as a tree of files; the judgements ([`evaluate`]) take the facts
//! and the capture's settings, so tests assert on [`Check`]s, not text.
//!
//! ```no_run
//! use vxdecap::doctor::{diagnose, Host};
//! use vxdecap::runtime::config::CaptureConfig;
//!
//! let report = diagnose(&Host::live(), &CaptureConfig::new("eth1"))?;
//! for check in &report.checks {
//!     println!("{check}");
//! }
//! assert!(!report.failed(), "a capture on eth1 would lose traffic");
//! # Ok::<(), vxdecap::doctor::DoctorError>(())
//! ```

mod checks;
pub(crate) mod facts;
mod verdict;

pub use checks::{evaluate, kernel_version, SINGLE_PAGE_XDP_MTU};
pub use facts::{
    interfaces_up, Depth, Device, Facts, Host, MemlockLimit, Probe, Role, UdpSocket, Unread,
};
pub use verdict::{Check, CheckKind, Verdict};

use crate::report::CONSOLE;
use crate::runtime::config::CaptureConfig;

/// Why `doctor` could not check.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// No such interface.
    #[error("interface {0} does not exist: check the name with `ip link`")]
    NoInterface(String),
}

/// Every check for one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The interface checked.
    pub interface: String,
    /// The checks, in [`CheckKind::ALL`] order.
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst verdict.
    pub fn verdict(&self) -> Verdict {
        self.checks
            .iter()
            .map(|c| c.verdict)
            .max()
            .unwrap_or(Verdict::Ok)
    }

    /// True when a capture would lose traffic (a check failed).
    pub fn failed(&self) -> bool {
        self.verdict() == Verdict::Fail
    }

    /// The check of `kind`.
    pub fn check(&self, kind: CheckKind) -> Option<&Check> {
        self.checks.iter().find(|c| c.kind == kind)
    }
}

/// Every check for `config.interface` on `host`, with the capture's
/// settings of `config` (mode, ports, queues, CPUs, frame sizes).
pub fn diagnose(host: &Host, config: &CaptureConfig) -> Result<Report, DoctorError> {
    let facts = Facts::gather(host, config, Depth::Full)
        .ok_or_else(|| DoctorError::NoInterface(config.interface.clone()))?;
    Ok(Report {
        interface: config.interface.clone(),
        checks: evaluate(&facts, config, &CheckKind::ALL),
    })
}

/// The checks `capture` makes at start: cheap, and not those it makes
/// itself (the MTU, the modes, the receive work).
pub const STARTUP_CHECKS: [CheckKind; 6] = [
    CheckKind::DeviceStack,
    CheckKind::Offloads,
    CheckKind::UdpHash,
    CheckKind::Memlock,
    CheckKind::Kernel,
    CheckKind::PortConsumers,
];

/// The start-up checks that did not pass, on this machine.
pub fn startup_checks(config: &CaptureConfig) -> Vec<Check> {
    let host = Host::live();
    // sysfs shows the network namespace it was mounted in, which need not be
    // this thread's (a library caller that entered one with setns): judge
    // the device only when sysfs shows the one named here.
    let here = nix::net::if_::if_nametoindex(config.interface.as_str()).ok();
    let shown = std::fs::read_to_string(
        host.sys
            .join("class/net")
            .join(&config.interface)
            .join("ifindex"),
    )
    .ok()
    .and_then(|i| i.trim().parse::<u32>().ok());
    if here.is_none() || here != shown {
        return Vec::new();
    }
    let Some(facts) = Facts::gather(&host, config, Depth::Startup) else {
        return Vec::new();
    };
    evaluate(&facts, config, &STARTUP_CHECKS)
        .into_iter()
        .filter(|c| c.verdict != Verdict::Ok)
        .collect()
}

/// Says each start-up check that did not pass as a console warning, in
/// doctor's words (`doctor: port users FAIL: …`); nothing when all pass.
pub fn warn_at_start(config: &CaptureConfig) {
    for check in startup_checks(config) {
        let hint = check
            .hint
            .as_ref()
            .map_or_else(String::new, |h| format!(" (fix: {h})"));
        tracing::warn!(
            target: CONSOLE,
            "doctor: {} {}: {}{hint}",
            check.kind,
            check.verdict,
            check.detail
        );
    }
}

#[cfg(test)]
mod tests;
