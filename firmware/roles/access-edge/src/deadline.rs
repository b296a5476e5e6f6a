//! When a connection's next read gives up, sans-IO: a silent connection is closed after the
//! idle timeout, and a message that has begun must be whole within the message timeout
//! from its first byte, however slowly its bytes trickle in (slowloris).

use std::time::Duration;

use tokio::time::Instant;

/// Which deadline a read waits under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Nothing is pending: the connection idles.
    Idle,
    /// A message has begun and is not complete yet.
    Message,
}

/// The deadline of the next read: `message_started` is when the pending partial message
/// began (None between messages). Bytes arriving never move a message's deadline.
pub fn read_deadline(
    now: Instant,
    idle: Duration,
    message_started: Option<Instant>,
    message_timeout: Duration,
) -> (Instant, Expiry) {
    let idle_at = now + idle;
    match message_started {
        Some(started) if started + message_timeout < idle_at => {
            (started + message_timeout, Expiry::Message)
        }
        _ => (idle_at, Expiry::Idle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_begun_message_keeps_its_first_deadline() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(300);
        let msg = Duration::from_secs(20);
        assert_eq!(
            read_deadline(t0, idle, None, msg),
            (t0 + idle, Expiry::Idle)
        );
        // Bytes keep arriving every second: the deadline stays 20 s after the first one.
        for s in 1..20 {
            let now = t0 + Duration::from_secs(s);
            assert_eq!(
                read_deadline(now, idle, Some(t0), msg),
                (t0 + msg, Expiry::Message)
            );
        }
        // An idle timeout shorter than what is left of the message's time wins.
        let short = Duration::from_secs(5);
        assert_eq!(
            read_deadline(t0, short, Some(t0), msg),
            (t0 + short, Expiry::Idle)
        );
    }
}
