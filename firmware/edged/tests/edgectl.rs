//! edgectl as a person meets it, against the real daemon: a refused value names the key and
//! the allowed range, the audit log shows ISO 8601 times, role lists are tables, an empty
//! list says so in words, `--json` stays parseable for scripts, and errors are one line.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{config_for, edgectl, Edged};

/// Whether `s` is an ISO 8601 UTC time such as 2026-12-07T16:05:03Z.
fn is_iso_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && s.starts_with("20")
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "edgectl failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The one line an error must be, without the `edgectl: ` prefix.
fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "edgectl succeeded: {}",
        text(&out.stdout)
    );
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    err.trim_end()
        .strip_prefix("edgectl: ")
        .unwrap_or_else(|| panic!("no edgectl prefix: {err:?}"))
        .to_owned()
}

#[test]
fn edgectl_answers_in_words_tables_and_iso_times() {
    let dir = tempfile::tempdir().unwrap();
    // The two roles whose lists this test reads; the others only slow the start.
    let mut config = edged_config::Config::from_toml(&config_for(71)).unwrap();
    config.webconf_edge.enabled = false;
    config.av_edge.enabled = false;
    config.metrics.enabled = false;
    let path = dir.path().join("edged.toml");
    std::fs::write(&path, config.to_toml()).unwrap();
    let mut e = Edged::start(dir.path(), Some(&path));
    e.wait_ready(Duration::from_secs(60));
    let ctl = |args: &[&str]| {
        Command::new(edgectl())
            .arg("--socket")
            .arg(&e.socket)
            .args(args)
            .output()
            .unwrap()
    };

    // A refused value names the key and the allowed range, in one line.
    assert_eq!(
        failed(&ctl(&["config", "set", "av_edge.relay_port_min", "70000"])),
        "av_edge.relay_port_min: 70000 is out of range (0-65535)"
    );
    assert_eq!(
        failed(&ctl(&["config", "set", "av_edge.relay_port_mn", "50000"])),
        "av_edge.relay_port_mn: no such key (did you mean av_edge.relay_port_min?)"
    );
    // So are a usage mistake and an unknown action.
    let usage = failed(&ctl(&["config", "set", "logging.level"]));
    assert!(usage.contains("--help"), "{usage}");
    let unknown = failed(&ctl(&["role", "access_edge", "explode", "--action", "{}"]));
    assert!(
        unknown.contains("promote-domain, block-domain"),
        "{unknown}"
    );

    // The audit log: a table whose times are ISO 8601 UTC.
    succeeded(&ctl(&["config", "set", "logging.level", "debug"]));
    let audit = succeeded(&ctl(&["audit"]));
    let mut lines = audit.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TIME", "ACTOR", "KIND", "DETAIL"], "{audit}");
    let change = lines
        .find(|l| l.ends_with("logging.level = debug"))
        .unwrap_or_else(|| panic!("the change is not in the audit log:\n{audit}"));
    let time = change.split_whitespace().next().unwrap();
    assert!(is_iso_utc(time), "not an ISO time: {change}");
    // Columns line up under their headings.
    let detail_at = audit.lines().next().unwrap().find("DETAIL").unwrap();
    assert_eq!(
        change.find("logging.level = debug"),
        Some(detail_at),
        "{audit}"
    );

    // An empty list says so; --json keeps the raw answer.
    assert_eq!(
        succeeded(&ctl(&["role", "access_edge", "domains"])),
        "access_edge: no domains yet\n"
    );
    let raw: serde_json::Value = serde_json::from_str(&succeeded(&ctl(&[
        "--json",
        "role",
        "access_edge",
        "domains",
    ])))
    .unwrap();
    assert_eq!(raw, serde_json::json!([]));

    // After an action (by its verb-noun name) the list is a table.
    succeeded(&ctl(&[
        "role",
        "access_edge",
        "block-domain",
        "--action",
        r#"{"domain":"spam.example"}"#,
    ]));
    let domains = succeeded(&ctl(&["role", "access_edge", "domains"]));
    let mut rows = domains.lines();
    let header = rows.next().unwrap();
    assert!(header.starts_with("DOMAIN "), "{domains}");
    assert!(header.contains(" KIND "), "{domains}");
    let row = rows.next().unwrap_or_else(|| panic!("no row:\n{domains}"));
    assert!(row.starts_with("spam.example "), "{domains}");
    assert_eq!(
        row[header.find(" KIND ").unwrap() + 1..]
            .split_whitespace()
            .next(),
        Some("blocked"),
        "{domains}"
    );

    // A list inside an object: av_auth's API keys, with their creation time in ISO 8601.
    succeeded(&ctl(&[
        "role",
        "av_auth",
        "create-api-key",
        "--action",
        r#"{"name":"portal"}"#,
    ]));
    let keys = succeeded(&ctl(&["role", "av_auth", "api-keys"]));
    assert!(keys.starts_with("api keys:\n"), "{keys}");
    let row = keys
        .lines()
        .find(|l| l.starts_with("portal "))
        .unwrap_or_else(|| panic!("no portal row:\n{keys}"));
    assert!(
        row.split_whitespace().any(is_iso_utc),
        "no ISO time in {row:?}"
    );
    let raw: serde_json::Value =
        serde_json::from_str(&succeeded(&ctl(&["--json", "role", "av_auth", "api-keys"]))).unwrap();
    assert_eq!(raw["api_keys"][0]["name"], "portal", "{raw}");
    assert!(raw["api_keys"][0]["created"].is_u64(), "{raw}");

    // The name from before the verb-noun scheme still works.
    let rotated = succeeded(&ctl(&["role", "av_auth", "rotate-key", "--action", "{}"]));
    assert!(rotated.contains("current:"), "{rotated}");
}
