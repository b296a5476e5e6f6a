//! Routing helpers, sans-IO: our own Route/Record-Route entries and the flow tokens in them,
//! branch derivation, and the host:port of our listeners.
//!
//! The edge record-routes with a token in the user part naming the external party (a remote
//! user's connection or a partner domain). Requests from inside that come back through the
//! edge carry it in their Route header, which is how they reach a remote user behind NAT
//! without ever connecting to an address a message names.

use std::net::SocketAddr;

use sha2::{Digest, Sha256};
use sip_core::{Host, NameAddr, Uri};

/// Prefix of every branch this edge writes, so its own Via is recognised cheaply.
pub const BRANCH_PREFIX: &str = "z9hG4bKae";

/// Where an in-dialog request from inside goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowToken {
    /// A connection accepted from a remote user or partner.
    Connection(u64),
    /// A federated partner domain.
    Domain(String),
}

impl FlowToken {
    pub fn encode(&self) -> String {
        match self {
            FlowToken::Connection(id) => format!("ae.c.{id}"),
            FlowToken::Domain(d) => format!("ae.d.{d}"),
        }
    }

    pub fn decode(user: &str) -> Option<FlowToken> {
        if let Some(id) = user.strip_prefix("ae.c.") {
            return id.parse().ok().map(FlowToken::Connection);
        }
        let d = user.strip_prefix("ae.d.")?;
        edged_config::roles::access_edge::is_domain(d)
            .then(|| FlowToken::Domain(d.to_ascii_lowercase()))
    }
}

/// Our Record-Route / Path value for a listener address.
pub fn own_route(token: &FlowToken, host: &str, port: u16) -> String {
    format!("<sip:{}@{host}:{port};transport=tls;lr>", token.encode())
}

/// `host` as written in a URI: IPv6 addresses in brackets.
pub fn uri_host(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

/// Whether a URI names one of our listeners (by address, or by our FQDN and a listener port).
pub fn is_own_uri(uri: &Uri<'_>, listeners: &[SocketAddr], fqdn: &str) -> bool {
    let Some(sip) = uri.as_sip() else {
        return false;
    };
    let port = sip.port.unwrap_or(5061);
    match sip.host {
        Host::Domain(d) => {
            !fqdn.is_empty()
                && d.eq_ignore_ascii_case(fqdn)
                && listeners.iter().any(|l| l.port() == port)
        }
        host => host
            .ip()
            .is_some_and(|ip| listeners.iter().any(|l| l.ip() == ip && l.port() == port)),
    }
}

/// Splits the Route values of a request into the leading ones that are ours (with the flow
/// token found in them, if any) and the rest, kept verbatim.
pub fn pop_own_routes<'a>(
    routes: impl Iterator<Item = &'a str>,
    listeners: &[SocketAddr],
    fqdn: &str,
) -> (usize, Option<FlowToken>, Vec<&'a str>) {
    let mut popped = 0;
    let mut token = None;
    let mut rest = Vec::new();
    for value in routes {
        if rest.is_empty() {
            if let Ok(na) = NameAddr::parse(value, "Route") {
                if is_own_uri(&na.uri, listeners, fqdn) {
                    popped += 1;
                    if let Some(t) = na
                        .uri
                        .as_sip()
                        .and_then(|s| s.user)
                        .and_then(FlowToken::decode)
                    {
                        token = Some(t);
                    }
                    continue;
                }
            }
        }
        rest.push(value);
    }
    (popped, token, rest)
}

/// A branch derived from what identifies the incoming transaction, so a CANCEL and the
/// ACK of a non-2xx answer get the branch of their INVITE without any lookup.
pub fn derive_branch(secret: &[u8], incoming_via: &str, method: &str, extra: &[&str]) -> String {
    let class = if method == "ACK" || method == "CANCEL" {
        "INVITE"
    } else {
        method
    };
    let mut h = Sha256::new();
    h.update(secret);
    h.update(incoming_via.as_bytes());
    h.update([0]);
    h.update(class.as_bytes());
    for e in extra {
        h.update([0]);
        h.update(e.as_bytes());
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(BRANCH_PREFIX.len() + 24);
    out.push_str(BRANCH_PREFIX);
    for b in &digest[..12] {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The domain of a From/To/Request-URI value.
pub fn uri_domain(uri: &Uri<'_>) -> Option<String> {
    match uri.as_sip()?.host {
        Host::Domain(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
        h => Some(h.to_string()),
    }
}

/// `user@host` of a URI, for counting distinct internal addresses.
pub fn uri_address(uri: &Uri<'_>) -> String {
    match uri.as_sip() {
        Some(s) => format!("{}@{}", s.user.unwrap_or(""), s.host).to_ascii_lowercase(),
        None => uri.as_str().to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners() -> Vec<SocketAddr> {
        vec![
            "127.0.0.1:10443".parse().unwrap_or_else(|e| panic!("{e}")),
            "127.0.0.2:10061".parse().unwrap_or_else(|e| panic!("{e}")),
        ]
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        for t in [
            FlowToken::Connection(42),
            FlowToken::Domain("partner.test".into()),
        ] {
            assert_eq!(FlowToken::decode(&t.encode()), Some(t));
        }
        assert_eq!(FlowToken::decode("ae.c.x"), None);
        assert_eq!(FlowToken::decode("ae.d.bad domain"), None);
        assert_eq!(FlowToken::decode("alice"), None);
    }

    #[test]
    fn own_routes_are_popped_with_their_token() {
        let r1 = own_route(&FlowToken::Connection(7), "127.0.0.2", 10061);
        let r2 = own_route(&FlowToken::Connection(7), "127.0.0.1", 10443);
        let values = [r1.as_str(), r2.as_str(), "<sip:dir.corp.test;lr>"];
        let (popped, token, rest) = pop_own_routes(values.into_iter(), &listeners(), "");
        assert_eq!(popped, 2);
        assert_eq!(token, Some(FlowToken::Connection(7)));
        assert_eq!(rest, vec!["<sip:dir.corp.test;lr>"]);
        // A foreign route first: nothing of ours is popped after it.
        let values = ["<sip:dir.corp.test;lr>", r1.as_str()];
        let (popped, _, rest) = pop_own_routes(values.into_iter(), &listeners(), "");
        assert_eq!((popped, rest.len()), (0, 2));
        // By FQDN.
        let values = ["<sip:edge.corp.test:10443;lr>"];
        assert_eq!(
            pop_own_routes(values.into_iter(), &listeners(), "edge.corp.test").0,
            1
        );
    }

    #[test]
    fn cancel_and_ack_share_the_invite_branch() {
        let via = "SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bK1";
        let invite = derive_branch(b"s", via, "INVITE", &[]);
        assert!(invite.starts_with(BRANCH_PREFIX));
        assert_eq!(invite, derive_branch(b"s", via, "CANCEL", &[]));
        assert_eq!(invite, derive_branch(b"s", via, "ACK", &[]));
        assert_ne!(invite, derive_branch(b"s", via, "BYE", &[]));
        assert_ne!(invite, derive_branch(b"t", via, "INVITE", &[]));
    }
}
