//! How a worker waits for frames on an empty ring (the receive policy).
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
//! ([`vxdecap_xsk::RxSocket::kick`]), and [`NapiDeferral`](crate::runtime::receive_work::NapiDeferral) sets the
//! device's `napi_defer_hard_irqs` and `gro_flush_timeout`, so that while
//! the worker keeps polling the device raises no interrupt and the kernel
//! schedules no receive work of its own. When the worker sleeps, the
//! deferral times out and receive processing goes back to the kernel,
//! which wakes the worker when frames arrive.

use std::fmt;
use std::time::{Duration, Instant};

use vxdecap_xsk::BindMode;

use crate::error::ParseError;

/// How workers wait for frames (`--rx-policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RxPolicy {
    /// Per queue, once its socket is bound: [`RxPolicy::BusyPoll`] when the
    /// kernel gave the socket a NAPI id (busy polling can run it);
    /// otherwise sleep whenever the kernel's receive work can run on the
    /// worker's core (see [`ReceiveWork`](crate::runtime::receive_work::ReceiveWork)), and spin briefly under load
    /// while it runs elsewhere.
    #[default]
    Auto,
    /// Preferred busy polling: the worker runs the queue's receive work,
    /// kicking NAPI on an empty ring for a short while before sleeping.
    BusyPoll,
    /// Spin on an empty ring for the idle spin time (`--spin-us`), then sleep.
    Spin,
    /// Sleep in poll() as soon as the ring is empty (napping instead at
    /// light load, see [`IdlePacer`]).
    Sleep,
}

impl std::str::FromStr for RxPolicy {
    type Err = ParseError;

    /// `auto`, `busy-poll`, `spin` or `sleep`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "auto" => Self::Auto,
            "busy-poll" => Self::BusyPoll,
            "spin" => Self::Spin,
            "sleep" => Self::Sleep,
            _ => {
                return Err(ParseError::new(format!(
                    "--rx-policy {text}: use auto, busy-poll, spin or sleep"
                )))
            }
        })
    }
}

impl RxPolicy {
    /// The policy a queue runs with a socket bound in `mode` that the
    /// kernel gave NAPI id `napi_id` (`SO_INCOMING_NAPI_ID` after bind),
    /// and why. Busy polling needs that id: since Linux 6.13 a socket gets
    /// it at bind, from the queue's NAPI, when the driver links its queues
    /// to their NAPIs (mlx5, netvsc; not veth, nor MANA as of 6.17) and,
    /// before 6.15, only for zero-copy sockets (see docs/azure.md, 2.1).
    pub fn resolve(self, mode: BindMode, napi_id: u32) -> (Self, &'static str) {
        match (self, napi_id) {
            (Self::Auto, 1..) if mode == BindMode::ZeroCopy => (
                Self::BusyPoll,
                "zero-copy socket with a NAPI id: the worker runs the queue's receive work itself (preferred busy polling)",
            ),
            (Self::Auto, 1..) => (
                Self::BusyPoll,
                "copy-mode socket with a NAPI id: the worker runs the queue's receive work itself (preferred busy polling)",
            ),
            (Self::Auto, 0) => (
                Self::Auto,
                "the kernel gave this socket no NAPI id to busy-poll: the worker sleeps on an empty ring while the kernel's receive work can run on its core, and spins briefly under load while it runs elsewhere",
            ),
            (policy, _) => (policy, "as asked (--rx-policy)"),
        }
    }
}

impl fmt::Display for RxPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::BusyPoll => "busy-poll",
            Self::Spin => "spin",
            Self::Sleep => "sleep",
        })
    }
}

/// How long a busy-polling worker keeps kicking an empty ring before it
/// sleeps: well inside [`GRO_FLUSH_TIMEOUT_NS`](crate::runtime::receive_work::GRO_FLUSH_TIMEOUT_NS), so the device's deferral
/// never lapses while the worker is awake.
pub const BUSY_POLL_SPIN: Duration = Duration::from_micros(100);

/// What one worker does on an empty ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Run the queue's NAPI poll (kick) when the ring is empty.
    pub busy_poll: bool,
    /// How long to keep polling (kicking, or spinning) an empty ring before
    /// sleeping.
    pub spin: Duration,
    /// Spin only under load and only while the kernel's receive work runs
    /// on other cores ([`RxPolicy::Auto`] on a copy-mode socket).
    pub adaptive: bool,
}

