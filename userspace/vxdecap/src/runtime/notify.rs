//! Readiness for systemd's `Type=notify` (`packaging/vxdecap@.service`):
//! `READY=1` once the XDP program is attached, every socket is bound and
//! registered, the analyzers and the metrics endpoint run (and `-Z` has
//! dropped root), so a unit ordered after `vxdecap@eth1.service` starts
//! when frames are already being captured; `STOPPING=1` when the capture
//! begins to stop. Nothing is sent outside systemd (no `$NOTIFY_SOCKET`),
//! and a notification that fails is only logged: readiness is advisory.

/// Tells the service manager that the capture on `interface` runs.
pub(crate) fn ready(interface: &str, queues: usize) {
    let status = format!("capturing on {interface}, {queues} rx queue(s)");
    send(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
}

/// Tells the service manager that the capture is stopping (draining the
/// rings, flushing the outputs).
pub(crate) fn stopping() {
    send(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping: draining and flushing"),
    ]);
}

fn send(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager ($NOTIFY_SOCKET)");
    }
}
