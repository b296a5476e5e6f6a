//! The limits both listeners run with.

use std::time::Duration;

use edged_role::ListenerLimits;

/// Time a client gets to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once per listener: past it a new connection is closed at once
/// rather than starving the established ones of descriptors and memory.
pub const MAX_CONNECTIONS: usize = 4096;
/// An idle connection is closed after this long (Directors keep SERVICE connections open
/// and send CRLF keep-alives well within it).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Caps and handshake deadline of each listener (the internal side: no per-source share
/// beyond the listener's own cap, Directors come from a few addresses).
pub fn listener_limits() -> ListenerLimits {
    ListenerLimits {
        max_connections: MAX_CONNECTIONS,
        max_per_source: MAX_CONNECTIONS,
        first_request_timeout: HANDSHAKE_TIMEOUT,
        idle_timeout: Some(IDLE_TIMEOUT),
    }
}
