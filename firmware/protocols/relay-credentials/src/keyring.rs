use crate::error::{CredentialError, KeyError, MalformedReason};
use crate::username::{check_identity, parse_username};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroize as _;

/// Secrets shorter than this are refused: HMAC-SHA1 keys below the hash block size buy no
/// speed, and short shared secrets are the usual weakness of TURN REST deployments.
pub const MIN_SECRET_LEN: usize = 32;

/// One signing key shared by the authentication service and the relays.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RelayKeyFields")]
pub struct RelayKey {
    pub id: String,
    pub secret: Vec<u8>,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds at which the key stopped minting; it still verifies for `overlap`.
    pub retired_at: Option<u64>,
}

/// Deserialisation goes through this so that a short secret in a config file is an error.
#[derive(Deserialize)]
struct RelayKeyFields {
    id: String,
    secret: Vec<u8>,
    created: u64,
    retired_at: Option<u64>,
}

impl TryFrom<RelayKeyFields> for RelayKey {
    type Error = KeyError;
    fn try_from(f: RelayKeyFields) -> Result<Self, KeyError> {
        let mut key = RelayKey::new(f.id, f.secret, f.created)?;
        key.retired_at = f.retired_at;
        Ok(key)
    }
}

impl std::fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches logs.
        f.debug_struct("RelayKey")
            .field("id", &self.id)
            .field("created", &self.created)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl Drop for RelayKey {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl RelayKey {
    pub fn new(id: impl Into<String>, secret: Vec<u8>, created: u64) -> Result<Self, KeyError> {
        let id = id.into();
        if id.is_empty() {
            return Err(KeyError::EmptyId);
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::SecretTooShort {
                id,
                len: secret.len(),
                min: MIN_SECRET_LEN,
            });
        }
        Ok(RelayKey {
            id,
            secret,
            created,
            retired_at: None,
        })
    }

    /// A key with a fresh 32-byte secret from the operating system's generator.
    pub fn generate(id: impl Into<String>, created: u64) -> Result<Self, KeyError> {
        let mut secret = vec![0u8; MIN_SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        RelayKey::new(id, secret, created)
    }

    /// For a retired key, the Unix time from which credentials it signed are refused.
    pub fn accepted_until(&self, overlap: u64) -> Option<u64> {
        self.retired_at.map(|r| r.saturating_add(overlap))
    }

    /// Whether a credential signed with this key is still accepted at `now`.
    fn accepts_at(&self, now: u64, overlap: u64) -> bool {
        self.accepted_until(overlap).is_none_or(|until| now < until)
    }
}

/// The TURN REST password for `username` under `secret`.
pub fn password(secret: &[u8], username: &str) -> String {
    // HMAC accepts keys of any length; the error branch cannot be taken.
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A minted credential, as handed to a client.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub username: String,
    pub password: String,
    pub expires_at: u64,
    pub key_id: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password is the relay's key for this username: never in logs.
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Drop for Credential {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

/// The current key (mints) and older keys (verify until their overlap ends).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "KeyRingFields")]
pub struct KeyRing {
    current: RelayKey,
    previous: Vec<RelayKey>,
    /// Seconds a retired key keeps verifying; at least the longest credential TTL so that
    /// credentials minted just before a rotation stay usable.
    overlap: u64,
}

#[derive(Deserialize)]
struct KeyRingFields {
    current: RelayKey,
    previous: Vec<RelayKey>,
    overlap: u64,
}

impl TryFrom<KeyRingFields> for KeyRing {
    type Error = KeyError;
    fn try_from(f: KeyRingFields) -> Result<Self, KeyError> {
        let mut ring = KeyRing::new(f.current, f.overlap)?;
        for key in f.previous {
            ring.insert_previous(key)?;
        }
        Ok(ring)
    }
}

impl KeyRing {
    pub fn new(mut current: RelayKey, overlap: u64) -> Result<Self, KeyError> {
        if current.retired_at.is_some() {
            return Err(KeyError::CurrentRetired(std::mem::take(&mut current.id)));
        }
        Ok(KeyRing {
            current,
            previous: Vec::new(),
            overlap,
        })
    }

    fn insert_previous(&mut self, key: RelayKey) -> Result<(), KeyError> {
        if self.keys().any(|k| k.id == key.id) {
            return Err(KeyError::DuplicateId(key.id.clone()));
        }
        self.previous.push(key);
        Ok(())
    }

    /// Makes `next` the minting key; the old current key is retired at `now` and keeps
    /// verifying for the overlap window.
    pub fn rotate(&mut self, next: RelayKey, now: u64) -> Result<(), KeyError> {
        if next.retired_at.is_some() {
            return Err(KeyError::CurrentRetired(next.id.clone()));
        }
        if self.keys().any(|k| k.id == next.id) {
            return Err(KeyError::DuplicateId(next.id.clone()));
        }
        let mut old = std::mem::replace(&mut self.current, next);
        old.retired_at = Some(now);
        self.previous.push(old);
        Ok(())
    }

    /// Drops keys whose overlap window has ended.
    pub fn prune(&mut self, now: u64) {
        let overlap = self.overlap;
        self.previous.retain(|k| k.accepts_at(now, overlap));
    }

    pub fn current(&self) -> &RelayKey {
        &self.current
    }

    pub fn overlap(&self) -> u64 {
        self.overlap
    }

    /// The retired keys, oldest first; they verify until their overlap ends.
    pub fn previous(&self) -> &[RelayKey] {
        &self.previous
    }

    /// The current key, then the retired ones.
    pub fn keys(&self) -> impl Iterator<Item = &RelayKey> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }

    fn accepting_keys(&self, now: u64) -> impl Iterator<Item = &RelayKey> {
        let overlap = self.overlap;
        self.keys().filter(move |k| k.accepts_at(now, overlap))
    }

    /// Mints a credential for `identity` valid for `ttl` seconds from `now`.
    pub fn mint(&self, identity: &str, ttl: u64, now: u64) -> Result<Credential, CredentialError> {
        check_identity(identity).map_err(CredentialError::Malformed)?;
        let expires_at = match now.checked_add(ttl) {
            Some(t) if ttl > 0 => t,
            _ => return Err(CredentialError::Malformed(MalformedReason::BadLifetime)),
        };
        let username = format!("{expires_at}:{identity}");
        let password = password(&self.current.secret, &username);
        Ok(Credential {
            username,
            password,
            expires_at,
            key_id: self.current.id.clone(),
        })
    }

    /// Checks the parts of a credential that need no key: format and expiry (strictly in
    /// the future).
    fn check_username(username: &str, now: u64) -> Result<(), CredentialError> {
        let parsed = parse_username(username)?;
        if parsed.expires_at <= now {
            return Err(CredentialError::Expired {
                expires_at: parsed.expires_at,
                now,
            });
        }
        Ok(())
    }

    /// Candidate passwords for a TURN username, one per accepting key. TURN never sends the
    /// password, so the relay derives the MESSAGE-INTEGRITY key from each candidate in turn.
    pub fn password_for(
        &self,
        username: &str,
        now: u64,
    ) -> Result<Vec<(String, String)>, CredentialError> {
        Self::check_username(username, now)?;
        Ok(self
            .accepting_keys(now)
            .map(|k| (k.id.clone(), password(&k.secret, username)))
            .collect())
    }

    /// Verifies a username/password pair, returning the id of the key that signed it.
    pub fn verify(
        &self,
        username: &str,
        password: &str,
        now: u64,
    ) -> Result<String, CredentialError> {
        Self::check_username(username, now)?;
        let mut matched: Option<&RelayKey> = None;
        // Every key is tried, so timing does not reveal which one matched.
        for key in self.keys() {
            let expected = crate::keyring::password(&key.secret, username);
            let equal: bool = expected.as_bytes().ct_eq(password.as_bytes()).into();
            if equal && matched.is_none() {
                matched = Some(key);
            }
        }
        match matched {
            Some(key) if key.accepts_at(now, self.overlap) => Ok(key.id.clone()),
            Some(_) => Err(CredentialError::UnknownOrRetiredKey),
            None => Err(CredentialError::BadSignature),
        }
    }
}
