//! What a configuration change means for the A/V Authentication Service, decided without
//! sockets. The certificate and anchors are compared on the loaded TLS material by the role;
//! `enabled` is edged's to report.

use edged_config::Config;
use edged_role::{changed_keys, listener_changes, ApplyReport};

use crate::relays::relays;
use crate::NAME;

/// Keys reported elsewhere: the listeners (through [`listener_changes`]), the certificate
/// (with the TLS material) and `enabled` (by edged).
const REPORTED_ELSEWHERE: [&str; 5] = [
    "av_auth.enabled",
    "av_auth.certificate",
    "av_auth.internal_address",
    "av_auth.sip_port",
    "av_auth.rest_port",
];

/// The report for going from `old` to `new`, TLS aside.
pub fn report(old: &Config, new: &Config) -> ApplyReport {
    let mut report = ApplyReport {
        restart_required: listener_changes(NAME, old, new),
        ..ApplyReport::default()
    };
    for key in changed_keys(NAME, &old.av_auth, &new.av_auth) {
        if !REPORTED_ELSEWHERE.contains(&key.as_str()) {
            report
                .applied
                .push(format!("{key}: applies to credentials issued from now on"));
        }
    }
    // The relay list follows the A/V Edge's listeners; say so when they moved it (a relay
    // host set here is already named above).
    let named = report.applied.iter().any(|l| l.contains("_relay_host:"));
    if !named && relays(old) != relays(new) {
        report.applied.push(
            "av_auth: credentials issued from now on list the A/V Edge's new relay addresses"
                .into(),
        );
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
        new.av_edge.realm = "other.example".into();
        assert_eq!(report(&old, &new), ApplyReport::default());
    }

    #[test]
    fn a_policy_key_is_named() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.av_auth.issuance_per_minute += 1;
        let r = report(&old, &new);
        assert_eq!(
            r.applied,
            ["av_auth.issuance_per_minute: applies to credentials issued from now on"]
        );
        assert!(r.restart_required.is_empty());
    }

    #[test]
    fn a_moved_relay_changes_the_list_once() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.av_edge.udp_port += 1;
        let r = report(&old, &new);
        assert_eq!(r.applied.len(), 1, "{r:?}");
        assert!(r.applied[0].starts_with("av_auth: credentials issued from now on list"));
        new.av_auth.external_relay_host = Some("av.example.com".into());
        let r = report(&old, &new);
        assert_eq!(r.applied.len(), 1, "{r:?}");
        assert!(r.applied[0].starts_with("av_auth.external_relay_host:"));
    }
}
