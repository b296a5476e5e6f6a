//! The edge's own protections over real sockets: handshake and idle timeouts, CRLF
//! keep-alive (RFC 5626 3.5.1) holding a connection open, and the per-address limits.

mod common;

use std::time::{Duration, Instant};

use common::*;
use edged_role::Role;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

async fn edge_with(
    adjust: impl FnOnce(&mut edged_config::Config),
) -> (Site, std::sync::Arc<access_edge::AccessEdge>) {
    let mut site = Site::new(&["127.0.0.1", "127.0.0.2"]);
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![director.addr.to_string()];
    adjust(&mut site.config);
    let edge = site.start().await;
    (site, edge)
}

/// True when the edge closes `tcp` within `wait` (reads until end of stream).
async fn tcp_closed_within(tcp: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// The edge's counter `name` once it reaches `at_least` (or after a generous deadline,
/// whatever it is then): the edge counts a refusal around the moment it closes.
async fn counter_reaching(edge: &access_edge::AccessEdge, name: &str, at_least: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + edged_test_tools::wait::WAIT;
    loop {
        let n = edge.status().counters[name];
        if n >= at_least || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_connection_that_never_handshakes_is_closed_after_the_handshake_timeout() {
    let (_site, edge) = edge_with(|c| c.access_edge.handshake_timeout_secs = 1).await;
    let opened = Instant::now();
    let mut tcp = TcpStream::connect(listener(&edge, "remote users"))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert!(tcp_closed_within(&mut tcp, edged_test_tools::wait::WAIT).await);
    let waited = opened.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert_eq!(counter_reaching(&edge, "handshake_failures", 1).await, 1);
}

#[tokio::test]
async fn idle_connections_are_closed_and_crlf_keepalives_hold_them_open() {
    let (site, edge) = edge_with(|c| c.access_edge.idle_timeout_secs = 1).await;
    let addr = listener(&edge, "remote users");
    let mut silent = connect(site.client_config(None), addr, "127.0.0.1").await;
    let mut pinging = connect(site.client_config(None), addr, "127.0.0.1").await;

    // The pinging client sends a CRLFCRLF every 400 ms for 2.4 s, each answered by CRLF.
    for _ in 0..6 {
        pinging.send("\r\n\r\n").await;
        assert_eq!(pinging.read_raw(Duration::from_secs(1)).await, b"\r\n");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        silent.closed_within(edged_test_tools::wait::WAIT).await,
        "the silent connection was closed after 1 s"
    );
    // Still open after more than twice the idle timeout: a request is served.
    pinging
        .send(
            &request("OPTIONS", "z9hG4bKka", "ka-1", "")
                .replace("Max-Forwards: 70", "Max-Forwards: 0"),
        )
        .await;
    let r = pinging.recv().await;
    assert_eq!(status_of(&r), 483, "{r}");
    let c = edge.status().counters;
    assert!(c["keepalives"] >= 6, "{c:?}");
    assert!(c["idle_closed"] >= 1, "{c:?}");
}

#[tokio::test]
async fn one_address_is_held_to_its_connection_rate_and_count() {
    let (site, edge) = edge_with(|c| {
        c.access_edge.connection_rate_per_ip = 3;
        c.access_edge.handshake_rate_per_ip = 3;
        c.access_edge.max_connections_per_ip = 100;
    })
    .await;
    let addr = listener(&edge, "remote users");
    // A burst of 6: the first 3 are served, the rest are closed before any TLS.
    // All six are opened before any is examined, so the bucket has no time to refill.
    let mut burst = Vec::new();
    for _ in 0..6 {
        burst.push(
            TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("connect: {e}")),
        );
    }
    // The edge refuses (counts, then closes) as it accepts: once all three refusals are
    // counted, the refused connections are closed and the rest are served.
    assert_eq!(counter_reaching(&edge, "connections_refused", 3).await, 3);
    let mut served = Vec::new();
    let mut refused = 0;
    for mut tcp in burst {
        if tcp_closed_within(&mut tcp, Duration::from_millis(300)).await {
            refused += 1;
        } else {
            served.push(tcp);
        }
    }
    assert_eq!((served.len(), refused), (3, 3));
    assert_eq!(edge.status().counters["connections_refused"], 3);
    drop(served);

    // After a second the bucket has refilled: a full TLS session works again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut peer = connect(site.client_config(None), addr, "127.0.0.1").await;
    peer.send("\r\n\r\n").await;
    assert_eq!(peer.read_raw(Duration::from_secs(1)).await, b"\r\n");
}

#[tokio::test]
async fn one_address_may_hold_only_its_share_of_connections() {
    let (site, edge) = edge_with(|c| {
        c.access_edge.connection_rate_per_ip = 100;
        c.access_edge.handshake_rate_per_ip = 100;
        c.access_edge.max_connections_per_ip = 2;
    })
    .await;
    let addr = listener(&edge, "remote users");
    let cfg = site.client_config(None);
    let _a = connect(cfg.clone(), addr, "127.0.0.1").await;
    let mut b = connect(cfg.clone(), addr, "127.0.0.1").await;
    let mut third = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert!(tcp_closed_within(&mut third, edged_test_tools::wait::WAIT).await);
    assert_eq!(counter_reaching(&edge, "connections_refused", 1).await, 1);
    // Closing one frees its place.
    b.send("\r\n\r\n").await;
    assert_eq!(b.read_raw(Duration::from_secs(1)).await, b"\r\n");
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = connect(cfg, addr, "127.0.0.1").await;
    again.send("\r\n\r\n").await;
    assert_eq!(again.read_raw(Duration::from_secs(1)).await, b"\r\n");
}
