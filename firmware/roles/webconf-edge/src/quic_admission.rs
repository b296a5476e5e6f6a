//! The first decision on a QUIC connection attempt, taken before the edge keeps any state
//! for it: refuse, answer with a stateless Retry, or let the handshake begin.
//!
//! A Retry makes the client prove it receives packets at its source address before the
//! edge spends a handshake on it (RFC 9000, 8.1.2), so Initials from spoofed sources cost
//! one small packet each and leave nothing behind. Only attempts that pass go on to the
//! global cap on handshakes in progress ([`crate::limits::Gate`]).

/// What the edge knows about an attempt when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempt {
    /// The role is draining: no new clients.
    pub draining: bool,
    /// The Initial carried a valid token: the address was validated.
    pub address_validated: bool,
    /// A Retry is still allowed (quinn: none was sent for this attempt yet).
    pub may_retry: bool,
}

/// What to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstStep {
    /// Refuse at once (CONNECTION_REFUSED) rather than let the client time out.
    Refuse,
    /// Answer with a stateless Retry.
    Retry,
    /// Begin the handshake if a place under the handshake cap is free.
    Handshake,
}

pub(crate) fn first_step(attempt: Attempt, retry_enabled: bool) -> FirstStep {
    if attempt.draining {
        FirstStep::Refuse
    } else if retry_enabled && !attempt.address_validated && attempt.may_retry {
        FirstStep::Retry
    } else {
        FirstStep::Handshake
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(draining: bool, address_validated: bool, may_retry: bool) -> Attempt {
        Attempt {
            draining,
            address_validated,
            may_retry,
        }
    }

    #[test]
    fn an_unvalidated_address_is_sent_a_retry_first() {
        assert_eq!(
            first_step(attempt(false, false, true), true),
            FirstStep::Retry
        );
        assert_eq!(
            first_step(attempt(false, true, false), true),
            FirstStep::Handshake,
            "back with the Retry token"
        );
    }

    #[test]
    fn without_retry_every_attempt_goes_to_the_handshake() {
        assert_eq!(
            first_step(attempt(false, false, true), false),
            FirstStep::Handshake
        );
    }

    #[test]
    fn a_second_retry_is_never_sent() {
        // quinn cannot send a second Retry; the handshake then validates the path itself.
        assert_eq!(
            first_step(attempt(false, false, false), true),
            FirstStep::Handshake
        );
    }

    #[test]
    fn draining_refuses_everything() {
        for validated in [false, true] {
            for may_retry in [false, true] {
                for retry in [false, true] {
                    assert_eq!(
                        first_step(attempt(true, validated, may_retry), retry),
                        FirstStep::Refuse
                    );
                }
            }
        }
    }
}
