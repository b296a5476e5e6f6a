//! The proxy over real TLS: a remote user's client, the edge, and a Director.

mod common;

use std::time::Duration;

use common::*;
use edged_role::Role;

const NAME: &str = "127.0.0.1";

async fn rig() -> (Site, std::sync::Arc<access_edge::AccessEdge>, Director) {
    let mut site = Site::new(&["edge.example.test", "127.0.0.1", "127.0.0.2"]);
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![director.addr.to_string()];
    let edge = site.start().await;
    (site, edge, director)
}

async fn user(site: &Site, edge: &access_edge::AccessEdge) -> SipPeer {
    connect(
        site.client_config(None),
        listener(edge, "remote users"),
        NAME,
    )
    .await
}

#[tokio::test]
async fn invite_ack_bye_dialog_traverses_the_edge_both_ways() {
    let (site, edge, director) = rig().await;
    let mut alice = user(&site, &edge).await;
    let forged = "P-Asserted-Identity: <sip:ceo@example.test>\r\nms-edge-proxy-message-trust: ms-source-type=AuthorizedServer\r\n";
    alice
        .send(&request("INVITE", "z9hG4bKinv1", "call-1", forged))
        .await;
    assert_eq!(status_of(&alice.recv().await), 100);

    let mut dir = director.accept().await;
    let inv = next_request(&mut dir).await;
    assert!(
        inv.starts_with("INVITE sip:bob@example.test SIP/2.0"),
        "{inv}"
    );
    let vias = headers(&inv, "Via");
    assert!(
        vias[0].contains("branch=z9hG4bKae"),
        "our Via on top: {vias:?}"
    );
    assert!(
        vias[1].contains("received=127.0.0.1") && vias[1].contains("rport="),
        "{vias:?}"
    );
    assert_eq!(header(&inv, "Max-Forwards"), Some("69"));
    assert_eq!(headers(&inv, "Record-Route").len(), 2, "{inv}");
    assert!(
        header(&inv, "P-Asserted-Identity").is_none(),
        "forged identity stripped"
    );
    let trust = headers(&inv, "ms-edge-proxy-message-trust");
    assert_eq!(trust.len(), 1, "{inv}");
    assert!(trust[0].contains("ms-source-type=RemoteUser"), "{trust:?}");

    dir.send(&respond(&inv, 180, "Ringing", "")).await;
    let ok = respond(
        &inv,
        200,
        "OK",
        "Contact: <sip:bob@10.1.1.1:5061;transport=tls>\r\n",
    );
    dir.send(&ok).await;
    let ringing = alice.recv().await;
    assert_eq!(status_of(&ringing), 180, "{ringing}");
    assert_eq!(
        headers(&ringing, "Via").len(),
        1,
        "our Via removed: {ringing}"
    );
    let ok_seen = alice.recv().await;
    assert_eq!(status_of(&ok_seen), 200);

    // ACK for the 2xx with the route set reversed, as the caller computes it.
    let mut rr: Vec<&str> = headers(&ok_seen, "Record-Route");
    rr.reverse();
    let ack = format!(
        "ACK sip:bob@10.1.1.1:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.10:5061;branch=z9hG4bKack1\r\nRoute: {}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.test>;tag=a1\r\nTo: {}\r\nCall-ID: call-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        rr.join(", "),
        header(&ok_seen, "To").unwrap_or("")
    );
    alice.send(&ack).await;
    let ack_in = next_request(&mut dir).await;
    assert!(ack_in.starts_with("ACK "), "{ack_in}");

    // BYE from inside, routed by the Record-Route entries (callee's order) to alice's connection.
    let inv_rr = headers(&inv, "Record-Route");
    let bye = format!(
        "BYE sip:alice@192.0.2.10:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.2:5061;branch=z9hG4bKbye1\r\nRoute: {}\r\nMax-Forwards: 70\r\nFrom: {}\r\nTo: <sip:alice@example.test>;tag=a1\r\nCall-ID: call-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        inv_rr.join(", "),
        header(&ok, "To").unwrap_or("")
    );
    dir.send(&bye).await;
    let bye_in = alice.recv().await;
    assert!(bye_in.starts_with("BYE sip:alice@192.0.2.10"), "{bye_in}");
    assert!(
        header(&bye_in, "Route").is_none(),
        "our routes popped: {bye_in}"
    );
    assert!(header(&bye_in, "ms-edge-proxy-message-trust").is_none());
    alice.send(&respond(&bye_in, 200, "OK", "")).await;
    let bye_ok = next_request(&mut dir).await;
    assert_eq!(status_of(&bye_ok), 200, "{bye_ok}");
    assert_eq!(headers(&bye_ok, "Via").len(), 1);

    let st = edge.status();
    assert!(st.counters["requests"] >= 3, "{:?}", st.counters);
    assert!(st.counters["responses_relayed"] >= 3, "{:?}", st.counters);
}

