//! What edged does as root before it drops to the service account: it hands over only the
//! top of its own directories and the admin socket it bound, never through a symlink and
//! never recursively; and with `av_edge.relay_lock_memory` on it keeps working after the
//! drop although every later allocation is locked memory.
//!
//! These tests need root (CI runs as root); as another user they say so and check nothing,
//! since edged then has no privileges to drop.

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{bare_config, config_for, set, Edged};

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    println!("skipped: edged drops privileges only when started as root");
    false
}

fn owner_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .uid()
}

/// A root-owned 0600 file, like the ones a planted link would point at.
fn root_file(path: &Path) {
    std::fs::write(path, "root's\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn links_planted_in_the_data_directory_do_not_hand_their_targets_over() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let outside_file = dir.path().join("shadow");
    root_file(&outside_file);
    let outside_dir = dir.path().join("etc");
    std::fs::create_dir(&outside_dir).unwrap();
    root_file(&outside_dir.join("inner"));
    // What a compromised edged could leave behind before init restarts it as root.
    std::os::unix::fs::symlink(&outside_file, data.join("planted-file")).unwrap();
    std::os::unix::fs::symlink(&outside_dir, data.join("planted-dir")).unwrap();
    std::fs::create_dir(data.join("sub")).unwrap();
    std::os::unix::fs::symlink(&outside_file, data.join("sub").join("deeper")).unwrap();

    let cfg = dir.path().join("edged.toml");
    std::fs::write(&cfg, bare_config()).unwrap();
    let mut e = Edged::start(&data, Some(&cfg));
    e.wait_ready(Duration::from_secs(60));

    for p in [&outside_file, &outside_dir, &outside_dir.join("inner")] {
        assert_eq!(owner_of(p), 0, "{} was handed over", p.display());
    }
    assert_eq!(
        owner_of(&data.join("sub")),
        0,
        "edged recursed into its data directory"
    );
    // What edged does hand over: the top of its data directory and the socket it bound.
    let account = owner_of(&e.socket);
    assert_ne!(account, 0, "the admin socket stays root's");
    assert_eq!(owner_of(&data), account, "the data directory's top");
}

#[test]
fn an_admin_socket_in_a_shared_directory_leaves_the_directory_alone() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let shared = dir.path().join("run");
    std::fs::create_dir(&shared).unwrap();
    root_file(&shared.join("other-service.pid"));
    let cfg = dir.path().join("edged.toml");
    std::fs::write(&cfg, bare_config()).unwrap();
    let mut e = Edged::start_with_socket(&data, &shared.join("admin.sock"), Some(&cfg));
    e.wait_ready(Duration::from_secs(60));
    assert_eq!(owner_of(&shared), 0, "the shared directory was handed over");
    assert_eq!(
        owner_of(&shared.join("other-service.pid")),
        0,
        "a file beside the socket was handed over"
    );
    assert_ne!(owner_of(&e.socket), 0, "the socket edged bound is its own");
}

#[test]
fn a_socket_directory_edged_creates_is_its_own() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = dir.path().join("run-edged");
    let cfg = dir.path().join("edged.toml");
    std::fs::write(&cfg, bare_config()).unwrap();
    let mut e = Edged::start_with_socket(&data, &run.join("admin.sock"), Some(&cfg));
    e.wait_ready(Duration::from_secs(60));
    let account = owner_of(&e.socket);
    assert_ne!(account, 0);
    assert_eq!(owner_of(&run), account);
    // The service account removes its socket on exit.
    e.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(e.wait_exit(Duration::from_secs(30)), Some(0));
    assert!(!e.socket.exists(), "the admin socket is removed on exit");
}

fn locked_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmLck:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Threads of the control runtime (its workers and its blocking pool share the name).
fn control_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "edged-control")
                })
                .count()
        })
        .unwrap_or(0)
}

fn change(e: &Edged, i: u32) {
    let (code, body) = set(
        &e.socket,
        "av_edge.max_allocations_per_user",
        &(100 + i).to_string(),
    )
    .unwrap_or_else(|err| panic!("change {i}: edged stopped answering: {err}"));
    assert_eq!(code, 200, "change {i}: {body}");
}

#[test]
fn locked_memory_keeps_working_after_the_drop() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edged.toml");
    let text = config_for(48).replace(
        "[av_edge]\n",
        "[av_edge]\nrelay_lock_memory = true\nrelay_threads = 1\n",
    );
    assert!(text.contains("relay_lock_memory = true"), "{text}");
    std::fs::write(&cfg, text).unwrap();
    let mut e = Edged::start(dir.path(), Some(&cfg));
    e.wait_ready(Duration::from_secs(60));
    let pid = e.child.id();
    assert!(locked_kb(pid) > 0, "relay_lock_memory did not lock memory");

    // A change commits on the blocking pool. Its idle threads end after tokio's keep-alive
    // (10 s); the next change then needs a new thread, whose stack is new locked memory
    // after the drop. That is where edged failed ("OS can't spawn worker thread").
    change(&e, 0);
    let with_pool = control_threads(pid);
    let deadline = Instant::now() + Duration::from_secs(60);
    while control_threads(pid) >= with_pool {
        assert!(
            Instant::now() < deadline,
            "the blocking pool's idle thread did not end"
        );
        assert!(e.child.try_wait().unwrap().is_none(), "edged died");
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 1..=5 {
        change(&e, i);
    }
    assert!(
        e.child.try_wait().unwrap().is_none(),
        "edged died after the drop with memory locked"
    );
    assert!(locked_kb(pid) > 0, "the relay's memory is no longer locked");
}