impl IdlePolicy {
    /// The idle behaviour of `policy` (resolved), spinning `spin` for [`RxPolicy::Spin`].
    pub fn of(policy: RxPolicy, spin: Duration) -> Self {
        match policy {
            RxPolicy::BusyPoll => Self {
                busy_poll: true,
                spin: BUSY_POLL_SPIN,
                adaptive: false,
            },
            RxPolicy::Spin => Self {
                busy_poll: false,
                spin,
                adaptive: false,
            },
            RxPolicy::Auto => Self {
                busy_poll: false,
                spin: spin.min(ADAPTIVE_SPIN_MAX),
                adaptive: true,
            },
            RxPolicy::Sleep => Self {
                busy_poll: false,
                spin: Duration::ZERO,
                adaptive: false,
            },
        }
    }
}

/// What the worker does next on an empty ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleStep {
    /// Look again at once (spinning, or kicking NAPI when busy polling).
    Spin,
    /// Sleep this long without looking, so frames gather (light traffic).
    Nap(Duration),
    /// Sleep in poll() until frames arrive.
    Sleep,
}

/// The longest nap: a burst at 7 Mpps that starts during one fills 3 500 of
/// the RX ring's 4 096 slots.
pub const NAP_MAX: Duration = Duration::from_micros(500);
/// Naps shorter than this are not worth a timer: poll() instead.
const NAP_MIN: Duration = Duration::from_micros(50);
/// Frames a nap aims to gather at the rate seen.
const NAP_FRAMES: f64 = 32.0;

/// Decides, batch by batch, what an empty ring costs the worker.
///
/// Under load the ring is never empty for long and nothing here matters.
/// At light load each wake-up from poll() carries a frame or two, and
/// wake-ups, not frames, are the cost (a mirror at 10 000 frames a second
/// woke the worker 10 000 times, 6-12 % of a core): then the worker naps
/// for about the time `NAP_FRAMES` (32) frames take to arrive at the rate
/// seen (at most [`NAP_MAX`]) before looking again, as a NIC moderates its
/// interrupts. A nap that gathers nothing ends in poll(), which sleeps until
/// traffic comes back.
#[derive(Debug)]
pub struct IdlePacer {
    policy: IdlePolicy,
    /// When the ring was first seen empty in this idle stretch, and how
    /// long this stretch may spin.
    idle_since: Option<(Instant, Duration)>,
    /// When the worker last went to sleep or nap, and frames since then.
    slept_at: Instant,
    frames_since_sleep: u64,
    naps: u64,
}

/// [`RxPolicy::Auto`] spins only at rates where the next frames are due
/// within a few microseconds, about what a sleep and a wake-up cost...
const ADAPTIVE_SPIN_RATE: f64 = 200_000.0;
/// ... and for no longer than a batch of frames takes to arrive at that
/// rate, at most this long.
const ADAPTIVE_SPIN_MAX: Duration = Duration::from_micros(250);
/// ... and for at least this long: at high rates the next batch is
/// always about to come.
const ADAPTIVE_SPIN_MIN: Duration = Duration::from_micros(20);
/// Frames a spin waits for at the rate seen.
const SPIN_FRAMES: f64 = 64.0;

impl IdlePacer {
    /// A pacer for `policy`.
    pub fn new(policy: IdlePolicy) -> Self {
        Self {
            policy,
            idle_since: None,
            slept_at: Instant::now(),
            frames_since_sleep: 0,
            naps: 0,
        }
    }

    /// The policy.
    pub fn policy(&self) -> IdlePolicy {
        self.policy
    }

    /// `frames` were received.
    #[inline]
    pub fn busy(&mut self, frames: usize) {
        self.idle_since = None;
        self.frames_since_sleep += frames as u64;
    }

    /// Frames per second since the worker last slept.
    fn rate(&self, now: Instant) -> f64 {
        let elapsed = now.duration_since(self.slept_at).as_secs_f64();
        if elapsed <= 0.0 {
            0.0
        } else {
            self.frames_since_sleep as f64 / elapsed
        }
    }

