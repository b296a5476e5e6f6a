//! `[av_edge]`: the STUN/TURN media relay.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::{default_certificate, side_address};
use crate::{CertRef, ConfigErrors, NetworkConfig, Protocol, Side, SocketSpec, Transport};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AvEdgeConfig {
    pub enabled: bool,
    pub certificate: String,
    /// STUN realm of the long-term credentials.
    pub realm: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_address: Option<IpAddr>,
    /// STUN/TURN over UDP on both sides (OCS: 3478).
    pub udp_port: u16,
    /// TURN over TCP and TLS on both sides, told apart by the first byte (OCS: 443).
    pub tcp_port: u16,
    /// TURN over TLS on its own port (RFC 8656: 5349); 0 turns it off.
    pub tls_port: u16,
    /// Address relayed media leaves from; defaults to the role's external address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_address: Option<IpAddr>,
    /// IPv6 relay address for RFC 6156 (REQUESTED-ADDRESS-FAMILY / ADDITIONAL-ADDRESS-FAMILY
    /// IPv6); absent means IPv4 only and IPv6 requests get 440. Same port range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_address_v6: Option<IpAddr>,
    pub relay_port_min: u16,
    pub relay_port_max: u16,
    /// Relay threads; 0 means one per core but core 0 (one thread on a single core).
    pub relay_threads: usize,
    /// Cores the relay threads are pinned to, in order; empty means automatic.
    pub relay_cores: Vec<usize>,
    /// SCHED_FIFO priority (1-99) of the relay threads; 0 keeps them ordinary threads. Set
    /// while edged still runs as root; a relay thread then preempts other work on its core.
    pub relay_realtime_priority: u8,
    /// Lock edged's memory (mlockall) so the packet path never takes a page fault.
    pub relay_lock_memory: bool,
    /// Shortest turn of a relay thread that moved traffic, in microseconds: after a light
    /// turn the thread sleeps out the rest, so the next turn handles many datagrams in
    /// one go (fewer wake-ups, sends in bursts). Adds at most this much latency; 0 turns
    /// pacing off.
    pub relay_pacing_us: u32,
    /// The same for fast flows, in microseconds: when a turn this long would hold two or
    /// more datagrams of every flow, turns stretch to it and each flow's datagrams leave
    /// as one GSO send. At least `relay_pacing_us`.
    pub relay_pacing_max_us: u32,
    /// Peer ranges (CIDR) the relay may reach although they are private: the internal
    /// networks where the organisation's clients live. Everything private is denied otherwise.
    /// An entry may end in a port or port range (`10.0.0.0/8:50000-59999`): then only
    /// those ports of the range are reachable.
    pub allowed_peer_ranges: Vec<String>,
    pub max_allocations: u32,
    /// Allocations (and reserved ports) per identity: a long-term user, or the user of
    /// short-lived `expiry:user` credentials (every credential of the user together).
    pub max_allocations_per_user: u32,
    /// Peers one allocation may hold permissions for at once.
    pub max_permissions_per_allocation: u32,
    /// Channels one allocation may have bound at once.
    pub max_channels_per_allocation: u32,
    /// XOR-PEER-ADDRESS attributes one CreatePermission may carry.
    pub max_peers_per_request: u32,
    /// RFC 6062 peer connections (pending or bound) one TCP allocation may hold: each
    /// costs two descriptors.
    pub max_tcp_peer_connections_per_allocation: u32,
    /// TURN TCP/TLS connections held at once, per listener.
    pub tcp_max_connections: u32,
    /// TURN TCP/TLS connections one source (IPv4 address, IPv6 /64) holds at once, per
    /// listener.
    pub tcp_max_connections_per_source: u32,
    /// Seconds a TCP/TLS client has for its TLS handshake and first complete request.
    pub tcp_first_request_timeout_secs: u32,
    /// Seconds a TCP/TLS connection may stay without an authenticated request.
    pub tcp_auth_timeout_secs: u32,
    /// Seconds a TCP/TLS connection without an allocation (nor a bound peer connection)
    /// may stay without a complete request.
    pub tcp_idle_timeout_secs: u32,
    /// Per-allocation bandwidth cap in kbit/s (0: no cap).
    pub allocation_bandwidth_kbps: u32,
    /// Create a demo long-term user and print its credentials at start (loopback demos only).
    pub demo_user: bool,
    /// Seconds a nonce stays valid before requests get 438 Stale Nonce.
    pub nonce_lifetime_secs: u64,
    /// Allocation lifetime granted when the client asks for none (RFC 8656: 600 s).
    pub default_lifetime_secs: u32,
    /// Longest allocation lifetime granted (RFC 8656: 3600 s).
    pub max_lifetime_secs: u32,
    /// Unauthenticated requests answered per second and source address; more are dropped
    /// silently so the relay cannot be used as a reflector.
    pub unauthenticated_rate_per_sec: u32,
}

