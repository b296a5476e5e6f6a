//! Who sent a request: the RFC 8489 9.2 long-term credential check (realm, nonce,
//! PASSWORD-ALGORITHM negotiation, MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256) over two
//! kinds of user: long-term users with stored keys, and the TURN REST short-lived
//! credentials of the A/V Authentication Service, verified against the relay key ring.
//!
//! Sans-IO: the caller passes the time and a [`KeySource`] (the store, in the role) and
//! turns a [`Refusal`] into an answer, counters and rate limiting. The authenticated
//! username is the identity the per-user quota counts.

use std::net::SocketAddr;

use relay_credentials::{CredentialError, KeyRing};
use stun_core::{
    attr, long_term_key_md5, long_term_key_sha256, verify_integrity, verify_integrity_sha256,
    Attribute, Message, NonceMinter, NonceStatus, PasswordAlgorithm, PASSWORD_ALGORITHM_MD5,
    PASSWORD_ALGORITHM_SHA256,
};

/// Offered in this order: SHA-256 preferred, MD5 for RFC 5389 clients.
pub const OFFERED_ALGORITHMS: [PasswordAlgorithm<'static>; 2] = [
    PasswordAlgorithm {
        algorithm: PASSWORD_ALGORITHM_SHA256,
        parameters: &[],
    },
    PasswordAlgorithm {
        algorithm: PASSWORD_ALGORITHM_MD5,
        parameters: &[],
    },
];

/// Which kind of credential authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    LongTerm,
    ShortLived { expires_at: u64 },
}

/// An authenticated request: who (the identity quotas count), and the key its answer is
/// protected with.
#[derive(Clone)]
pub struct Auth {
    pub username: String,
    /// The user behind the username, whom quotas count: the username of a long-term
    /// user, the `user` of short-lived `expiry:user` credentials.
    pub identity: String,
    pub(crate) key: Vec<u8>,
    /// Answer with MESSAGE-INTEGRITY-SHA256 (the request used it).
    pub(crate) sha256: bool,
    pub kind: CredentialKind,
}

impl Drop for Auth {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// A long-term user's stored keys (RFC 8489: MD5 and SHA-256 of `user:realm:password`):
/// as good as the password, so `Debug` leaves them out and they are cleared when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct UserKeys {
    pub realm: String,
    pub md5: Vec<u8>,
    pub sha256: Vec<u8>,
}

impl std::fmt::Debug for UserKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserKeys")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl Drop for UserKeys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.md5);
        zeroize::Zeroize::zeroize(&mut self.sha256);
    }
}

/// Where usernames' keys come from.
pub trait KeySource {
    type Error: std::fmt::Display;
    /// The relay key ring for short-lived credentials, if there is one.
    fn ring(&self) -> Option<KeyRing>;
    /// A long-term user's keys; `Ok(None)` for an unknown user.
    fn user(&self, name: &str) -> Result<Option<UserKeys>, Self::Error>;
}

/// Why no key could be found for a username.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("unknown user")]
    UnknownUser,
    #[error("user belongs to realm {0:?}")]
    OtherRealm(String),
    #[error("short-lived credential refused: {0}")]
    Credential(#[from] CredentialError),
    #[error("key source: {0}")]
    Source(String),
}