    /// The ring is empty: what next. `shared` says whether the kernel's
    /// receive work can run on this worker's core now.
    pub fn empty(&mut self, shared: bool) -> IdleStep {
        let now = Instant::now();
        let (idle, spin) = if let Some(stretch) = self.idle_since {
            stretch
        } else {
            let spin = if !self.policy.adaptive {
                self.policy.spin
            } else if shared {
                // Every spin is time the kernel's thread waits for this CPU.
                Duration::ZERO
            } else {
                let rate = self.rate(now);
                if rate < ADAPTIVE_SPIN_RATE {
                    Duration::ZERO
                } else {
                    Duration::from_secs_f64(SPIN_FRAMES / rate)
                        .clamp(ADAPTIVE_SPIN_MIN, ADAPTIVE_SPIN_MAX)
                        .min(self.policy.spin)
                }
            };
            self.idle_since = Some((now, spin));
            (now, spin)
        };
        if now.duration_since(idle) < spin {
            return IdleStep::Spin;
        }
        // Light traffic: frames came since the last sleep, at a rate where a
        // nap gathers a useful batch without crowding the ring.
        let rate = self.rate(now);
        self.frames_since_sleep = 0;
        self.slept_at = now;
        self.idle_since = None;
        if rate <= 0.0 {
            return IdleStep::Sleep;
        }
        let nap = Duration::from_secs_f64((NAP_FRAMES / rate).min(NAP_MAX.as_secs_f64()));
        if nap < NAP_MIN {
            return IdleStep::Sleep;
        }
        self.naps += 1;
        IdleStep::Nap(nap)
    }

    /// Naps taken so far.
    pub fn naps(&self) -> u64 {
        self.naps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> IdlePacer {
        IdlePacer::new(IdlePolicy::of(RxPolicy::Sleep, Duration::from_secs(1)))
    }

    #[test]
    fn no_traffic_sleeps_until_frames_come() {
        let mut pacer = sleeper();
        assert_eq!(pacer.empty(false), IdleStep::Sleep);
        assert_eq!(pacer.empty(false), IdleStep::Sleep);
    }

    #[test]
    fn light_traffic_naps_and_heavy_traffic_sleeps_in_poll() {
        let mut pacer = sleeper();
        // A frame or two per millisecond: nap, at most NAP_MAX.
        std::thread::sleep(Duration::from_millis(2));
        pacer.busy(2);
        match pacer.empty(false) {
            IdleStep::Nap(d) => assert!(d <= NAP_MAX && d >= NAP_MIN, "{d:?}"),
            other => panic!("expected a nap, got {other:?}"),
        }
        // Thousands of frames since: a nap would crowd the ring; poll() instead.
        pacer.busy(100_000);
        assert_eq!(pacer.empty(false), IdleStep::Sleep);
        assert_eq!(pacer.naps(), 1);
    }

    #[test]
    fn spinning_comes_first_when_asked() {
        let mut pacer = IdlePacer::new(IdlePolicy::of(RxPolicy::Spin, Duration::from_secs(60)));
        pacer.busy(1);
        assert_eq!(
            pacer.empty(true),
            IdleStep::Spin,
            "asked for: even on a shared core"
        );
    }

    #[test]
    fn auto_spins_under_load_only_on_a_core_of_its_own() {
        let auto = || IdlePacer::new(IdlePolicy::of(RxPolicy::Auto, Duration::from_secs(1)));
        // Under load (a million frames in a moment).
        let mut pacer = auto();
        pacer.busy(1_000_000);
        assert_eq!(pacer.empty(false), IdleStep::Spin);
        let mut pacer = auto();
        pacer.busy(1_000_000);
        assert_eq!(
            pacer.empty(true),
            IdleStep::Sleep,
            "the kernel's thread needs this CPU"
        );
        // Light load: no spinning anywhere.
        let mut pacer = auto();
        std::thread::sleep(Duration::from_millis(5));
        pacer.busy(1);
        assert!(matches!(pacer.empty(false), IdleStep::Nap(_)));
    }

    #[test]
    fn auto_busy_polls_sockets_with_a_napi_id_only() {
        let auto = |mode, napi_id| RxPolicy::Auto.resolve(mode, napi_id).0;
        assert_eq!(auto(BindMode::ZeroCopy, 8193), RxPolicy::BusyPoll);
        assert_eq!(auto(BindMode::Copy, 8193), RxPolicy::BusyPoll);
        assert_eq!(auto(BindMode::ZeroCopy, 0), RxPolicy::Auto);
        assert_eq!(auto(BindMode::Copy, 0), RxPolicy::Auto);
        assert_eq!(
            RxPolicy::Spin.resolve(BindMode::ZeroCopy, 8193).0,
            RxPolicy::Spin
        );
        assert!(IdlePolicy::of(RxPolicy::BusyPoll, Duration::ZERO).busy_poll);
        assert_eq!(
            IdlePolicy::of(RxPolicy::Sleep, Duration::from_secs(1)).spin,
            Duration::ZERO
        );
    }
}
