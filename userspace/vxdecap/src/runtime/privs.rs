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

use caps::{CapSet, Capability, CapsHashSet};

/// Why `-Z` could not look up or become a user.
#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    /// The user database could not be read.
    #[error("cannot look up user {user}")]
    Lookup {
        /// The user named.
        user: String,
        /// What failed.
        #[source]
        source: nix::Error,
    },
    /// No such user.
    #[error("-Z: user {0} does not exist: create it or name another (e.g. nobody)")]
    NoUser(String),
    /// A step of switching users or capabilities failed.
    #[error("{step}")]
    Step {
        /// The step (`setuid`, `raise capabilities`, …).
        step: &'static str,
        /// What the system said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Still root after switching (a bug, or a kernel that refused silently).
    #[error("-Z {0}: still root after setuid")]
    StillRoot(String),
}

/// Attaches the step's name to a failure.
fn step<E: std::error::Error + Send + Sync + 'static>(
    step: &'static str,
) -> impl FnOnce(E) -> PrivError {
    move |e| PrivError::Step {
        step,
        source: Box::new(e),
    }
}

/// The capabilities kept after `-Z`.
fn kept() -> CapsHashSet {
    CAPTURE_CAPABILITIES.into_iter().collect()
}

/// Checks that `user` exists (before anything is set up).
pub fn check_user(user: &str) -> Result<nix::unistd::User, PrivError> {
    nix::unistd::User::from_name(user)
        .map_err(|source| PrivError::Lookup {
            user: user.to_owned(),
            source,
        })?
        .ok_or_else(|| PrivError::NoUser(user.to_owned()))
}

/// Whether `user`, with the credentials [`drop_to`] gives it (its uid and
/// primary group), can read `path`. The kernel is asked, by running
/// `test -r PATH` as that user, so the path's directories, ACLs and security
/// modules count as they will after `-Z`. `None` when it cannot be told:
/// not root (then `-Z` fails anyway), or no `test` program.
pub fn readable_as(user: &nix::unistd::User, path: &std::path::Path) -> Option<bool> {
    use std::os::unix::process::CommandExt as _;
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
pub fn raise() -> Result<(), PrivError> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let permitted = caps::read(None, CapSet::Permitted).map_err(step("read capabilities"))?;
    let want: CapsHashSet = kept().intersection(&permitted).copied().collect();
    caps::set(None, CapSet::Effective, &want).map_err(step("raise capabilities"))?;
    Ok(())
}

/// Becomes `user`, keeping only the capabilities listed above (in the
/// calling thread; other threads keep them permitted if they called
/// [`keep_caps_across_setuid`]).
pub fn drop_to(user: &str) -> Result<(), PrivError> {
    let user = check_user(user)?;
    keep_caps_across_setuid();
    // Only the kept capabilities stay permitted, in every thread's future.
    let kept = kept();
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(step("clear inheritable"))?;
    nix::unistd::setgroups(&[user.gid]).map_err(step("setgroups"))?;
    nix::unistd::setgid(user.gid).map_err(step("setgid"))?;
    nix::unistd::setuid(user.uid).map_err(step("setuid"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(step("limit capabilities"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(step("raise capabilities"))?;
    if nix::unistd::geteuid().is_root() || nix::unistd::getuid().is_root() {
        return Err(PrivError::StillRoot(user.name));
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
