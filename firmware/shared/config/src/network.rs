//! The two sides of the appliance.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// Which side of the perimeter a listener faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    External,
    Internal,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::External => "external",
            Side::Internal => "internal",
        })
    }
}

/// The addresses of the external (perimeter, internet-facing) and internal sides.
///
/// Each role may override its own address on a side: in an OCS edge, the Access Edge, the
/// Web Conferencing Edge and the A/V Edge each have their own external address, because all
/// three answer on TCP 443.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    pub external: SideConfig,
    pub internal: SideConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideConfig {
    /// Default address of every role's listeners on this side.
    pub address: IpAddr,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            external: SideConfig {
                address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            },
            internal: SideConfig {
                address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            },
        }
    }
}