/// Why a request was not authenticated, and so what it is answered with.
#[derive(Debug)]
pub enum Refusal {
    /// No MESSAGE-INTEGRITY: a 401 challenge, if the source's budget allows an answer.
    Unauthenticated,
    /// 400 with this reason, no challenge.
    BadRequest(&'static str),
    /// Our nonce, expired: a 438 challenge.
    StaleNonce,
    /// A 401 challenge.
    Unauthorized(Unauthorized),
}

/// Why a 401 was answered (logged at debug, never told to the client).
#[derive(Debug, thiserror::Error)]
pub enum Unauthorized {
    #[error("nonce not ours, tampered or for another client")]
    InvalidNonce,
    #[error("realm {0:?} is not ours")]
    OtherRealm(String),
    #[error("{0}")]
    Lookup(#[from] LookupError),
    #[error("wrong key")]
    WrongKey,
}

fn derive(algorithm: u16, username: &str, realm: &str, password: &str) -> Vec<u8> {
    if algorithm == PASSWORD_ALGORITHM_SHA256 {
        long_term_key_sha256(username, realm, password).to_vec()
    } else {
        long_term_key_md5(username, realm, password).to_vec()
    }
}

/// Candidate long-term keys for a short-lived credential's `username`: one per relay key
/// the ring still accepts at `now` (TURN never sends the password, so the key is derived
/// from each candidate password in turn).
pub fn short_lived_keys(
    ring: &KeyRing,
    username: &str,
    realm: &str,
    algorithm: u16,
    now: u64,
) -> Result<Vec<Vec<u8>>, CredentialError> {
    Ok(ring
        .password_for(username, now)?
        .iter()
        .map(|(_, password)| derive(algorithm, username, realm, password))
        .collect())
}

/// Candidate keys for `username` under `algorithm`, and which kind of credential it is:
/// usernames in the short-lived form are checked against the ring, others are users.
pub fn keys_for(
    source: &impl KeySource,
    username: &str,
    realm: &str,
    algorithm: u16,
    now: u64,
) -> Result<(Vec<Vec<u8>>, CredentialKind), LookupError> {
    if let Ok(parsed) = relay_credentials::parse_username(username) {
        let ring = source.ring().ok_or(LookupError::UnknownUser)?;
        let keys = short_lived_keys(&ring, username, realm, algorithm, now)?;
        let kind = CredentialKind::ShortLived {
            expires_at: parsed.expires_at,
        };
        return Ok((keys, kind));
    }
    let mut user = source
        .user(username)
        .map_err(|e| LookupError::Source(e.to_string()))?
        .ok_or(LookupError::UnknownUser)?;
    if user.realm != realm {
        return Err(LookupError::OtherRealm(std::mem::take(&mut user.realm)));
    }
    // Taken, not copied: the dropped `user` clears what is left.
    let key = if algorithm == PASSWORD_ALGORITHM_SHA256 {
        std::mem::take(&mut user.sha256)
    } else {
        std::mem::take(&mut user.md5)
    };
    Ok((vec![key], CredentialKind::LongTerm))
}

/// The PASSWORD-ALGORITHM the request uses: MD5 when it names none (RFC 5389 clients);
/// otherwise the echoed PASSWORD-ALGORITHMS must be ours, or a man in the middle
/// downgraded it.
fn algorithm_of(msg: &Message<'_>) -> Result<u16, Refusal> {
    match (
        msg.get(attr::PASSWORD_ALGORITHM),
        msg.get(attr::PASSWORD_ALGORITHMS),
    ) {
        (Ok(None), Ok(None)) => Ok(PASSWORD_ALGORITHM_MD5),
        (
            Ok(Some(Attribute::PasswordAlgorithm(chosen))),
            Ok(Some(Attribute::PasswordAlgorithms(echo))),
        ) => {
            let ours = echo
                .iter()
                .map(|a| (a.algorithm, a.parameters))
                .eq(OFFERED_ALGORITHMS
                    .iter()
                    .map(|a| (a.algorithm, a.parameters)));
            if !ours
                || !OFFERED_ALGORITHMS
                    .iter()
                    .any(|a| a.algorithm == chosen.algorithm)
            {
                return Err(Refusal::BadRequest("PASSWORD-ALGORITHM not offered"));
            }
            Ok(chosen.algorithm)
        }
        _ => Err(Refusal::BadRequest(
            "PASSWORD-ALGORITHM and PASSWORD-ALGORITHMS go together",
        )),
    }
}

/// Whom a credential's quota counts: every short-lived credential of one user is that user.
fn identity_of(username: &str, kind: CredentialKind) -> String {
    match kind {
        CredentialKind::ShortLived { .. } => relay_credentials::parse_username(username)
            .map_or(username, |parsed| parsed.identity)
            .to_string(),
        CredentialKind::LongTerm => username.to_string(),
    }
}

/// Authenticates `msg` from `client` at `now` (Unix seconds) for `realm`.
pub fn authenticate(
    msg: &Message<'_>,
    client: SocketAddr,
    now: u64,
    realm: &str,
    nonces: &NonceMinter,
    source: &impl KeySource,
) -> Result<Auth, Refusal> {
    let has_integrity = msg.raw(attr::MESSAGE_INTEGRITY).is_some()
        || msg.raw(attr::MESSAGE_INTEGRITY_SHA256).is_some();
    if !has_integrity {
        return Err(Refusal::Unauthenticated);
    }
    let (Ok(Some(username)), Ok(Some(request_realm)), Ok(Some(nonce))) =
        (msg.username(), msg.realm(), msg.nonce())
    else {
        return Err(Refusal::BadRequest(
            "USERNAME, REALM and NONCE are required with MESSAGE-INTEGRITY",
        ));
    };
    match nonces.check(nonce, now, client) {
        NonceStatus::Valid => {}
        NonceStatus::Stale => return Err(Refusal::StaleNonce),
        NonceStatus::Invalid => return Err(Refusal::Unauthorized(Unauthorized::InvalidNonce)),
    }
    if request_realm != realm {
        return Err(Refusal::Unauthorized(Unauthorized::OtherRealm(
            request_realm.to_string(),
        )));
    }
    let algorithm = algorithm_of(msg)?;
    let (keys, kind) = keys_for(source, username, realm, algorithm, now)
        .map_err(|e| Refusal::Unauthorized(e.into()))?;
    let sha256 = msg.raw(attr::MESSAGE_INTEGRITY_SHA256).is_some();
    let key = keys.into_iter().find(|k| {
        if sha256 {
            verify_integrity_sha256(msg, k)
        } else {
            verify_integrity(msg, k)
        }
    });
    match key {
        Some(key) => Ok(Auth {
            username: username.to_string(),
            identity: identity_of(username, kind),
            key,
            sha256,
            kind,
        }),
        None => Err(Refusal::Unauthorized(Unauthorized::WrongKey)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use relay_credentials::RelayKey;
    use stun_core::{Class, MessageEncoder, Method, SecurityFeatures, TransactionId};

    use super::*;

    const REALM: &str = "edge.example.test";
    const NOW: u64 = 1_800_000_000;
    const OVERLAP: u64 = 600;

    struct Source {
        users: HashMap<String, UserKeys>,
        ring: Option<KeyRing>,
    }

    impl KeySource for Source {
        type Error = String;
        fn ring(&self) -> Option<KeyRing> {
            self.ring.clone()
        }
        fn user(&self, name: &str) -> Result<Option<UserKeys>, String> {
            if name == "broken" {
                return Err("store unreadable".into());
            }
            Ok(self.users.get(name).cloned())
        }
    }

    fn relay_key(id: &str, byte: u8) -> RelayKey {
        RelayKey::new(id, vec![byte; 32], NOW - 100_000).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Alice (password "secret") and a ring whose key "old" was retired at `NOW - 100`
    /// in favour of "new".
    fn source() -> Source {
        let user = |password: &str| UserKeys {
            realm: REALM.into(),
            md5: long_term_key_md5("alice", REALM, password).to_vec(),
            sha256: long_term_key_sha256("alice", REALM, password).to_vec(),
        };
        let mut ring = KeyRing::new(relay_key("old", 1), OVERLAP).unwrap_or_else(|e| panic!("{e}"));
        ring.rotate(relay_key("new", 2), NOW - 100)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut users = HashMap::new();
        users.insert("alice".to_string(), user("secret"));
        let mut other = user("secret");
        other.realm = "elsewhere.test".into();
        users.insert("bob".to_string(), other);
        Source {
            users,
            ring: Some(ring),
        }
    }

    fn nonces() -> NonceMinter {
        NonceMinter::new(&[9; 32], 600, SecurityFeatures::PASSWORD_ALGORITHMS)
    }

    fn client() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 7], 40000))
    }

