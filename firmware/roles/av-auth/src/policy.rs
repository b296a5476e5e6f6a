//! Who may obtain credentials, for how long, and how often. Pure logic over timestamps.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Longest identity accepted: the username `<expiry>:<identity>` must fit STUN's 508-byte
/// USERNAME with room to spare.
pub const MAX_IDENTITY_LEN: usize = 256;

/// Why an identity is unusable before any policy applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("identity is empty")]
    Empty,
    #[error("identity is longer than {MAX_IDENTITY_LEN} bytes")]
    TooLong,
    #[error("identity contains a control character or white space")]
    BadCharacter,
}

/// Trims and checks an identity as it will appear in the credential username.
pub fn clean_identity(raw: &str) -> Result<&str, IdentityError> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(IdentityError::Empty);
    }
    if id.len() > MAX_IDENTITY_LEN {
        return Err(IdentityError::TooLong);
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(IdentityError::BadCharacter);
    }
    Ok(id)
}

/// Whether `identity` matches one of the `*`-wildcard patterns. A leading `sip:` on the
/// identity is ignored, so `*@example.com` covers both `alice@example.com` and
/// `sip:alice@example.com`; matching ignores ASCII case as SIP domains do.
pub fn identity_allowed(patterns: &[String], identity: &str) -> bool {
    let bare = strip_sip_scheme(identity);
    patterns.iter().any(|p| {
        wildcard_match(p.as_bytes(), bare.as_bytes())
            || wildcard_match(p.as_bytes(), identity.as_bytes())
    })
}

fn strip_sip_scheme(identity: &str) -> &str {
    for scheme in ["sip:", "sips:"] {
        if identity.len() > scheme.len() && identity[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return &identity[scheme.len()..];
        }
    }
    identity
}

/// Glob match with `*` only, iterative (no recursion, linear backtracking) so a hostile
/// pattern or identity cannot blow the stack or take quadratic-exponential time.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p].eq_ignore_ascii_case(&text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Why a requested lifetime is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    #[error("lifetime must be at least 1 second")]
    Zero,
    #[error("lifetime {requested} s exceeds the maximum of {max} s")]
    TooLong { requested: u64, max: u64 },
}

/// The lifetime granted: the default when none is asked, otherwise the request if it is
/// within the maximum. `clamp` lowers a too-long request to the maximum (MS-AVEDGEA lets
/// the server shorten the duration) instead of refusing it (the REST API's 400).
pub fn grant_lifetime(
    requested: Option<u64>,
    default: u64,
    max: u64,
    clamp: bool,
) -> Result<u64, LifetimeError> {
    match requested {
        None => Ok(default.min(max)),
        Some(0) => Err(LifetimeError::Zero),
        Some(r) if r > max && clamp => Ok(max),
        Some(r) if r > max => Err(LifetimeError::TooLong { requested: r, max }),
        Some(r) => Ok(r),
    }
}

/// Above this many tracked identities, buckets that have refilled completely are dropped:
/// they carry no information, and this bounds memory under a flood of distinct names.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Per-identity token bucket: `per_minute` credentials in a burst, refilled evenly over a
/// minute. A bucket rather than a fixed window so that a client cannot get twice the
/// rate by straddling a window boundary.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one token for `identity` at `now`; on refusal, returns how long until the
    /// next token is available.
    pub fn try_take(
        &mut self,
        identity: &str,
        per_minute: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        let capacity = f64::from(per_minute.max(1));
        let per_sec = capacity / 60.0;
        if self.buckets.len() > PRUNE_ABOVE {
            self.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_sec
                    < capacity
            });
        }
        let key = identity.to_ascii_lowercase();
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn wildcards_match_as_documented() {
        let p = pats(&["*@example.com", "bob@other.test"]);
        assert!(identity_allowed(&p, "alice@example.com"));
        assert!(identity_allowed(&p, "sip:Alice@EXAMPLE.com"));
        assert!(identity_allowed(&p, "bob@other.test"));
        assert!(!identity_allowed(&p, "alice@example.com.evil"));
        assert!(!identity_allowed(&p, "bobby@other.test"));
        assert!(!identity_allowed(&p, "alice@evil.test"));
        assert!(identity_allowed(&pats(&["*"]), "anyone"));
        assert!(!identity_allowed(&pats(&[]), "anyone"));
        assert!(identity_allowed(&pats(&["a*b*c"]), "axxbyyc"));
        assert!(!identity_allowed(&pats(&["a*b*c"]), "axxbyy"));
    }

    #[test]
    fn wildcard_backtracking_is_bounded() {
        let pattern = "*a".repeat(50) + "b";
        let text = "a".repeat(MAX_IDENTITY_LEN);
        let start = Instant::now();
        assert!(!identity_allowed(&[pattern], &text));
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn identities_are_checked() {
        assert_eq!(
            clean_identity("  alice@example.com "),
            Ok("alice@example.com")
        );
        assert_eq!(clean_identity(" "), Err(IdentityError::Empty));
        assert_eq!(clean_identity("a b"), Err(IdentityError::BadCharacter));
        assert_eq!(clean_identity("a\u{7}b"), Err(IdentityError::BadCharacter));
        assert_eq!(
            clean_identity(&"x".repeat(MAX_IDENTITY_LEN + 1)),
            Err(IdentityError::TooLong)
        );
    }

    #[test]
    fn lifetimes_follow_policy() {
        assert_eq!(grant_lifetime(None, 600, 1000, false), Ok(600));
        assert_eq!(grant_lifetime(Some(10), 600, 1000, false), Ok(10));
        assert_eq!(
            grant_lifetime(Some(0), 600, 1000, true),
            Err(LifetimeError::Zero)
        );
        assert_eq!(grant_lifetime(Some(2000), 600, 1000, true), Ok(1000));
        assert_eq!(
            grant_lifetime(Some(2000), 600, 1000, false),
            Err(LifetimeError::TooLong {
                requested: 2000,
                max: 1000
            })
        );
    }

    #[test]
    fn bucket_allows_burst_then_refills() {
        let mut rl = RateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..6 {
            assert!(rl.try_take("alice", 6, t0).is_ok());
        }
        let wait = rl.try_take("alice", 6, t0).unwrap_err();
        assert!(
            wait > Duration::from_secs(9) && wait <= Duration::from_secs(10),
            "{wait:?}"
        );
        // Other identities are independent; case does not split a bucket.
        assert!(rl.try_take("bob", 6, t0).is_ok());
        assert!(rl.try_take("ALICE", 6, t0).is_err());
        // One token every 10 s at 6 per minute.
        assert!(rl
            .try_take("alice", 6, t0 + Duration::from_secs(10))
            .is_ok());
        assert!(rl
            .try_take("alice", 6, t0 + Duration::from_secs(11))
            .is_err());
    }

    #[test]
    fn full_buckets_are_pruned() {
        let mut rl = RateLimiter::new();
        let t0 = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            let _ = rl.try_take(&format!("user{i}"), 60, t0);
        }
        assert_eq!(rl.tracked(), PRUNE_ABOVE + 1);
        let _ = rl.try_take("late", 60, t0 + Duration::from_secs(120));
        assert_eq!(rl.tracked(), 1);
    }
}
