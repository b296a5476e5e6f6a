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
    pub allowed_peer_ranges: Vec<String>,
    pub max_allocations: u32,
    pub max_allocations_per_user: u32,
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
            if let Err(reason) = parse_cidr(r) {
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
    fn older_documents_get_the_defaults() {
        let c = Config::embedded_default();
        assert_eq!(c.av_edge.nonce_lifetime_secs, 600);
        assert_eq!(c.av_edge.max_lifetime_secs, 3600);
        assert!(c.validate().is_ok());
    }
}
