//! Bounded loops: at most `rate` per second, for at most `seconds`, at most `max` in all.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub rate: u64,
    pub seconds: f64,
    pub max: u64,
}

impl Budget {
    /// How many may have been sent `elapsed` into the run (0 once the run is over).
    pub fn allowed(&self, elapsed: Duration) -> u64 {
        let t = elapsed.as_secs_f64();
        if t >= self.seconds {
            return 0;
        }
        ((t * self.rate as f64) as u64 + 1).min(self.max)
    }

    pub fn over(&self, start: Instant, done: u64) -> bool {
        done >= self.max || start.elapsed().as_secs_f64() >= self.seconds
    }
}

/// Calls `send` until the budget is spent, pacing to its rate; returns how many were sent.
pub fn paced(budget: Budget, mut send: impl FnMut(u64)) -> u64 {
    let start = Instant::now();
    let mut done = 0u64;
    while !budget.over(start, done) {
        let allowed = budget.allowed(start.elapsed());
        if done >= allowed {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        while done < allowed {
            send(done);
            done += 1;
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_grows_with_time_up_to_the_cap_and_stops_at_the_end() {
        let b = Budget {
            rate: 100,
            seconds: 2.0,
            max: 150,
        };
        assert_eq!(b.allowed(Duration::ZERO), 1);
        assert_eq!(b.allowed(Duration::from_millis(500)), 51);
        assert_eq!(b.allowed(Duration::from_millis(1900)), 150);
        assert_eq!(b.allowed(Duration::from_secs(2)), 0);
    }

    #[test]
    fn a_paced_loop_stops_at_its_count() {
        let b = Budget {
            rate: 1_000_000,
            seconds: 30.0,
            max: 500,
        };
        let mut seen = Vec::new();
        assert_eq!(paced(b, |i| seen.push(i)), 500);
        assert_eq!(seen.len(), 500);
        assert_eq!(seen[499], 499);
    }
}
