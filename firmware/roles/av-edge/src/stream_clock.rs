//! When a TURN TCP/TLS connection is closed for holding a descriptor without using it,
//! decided without sockets: the connection task asks for the next deadline after every
//! frame and closes the connection when it passes.
//!
//! - The first complete request must arrive by the listener's first-request deadline
//!   (which also covered the TLS handshake): one stray byte holds nothing for long.
//! - A request must be authenticated within the authentication timeout of the accept:
//!   unauthenticated Binding requests do not keep a connection.
//! - A connection with neither an allocation nor a bound peer connection is closed after
//!   the idle timeout without a complete request. Only complete frames count, so a client
//!   trickling bytes (slowloris) is idle.
//!
//! A connection with an allocation lives as long as its allocation (the allocation's own
//! lifetime and refreshes bound it); a data connection after ConnectionBind as long as its
//! peer connection.

use std::time::Instant;

use crate::settings::StreamTimeouts;

/// Why a connection was closed at a deadline (logged at debug).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Expiry {
    #[error("no complete request by the first-request deadline")]
    FirstRequest,
    #[error("no authenticated request in time")]
    Authentication,
    #[error("idle without an allocation")]
    Idle,
}

#[derive(Debug, Clone)]
pub struct StreamClock {
    timeouts: StreamTimeouts,
    accepted: Instant,
    first_request_by: Instant,
    last_frame: Option<Instant>,
    authenticated: bool,
}

impl StreamClock {
    /// `first_request_by` is the listener's deadline for the connection's first stage.
    pub fn new(timeouts: StreamTimeouts, accepted: Instant, first_request_by: Instant) -> Self {
        StreamClock {
            timeouts,
            accepted,
            first_request_by,
            last_frame: None,
            authenticated: false,
        }
    }

    /// A complete frame (request, indication or ChannelData) arrived at `now`.
    pub fn frame(&mut self, now: Instant) {
        self.last_frame = Some(now);
    }

    /// A request on the connection was authenticated.
    pub fn authenticated(&mut self) {
        self.authenticated = true;
    }

    pub fn idle_timeout(&self) -> std::time::Duration {
        self.timeouts.idle
    }

    /// The next deadline and what it is for; `None` while the connection carries an
    /// allocation.
    pub fn deadline(&self, has_allocation: bool) -> Option<(Instant, Expiry)> {
        if has_allocation {
            return None;
        }
        let Some(last) = self.last_frame else {
            return Some((self.first_request_by, Expiry::FirstRequest));
        };
        let idle = (last + self.timeouts.idle, Expiry::Idle);
        if self.authenticated {
            return Some(idle);
        }
        let auth = (
            self.accepted + self.timeouts.authentication,
            Expiry::Authentication,
        );
        Some(if auth.0 <= idle.0 { auth } else { idle })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn clock(t0: Instant) -> StreamClock {
        StreamClock::new(
            StreamTimeouts {
                first_request: Duration::from_secs(10),
                authentication: Duration::from_secs(30),
                idle: Duration::from_secs(60),
            },
            t0,
            t0 + Duration::from_secs(10),
        )
    }

    #[test]
    fn the_first_request_deadline_holds_until_a_complete_frame() {
        let t0 = Instant::now();
        let c = clock(t0);
        assert_eq!(
            c.deadline(false),
            Some((t0 + Duration::from_secs(10), Expiry::FirstRequest))
        );
    }

    #[test]
    fn unauthenticated_requests_do_not_keep_the_connection() {
        let t0 = Instant::now();
        let mut c = clock(t0);
        for s in [1, 9, 18, 27] {
            c.frame(t0 + Duration::from_secs(s));
        }
        assert_eq!(
            c.deadline(false),
            Some((t0 + Duration::from_secs(30), Expiry::Authentication))
        );
    }

    #[test]
    fn an_authenticated_connection_without_allocation_is_closed_when_idle() {
        let t0 = Instant::now();
        let mut c = clock(t0);
        c.frame(t0 + Duration::from_secs(1));
        c.authenticated();
        c.frame(t0 + Duration::from_secs(100));
        assert_eq!(
            c.deadline(false),
            Some((t0 + Duration::from_secs(160), Expiry::Idle))
        );
        assert_eq!(c.deadline(true), None, "an allocation keeps it");
    }

    #[test]
    fn idle_before_authentication_closes_early_too() {
        let t0 = Instant::now();
        let mut c = StreamClock::new(
            StreamTimeouts {
                first_request: Duration::from_secs(10),
                authentication: Duration::from_secs(300),
                idle: Duration::from_secs(5),
            },
            t0,
            t0 + Duration::from_secs(10),
        );
        c.frame(t0 + Duration::from_secs(2));
        assert_eq!(
            c.deadline(false),
            Some((t0 + Duration::from_secs(7), Expiry::Idle))
        );
    }
}
