//! Bad input, slow clients, limits, idle sessions and drain: each gets a clear close and
//! never disturbs a session that is running beside it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::start;
use edged_role::Role;
use session_key::wire::{self, MAX_PAYLOAD};
use session_key::CloseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type RawTls = tokio_rustls::client::TlsStream<TcpStream>;

async fn raw_tls(t: &common::TestEdge, alpn: bool) -> RawTls {
    let alpns: &[&[u8]] = if alpn { &[wire::ALPN_CLIENT] } else { &[] };
    let cfg = webconf_connector::pem::client_config(&t.ca_pem, None, alpns).unwrap();
    let tcp = TcpStream::connect(t.ext()).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Reads frames until a CLOSE and returns its code (within 5 s).
async fn close_code_of(s: &mut RawTls) -> CloseCode {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some((f, used)) = wire::decode(&buf, MAX_PAYLOAD).unwrap() {
                if f.kind == wire::CLOSE {
                    return wire::parse_close(f.payload).0;
                }
                buf.drain(..used);
                continue;
            }
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "stream ended without CLOSE");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a CLOSE frame in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_close_and_never_disturbs_others() {
    let t = start(|_| {}).await;
    let (_c, _) = t.echo_connector(&[]).await;
    let client = t.client();
    let mut bystander = client
        .connect_quic(t.ext(), "m", &t.token("m"))
        .await
        .unwrap();
    let mut bystander_tls = client
        .connect_tls(t.ext(), "m", &t.token("m"))
        .await
        .unwrap();

    // Garbage as the first frame.
    let mut s = raw_tls(&t, true).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(close_code_of(&mut s).await, CloseCode::MalformedFrame);
    // An oversize first frame is refused on its header alone.
    let mut s = raw_tls(&t, true).await;
    s.write_all(&[wire::HELLO, 0xff, 0xff]).await.unwrap();
    assert_eq!(close_code_of(&mut s).await, CloseCode::FrameTooLarge);
    // TLS without ALPN.
    let mut s = raw_tls(&t, false).await;
    assert_eq!(close_code_of(&mut s).await, CloseCode::NoAlpn);
    // An oversize DATA frame after admission.
    let mut s = raw_tls(&t, true).await;
    let hello = wire::Hello {
        conference_id: "m".into(),
        token: t.token("m"),
    };
    s.write_all(&hello.encode().unwrap()).await.unwrap();
    s.write_all(&[wire::DATA, 0xff, 0xff]).await.unwrap();
    assert_eq!(close_code_of(&mut s).await, CloseCode::FrameTooLarge);
    // An unknown frame type after admission.
    let mut s = raw_tls(&t, true).await;
    s.write_all(&hello.encode().unwrap()).await.unwrap();
    s.write_all(&[0x7f, 0, 0]).await.unwrap();
    assert_eq!(close_code_of(&mut s).await, CloseCode::MalformedFrame);
    // Not TLS at all: the handshake fails and is counted.
    let mut tcp = TcpStream::connect(t.ext()).await.unwrap();
    tcp.write_all(&[0u8; 600]).await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut sink))
        .await
        .expect("closed");
    // QUIC without ALPN: rustls refuses the handshake.
    let no_alpn = webconf_connector::pem::client_config(&t.ca_pem, None, &[]).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(no_alpn).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let r = ep.connect(t.ext(), "localhost").unwrap().await;
    assert!(r.is_err(), "QUIC without ALPN must not connect");

    assert!(t.edge.status().counters["handshake_failed"] >= 2);
    // The sessions beside all that still work.
    for s in [&mut bystander, &mut bystander_tls] {
        s.send(b"still here").await.unwrap();
        assert_eq!(s.recv_exact(10).await.unwrap(), b"still here");
    }
}

