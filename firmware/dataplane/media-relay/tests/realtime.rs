//! Opt-in real-time options: the relay thread runs SCHED_FIFO and the memory is locked when
//! the process may do so, and relaying works either way.

use media_relay::{Command, Realtime, RelayPlane};

mod common;
use common::{addr, install, plane_config, relay_socket, udp};

/// Scheduling policy (field 41 of /proc/.../stat) of this process's thread named `name`.
fn policy_of(name: &str) -> Option<u32> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // Fields after the parenthesised command name start at field 3.
        let rest = stat.rsplit_once(')')?.1;
        return rest.split_whitespace().nth(41 - 3)?.parse().ok();
    }
    None
}

fn locked_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmLck:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn fifo_and_locked_memory_when_permitted() {
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    let plane = RelayPlane::start_with(
        plane_config(edged_metrics::Registry::new()),
        tx,
        Realtime {
            fifo_priority: Some(10),
            lock_memory: true,
        },
    )
    .unwrap_or_else(|e| panic!("start: {e}"));
    let client = udp("127.0.0.1:0");
    let peer = udp("127.0.0.1:0");
    let relay = relay_socket("127.0.0.1:0");
    let cmds = [
        install(1, &client, relay),
        Command::Permit {
            id: 1,
            peer: addr(&peer).ip(),
            ports: 1..=u16::MAX,
        },
        Command::Bind {
            id: 1,
            channel: 0x4000,
            peer: addr(&peer),
        },
    ];
    for c in cmds {
        plane.command(0, c).unwrap_or_else(|e| panic!("{e}"));
    }
    // No wait for the relay thread to take these commands: it drains its command queue at
    // the start of every turn, before the datagrams of the turn.
    client
        .send_to(&[0x40, 0x00, 0x00, 0x02, 7, 9], plane.listener_addrs()[0])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 16];
    let (n, _) = peer.recv_from(&mut buf).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        &buf[..n],
        &[7, 9],
        "relaying works under the real-time options"
    );

    if !nix::unistd::geteuid().is_root() {
        println!("skipped: real-time checks need root; relaying was checked");
        return;
    }
    assert_eq!(
        policy_of("relay-0"),
        Some(libc::SCHED_FIFO as u32),
        "relay thread is SCHED_FIFO"
    );
    assert!(locked_kb() > 0, "memory is locked");
    plane.shutdown();
}