#[tokio::test]
async fn cancel_stops_the_invite_and_the_edge_acks_the_487() {
    let (site, edge, director) = rig().await;
    let mut alice = user(&site, &edge).await;
    let (mut dir, inv) = ringing_invite(&mut alice, &director, "z9hG4bKinv2", "call-2").await;

    let cancel = request("INVITE", "z9hG4bKinv2", "call-2", "").replacen("INVITE", "CANCEL", 2);
    alice.send(&cancel).await;
    let c200 = alice.recv().await;
    assert_eq!(status_of(&c200), 200, "{c200}");
    assert!(header(&c200, "CSeq").is_some_and(|c| c.ends_with("CANCEL")));

    let cancel_in = next_request(&mut dir).await;
    assert!(
        cancel_in.starts_with("CANCEL sip:bob@example.test"),
        "{cancel_in}"
    );
    assert_eq!(
        headers(&cancel_in, "Via")[0],
        headers(&inv, "Via")[0],
        "CANCEL carries the INVITE's branch"
    );
    dir.send(&respond(&cancel_in, 200, "OK", "")).await;
    dir.send(&respond(&inv, 487, "Request Terminated", ""))
        .await;
    let ack = next_request(&mut dir).await;
    assert!(
        ack.starts_with("ACK sip:bob@example.test"),
        "edge ACKs the 487 hop by hop: {ack}"
    );
    let term = alice.recv().await;
    assert_eq!(status_of(&term), 487, "{term}");

    // The caller's ACK for the 487 is absorbed, never forwarded.
    let ack = request("INVITE", "z9hG4bKinv2", "call-2", "").replacen("INVITE", "ACK", 2);
    alice.send(&ack).await;
    let silence = dir.recv_within(Duration::from_millis(400)).await;
    assert!(
        silence.as_deref().is_none_or(|m| m.starts_with("OPTIONS")),
        "{silence:?}"
    );

    // CANCEL of nothing.
    let stray = request("CANCEL", "z9hG4bKnothing", "call-x", "");
    alice.send(&stray).await;
    assert_eq!(status_of(&alice.recv().await), 481);
}

