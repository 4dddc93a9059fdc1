//! `--cloud`: presets for each cloud's mirror format, so a user need not know its ports.
//!
//! | preset       | what arrives                                             | VXLAN ports  | GENEVE |
//! |--------------|----------------------------------------------------------|--------------|--------|
//! | `azure-vtap` | Azure virtual network TAP: VXLAN                         | 4789         | off    |
//! | `azure-gwlb` | Azure Gateway Load Balancer: VXLAN, internal and external| 10800, 10801 | off    |
//! | `aws-mirror` | AWS Traffic Mirroring to an ENI or NLB: VXLAN            | 4789         | off    |
//! | `aws-gwlb`   | AWS Gateway Load Balancer: GENEVE (Traffic Mirroring's VXLAN inside, or bare IP inline) | 4789 | 6081 |
//! | `gcp`        | Google Cloud Network Security Integration: GENEVE        | 4789         | 6081   |
//!
//! Ports given with `--port`/`--geneve-port` (or in the file) win over the preset's.

use std::fmt;
use std::str::FromStr;

use vxdecap_wire::{GENEVE_PORT, VXLAN_PORT};

/// Azure Gateway Load Balancer's internal tunnel: port and identifier (VNI).
pub const AZURE_GWLB_INTERNAL: (u16, u32) = (10800, 800);
/// Azure Gateway Load Balancer's external tunnel: port and identifier (VNI).
pub const AZURE_GWLB_EXTERNAL: (u16, u32) = (10801, 801);

/// A cloud's mirror format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    /// Azure virtual network TAP.
    AzureVtap,
    /// Azure Gateway Load Balancer (chained, inline).
    AzureGwlb,
    /// AWS VPC Traffic Mirroring.
    AwsMirror,
    /// AWS Gateway Load Balancer (inline; or Traffic Mirroring into its endpoint).
    AwsGwlb,
    /// Google Cloud packet mirroring through Network Security Integration.
    Gcp,
}

impl Cloud {
    /// Every preset, in the order `--help` lists them.
    pub const ALL: [Self; 5] = [
        Self::AzureVtap,
        Self::AzureGwlb,
        Self::AwsMirror,
        Self::AwsGwlb,
        Self::Gcp,
    ];

    /// The name given to `--cloud`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::AzureVtap => "azure-vtap",
            Self::AzureGwlb => "azure-gwlb",
            Self::AwsMirror => "aws-mirror",
            Self::AwsGwlb => "aws-gwlb",
            Self::Gcp => "gcp",
        }
    }

    /// The VXLAN ports it sets.
    pub fn vxlan_ports(self) -> &'static [u16] {
        match self {
            Self::AzureGwlb => &[AZURE_GWLB_INTERNAL.0, AZURE_GWLB_EXTERNAL.0],
            _ => &[VXLAN_PORT],
        }
    }

    /// The GENEVE ports it sets (empty: GENEVE off).
    pub fn geneve_ports(self) -> &'static [u16] {
        match self {
            Self::AwsGwlb | Self::Gcp => &[GENEVE_PORT],
            _ => &[],
        }
    }

    /// One line for the start-up line and `check-config`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::AzureVtap => "Azure virtual network TAP: VXLAN on 4789",
            Self::AzureGwlb => {
                "Azure Gateway Load Balancer: VXLAN, internal tunnel on 10800 (VNI 800), \
                 external on 10801 (VNI 801); inline: the load balancer expects every packet back"
            }
            Self::AwsMirror => "AWS Traffic Mirroring: VXLAN on 4789",
            Self::AwsGwlb => {
                "AWS Gateway Load Balancer: GENEVE on 6081 with the endpoint options, Traffic \
                 Mirroring's VXLAN inside peeled; bare IP inside is the inline path, whose \
                 packets the load balancer expects back"
            }
            Self::Gcp => {
                "Google Cloud packet mirroring (Network Security Integration): GENEVE on 6081"
            }
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Cloud {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.name()).collect();
                format!("unknown cloud {s:?}: give one of {}", names.join(", "))
            })
    }
}

/// Which of Azure Gateway Load Balancer's two tunnels a frame came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GwlbDirection {
    /// The internal tunnel (port 10800, VNI 800): traffic towards the consumer's backends.
    Internal,
    /// The external tunnel (port 10801, VNI 801): traffic from the consumer's frontend.
    External,
}

impl GwlbDirection {
    /// From the outer UDP destination port (Azure's default ports).
    pub fn from_port(port: u16) -> Option<Self> {
        match port {
            p if p == AZURE_GWLB_INTERNAL.0 => Some(Self::Internal),
            p if p == AZURE_GWLB_EXTERNAL.0 => Some(Self::External),
            _ => None,
        }
    }

    /// `internal` or `external`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::External => "external",
        }
    }
}

impl FromStr for GwlbDirection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "internal" => Ok(Self::Internal),
            "external" => Ok(Self::External),
            _ => Err(format!("direction={s}: give internal or external")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_list_the_choices() {
        for cloud in Cloud::ALL {
            assert_eq!(cloud.name().parse::<Cloud>(), Ok(cloud));
            assert!(!cloud.vxlan_ports().is_empty());
        }
        let e = "azure".parse::<Cloud>().expect_err("unknown");
        assert!(e.contains("azure-vtap") && e.contains("gcp"), "{e}");
        assert_eq!(Cloud::AzureGwlb.vxlan_ports(), &[10800, 10801]);
        assert_eq!(Cloud::AwsGwlb.geneve_ports(), &[6081]);
        assert!(Cloud::AwsMirror.geneve_ports().is_empty());
    }

    #[test]
    fn azure_gwlb_directions_come_from_the_port() {
        assert_eq!(
            GwlbDirection::from_port(10800),
            Some(GwlbDirection::Internal)
        );
        assert_eq!(
            GwlbDirection::from_port(10801),
            Some(GwlbDirection::External)
        );
        assert_eq!(GwlbDirection::from_port(4789), None);
        assert_eq!("external".parse(), Ok(GwlbDirection::External));
        assert!("sideways".parse::<GwlbDirection>().is_err());
    }
}
