//! Which peer addresses the relay may reach.
//!
//! Every path that takes a peer address (CreatePermission, ChannelBind, Send) asks this
//! policy after normalising the address (IPv4-mapped, 6to4, Teredo, NAT64 reduce to the
//! IPv4 address they embed; see `media_relay::address`). Special-purpose ranges are
//! denied by default; configured internal ranges are allowed, except the few addresses
//! that are never a peer (unspecified, broadcast, multicast) and the appliance's own
//! service ports. A configured range may allow only some ports; the permission it grants
//! carries them, so the relay threads send only to those ports of the peer.
//!
//! The local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) is normalised like 64:ff9b::/96,
//! but where it leads is site-specific (any RFC 6052 layout, any translator): it is denied
//! unless a configured IPv6 range covers it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

use edged_config::roles::av_edge::{parse_cidr, parse_peer_range, PeerRange};

/// A CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        parse_cidr(s).map(|(addr, len)| Cidr { addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Every peer port.
pub const ALL_PORTS: RangeInclusive<u16> = 1..=u16::MAX;

/// An allowed range: its addresses and the peer ports it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub cidr: Cidr,
    pub ports: RangeInclusive<u16>,
}

impl Allowed {
    /// An `allowed_peer_ranges` entry (`10.0.0.0/8` or `10.0.0.0/8:50000-59999`).
    pub fn parse(s: &str) -> Result<Allowed, String> {
        parse_peer_range(s).map(|PeerRange { addr, len, ports }| Allowed {
            cidr: Cidr { addr, len },
            ports,
        })
    }
}

/// A peer the relay may reach, and the ports of its address a permission covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reachable {
    /// Normalised.
    pub peer: SocketAddr,
    pub ports: RangeInclusive<u16>,
}

/// RFC 8215 local-use NAT64 prefix.
const LOCAL_NAT64: Cidr = Cidr {
    addr: IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0)),
    len: 48,
};

/// Special-purpose ranges denied unless configured (RFC 6890 and successors).
fn default_denied() -> Vec<(Cidr, &'static str)> {
    let v6 = |s: &str| {
        s.parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
    };
    let list: Vec<(IpAddr, u8, &'static str)> = vec![
        (v4(0, 0, 0, 0), 8, "\"this network\" 0.0.0.0/8"),
        (v4(10, 0, 0, 0), 8, "private 10.0.0.0/8"),
        (v4(100, 64, 0, 0), 10, "shared address space 100.64.0.0/10"),
        (v4(127, 0, 0, 0), 8, "loopback 127.0.0.0/8"),
        (
            v4(169, 254, 0, 0),
            16,
            "link-local 169.254.0.0/16 (cloud metadata)",
        ),
        (v4(172, 16, 0, 0), 12, "private 172.16.0.0/12"),
        (
            v4(192, 0, 0, 0),
            24,
            "IETF protocol assignments 192.0.0.0/24",
        ),
        (v4(192, 0, 2, 0), 24, "documentation 192.0.2.0/24"),
        (v4(192, 88, 99, 0), 24, "6to4 relay anycast 192.88.99.0/24"),
        (v4(192, 168, 0, 0), 16, "private 192.168.0.0/16"),
        (v4(198, 18, 0, 0), 15, "benchmarking 198.18.0.0/15"),
        (v4(198, 51, 100, 0), 24, "documentation 198.51.100.0/24"),
        (v4(203, 0, 113, 0), 24, "documentation 203.0.113.0/24"),
        (v4(240, 0, 0, 0), 4, "reserved 240.0.0.0/4"),
        (v6("::1"), 128, "loopback ::1"),
        (v6("100::"), 64, "discard-only 100::/64"),
        (v6("2001:2::"), 48, "benchmarking 2001:2::/48"),
        (v6("2001:db8::"), 32, "documentation 2001:db8::/32"),
        (v6("3fff::"), 20, "documentation 3fff::/20"),
        (v6("fc00::"), 7, "unique local fc00::/7"),
        (v6("fe80::"), 10, "link-local fe80::/10"),
        (v6("fec0::"), 10, "site-local fec0::/10"),
    ];
    list.into_iter()
        .map(|(addr, len, why)| (Cidr { addr, len }, why))
        .collect()
}

/// Why a peer was refused (logged at debug: clients try every candidate they have).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0} is never a peer (unspecified, broadcast or multicast)")]
    NeverPeer(IpAddr),
    #[error("{addr} is in the denied range {range}")]
    Denied { addr: IpAddr, range: &'static str },
    #[error("{0} is one of the appliance's own addresses outside the relay port range")]
    OwnAddress(SocketAddr),
    #[error("port 0 is not a peer port")]
    PortZero,
    #[error("port {port} of {addr} is outside the ports allowed there")]
    PortNotAllowed { addr: IpAddr, port: u16 },
}

#[derive(Debug, Clone)]
pub struct PeerPolicy {
    denied: Vec<(Cidr, &'static str)>,
    allowed: Vec<Allowed>,
    own_addresses: Vec<IpAddr>,
    relay_ports: RangeInclusive<u16>,
}

impl PeerPolicy {
    pub fn new(
        allowed: Vec<Allowed>,
        own_addresses: Vec<IpAddr>,
        relay_ports: RangeInclusive<u16>,
    ) -> Self {
        PeerPolicy {
            denied: default_denied(),
            allowed,
            own_addresses,
            relay_ports,
        }
    }

    /// The normalised peer address if the relay may reach it.
    pub fn check(&self, peer: SocketAddr) -> Result<SocketAddr, Refusal> {
        self.reach(peer).map(|r| r.peer)
    }