#[tokio::test]
async fn register_challenge_passes_through_with_path() {
    let (site, edge, director) = rig().await;
    let mut alice = user(&site, &edge).await;
    alice
        .send(&request(
            "REGISTER",
            "z9hG4bKreg1",
            "reg-1",
            "Expires: 3600\r\n",
        ))
        .await;
    let mut dir = director.accept().await;
    let reg = next_request(&mut dir).await;
    assert!(reg.starts_with("REGISTER "), "{reg}");
    let path = header(&reg, "Path").unwrap_or_else(|| panic!("Path added: {reg}"));
    assert!(path.contains("ae.c.") && path.contains(";lr"), "{path}");
    assert!(header(&reg, "Record-Route").is_none());
    dir.send(&respond(
        &reg,
        401,
        "Unauthorized",
        "WWW-Authenticate: Digest realm=\"example.test\", nonce=\"abc\"\r\n",
    ))
    .await;
    let challenge = alice.recv().await;
    assert_eq!(status_of(&challenge), 401);
    assert!(header(&challenge, "WWW-Authenticate").is_some_and(|w| w.contains("nonce=\"abc\"")));
    let auth = "Authorization: Digest username=\"alice\", realm=\"example.test\", nonce=\"abc\", uri=\"sip:example.test\", response=\"00\"\r\n";
    alice
        .send(&request("REGISTER", "z9hG4bKreg2", "reg-1", auth).replace("CSeq: 1", "CSeq: 2"))
        .await;
    let reg2 = next_request(&mut dir).await;
    assert!(header(&reg2, "Authorization").is_some());
    dir.send(&respond(&reg2, 200, "OK", "")).await;
    assert_eq!(status_of(&alice.recv().await), 200);

    // The Director reaches the registered user through the Path it stored.
    let msg = format!(
        "MESSAGE sip:alice@192.0.2.10:5061;transport=tls SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.2:5061;branch=z9hG4bKm1\r\nRoute: {path}\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=b\r\nTo: <sip:alice@example.test>\r\nCall-ID: m-1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
    );
    dir.send(&msg).await;
    let m = alice.recv().await;
    assert!(m.starts_with("MESSAGE sip:alice@"), "{m}");
}

