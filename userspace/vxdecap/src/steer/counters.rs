//! The XDP program's decision counters: a per-CPU array in the program,
//! mirrored here in the order of `enum vxd_counter` in
//! xdp-prog/vxdecap_shared.h (checked at compile time and by a test).

/// Mirrors `enum vxd_counter` in xdp-prog/vxdecap_shared.h, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum XdpCounter {
    /// Redirected to the AF_XDP socket of its rx queue.
    Redirected = 0,
    /// Matched, but no socket is bound on that queue.
    PassNoSocket,
    /// Not IPv4/IPv6.
    PassNotIp,
    /// IP but not UDP.
    PassNotUdp,
    /// UDP to a port not configured.
    PassPort,
    /// Outer IPv4 fragment.
    PassFragment,
    /// Headers cut short or invalid.
    PassMalformed,
    /// No room in front of the frame for the receive record.
    PassNoHeadroom,
    /// VXLAN from a source outside the allowlist: dropped.
    DropSource,
    /// VXLAN with a VNI outside the allowlist: dropped.
    DropVni,
    /// Outer IPv4 fragment sent to AF_XDP for reassembly (also in `Redirected`).
    FragmentSteered,
}

impl XdpCounter {
    /// Every counter, in map order.
    pub const ALL: [Self; 11] = [
        Self::Redirected,
        Self::PassNoSocket,
        Self::PassNotIp,
        Self::PassNotUdp,
        Self::PassPort,
        Self::PassFragment,
        Self::PassMalformed,
        Self::PassNoHeadroom,
        Self::DropSource,
        Self::DropVni,
        Self::FragmentSteered,
    ];

    /// True for the counters of frames the program passed to the kernel.
    pub fn is_pass(self) -> bool {
        !matches!(
            self,
            Self::Redirected | Self::DropSource | Self::DropVni | Self::FragmentSteered
        )
    }

    /// Stable name for summaries and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Redirected => "redirected",
            Self::PassNoSocket => "pass_no_socket",
            Self::PassNotIp => "pass_not_ip",
            Self::PassNotUdp => "pass_not_udp",
            Self::PassPort => "pass_other_port",
            Self::PassFragment => "pass_outer_fragment",
            Self::PassMalformed => "pass_malformed",
            Self::PassNoHeadroom => "pass_no_headroom",
            Self::DropSource => "drop_source_not_allowed",
            Self::DropVni => "drop_vni_not_allowed",
            Self::FragmentSteered => "fragment_steered",
        }
    }
}

/// Totals of the XDP program's per-CPU counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpCounters(pub [u64; XdpCounter::ALL.len()]);

impl XdpCounters {
    /// Adds another program instance's counters to these.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    /// One counter's total over all CPUs.
    pub fn get(&self, counter: XdpCounter) -> u64 {
        self.0[counter as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steer::shared;

    #[test]
    fn counters_mirror_the_shared_header_in_order() {
        for (counter, c_name) in XdpCounter::ALL.iter().zip(shared::VXD_COUNTER_NAMES) {
            let expected = match counter {
                XdpCounter::Redirected => "VXD_CTR_REDIRECTED",
                XdpCounter::PassNoSocket => "VXD_CTR_PASS_NO_SOCKET",
                XdpCounter::PassNotIp => "VXD_CTR_PASS_NOT_IP",
                XdpCounter::PassNotUdp => "VXD_CTR_PASS_NOT_UDP",
                XdpCounter::PassPort => "VXD_CTR_PASS_PORT",
                XdpCounter::PassFragment => "VXD_CTR_PASS_FRAGMENT",
                XdpCounter::PassMalformed => "VXD_CTR_PASS_MALFORMED",
                XdpCounter::PassNoHeadroom => "VXD_CTR_PASS_NO_HEADROOM",
                XdpCounter::DropSource => "VXD_CTR_DROP_SOURCE",
                XdpCounter::DropVni => "VXD_CTR_DROP_VNI",
                XdpCounter::FragmentSteered => "VXD_CTR_FRAGMENT_STEERED",
            };
            assert_eq!(
                c_name,
                expected,
                "counter {} is at index {}",
                counter.name(),
                *counter as u32
            );
        }
    }
}
