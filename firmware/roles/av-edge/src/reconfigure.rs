//! What a configuration change means for the A/V Edge, decided without sockets: which keys
//! apply to new requests and which wait for a restart. The certificate is compared on the
//! loaded TLS material by the role; `enabled` is edged's to report.

use edged_config::Config;
use edged_role::{changed_keys, listener_changes, ApplyReport};

const NAME: &str = "av_edge";

/// Keys reported elsewhere: the listeners (through [`listener_changes`]), the certificate
/// (with the TLS material) and `enabled` (by edged).
const REPORTED_ELSEWHERE: [&str; 7] = [
    "av_edge.enabled",
    "av_edge.certificate",
    "av_edge.external_address",
    "av_edge.internal_address",
    "av_edge.udp_port",
    "av_edge.tcp_port",
    "av_edge.tls_port",
];

/// The relay sockets and threads are set up at start; these keys wait for a restart. The
/// relay range and the thread placement are reported once each, however many of their
/// keys changed.
const RELAY_RANGE: [&str; 4] = [
    "av_edge.relay_address",
    "av_edge.relay_address_v6",
    "av_edge.relay_port_min",
    "av_edge.relay_port_max",
];
const RELAY_THREADS: [&str; 2] = ["av_edge.relay_threads", "av_edge.relay_cores"];
const AT_START: [&str; 5] = [
    "av_edge.relay_realtime_priority",
    "av_edge.relay_lock_memory",
    "av_edge.relay_pacing_us",
    "av_edge.relay_pacing_max_us",
    "av_edge.demo_user",
];

/// The report for going from `old` to `new`, TLS aside.
pub fn report(old: &Config, new: &Config) -> ApplyReport {
    let mut report = ApplyReport {
        restart_required: listener_changes(NAME, old, new),
        ..ApplyReport::default()
    };
    let (o, n) = (&old.av_edge, &new.av_edge);
    // The default relay address follows the external side, so the range is compared whole.
    if o.relay_range(&old.network) != n.relay_range(&new.network)
        || o.relay_address_v6 != n.relay_address_v6
    {
        report.restart_required.push(
            "av_edge.relay_address/relay_address_v6/relay_port_min/relay_port_max: relay sockets keep their addresses; restart edged to use the new range".into(),
        );
    }
    let mut threads = false;
    for key in changed_keys(NAME, o, n) {
        let k = key.as_str();
        if REPORTED_ELSEWHERE.contains(&k) || RELAY_RANGE.contains(&k) {
            continue;
        }
        if RELAY_THREADS.contains(&k) {
            threads = true;
        } else if AT_START.contains(&k) {
            report
                .restart_required
                .push(format!("{key}: set when the relay starts; restart edged"));
        } else {
            report.applied.push(format!(
                "{key}: applies to new requests; established allocations keep relaying"
            ));
        }
    }
    if threads {
        report.restart_required.push(
            "av_edge.relay_threads/relay_cores: the relay threads are placed at start; restart edged".into(),
        );
    }
    report
}

/// Whether the settings requests are served with differ (all live keys are in the section).
pub fn settings_changed(old: &Config, new: &Config) -> bool {
    old.av_edge != new.av_edge
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_elsewhere_reports_nothing() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.logging.level = "debug".into();
        new.access_edge.idle_timeout_secs += 1;
        assert_eq!(report(&old, &new), ApplyReport::default());
    }

    #[test]
    fn a_quota_is_applied_and_named() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.av_edge.max_allocations += 1;
        new.av_edge.realm = "other.example".into();
        let r = report(&old, &new);
        assert!(r.restart_required.is_empty(), "{r:?}");
        assert_eq!(r.applied.len(), 2, "{r:?}");
        assert!(r.applied[0].starts_with("av_edge.max_allocations: applies to new requests"));
        assert!(r.applied[1].starts_with("av_edge.realm: "));
    }

    #[test]
    fn relay_setup_waits_for_a_restart_reported_once_per_part() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.av_edge.relay_port_min += 1;
        new.av_edge.relay_port_max -= 1;
        new.av_edge.relay_threads += 1;
        new.av_edge.relay_cores = vec![0];
        new.av_edge.relay_pacing_us += 1;
        new.av_edge.relay_pacing_max_us = new
            .av_edge
            .relay_pacing_us
            .max(old.av_edge.relay_pacing_max_us);
        let r = report(&old, &new);
        assert!(r.applied.is_empty(), "{r:?}");
        let starts = |p: &str| {
            r.restart_required
                .iter()
                .filter(|l| l.starts_with(p))
                .count()
        };
        assert_eq!(starts("av_edge.relay_address/"), 1, "{r:?}");
        assert_eq!(starts("av_edge.relay_threads/relay_cores"), 1, "{r:?}");
        assert_eq!(starts("av_edge.relay_pacing_us:"), 1, "{r:?}");
    }

    #[test]
    fn a_moved_listener_is_a_restart_not_a_live_change() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.av_edge.tcp_port += 1;
        let r = report(&old, &new);
        assert!(r.applied.is_empty(), "{r:?}");
        assert!(
            r.restart_required
                .iter()
                .all(|l| l.starts_with("av_edge.tcp_port:")),
            "{r:?}"
        );
    }
}
