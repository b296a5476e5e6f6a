//! Loss, one-way latency percentiles and interarrival jitter.

/// Latency samples in microseconds, and the RFC 3550 jitter estimate per flow.
#[derive(Debug, Default, Clone)]
pub struct Direction {
    pub sent: u64,
    pub received: u64,
    pub latencies_us: Vec<u32>,
    /// Sum over flows of the final jitter estimate, in microseconds (for the mean).
    pub jitter_sum_us: f64,
    pub jitter_flows: u64,
    /// SRTP mode: packets that decrypted, authenticated and matched what was sent.
    pub srtp_verified: u64,
    /// SRTP mode: packets refused by SRTP or different from what was sent.
    pub srtp_failures: u64,
}

impl Direction {
    pub fn merge(&mut self, other: Direction) {
        self.sent += other.sent;
        self.received += other.received;
        self.latencies_us.extend(other.latencies_us);
        self.jitter_sum_us += other.jitter_sum_us;
        self.jitter_flows += other.jitter_flows;
        self.srtp_verified += other.srtp_verified;
        self.srtp_failures += other.srtp_failures;
    }

    pub fn loss_percent(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * self.sent.saturating_sub(self.received) as f64 / self.sent as f64
    }

    /// The `p`-th percentile (0..=100) of the latencies, in microseconds.
    pub fn percentile(&mut self, p: f64) -> Option<u32> {
        if self.latencies_us.is_empty() {
            return None;
        }
        self.latencies_us.sort_unstable();
        let rank = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
        self.latencies_us
            .get(rank.min(self.latencies_us.len() - 1))
            .copied()
    }

    pub fn mean_jitter_us(&self) -> f64 {
        if self.jitter_flows == 0 {
            0.0
        } else {
            self.jitter_sum_us / self.jitter_flows as f64
        }
    }
}

/// RFC 3550 A.8: J += (|D| - J) / 16, D the change in transit time between packets.
#[derive(Debug, Default, Clone, Copy)]
pub struct Jitter {
    last_transit: Option<i64>,
    pub value: f64,
}

impl Jitter {
    pub fn update(&mut self, transit_us: i64) {
        if let Some(last) = self.last_transit {
            let d = (transit_us - last).abs() as f64;
            self.value += (d - self.value) / 16.0;
        }
        self.last_transit = Some(transit_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_loss() {
        let mut d = Direction {
            sent: 200,
            received: 100,
            latencies_us: (1..=100).rev().collect(),
            ..Default::default()
        };
        assert_eq!(d.percentile(50.0), Some(51));
        assert_eq!(d.percentile(99.0), Some(99));
        assert_eq!(d.percentile(100.0), Some(100));
        assert!((d.loss_percent() - 50.0).abs() < 1e-9);
        assert_eq!(Direction::default().percentile(50.0), None);
    }

    #[test]
    fn jitter_follows_rfc3550() {
        let mut j = Jitter::default();
        j.update(100);
        assert_eq!(j.value, 0.0);
        j.update(116);
        assert!((j.value - 1.0).abs() < 1e-9);
        let mut steady = Jitter::default();
        for _ in 0..10 {
            steady.update(50);
        }
        assert_eq!(steady.value, 0.0);
    }
}
