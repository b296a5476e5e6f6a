//! `[access_edge]`: the SIP edge proxy.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{default_certificate, side_address, yes};
use crate::{
    parse_peers, AllowedPeer, CertRef, ConfigErrors, NetworkConfig, Protocol, Side, SocketSpec,
    Transport,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessEdgeConfig {
    pub enabled: bool,
    /// Name of the certificate (under `[certificates]`) presented on every listener.
    pub certificate: String,
    /// This role's external address, if not the external side's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_address: Option<IpAddr>,
    /// External SIP over TLS for remote users (OCS: 443).
    pub remote_users_port: u16,
    /// External SIP over mutual TLS for federation (OCS: 5061).
    pub federation_port: u16,
    /// Internal SIP over mutual TLS from the Director pool (OCS: 5061).
    pub internal_port: u16,
    /// The internal next hops (Director pool), `host:port`; requests from outside go here.
    pub next_hops: Vec<String>,
    /// Directors allowed on the internal port and as next hops (see `edged_config::peers`):
    /// DNS names, `*.` wildcards, IP addresses or `sha256:` key pins, matched against the
    /// certificate each presents besides its chain. Empty: the hosts named in `next_hops`,
    /// as OCS trusts its configured next-hop pool.
    pub internal_peers: Vec<String>,
    /// SIP domains of the organisation behind this edge.
    pub sip_domains: Vec<String>,
    /// Host name this edge writes in Via, Record-Route and its trust header (empty: the
    /// listener address).
    pub fqdn: String,
    /// Seconds a TLS handshake may take before the connection is closed.
    pub handshake_timeout_secs: u64,
    /// Seconds a connection may stay silent (no message, no keep-alive) before it is closed.
    pub idle_timeout_secs: u64,
    /// Largest SIP message accepted on a connection; a larger one closes it.
    pub max_message_bytes: usize,
    /// Seconds a forwarded request waits for a final answer before 408 (RFC 3261 Timer B/F).
    pub transaction_timeout_secs: u64,
    /// Seconds a proxied INVITE may go without a provisional answer before it is given up
    /// (RFC 3261 16.6 step 11, Timer C; the RFC asks for more than 3 minutes). Each
    /// provisional answer restarts it; when it fires the branch is cancelled, or answered
    /// 408 if nothing came back at all.
    #[serde(default = "default_timer_c_secs")]
    pub timer_c_secs: u64,
    /// Answer federated and public-provider requests that the Director refuses with "no such
    /// user" (404, 410, 484, 604) or "offline" (480) with one uniform 480, so outsiders
    /// cannot probe which internal addresses exist.
    #[serde(default = "yes")]
    pub hide_user_existence: bool,
    /// Seconds between OPTIONS health checks of each next hop.
    pub health_check_interval_secs: u64,
    /// New connections per second one remote address may open (burst of the same size).
    pub connection_rate_per_ip: u32,
    /// TLS handshakes per second one remote address may start (burst of the same size).
    pub handshake_rate_per_ip: u32,
    /// Open connections one remote address (IPv6: one /64) may hold.
    pub max_connections_per_ip: u32,
    /// Open connections from outside across the remote-user and federation listeners (the
    /// Director pool's listener is not counted).
    pub max_connections: u32,
    /// Seconds a SIP message has, from its first byte, to arrive whole; a slower one closes
    /// the connection (slowloris).
    pub message_timeout_secs: u64,
    /// Seconds one message may take to write to a peer; a peer that stops reading for
    /// longer is closed.
    pub write_timeout_secs: u64,
    /// Bytes queued for one peer at most; messages beyond are dropped.
    pub max_queued_bytes_per_connection: usize,
    /// Requests per second one remote user's connection may send (bursts of 5 seconds'
    /// worth); beyond, 503 with Retry-After.
    pub remote_user_requests_per_sec: u32,
    /// User-Agent substrings (case-insensitive) of SIP scanners; their requests are dropped.
    pub scanner_user_agents: Vec<String>,
    pub federation: FederationConfig,
}

fn default_timer_c_secs() -> u64 {
    181
}

fn default_scanner_user_agents() -> Vec<String> {
    [
        "friendly-scanner",
        "sipvicious",
        "sipcli",
        "sip-scan",
        "sipsak",
        "iWar",
        "sundayddr",
        "VaxSIPUserAgent",
        "pplsip",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

impl Default for AccessEdgeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            certificate: default_certificate(),
            external_address: None,
            internal_address: None,
            remote_users_port: 443,
            federation_port: 5061,
            internal_port: 5061,
            next_hops: Vec::new(),
            internal_peers: Vec::new(),
            sip_domains: Vec::new(),
            fqdn: String::new(),
            handshake_timeout_secs: 10,
            idle_timeout_secs: 300,
            max_message_bytes: 64 * 1024,
            transaction_timeout_secs: 32,
            timer_c_secs: default_timer_c_secs(),
            hide_user_existence: true,
            health_check_interval_secs: 10,
            connection_rate_per_ip: 20,
            handshake_rate_per_ip: 20,
            max_connections_per_ip: 200,
            max_connections: 20_000,
            message_timeout_secs: 20,
            write_timeout_secs: 10,
            max_queued_bytes_per_connection: 1024 * 1024,
            remote_user_requests_per_sec: 20,
            scanner_user_agents: default_scanner_user_agents(),
            federation: FederationConfig::default(),
        }
    }
}

