//! The idle deadline's decision, without sockets: given how long a connection has been
//! quiet, close it now or look again later.

use std::time::Duration;

/// What the idle watch does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStep {
    /// Quiet for the whole idle time: close the connection.
    Close,
    /// Look again after this long (when the deadline would fall if nothing is sent).
    CheckAfter(Duration),
    /// The connection is gone or cannot be read; nothing to watch.
    Stop,
}

/// Never look more often than this, so a busy connection costs one probe per interval.
pub const MIN_CHECK: Duration = Duration::from_millis(100);

/// `quiet`: time since the last data (`None` when the connection is no longer there).
pub fn step(quiet: Option<Duration>, limit: Duration) -> IdleStep {
    match quiet {
        None => IdleStep::Stop,
        Some(q) if q >= limit => IdleStep::Close,
        Some(q) => IdleStep::CheckAfter((limit - q).max(MIN_CHECK)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn a_connection_quiet_for_the_limit_is_closed() {
        assert_eq!(step(Some(LIMIT), LIMIT), IdleStep::Close);
        assert_eq!(step(Some(LIMIT * 2), LIMIT), IdleStep::Close);
    }

    #[test]
    fn a_recently_active_connection_is_looked_at_when_its_deadline_would_fall() {
        assert_eq!(
            step(Some(Duration::from_secs(45)), LIMIT),
            IdleStep::CheckAfter(Duration::from_secs(15))
        );
        assert_eq!(
            step(Some(LIMIT - Duration::from_millis(1)), LIMIT),
            IdleStep::CheckAfter(MIN_CHECK)
        );
    }

    #[test]
    fn a_vanished_connection_is_not_watched() {
        assert_eq!(step(None, LIMIT), IdleStep::Stop);
    }
}
