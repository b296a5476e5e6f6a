//! The per-allocation bandwidth cap: a token bucket in bytes with one second of burst.
//!
//! The relay threads drop a datagram the bucket cannot pay for (UDP media tolerates loss,
//! queueing would only add latency). Byte streams (RFC 6062 TCP relays on the control
//! plane) wait instead: `take_or_wait` says how long until the bytes are paid for, so the
//! relay stops reading and TCP's own flow control slows the sender.

use std::time::{Duration, Instant};

/// A token bucket in bytes per second; it starts full and holds at most one second's
/// worth. A rate of 0 means uncapped.
#[derive(Debug)]
pub struct Bucket {
    rate: u64,
    tokens: u64,
    last: Instant,
}

impl Bucket {
    pub fn new(rate: u64, now: Instant) -> Self {
        Bucket {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Bytes per second; 0 when uncapped.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    #[inline]
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        let refill = (elapsed.as_nanos() as u64).saturating_mul(self.rate) / 1_000_000_000;
        if refill > 0 {
            self.tokens = (self.tokens + refill).min(self.rate);
            self.last = now;
        }
    }

    /// Takes `bytes` if the cap allows it.
    #[inline]
    pub fn take(&mut self, bytes: usize, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        self.refill(now);
        let need = bytes as u64;
        if self.tokens >= need {
            self.tokens -= need;
            true
        } else {
            false
        }
    }

    /// Takes `bytes` if the cap allows it now, else says how long until it will (nothing
    /// is taken then). More than one second's worth can never be paid for: callers split
    /// larger amounts (`Err(Duration::MAX)` tells them they did not).
    pub fn take_or_wait(&mut self, bytes: usize, now: Instant) -> Result<(), Duration> {
        if self.take(bytes, now) {
            return Ok(());
        }
        let need = bytes as u64;
        if need > self.rate {
            return Err(Duration::MAX);
        }
        let missing = need - self.tokens;
        // Rounded up, and measured from the last refill, so the wait is never too short.
        let nanos = missing.saturating_mul(1_000_000_000).div_ceil(self.rate);
        let due = self.last + Duration::from_nanos(nanos);
        Err(due
            .saturating_duration_since(now)
            .max(Duration::from_millis(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncapped_always_pays() {
        let now = Instant::now();
        let mut b = Bucket::new(0, now);
        assert!(b.take(usize::MAX, now));
        assert_eq!(b.take_or_wait(1 << 30, now), Ok(()));
    }

    #[test]
    fn burst_of_one_second_then_refill_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, t0);
        assert!(b.take(1000, t0), "starts with one second's worth");
        assert!(!b.take(1, t0));
        assert!(b.take(500, t0 + Duration::from_millis(500)));
        assert!(!b.take(100, t0 + Duration::from_millis(500)));
        // Idle time never builds more than one second of burst.
        let later = t0 + Duration::from_secs(10);
        assert!(b.take(1000, later));
        assert!(!b.take(1, later));
    }

    #[test]
    fn wait_is_the_time_until_the_bytes_are_paid_for() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000, t0);
        assert_eq!(b.take_or_wait(1000, t0), Ok(()));
        let wait = b.take_or_wait(250, t0).err();
        assert_eq!(wait, Some(Duration::from_millis(250)));
        // After that wait the same request is paid for.
        let Some(wait) = wait else { return };
        assert_eq!(b.take_or_wait(250, t0 + wait), Ok(()));
        assert_eq!(b.take_or_wait(2000, t0 + wait), Err(Duration::MAX));
    }
}
