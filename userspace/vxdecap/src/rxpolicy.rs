//! How a worker waits for frames, and where the kernel's receive work for
//! its queue runs.
//!
//! The kernel's receive work for a queue (the driver's NAPI poll, the XDP
//! program, the copy into the UMEM) runs in softirq on the CPU that took
//! the queue's interrupt, in `ksoftirqd` under load, or in a NAPI thread
//! (`/sys/class/net/IF/threaded`). On a small collector VM that CPU is
//! often the worker's own. A worker that spins on an empty ring there
//! holds the CPU the kernel needs to fill the ring: with PREEMPT_NONE the
//! kernel's thread then runs about once per scheduler tick, the NIC-side
//! ring overflows, and a worker that delivered millions of frames a second
//! delivers tens of thousands.
//!
//! [`RxPolicy::BusyPoll`] removes the competition: with preferred busy
//! polling the worker runs the queue's NAPI poll itself
//! ([`vxdecap_xsk::RxSocket::kick`]), and [`NapiDeferral`] sets the
//! device's `napi_defer_hard_irqs` and `gro_flush_timeout`, so that while
//! the worker keeps polling the device raises no interrupt and the kernel
//! schedules no receive work of its own. When the worker sleeps, the
//! deferral times out and receive processing goes back to the kernel,
//! which wakes the worker when frames arrive.

use std::fmt;
use std::time::Duration;

/// How workers wait for frames (`--rx-policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RxPolicy {
    /// Preferred busy polling, falling back to [`RxPolicy::Sleep`] when the
    /// socket refuses it.
    #[default]
    Auto,
    /// Preferred busy polling: the worker runs the queue's receive work.
    BusyPoll,
    /// Spin on an empty ring for the idle spin time, then sleep in poll().
    Spin,
    /// Sleep in poll() as soon as the ring is empty.
    Sleep,
    /// Yield the CPU on an empty ring for the idle spin time, then sleep.
    Yield,
}

impl RxPolicy {
    /// Parses `auto`, `busy-poll`, `spin` or `sleep`.
    pub fn parse(text: &str) -> Option<RxPolicy> {
        Some(match text {
            "auto" => RxPolicy::Auto,
            "busy-poll" => RxPolicy::BusyPoll,
            "spin" => RxPolicy::Spin,
            "sleep" => RxPolicy::Sleep,
            "yield" => RxPolicy::Yield,
            _ => return None,
        })
    }
}

impl fmt::Display for RxPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RxPolicy::Auto => "auto",
            RxPolicy::BusyPoll => "busy-poll",
            RxPolicy::Spin => "spin",
            RxPolicy::Sleep => "sleep",
            RxPolicy::Yield => "yield",
        })
    }
}

/// The device settings that keep interrupts (on veth, NAPI scheduling) off
/// while a worker busy-polls: set when they are unset, put back on drop.
#[derive(Debug)]
pub struct NapiDeferral {
    interface: String,
    /// (file, value before) for each setting changed.
    changed: Vec<(&'static str, String)>,
}

/// Consecutive NAPI polls that may find work before the device's
/// interrupt is raised again.
const DEFER_HARD_IRQS: &str = "2";
/// How long a deferral lasts without a poll (ns): the longest a worker may
/// go between kicks before the kernel takes over the queue again.
pub const GRO_FLUSH_TIMEOUT_NS: u64 = 200_000;

impl NapiDeferral {
    /// Sets `napi_defer_hard_irqs` and `gro_flush_timeout` on `interface`
    /// where they are 0. Settings an administrator made are left alone.
    pub fn apply(interface: &str) -> std::io::Result<NapiDeferral> {
        let mut deferral = NapiDeferral {
            interface: interface.to_owned(),
            changed: Vec::new(),
        };
        let timeout = GRO_FLUSH_TIMEOUT_NS.to_string();
        for (file, value) in [
            ("napi_defer_hard_irqs", DEFER_HARD_IRQS),
            ("gro_flush_timeout", timeout.as_str()),
        ] {
            let path = deferral.path(file);
            let before = std::fs::read_to_string(&path)?.trim().to_owned();
            if before == "0" {
                std::fs::write(&path, value)?;
                deferral.changed.push((file, before));
            }
        }
        Ok(deferral)
    }

    fn path(&self, file: &str) -> String {
        format!("/sys/class/net/{}/{file}", self.interface)
    }
}

impl Drop for NapiDeferral {
    fn drop(&mut self) {
        for (file, before) in &self.changed {
            // The device may be gone (hot-plug): nothing to put back then.
            let _ = std::fs::write(self.path(file), before);
        }
    }
}

/// What one worker does on an empty ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Run the queue's NAPI poll (kick) when the ring is empty.
    pub busy_poll: bool,
    /// Give the CPU to whatever else is runnable on an empty ring.
    pub yield_cpu: bool,
    /// How long to keep polling (kicking, or spinning) an empty ring before
    /// sleeping in poll().
    pub spin: Duration,
}
