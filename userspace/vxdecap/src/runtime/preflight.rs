//! The checks a live capture makes before anything is attached: what
//! `capture` and `check-config` both check, and the warnings about settings
//! without effect. Errors name the fix.

use anyhow::bail;
use vxdecap_wire::reassembly::Reassembler;

use crate::runtime::config::{CaptureConfig, QueueSelection};
use crate::runtime::cpus::{check_cpus, resolve_cpus};
use crate::runtime::device::{interface_exists, rx_queue_count};
use crate::runtime::metrics_server::Endpoint;
use crate::steer::allow::Allowlist;

pub(crate) fn resolve_queues(config: &CaptureConfig) -> anyhow::Result<Vec<u32>> {
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
    if let Some(bad) = queues.iter().find(|&&q| q >= available) {
        bail!(
            "rx queue {bad} does not exist on {}: it has {available} rx queue(s), numbered from 0 (see `ethtool -l {}`)",
            config.interface,
            config.interface
        );
    }
    if queues.is_empty() {
        bail!("no rx queue selected: use --queues all or a list such as --queues 0,1");
    }
    Ok(queues)
}

/// Checks what can be checked without privileges: the interface exists,
/// the queues exist, the CPUs exist, the sizes are valid, the metrics
/// address can be bound. The message names the fix.
pub fn check_config(config: &CaptureConfig) -> anyhow::Result<()> {
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
pub fn check_setup(config: &CaptureConfig) -> anyhow::Result<()> {
    if let Some(cpus) = &config.cpus {
        check_cpus(cpus)?;
    }
    if !interface_exists(&config.interface) {
        bail!(
            "interface {} does not exist: check the name with `ip link`",
            config.interface
        );
    }
    config
        .socket
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
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
                bail!(
                    "allow file {}: {name} cannot read it, and -Z {name} runs as {name} when SIGHUP reloads it: make it readable by {name} (e.g. `chgrp {group} FILE; chmod g+r FILE`, with its directories searchable), or leave out -Z",
                    file.display()
                );
            }
        }
    }
    if let Some(r) = config.reassembly {
        Reassembler::new(r).map_err(|e| anyhow::anyhow!("reassembly settings: {e}"))?;
    }
    Ok(())
}

/// The allowlist from the flags merged with the file's, if any.
pub(crate) fn effective_allowlist(config: &CaptureConfig) -> anyhow::Result<Allowlist> {
    match &config.allow_file {
        None => Ok(config.allow.clone()),
        Some(path) => {
            let file = Allowlist::read(path).map_err(|e| anyhow::anyhow!("{e}"))?;
            config
                .allow
                .merged(&file)
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
    }
}

pub(crate) fn metrics_error(endpoint: &Endpoint, e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot serve --metrics on {endpoint}: {e} (pick a free port and an address of this host)"
    )
}
