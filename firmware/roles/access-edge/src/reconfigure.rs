//! What a configuration change means for the Access Edge, decided without sockets: which
//! keys apply live and which listeners need a restart. The certificate and trust anchors
//! are compared on the loaded TLS material by the role; `enabled` is edged's to report.

use edged_config::Config;
use edged_role::{changed_keys, listener_changes, ApplyReport};

use crate::NAME;

/// Keys of the section reported elsewhere: the listeners (through [`listener_changes`]),
/// the certificate (with the TLS material) and `enabled` (by edged).
const REPORTED_ELSEWHERE: [&str; 7] = [
    "access_edge.enabled",
    "access_edge.certificate",
    "access_edge.external_address",
    "access_edge.internal_address",
    "access_edge.remote_users_port",
    "access_edge.federation_port",
    "access_edge.internal_port",
];

/// The report for going from `old` to `new`, TLS aside: one line per changed key.
pub fn report(old: &Config, new: &Config) -> ApplyReport {
    let mut report = ApplyReport {
        restart_required: listener_changes(NAME, old, new),
        ..ApplyReport::default()
    };
    for key in changed_keys(NAME, &old.access_edge, &new.access_edge) {
        if REPORTED_ELSEWHERE.contains(&key.as_str()) {
            continue;
        }
        report
            .applied
            .push(if key.starts_with("access_edge.federation.") {
                format!("{key}: federation policy applied")
            } else if key == "access_edge.next_hops" {
                format!("{key}: pool updated; established connections stay")
            } else {
                format!("{key}: applies to connections and requests from now on")
            });
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_elsewhere_reports_nothing() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.logging.level = "debug".into();
        new.av_edge.max_allocations += 1;
        assert_eq!(report(&old, &new), ApplyReport::default());
    }

    #[test]
    fn each_live_key_is_named_once() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.access_edge.idle_timeout_secs += 1;
        new.access_edge.next_hops.push("127.0.0.2:15061".into());
        new.access_edge.federation.discovery = !old.access_edge.federation.discovery;
        let r = report(&old, &new);
        assert!(r.restart_required.is_empty(), "{r:?}");
        assert_eq!(
            r.applied,
            [
                "access_edge.federation.discovery: federation policy applied",
                "access_edge.idle_timeout_secs: applies to connections and requests from now on",
                "access_edge.next_hops: pool updated; established connections stay",
            ]
        );
    }

    #[test]
    fn a_moved_listener_needs_a_restart_and_is_not_applied() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.access_edge.remote_users_port += 1;
        new.access_edge.certificate = "other".into();
        let r = report(&old, &new);
        assert!(r.applied.is_empty(), "{r:?}");
        assert_eq!(r.restart_required.len(), 1, "{r:?}");
        assert!(r.restart_required[0].starts_with("access_edge.remote_users_port:"));
    }
}