impl Default for AvEdgeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            certificate: default_certificate(),
            realm: "edge".into(),
            external_address: None,
            internal_address: None,
            udp_port: 3478,
            tcp_port: 443,
            tls_port: 0,
            relay_address: None,
            relay_address_v6: None,
            relay_port_min: 50000,
            relay_port_max: 59999,
            relay_threads: 0,
            relay_cores: Vec::new(),
            relay_realtime_priority: 0,
            relay_lock_memory: false,
            relay_pacing_us: 300,
            relay_pacing_max_us: 2_000,
            allowed_peer_ranges: Vec::new(),
            max_allocations: 20_000,
            max_allocations_per_user: 20,
            max_permissions_per_allocation: 64,
            max_channels_per_allocation: 64,
            max_peers_per_request: 16,
            max_tcp_peer_connections_per_allocation: 32,
            tcp_max_connections: 8_192,
            tcp_max_connections_per_source: 256,
            tcp_first_request_timeout_secs: 10,
            tcp_auth_timeout_secs: 30,
            tcp_idle_timeout_secs: 60,
            allocation_bandwidth_kbps: 0,
            demo_user: false,
            nonce_lifetime_secs: 600,
            default_lifetime_secs: 600,
            max_lifetime_secs: 3600,
            unauthenticated_rate_per_sec: 50,
        }
    }
}

impl AvEdgeConfig {
    /// The relay address and its port range.
    pub fn relay_range(&self, net: &NetworkConfig) -> (IpAddr, RangeInclusive<u16>) {
        let ip = self
            .relay_address
            .unwrap_or_else(|| side_address(net, Side::External, self.external_address));
        (ip, self.relay_port_min..=self.relay_port_max)
    }

