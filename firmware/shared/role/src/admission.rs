//! What a listener decides without sockets: whether a new connection fits under the
//! listener's cap and its source's share, and how long to pause after a failed accept.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// Connections one listener holds at once, unless its role says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 65_536;
/// Connections one source holds at once on one listener. Generous: the SIP benchmark opens
/// 10,000 TLS connections from one address, the TURN and webconf benchmarks many from
/// 127.0.0.1; a role tightens it for internet-facing ports.
pub const DEFAULT_MAX_PER_SOURCE: usize = 32_768;
/// Time a client has to complete its handshake or first request.
pub const DEFAULT_FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a served connection may carry no data in either direction before it is closed.
/// Ten minutes covers the keep-alives of SIP (CRLF every few minutes), the refreshes of a
/// TURN allocation of the default lifetime and the web conferencing links' heartbeats; a role
/// whose protocol may rest longer sets its own.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// A listener's limits, chosen by the role that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    pub max_connections: usize,
    /// Per IPv4 address, per IPv6 /64 (one subscriber's usual allocation).
    pub max_per_source: usize,
    /// Deadline for the handshake or first request, from accept.
    pub first_request_timeout: Duration,
    /// After the first request: how long a connection may carry no data before it is
    /// closed; `None` for never.
    pub idle_timeout: Option<Duration>,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_source: DEFAULT_MAX_PER_SOURCE,
            first_request_timeout: DEFAULT_FIRST_REQUEST_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// Who a connection is counted against: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(Ipv4Addr),
    /// The upper 64 bits of the address.
    V6(u64),
}

impl Source {
    pub fn of(ip: IpAddr) -> Self {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        match ip.to_canonical() {
            IpAddr::V4(v4) => Source::V4(v4),
            IpAddr::V6(v6) => Source::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the listener holds its maximum of {0} connections")]
    ListenerFull(usize),
    #[error("the source holds its maximum of {0} connections")]
    SourceFull(usize),
    #[error("the role holds its whole descriptor budget of {0} connections")]
    RoleBudgetFull(usize),
    #[error("the source holds its share of {0} connections of the role's budget")]
    SourceBudgetFull(usize),
}

/// Open connections, in total and by source.
#[derive(Debug)]
pub struct Admission {
    max_connections: usize,
    max_per_source: usize,
    open: usize,
    by_source: HashMap<Source, usize>,
}

impl Admission {
    pub fn new(limits: &ListenerLimits) -> Self {
        Self {
            max_connections: limits.max_connections,
            max_per_source: limits.max_per_source,
            open: 0,
            by_source: HashMap::new(),
        }
    }

    /// New limits apply to connections admitted from now on; none is closed for them.
    pub fn set_limits(&mut self, limits: &ListenerLimits) {
        self.max_connections = limits.max_connections;
        self.max_per_source = limits.max_per_source;
    }

    /// Counts a new connection from `ip`, or says why it does not fit.
    pub fn admit(&mut self, ip: IpAddr) -> Result<Source, Refusal> {
        if self.open >= self.max_connections {
            return Err(Refusal::ListenerFull(self.max_connections));
        }
        let source = Source::of(ip);
        let n = self.by_source.entry(source).or_insert(0);
        if *n >= self.max_per_source {
            if *n == 0 {
                self.by_source.remove(&source);
            }
            return Err(Refusal::SourceFull(self.max_per_source));
        }
        *n += 1;
        self.open += 1;
        Ok(source)
    }

    /// A connection admitted for `source` ended.
    pub fn release(&mut self, source: Source) {
        if let Some(n) = self.by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.by_source.remove(&source);
            }
            self.open = self.open.saturating_sub(1);
        }
    }

    pub fn open(&self) -> usize {
        self.open
    }

    /// Sources with at least one open connection.
    pub fn sources(&self) -> usize {
        self.by_source.len()
    }
}

/// The pause after a failed accept (out of descriptors and the like), doubling from
/// [`AcceptBackoff::FIRST`] to [`AcceptBackoff::MAX`]; and when to log, so a listener that
/// keeps failing writes one line per [`AcceptBackoff::LOG_EVERY`], not one per attempt.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    failures: u32,
    last_log: Option<Instant>,
    suppressed: u64,
}

/// What to do after a failed accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffStep {
    pub pause: Duration,
    /// `Some(n)`: log now, mentioning the `n` failures not logged since the last line.
    pub log: Option<u64>,
}

