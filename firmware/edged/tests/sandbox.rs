//! The seccomp filters of a running edged, read from `/proc/PID/task/*/status`: every thread
//! runs under the process filter, and each relay thread under the relay filter as well.

mod common;

use std::time::Duration;

use common::{config_for, Edged};

fn field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(":\t"))
}

#[test]
fn every_thread_runs_under_its_class_filter() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edged.toml");
    // All four roles on: their runtimes and the relay threads parse network input.
    std::fs::write(&cfg, config_for(93)).unwrap();
    let mut e = Edged::start(dir.path(), Some(&cfg));
    e.wait_ready(Duration::from_secs(60));
    let pid = e.child.id();

    let (mut relays, mut others) = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        // A thread may end between listing and reading; only the ones still there count.
        let Ok(status) = std::fs::read_to_string(task.join("status")) else {
            continue;
        };
        let name = field(&status, "Name").unwrap_or_default();
        assert_eq!(
            field(&status, "Seccomp"),
            Some("2"),
            "thread {} ({name}) runs without a filter",
            task.display()
        );
        // The relay filter stacks on the process filter.
        let expected = if name.starts_with("relay-") { "2" } else { "1" };
        assert_eq!(
            field(&status, "Seccomp_filters"),
            Some(expected),
            "thread {} ({name})",
            task.display()
        );
        if name.starts_with("relay-") {
            relays += 1;
        } else {
            others += 1;
        }
    }
    assert!(relays >= 1, "no relay thread seen");
    assert!(others > 3, "expected the runtimes' threads, saw {others}");
}
