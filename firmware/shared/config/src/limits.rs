//! The descriptor budget: how many open files each role may hold, and how many edged keeps
//! back for the admin socket, the store, its logs and its own files.
//!
//! Every connection and relay socket is a descriptor, and all four roles share one process
//! limit: without budgets a flood on one role's port would take the descriptors the other
//! roles (and the admin socket the watchdog probes) need. A role's budget caps the
//! connections of all its listeners together, and one source's share of it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::ConfigErrors;

/// The roles, in the order edged starts them, and their weight when edged splits the
/// process limit among roles without a configured budget: the A/V Edge holds a relay
/// socket per allocation besides its connections, the Access Edge one connection per
/// signed-in user, the A/V Authentication Service short requests.
pub const ROLE_WEIGHTS: [(&str, u64); 4] = [
    ("access_edge", 3),
    ("webconf_edge", 2),
    ("av_edge", 4),
    ("av_auth", 1),
];

/// The smallest budget a role can work with.
pub const MIN_ROLE_DESCRIPTORS: u64 = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Descriptors no role may take: the admin socket and its clients, the store, the
    /// metrics listener, logs and edged's own files.
    pub reserve_descriptors: u64,
    /// The share of a role's budget one source (an IPv4 address, an IPv6 /64) may hold, in
    /// percent.
    pub source_share_percent: u64,
    /// Budgets by role (`access_edge`, `webconf_edge`, `av_edge`, `av_auth`). A role not
    /// named gets a weighted share of what the process limit leaves.
    pub descriptors: BTreeMap<String, u64>,
    /// Audit log entries kept in the store; older ones are dropped as new ones come.
    pub audit_entries: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            reserve_descriptors: 1024,
            source_share_percent: 50,
            descriptors: BTreeMap::new(),
            audit_entries: 10_000,
        }
    }
}

/// The process's open-files limit as edged measured it at start (0: not measured, as in a
/// tool that only checks documents). Set once by edged; read by [`LimitsConfig::validate`].
static PROCESS_DESCRIPTORS: AtomicU64 = AtomicU64::new(0);

/// Records the open-files limit edged runs with, so every later change is checked
/// against it.
pub fn set_process_descriptor_limit(limit: u64) {
    PROCESS_DESCRIPTORS.store(limit, Ordering::Relaxed);
}

/// The limit recorded by [`set_process_descriptor_limit`], if any.
pub fn process_descriptor_limit() -> Option<u64> {
    match PROCESS_DESCRIPTORS.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// The budget each enabled role gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budgets {
    pub roles: BTreeMap<&'static str, u64>,
    /// The configured budgets did not fit the process limit and were scaled down to fit.
    pub scaled_down: bool,
}

impl LimitsConfig {
    pub(crate) fn validate(&self, enabled: &[&str], errs: &mut ConfigErrors) {
        for (role, n) in &self.descriptors {
            let key = format!("limits.descriptors.{role}");
            if !ROLE_WEIGHTS.iter().any(|(r, _)| r == role) {
                let names: Vec<_> = ROLE_WEIGHTS.iter().map(|(r, _)| *r).collect();
                errs.push(
                    key,
                    format!("unknown role; expected one of: {}", names.join(", ")),
                );
            } else if *n < MIN_ROLE_DESCRIPTORS {
                errs.push(key, format!("must be at least {MIN_ROLE_DESCRIPTORS}"));
            }
        }
        if !(100..=1_000_000).contains(&self.audit_entries) {
            errs.push("limits.audit_entries", "must be 100 to 1000000");
        }
        if !(1..=100).contains(&self.source_share_percent) {
            errs.push("limits.source_share_percent", "must be 1 to 100");
        }
        if self.reserve_descriptors < 64 {
            errs.push(
                "limits.reserve_descriptors",
                "must be at least 64 (the admin socket, the store and logs need them)",
            );
        }
        let Some(limit) = process_descriptor_limit() else {
            return;
        };
        let unpinned = enabled
            .iter()
            .filter(|r| !self.descriptors.contains_key(**r))
            .count() as u64;
        let pinned: u64 = self.pinned(enabled).map(|(_, n)| n).sum();
        let needed = self
            .reserve_descriptors
            .saturating_add(pinned)
            .saturating_add(unpinned * MIN_ROLE_DESCRIPTORS);
        if needed > limit {
            errs.push(
                "limits.descriptors",
                format!(
                    "the enabled roles' budgets ({pinned}) plus limits.reserve_descriptors ({}) \
                     exceed the process's open-files limit of {limit}; lower the budgets",
                    self.reserve_descriptors
                ),
            );
        }
    }