    struct Request<'a> {
        username: &'a str,
        password: &'a str,
        realm: &'a str,
        nonce: String,
        sha256: bool,
    }

    impl<'a> Request<'a> {
        fn new(username: &'a str, password: &'a str) -> Self {
            Request {
                username,
                password,
                realm: REALM,
                nonce: nonces().mint(NOW, client()).as_str().to_string(),
                sha256: false,
            }
        }

        fn encode(&self) -> Vec<u8> {
            let mut buf = Vec::new();
            let mut enc = MessageEncoder::new(
                &mut buf,
                Method::ALLOCATE,
                Class::Request,
                TransactionId([3; 12]),
            );
            let result = (|| {
                enc.add(&Attribute::Username(self.username))?;
                enc.add(&Attribute::Realm(self.realm))?;
                enc.add(&Attribute::Nonce(&self.nonce))?;
                if self.sha256 {
                    enc.add_password_algorithms(&OFFERED_ALGORITHMS)?;
                    enc.add_password_algorithm(&OFFERED_ALGORITHMS[0])?;
                    let key = long_term_key_sha256(self.username, self.realm, self.password);
                    enc.add_message_integrity_sha256(&key)?;
                } else {
                    let key = long_term_key_md5(self.username, self.realm, self.password);
                    enc.add_message_integrity(&key)?;
                }
                Ok::<(), stun_core::EncodeError>(())
            })();
            result.unwrap_or_else(|e| panic!("{e}"));
            buf
        }
    }

