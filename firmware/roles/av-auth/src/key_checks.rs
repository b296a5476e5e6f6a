//! A bound on API-key checks running at once. Each argon2 check holds about 19 MiB for its
//! duration, so without a bound a burst of requests with wrong keys (never remembered as
//! verified) takes memory in proportion to the burst. Past the bound a request is answered
//! at once (503 with Retry-After) rather than queued: a queue would only move the burst.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Checks in flight and the most seen at once (the counter tests read).
#[derive(Debug, Default)]
pub struct KeyCheckGate {
    in_flight: AtomicU64,
    peak: AtomicU64,
}

/// One check's place; given back when dropped (also if the check's thread panics).
#[derive(Debug)]
pub struct KeyCheckPermit {
    gate: Arc<KeyCheckGate>,
}

impl KeyCheckGate {
    /// A place for one more check if fewer than `limit` run now.
    pub fn try_enter(self: &Arc<Self>, limit: u32) -> Option<KeyCheckPermit> {
        let limit = u64::from(limit.max(1));
        let mut now = self.in_flight.load(Ordering::Acquire);
        loop {
            if now >= limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                now,
                now + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => now = actual,
            }
        }
        self.peak.fetch_max(now + 1, Ordering::AcqRel);
        Some(KeyCheckPermit { gate: self.clone() })
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The most checks that ever ran at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }
}

impl Drop for KeyCheckPermit {
    fn drop(&mut self) {
        self.gate.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_and_given_back() {
        let gate = Arc::new(KeyCheckGate::default());
        let a = gate.try_enter(2).unwrap();
        let b = gate.try_enter(2).unwrap();
        assert!(gate.try_enter(2).is_none(), "a third waits for nobody");
        assert_eq!(gate.in_flight(), 2);
        drop(a);
        let c = gate.try_enter(2).unwrap();
        drop((b, c));
        assert_eq!((gate.in_flight(), gate.peak()), (0, 2));
        // A limit of 0 is not valid configuration; it still lets one check run.
        assert!(gate.try_enter(0).is_some());
    }
}
