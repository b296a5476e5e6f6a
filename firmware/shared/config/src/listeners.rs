//! Sockets the configuration asks for, and the check that no two of them collide.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::{Config, ConfigErrors, Side};

/// Transport of a listener as an operator reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Mtls,
    Quic,
    Http,
    Https,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Mtls => "mtls",
            Transport::Quic => "quic",
            Transport::Http => "http",
            Transport::Https => "https",
        })
    }
}

/// IP protocol of a socket: what the kernel sees when two listeners collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// One listening socket the configuration implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// The config key that sets its port, named in errors.
    pub key: String,
    /// Role (or shared service) that owns it.
    pub owner: &'static str,
    pub purpose: String,
    pub side: Side,
    pub protocol: Protocol,
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Two sockets overlap when protocol and port match and the addresses can both receive the
/// same packet: equal, or one of them the wildcard of the same family.
fn overlaps(a: &SocketSpec, b: &SocketSpec) -> bool {
    a.protocol == b.protocol
        && a.addr.port() == b.addr.port()
        && addrs_overlap(a.addr.ip(), b.addr.ip())
}

fn addrs_overlap(a: IpAddr, b: IpAddr) -> bool {
    a == b
        || (a.is_unspecified() && a.is_ipv4() == b.is_ipv4())
        || (b.is_unspecified() && a.is_ipv4() == b.is_ipv4())
}

pub(crate) fn check_clashes(sockets: &[SocketSpec], config: &Config, errs: &mut ConfigErrors) {
    for (i, a) in sockets.iter().enumerate() {
        if a.addr.port() == 0 {
            errs.push(a.key.clone(), "must be a port number from 1 to 65535");
            continue;
        }
        for b in &sockets[..i] {
            if b.addr.port() != 0 && overlaps(a, b) {
                errs.push(
                    a.key.clone(),
                    format!(
                        "port clash: {} {} is also used by {} ({}); give one of them another port or address",
                        proto_name(a.protocol),
                        a.addr,
                        b.key,
                        b.purpose
                    ),
                );
            }
        }
    }
    // The relay's port range must not swallow a listener on the relay address.
    if config.av_edge.enabled {
        let (relay_ip, range) = config.av_edge.relay_range(&config.network);
        for s in sockets {
            if range.contains(&s.addr.port()) && addrs_overlap(relay_ip, s.addr.ip()) {
                errs.push(
                    s.key.clone(),
                    format!(
                        "port {} lies inside the relay port range {}-{} on {relay_ip} (av_edge.relay_port_min/max)",
                        s.addr.port(),
                        range.start(),
                        range.end()
                    ),
                );
            }
        }
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    }
}
