//! Waiting for what a test reads, with a deadline generous enough that only a real hang
//! fails (tests must pass while other work loads every core), never for a fixed time.

use std::time::{Duration, Instant};

/// How long a test waits for something it expects before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `ready` until it holds; panics naming `what` after `WAIT`.
pub fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether some socket of this network namespace is bound to UDP `port` (any address),
/// from the kernel's tables: binding the port to find out could take it from the program
/// the test waits for.
pub fn udp_port_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(1))
                .any(|local| format!("{local} ").ends_with(&needle))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_port_is_seen_and_a_freed_one_is_not() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = sock.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        assert!(udp_port_bound(port));
        drop(sock);
        assert!(!udp_port_bound(port));
    }
}
