//! IP protocol numbers (IANA "Assigned Internet Protocol Numbers"), shared by IPv4's
//! `protocol` and IPv6's `next_header` fields.

/// Namespace for IP protocol numbers as plain `u8` constants (usable in `match` patterns).
///
/// ```
/// use vxdecap_wire::ip::IpProtocol;
/// assert_eq!(IpProtocol::UDP, 17);
/// ```
#[derive(Debug)]
pub enum IpProtocol {}

impl IpProtocol {
    /// IPv6 Hop-by-Hop Options extension header.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 Routing extension header.
    pub const IPV6_ROUTING: u8 = 43;
    /// IPv6 Fragment extension header.
    pub const IPV6_FRAGMENT: u8 = 44;
    /// Encapsulating Security Payload (also an IPv6 extension header).
    pub const ESP: u8 = 50;
    /// Authentication Header (also an IPv6 extension header).
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const IPV6_NO_NEXT: u8 = 59;
    /// IPv6 Destination Options extension header.
    pub const IPV6_DEST_OPTS: u8 = 60;
    /// IPv6 Mobility extension header.
    pub const MOBILITY: u8 = 135;
    /// Host Identity Protocol extension header.
    pub const HIP: u8 = 139;
    /// Shim6 extension header.
    pub const SHIM6: u8 = 140;
    /// Reserved for experimentation and testing (RFC 3692), IPv6 extension header.
    pub const EXPERIMENT_1: u8 = 253;
    /// Reserved for experimentation and testing (RFC 3692), IPv6 extension header.
    pub const EXPERIMENT_2: u8 = 254;

    /// Whether `protocol` is one of the IPv6 extension headers listed by IANA
    /// ("IPv6 Extension Header Types"), ESP and AH included.
    #[inline]
    pub const fn is_ipv6_extension(protocol: u8) -> bool {
        matches!(
            protocol,
            Self::HOP_BY_HOP
                | Self::IPV6_ROUTING
                | Self::IPV6_FRAGMENT
                | Self::ESP
                | Self::AH
                | Self::IPV6_DEST_OPTS
                | Self::MOBILITY
                | Self::HIP
                | Self::SHIM6
                | Self::EXPERIMENT_1
                | Self::EXPERIMENT_2
        )
    }
}

#[cfg(test)]
mod tests {
    use super::IpProtocol;

    #[test]
    fn extension_headers() {
        for p in [0u8, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254] {
            assert!(IpProtocol::is_ipv6_extension(p), "{p}");
        }
        for p in [1u8, 6, 17, 58, 59] {
            assert!(!IpProtocol::is_ipv6_extension(p), "{p}");
        }
    }
}