/// Federation policy, with the OCS defaults for discovered partners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Accept partners found by DNS SRV that are not on the allow list.
    #[serde(default = "yes")]
    pub discovery: bool,
    pub allow: Vec<AllowedPartner>,
    pub block: Vec<String>,
    pub public_providers: Vec<String>,
    /// Messages per second from one discovered (not allow-listed) domain.
    pub discovered_rate_per_sec: u32,
    /// Messages per second once a discovered domain's failure ratio is suspicious.
    pub suspicious_rate_per_sec: u32,
    /// Distinct internal addresses a discovered domain may contact before it is watched and blocked.
    pub watch_threshold: u32,
    /// Failed share of a discovered domain's requests (percent, over at least
    /// `suspicious_min_requests`) from which it is throttled to `suspicious_rate_per_sec`.
    pub suspicious_failure_percent: u32,
    pub suspicious_min_requests: u32,
    /// Port used for an allow-listed edge written without one (OCS federation: 5061).
    pub partner_port: u16,
    /// DNS servers for partner discovery (`ip:port`); empty uses the system resolver.
    pub dns_servers: Vec<SocketAddr>,
    /// Partner domains whose figures are kept and persisted, besides the configured ones
    /// and those an operator acted on; the least recently seen is forgotten first.
    pub max_tracked_domains: u32,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            discovery: true,
            allow: Vec::new(),
            block: Vec::new(),
            public_providers: Vec::new(),
            discovered_rate_per_sec: 20,
            suspicious_rate_per_sec: 1,
            watch_threshold: 1000,
            suspicious_failure_percent: 50,
            suspicious_min_requests: 20,
            partner_port: 5061,
            dns_servers: Vec::new(),
            max_tracked_domains: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedPartner {
    pub domain: String,
    /// The partner's Access Edge FQDN (optionally `:port`); when absent it is found by DNS SRV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
}

