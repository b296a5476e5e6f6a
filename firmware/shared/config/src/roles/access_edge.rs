//! `[access_edge]`: the SIP edge proxy.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{default_certificate, side_address, yes};
use crate::{CertRef, ConfigErrors, NetworkConfig, Protocol, Side, SocketSpec, Transport};

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
    /// SIP domains of the organisation behind this edge.
    pub sip_domains: Vec<String>,
    pub federation: FederationConfig,
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
            sip_domains: Vec::new(),
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
        for (i, d) in self.sip_domains.iter().enumerate() {
            if !is_domain(d) {
                errs.push(format!("access_edge.sip_domains[{i}]"), format!("\"{d}\" is not a domain name"));
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
                    format!("\"{}\" is on both the allow list and the block list", p.domain),
                );
            }
        }
        for (i, d) in f.block.iter().enumerate() {
            if !is_domain(d) {
                errs.push(format!("access_edge.federation.block[{i}]"), format!("\"{d}\" is not a domain name"));
            }
        }
        if f.discovered_rate_per_sec == 0 {
            errs.push("access_edge.federation.discovered_rate_per_sec", "must be at least 1");
        }
        if f.suspicious_rate_per_sec == 0 {
            errs.push("access_edge.federation.suspicious_rate_per_sec", "must be at least 1");
        }
        if f.watch_threshold == 0 {
            errs.push("access_edge.federation.watch_threshold", "must be at least 1");
        }
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
        add("remote_users_port", "SIP remote users", Side::External, Transport::Tls, ext, self.remote_users_port);
        add("federation_port", "SIP federation", Side::External, Transport::Mtls, ext, self.federation_port);
        add("internal_port", "SIP from the Director pool", Side::Internal, Transport::Mtls, int, self.internal_port);
    }
}

/// `host:port` with a non-empty host and a port from 1 to 65535.
pub(crate) fn check_host_port(s: &str) -> Result<(), String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return if addr.port() == 0 { Err(format!("\"{s}\": port must not be 0")) } else { Ok(()) };
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
