//! Which identities a client certificate may obtain credentials for. Its chain and the
//! `av_auth.allowed_clients` list were checked at the handshake; the list is read again per
//! request (it may have shrunk since the connection opened), and the first entry the
//! certificate matches bounds the identities when `av_auth.client_identities` has that
//! entry. `av_auth.allowed_identities` applies to every request besides.

use edged_config::roles::av_auth::AvAuthConfig;
use edged_config::AllowedPeer;
use edged_tls::PeerIdentity;

use crate::policy::identity_allowed;

/// Whether the client `who` may ask for credentials for `identity`.
pub fn client_may_request(config: &AvAuthConfig, who: &PeerIdentity, identity: &str) -> bool {
    let matched = config.allowed_clients.iter().find(|entry| {
        AllowedPeer::parse(entry).is_ok_and(|p| p.matches(&who.names, &who.spki_sha256))
    });
    let Some(entry) = matched else {
        return false;
    };
    match config.client_identities.get(entry) {
        Some(patterns) => identity_allowed(patterns, identity),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str) -> PeerIdentity {
        PeerIdentity {
            names: vec![name.to_owned()],
            spki_sha256: [1; 32],
        }
    }

    #[test]
    fn the_first_matching_entry_bounds_the_identities() {
        let mut c = AvAuthConfig {
            allowed_clients: vec!["pool1.corp.example".into(), "*.corp.example".into()],
            ..AvAuthConfig::default()
        };
        c.client_identities
            .insert("pool1.corp.example".into(), vec!["*@sales.example".into()]);
        let pool1 = who("pool1.corp.example");
        assert!(client_may_request(&c, &pool1, "sip:ann@sales.example"));
        assert!(!client_may_request(&c, &pool1, "ceo@corp.example"));
        // Another pool server matches the unbounded wildcard entry.
        assert!(client_may_request(
            &c,
            &who("pool2.corp.example"),
            "ceo@corp.example"
        ));
        // A certificate the list no longer names gets nothing.
        assert!(!client_may_request(
            &c,
            &who("old.example"),
            "ann@sales.example"
        ));
        c.allowed_clients.clear();
        assert!(!client_may_request(&c, &pool1, "ann@sales.example"));
    }
}
