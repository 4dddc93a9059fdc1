//! The checks a live capture makes before anything is attached: what
//! `capture` and `check-config` both check, and the warnings about settings
//! without effect. Errors name the fix.

use vxdecap_wire::reassembly::Reassembler;

use crate::error::ParseError;
pub use crate::runtime::error::SetupError;

use crate::runtime::config::{CaptureConfig, QueueSelection};
use crate::runtime::cpus::{check_cpus, resolve_cpus};
use crate::runtime::device::{interface_exists, rx_queue_count};
use crate::runtime::metrics_server::Endpoint;
use crate::steer::allow::Allowlist;

pub(crate) fn resolve_queues(config: &CaptureConfig) -> Result<Vec<u32>, SetupError> {
    let available = rx_queue_count(&config.interface).unwrap_or(1);
    let queues: Vec<u32> = match &config.queues {
        QueueSelection::All => (0..available).collect(),
        QueueSelection::List(list) => {
            let mut list = list.clone();
            list.sort_unstable();
            list.dedup();
            list
        }
    };
    if let Some(&queue) = queues.iter().find(|&&q| q >= available) {
        return Err(SetupError::NoQueue {
            interface: config.interface.clone(),
            queue,
            available,
        });
    }
    if queues.is_empty() {
        return Err(SetupError::NoQueues);
    }
    Ok(queues)
}

/// Checks what can be checked without privileges: the interface exists,
/// the queues exist, the CPUs exist, the sizes are valid, the metrics
/// address can be bound. The message names the fix.
pub fn check_config(config: &CaptureConfig) -> Result<(), SetupError> {
    check_setup(config)?;
    if let Some(endpoint) = &config.metrics {
        crate::runtime::metrics_server::bind(endpoint).map_err(|e| metrics_error(endpoint, e))?;
    }
    Ok(())
}

/// Settings that have no effect on this machine: more CPUs than queues.
pub fn warnings(config: &CaptureConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    if let (Ok(queues), Some(cpus)) = (resolve_queues(config), &config.cpus) {
        if cpus.len() > queues.len() {
            let unused: Vec<String> = cpus[queues.len()..].iter().map(usize::to_string).collect();
            warnings.push(format!(
                "--cpus names {} CPU(s) for {} queue(s): CPU(s) {} unused (one worker per queue, on the CPUs in order)",
                cpus.len(),
                queues.len(),
                unused.join(",")
            ));
        }
    }
    warnings
}

/// [`check_config`] but for the metrics address, which `check-config`
/// cannot bind while a capture may hold it: what `check-config` and
/// `capture` both check.
pub fn check_setup(config: &CaptureConfig) -> Result<(), SetupError> {
    if let Some(cpus) = &config.cpus {
        check_cpus(cpus)?;
    }
    if !interface_exists(&config.interface) {
        return Err(SetupError::NoInterface(config.interface.clone()));
    }
    config.socket.validate()?;
    let queues = resolve_queues(config)?;
    resolve_cpus(config, &queues)?;
    effective_allowlist(config)?;
    if let Some(name) = &config.run_as {
        let user = crate::runtime::privs::check_user(name)?;
        // SIGHUP reads the allow file again, as `user` by then.
        if let Some(file) = &config.allow_file {
            if crate::runtime::privs::readable_as(&user, file) == Some(false) {
                let group = nix::unistd::Group::from_gid(user.gid)
                    .ok()
                    .flatten()
                    .map_or_else(|| user.gid.to_string(), |g| g.name);
                return Err(SetupError::AllowFileUnreadable {
                    file: file.clone(),
                    user: name.clone(),
                    group,
                });
            }
        }
    }
    if let Some(r) = config.reassembly {
        Reassembler::new(r).map_err(SetupError::Reassembly)?;
    }
    Ok(())
}

/// The allowlist from the flags merged with the file's, if any.
pub(crate) fn effective_allowlist(config: &CaptureConfig) -> Result<Allowlist, ParseError> {
    match &config.allow_file {
        None => Ok(config.allow.clone()),
        Some(path) => config.allow.merged(&Allowlist::read(path)?),
    }
}

pub(crate) fn metrics_error(endpoint: &Endpoint, source: std::io::Error) -> SetupError {
    SetupError::Metrics {
        endpoint: endpoint.to_string(),
        source,
    }
}