impl AccessEdgeConfig {
    pub(crate) fn validate<'a>(&'a self, errs: &mut ConfigErrors, certs: &mut Vec<CertRef<'a>>) {
        if !self.enabled {
            return;
        }
        certs.push(CertRef {
            key: "access_edge.certificate".into(),
            name: &self.certificate,
        });
        for (i, hop) in self.next_hops.iter().enumerate() {
            if let Err(reason) = check_host_port(hop) {
                errs.push(format!("access_edge.next_hops[{i}]"), reason);
            }
        }
        crate::peers::validate_peers("access_edge.internal_peers", &self.internal_peers, errs);
        for (i, d) in self.sip_domains.iter().enumerate() {
            if !is_domain(d) {
                errs.push(
                    format!("access_edge.sip_domains[{i}]"),
                    format!("\"{d}\" is not a domain name"),
                );
            }
        }
        let f = &self.federation;
        for (i, p) in f.allow.iter().enumerate() {
            if !is_domain(&p.domain) {
                errs.push(
                    format!("access_edge.federation.allow[{i}].domain"),
                    format!("\"{}\" is not a domain name", p.domain),
                );
            }
            if let Some(edge) = &p.edge {
                let host = edge.rsplit_once(':').map_or(edge.as_str(), |(h, _)| h);
                if !is_domain(host) && host.parse::<IpAddr>().is_err() {
                    errs.push(
                        format!("access_edge.federation.allow[{i}].edge"),
                        format!("\"{edge}\" is not a host name"),
                    );
                }
            }
            if f.block.iter().any(|b| b.eq_ignore_ascii_case(&p.domain)) {
                errs.push(
                    format!("access_edge.federation.allow[{i}].domain"),
                    format!(
                        "\"{}\" is on both the allow list and the block list",
                        p.domain
                    ),
                );
            }
        }
        for (i, d) in f.block.iter().enumerate() {
            if !is_domain(d) {
                errs.push(
                    format!("access_edge.federation.block[{i}]"),
                    format!("\"{d}\" is not a domain name"),
                );
            }
        }
        if f.discovered_rate_per_sec == 0 {
            errs.push(
                "access_edge.federation.discovered_rate_per_sec",
                "must be at least 1",
            );
        }
        if f.suspicious_rate_per_sec == 0 {
            errs.push(
                "access_edge.federation.suspicious_rate_per_sec",
                "must be at least 1",
            );
        }
        if f.watch_threshold == 0 {
            errs.push(
                "access_edge.federation.watch_threshold",
                "must be at least 1",
            );
        }
        if f.suspicious_failure_percent == 0 || f.suspicious_failure_percent > 100 {
            errs.push(
                "access_edge.federation.suspicious_failure_percent",
                "must be from 1 to 100",
            );
        }
        if f.partner_port == 0 {
            errs.push("access_edge.federation.partner_port", "must not be 0");
        }
        for (i, d) in f.public_providers.iter().enumerate() {
            if !is_domain(d) {
                errs.push(
                    format!("access_edge.federation.public_providers[{i}]"),
                    format!("\"{d}\" is not a domain name"),
                );
            }
        }
        if !self.fqdn.is_empty() && !is_domain(&self.fqdn) {
            errs.push(
                "access_edge.fqdn",
                format!("\"{}\" is not a host name", self.fqdn),
            );
        }
        for (key, v) in [
            ("handshake_timeout_secs", self.handshake_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("transaction_timeout_secs", self.transaction_timeout_secs),
            ("timer_c_secs", self.timer_c_secs),
            (
                "health_check_interval_secs",
                self.health_check_interval_secs,
            ),
            (
                "connection_rate_per_ip",
                u64::from(self.connection_rate_per_ip),
            ),
            (
                "handshake_rate_per_ip",
                u64::from(self.handshake_rate_per_ip),
            ),
            (
                "max_connections_per_ip",
                u64::from(self.max_connections_per_ip),
            ),
            ("max_connections", u64::from(self.max_connections)),
            ("message_timeout_secs", self.message_timeout_secs),
            ("write_timeout_secs", self.write_timeout_secs),
            (
                "remote_user_requests_per_sec",
                u64::from(self.remote_user_requests_per_sec),
            ),
            (
                "federation.max_tracked_domains",
                u64::from(f.max_tracked_domains),
            ),
        ] {
            if v == 0 {
                errs.push(format!("access_edge.{key}"), "must be at least 1");
            }
        }
        if !(1024..=1024 * 1024).contains(&self.max_message_bytes) {
            errs.push(
                "access_edge.max_message_bytes",
                "must be from 1024 to 1048576",
            );
        }
        if self.max_queued_bytes_per_connection < 2 * self.max_message_bytes {
            errs.push(
                "access_edge.max_queued_bytes_per_connection",
                "must hold at least two messages of max_message_bytes",
            );
        }
    }

    /// Who may be a Director: `internal_peers`, or when it is empty the hosts of
    /// `next_hops` (each a DNS name or an IP address, matched exactly).
    pub fn allowed_directors(&self) -> Vec<AllowedPeer> {
        if !self.internal_peers.is_empty() {
            return parse_peers(&self.internal_peers);
        }
        self.next_hops
            .iter()
            .filter_map(|hop| match hop.parse::<SocketAddr>() {
                Ok(sa) => Some(sa.ip().to_string()),
                Err(_) => hop.rsplit_once(':').map(|(h, _)| h.to_owned()),
            })
            .filter_map(|host| AllowedPeer::parse(&host).ok())
            .filter(|p| !matches!(p, AllowedPeer::Wildcard(_) | AllowedPeer::Spki(_)))
            .collect()
    }

