//! `-Z USER`: stop running as root once the sockets and outputs are open,
//! as tcpdump does.
//!
//! The process switches to the user's uid, gid and groups and keeps only
//! the capabilities a running capture still uses: `CAP_BPF` (the main
//! thread reads the XDP counters and updates the allowlist and XSKMAP
//! maps), `CAP_PERFMON` (the verifier's leave to load the program again
//! when an interface comes back), `CAP_NET_ADMIN` and `CAP_NET_RAW` (XDP
//! links and AF_XDP sockets, then too) and `CAP_IPC_LOCK` (UMEM pinning).
//! Files opened later (rotation) are created as the user. The same set is
//! all the systemd unit gives its non-root user.
//!
//! Credentials are per thread on Linux; glibc applies `setuid` to every
//! thread, but the "keep capabilities" flag is per thread too, so threads
//! that may need capabilities later call [`keep_caps_across_setuid`] when
//! they start and [`raise`] before privileged work.

use anyhow::{anyhow, Context};
use caps::{CapSet, Capability, CapsHashSet};

/// The capabilities kept after `-Z`.
fn kept() -> CapsHashSet {
    CAPTURE_CAPABILITIES.into_iter().collect()
}

/// Checks that `user` exists (before anything is set up).
pub fn check_user(user: &str) -> anyhow::Result<nix::unistd::User> {
    nix::unistd::User::from_name(user)
        .with_context(|| format!("cannot look up user {user}"))?
        .ok_or_else(|| {
            anyhow!("-Z: user {user} does not exist: create it or name another (e.g. nobody)")
        })
}

/// Whether `user`, with the credentials [`drop_to`] gives it (its uid and
/// primary group), can read `path`. The kernel is asked, by running
/// `test -r PATH` as that user, so the path's directories, ACLs and security
/// modules count as they will after `-Z`. `None` when it cannot be told:
/// not root (then `-Z` fails anyway), or no `test` program.
pub fn readable_as(user: &nix::unistd::User, path: &std::path::Path) -> Option<bool> {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let status = std::process::Command::new("test")
        .arg("-r")
        .arg(path)
        .uid(user.uid.as_raw())
        .gid(user.gid.as_raw())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    Some(status.success())
}

/// Marks the calling thread to keep its permitted capabilities when the
/// process changes uid (each thread that may need them later calls this).
pub fn keep_caps_across_setuid() {
    let _ = nix::sys::prctl::set_keepcaps(true);
}

/// Raises the kept capabilities in the calling thread's effective set
/// (after `-Z`, before privileged work; a no-op as root).
pub fn raise() -> anyhow::Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let permitted = caps::read(None, CapSet::Permitted).context("read capabilities")?;
    let want: CapsHashSet = kept().intersection(&permitted).copied().collect();
    caps::set(None, CapSet::Effective, &want).context("raise capabilities")?;
    Ok(())
}

/// Becomes `user`, keeping only the capabilities listed above (in the
/// calling thread; other threads keep them permitted if they called
/// [`keep_caps_across_setuid`]).
pub fn drop_to(user: &str) -> anyhow::Result<()> {
    let user = check_user(user)?;
    keep_caps_across_setuid();
    // Only the kept capabilities stay permitted, in every thread's future.
    let kept = kept();
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).context("clear inheritable")?;
    nix::unistd::setgroups(&[user.gid]).context("setgroups")?;
    nix::unistd::setgid(user.gid).context("setgid")?;
    nix::unistd::setuid(user.uid).context("setuid")?;
    caps::set(None, CapSet::Permitted, &kept).context("limit capabilities")?;
    caps::set(None, CapSet::Effective, &kept).context("raise capabilities")?;
    if nix::unistd::geteuid().is_root() || nix::unistd::getuid().is_root() {
        return Err(anyhow!("-Z {}: still root after setuid", user.name));
    }
    Ok(())
}

/// The capabilities a running capture uses, kept after `-Z` and granted by
/// the systemd unit to its non-root user as ambient capabilities
/// (`packaging/vxdecap@.service`). `CAP_PERFMON` because the verifier
/// refuses the XDP program's variable-offset packet pointer arithmetic
/// (`ip + ihl`) without it (`retrieve_ptr_limit`, "pointer arithmetic with
/// it prohibited for !root"), which matters when the program is loaded
/// again after the interface came back.
pub const CAPTURE_CAPABILITIES: [Capability; 5] = [
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_RAW,
    Capability::CAP_IPC_LOCK,
];

/// Those of [`CAPTURE_CAPABILITIES`] missing from the effective set (none
/// for root, or for a service started with them as ambient capabilities).
pub fn missing_capture_capabilities() -> Vec<Capability> {
    missing_from(&caps::read(None, CapSet::Effective).unwrap_or_default())
}

/// Those of [`CAPTURE_CAPABILITIES`] that `effective` lacks. `CAP_SYS_ADMIN`
/// stands for `CAP_BPF` and `CAP_PERFMON`, as in the kernel (`bpf_capable`,
/// `perfmon_capable`).
fn missing_from(effective: &CapsHashSet) -> Vec<Capability> {
    let admin = effective.contains(&Capability::CAP_SYS_ADMIN);
    CAPTURE_CAPABILITIES
        .into_iter()
        .filter(|c| {
            let covered = admin && matches!(c, Capability::CAP_BPF | Capability::CAP_PERFMON);
            !effective.contains(c) && !covered
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_needs_five_capabilities_and_sys_admin_stands_for_bpf_and_perfmon() {
        let all: CapsHashSet = CAPTURE_CAPABILITIES.into_iter().collect();
        assert!(missing_from(&all).is_empty());
        assert_eq!(missing_from(&CapsHashSet::new()), CAPTURE_CAPABILITIES);
        let admin: CapsHashSet = [
            Capability::CAP_SYS_ADMIN,
            Capability::CAP_NET_ADMIN,
            Capability::CAP_NET_RAW,
        ]
        .into_iter()
        .collect();
        assert_eq!(missing_from(&admin), [Capability::CAP_IPC_LOCK]);
        let no_perfmon: CapsHashSet = all
            .iter()
            .copied()
            .filter(|c| *c != Capability::CAP_PERFMON)
            .collect();
        assert_eq!(missing_from(&no_perfmon), [Capability::CAP_PERFMON]);
    }
}
