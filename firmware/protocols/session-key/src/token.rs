//! The session key token: what it holds and its compact forms.
//!
//! Binary layout (all integers big-endian):
//!
//! ```text
//! version u8 (=1) | key_id u32 | expires_at u64 (Unix s) | role u8 | conf_len u8 | conference id | mac [32]
//! ```
//!
//! The MAC is HMAC-SHA256 over every byte before it, with the secret named by `key_id`.
//! The text form is the binary form in unpadded base64url, safe in URLs, JSON and headers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Format version written in the first byte.
pub const TOKEN_VERSION: u8 = 1;
/// Length of the HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Longest conference id accepted, in bytes.
pub const MAX_CONFERENCE_ID: usize = 128;
/// Fixed part before the conference id.
const HEADER_LEN: usize = 1 + 4 + 8 + 1 + 1;
/// Longest token text: bounded so a first frame can be bounded.
pub const MAX_TOKEN_TEXT: usize = (HEADER_LEN + MAX_CONFERENCE_ID + MAC_LEN).div_ceil(3) * 4;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// What a participant may do in the meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParticipantRole {
    Presenter,
    Attendee,
}

impl ParticipantRole {
    pub fn to_byte(self) -> u8 {
        match self {
            ParticipantRole::Presenter => 1,
            ParticipantRole::Attendee => 2,
        }
    }

    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(ParticipantRole::Presenter),
            2 => Some(ParticipantRole::Attendee),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParticipantRole::Presenter => "presenter",
            ParticipantRole::Attendee => "attendee",
        }
    }
}

impl std::str::FromStr for ParticipantRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "presenter" => Ok(ParticipantRole::Presenter),
            "attendee" => Ok(ParticipantRole::Attendee),
            other => Err(format!(
                "unknown participant role \"{other}\" (presenter or attendee)"
            )),
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub conference_id: String,
    pub role: ParticipantRole,
    /// Unix seconds after which the token is refused.
    pub expires_at: u64,
    pub key_id: u32,
}

/// Why a token was refused. Each reason is counted apart at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed session key: {0}")]
    Malformed(&'static str),
    #[error("session key expired at {expires_at} (now {now})")]
    Expired { expires_at: u64, now: u64 },
    #[error("session key signed with unknown or retired key id {0}")]
    UnknownKey(u32),
    #[error("session key signature does not verify")]
    BadSignature,
    #[error("session key is for another conference")]
    WrongConference,
}

/// Checks a conference id: 1 to 128 bytes of visible ASCII, so it prints safely in logs
/// and cannot smuggle separators into anything downstream.
pub fn check_conference_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("empty conference id");
    }
    if id.len() > MAX_CONFERENCE_ID {
        return Err("conference id longer than 128 bytes");
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("conference id holds characters other than visible ASCII");
    }
    Ok(())
}

/// The signed part of a token, before the MAC.
pub(crate) fn signed_body(claims: &Claims) -> Result<Vec<u8>, &'static str> {
    check_conference_id(&claims.conference_id)?;
    let mut out = Vec::with_capacity(HEADER_LEN + claims.conference_id.len() + MAC_LEN);
    out.push(TOKEN_VERSION);
    out.extend_from_slice(&claims.key_id.to_be_bytes());
    out.extend_from_slice(&claims.expires_at.to_be_bytes());
    out.push(claims.role.to_byte());
    // check_conference_id bounds the length to 128, so it fits a byte.
    out.push(claims.conference_id.len() as u8);
    out.extend_from_slice(claims.conference_id.as_bytes());
    Ok(out)
}

/// A token split into its claims, the bytes the MAC covers, and the MAC. Not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken {
    pub claims: Claims,
    pub signed: Vec<u8>,
    pub mac: [u8; MAC_LEN],
}

/// Decodes the text form and splits it; checks structure only, not the signature.
pub fn parse(text: &str) -> Result<ParsedToken, VerifyError> {
    if text.len() > MAX_TOKEN_TEXT {
        return Err(VerifyError::Malformed("session key too long"));
    }
    let raw = URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .map_err(|_| VerifyError::Malformed("session key is not base64url"))?;
    parse_binary(&raw)
}

/// Splits the binary form; checks structure only, not the signature.
pub fn parse_binary(raw: &[u8]) -> Result<ParsedToken, VerifyError> {
    if raw.len() < HEADER_LEN + 1 + MAC_LEN {
        return Err(VerifyError::Malformed("session key too short"));
    }
    if raw[0] != TOKEN_VERSION {
        return Err(VerifyError::Malformed("unknown session key version"));
    }
    let key_id = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]);
    let mut exp = [0u8; 8];
    exp.copy_from_slice(&raw[5..13]);
    let expires_at = u64::from_be_bytes(exp);
    let role = ParticipantRole::from_byte(raw[13])
        .ok_or(VerifyError::Malformed("unknown participant role"))?;
    let conf_len = usize::from(raw[14]);
    if raw.len() != HEADER_LEN + conf_len + MAC_LEN {
        return Err(VerifyError::Malformed(
            "session key length does not match its conference id",
        ));
    }
    let conf = &raw[HEADER_LEN..HEADER_LEN + conf_len];
    let conference_id = std::str::from_utf8(conf)
        .map_err(|_| VerifyError::Malformed("conference id is not text"))?
        .to_owned();
    check_conference_id(&conference_id).map_err(VerifyError::Malformed)?;
    let split = HEADER_LEN + conf_len;
    let mut mac = [0u8; MAC_LEN];
    mac.copy_from_slice(&raw[split..]);
    Ok(ParsedToken {
        claims: Claims {
            conference_id,
            role,
            expires_at,
            key_id,
        },
        signed: raw[..split].to_vec(),
        mac,
    })
}