#[tokio::test]
async fn unknown_quic_version_gets_version_negotiation() {
    let t = start(|_| {}).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut pkt = vec![0xc0u8];
    pkt.extend_from_slice(&0x1a2a_3a4au32.to_be_bytes());
    pkt.push(8);
    pkt.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    pkt.push(8);
    pkt.extend_from_slice(&[9, 10, 11, 12, 13, 14, 15, 16]);
    pkt.resize(1200, 0);
    sock.send_to(&pkt, t.ext()).await.unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("a version negotiation packet")
        .unwrap();
    assert!(n >= 7 + 16 + 4, "short reply");
    assert_eq!(
        &buf[1..5],
        &[0, 0, 0, 0],
        "version 0 marks Version Negotiation"
    );
    // The reply echoes our connection ids swapped and lists QUIC v1.
    assert_eq!(&buf[6..14], &[9, 10, 11, 12, 13, 14, 15, 16]);
    let versions: Vec<u32> = buf[23..n]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert!(versions.contains(&1), "{versions:x?}");
}

#[tokio::test]
async fn silent_clients_are_cut_at_the_first_frame_deadline() {
    let t = start(|c| c.webconf_edge.first_frame_timeout_ms = 400).await;
    let (_c, _) = t.echo_connector(&[]).await;
    // TLS done, no first frame.
    let started = Instant::now();
    let mut s = raw_tls(&t, true).await;
    assert_eq!(close_code_of(&mut s).await, CloseCode::FirstFrameTimeout);
    let took = started.elapsed();
    // The upper bound leaves a loaded machine room for the handshake and still tells the
    // configured 400 ms from the default 5 s.
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // Half a first frame is no better.
    let mut s = raw_tls(&t, true).await;
    s.write_all(&[wire::HELLO, 0, 40, 1]).await.unwrap();
    assert_eq!(close_code_of(&mut s).await, CloseCode::FirstFrameTimeout);
    // Plain TCP that never starts TLS is closed too.
    let mut tcp = TcpStream::connect(t.ext()).await.unwrap();
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut sink))
        .await
        .expect("closed at the deadline")
        .ok();
    // QUIC connected but no stream opened.
    let tls = webconf_connector::pem::client_config(&t.ca_pem, None, &[wire::ALPN_CLIENT]).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = ep.connect(t.ext(), "localhost").unwrap().await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(3), conn.closed())
        .await
        .unwrap();
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(
                CloseCode::from_quic(c.error_code.into_inner()),
                Some(CloseCode::FirstFrameTimeout)
            )
        }
        other => panic!("unexpected close {other}"),
    }
    assert!(t.edge.close_count(CloseCode::FirstFrameTimeout) >= 4);
    t.assert_no_leak().await;
}

