//! The session key token: what it holds and its compact forms.
//!
//! Binary layout (all integers big-endian):
//!
//! ```text
//! version u8 (=2) | key_id u32 | issued_at u64 | expires_at u64 | role u8 | conf_len u8 | conference id | mac [32]
//! ```
//!
//! Times are Unix seconds. The MAC is HMAC-SHA256 over every byte before it, with the
//! secret named by `key_id`. The text form is the binary form in unpadded base64url, safe
//! in URLs, JSON and headers, and only its canonical spelling is accepted: one token has
//! one text, so a log line or a replay cache never sees two spellings of the same token.
//! Version 1 (without `issued_at`) is refused: its age cannot be bounded.

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Format version written in the first byte.
pub const TOKEN_VERSION: u8 = 2;
/// Length of the HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Longest conference id accepted, in bytes.
pub const MAX_CONFERENCE_ID: usize = 128;
/// Fixed part before the conference id.
const HEADER_LEN: usize = 1 + 4 + 8 + 8 + 1 + 1;
/// Longest token text: bounded so a first frame can be bounded.
pub const MAX_TOKEN_TEXT: usize = (HEADER_LEN + MAX_CONFERENCE_ID + MAC_LEN).div_ceil(3) * 4;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Unpadded base64url that refuses padding and nonzero unused bits in the last character
/// (stated here rather than left to the crate's defaults).
const TEXT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

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
    /// Unix seconds when it was minted; the edge bounds a token's age from it.
    pub issued_at: u64,
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
    #[error("session key issued at {issued_at} is older than the maximum lifetime of {max_lifetime} s (now {now})")]
    TooOld {
        issued_at: u64,
        max_lifetime: u64,
        now: u64,
    },
    #[error("session key issued at {issued_at}, in the future (now {now})")]
    IssuedInFuture { issued_at: u64, now: u64 },
    #[error("session key signed with unknown or retired key id {0}")]
    UnknownKey(u32),
    #[error("session key signature does not verify")]
    BadSignature,
    #[error("session key is for another conference")]
    WrongConference,
}

/// What the edge allows whatever a token claims: a token's claimed expiry is only ever
/// shortened by these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLimits {
    /// A token is refused once it is older than this, counted from its issue time.
    pub max_lifetime_secs: u64,
    /// How far ahead of the edge's clock an issue time may be (the conferencing servers'
    /// clocks differ a little from the edge's).
    pub max_clock_skew_secs: u64,
}

impl TokenLimits {
    /// Refuses claims issued too far in the future or longer ago than the maximum
    /// lifetime. A lifetime ends inclusively, like `expires_at`.
    pub fn check_age(&self, claims: &Claims, now: u64) -> Result<(), VerifyError> {
        let issued_at = claims.issued_at;
        if issued_at > now.saturating_add(self.max_clock_skew_secs) {
            return Err(VerifyError::IssuedInFuture { issued_at, now });
        }
        if now > issued_at.saturating_add(self.max_lifetime_secs) {
            return Err(VerifyError::TooOld {
                issued_at,
                max_lifetime: self.max_lifetime_secs,
                now,
            });
        }
        Ok(())
    }
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
    out.extend_from_slice(&claims.issued_at.to_be_bytes());
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
    let raw = TEXT
        .decode(text.as_bytes())
        .map_err(|_| VerifyError::Malformed("session key is not base64url"))?;
    // The decoder already refuses every other spelling; the round trip keeps that true
    // whatever a future version of the crate defaults to.
    if TEXT.encode(&raw) != text {
        return Err(VerifyError::Malformed(
            "session key is not canonical base64url",
        ));
    }
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
    let time_at = |at: usize| {
        let mut t = [0u8; 8];
        t.copy_from_slice(&raw[at..at + 8]);
        u64::from_be_bytes(t)
    };
    let issued_at = time_at(5);
    let expires_at = time_at(13);
    let role = ParticipantRole::from_byte(raw[21])
        .ok_or(VerifyError::Malformed("unknown participant role"))?;
    let conf_len = usize::from(raw[22]);
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
            issued_at,
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
    Ok(TEXT.encode(sign_binary(claims, secret)?))
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

