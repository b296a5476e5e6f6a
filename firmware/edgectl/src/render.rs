//! Text forms of the API's answers, for people at a terminal.

use edged_admin_api::{AuditEntry, CommitResult, Health, LogLevels, Status};

fn health(h: &Health) -> String {
    match h {
        Health::Ready => "ready".into(),
        Health::Degraded(r) => format!("degraded ({r})"),
        Health::Down(r) => format!("down ({r})"),
        Health::Disabled => "disabled".into(),
        Health::Draining => "draining".into(),
    }
}

pub fn status(s: &Status) -> String {
    let mut out = format!(
        "{}  edged {}  up {}s  configuration generation {}\n",
        s.appliance, s.version, s.uptime_seconds, s.config_generation
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
            out.push_str(&format!("  counters: {}\n", counters.join(" ")));
        }
    }
    out
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

pub fn audit(entries: &[AuditEntry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "{:>6} {:>10} {:<12} {:<14} {}\n",
                e.seq, e.unix_time, e.actor, e.action, e.detail
            )
        })
        .collect()
}
