//! Who may be on the other end of an internal mutual-TLS listener: the one definition of an
//! allowed peer, used by every role (`access_edge.internal_peers`, `webconf_edge.internal_peers`,
//! `av_auth.allowed_clients`). A certificate from the internal anchors is necessary but no
//! longer sufficient: it must also match one entry of the listener's list.
//!
//! An entry is written as one of:
//! - a DNS name (`director.corp.example`): a subjectAltName DNS entry equal to it (ASCII case
//!   ignored, a trailing dot ignored). No suffix matching: `corp.example` does not cover
//!   `x.corp.example`;
//! - `*.` and a DNS name (`*.pool.corp.example`): any certificate DNS name exactly one label
//!   below it (`fe1.pool.corp.example`, not `a.fe1.pool.corp.example`);
//! - an IP address (`10.1.20.5`): a subjectAltName IP entry equal to it;
//! - `sha256:` and the standard, padded base64 of the SHA-256 of the certificate's
//!   SubjectPublicKeyInfo (curl's `--pinnedpubkey` form): that key, whatever names the
//!   certificate carries. `openssl x509 -in c.pem -pubkey -noout | openssl pkey -pubin
//!   -outform der | openssl dgst -sha256 -binary | base64` prints it.

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::roles::access_edge::is_domain;
use crate::ConfigErrors;

/// Prefix of an SPKI pin entry.
pub const SPKI_PREFIX: &str = "sha256:";

/// One parsed entry of an allowed-peers list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedPeer {
    /// A DNS name, lower-cased, without a trailing dot.
    Name(String),
    /// `*.base`: the base, lower-cased; covers exactly one more label.
    Wildcard(String),
    Address(IpAddr),
    /// SHA-256 of the SubjectPublicKeyInfo.
    Spki([u8; 32]),
}

impl AllowedPeer {
    /// Parses one entry as written in the configuration.
    pub fn parse(entry: &str) -> Result<AllowedPeer, String> {
        let e = entry.trim();
        if let Some(pin) = e.strip_prefix(SPKI_PREFIX) {
            let bytes = STANDARD.decode(pin).map_err(|_| {
                format!("\"{entry}\": after {SPKI_PREFIX} comes the standard base64 of a SHA-256 (44 characters)")
            })?;
            let hash = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                format!(
                    "\"{entry}\": a SHA-256 is 32 bytes, this is {}",
                    bytes.len()
                )
            })?;
            return Ok(AllowedPeer::Spki(hash));
        }
        if let Ok(ip) = e.parse::<IpAddr>() {
            return Ok(AllowedPeer::Address(ip));
        }
        let lower = e.trim_end_matches('.').to_ascii_lowercase();
        if let Some(base) = lower.strip_prefix("*.") {
            // A wildcard over a top-level label alone (`*.com`) would admit half the world.
            if is_domain(base) && base.contains('.') {
                return Ok(AllowedPeer::Wildcard(base.to_owned()));
            }
            return Err(format!(
                "\"{entry}\": a wildcard is \"*.\" and a domain of at least two labels"
            ));
        }
        if is_domain(&lower) {
            return Ok(AllowedPeer::Name(lower));
        }
        Err(format!(
            "\"{entry}\" is not a DNS name, \"*.\" and a domain, an IP address or {SPKI_PREFIX}<base64>"
        ))
    }

    /// Whether a certificate with these subjectAltNames (DNS names and IP addresses, as
    /// text) and this SubjectPublicKeyInfo hash matches the entry.
    pub fn matches(&self, names: &[String], spki_sha256: &[u8; 32]) -> bool {
        match self {
            AllowedPeer::Spki(pin) => pin == spki_sha256,
            AllowedPeer::Address(ip) => names
                .iter()
                .any(|n| n.parse::<IpAddr>().is_ok_and(|a| a == *ip)),
            AllowedPeer::Name(want) => names.iter().any(|n| normalise(n) == *want),
            AllowedPeer::Wildcard(base) => names.iter().any(|n| {
                let n = normalise(n);
                n.split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && label != "*" && rest == base)
            }),
        }
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl std::fmt::Display for AllowedPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowedPeer::Name(n) => f.write_str(n),
            AllowedPeer::Wildcard(b) => write!(f, "*.{b}"),
            AllowedPeer::Address(a) => write!(f, "{a}"),
            AllowedPeer::Spki(h) => write!(f, "{SPKI_PREFIX}{}", STANDARD.encode(h)),
        }
    }
}