    pub(crate) fn validate<'a>(&'a self, errs: &mut ConfigErrors, certs: &mut Vec<CertRef<'a>>) {
        if !self.enabled {
            return;
        }
        certs.push(CertRef {
            key: "av_edge.certificate".into(),
            name: &self.certificate,
        });
        if self.realm.is_empty() || self.realm.len() > 127 {
            errs.push("av_edge.realm", "must be 1 to 127 characters");
        }
        if self.relay_realtime_priority > 99 {
            errs.push(
                "av_edge.relay_realtime_priority",
                "must be 0 (off) or a SCHED_FIFO priority 1 to 99",
            );
        }
        if self.relay_pacing_us > 5_000 {
            errs.push(
                "av_edge.relay_pacing_us",
                "must be 0 (off) to 5000 microseconds: more would add audible latency",
            );
        }
        if self.relay_pacing_max_us > 5_000 || self.relay_pacing_max_us < self.relay_pacing_us {
            errs.push(
                "av_edge.relay_pacing_max_us",
                format!(
                    "must be {} (relay_pacing_us) to 5000 microseconds",
                    self.relay_pacing_us
                ),
            );
        }
        if self.relay_port_min == 0 || self.relay_port_min > self.relay_port_max {
            errs.push(
                "av_edge.relay_port_min",
                format!(
                    "the relay range {}-{} is empty or starts at 0",
                    self.relay_port_min, self.relay_port_max
                ),
            );
        }
        if self
            .relay_address_v6
            .is_some_and(|a| !a.is_ipv6() || a.is_unspecified())
        {
            errs.push(
                "av_edge.relay_address_v6",
                "must be a specific IPv6 address",
            );
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for (i, c) in self.relay_cores.iter().enumerate() {
            if *c >= cores {
                errs.push(
                    format!("av_edge.relay_cores[{i}]"),
                    format!("core {c} does not exist (this machine has {cores})"),
                );
            }
        }
        for (i, r) in self.allowed_peer_ranges.iter().enumerate() {
            if let Err(reason) = parse_peer_range(r) {
                errs.push(format!("av_edge.allowed_peer_ranges[{i}]"), reason);
            }
        }
        if self.max_allocations == 0 {
            errs.push("av_edge.max_allocations", "must be at least 1");
        }
        if self.max_allocations_per_user == 0 {
            errs.push("av_edge.max_allocations_per_user", "must be at least 1");
        }
        if !(1..=86_400).contains(&self.nonce_lifetime_secs) {
            errs.push("av_edge.nonce_lifetime_secs", "must be 1 to 86400 seconds");
        }
        if self.max_lifetime_secs < 60 {
            errs.push("av_edge.max_lifetime_secs", "must be at least 60 seconds");
        }
        if self.default_lifetime_secs == 0 || self.default_lifetime_secs > self.max_lifetime_secs {
            errs.push(
                "av_edge.default_lifetime_secs",
                "must be at least 1 and at most av_edge.max_lifetime_secs",
            );
        }
        if self.unauthenticated_rate_per_sec == 0 {
            errs.push("av_edge.unauthenticated_rate_per_sec", "must be at least 1");
        }
        for (key, value, max) in [
            (
                "max_permissions_per_allocation",
                self.max_permissions_per_allocation,
                4096,
            ),
            (
                "max_channels_per_allocation",
                self.max_channels_per_allocation,
                4096,
            ),
            ("max_peers_per_request", self.max_peers_per_request, 256),
            (
                "max_tcp_peer_connections_per_allocation",
                self.max_tcp_peer_connections_per_allocation,
                4096,
            ),
            ("tcp_max_connections", self.tcp_max_connections, 1 << 20),
            (
                "tcp_max_connections_per_source",
                self.tcp_max_connections_per_source,
                1 << 20,
            ),
            (
                "tcp_first_request_timeout_secs",
                self.tcp_first_request_timeout_secs,
                300,
            ),
            ("tcp_auth_timeout_secs", self.tcp_auth_timeout_secs, 3600),
            ("tcp_idle_timeout_secs", self.tcp_idle_timeout_secs, 86_400),
        ] {
            if !(1..=max).contains(&value) {
                errs.push(format!("av_edge.{key}"), format!("must be 1 to {max}"));
            }
        }
    }

    pub(crate) fn sockets(&self, net: &NetworkConfig, out: &mut Vec<SocketSpec>) {
        if !self.enabled {
            return;
        }
        for (side, ip) in [
            (
                Side::External,
                side_address(net, Side::External, self.external_address),
            ),
            (
                Side::Internal,
                side_address(net, Side::Internal, self.internal_address),
            ),
        ] {
            let mut add = |key: &str, purpose: &str, protocol, transport, port| {
                out.push(SocketSpec {
                    key: format!("av_edge.{key}"),
                    owner: "av_edge",
                    purpose: purpose.into(),
                    side,
                    protocol,
                    transport,
                    addr: SocketAddr::new(ip, port),
                })
            };
            add(
                "udp_port",
                "STUN/TURN",
                Protocol::Udp,
                Transport::Udp,
                self.udp_port,
            );
            add(
                "tcp_port",
                "TURN over TCP/TLS",
                Protocol::Tcp,
                Transport::Tcp,
                self.tcp_port,
            );
            if self.tls_port != 0 {
                add(
                    "tls_port",
                    "TURN over TLS",
                    Protocol::Tcp,
                    Transport::Tls,
                    self.tls_port,
                );
            }
        }
    }
}

/// An `allowed_peer_ranges` entry: a CIDR range and the peer ports it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerRange {
    pub addr: IpAddr,
    pub len: u8,
    pub ports: RangeInclusive<u16>,
}

