//! The role's counters, registered once at start and shared by both endpoints.

use std::collections::BTreeMap;

use edged_metrics::{Counter, Registry};

/// Which endpoint a credential request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Sip,
    Rest,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Sip => "sip",
            Endpoint::Rest => "rest",
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    pub issued_sip: Counter,
    pub issued_rest: Counter,
    pub refused_identity: Counter,
    pub rate_limited: Counter,
    pub bad_requests: Counter,
    pub unauthorized: Counter,
    /// API-key requests answered 503 because `av_auth.max_concurrent_key_checks` ran.
    pub key_checks_busy: Counter,
    pub tls_failures: Counter,
    pub connections: Counter,
}

impl Metrics {
    pub fn register(registry: &Registry) -> Self {
        let issued = |endpoint: &str| {
            registry.counter(
                "edged_av_auth_issued_total",
                "Relay credentials issued",
                &[("endpoint", endpoint)],
            )
        };
        let refused = |reason: &str| {
            registry.counter(
                "edged_av_auth_refused_total",
                "Credential requests refused",
                &[("reason", reason)],
            )
        };
        Metrics {
            issued_sip: issued("sip"),
            issued_rest: issued("rest"),
            refused_identity: refused("identity_not_allowed"),
            rate_limited: refused("rate_limited"),
            bad_requests: refused("bad_request"),
            unauthorized: refused("unauthorized"),
            key_checks_busy: refused("key_checks_busy"),
            tls_failures: registry.counter(
                "edged_av_auth_tls_failures_total",
                "TLS handshakes that failed (missing or untrusted client certificate, bad TLS)",
                &[],
            ),
            connections: registry.counter(
                "edged_av_auth_connections_total",
                "TLS connections accepted on the SIP and REST listeners",
                &[],
            ),
        }
    }

    pub fn issued(&self, endpoint: Endpoint) -> &Counter {
        match endpoint {
            Endpoint::Sip => &self.issued_sip,
            Endpoint::Rest => &self.issued_rest,
        }
    }

    /// The counters `edgectl status` shows.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        [
            ("issued_sip", &self.issued_sip),
            ("issued_rest", &self.issued_rest),
            ("refused_identity", &self.refused_identity),
            ("rate_limited", &self.rate_limited),
            ("bad_requests", &self.bad_requests),
            ("unauthorized", &self.unauthorized),
            ("key_checks_busy", &self.key_checks_busy),
            ("tls_failures", &self.tls_failures),
            ("connections", &self.connections),
        ]
        .into_iter()
        .map(|(k, c)| (k.to_owned(), c.get()))
        .collect()
    }
}
