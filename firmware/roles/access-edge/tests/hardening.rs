//! Hardening against hostile peers over real sockets: a message trickled byte by byte, a
//! peer that stops reading, a request flood on one connection, the external connection
//! cap, and flow tokens forged to reach another user's connection.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use access_edge::AccessEdge;
use common::*;
use edged_role::Role;
use edged_tls::rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

async fn edge_with(adjust: impl FnOnce(&mut edged_config::Config)) -> (Site, Arc<AccessEdge>) {
    let mut site = Site::new(&["127.0.0.1", "127.0.0.2"]);
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![director.addr.to_string()];
    adjust(&mut site.config);
    let edge = site.start().await;
    (site, edge)
}

/// The edge's counter `name` once it reaches `at_least`, or whatever it is at the deadline.
async fn counter_reaching(edge: &AccessEdge, name: &str, at_least: u64, wait: Duration) -> u64 {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let n = edge.status().counters[name];
        if n >= at_least || tokio::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A TLS connection to a remote-user listener whose socket accepts little at a time.
async fn tls_with_small_window(
    site: &Site,
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let sock = TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket: {e}"));
    sock.set_recv_buffer_size(4096)
        .unwrap_or_else(|e| panic!("rcvbuf: {e}"));
    let tcp = sock
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let name = ServerName::try_from("127.0.0.1").unwrap_or_else(|e| panic!("{e}"));
    TlsConnector::from(site.client_config(None))
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS: {e}"))
}

/// A request the edge answers itself (483: no hops left), echoing its `vias` Via lines.
fn hopless(branch: &str, vias: &[String]) -> String {
    let mut r =
        request("OPTIONS", branch, branch, "").replace("Max-Forwards: 70", "Max-Forwards: 0");
    for v in vias {
        r = r.replacen("Max-Forwards:", &format!("Via: {v}\r\nMax-Forwards:"), 1);
    }
    r
}

#[tokio::test]
async fn a_message_trickled_byte_by_byte_is_cut_at_its_deadline() {
    let (site, edge) = edge_with(|c| {
        c.access_edge.idle_timeout_secs = 60;
        c.access_edge.message_timeout_secs = 1;
    })
    .await;
    let addr = listener(&edge, "remote users");
    let name = ServerName::try_from("127.0.0.1").unwrap_or_else(|e| panic!("{e}"));
    let tcp = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let tls = TlsConnector::from(site.client_config(None))
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS: {e}"));
    let (mut rd, mut wr) = tokio::io::split(tls);
    let started = Instant::now();
    // One byte every 100 ms, each well within the idle timeout: at most 10 s of it.
    let trickle = tokio::spawn(async move {
        let text = request("OPTIONS", "z9hG4bKslow", "slow-1", "");
        for b in text.as_bytes().iter().take(100) {
            if wr.write_all(&[*b]).await.is_err() || wr.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 1024];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(30), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => continue,
            Err(_) => break false,
        }
    };
    let waited = started.elapsed();
    trickle.abort();
    assert!(closed, "the trickling connection stayed open");
    assert!(
        waited < Duration::from_secs(9),
        "closed at the message deadline, not after the trickle ended: {waited:?}"
    );
    assert_eq!(
        counter_reaching(&edge, "message_timeouts", 1, Duration::from_secs(5)).await,
        1
    );
    assert_eq!(edge.status().counters["idle_closed"], 0);
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_closed_and_others_are_served() {
    let (site, edge) = edge_with(|c| {
        c.access_edge.idle_timeout_secs = 60;
        c.access_edge.write_timeout_secs = 1;
        c.access_edge.remote_user_requests_per_sec = 10_000;
    })
    .await;
    let addr = listener(&edge, "remote users");
    let mut stalled = tls_with_small_window(&site, addr).await;
    // Each answer echoes six 7 KB Via lines: about 42 KB the peer never reads.
    let vias: Vec<String> = (0..6)
        .map(|i| {
            format!(
                "SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bKv{i};pad={}",
                "a".repeat(7000)
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    while sent < 1000 && Instant::now() < deadline {
        let req = hopless(&format!("z9hG4bKst{sent}"), &vias);
        match tokio::time::timeout(Duration::from_secs(2), stalled.write_all(req.as_bytes())).await
        {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
        if edge.status().counters["write_timeouts"] >= 1 {
            break;
        }
    }
    assert_eq!(
        counter_reaching(&edge, "write_timeouts", 1, Duration::from_secs(20)).await,
        1,
        "the edge still writes to a peer that stopped reading ({sent} requests sent)"
    );
    // Meanwhile and afterwards, another user is served at once.
    let mut other = connect(site.client_config(None), addr, "127.0.0.1").await;
    other.send(&hopless("z9hG4bKother", &[])).await;
    assert_eq!(status_of(&other.recv().await), 483);
    // The stalled connection is gone from the edge.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while edge.status().counters["connections_open"] > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(edge.status().counters["connections_open"], 1);
}

#[tokio::test]
async fn a_remote_user_over_its_request_rate_gets_503_with_retry_after() {
    let (site, edge) = edge_with(|c| {
        c.access_edge.remote_user_requests_per_sec = 5;
    })
    .await;
    let addr = listener(&edge, "remote users");
    let mut flood = connect(site.client_config(None), addr, "127.0.0.1").await;
    let mut all = String::new();
    for i in 0..60 {
        all.push_str(&hopless(&format!("z9hG4bKfl{i}"), &[]));
    }
    flood.send(&all).await;
    let (mut served, mut refused) = (0, 0);
    for _ in 0..60 {
        let r = flood.recv().await;
        match status_of(&r) {
            483 => served += 1,
            503 => {
                assert_eq!(header(&r, "Retry-After"), Some("1"), "{r}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {r}"),
        }
    }
    // A burst of five seconds' worth, then refusals (the bucket refills at 5/s meanwhile).
    assert!(
        served >= 25 && refused >= 1,
        "{served} served, {refused} refused"
    );
    assert_eq!(edge.status().counters["rate_limited"], refused);
    // The limit is the connection's: another one is served.
    let mut other = connect(site.client_config(None), addr, "127.0.0.1").await;
    other.send(&hopless("z9hG4bKfresh", &[])).await;
    assert_eq!(status_of(&other.recv().await), 483);
}

#[tokio::test]
async fn the_external_listeners_share_one_connection_cap() {
    let (site, edge) = edge_with(|c| {
        c.access_edge.max_connections = 2;
    })
    .await;
    let users = listener(&edge, "remote users");
    let cfg = site.client_config(None);
    let mut a = connect(cfg.clone(), users, "127.0.0.1").await;
    let _b = connect(cfg.clone(), users, "127.0.0.1").await;
    // A third connection, even to the other external listener, is closed before any TLS.
    let mut third = TcpStream::connect(listener(&edge, "federation"))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let mut buf = [0u8; 64];
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(30), third.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    );
    assert!(closed, "a third external connection was served");
    assert_eq!(
        counter_reaching(&edge, "connections_refused", 1, Duration::from_secs(5)).await,
        1
    );
    // The Director pool's listener is not part of it.
    let director_cfg = site.client_config(Some(("director", &["127.0.0.2"])));
    let mut director = connect(director_cfg, listener(&edge, "Director pool"), "127.0.0.2").await;
    director.send("\r\n\r\n").await;
    assert_eq!(director.read_raw(Duration::from_secs(5)).await, b"\r\n");
    a.send("\r\n\r\n").await;
    assert_eq!(a.read_raw(Duration::from_secs(5)).await, b"\r\n");
}

/// A request from inside to alice, routed by `route`.
fn from_inside(branch: &str, route: &str) -> String {
    format!(
        "MESSAGE sip:alice@192.0.2.10:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.2:5061;branch={branch}\r\nRoute: {route}\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=b1\r\nTo: <sip:alice@example.test>\r\nCall-ID: {branch}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn a_forged_or_altered_flow_token_is_refused_and_never_routes() {
    let mut site = Site::new(&["127.0.0.1", "127.0.0.2"]);
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![director.addr.to_string()];
    let edge = site.start().await;
    let mut alice = connect(
        site.client_config(None),
        listener(&edge, "remote users"),
        "127.0.0.1",
    )
    .await;
    alice
        .send(&request("MESSAGE", "z9hG4bKal1", "al-1", ""))
        .await;
    let mut dir = director.accept().await;
    let m = next_request(&mut dir).await;
    dir.send(&respond(&m, 200, "OK", "")).await;
    assert_eq!(status_of(&alice.recv().await), 200);
    // The entry facing the Director names alice's connection.
    let genuine = headers(&m, "Record-Route")
        .first()
        .map(|rr| rr.split(',').next().unwrap_or(rr).trim().to_owned())
        .unwrap_or_else(|| panic!("no Record-Route: {m}"));
    let user = genuine
        .strip_prefix("<sip:")
        .and_then(|r| r.split_once('@'))
        .map(|(u, _)| u.to_owned())
        .unwrap_or_else(|| panic!("{genuine}"));
    let id = user
        .strip_prefix("ae.c.")
        .and_then(|r| r.split('.').next())
        .unwrap_or_else(|| panic!("{user}"));
    let bare = genuine.replacen(&user, &format!("ae.c.{id}"), 1);
    let mut flipped = user.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let altered = genuine.replacen(&user, &String::from_utf8_lossy(&flipped), 1);

    let inside = site.client_config(Some(("director", &["127.0.0.2"])));
    let mut bob = connect(inside, listener(&edge, "Director pool"), "127.0.0.2").await;
    for (branch, route) in [("z9hG4bKbare", &bare), ("z9hG4bKalt", &altered)] {
        bob.send(&from_inside(branch, route)).await;
        let r = bob.recv().await;
        assert_eq!(status_of(&r), 403, "{route}: {r}");
    }
    assert_eq!(edge.status().counters["forged_flow_tokens"], 2);
    // The genuine token still reaches alice, and it is the first thing she receives.
    bob.send(&from_inside("z9hG4bKreal", &genuine)).await;
    let got = alice.recv().await;
    assert!(
        got.starts_with("MESSAGE ") && got.contains("z9hG4bKreal"),
        "{got}"
    );
}
