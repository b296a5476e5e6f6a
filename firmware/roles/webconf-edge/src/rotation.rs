//! Session-key rotation on demand (`edgectl role webconf_edge rotate-keys`) and on a schedule
//! (`webconf_edge.key_rotation_hours`), and the key listing `edgectl role webconf_edge keys`.
//!
//! How conferencing servers follow a rotation: they sign with the newest key of the ring
//! they hold, and the edge keeps accepting the previous key for the overlap
//! (`webconf_edge.key_overlap_minutes`). With a demo bundle the edge rewrites
//! `session-keys.json` at once and the reference connector reads it at every mint; on an
//! appliance the ring is handed over out of band within the overlap.

use std::sync::Weak;
use std::time::Duration;

use serde_json::{json, Value};
use session_key::KeyRing;

use crate::role::WebconfEdge;

/// Longest sleep of the scheduler: a changed `key_rotation_hours` is noticed this soon.
const RECHECK: Duration = Duration::from_secs(60);

/// Key ids, creation and state, never secrets.
pub(crate) fn describe(ring: &KeyRing, now: u64) -> Vec<Value> {
    let current = ring.current(now).map(|k| k.id);
    ring.records()
        .iter()
        .map(|r| {
            let state = if Some(r.id) == current {
                "active"
            } else if r.retire_at.is_some_and(|at| now <= at) {
                "retiring"
            } else {
                "retired"
            };
            json!({
                "id": r.id,
                "created_at": r.created_at,
                "state": state,
                "retire_at": r.retire_at,
            })
        })
        .collect()
}

/// Seconds until the current key is `period` old (0: due now). No key at all is due now.
pub(crate) fn seconds_until_due(ring: &KeyRing, period: Duration, now: u64) -> u64 {
    ring.current(now).map_or(0, |k| {
        k.created_at
            .saturating_add(period.as_secs())
            .saturating_sub(now)
    })
}

/// Rotates whenever the current key reaches the configured age, until the role drains or
/// is dropped.
pub(crate) async fn run_schedule(edge: Weak<WebconfEdge>, stop: edged_role::DrainToken) {
    loop {
        let wait = match edge.upgrade() {
            Some(edge) => edge.scheduled_rotation_step().await,
            None => return,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long the scheduler sleeps when a rotation is `due_in_secs` away.
pub(crate) fn sleep_for(due_in_secs: u64) -> Duration {
    Duration::from_secs(due_in_secs.clamp(1, RECHECK.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_key::SessionSecret;

    fn ring_created_at(created: &[u64]) -> KeyRing {
        let recs: Vec<SessionSecret> = created
            .iter()
            .enumerate()
            .map(|(i, &c)| SessionSecret::new(i as u32 + 1, &[i as u8 + 1; 32], c).unwrap())
            .collect();
        KeyRing::from_records(recs).unwrap()
    }

    #[test]
    fn rotation_is_due_when_the_current_key_reaches_the_period() {
        let day = Duration::from_secs(86_400);
        let ring = ring_created_at(&[1_000]);
        assert_eq!(seconds_until_due(&ring, day, 1_000), 86_400);
        assert_eq!(seconds_until_due(&ring, day, 50_000), 37_400);
        assert_eq!(seconds_until_due(&ring, day, 87_400), 0);
        assert_eq!(seconds_until_due(&ring, day, 999_999), 0);
        assert_eq!(seconds_until_due(&KeyRing::default(), day, 5), 0);
    }

    #[test]
    fn the_scheduler_rechecks_at_least_every_minute() {
        assert_eq!(sleep_for(0), Duration::from_secs(1));
        assert_eq!(sleep_for(30), Duration::from_secs(30));
        assert_eq!(sleep_for(86_400), RECHECK);
    }

    #[test]
    fn listing_shows_states_and_no_secret() {
        let mut ring = ring_created_at(&[100]);
        ring.rotate(&[9u8; 32], 200, 60).unwrap();
        let listed = describe(&ring, 230);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0]["id"], 1);
        assert_eq!(listed[0]["state"], "retiring");
        assert_eq!(listed[0]["retire_at"], 260);
        assert_eq!(listed[1]["id"], 2);
        assert_eq!(listed[1]["state"], "active");
        assert_eq!(describe(&ring, 261)[0]["state"], "retired");
        let text = serde_json::to_string(&listed).unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains(&"09".repeat(32)), "{text}");
    }
}