    fn pinned<'a>(&'a self, enabled: &'a [&str]) -> impl Iterator<Item = (&'a str, u64)> + 'a {
        enabled
            .iter()
            .filter_map(|r| self.descriptors.get(*r).map(|n| (*r, *n)))
    }

    /// Each enabled role's budget under the process limit `limit`: configured budgets as
    /// they are, the rest split by weight from what is left after the reserve. When the
    /// configured budgets do not fit (a hard limit lowered under a stored configuration),
    /// every budget is scaled down in proportion, so the reserve stays whole.
    pub fn budgets(&self, enabled: &[&str], limit: u64) -> Budgets {
        let available = limit.saturating_sub(self.reserve_descriptors);
        let pinned: u64 = self.pinned(enabled).map(|(_, n)| n).sum();
        let unpinned: Vec<(&'static str, u64)> = ROLE_WEIGHTS
            .iter()
            .copied()
            .filter(|(r, _)| enabled.contains(r) && !self.descriptors.contains_key(*r))
            .collect();
        let weight: u64 = unpinned.iter().map(|(_, w)| w).sum();
        let floor = MIN_ROLE_DESCRIPTORS * unpinned.len() as u64;
        let mut roles = BTreeMap::new();
        let scaled_down = pinned.saturating_add(floor) > available;
        let (pinned_room, rest) = if scaled_down {
            (available.saturating_sub(floor), floor.min(available))
        } else {
            (pinned, available - pinned)
        };
        for (role, _) in ROLE_WEIGHTS {
            if let Some(n) = self
                .descriptors
                .get(role)
                .filter(|_| enabled.contains(&role))
            {
                let n = if scaled_down && pinned > 0 {
                    (u128::from(*n) * u128::from(pinned_room) / u128::from(pinned)) as u64
                } else {
                    *n
                };
                roles.insert(role, n.max(1));
            }
        }
        for (role, w) in unpinned {
            let share = if scaled_down {
                rest / (floor / MIN_ROLE_DESCRIPTORS).max(1)
            } else {
                rest * w / weight.max(1)
            };
            roles.insert(role, share.max(1));
        }
        Budgets { roles, scaled_down }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [&str; 4] = ["access_edge", "webconf_edge", "av_edge", "av_auth"];

    fn pinned(pairs: &[(&str, u64)]) -> LimitsConfig {
        LimitsConfig {
            descriptors: pairs.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect(),
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn unconfigured_roles_share_what_the_reserve_leaves_by_weight() {
        let b = LimitsConfig::default().budgets(&ALL, 11_024);
        assert!(!b.scaled_down);
        assert_eq!(b.roles["access_edge"], 3_000);
        assert_eq!(b.roles["webconf_edge"], 2_000);
        assert_eq!(b.roles["av_edge"], 4_000);
        assert_eq!(b.roles["av_auth"], 1_000);
        assert!(b.roles.values().sum::<u64>() <= 10_000);
    }

    #[test]
    fn configured_budgets_are_kept_and_the_rest_shared() {
        let b = pinned(&[("av_edge", 6_000)]).budgets(&ALL, 11_024);
        assert_eq!(b.roles["av_edge"], 6_000);
        assert_eq!(b.roles["access_edge"], 2_000);
        assert_eq!(b.roles["av_auth"], 666);
        assert!(b.roles.values().sum::<u64>() <= 10_000);
    }

    #[test]
    fn disabled_roles_get_nothing() {
        let b = LimitsConfig::default().budgets(&["av_auth"], 2_024);
        assert_eq!(b.roles.len(), 1);
        assert_eq!(b.roles["av_auth"], 1_000);
    }

    #[test]
    fn budgets_over_a_low_hard_limit_are_scaled_down_and_the_reserve_kept() {
        let c = pinned(&[("access_edge", 8_000), ("av_edge", 8_000)]);
        let b = c.budgets(&ALL, 5_024);
        assert!(b.scaled_down);
        let total: u64 = b.roles.values().sum();
        assert!(total <= 4_000, "{b:?}");
        assert_eq!(b.roles["access_edge"], b.roles["av_edge"]);
        assert!(b.roles["av_auth"] >= MIN_ROLE_DESCRIPTORS);
    }

    #[test]
    fn the_validator_refuses_budgets_beyond_the_measured_limit() {
        // Other tests in this process validate the embedded default, which pins nothing
        // and fits any limit this large.
        set_process_descriptor_limit(20_000);
        let mut c = crate::Config::embedded_default();
        c.limits.descriptors.insert("av_edge".into(), 12_000);
        assert!(c.validate().is_ok());
        c.limits.descriptors.insert("access_edge".into(), 8_000);
        let errs = c.validate().err().map(|e| e.0).unwrap_or_default();
        assert!(
            errs.iter()
                .any(|e| e.key == "limits.descriptors" && e.reason.contains("20000")),
            "{errs:?}"
        );
        // A disabled role's budget does not count.
        c.access_edge.enabled = false;
        assert!(c.validate().is_ok());
        c.limits.descriptors.insert("sip".into(), 100);
        c.limits.reserve_descriptors = 10;
        let keys: Vec<_> = c
            .validate()
            .err()
            .map(|e| e.0)
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            keys,
            ["limits.descriptors.sip", "limits.reserve_descriptors"]
        );
    }
}
