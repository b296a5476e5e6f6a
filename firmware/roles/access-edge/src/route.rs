//! Routing helpers, sans-IO: our own Route/Record-Route entries and the flow tokens in them,
//! branch derivation, and the host:port of our listeners.
//!
//! The edge record-routes with a token in the user part naming the external party (a remote
//! user's connection or a partner domain). Requests from inside that come back through the
//! edge carry it in their Route header, which is how they reach a remote user behind NAT
//! without ever connecting to an address a message names. Each token carries a MAC under a
//! key drawn at start, so no peer can forge or alter one to reach another party; a token
//! from before a restart no longer routes.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
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

/// Bytes of HMAC-SHA256 kept in a token: 96 bits, written as 24 hex digits.
const MAC_BYTES: usize = 12;

/// The key of the flow tokens' MAC (HMAC-SHA256), random for each start.
#[derive(Clone)]
pub struct FlowKey([u8; 32]);

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlowKey(..)")
    }
}

impl FlowKey {
    pub fn random() -> Self {
        FlowKey(rand::random())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        FlowKey(bytes)
    }

    fn mac(&self, body: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(body.as_bytes());
        mac
    }
}

/// What one of our Route entries says about where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteToken {
    /// None of our entries carries a token.
    Absent,
    Valid(FlowToken),
    /// A token-shaped user part whose MAC does not verify: never routed.
    Forged,
}

impl FlowToken {
    fn body(&self) -> String {
        match self {
            FlowToken::Connection(id) => format!("ae.c.{id}"),
            FlowToken::Domain(d) => format!("ae.d.{d}"),
        }
    }

    /// The token as written in a URI user part: its body and its MAC.
    pub fn seal(&self, key: &FlowKey) -> String {
        let body = self.body();
        let tag = key.mac(&body).finalize().into_bytes();
        let mut out = body;
        out.push('.');
        for b in &tag[..MAC_BYTES] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// Reads a URI user part: None when it is not shaped like one of our tokens.
    pub fn open(user: &str, key: &FlowKey) -> Option<RouteToken> {
        if !user.starts_with("ae.") {
            return None;
        }
        let Some((body, tag)) = user.rsplit_once('.') else {
            return Some(RouteToken::Forged);
        };
        let Some(tag) = hex_bytes(tag).filter(|t| t.len() == MAC_BYTES) else {
            return Some(RouteToken::Forged);
        };
        if key.mac(body).verify_truncated_left(&tag).is_err() {
            return Some(RouteToken::Forged);
        }
        Some(Self::parse_body(body).map_or(RouteToken::Forged, RouteToken::Valid))
    }

    fn parse_body(body: &str) -> Option<FlowToken> {
        if let Some(id) = body.strip_prefix("ae.c.") {
            return id.parse().ok().map(FlowToken::Connection);
        }
        let d = body.strip_prefix("ae.d.")?;
        edged_config::roles::access_edge::is_domain(d)
            .then(|| FlowToken::Domain(d.to_ascii_lowercase()))
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Our Record-Route / Path value for a listener address, with a [sealed](FlowToken::seal)
/// token.
pub fn own_route(sealed: &str, host: &str, port: u16) -> String {
    format!("<sip:{sealed}@{host}:{port};transport=tls;lr>")
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
/// token found in them, if any) and the rest, kept verbatim. One forged token among ours
/// makes the whole request [`RouteToken::Forged`].
pub fn pop_own_routes<'a>(
    routes: impl Iterator<Item = &'a str>,
    listeners: &[SocketAddr],
    fqdn: &str,
    key: &FlowKey,
) -> (usize, RouteToken, Vec<&'a str>) {
    let mut popped = 0;
    let mut token = RouteToken::Absent;
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
                        .and_then(|u| FlowToken::open(u, key))
                    {
                        if token != RouteToken::Forged {
                            token = t;
                        }
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

    fn key() -> FlowKey {
        FlowKey::from_bytes([7; 32])
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        for t in [
            FlowToken::Connection(42),
            FlowToken::Domain("partner.test".into()),
        ] {
            assert_eq!(
                FlowToken::open(&t.seal(&key()), &key()),
                Some(RouteToken::Valid(t))
            );
        }
        assert_eq!(FlowToken::open("alice", &key()), None);
        assert_eq!(FlowToken::open("ae.c.x", &key()), Some(RouteToken::Forged));
    }

    #[test]
    fn a_forged_or_altered_token_does_not_verify() {
        let sealed = FlowToken::Connection(42).seal(&key());
        // Without a MAC, as tokens were once written.
        assert_eq!(FlowToken::open("ae.c.42", &key()), Some(RouteToken::Forged));
        // Another connection's id under this token's MAC.
        let (_, tag) = sealed
            .rsplit_once('.')
            .unwrap_or_else(|| panic!("{sealed}"));
        let moved = format!("ae.c.43.{tag}");
        assert_eq!(FlowToken::open(&moved, &key()), Some(RouteToken::Forged));
        // One digit of the MAC changed.
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        assert_eq!(FlowToken::open(&flipped, &key()), Some(RouteToken::Forged));
        // Another start's key.
        let other = FlowKey::from_bytes([8; 32]);
        assert_eq!(FlowToken::open(&sealed, &other), Some(RouteToken::Forged));
        // A forged entry among valid ones forges the request.
        let good = own_route(&sealed, "127.0.0.2", 10061);
        let bad = own_route("ae.c.43", "127.0.0.1", 10443);
        let values = [good.as_str(), bad.as_str()];
        let (_, token, _) = pop_own_routes(values.into_iter(), &listeners(), "", &key());
        assert_eq!(token, RouteToken::Forged);
    }

    #[test]
    fn own_routes_are_popped_with_their_token() {
        let sealed = FlowToken::Connection(7).seal(&key());
        let r1 = own_route(&sealed, "127.0.0.2", 10061);
        let r2 = own_route(&sealed, "127.0.0.1", 10443);
        let values = [r1.as_str(), r2.as_str(), "<sip:dir.corp.test;lr>"];
        let (popped, token, rest) = pop_own_routes(values.into_iter(), &listeners(), "", &key());
        assert_eq!(popped, 2);
        assert_eq!(token, RouteToken::Valid(FlowToken::Connection(7)));
        assert_eq!(rest, vec!["<sip:dir.corp.test;lr>"]);
        // A foreign route first: nothing of ours is popped after it.
        let values = ["<sip:dir.corp.test;lr>", r1.as_str()];
        let (popped, _, rest) = pop_own_routes(values.into_iter(), &listeners(), "", &key());
        assert_eq!((popped, rest.len()), (0, 2));
        // By FQDN.
        let values = ["<sip:edge.corp.test:10443;lr>"];
        assert_eq!(
            pop_own_routes(values.into_iter(), &listeners(), "edge.corp.test", &key()).0,
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
