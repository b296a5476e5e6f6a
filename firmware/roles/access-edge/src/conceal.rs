//! Answers that would tell an outsider whether an internal address exists.
//!
//! A Director answers "no such user" (404, 410, 484, 604) differently from "offline" (480),
//! each with its own reason phrase and Warning. Relayed to a federated or public-provider
//! peer, that difference lets anyone enumerate the organisation's addresses, so the edge
//! answers all of them with one response it builds itself, identical to its own 480.

/// The uniform answer.
pub const UNIFORM_STATUS: u16 = 480;
pub const UNIFORM_REASON: &str = "Temporarily Unavailable";

/// Final answers that tell "exists" from "does not exist" (480 included: left alone, its
/// headers would differ from the rewritten ones).
pub fn reveals_user(code: u16) -> bool {
    matches!(code, 404 | 410 | 480 | 484 | 604)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_existence_answers_are_rewritten() {
        let rewritten: Vec<u16> = (100..700).filter(|c| reveals_user(*c)).collect();
        assert_eq!(rewritten, vec![404, 410, 480, 484, 604]);
        // Answers that say nothing about the address (or are the caller's business) pass.
        for code in [200, 401, 403, 407, 486, 487, 500, 503, 603] {
            assert!(!reveals_user(code), "{code}");
        }
    }
}