    fn check(bytes: &[u8], now: u64) -> Result<Auth, Refusal> {
        let msg = Message::decode(bytes).unwrap_or_else(|e| panic!("{e}"));
        authenticate(&msg, client(), now, REALM, &nonces(), &source())
    }

    fn minted(key: &RelayKey, ttl: u64) -> (String, String) {
        let ring = KeyRing::new(key.clone(), OVERLAP).unwrap_or_else(|e| panic!("{e}"));
        let c = ring
            .mint("carol@example.test", ttl, NOW - 50)
            .unwrap_or_else(|e| panic!("{e}"));
        (c.username.clone(), c.password.clone())
    }

    fn unauthorized(r: Result<Auth, Refusal>) -> Unauthorized {
        match r {
            Err(Refusal::Unauthorized(why)) => why,
            Err(other) => panic!("expected a 401, got {other:?}"),
            Ok(a) => panic!("expected a 401, {} was authenticated", a.username),
        }
    }

    #[test]
    fn valid_long_term_credential_md5_and_sha256() {
        let auth = check(&Request::new("alice", "secret").encode(), NOW)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(auth.username, "alice");
        assert_eq!(auth.identity, "alice");
        assert_eq!(auth.kind, CredentialKind::LongTerm);
        assert!(!auth.sha256);
        assert_eq!(
            auth.key,
            long_term_key_md5("alice", REALM, "secret").to_vec()
        );

        let mut sha = Request::new("alice", "secret");
        sha.sha256 = true;
        let auth = check(&sha.encode(), NOW).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(auth.sha256);
        assert_eq!(
            auth.key,
            long_term_key_sha256("alice", REALM, "secret").to_vec()
        );
    }

    #[test]
    fn wrong_password_unknown_user_and_other_realm_get_401() {
        let wrong = check(&Request::new("alice", "guess").encode(), NOW);
        assert!(matches!(unauthorized(wrong), Unauthorized::WrongKey));
        let unknown = check(&Request::new("mallory", "secret").encode(), NOW);
        assert!(matches!(
            unauthorized(unknown),
            Unauthorized::Lookup(LookupError::UnknownUser)
        ));
        // Bob is stored under another realm than ours.
        let bob = check(&Request::new("bob", "secret").encode(), NOW);
        assert!(matches!(
            unauthorized(bob),
            Unauthorized::Lookup(LookupError::OtherRealm(_))
        ));
        let mut elsewhere = Request::new("alice", "secret");
        elsewhere.realm = "elsewhere.test";
        assert!(matches!(
            unauthorized(check(&elsewhere.encode(), NOW)),
            Unauthorized::OtherRealm(_)
        ));
        let broken = check(&Request::new("broken", "x").encode(), NOW);
        assert!(matches!(
            unauthorized(broken),
            Unauthorized::Lookup(LookupError::Source(_))
        ));
    }