/// Signs claims with `secret` and returns the binary form.
pub(crate) fn sign_binary(claims: &Claims, secret: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut body = signed_body(claims)?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| "unusable secret")?;
    mac.update(&body);
    body.extend_from_slice(&mac.finalize().into_bytes());
    Ok(body)
}

/// Signs claims with `secret` and returns the text form.
pub(crate) fn sign_text(claims: &Claims, secret: &[u8]) -> Result<String, &'static str> {
    Ok(URL_SAFE_NO_PAD.encode(sign_binary(claims, secret)?))
}

/// Whether `mac` is the tag of `signed` under `secret`, compared in constant time.
pub(crate) fn mac_matches(signed: &[u8], mac: &[u8; MAC_LEN], secret: &[u8]) -> bool {
    match HmacSha256::new_from_slice(secret) {
        Ok(mut m) => {
            m.update(signed);
            m.verify_slice(mac).is_ok()
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(conf: &str) -> Claims {
        Claims {
            conference_id: conf.into(),
            role: ParticipantRole::Attendee,
            expires_at: 1_800_000_000,
            key_id: 7,
        }
    }

    #[test]
    fn text_round_trip_keeps_every_claim() {
        for role in [ParticipantRole::Presenter, ParticipantRole::Attendee] {
            let mut c = claims("conf-42@example.test");
            c.role = role;
            let text = sign_text(&c, b"0123456789abcdef").unwrap();
            let parsed = parse(&text).unwrap();
            assert_eq!(parsed.claims, c);
            assert!(mac_matches(
                &parsed.signed,
                &parsed.mac,
                b"0123456789abcdef"
            ));
            assert!(!mac_matches(
                &parsed.signed,
                &parsed.mac,
                b"0123456789abcdeX"
            ));
        }
    }

    #[test]
    fn longest_conference_id_fits_the_text_bound() {
        let c = claims(&"x".repeat(MAX_CONFERENCE_ID));
        let text = sign_text(&c, b"secret-secret-secret").unwrap();
        assert!(
            text.len() <= MAX_TOKEN_TEXT,
            "{} > {MAX_TOKEN_TEXT}",
            text.len()
        );
        assert_eq!(parse(&text).unwrap().claims, c);
    }

    #[test]
    fn bad_conference_ids_cannot_be_signed() {
        for bad in ["", "has space", "tab\t", "é", &"x".repeat(129)] {
            assert!(sign_text(&claims(bad), b"k").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_truncation_is_malformed_never_a_panic() {
        let raw = sign_binary(&claims("c1"), b"k").unwrap();
        for n in 0..raw.len() {
            assert!(
                matches!(parse_binary(&raw[..n]), Err(VerifyError::Malformed(_))),
                "len {n}"
            );
        }
        let mut longer = raw.clone();
        longer.push(0);
        assert!(matches!(
            parse_binary(&longer),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn structural_faults_are_named() {
        let raw = sign_binary(&claims("c1"), b"k").unwrap();
        let mut v = raw.clone();
        v[0] = 2;
        assert_eq!(
            parse_binary(&v),
            Err(VerifyError::Malformed("unknown session key version"))
        );
        let mut r = raw.clone();
        r[13] = 9;
        assert_eq!(
            parse_binary(&r),
            Err(VerifyError::Malformed("unknown participant role"))
        );
        let mut s = raw.clone();
        s[15] = b' ';
        assert!(matches!(parse_binary(&s), Err(VerifyError::Malformed(_))));
        assert!(matches!(
            parse("not*base64"),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&"A".repeat(MAX_TOKEN_TEXT + 1)),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic generator: every length and many byte patterns.
        let mut x: u32 = 0x1234_5678;
        for len in 0..300usize {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf.push(x as u8);
            }
            let _ = parse_binary(&buf);
            if let Ok(s) = std::str::from_utf8(&buf) {
                let _ = parse(s);
            }
        }
    }

    #[test]
    fn roles_parse_from_text() {
        assert_eq!(
            "presenter".parse::<ParticipantRole>(),
            Ok(ParticipantRole::Presenter)
        );
        assert_eq!(
            "attendee".parse::<ParticipantRole>(),
            Ok(ParticipantRole::Attendee)
        );
        assert!("owner".parse::<ParticipantRole>().is_err());
    }
}