#[tokio::test]
async fn address_and_conference_limits_refuse_clearly() {
    let t = start(|c| {
        c.webconf_edge.max_sessions_per_address = 2;
        c.webconf_edge.max_sessions_per_conference = 1;
    })
    .await;
    let (_c, _) = t.echo_connector(&[]).await;
    let client = t.client();
    let a = client
        .connect_tls(t.ext(), "one", &t.token("one"))
        .await
        .unwrap();
    let err = client
        .connect_quic(t.ext(), "one", &t.token("one"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.close_code(), Some(CloseCode::ConferenceLimit), "{err}");
    let b = client
        .connect_quic(t.ext(), "two", &t.token("two"))
        .await
        .unwrap();
    let err = client
        .connect_tls(t.ext(), "three", &t.token("three"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.close_code(), Some(CloseCode::AddressLimit), "{err}");
    assert_eq!(a.close().await.unwrap(), CloseCode::Normal);
    assert_eq!(b.close().await.unwrap(), CloseCode::Normal);
    t.assert_no_leak().await;
    // Slots came back.
    let c = client
        .connect_tls(t.ext(), "one", &t.token("one"))
        .await
        .unwrap();
    assert_eq!(c.close().await.unwrap(), CloseCode::Normal);
}

#[tokio::test]
async fn idle_sessions_are_closed() {
    let t = start(|c| c.webconf_edge.idle_timeout_secs = 1).await;
    let (_c, _) = t.echo_connector(&[]).await;
    let client = t.client();
    for quic in [false, true] {
        let mut s = if quic {
            client
                .connect_quic(t.ext(), "m", &t.token("m"))
                .await
                .unwrap()
        } else {
            client
                .connect_tls(t.ext(), "m", &t.token("m"))
                .await
                .unwrap()
        };
        s.send(b"hi").await.unwrap();
        s.recv_exact(2).await.unwrap();
        let err = tokio::time::timeout(Duration::from_secs(5), s.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.close_code(),
            Some(CloseCode::IdleTimeout),
            "quic={quic}: {err}"
        );
    }
    t.assert_no_leak().await;
}

#[tokio::test]
async fn bandwidth_cap_paces_a_session() {
    // 400 kbit/s = 50 kB/s each way; one second of burst, so 150 kB needs about 2 s.
    let t = start(|c| c.webconf_edge.session_bandwidth_kbps = 400).await;
    let (_c, _) = t.echo_connector(&[]).await;
    let mut s = t
        .client()
        .connect_tls(t.ext(), "m", &t.token("m"))
        .await
        .unwrap();
    let msg = vec![7u8; 150_000];
    let started = Instant::now();
    s.send(&msg).await.unwrap();
    assert_eq!(s.recv_exact(msg.len()).await.unwrap(), msg);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "cap not applied: {took:?}"
    );
}

#[tokio::test]
async fn drain_stops_new_clients_and_closes_the_rest_at_the_deadline() {
    let t = start(|_| {}).await;
    let (_c, _) = t.echo_connector(&[]).await;
    let client = t.client();
    let mut tls = client
        .connect_tls(t.ext(), "m", &t.token("m"))
        .await
        .unwrap();
    let mut quic = client
        .connect_quic(t.ext(), "m", &t.token("m"))
        .await
        .unwrap();
    let edge = t.edge.clone();
    let drain = tokio::spawn(async move { edge.drain(Duration::from_secs(3)).await });
    // The drain runs in its own task: wait (bounded) until it has begun.
    assert!(
        common::wait_until(Duration::from_secs(30), || matches!(
            t.edge.status().health,
            edged_role::Health::Draining
        ))
        .await
    );
    // In-flight sessions keep working until the deadline.
    tls.send(b"x").await.unwrap();
    assert_eq!(tls.recv_exact(1).await.unwrap(), b"x");
    assert!(
        client
            .connect_tls(t.ext(), "m", &t.token("m"))
            .await
            .is_err(),
        "no new TLS clients"
    );
    assert!(
        client
            .connect_quic(t.ext(), "m", &t.token("m"))
            .await
            .is_err(),
        "no new QUIC clients"
    );
    for s in [&mut tls, &mut quic] {
        let err = tokio::time::timeout(Duration::from_secs(30), s.recv())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.close_code(), Some(CloseCode::Draining), "{err}");
    }
    tokio::time::timeout(Duration::from_secs(30), drain)
        .await
        .unwrap()
        .unwrap();
    t.assert_no_leak().await;
}

#[tokio::test]
async fn apply_changes_limits_live_and_reports_port_moves() {
    let t = start(|_| {}).await;
    let old = common::config(|_| {});
    let mut new = old.clone();
    new.webconf_edge.idle_timeout_secs = 42;
    new.webconf_edge.external_port = 1;
    let bundle = tempfile::tempdir().unwrap();
    new.webconf_edge.connector_bundle_dir = Some(bundle.path().join("b"));
    let setup = |c: &edged_config::Config| edged_role::Setup {
        config: Arc::new(c.clone()),
        tls: Arc::new(edged_tls::TlsMaterial::load(c, &t.store).unwrap()),
    };
    let report = t.edge.apply(&setup(&old), &setup(&new)).await;
    assert!(
        report
            .applied
            .iter()
            .any(|l| l.starts_with("webconf_edge.idle_timeout_secs: 300 -> 42")),
        "{report:?}"
    );
    assert!(
        report
            .restart_required
            .iter()
            .any(|l| l.starts_with("webconf_edge.external_port")),
        "{report:?}"
    );
    // The demo bundle appears on reload, and its key ring verifies the edge's tokens.
    let b = webconf_connector::bundle::Bundle::load(&bundle.path().join("b")).unwrap();
    assert_eq!(b.external, t.ext());
    let ring = session_key::KeyRing::from_records(b.keys).unwrap();
    let now = webconf_edge::keys::unix_now();
    let limits = session_key::TokenLimits {
        max_lifetime_secs: 3_600,
        max_clock_skew_secs: 0,
    };
    assert!(ring.verify(&t.token("m"), "m", now, &limits).is_ok());
}

