//! The per-role log levels `edgectl log-level ROLE LEVEL` accepts act on what the crates
//! actually log: the accepted names are exactly the targets the daemon's crates log with,
//! and raising one of them (media_relay, whose crate once logged as av_edge) shows its lines.

mod common;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{config_for, edgectl, Edged};
use nix::sys::signal::Signal;

const LOG_MACROS: [&str; 5] = ["trace!(", "debug!(", "info!(", "warn!(", "error!("];

/// The crates linked into edged: the daemon, shared parts, protocol cores, roles and the
/// data plane (the tools under firmware/tools are separate programs with their own logs).
fn daemon_sources() -> Vec<PathBuf> {
    let firmware = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![firmware.join("edged/src")];
    for group in ["shared", "protocols", "roles", "dataplane"] {
        for krate in std::fs::read_dir(firmware.join(group)).expect("firmware group") {
            dirs.push(krate.expect("crate dir").path().join("src"));
        }
    }
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    files
}

/// Every target a log call in `source` names. A log call without an explicit target would
/// log under its module path, which no per-role level matches: that is reported too.
fn targets_in(path: &Path, source: &str, targets: &mut BTreeSet<String>) {
    for mac in LOG_MACROS {
        for (at, _) in source.match_indices(mac) {
            let args = source[at + mac.len()..].trim_start();
            let Some(rest) = args.strip_prefix("target:") else {
                panic!(
                    "{}: a {mac}..) call without `target:` logs under its module path",
                    path.display()
                );
            };
            let name = rest
                .trim_start()
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(name, _)| name)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: log target is not a string literal: {}",
                        path.display(),
                        &rest[..rest.len().min(40)]
                    )
                });
            targets.insert(name.to_owned());
        }
    }
}

#[test]
fn accepted_log_targets_are_the_targets_the_crates_log_with() {
    let mut used = BTreeSet::new();
    for file in daemon_sources() {
        let source = std::fs::read_to_string(&file).expect("read source");
        targets_in(&file, &source, &mut used);
    }
    let accepted: BTreeSet<String> = edged_config::LOG_TARGETS
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(
        accepted, used,
        "edged_config::LOG_TARGETS (left) must list exactly the targets the crates log with (right)"
    );
}

#[test]
fn raising_media_relay_shows_the_relay_threads_debug_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edged.toml");
    std::fs::write(&cfg, config_for(34)).unwrap();
    // RUST_LOG=warn (set by Edged::start): nothing below warn shows unless a level is raised.
    let mut e = Edged::start(dir.path(), Some(&cfg));
    e.wait_ready(Duration::from_secs(60));

    let out = Command::new(edgectl())
        .arg("--socket")
        .arg(&e.socket)
        .args(["log-level", "media_relay", "debug"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Draining stops the relay threads, and each says so at debug level.
    e.signal(Signal::SIGTERM);
    assert_eq!(e.wait_exit(Duration::from_secs(60)), Some(0));
    let mut log = String::new();
    e.child
        .stderr
        .take()
        .expect("edged's stderr")
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.lines().any(|l| l.contains("DEBUG")
            && l.contains("media_relay:")
            && l.contains("relay thread stopped")),
        "no media_relay debug line after `edgectl log-level media_relay debug`:\n{log}"
    );
    // Only that target was raised.
    assert!(
        !log.lines()
            .any(|l| l.contains("DEBUG") && l.contains("av_edge:")),
        "av_edge logged at debug although only media_relay was raised:\n{log}"
    );
}