/// The entries of a validated list (an entry the validator would refuse is left out, so a
/// caller holding an unvalidated configuration never widens the list by it).
pub fn parse_peers(list: &[String]) -> Vec<AllowedPeer> {
    list.iter()
        .filter_map(|e| AllowedPeer::parse(e).ok())
        .collect()
}

/// Reports every entry of `list` (at `key`) that does not parse.
pub(crate) fn validate_peers(key: &str, list: &[String], errs: &mut ConfigErrors) {
    for (i, e) in list.iter().enumerate() {
        if let Err(reason) = AllowedPeer::parse(e) {
            errs.push(format!("{key}[{i}]"), reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    const NO_KEY: [u8; 32] = [0; 32];

    #[test]
    fn names_match_exactly_and_never_by_suffix() {
        let p = AllowedPeer::parse("Director.Corp.Example.").unwrap();
        assert_eq!(p, AllowedPeer::Name("director.corp.example".into()));
        assert!(p.matches(&names(&["director.corp.example"]), &NO_KEY));
        assert!(p.matches(&names(&["x.test", "DIRECTOR.corp.example."]), &NO_KEY));
        assert!(!p.matches(&names(&["evil.director.corp.example"]), &NO_KEY));
        assert!(!p.matches(&names(&["corp.example"]), &NO_KEY));
        assert!(!p.matches(&names(&["*.corp.example"]), &NO_KEY));
    }

    #[test]
    fn wildcards_cover_one_label_below() {
        let p = AllowedPeer::parse("*.pool.corp.example").unwrap();
        assert!(p.matches(&names(&["fe1.pool.corp.example"]), &NO_KEY));
        assert!(!p.matches(&names(&["pool.corp.example"]), &NO_KEY));
        assert!(!p.matches(&names(&["a.fe1.pool.corp.example"]), &NO_KEY));
        // A wildcard certificate is not a name below the entry.
        assert!(!p.matches(&names(&["*.pool.corp.example"]), &NO_KEY));
        assert!(AllowedPeer::parse("*.com").is_err());
        assert!(AllowedPeer::parse("a.*.corp.example").is_err());
    }

    #[test]
    fn addresses_match_ip_entries_only() {
        let p = AllowedPeer::parse("10.1.20.5").unwrap();
        assert!(p.matches(&names(&["10.1.20.5"]), &NO_KEY));
        assert!(!p.matches(&names(&["10.1.20.50"]), &NO_KEY));
        let v6 = AllowedPeer::parse("2001:db8::5").unwrap();
        assert!(v6.matches(&names(&["2001:0db8::0005"]), &NO_KEY));
    }

    #[test]
    fn spki_pins_match_the_key_whatever_the_names() {
        let key = [7u8; 32];
        let entry = format!("sha256:{}", STANDARD.encode(key));
        let p = AllowedPeer::parse(&entry).unwrap();
        assert_eq!(p.to_string(), entry);
        assert!(p.matches(&[], &key));
        assert!(!p.matches(&names(&["anything"]), &NO_KEY));
        assert!(AllowedPeer::parse("sha256:abc").is_err());
        assert!(AllowedPeer::parse(&format!("sha256:{}", STANDARD.encode([1u8; 20]))).is_err());
    }

    #[test]
    fn bad_entries_name_their_index() {
        let mut errs = ConfigErrors::default();
        validate_peers(
            "webconf_edge.internal_peers",
            &names(&["ok.example", "not a name", ""]),
            &mut errs,
        );
        let keys: Vec<&str> = errs.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "webconf_edge.internal_peers[1]",
                "webconf_edge.internal_peers[2]"
            ]
        );
    }
}
