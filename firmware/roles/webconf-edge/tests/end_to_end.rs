//! End to end over loopback: clients (TLS and QUIC) -> edge -> connector (echo).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{connect, start, CrashableConnector};
use session_key::{CloseCode, KeyRing, ParticipantRole, SessionSecret};
use webconf_connector::client::{Client, ClientError};

async fn echo_round(
    client: &Client,
    edge: std::net::SocketAddr,
    quic: bool,
    conf: &str,
    token: &str,
    i: usize,
) {
    let mut s = connect(client, edge, quic, conf, token)
        .await
        .unwrap_or_else(|e| panic!("client {i} quic={quic}: {e}"));
    for round in 0..3usize {
        // Sizes from a few bytes to several frames' worth.
        let len = 1 + (i * 997 + round * 7919) % 40_000;
        let msg: Vec<u8> = (0..len).map(|k| (k + i + round) as u8).collect();
        s.send(&msg).await.unwrap();
        let back = s.recv_exact(len).await.unwrap();
        assert_eq!(back, msg, "client {i} round {round}");
    }
    assert_eq!(s.close().await.unwrap(), CloseCode::Normal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_clients_over_tls_and_quic_echo_end_to_end() {
    // 400 handshakes at once on a shared two-core machine: the deadline here is about
    // slow clients, not about how fast this machine completes the burst.
    let t = start(|c| c.webconf_edge.first_frame_timeout_ms = 30_000).await;
    let (_c, sessions) = t.echo_connector(&[]).await;
    let client = t.client();
    let token = t.token("big-meeting");
    let mut tasks = Vec::new();
    for i in 0..400usize {
        let (client, token, edge) = (client.clone(), token.clone(), t.ext());
        tasks.push(tokio::spawn(async move {
            echo_round(&client, edge, i % 2 == 1, "big-meeting", &token, i).await;
        }));
    }
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    use edged_role::Role;
    let counters = t.edge.status().counters;
    assert_eq!(counters["admitted_tls"], 200);
    assert_eq!(counters["admitted_quic"], 200);
    assert_eq!(
        sessions.load(Ordering::SeqCst),
        400,
        "each session was its own stream"
    );
    assert!(counters["bytes_in"] > 400 * 3);
    assert_eq!(counters["bytes_in"], counters["bytes_out"]);
    t.assert_no_leak().await;
}

#[tokio::test]
async fn invalid_expired_unknown_and_wrong_conference_keys_forward_nothing() {
    let t = start(|_| {}).await;
    let (_c, sessions) = t.echo_connector(&[]).await;
    let client = t.client();
    let now = webconf_edge::keys::unix_now();
    let ring = t.edge.key_ring();
    let expired = ring
        .mint("m1", ParticipantRole::Attendee, 10, now - 100)
        .unwrap();
    let wrong_conf = ring
        .mint("other", ParticipantRole::Attendee, 600, now)
        .unwrap();
    let mut stranger = KeyRing::default();
    stranger
        .insert(SessionSecret::new(77, &[3u8; 32], now).unwrap())
        .unwrap();
    let unknown = stranger
        .mint("m1", ParticipantRole::Attendee, 600, now)
        .unwrap();
    let current_id = ring.current(now).unwrap().id;
    let mut forger = KeyRing::default();
    forger
        .insert(SessionSecret::new(current_id, &[4u8; 32], now).unwrap())
        .unwrap();
    let forged = forger
        .mint("m1", ParticipantRole::Presenter, 600, now)
        .unwrap();
    // What the client hears, and the reason the edge counts.
    let cases = [
        (
            "garbage",
            "!!not-a-key!!".to_string(),
            CloseCode::KeyMalformed,
            CloseCode::KeyMalformed,
        ),
        (
            "expired",
            expired,
            CloseCode::KeyRefused,
            CloseCode::KeyExpired,
        ),
        (
            "wrong conference",
            wrong_conf,
            CloseCode::KeyRefused,
            CloseCode::WrongConference,
        ),
        (
            "unknown key",
            unknown,
            CloseCode::KeyRefused,
            CloseCode::KeyUnknown,
        ),
        (
            "forged",
            forged,
            CloseCode::KeyRefused,
            CloseCode::KeyBadSignature,
        ),
    ];
    for (what, token, heard, counted) in &cases {
        for quic in [false, true] {
            let r = connect(&client, t.ext(), quic, "m1", token).await;
            let err = r
                .err()
                .unwrap_or_else(|| panic!("{what} (quic={quic}) was admitted"));
            assert_eq!(err.close_code(), Some(*heard), "{what} quic={quic}: {err}");
            assert_eq!(
                t.edge.close_count(*counted),
                if quic { 2 } else { 1 },
                "{what} counted"
            );
        }
    }
    assert_eq!(
        t.edge.close_count(CloseCode::KeyRefused),
        0,
        "only reasons are counted"
    );
    assert_eq!(
        sessions.load(Ordering::SeqCst),
        0,
        "no refused session reached the server"
    );
    // A good key still works afterwards.
    let mut s = client
        .connect_tls(t.ext(), "m1", &t.token("m1"))
        .await
        .unwrap();
    s.send(b"ok").await.unwrap();
    assert_eq!(s.recv_exact(2).await.unwrap(), b"ok");
    assert_eq!(sessions.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refusals_never_tell_key_ids_apart_and_token_age_is_bounded() {
    let t = start(|_| {}).await;
    let (_c, sessions) = t.echo_connector(&[]).await;
    let client = t.client();
    let now = webconf_edge::keys::unix_now();
    let ring = t.edge.key_ring();
    let id = ring.current(now).unwrap().id;
    let stranger =
        KeyRing::from_records([SessionSecret::new(77, &[3u8; 32], now).unwrap()]).unwrap();
    let forger = KeyRing::from_records([SessionSecret::new(id, &[4u8; 32], now).unwrap()]).unwrap();
    let mint = |r: &KeyRing, lifetime: u64, at: u64| {
        r.mint("m1", ParticipantRole::Attendee, lifetime, at)
            .unwrap()
    };
    let cases = [
        ("unknown key id", mint(&stranger, 600, now)),
        ("existing key id, wrong secret", mint(&forger, 600, now)),
        ("expired", mint(&ring, 10, now - 100)),
        // Genuine, and its own expiry a year away, but minted two days ago: older than
        // the edge's maximum lifetime (8 h by default).
        (
            "older than the maximum lifetime",
            mint(&ring, 365 * 86_400, now - 2 * 86_400),
        ),
        ("issued an hour ahead", mint(&ring, 600, now + 3_600)),
    ];
    for quic in [false, true] {
        let mut heard = Vec::new();
        for (what, token) in &cases {
            let err = connect(&client, t.ext(), quic, "m1", token)
                .await
                .err()
                .unwrap_or_else(|| panic!("{what} (quic={quic}) was admitted"));
            let text = err.to_string();
            assert!(
                !text.contains("77") && !text.contains("key id"),
                "{what} (quic={quic}) names a key id: {text}"
            );
            heard.push((what, err.close_code(), text));
        }
        for h in &heard[1..] {
            assert_eq!(
                (h.1, &h.2),
                (heard[0].1, &heard[0].2),
                "{} and {} are told apart (quic={quic})",
                h.0,
                heard[0].0
            );
        }
    }
    assert_eq!(
        sessions.load(Ordering::SeqCst),
        0,
        "no refused session reached the server"
    );
    // Inside the edge every reason is counted apart (TLS and QUIC each).
    for (reason, n) in [
        (CloseCode::KeyUnknown, 2),
        (CloseCode::KeyBadSignature, 2),
        (CloseCode::KeyExpired, 2),
        (CloseCode::KeyLifetime, 4),
    ] {
        assert_eq!(t.edge.close_count(reason), n, "{reason}");
    }
    // A token within every limit is still admitted.
    let mut s = client
        .connect_quic(t.ext(), "m1", &t.token("m1"))
        .await
        .unwrap();
    s.send(b"ok").await.unwrap();
    assert_eq!(s.recv_exact(2).await.unwrap(), b"ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_connector_leaks_nothing_and_clients_hear_server_gone() {
    let t = start(|_| {}).await;
    let crashing =
        CrashableConnector::start(t.edge.internal_addr(), t.connector_tls(), vec!["c1".into()]);
    t.wait_servers(1).await;
    let client = t.client();
    let token = t.token("c1");
    let mut open = Vec::new();
    for i in 0..20 {
        let mut s = connect(&client, t.ext(), i % 2 == 1, "c1", &token)
            .await
            .unwrap();
        s.send(b"ping").await.unwrap();
        assert_eq!(s.recv_exact(4).await.unwrap(), b"ping");
        open.push(s);
    }
    assert_eq!(crashing.sessions.load(Ordering::SeqCst), 20);
    crashing.crash();
    for (i, mut s) in open.into_iter().enumerate() {
        let err = tokio::time::timeout(Duration::from_secs(20), s.recv())
            .await
            .expect("the edge notices the silent server")
            .unwrap_err();
        assert_eq!(
            err.close_code(),
            Some(CloseCode::ServerGone),
            "session {i}: {err}"
        );
    }
    t.assert_no_leak().await;
    assert!(common::wait_until(Duration::from_secs(30), || t.edge.connected_servers() == 0).await);
    // Without a server, clients get a clear refusal.
    let err = client
        .connect_tls(t.ext(), "c1", &token)
        .await
        .err()
        .unwrap();
    assert_eq!(err.close_code(), Some(CloseCode::NoServer));
    // The restarted connector takes new sessions.
    let (_c, sessions) = t.echo_connector(&["c1"]).await;
    let mut s = client.connect_quic(t.ext(), "c1", &token).await.unwrap();
    s.send(b"again").await.unwrap();
    assert_eq!(s.recv_exact(5).await.unwrap(), b"again");
    assert_eq!(sessions.load(Ordering::SeqCst), 1);
}

/// Forwards one TCP connection both ways until `cut` turns true; from then on it reads and
/// drops everything and keeps both sockets open: a server behind a pulled cable or a power
/// cut, which sends no FIN and no RST.
async fn relay_until_cut(
    listener: tokio::net::TcpListener,
    to: std::net::SocketAddr,
    cut: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (near, _) = listener.accept().await.unwrap();
    let far = tokio::net::TcpStream::connect(to).await.unwrap();
    let (near_rd, near_wr) = near.into_split();
    let (far_rd, far_wr) = far.into_split();
    async fn pump(
        mut rd: tokio::net::tcp::OwnedReadHalf,
        mut wr: tokio::net::tcp::OwnedWriteHalf,
        cut: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !*cut.borrow() && wr.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
    tokio::join!(
        pump(near_rd, far_wr, cut.clone()),
        pump(far_rd, near_wr, cut)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_is_found_by_keepalive_and_clients_hear_server_gone() {
    let t = start(|_| {}).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let via = listener.local_addr().unwrap();
    let (cut, cut_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(relay_until_cut(listener, t.edge.internal_addr(), cut_rx));
    let c = std::sync::Arc::new(
        webconf_connector::connector::Connector::connect(
            via,
            "localhost",
            t.connector_tls(),
            &["quiet".to_string()],
        )
        .await
        .unwrap(),
    );
    let c2 = c.clone();
    tokio::spawn(async move { c2.serve_echo().await });
    t.wait_servers(1).await;
    let client = t.client();
    let token = t.token("quiet");
    let mut open = Vec::new();
    for i in 0..4 {
        let mut s = connect(&client, t.ext(), i % 2 == 1, "quiet", &token)
            .await
            .unwrap();
        s.send(b"hello").await.unwrap();
        assert_eq!(s.recv_exact(5).await.unwrap(), b"hello");
        open.push(s);
    }
    let cut_at = tokio::time::Instant::now();
    cut.send(true).unwrap();
    for (i, mut s) in open.into_iter().enumerate() {
        let err = tokio::time::timeout(Duration::from_secs(30), s.recv())
            .await
            .expect("the keep-alive finds the silent server")
            .unwrap_err();
        assert_eq!(
            err.close_code(),
            Some(CloseCode::ServerGone),
            "session {i}: {err}"
        );
    }
    // PING every 2 s, 8 s to answer: noticed within about 10 s, not at once.
    let noticed = cut_at.elapsed();
    assert!(
        noticed >= Duration::from_secs(2) && noticed <= Duration::from_secs(20),
        "{noticed:?}"
    );
    assert!(common::wait_until(Duration::from_secs(30), || t.edge.connected_servers() == 0).await);
    t.assert_no_leak().await;
}

#[tokio::test]
async fn cleanly_stopped_connector_closes_its_sessions_at_once() {
    let t = start(|_| {}).await;
    let (c, _) = t.echo_connector(&[]).await;
    let client = t.client();
    let mut s = client
        .connect_tls(t.ext(), "m", &t.token("m"))
        .await
        .unwrap();
    s.send(b"x").await.unwrap();
    s.recv_exact(1).await.unwrap();
    c.close().await;
    let err = tokio::time::timeout(Duration::from_secs(5), s.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.close_code(), Some(CloseCode::ServerGone), "{err}");
    t.assert_no_leak().await;
}

#[tokio::test]
async fn conferences_go_to_the_server_that_registered_them() {
    let t = start(|_| {}).await;
    let (_a, on_a) = t.echo_connector(&["alpha"]).await;
    let (_b, on_b) = t.echo_connector(&["beta"]).await;
    t.wait_servers(2).await;
    let client = t.client();
    for _ in 0..6 {
        let mut s = client
            .connect_tls(t.ext(), "alpha", &t.token("alpha"))
            .await
            .unwrap();
        s.send(b"a").await.unwrap();
        s.recv_exact(1).await.unwrap();
    }
    for _ in 0..4 {
        let mut s = client
            .connect_quic(t.ext(), "beta", &t.token("beta"))
            .await
            .unwrap();
        s.send(b"b").await.unwrap();
        s.recv_exact(1).await.unwrap();
    }
    assert_eq!(on_a.load(Ordering::SeqCst), 6);
    assert_eq!(on_b.load(Ordering::SeqCst), 4);
}

#[test]
fn close_errors_read_clearly() {
    let e = ClientError::Closed {
        code: CloseCode::ServerGone,
        reason: "x".into(),
    };
    assert_eq!(
        e.to_string(),
        "the edge closed the session: server_gone (12) x"
    );
}

#[tokio::test]
async fn rotated_keys_keep_old_tokens_for_the_overlap() {
    let t = start(|_| {}).await;
    let (_c, _) = t.echo_connector(&[]).await;
    let client = t.client();
    let old = t.token("m");
    let ring = t.edge.rotate_keys(600, edged_role::Actor::Edgectl).unwrap();
    let now = webconf_edge::keys::unix_now();
    assert_eq!(ring.current(now).map(|k| k.id), Some(2));
    let new = t.token("m");
    assert_eq!(session_key::token::parse(&new).unwrap().claims.key_id, 2);
    for token in [&old, &new] {
        let mut s = client.connect_quic(t.ext(), "m", token).await.unwrap();
        s.send(b"k").await.unwrap();
        assert_eq!(s.recv_exact(1).await.unwrap(), b"k");
    }
    // The rotation is in the store: a restarted edge would load the same ring.
    let stored = webconf_edge::keys::load(&t.store).unwrap();
    assert_eq!(stored.records(), ring.records());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_send_ahead_of_reading_its_echo() {
    let t = start(|_| {}).await;
    let (_c, _sessions) = t.echo_connector(&[]).await;
    let client = t.client();
    let token = t.token("ahead");
    for quic in [false, true] {
        let mut s = connect(&client, t.ext(), quic, "ahead", &token)
            .await
            .unwrap();
        // 512 KiB ahead: within one stream's receive window on the link (1 MiB), which
        // holds the echo while the client is not reading, whatever the sockets buffer.
        let msg: Vec<u8> = (0..64 * 1024).map(|k| (k % 251) as u8).collect();
        for i in 0..8 {
            tokio::time::timeout(Duration::from_secs(10), s.send(&msg))
                .await
                .unwrap_or_else(|_| panic!("quic={quic}: send {i} stalled"))
                .unwrap();
        }
        for i in 0..8 {
            let back = tokio::time::timeout(Duration::from_secs(10), s.recv_exact(msg.len()))
                .await
                .unwrap_or_else(|_| panic!("quic={quic}: echo {i} stalled"))
                .unwrap();
            assert_eq!(back, msg, "quic={quic}: echo {i}");
        }
        assert_eq!(s.close().await.unwrap(), CloseCode::Normal);
    }
    t.assert_no_leak().await;
}

#[tokio::test]
async fn a_client_quiet_in_the_middle_of_a_frame_loses_nothing() {
    // Past the edge's quiet period (2 s) a session swaps its read buffer for a small one;
    // half a frame already received must survive the swap.
    let t = start(|_| {}).await;
    let (_c, _sessions) = t.echo_connector(&[]).await;
    let client = t.client();
    let token = t.token("pause");
    let mut s = client.connect_tls(t.ext(), "pause", &token).await.unwrap();
    let payload: Vec<u8> = (0..10_000u32).map(|k| (k % 253) as u8).collect();
    let mut frame = Vec::new();
    session_key::wire::encode(session_key::wire::DATA, &payload, &mut frame).unwrap();
    let (head, tail) = frame.split_at(4_000);
    s.send_raw(head).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    s.send_raw(tail).await.unwrap();
    assert_eq!(s.recv_exact(payload.len()).await.unwrap(), payload);
    // And after the swap, a message larger than the small buffer still arrives whole.
    let big = vec![7u8; 100_000];
    s.send(&big).await.unwrap();
    assert_eq!(s.recv_exact(big.len()).await.unwrap(), big);
    assert_eq!(s.close().await.unwrap(), CloseCode::Normal);
    t.assert_no_leak().await;
}