    #[test]
    fn nonces_stale_foreign_and_missing() {
        // Minted at NOW, lifetime 600 s.
        let stale = check(&Request::new("alice", "secret").encode(), NOW + 601);
        assert!(
            matches!(stale, Err(Refusal::StaleNonce)),
            "{:?}",
            stale.as_ref().err()
        );
        let mut other_client = Request::new("alice", "secret");
        other_client.nonce = nonces()
            .mint(NOW, SocketAddr::from(([192, 0, 2, 8], 40000)))
            .as_str()
            .to_string();
        assert!(matches!(
            unauthorized(check(&other_client.encode(), NOW)),
            Unauthorized::InvalidNonce
        ));
        let mut buf = Vec::new();
        let mut enc = MessageEncoder::new(
            &mut buf,
            Method::ALLOCATE,
            Class::Request,
            TransactionId([4; 12]),
        );
        enc.add(&Attribute::Username("alice"))
            .and_then(|e| e.add_message_integrity(&[0; 16]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(check(&buf, NOW), Err(Refusal::BadRequest(_))));
    }

    #[test]
    fn no_message_integrity_is_unauthenticated() {
        let mut buf = Vec::new();
        let mut enc = MessageEncoder::new(
            &mut buf,
            Method::ALLOCATE,
            Class::Request,
            TransactionId([5; 12]),
        );
        enc.add(&Attribute::Username("alice"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(check(&buf, NOW), Err(Refusal::Unauthenticated)));
    }

    #[test]
    fn short_lived_credentials_current_expired_tampered() {
        let (user, password) = minted(&relay_key("new", 2), 600);
        let auth = check(&Request::new(&user, &password).encode(), NOW)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(auth.username, user);
        assert_eq!(auth.identity, "carol@example.test");
        assert_eq!(
            auth.kind,
            CredentialKind::ShortLived {
                expires_at: NOW + 550
            }
        );
        // Expired: refused before any key is tried.
        let (user, password) = minted(&relay_key("new", 2), 10);
        let expired = check(&Request::new(&user, &password).encode(), NOW);
        assert!(matches!(
            unauthorized(expired),
            Unauthorized::Lookup(LookupError::Credential(CredentialError::Expired { .. }))
        ));
        // A longer life written into the username does not match the signature.
        let (user, password) = minted(&relay_key("new", 2), 600);
        let tampered = user.replacen(&(NOW + 550).to_string(), &(NOW + 9999).to_string(), 1);
        let forged = check(&Request::new(&tampered, &password).encode(), NOW);
        assert!(matches!(unauthorized(forged), Unauthorized::WrongKey));
        // Signed with a key the ring never had.
        let (user, password) = minted(&relay_key("rogue", 3), 600);
        let rogue = check(&Request::new(&user, &password).encode(), NOW);
        assert!(matches!(unauthorized(rogue), Unauthorized::WrongKey));
    }

    #[test]
    fn retired_key_verifies_within_its_overlap_only() {
        // "old" was retired at NOW - 100 with a 600 s overlap: accepted until NOW + 500.
        let (user, password) = minted(&relay_key("old", 1), 3600);
        let within = check(&Request::new(&user, &password).encode(), NOW);
        assert_eq!(within.map(|a| a.username.clone()).ok(), Some(user.clone()));
        let mut late = Request::new(&user, &password);
        late.nonce = nonces().mint(NOW + 500, client()).as_str().to_string();
        assert!(matches!(
            unauthorized(check(&late.encode(), NOW + 500)),
            Unauthorized::WrongKey
        ));
    }

    #[test]
    fn short_lived_username_without_a_ring_is_unknown() {
        let (user, password) = minted(&relay_key("new", 2), 600);
        let msg_bytes = Request::new(&user, &password).encode();
        let msg = Message::decode(&msg_bytes).unwrap_or_else(|e| panic!("{e}"));
        let mut no_ring = source();
        no_ring.ring = None;
        let r = authenticate(&msg, client(), NOW, REALM, &nonces(), &no_ring);
        assert!(matches!(
            unauthorized(r),
            Unauthorized::Lookup(LookupError::UnknownUser)
        ));
    }

    #[test]
    fn user_keys_debug_hides_the_keys() {
        let keys = UserKeys {
            realm: REALM.into(),
            md5: vec![0xC4; 16],
            sha256: vec![0xD9; 32],
        };
        let debug = format!("{keys:?} {keys:#?}");
        for form in ["196, 196", "c4c4", "217, 217", "d9d9"] {
            assert!(!debug.contains(form), "Debug shows a key ({form}): {debug}");
        }
        assert!(debug.contains(REALM), "{debug}");
    }
}