#[tokio::test]
async fn bad_input_gets_4xx_or_is_dropped_and_never_disturbs_others() {
    let (site, edge, director) = rig().await;
    let mut alice = user(&site, &edge).await;
    let mut mallory = user(&site, &edge).await;

    // Malformed request: a bad CSeq.
    let bad = request("OPTIONS", "z9hG4bKbad1", "bad-1", "")
        .replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
    mallory.send(&bad).await;
    let r = mallory.recv().await;
    assert_eq!(status_of(&r), 400, "{r}");
    // Malformed response: dropped silently.
    mallory
        .send(
            "SIP/2.0 2000 OK\r\nVia: SIP/2.0/TLS x;branch=z9hG4bKae00\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
    // Max-Forwards exhausted.
    mallory
        .send(
            &request("OPTIONS", "z9hG4bKmf", "mf-1", "")
                .replace("Max-Forwards: 70", "Max-Forwards: 0"),
        )
        .await;
    assert_eq!(status_of(&mallory.recv().await), 483);
    // A scanner gets nothing at all.
    mallory
        .send(&request(
            "OPTIONS",
            "z9hG4bKscan",
            "scan-1",
            "User-Agent: friendly-scanner\r\n",
        ))
        .await;
    assert!(mallory
        .recv_within(Duration::from_millis(400))
        .await
        .is_none());
    // Keep-alive ping answered with a pong.
    mallory.send("\r\n\r\n").await;
    assert_eq!(mallory.read_raw(Duration::from_secs(2)).await, b"\r\n");

    // Oversize closes the connection.
    let huge = format!(
        "MESSAGE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.9;branch=z9hG4bKbig\r\nContent-Length: 100000\r\n\r\n{}",
        "x".repeat(70_000)
    );
    mallory.send_bytes(huge.as_bytes()).await;
    assert!(
        mallory.closed_within(Duration::from_secs(3)).await,
        "oversize message closes the connection"
    );

    // Meanwhile alice is served normally.
    alice
        .send(&request("OPTIONS", "z9hG4bKok1", "ok-1", ""))
        .await;
    let mut dir = director.accept().await;
    let opt = next_request(&mut dir).await;
    assert!(opt.starts_with("OPTIONS sip:bob@example.test"), "{opt}");
    assert!(
        header(&opt, "Call-ID") == Some("ok-1"),
        "nothing of mallory's reached the director: {opt}"
    );
    dir.send(&respond(&opt, 200, "OK", "")).await;
    assert_eq!(status_of(&alice.recv().await), 200);

    let c = edge.status().counters;
    assert!(
        c["malformed_requests"] >= 1 && c["malformed_responses"] >= 1,
        "{c:?}"
    );
    assert_eq!(c["scanner_requests"], 1);
    assert_eq!(c["oversize_closed"], 1);
    assert!(c["keepalives"] >= 1);
}

#[tokio::test]
async fn no_reachable_next_hop_gives_503_and_degraded_health() {
    let mut site = Site::new(&["127.0.0.1", "127.0.0.2"]);
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.2:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = closed.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(closed);
    site.config.access_edge.next_hops = vec![addr.to_string()];
    let edge = site.start().await;
    let mut alice = user(&site, &edge).await;
    alice
        .send(&request("INVITE", "z9hG4bKnh", "nh-1", ""))
        .await;
    assert_eq!(status_of(&alice.recv().await), 100);
    assert_eq!(status_of(&alice.recv().await), 503);
    assert!(matches!(
        edge.status().health,
        edged_role::Health::Degraded(_)
    ));
    assert_eq!(edge.status().counters["no_next_hop"], 1);
}

#[tokio::test]
async fn failover_to_the_second_director_and_timeout_408() {
    let mut site = Site::new(&["127.0.0.1", "127.0.0.2"]);
    let closed = std::net::TcpListener::bind("127.0.0.2:0").unwrap_or_else(|e| panic!("{e}"));
    let dead = closed.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(closed);
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![dead.to_string(), director.addr.to_string()];
    let edge = site.start().await;
    let mut alice = user(&site, &edge).await;
    for i in 0..2 {
        alice
            .send(&request(
                "MESSAGE",
                &format!("z9hG4bKfo{i}"),
                &format!("fo-{i}"),
                "",
            ))
            .await;
    }
    let mut dir = director.accept().await;
    let m1 = next_request(&mut dir).await;
    let m2 = next_request(&mut dir).await;
    assert!(m1.starts_with("MESSAGE") && m2.starts_with("MESSAGE"));
    // The Director never answers: Timer F gives alice a 408.
    let r = alice
        .recv_within(Duration::from_secs(8))
        .await
        .unwrap_or_default();
    assert_eq!(status_of(&r), 408, "{r}");
}

#[tokio::test]
async fn drain_stops_accepting_and_apply_reports_listener_moves() {
    let (site, edge, _director) = rig().await;
    let mut cfg = site.config.clone();
    cfg.access_edge.remote_users_port = 1;
    cfg.access_edge.federation.block = vec!["evil.test".into()];
    let tls = std::sync::Arc::new(site.tls());
    let old = edged_role::Setup {
        config: std::sync::Arc::new(site.config.clone()),
        tls: tls.clone(),
    };
    let new = edged_role::Setup {
        config: std::sync::Arc::new(cfg),
        tls,
    };
    let report = edge.apply(&old, &new).await;
    assert!(
        report
            .restart_required
            .iter()
            .any(|l| l.starts_with("access_edge.remote_users_port")),
        "{report:?}"
    );
    assert!(
        report
            .applied
            .iter()
            .any(|l| l.starts_with("access_edge.federation")),
        "{report:?}"
    );
    let addr = listener(&edge, "remote users");
    edge.drain(Duration::from_millis(200)).await;
    assert_eq!(edge.status().health, edged_role::Health::Draining);
    // Refused, or closed at once; a connection still open after a second is tried again
    // (the listener may close a moment after the drain), until a generous deadline.
    let deadline = tokio::time::Instant::now() + edged_test_tools::wait::WAIT;
    let refused = loop {
        let refused = match tokio::net::TcpStream::connect(addr).await {
            Err(_) => true,
            Ok(mut s) => {
                use tokio::io::AsyncReadExt;
                let mut b = [0u8; 1];
                matches!(
                    tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await,
                    Ok(Ok(0)) | Ok(Err(_))
                )
            }
        };
        if refused || tokio::time::Instant::now() > deadline {
            break refused;
        }
    };
    assert!(refused, "no connection is served after drain");
}
