//! Text forms of the API's answers, for people at a terminal.

use edged_admin_api::{AuditEntry, CommitResult, Health, LogLevels, Status};

use crate::{clock, table};

fn health(h: &Health) -> String {
    match h {
        Health::Ready => "ready".into(),
        Health::Degraded(r) => format!("degraded ({r})"),
        Health::Down(r) => format!("down ({r})"),
        Health::Disabled => "disabled".into(),
        Health::Draining => "draining".into(),
        Health::Overloaded(r) => format!("overloaded ({r})"),
    }
}

pub fn status(s: &Status) -> String {
    let mut out = format!(
        "{}  edged {}  up {}  configuration generation {}\n",
        s.appliance,
        s.version,
        duration(s.uptime_seconds),
        s.config_generation
    );
    for r in &s.roles {
        out.push_str(&format!("\n{:<14}{}\n", r.role, health(&r.health)));
        for l in &r.listeners {
            out.push_str(&format!(
                "  {:<9}{:<6}{:<24}{}\n",
                l.side.to_string(),
                l.transport.to_string(),
                l.address,
                l.purpose
            ));
        }
        if !r.counters.is_empty() {
            let counters: Vec<String> =
                r.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str("  counters:\n");
            out.push_str(&wrap(&counters, "    ", STATUS_WIDTH));
        }
    }
    out
}

/// Counter lines stay within a terminal's usual width.
const STATUS_WIDTH: usize = 100;

/// Words joined by spaces into lines of at most `width` (a longer word gets a line of its
/// own), each line indented.
fn wrap(words: &[String], indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in words {
        if !line.is_empty() && indent.len() + line.len() + 1 + w.len() > width {
            out.push_str(&format!("{indent}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        out.push_str(&format!("{indent}{line}\n"));
    }
    out
}

/// `3725` -> `1h 2m 5s`: uptimes read at a glance.
fn duration(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

pub fn commit(r: &CommitResult) -> String {
    let mut out = format!("configuration generation {}\n", r.generation);
    for a in &r.report.applied {
        out.push_str(&format!("  applied: {a}\n"));
    }
    for a in &r.report.restart_required {
        out.push_str(&format!("  needs a restart: {a}\n"));
    }
    if r.report.applied.is_empty() && r.report.restart_required.is_empty() {
        out.push_str("  nothing changed in the running roles\n");
    }
    out
}

pub fn levels(l: &LogLevels) -> String {
    let mut out = format!("default {}\n", l.default);
    for (r, v) in &l.roles {
        out.push_str(&format!("{r} {v}\n"));
    }
    out
}

/// The audit log as a table, oldest first, times in ISO 8601 UTC.
pub fn audit(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "the audit log is empty\n".into();
    }
    let headers = ["TIME", "ACTOR", "KIND", "DETAIL"].map(String::from);
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                clock::iso8601(e.unix_time),
                e.actor.clone(),
                e.action.clone(),
                e.detail.clone(),
            ]
        })
        .collect();
    table::render(&headers, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(unix_time: u64, actor: &str, action: &str, detail: &str) -> AuditEntry {
        AuditEntry {
            seq: 1,
            unix_time,
            actor: actor.into(),
            action: action.into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn audit_is_a_table_with_iso_times() {
        let text = audit(&[
            entry(
                1_796_659_503,
                "admin-api",
                "config set",
                "logging.level = debug",
            ),
            entry(1_796_659_564, "edged", "start", "generation 3"),
        ]);
        assert_eq!(
            text,
            "TIME                  ACTOR      KIND        DETAIL\n\
             2026-12-07T16:05:03Z  admin-api  config set  logging.level = debug\n\
             2026-12-07T16:06:04Z  edged      start       generation 3\n"
        );
        assert_eq!(audit(&[]), "the audit log is empty\n");
    }

    #[test]
    fn counters_wrap_within_the_width() {
        let words: Vec<String> = ["aaaa=1", "bbbb=2", "cccc=3", "a_very_long_counter_name=4"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            wrap(&words, "  ", 16),
            "  aaaa=1 bbbb=2\n  cccc=3\n  a_very_long_counter_name=4\n"
        );
        assert_eq!(wrap(&[], "  ", 16), "");
    }

    #[test]
    fn uptime_reads_at_a_glance() {
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(61), "1m 1s");
        assert_eq!(duration(3725), "1h 2m 5s");
        assert_eq!(duration(90_061), "1d 1h 1m");
    }
}
