//! `[av_auth]`: short-lived relay credentials for internal users.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{default_certificate, side_address};
use crate::{CertRef, ConfigErrors, NetworkConfig, Protocol, Side, SocketSpec, Transport};

/// The MS-AVEDGEA default and maximum credential lifetime.
pub const MAX_LIFETIME_MINUTES: u32 = 480;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AvAuthConfig {
    pub enabled: bool,
    pub certificate: String,
    /// Internal side only: this service never listens on the external side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_address: Option<IpAddr>,
    /// SIP SERVICE over mutual TLS (OCS: 5062).
    pub sip_port: u16,
    /// HTTPS REST endpoint (`GET /api/v1/turn-credentials`); 0 turns it off.
    pub rest_port: u16,
    pub default_lifetime_minutes: u32,
    pub max_lifetime_minutes: u32,
    /// Credentials one identity may obtain per minute.
    pub issuance_per_minute: u32,
    /// Identities allowed to obtain credentials: `*` wildcards, e.g. `*@example.com`.
    pub allowed_identities: Vec<String>,
    /// Clients allowed to present a certificate (see `edged_config::peers`): DNS names,
    /// `*.` wildcards, IP addresses or `sha256:` key pins. A certificate from the internal
    /// anchors must also match one entry, on the SIP listener and on REST. Empty: no client
    /// certificate is accepted (REST still takes API keys).
    pub allowed_clients: Vec<String>,
    /// API-key checks run at once (each argon2 check holds about 19 MiB); a request past
    /// them is answered 503 with Retry-After instead of waiting.
    pub max_concurrent_key_checks: u32,
    /// Origins allowed by CORS on the REST endpoint; empty: CORS off.
    pub cors_origins: Vec<String>,
    /// Host name (or address) advertised for the A/V Edge's internal interface in relay
    /// lists; default: the A/V Edge's internal address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_relay_host: Option<String>,
    /// Host name (or address) advertised for the A/V Edge's external interface; default:
    /// the A/V Edge's external address. Set it when that address is a wildcard or NATed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_relay_host: Option<String>,
    /// Identities each allowed client may obtain credentials for: the entry as written in
    /// `allowed_clients`, then `*` patterns as in `allowed_identities`. A client without
    /// an entry here is bounded by `allowed_identities` alone.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub client_identities: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for AvAuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            certificate: default_certificate(),
            internal_address: None,
            sip_port: 5062,
            rest_port: 8443,
            default_lifetime_minutes: MAX_LIFETIME_MINUTES,
            max_lifetime_minutes: MAX_LIFETIME_MINUTES,
            issuance_per_minute: 60,
            allowed_identities: vec!["*".into()],
            allowed_clients: Vec::new(),
            client_identities: Default::default(),
            max_concurrent_key_checks: 4,
            cors_origins: Vec::new(),
            internal_relay_host: None,
            external_relay_host: None,
        }
    }
}