    /// The normalised peer address if the relay may reach it, and the ports of that
    /// address a permission for it covers.
    pub fn reach(&self, peer: SocketAddr) -> Result<Reachable, Refusal> {
        let raw = peer.ip();
        let peer = media_relay::address::normalise(peer);
        let ip = peer.ip();
        if peer.port() == 0 {
            return Err(Refusal::PortZero);
        }
        let never = match ip {
            IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
            IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
        };
        if never {
            return Err(Refusal::NeverPeer(ip));
        }
        if self.own_addresses.contains(&ip) && !self.relay_ports.contains(&peer.port()) {
            return Err(Refusal::OwnAddress(peer));
        }
        if LOCAL_NAT64.contains(raw) && !self.allowed.iter().any(|a| a.cidr.contains(raw)) {
            return Err(Refusal::Denied {
                addr: raw,
                range: "local-use NAT64 64:ff9b:1::/48",
            });
        }
        let mut covering = self
            .allowed
            .iter()
            .filter(|a| a.cidr.contains(ip))
            .peekable();
        if covering.peek().is_some() {
            return match covering.find(|a| a.ports.contains(&peer.port())) {
                Some(a) => Ok(Reachable {
                    peer,
                    ports: a.ports.clone(),
                }),
                None => Err(Refusal::PortNotAllowed {
                    addr: ip,
                    port: peer.port(),
                }),
            };
        }
        if let Some((_, range)) = self.denied.iter().find(|(c, _)| c.contains(ip)) {
            return Err(Refusal::Denied { addr: ip, range });
        }
        Ok(Reachable {
            peer,
            ports: ALL_PORTS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> PeerPolicy {
        PeerPolicy::new(
            allowed
                .iter()
                .filter_map(|s| Allowed::parse(s).ok())
                .collect(),
            vec!["93.184.216.34"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))],
            50000..=59999,
        )
    }

    fn ok(p: &PeerPolicy, s: &str) -> bool {
        let addr: SocketAddr = s.parse().unwrap_or_else(|_| panic!("bad test address {s}"));
        p.check(addr).is_ok()
    }

    #[test]
    fn bypass_forms_are_refused_by_default() {
        let p = policy(&[]);
        for s in [
            "0.0.0.0:80",
            "[::]:80",
            "[::1]:80",
            "127.0.0.1:80",
            "[::ffff:127.0.0.1]:80",
            "[::127.0.0.1]:80",
            "[2002:7f00:1::]:80",
            "[2001:0:4136:e378:8000:63bf:80ff:fffe]:80",
            "[64:ff9b::7f00:1]:80",
            "[64:ff9b:1::7f00:1]:80",
            "[64:ff9b:1::808:808]:80",
            "[64:ff9b:1:abcd::808:808]:80",
            "169.254.169.254:80",
            "[::ffff:169.254.169.254]:80",
            "10.1.2.3:80",
            "192.168.1.1:80",
            "172.16.0.1:80",
            "100.64.0.1:80",
            "198.18.0.1:80",
            "192.0.2.1:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
            "[fe80::1]:80",
            "[fd00::1]:80",
            "[ff02::1]:80",
            "[2001:db8::1]:80",
            "8.8.8.8:0",
        ] {
            assert!(!ok(&p, s), "{s} must be refused");
        }
        assert!(ok(&p, "8.8.8.8:3478"));
        assert!(ok(&p, "[2606:4700::1]:443"));
    }

    #[test]
    fn configured_ranges_are_allowed_but_never_the_unspecified_address() {
        let p = policy(&["127.0.0.0/8", "10.0.0.0/8"]);
        assert!(ok(&p, "127.0.0.1:5000"));
        assert!(ok(&p, "[::ffff:10.0.0.7]:5000"));
        assert!(!ok(&p, "0.0.0.0:5000"));
        assert!(!ok(&p, "[::]:5000"));
        assert!(
            !ok(&p, "[::1]:5000"),
            "::1 is not in the allowed IPv4 range"
        );
        assert!(!ok(&p, "192.168.0.1:5000"));
    }

    #[test]
    fn port_ranges_limit_an_allowed_range_to_their_ports() {
        let p = policy(&["10.0.0.0/8:50000-59999", "10.9.0.0/16"]);
        assert!(ok(&p, "10.1.2.3:50000"));
        assert!(!ok(&p, "10.1.2.3:22"), "outside the range's ports");
        assert!(!ok(&p, "[::ffff:10.1.2.3]:22"));
        let reach = |s: &str| p.reach(s.parse().unwrap_or_else(|_| panic!("{s}"))).ok();
        assert_eq!(
            reach("10.1.2.3:55555").map(|r| r.ports),
            Some(50000..=59999)
        );
        // An address covered by a range without ports is reachable on every port.
        assert_eq!(reach("10.9.1.1:22").map(|r| r.ports), Some(ALL_PORTS));
        assert_eq!(reach("8.8.8.8:53").map(|r| r.ports), Some(ALL_PORTS));
    }

    #[test]
    fn local_use_nat64_is_allowed_only_when_configured() {
        let p = policy(&["64:ff9b:1::/48"]);
        assert!(ok(&p, "[64:ff9b:1::808:808]:80"));
        // Still normalised: the IPv4 address it embeds is checked too.
        assert!(!ok(&p, "[64:ff9b:1::7f00:1]:80"));
    }

    #[test]
    fn own_address_only_on_relay_ports() {
        let p = policy(&[]);
        assert!(!ok(&p, "93.184.216.34:3478"));
        assert!(
            ok(&p, "93.184.216.34:50001"),
            "client to client through the relay"
        );
        assert!(!ok(&p, "[::ffff:93.184.216.34]:443"));
    }
}
