//! When a pending client transaction gives up: Timer B/F for every request, Timer C for
//! proxied INVITEs (RFC 3261 16.6 step 11 and 16.8). Pure decisions over instants, so the
//! sweep stays a loop and the rules are tested without sockets or sleeping.

use std::time::{Duration, Instant};

/// The instants a client transaction's timers run from.
#[derive(Debug, Clone, Copy)]
pub struct TxnClock {
    pub created: Instant,
    pub is_invite: bool,
    /// The latest provisional answer (101-199): it stops Timer B and restarts Timer C.
    pub last_provisional: Option<Instant>,
    /// When the branch was cancelled (by the caller, or by Timer C).
    pub cancelled: Option<Instant>,
}

impl TxnClock {
    pub fn new(created: Instant, is_invite: bool) -> Self {
        TxnClock {
            created,
            is_invite,
            last_provisional: None,
            cancelled: None,
        }
    }
}

/// The configured durations.
#[derive(Debug, Clone, Copy)]
pub struct TimerLimits {
    /// Timer B/F (64*T1 by default).
    pub transaction: Duration,
    /// Timer C (more than 3 minutes by default).
    pub timer_c: Duration,
}

/// What the proxy must do for a transaction still without a final answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Timer C fired on a ringing INVITE: CANCEL the branch and wait for its 487.
    Cancel,
    /// Give up: answer 408 upstream as if the next hop had sent it.
    Timeout,
}

pub fn due(clock: &TxnClock, now: Instant, limits: &TimerLimits) -> Option<Expiry> {
    let since = |t: Instant| now.saturating_duration_since(t);
    if !clock.is_invite {
        return (since(clock.created) > limits.transaction).then_some(Expiry::Timeout);
    }
    if let Some(at) = clock.cancelled {
        // A cancelled branch owes us a 487; a next hop that never sends it must not keep
        // the caller waiting longer than a transaction lasts.
        return (since(at) > limits.transaction).then_some(Expiry::Timeout);
    }
    match clock.last_provisional {
        // Ringing: only Timer C runs, counted from the latest provisional answer.
        Some(at) => (since(at) > limits.timer_c).then_some(Expiry::Cancel),
        // Nothing back yet: Timer B and Timer C both run; either one means 408 (16.8: "as if
        // the client transaction had received a 408"). No CANCEL before a provisional (9.1).
        None => (since(clock.created) > limits.transaction.min(limits.timer_c))
            .then_some(Expiry::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TimerLimits = TimerLimits {
        transaction: Duration::from_secs(32),
        timer_c: Duration::from_secs(181),
    };

    fn at(base: Instant, secs: u64) -> Instant {
        base + Duration::from_secs(secs)
    }

    #[test]
    fn non_invite_times_out_after_timer_f_only() {
        let t0 = Instant::now();
        let mut c = TxnClock::new(t0, false);
        c.last_provisional = Some(at(t0, 30));
        assert_eq!(due(&c, at(t0, 32), &LIMITS), None);
        assert_eq!(due(&c, at(t0, 33), &LIMITS), Some(Expiry::Timeout));
    }

    #[test]
    fn silent_invite_gets_408_at_the_shorter_of_timer_b_and_timer_c() {
        let t0 = Instant::now();
        let c = TxnClock::new(t0, true);
        assert_eq!(due(&c, at(t0, 32), &LIMITS), None);
        assert_eq!(due(&c, at(t0, 33), &LIMITS), Some(Expiry::Timeout));
        let short_c = TimerLimits {
            transaction: Duration::from_secs(32),
            timer_c: Duration::from_secs(2),
        };
        assert_eq!(due(&c, at(t0, 2), &short_c), None);
        assert_eq!(due(&c, at(t0, 3), &short_c), Some(Expiry::Timeout));
    }

    #[test]
    fn ringing_invite_outlives_timer_b_and_each_provisional_restarts_timer_c() {
        let t0 = Instant::now();
        let mut c = TxnClock::new(t0, true);
        c.last_provisional = Some(at(t0, 1));
        assert_eq!(due(&c, at(t0, 100), &LIMITS), None, "Timer B is stopped");
        assert_eq!(due(&c, at(t0, 183), &LIMITS), Some(Expiry::Cancel));
        c.last_provisional = Some(at(t0, 150));
        assert_eq!(due(&c, at(t0, 183), &LIMITS), None, "restarted at 150");
        assert_eq!(due(&c, at(t0, 331), &LIMITS), None);
        assert_eq!(due(&c, at(t0, 332), &LIMITS), Some(Expiry::Cancel));
    }

    #[test]
    fn cancelled_branch_without_487_gives_up_after_a_transaction_time() {
        let t0 = Instant::now();
        let mut c = TxnClock::new(t0, true);
        c.last_provisional = Some(t0);
        c.cancelled = Some(at(t0, 182));
        // Cancelled once: no second CANCEL, whatever provisional comes after.
        c.last_provisional = Some(at(t0, 190));
        assert_eq!(due(&c, at(t0, 214), &LIMITS), None);
        assert_eq!(due(&c, at(t0, 215), &LIMITS), Some(Expiry::Timeout));
    }

    #[test]
    fn clock_going_backwards_never_fires() {
        let t0 = Instant::now() + Duration::from_secs(1000);
        let c = TxnClock::new(t0, true);
        assert_eq!(due(&c, Instant::now(), &LIMITS), None);
    }
}