impl AcceptBackoff {
    pub const FIRST: Duration = Duration::from_millis(10);
    pub const MAX: Duration = Duration::from_secs(1);
    pub const LOG_EVERY: Duration = Duration::from_secs(10);

    pub fn failed(&mut self, now: Instant) -> BackoffStep {
        let pause = Self::FIRST
            .saturating_mul(1u32 << self.failures.min(16))
            .min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        let log = match self.last_log {
            Some(t) if now.duration_since(t) < Self::LOG_EVERY => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_log = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        };
        BackoffStep { pause, log }
    }

    /// An accept succeeded: the next failure pauses briefly again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize, max_per_source: usize) -> ListenerLimits {
        ListenerLimits {
            max_connections,
            max_per_source,
            ..ListenerLimits::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_listener_cap_holds_and_frees_on_release() {
        let mut a = Admission::new(&limits(2, 10));
        let first = a.admit(ip("192.0.2.1")).unwrap_or_else(|e| panic!("{e}"));
        a.admit(ip("192.0.2.2")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.admit(ip("192.0.2.3")), Err(Refusal::ListenerFull(2)));
        a.release(first);
        assert_eq!(a.open(), 1);
        assert!(a.admit(ip("192.0.2.3")).is_ok());
    }

    #[test]
    fn each_ipv4_address_has_its_own_share() {
        let mut a = Admission::new(&limits(100, 2));
        for _ in 0..2 {
            assert!(a.admit(ip("192.0.2.1")).is_ok());
        }
        assert_eq!(a.admit(ip("192.0.2.1")), Err(Refusal::SourceFull(2)));
        assert!(
            a.admit(ip("192.0.2.2")).is_ok(),
            "a neighbour in the /24 is not counted"
        );
        assert_eq!(a.sources(), 2);
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let mut a = Admission::new(&limits(100, 2));
        assert!(a.admit(ip("2001:db8:1:2::1")).is_ok());
        assert!(a.admit(ip("2001:db8:1:2:ffff::9")).is_ok());
        assert_eq!(
            a.admit(ip("2001:db8:1:2:abcd::1")),
            Err(Refusal::SourceFull(2)),
            "same /64"
        );
        assert!(a.admit(ip("2001:db8:1:3::1")).is_ok(), "next /64");
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        assert_eq!(
            Source::of(ip("::ffff:192.0.2.7")),
            Source::of(ip("192.0.2.7"))
        );
    }

    #[test]
    fn release_forgets_empty_sources_and_ignores_unknown_ones() {
        let mut a = Admission::new(&limits(10, 10));
        let s = a.admit(ip("192.0.2.1")).unwrap_or_else(|e| panic!("{e}"));
        a.release(s);
        a.release(s);
        a.release(Source::of(ip("192.0.2.9")));
        assert_eq!((a.open(), a.sources()), (0, 0));
    }

    #[test]
    fn lower_limits_apply_to_new_connections_only() {
        let mut a = Admission::new(&limits(10, 10));
        for _ in 0..3 {
            assert!(a.admit(ip("192.0.2.1")).is_ok());
        }
        a.set_limits(&limits(10, 2));
        assert_eq!(a.open(), 3);
        assert_eq!(a.admit(ip("192.0.2.1")), Err(Refusal::SourceFull(2)));
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling_and_resets_on_success() {
        let mut b = AcceptBackoff::default();
        let now = Instant::now();
        let pauses: Vec<_> = (0..10).map(|_| b.failed(now).pause).collect();
        assert_eq!(pauses[0], AcceptBackoff::FIRST);
        assert_eq!(pauses[1], AcceptBackoff::FIRST * 2);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(
            *pauses.last().unwrap_or(&Duration::ZERO),
            AcceptBackoff::MAX
        );
        b.succeeded();
        assert_eq!(b.failed(now).pause, AcceptBackoff::FIRST);
    }

    #[test]
    fn failures_are_logged_once_per_period_with_the_count_left_out() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        assert_eq!(b.failed(t0).log, Some(0));
        assert_eq!(b.failed(t0 + Duration::from_secs(1)).log, None);
        assert_eq!(b.failed(t0 + Duration::from_secs(2)).log, None);
        assert_eq!(b.failed(t0 + AcceptBackoff::LOG_EVERY).log, Some(2));
    }
}
