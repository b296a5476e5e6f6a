//! One configuration section per role. Each section knows its defaults (the OCS 2007 edge
//! ports), validates itself, and lists the sockets it listens on.

pub mod access_edge;
pub mod av_auth;
pub mod av_edge;
pub mod webconf_edge;

use std::net::IpAddr;

use crate::{NetworkConfig, Side};

/// A role's address on a side: its own override, or the side's address.
pub(crate) fn side_address(net: &NetworkConfig, side: Side, own: Option<IpAddr>) -> IpAddr {
    own.unwrap_or(match side {
        Side::External => net.external.address,
        Side::Internal => net.internal.address,
    })
}

pub(crate) fn default_certificate() -> String {
    "default".into()
}

pub(crate) fn yes() -> bool {
    true
}