/// A counter from the role's status (zero until it exists).
fn counter(t: &common::TestEdge, name: &str) -> u64 {
    t.edge.status().counters.get(name).copied().unwrap_or(0)
}

/// A QUIC endpoint of its own that speaks the client ALPN but sends nothing by itself.
fn raw_quic(t: &common::TestEdge) -> quinn::Endpoint {
    let tls = webconf_connector::pem::client_config(&t.ca_pem, None, &[wire::ALPN_CLIENT]).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    ep
}

#[tokio::test]
async fn a_quic_client_proves_its_address_with_a_retry_first() {
    let t = start(|_| {}).await;
    let (_c, _) = t.echo_connector(&[]).await;
    let client = t.client();
    for n in 1..=2 {
        let mut s = client
            .connect_quic(t.ext(), "m", &t.token("m"))
            .await
            .unwrap();
        s.send(b"hi").await.unwrap();
        assert_eq!(s.recv_exact(2).await.unwrap(), b"hi");
        assert_eq!(s.close().await.unwrap(), CloseCode::Normal);
        // Every new connection: the edge hands out no address-validation tokens to skip it.
        assert_eq!(counter(&t, "quic_retries"), n, "connection {n}");
    }
    t.assert_no_leak().await;

    // Switched off, the handshake starts on the first Initial.
    let t = start(|c| c.webconf_edge.quic_retry = false).await;
    let (_c, _) = t.echo_connector(&[]).await;
    let s = t
        .client()
        .connect_quic(t.ext(), "m", &t.token("m"))
        .await
        .unwrap();
    assert_eq!(s.close().await.unwrap(), CloseCode::Normal);
    assert_eq!(counter(&t, "quic_retries"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_handshakes_beyond_the_cap_are_refused_while_sessions_run() {
    let t = start(|c| {
        c.webconf_edge.quic_max_handshakes = 2;
        // The holders below stay unadmitted for the whole test.
        c.webconf_edge.first_frame_timeout_ms = 30_000;
    })
    .await;
    let (_c, _) = t.echo_connector(&[]).await;
    let client = t.client();
    let mut running = client
        .connect_quic(t.ext(), "m", &t.token("m"))
        .await
        .unwrap();
    assert_eq!(
        counter(&t, "quic_handshakes"),
        0,
        "an admitted session holds no place"
    );

    // Two connections that finish the handshake and never send their first frame.
    let ep = raw_quic(&t);
    let mut holders = Vec::new();
    for _ in 0..2 {
        holders.push(ep.connect(t.ext(), "localhost").unwrap().await.unwrap());
    }
    assert!(
        common::wait_until(Duration::from_secs(5), || counter(&t, "quic_handshakes")
            == 2)
        .await,
        "holders not counted: {}",
        counter(&t, "quic_handshakes")
    );
    let err = ep
        .connect(t.ext(), "localhost")
        .unwrap()
        .await
        .expect_err("a third handshake is refused");
    match &err {
        quinn::ConnectionError::ConnectionClosed(c) => {
            assert_eq!(
                c.error_code,
                quinn::TransportErrorCode::CONNECTION_REFUSED,
                "{err}"
            )
        }
        other => panic!("unexpected error {other}"),
    }
    assert_eq!(counter(&t, "quic_handshake_refusals"), 1);
    // The refused attempt went through Retry first, like every new attempt.
    assert!(counter(&t, "quic_retries") >= 4);

    // The running session is untouched, over QUIC and beside it over TLS.
    running.send(b"still here").await.unwrap();
    assert_eq!(running.recv_exact(10).await.unwrap(), b"still here");
    let mut tls = client
        .connect_tls(t.ext(), "m", &t.token("m"))
        .await
        .unwrap();
    tls.send(b"tls").await.unwrap();
    assert_eq!(tls.recv_exact(3).await.unwrap(), b"tls");

    // A holder that leaves gives its place back, and a new client gets in.
    holders.pop().unwrap().close(0u32.into(), b"bye");
    assert!(
        common::wait_until(Duration::from_secs(5), || counter(&t, "quic_handshakes")
            == 1)
        .await,
        "place not given back"
    );
    let mut late = client
        .connect_quic(t.ext(), "m", &t.token("m"))
        .await
        .unwrap();
    late.send(b"in").await.unwrap();
    assert_eq!(late.recv_exact(2).await.unwrap(), b"in");
    for s in [running, tls, late] {
        assert_eq!(s.close().await.unwrap(), CloseCode::Normal);
    }
    drop(holders);
    ep.close(0u32.into(), b"");
    assert!(
        common::wait_until(Duration::from_secs(5), || counter(&t, "quic_handshakes")
            == 0)
        .await,
        "places leaked"
    );
    t.assert_no_leak().await;
}

/// Sends `bytes` one at a time, `gap` apart, until the peer stops taking them; returns
/// how many were written.
async fn trickle<W: tokio::io::AsyncWrite + Unpin>(mut w: W, bytes: &[u8], gap: Duration) -> usize {
    for (i, b) in bytes.iter().enumerate() {
        if w.write_all(&[*b]).await.is_err() || w.flush().await.is_err() {
            return i;
        }
        tokio::time::sleep(gap).await;
    }
    bytes.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_frame_sent_a_byte_at_a_time_is_cut_at_the_deadline() {
    // Every byte arrives well inside the 500 ms deadline of the one before it, and the
    // whole HELLO would take about 10 s: only a deadline for the whole frame cuts it.
    let t = start(|c| c.webconf_edge.first_frame_timeout_ms = 500).await;
    let (_c, sessions) = t.echo_connector(&[]).await;
    let hello = wire::Hello {
        conference_id: "m".into(),
        token: t.token("m"),
    }
    .encode()
    .unwrap();
    let gap = Duration::from_millis(100);

    // TLS
    let started = Instant::now();
    let s = raw_tls(&t, true).await;
    let (mut read, write) = tokio::io::split(s);
    let writer = tokio::spawn({
        let hello = hello.clone();
        async move { trickle(write, &hello, gap).await }
    });
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(8), read.read_to_end(&mut got))
        .await
        .expect("the edge closes the connection")
        .ok();
    let took = started.elapsed();
    let (f, _) = wire::decode(&got, MAX_PAYLOAD)
        .unwrap()
        .expect("a CLOSE frame");
    assert_eq!(f.kind, wire::CLOSE);
    assert_eq!(wire::parse_close(f.payload).0, CloseCode::FirstFrameTimeout);
    assert!(took < Duration::from_secs(5), "{took:?}");
    writer.abort();

    // QUIC: the same trickle on the first stream.
    let ep = raw_quic(&t);
    let conn = ep.connect(t.ext(), "localhost").unwrap().await.unwrap();
    let started = Instant::now();
    let (send, _recv) = conn.open_bi().await.unwrap();
    let writer = tokio::spawn({
        let hello = hello.clone();
        async move { trickle(send, &hello, gap).await }
    });
    let reason = tokio::time::timeout(Duration::from_secs(8), conn.closed())
        .await
        .expect("the edge closes the connection");
    let took = started.elapsed();
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => assert_eq!(
            CloseCode::from_quic(c.error_code.into_inner()),
            Some(CloseCode::FirstFrameTimeout)
        ),
        other => panic!("unexpected close {other}"),
    }
    assert!(took < Duration::from_secs(5), "{took:?}");
    let sent = writer.await.unwrap();
    assert!(
        sent < hello.len(),
        "the whole HELLO went out ({sent} bytes)"
    );
    assert_eq!(sessions.load(std::sync::atomic::Ordering::SeqCst), 0);
    t.assert_no_leak().await;
}