    const URL_SAFE_ALPHABET: &str =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    fn claims(conf: &str) -> Claims {
        Claims {
            conference_id: conf.into(),
            role: ParticipantRole::Attendee,
            issued_at: 1_799_999_000,
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
        v[0] = 3;
        assert_eq!(
            parse_binary(&v),
            Err(VerifyError::Malformed("unknown session key version"))
        );
        let mut r = raw.clone();
        r[21] = 9;
        assert_eq!(
            parse_binary(&r),
            Err(VerifyError::Malformed("unknown participant role"))
        );
        let mut s = raw.clone();
        s[23] = b' ';
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
    fn age_is_bounded_from_the_issue_time_with_a_small_skew() {
        let limits = TokenLimits {
            max_lifetime_secs: 3_600,
            max_clock_skew_secs: 30,
        };
        let mut c = claims("c");
        c.issued_at = 1_000_000;
        // Inside: from 30 s before the issue time to exactly one lifetime after it.
        for now in [999_970, 1_000_000, 1_003_600] {
            assert_eq!(limits.check_age(&c, now), Ok(()), "now {now}");
        }
        assert_eq!(
            limits.check_age(&c, 999_969),
            Err(VerifyError::IssuedInFuture {
                issued_at: 1_000_000,
                now: 999_969
            })
        );
        assert_eq!(
            limits.check_age(&c, 1_003_601),
            Err(VerifyError::TooOld {
                issued_at: 1_000_000,
                max_lifetime: 3_600,
                now: 1_003_601
            })
        );
        // Extreme values saturate rather than wrap.
        c.issued_at = u64::MAX;
        assert!(limits.check_age(&c, 0).is_err());
        let lax = TokenLimits {
            max_lifetime_secs: u64::MAX,
            max_clock_skew_secs: u64::MAX,
        };
        assert_eq!(lax.check_age(&c, u64::MAX), Ok(()));
    }

    #[test]
    fn only_the_canonical_text_decodes() {
        // A lenient decoder finds the other spellings of the same bytes: the last
        // character's unused bits set. 56 bytes leave 2 unused bits, 58 bytes leave 4.
        let lenient = GeneralPurpose::new(
            &URL_SAFE,
            GeneralPurposeConfig::new()
                .with_decode_padding_mode(DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        for (conf, other_spellings) in [("c", 3), ("ccc", 15)] {
            let raw = sign_binary(&claims(conf), b"k").unwrap();
            let canonical = TEXT.encode(&raw);
            assert_eq!(parse(&canonical).unwrap().claims, claims(conf));
            let last = canonical.len() - 1;
            let mut seen = 0;
            for c in URL_SAFE_ALPHABET.bytes() {
                let mut t = canonical.clone().into_bytes();
                t[last] = c;
                let t = String::from_utf8(t).unwrap();
                if t == canonical || lenient.decode(&t).ok() != Some(raw.clone()) {
                    continue;
                }
                seen += 1;
                assert!(
                    matches!(parse(&t), Err(VerifyError::Malformed(_))),
                    "{t} decodes"
                );
            }
            assert_eq!(seen, other_spellings, "{conf}");
            // Padding and the standard alphabet are other spellings too.
            assert!(parse(&format!("{canonical}=")).is_err());
            let padded = base64::engine::general_purpose::URL_SAFE.encode(&raw);
            assert!(parse(&padded).is_err());
        }
    }

    #[test]
    fn version_one_tokens_are_refused() {
        let mut raw = sign_binary(&claims("c1"), b"k").unwrap();
        raw[0] = 1;
        assert_eq!(
            parse_binary(&raw),
            Err(VerifyError::Malformed("unknown session key version"))
        );
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
