use crate::error::{CredentialError, MalformedReason};

/// A username split into its parts, borrowing the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedUsername<'a> {
    pub expires_at: u64,
    pub identity: &'a str,
}

/// Checks an identity: non-empty and free of control characters (it ends up in logs and in
/// the username the relay echoes in responses).
pub(crate) fn check_identity(identity: &str) -> Result<(), MalformedReason> {
    if identity.is_empty() {
        return Err(MalformedReason::EmptyIdentity);
    }
    if identity.chars().any(char::is_control) {
        return Err(MalformedReason::ControlCharacter);
    }
    Ok(())
}

/// Splits `<expiry>:<identity>` at the first ':' (the identity itself may contain ':').
pub fn parse_username(username: &str) -> Result<ParsedUsername<'_>, CredentialError> {
    let malformed = CredentialError::Malformed;
    let (expiry, identity) = username
        .split_once(':')
        .ok_or(malformed(MalformedReason::MissingSeparator))?;
    // Digits only: `u64::from_str` would also accept a leading '+'.
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(MalformedReason::BadExpiry));
    }
    let expires_at = expiry
        .parse()
        .map_err(|_| malformed(MalformedReason::BadExpiry))?;
    check_identity(identity).map_err(malformed)?;
    Ok(ParsedUsername {
        expires_at,
        identity,
    })
}