    pub(crate) fn sockets(&self, net: &NetworkConfig, out: &mut Vec<SocketSpec>) {
        if !self.enabled {
            return;
        }
        let ext = side_address(net, Side::External, self.external_address);
        let int = side_address(net, Side::Internal, self.internal_address);
        let mut add = |key: &str, purpose: &str, side, transport, ip, port| {
            out.push(SocketSpec {
                key: format!("access_edge.{key}"),
                owner: "access_edge",
                purpose: purpose.into(),
                side,
                protocol: Protocol::Tcp,
                transport,
                addr: SocketAddr::new(ip, port),
            })
        };
        add(
            "remote_users_port",
            "SIP remote users",
            Side::External,
            Transport::Tls,
            ext,
            self.remote_users_port,
        );
        add(
            "federation_port",
            "SIP federation",
            Side::External,
            Transport::Mtls,
            ext,
            self.federation_port,
        );
        add(
            "internal_port",
            "SIP from the Director pool",
            Side::Internal,
            Transport::Mtls,
            int,
            self.internal_port,
        );
    }
}

/// `host:port` with a non-empty host and a port from 1 to 65535.
pub(crate) fn check_host_port(s: &str) -> Result<(), String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return if addr.port() == 0 {
            Err(format!("\"{s}\": port must not be 0"))
        } else {
            Ok(())
        };
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("\"{s}\" is not host:port"));
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("\"{s}\": \"{port}\" is not a port from 1 to 65535")),
    }
    if !is_domain(host) {
        return Err(format!("\"{s}\": \"{host}\" is not a host name"));
    }
    Ok(())
}

/// A DNS name: dot-separated labels of letters, digits and hyphens, not starting or ending with a hyphen.
pub fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn new_fields_default_and_validate_by_key() {
        let c = Config::embedded_default();
        assert_eq!(c.access_edge.max_message_bytes, 64 * 1024);
        assert_eq!(c.access_edge.federation.partner_port, 5061);
        assert!(c
            .access_edge
            .scanner_user_agents
            .iter()
            .any(|u| u == "friendly-scanner"));
        let errs = c
            .with_value("access_edge.federation.suspicious_failure_percent", "0")
            .unwrap_err();
        assert_eq!(
            errs.0[0].key,
            "access_edge.federation.suspicious_failure_percent"
        );
        let errs = c
            .with_value("access_edge.idle_timeout_secs", "0")
            .unwrap_err();
        assert_eq!(errs.0[0].key, "access_edge.idle_timeout_secs");
        let errs = c
            .with_value("access_edge.fqdn", "\"bad host\"")
            .unwrap_err();
        assert_eq!(errs.0[0].key, "access_edge.fqdn");
        assert_eq!(c.access_edge.timer_c_secs, 181);
        assert!(c.access_edge.hide_user_existence);
        let errs = c.with_value("access_edge.timer_c_secs", "0").unwrap_err();
        assert_eq!(errs.0[0].key, "access_edge.timer_c_secs");
    }

    #[test]
    fn directors_are_the_next_hop_hosts_unless_listed() {
        use crate::AllowedPeer;
        let mut c = Config::embedded_default().access_edge;
        c.next_hops = vec!["10.1.20.5:5061".into(), "dir.corp.example:5061".into()];
        assert_eq!(
            c.allowed_directors(),
            [
                AllowedPeer::Address("10.1.20.5".parse().unwrap()),
                AllowedPeer::Name("dir.corp.example".into())
            ]
        );
        c.internal_peers = vec!["*.pool.corp.example".into()];
        assert_eq!(
            c.allowed_directors(),
            [AllowedPeer::Wildcard("pool.corp.example".into())]
        );
        let errs = Config::embedded_default()
            .with_value("access_edge.internal_peers", r#"["corp example"]"#)
            .unwrap_err();
        assert_eq!(errs.0[0].key, "access_edge.internal_peers[0]");
    }
}
