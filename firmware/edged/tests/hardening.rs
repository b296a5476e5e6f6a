//! Process-wide protections of a running edged: every thread (including the ones that parse
//! network input) carries `no_new_privs`, core dumps are off, the descriptor limit is raised,
//! and the store with its keys and secrets is private to the service account.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use common::{config_for, Edged};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The soft limits edged inherits here are loosened (core dumps allowed) and tightened (few
/// descriptors) on purpose, so the test sees edged set its own rather than inherit ours.
/// This file holds only tests that want these inherited limits.
fn inherit_permissive_core_and_low_nofile() {
    let (_, core_hard) = getrlimit(Resource::RLIMIT_CORE).unwrap();
    setrlimit(Resource::RLIMIT_CORE, core_hard, core_hard).unwrap();
    let (_, nofile_hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, nofile_hard.min(512), nofile_hard).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn limits_row(limits: &str, name: &str) -> (String, String) {
    let row = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} in /proc/PID/limits:\n{limits}"));
    let mut cols = row[name.len()..].split_whitespace();
    (
        cols.next().unwrap().to_owned(),
        cols.next().unwrap().to_owned(),
    )
}

#[test]
fn every_thread_has_no_new_privs_and_limits_are_set_at_start() {
    inherit_permissive_core_and_low_nofile();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edged.toml");
    // All four roles on: their runtimes and relay threads are the threads that parse
    // network input.
    std::fs::write(&cfg, config_for(47)).unwrap();
    let mut e = Edged::start(dir.path(), Some(&cfg));
    e.wait_ready(Duration::from_secs(60));
    let pid = e.child.id();

    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        // A thread may end between listing and reading; only the ones still there count.
        let Ok(status) = std::fs::read_to_string(task.join("status")) else {
            continue;
        };
        let name = status.lines().next().unwrap_or_default().to_owned();
        assert!(
            status.lines().any(|l| l == "NoNewPrivs:\t1"),
            "thread {} ({name}) lacks no_new_privs",
            task.display()
        );
        threads += 1;
    }
    assert!(threads > 4, "expected the runtimes' threads, saw {threads}");

    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert_eq!(
        limits_row(&limits, "Max core file size"),
        ("0".to_owned(), "0".to_owned()),
        "{limits}"
    );
    let (soft, hard) = limits_row(&limits, "Max open files");
    assert_eq!(soft, hard, "{limits}");
}

#[test]
fn fresh_data_directory_and_store_are_private() {
    inherit_permissive_core_and_low_nofile();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("edged.toml");
    std::fs::write(&cfg, common::bare_config()).unwrap();
    let mut e = Edged::start(&data, Some(&cfg));
    e.wait_ready(Duration::from_secs(60));
    assert_eq!(mode_of(&data), 0o700, "data directory mode");
    assert_eq!(mode_of(&data.join("edged.redb")), 0o600, "store file mode");
}
