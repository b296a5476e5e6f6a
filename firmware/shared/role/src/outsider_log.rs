//! Logging of events an outsider can trigger (a failed TLS handshake, a refused connection,
//! a malformed request, a failed authentication) without letting the outsider fill the log.
//!
//! Each event is logged at debug with its details ([`outsider_debug!`](crate::outsider_debug))
//! and counted by kind; at most one info line per kind and [`INTERVAL`] sums them up:
//! "312 failed TLS handshakes from 57 sources in the last 10 s". The counting is the sans-IO
//! [`Tally`]; a summary is written when the next event of its kind comes after the
//! interval, or by edged's periodic [`flush`], whichever is first.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::admission::Source;

/// The period of the summaries.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Distinct sources remembered per kind and interval; beyond it the summary says "at least".
pub const MAX_SOURCES: usize = 4096;

/// One kind of event, under the log target of the role that counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind {
    pub target: &'static str,
    /// Plural, as the summary names it: "failed TLS handshakes".
    pub what: &'static str,
}

/// What one interval of one kind adds up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub kind: Kind,
    pub events: u64,
    pub sources: usize,
    /// More sources than [`MAX_SOURCES`] were seen: `sources` is a lower bound.
    pub more_sources: bool,
    pub over: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} from {}{} source(s) in the last {} s",
            self.events,
            self.kind.what,
            if self.more_sources { "at least " } else { "" },
            self.sources,
            self.over.as_secs()
        )
    }
}

#[derive(Debug)]
struct Window {
    started: Instant,
    events: u64,
    sources: HashSet<Source>,
    more_sources: bool,
}

/// Events counted per kind over windows of `interval`.
#[derive(Debug)]
pub struct Tally {
    interval: Duration,
    windows: HashMap<Kind, Window>,
}

impl Tally {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            windows: HashMap::new(),
        }
    }

    /// Counts one event; returns the summary of the kind's previous window when that one
    /// is over (the new event then opens the next window).
    pub fn note(&mut self, kind: Kind, source: IpAddr, now: Instant) -> Option<Summary> {
        let closed = match self.windows.get(&kind) {
            Some(w) if now.saturating_duration_since(w.started) >= self.interval => self
                .windows
                .remove(&kind)
                .map(|w| summary(kind, w, self.interval)),
            _ => None,
        };
        let w = self.windows.entry(kind).or_insert_with(|| Window {
            started: now,
            events: 0,
            sources: HashSet::new(),
            more_sources: false,
        });
        w.events += 1;
        let source = Source::of(source);
        if w.sources.len() < MAX_SOURCES {
            w.sources.insert(source);
        } else if !w.sources.contains(&source) {
            w.more_sources = true;
        }
        closed
    }

    /// The summaries of every window that is over at `now`, which are forgotten.
    pub fn due(&mut self, now: Instant) -> Vec<Summary> {
        let over: Vec<Kind> = self
            .windows
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.started) >= self.interval)
            .map(|(k, _)| *k)
            .collect();
        let mut out: Vec<Summary> = over
            .into_iter()
            .filter_map(|k| {
                self.windows
                    .remove(&k)
                    .map(|w| summary(k, w, self.interval))
            })
            .collect();
        out.sort_by_key(|s| (s.kind.target, s.kind.what));
        out
    }
}

fn summary(kind: Kind, w: Window, over: Duration) -> Summary {
    Summary {
        kind,
        events: w.events,
        sources: w.sources.len(),
        more_sources: w.more_sources,
        over,
    }
}

fn tally() -> &'static Mutex<Tally> {
    static TALLY: OnceLock<Mutex<Tally>> = OnceLock::new();
    TALLY.get_or_init(|| Mutex::new(Tally::new(INTERVAL)))
}

/// Counts an event of `what` from `source` under `target`, writing the kind's summary
/// when its interval is over. Called by [`outsider_debug!`](crate::outsider_debug).
pub fn note(target: &'static str, what: &'static str, source: IpAddr) {
    let closed = tally().lock().unwrap_or_else(PoisonError::into_inner).note(
        Kind { target, what },
        source,
        Instant::now(),
    );
    if let Some(s) = closed {
        write(&s);
    }
}

/// Writes the summaries whose interval is over; edged calls it every second or so, so a
/// burst that stops is summed up too.
pub fn flush() {
    let due = tally()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .due(Instant::now());
    for s in &due {
        write(s);
    }
}