impl AvAuthConfig {
    pub(crate) fn validate<'a>(&'a self, errs: &mut ConfigErrors, certs: &mut Vec<CertRef<'a>>) {
        if !self.enabled {
            return;
        }
        certs.push(CertRef {
            key: "av_auth.certificate".into(),
            name: &self.certificate,
        });
        if self.max_lifetime_minutes == 0 || self.max_lifetime_minutes > MAX_LIFETIME_MINUTES {
            errs.push(
                "av_auth.max_lifetime_minutes",
                format!("must be from 1 to {MAX_LIFETIME_MINUTES}"),
            );
        }
        if self.default_lifetime_minutes == 0
            || self.default_lifetime_minutes > self.max_lifetime_minutes
        {
            errs.push(
                "av_auth.default_lifetime_minutes",
                "must be from 1 to av_auth.max_lifetime_minutes",
            );
        }
        if self.issuance_per_minute == 0 {
            errs.push("av_auth.issuance_per_minute", "must be at least 1");
        }
        for (key, host) in [
            ("av_auth.internal_relay_host", &self.internal_relay_host),
            ("av_auth.external_relay_host", &self.external_relay_host),
        ] {
            if let Some(h) = host {
                let bad = h.is_empty()
                    || h.len() > 253
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
                if bad {
                    errs.push(key, format!("\"{h}\" is not a host name or IP address"));
                }
            }
        }
        if self.allowed_identities.iter().any(|p| p.trim().is_empty()) {
            errs.push("av_auth.allowed_identities", "patterns must not be empty");
        }
        crate::peers::validate_peers("av_auth.allowed_clients", &self.allowed_clients, errs);
        for (client, patterns) in &self.client_identities {
            let key = format!("av_auth.client_identities.\"{client}\"");
            if !self.allowed_clients.iter().any(|c| c == client) {
                errs.push(
                    key.clone(),
                    "names no entry of av_auth.allowed_clients (write the entry as it is written there)",
                );
            }
            if patterns.is_empty() || patterns.iter().any(|p| p.trim().is_empty()) {
                errs.push(key, "give at least one pattern, none of them empty");
            }
        }
        if self.max_concurrent_key_checks == 0 || self.max_concurrent_key_checks > 64 {
            errs.push("av_auth.max_concurrent_key_checks", "must be from 1 to 64");
        }
        for (i, o) in self.cors_origins.iter().enumerate() {
            if !(o.starts_with("https://") || o.starts_with("http://")) {
                errs.push(
                    format!("av_auth.cors_origins[{i}]"),
                    format!("\"{o}\" is not an origin (scheme://host[:port])"),
                );
            }
        }
    }

    pub(crate) fn sockets(&self, net: &NetworkConfig, out: &mut Vec<SocketSpec>) {
        if !self.enabled {
            return;
        }
        let int = side_address(net, Side::Internal, self.internal_address);
        out.push(SocketSpec {
            key: "av_auth.sip_port".into(),
            owner: "av_auth",
            purpose: "SIP SERVICE (MS-AVEDGEA)".into(),
            side: Side::Internal,
            protocol: Protocol::Tcp,
            transport: Transport::Mtls,
            addr: SocketAddr::new(int, self.sip_port),
        });
        if self.rest_port != 0 {
            out.push(SocketSpec {
                key: "av_auth.rest_port".into(),
                owner: "av_auth",
                purpose: "REST credentials".into(),
                side: Side::Internal,
                protocol: Protocol::Tcp,
                transport: Transport::Https,
                addr: SocketAddr::new(int, self.rest_port),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, EMBEDDED_DEFAULT};

    fn errors_of(extra: &str) -> Vec<(String, String)> {
        let text = EMBEDDED_DEFAULT.replace("[av_auth]\n", &format!("[av_auth]\n{extra}\n"));
        match Config::from_toml(&text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| (e.key, e.reason)).collect(),
        }
    }

    #[test]
    fn defaults_and_new_fields_are_valid() {
        assert!(errors_of("").is_empty());
        assert!(errors_of(
            "external_relay_host = \"av.example.com\"\ninternal_relay_host = \"10.0.0.5\""
        )
        .is_empty());
        let c = Config::from_toml(EMBEDDED_DEFAULT).unwrap();
        assert_eq!(c.av_auth.external_relay_host, None);
        assert_eq!(c.av_auth.max_lifetime_minutes, 480);
    }

    #[test]
    fn every_error_names_its_key() {
        let cases = [
            (
                "external_relay_host = \"bad host\"",
                "av_auth.external_relay_host",
            ),
            ("internal_relay_host = \"\"", "av_auth.internal_relay_host"),
            ("allowed_identities = [\" \"]", "av_auth.allowed_identities"),
            ("max_lifetime_minutes = 481", "av_auth.max_lifetime_minutes"),
            (
                "default_lifetime_minutes = 0",
                "av_auth.default_lifetime_minutes",
            ),
            ("issuance_per_minute = 0", "av_auth.issuance_per_minute"),
            (
                "max_concurrent_key_checks = 0",
                "av_auth.max_concurrent_key_checks",
            ),
            (
                "client_identities = { \"x.test\" = [\"*\"] }",
                "av_auth.client_identities.\"x.test\"",
            ),
            (
                "cors_origins = [\"example.com\"]",
                "av_auth.cors_origins[0]",
            ),
        ];
        for (extra, key) in cases {
            let errs = errors_of(extra);
            assert!(errs.iter().any(|(k, _)| k == key), "{extra}: {errs:?}");
        }
        let errs = Config::embedded_default()
            .with_value("av_auth.allowed_clients", r#"["pool.example.test", "a b"]"#)
            .unwrap_err();
        assert_eq!(errs.0[0].key, "av_auth.allowed_clients[1]");
    }
}