/// Parses `addr/len`, `addr/len:port` or `addr/len:first-last` (for IPv6 too: the prefix
/// length holds no colon, so `fd00::/8:5000-5999` is unambiguous).
pub fn parse_peer_range(s: &str) -> Result<PeerRange, String> {
    let (cidr, ports) = match s.split_once('/') {
        Some((addr, rest)) => match rest.split_once(':') {
            Some((len, ports)) => (&s[..addr.len() + 1 + len.len()], Some(ports)),
            None => (s, None),
        },
        None => (s, None),
    };
    let (addr, len) = parse_cidr(cidr)?;
    let ports = match ports {
        None => 1..=u16::MAX,
        Some(p) => parse_ports(p).map_err(|why| format!("\"{s}\": {why}"))?,
    };
    Ok(PeerRange { addr, len, ports })
}

fn parse_ports(p: &str) -> Result<RangeInclusive<u16>, String> {
    let port = |t: &str| -> Result<u16, String> {
        match t.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("\"{t}\" is not a port (1 to 65535)")),
            Ok(n) => Ok(n),
        }
    };
    let (first, last) = match p.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let only = port(p)?;
            (only, only)
        }
    };
    if first > last {
        return Err(format!("the port range {first}-{last} is empty"));
    }
    Ok(first..=last)
}

/// Parses `addr/len`, checking the prefix length against the family.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| format!("\"{s}\" is not a CIDR range (address/prefix)"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("\"{s}\": \"{addr}\" is not an IP address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("\"{s}\": \"{len}\" is not a prefix length"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("\"{s}\": prefix length must be at most {max}"));
    }
    Ok((addr, len))
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn relay_timing_errors_name_their_keys() {
        let mut c = Config::embedded_default();
        c.av_edge.nonce_lifetime_secs = 0;
        c.av_edge.default_lifetime_secs = 7200;
        c.av_edge.unauthenticated_rate_per_sec = 0;
        let text = match c.validate() {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        for key in [
            "av_edge.nonce_lifetime_secs",
            "av_edge.default_lifetime_secs",
            "av_edge.unauthenticated_rate_per_sec",
        ] {
            assert!(text.contains(key), "{key} missing from: {text}");
        }
    }

    #[test]
    fn relay_address_v6_must_be_ipv6() {
        let mut c = Config::embedded_default();
        c.av_edge.relay_address_v6 = "127.0.0.1".parse().ok();
        let text = c
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(text.contains("av_edge.relay_address_v6"), "{text}");
        c.av_edge.relay_address_v6 = "::1".parse().ok();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn peer_ranges_may_carry_ports() {
        use super::parse_peer_range;
        let r = parse_peer_range("10.0.0.0/8:50000-59999").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.addr.to_string(), r.len), ("10.0.0.0".into(), 8));
        assert_eq!(r.ports, 50000..=59999);
        let r = parse_peer_range("fd00::/8:3478").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.len, r.ports), (8, 3478..=3478));
        let r = parse_peer_range("192.168.0.0/16").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.ports, 1..=65535);
        for bad in [
            "10.0.0.0/8:",
            "10.0.0.0/8:0",
            "10.0.0.0/8:70000",
            "10.0.0.0/8:6000-5000",
            "10.0.0.0/8:a-b",
            "10.0.0.0:80",
        ] {
            assert!(parse_peer_range(bad).is_err(), "{bad} accepted");
        }
        let mut c = Config::embedded_default();
        c.av_edge.allowed_peer_ranges = vec!["10.0.0.0/8:50000-59999".into()];
        assert!(c.validate().is_ok());
        c.av_edge.allowed_peer_ranges = vec!["10.0.0.0/8:6000-5000".into()];
        let text = c
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            text.contains("av_edge.allowed_peer_ranges[0]") && text.contains("empty"),
            "{text}"
        );
    }

    #[test]
    fn relay_limits_must_be_positive() {
        let mut c = Config::embedded_default();
        c.av_edge.max_permissions_per_allocation = 0;
        c.av_edge.tcp_idle_timeout_secs = 0;
        let text = c
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for key in [
            "av_edge.max_permissions_per_allocation",
            "av_edge.tcp_idle_timeout_secs",
        ] {
            assert!(text.contains(key), "{key} missing from: {text}");
        }
    }

    #[test]
    fn older_documents_get_the_defaults() {
        let c = Config::embedded_default();
        assert_eq!(c.av_edge.nonce_lifetime_secs, 600);
        assert_eq!(c.av_edge.max_lifetime_secs, 3600);
        assert!(c.validate().is_ok());
    }
}
