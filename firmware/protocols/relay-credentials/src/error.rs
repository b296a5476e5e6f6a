use thiserror::Error;

/// Why a username is not a relay credential username.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MalformedReason {
    #[error("no ':' between expiry and identity")]
    MissingSeparator,
    #[error("expiry is not a decimal unix time")]
    BadExpiry,
    #[error("identity is empty")]
    EmptyIdentity,
    #[error("identity contains a control character")]
    ControlCharacter,
    #[error("lifetime must be positive and keep the expiry representable")]
    BadLifetime,
}

/// Why a credential was refused; each maps to a distinct log line and metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CredentialError {
    #[error("credential expired at {expires_at} (now {now})")]
    Expired { expires_at: u64, now: u64 },
    #[error("malformed credential: {0}")]
    Malformed(MalformedReason),
    #[error("password does not match any key")]
    BadSignature,
    #[error("password matches a key retired beyond the overlap window")]
    UnknownOrRetiredKey,
}

/// Invalid key material or key ring configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("key {id:?}: secret is {len} bytes, at least {min} required")]
    SecretTooShort { id: String, len: usize, min: usize },
    #[error("key id is empty")]
    EmptyId,
    #[error("duplicate key id {0:?}")]
    DuplicateId(String),
    #[error("the current key {0:?} is marked retired")]
    CurrentRetired(String),
}