fn write(s: &Summary) {
    // A log target must be a literal, one per role (see edged_config::LOG_TARGETS).
    let (what, events, sources) = (s.kind.what, s.events, s.sources);
    match s.kind.target {
        "access_edge" => tracing::info!(target: "access_edge", what, events, sources, "{s}"),
        "webconf_edge" => tracing::info!(target: "webconf_edge", what, events, sources, "{s}"),
        "av_edge" => tracing::info!(target: "av_edge", what, events, sources, "{s}"),
        "av_auth" => tracing::info!(target: "av_auth", what, events, sources, "{s}"),
        _ => tracing::info!(target: "edged", what, events, sources, "{s}"),
    }
}

/// Logs an event an outsider can trigger at debug, and counts it for the summary at info:
///
/// ```ignore
/// edged_role::outsider_debug!(target: "av_auth", "failed TLS handshakes", peer.ip(),
///     %peer, error = %e, "TLS handshake failed");
/// ```
///
/// The target must be a string literal naming a role (or `edged`); the second argument is
/// the kind, plural, as the summary line names it; the third the source address; the rest
/// are the fields and message of the debug line.
#[macro_export]
macro_rules! outsider_debug {
    (target: $target:literal, $what:literal, $source:expr, $($rest:tt)+) => {{
        $crate::outsider_log::note($target, $what, $source);
        $crate::__tracing::event!(target: $target, $crate::__tracing::Level::DEBUG, $($rest)+);
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANDSHAKES: Kind = Kind {
        target: "av_auth",
        what: "failed TLS handshakes",
    };
    const REQUESTS: Kind = Kind {
        target: "av_auth",
        what: "malformed requests",
    };

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0xC000_0200 + n))
    }

    #[test]
    fn a_burst_gives_one_summary_per_interval_with_events_and_sources() {
        let mut t = Tally::new(INTERVAL);
        let t0 = Instant::now();
        for i in 0..1_000u32 {
            let at = t0 + Duration::from_millis(u64::from(i));
            assert_eq!(
                t.note(HANDSHAKES, ip(i % 7), at),
                None,
                "no line inside the interval"
            );
        }
        assert!(t.due(t0 + Duration::from_secs(9)).is_empty());
        let due = t.due(t0 + INTERVAL);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].events, due[0].sources), (1_000, 7));
        assert_eq!(
            due[0].to_string(),
            "1000 failed TLS handshakes from 7 source(s) in the last 10 s"
        );
        assert!(
            t.due(t0 + INTERVAL * 5).is_empty(),
            "a summary is written once"
        );
    }

    #[test]
    fn the_first_event_after_the_interval_closes_the_window_it_ends() {
        let mut t = Tally::new(INTERVAL);
        let t0 = Instant::now();
        assert_eq!(t.note(HANDSHAKES, ip(1), t0), None);
        assert_eq!(t.note(HANDSHAKES, ip(1), t0 + Duration::from_secs(3)), None);
        let closed = t.note(HANDSHAKES, ip(2), t0 + INTERVAL);
        assert_eq!(closed.map(|s| (s.events, s.sources)), Some((2, 1)));
        let next = t.due(t0 + INTERVAL * 2);
        assert_eq!(next.iter().map(|s| s.events).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn kinds_are_summed_apart() {
        let mut t = Tally::new(INTERVAL);
        let t0 = Instant::now();
        t.note(HANDSHAKES, ip(1), t0);
        t.note(REQUESTS, ip(1), t0);
        t.note(REQUESTS, ip(2), t0);
        let due = t.due(t0 + INTERVAL);
        let got: Vec<_> = due.iter().map(|s| (s.kind.what, s.events)).collect();
        assert_eq!(
            got,
            [("failed TLS handshakes", 1), ("malformed requests", 2)]
        );
    }

    #[test]
    fn sources_are_counted_per_ipv6_64_and_bounded() {
        let mut t = Tally::new(INTERVAL);
        let t0 = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 10) {
            t.note(HANDSHAKES, ip(i), t0);
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap_or_else(|e| panic!("{e}"));
        let v6b: IpAddr = "2001:db8::2".parse().unwrap_or_else(|e| panic!("{e}"));
        t.note(REQUESTS, v6, t0);
        t.note(REQUESTS, v6b, t0);
        let due = t.due(t0 + INTERVAL);
        assert_eq!(due[0].sources, MAX_SOURCES);
        assert!(due[0].more_sources);
        assert!(due[0].to_string().contains("from at least 4096 source(s)"));
        assert_eq!((due[1].events, due[1].sources), (2, 1));
    }
}
