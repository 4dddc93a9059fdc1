//! What one check found: its kind, a verdict, one line of detail and the
//! fix.

use std::fmt;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// Works, but worse than it could (slower, or something to know).
    Warn,
    /// A capture would lose traffic, or would not start.
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Ok => "ok",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        })
    }
}

/// The checks, in the order `doctor` prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckKind {
    /// The devices the traffic crosses: driver and role of each.
    DeviceStack,
    /// Rx queues of each device.
    RxQueues,
    /// The XDP attach mode and AF_XDP bind mode a capture would get.
    XdpMode,
    /// The MTU against the UMEM frame.
    Mtu,
    /// LRO and hardware GRO.
    Offloads,
    /// Receive-side scaling of UDP on the device that receives.
    UdpHash,
    /// Where the queues' interrupts and NAPI work run, against the workers' CPUs.
    IrqAffinity,
    /// RLIMIT_MEMLOCK against the UMEM.
    Memlock,
    /// What the kernel offers: BPF links, need_wakeup, busy polling.
    Kernel,
    /// Other receivers of the VXLAN port: kernel VXLAN devices, UDP sockets.
    PortConsumers,
}

impl CheckKind {
    /// Every check, in order.
    pub const ALL: [Self; 10] = [
        Self::DeviceStack,
        Self::RxQueues,
        Self::XdpMode,
        Self::Mtu,
        Self::Offloads,
        Self::UdpHash,
        Self::IrqAffinity,
        Self::Memlock,
        Self::Kernel,
        Self::PortConsumers,
    ];

    /// The name printed.
    pub fn name(self) -> &'static str {
        match self {
            Self::DeviceStack => "device stack",
            Self::RxQueues => "rx queues",
            Self::XdpMode => "xdp mode",
            Self::Mtu => "mtu",
            Self::Offloads => "lro/gro-hw",
            Self::UdpHash => "udp hashing",
            Self::IrqAffinity => "irq affinity",
            Self::Memlock => "memlock",
            Self::Kernel => "kernel",
            Self::PortConsumers => "port users",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Which check.
    pub kind: CheckKind,
    /// How it came out.
    pub verdict: Verdict,
    /// What was found, on one line.
    pub detail: String,
    /// What to do about a warning or a failure.
    pub hint: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn ok(kind: CheckKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            verdict: Verdict::Ok,
            detail: detail.into(),
            hint: None,
        }
    }

    /// A warning, with what to do.
    pub fn warn(kind: CheckKind, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            kind,
            verdict: Verdict::Warn,
            detail: detail.into(),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
        }
    }

    /// A failure, with the fix.
    pub fn fail(kind: CheckKind, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            kind,
            verdict: Verdict::Fail,
            detail: detail.into(),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
        }
    }
}

impl fmt::Display for Check {
    /// `FAIL  mtu           MTU 9000 on veth1: …`, and the hint on a second
    /// line (`      fix: …`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<5} {:<13} {}", self.verdict, self.kind, self.detail)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n      fix: {hint}")?;
        }
        Ok(())
    }
}
