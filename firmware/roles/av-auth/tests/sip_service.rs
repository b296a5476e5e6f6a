//! SIP SERVICE over mutual TLS: real sockets, real certificates from the appliance CA.

mod support;

use mras::{build_request, parse_response, Location};
use relay_credentials::CredentialError;
use support::*;

const CT: &str = mras::CONTENT_TYPE;

fn now() -> u64 {
    av_auth::keys::unix_now()
}

#[tokio::test]
async fn issued_credentials_verify_and_carry_the_relay_list() {
    let h = start(loopback_config()).await;
    let mut c = SipClient::connect(&h, Some("pool1"))
        .await
        .expect("mTLS connect");

    // Three requests on one keep-alive connection.
    let (status, resp) = c
        .service(
            CT,
            build_request("r1", "alice@example.test", Location::Intranet, Some(60)).as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp));
    assert_eq!(header_of(&resp, "content-type").as_deref(), Some(CT));
    let grant = parse_response(&body_of(&resp)).expect("MS-AVEDGEA response");
    assert_eq!(grant.request_id, "r1");
    assert_eq!(grant.duration_minutes, 60);
    assert!(grant.username.ends_with(":alice@example.test"));
    let ring = h.ring();
    assert_eq!(
        ring.verify(&grant.username, &grant.password, now())
            .unwrap(),
        ring.current().id
    );
    let expiry: u64 = grant.username.split(':').next().unwrap().parse().unwrap();
    assert!(expiry.abs_diff(now() + 3600) <= 5);
    let cfg = loopback_config();
    assert_eq!(
        grant.relays,
        [(
            "intranet".to_owned(),
            "127.0.0.2".to_owned(),
            cfg.av_edge.udp_port,
            cfg.av_edge.tcp_port
        )]
    );

    // Longer than the maximum: lowered to 480 minutes, as MS-AVEDGEA allows.
    let (status, resp) = c
        .service(
            CT,
            build_request("r2", "bob@example.test", Location::Internet, Some(100_000)).as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let grant = parse_response(&body_of(&resp)).unwrap();
    assert_eq!(grant.duration_minutes, 480);
    assert_eq!(grant.relays.len(), 1);
    assert_eq!(grant.relays[0].0, "internet");
    assert_eq!(grant.relays[0].1, "127.0.0.1");

    // No duration: the default (480).
    let (status, resp) = c
        .service(
            CT,
            build_request("r3", "carol@example.test", Location::Intranet, None).as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    let grant = parse_response(&body_of(&resp)).unwrap();
    assert_eq!(grant.duration_minutes, 480);

    // Expired, tampered and foreign-key credentials are refused by the verifier the relay uses.
    assert!(matches!(
        ring.verify(&grant.username, &grant.password, expiry + 480 * 60 + 1),
        Err(CredentialError::Expired { .. })
    ));
    let tampered_user = grant.username.replace("carol", "mallory");
    assert_eq!(
        ring.verify(&tampered_user, &grant.password, now()),
        Err(CredentialError::BadSignature)
    );
    let mut bad_pw = grant.password.clone().into_bytes();
    bad_pw[0] = if bad_pw[0] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        ring.verify(
            &grant.username,
            std::str::from_utf8(&bad_pw).unwrap(),
            now()
        ),
        Err(CredentialError::BadSignature)
    );

    // CRLF keep-alive ping gets its pong and the connection stays usable.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    c.stream.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    c.stream.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"\r\n");

    let status = h.role.status();
    assert_eq!(status.counters["issued_sip"], 3);
}

#[tokio::test]
async fn each_bad_request_gets_its_error_and_the_next_good_one_succeeds() {
    let mut config = loopback_config();
    config.av_auth.allowed_identities = vec!["*@example.test".into()];
    config.av_auth.issuance_per_minute = 3;
    let h = start(config).await;
    let mut c = SipClient::connect(&h, Some("pool1")).await.unwrap();
    let mut n = 0;
    let mut good = |c: &mut SipClient| {
        n += 1;
        let body = build_request(
            &format!("g{n}"),
            &format!("user{n}@example.test"),
            Location::Intranet,
            Some(5),
        );
        c.request("SERVICE", Some(CT), body.as_bytes())
    };

    // Other method: 405 with Allow.
    let req = c.request("OPTIONS", None, b"");
    let resp = c.exchange(&req).await.unwrap();
    assert_eq!(status_of(&resp), 405);
    assert_eq!(header_of(&resp, "allow").as_deref(), Some("SERVICE"));
    let req = good(&mut c);
    assert_eq!(status_of(&c.exchange(&req).await.unwrap()), 200);

    // Wrong content type: 415 with Accept.
    let (status, resp) = c.service("application/sdp", b"v=0\r\n").await.unwrap();
    assert_eq!(status, 415);
    assert_eq!(header_of(&resp, "accept").as_deref(), Some(CT));
    let req = good(&mut c);
    assert_eq!(status_of(&c.exchange(&req).await.unwrap()), 200);

    // No content type at all: 415 too.
    let req = c.request("SERVICE", None, b"<x/>");
    assert_eq!(status_of(&c.exchange(&req).await.unwrap()), 415);

    // Malformed XML, missing fields, a DTD: 400 with a Warning naming the fault.
    for body in [
        "<request".to_owned(),
        format!("<request xmlns=\"{}\"><credentialsRequest><location>intranet</location></credentialsRequest></request>", mras::NAMESPACE),
        "<!DOCTYPE r [<!ENTITY a \"a\">]><request>&a;</request>".to_owned(),
        build_request("x", "alice@example.test", Location::Intranet, Some(0)),
    ] {
        let (status, resp) = c.service(CT, body.as_bytes()).await.unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(header_of(&resp, "warning").is_some_and(|w| w.starts_with("399 edged \"")));
        let req = good(&mut c);
        assert_eq!(status_of(&c.exchange(&req).await.unwrap()), 200);
    }

    // Malformed SIP that still frames (bad request line): 400, connection kept.
    let bad = b"SERVICE  sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    let resp = c.exchange(bad).await.unwrap();
    assert_eq!(status_of(&resp), 400);
    let req = good(&mut c);
    assert_eq!(status_of(&c.exchange(&req).await.unwrap()), 200);

    // Identity outside the allowed patterns: 403.
    let body = build_request("f", "eve@evil.test", Location::Intranet, None);
    let (status, _) = c.service(CT, body.as_bytes()).await.unwrap();
    assert_eq!(status, 403);
    let req = good(&mut c);
    assert_eq!(status_of(&c.exchange(&req).await.unwrap()), 200);

    // Per-identity rate limit (3 per minute): the fourth gets 503 with Retry-After; other
    // identities are unaffected.
    for i in 0..3 {
        let body = build_request(
            &format!("b{i}"),
            "burst@example.test",
            Location::Intranet,
            None,
        );
        assert_eq!(c.service(CT, body.as_bytes()).await.unwrap().0, 200);
    }
    let body = build_request("b4", "burst@example.test", Location::Intranet, None);
    let (status, resp) = c.service(CT, body.as_bytes()).await.unwrap();
    assert_eq!(status, 503);
    let retry: u64 = header_of(&resp, "retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    let req = good(&mut c);
    assert_eq!(status_of(&c.exchange(&req).await.unwrap()), 200);

    // ACK is never answered: the next answer on the wire is for the request after it.
    let ack = c.request("ACK", None, b"");
    use tokio::io::AsyncWriteExt;
    c.stream.write_all(&ack).await.unwrap();
    let req = good(&mut c);
    let resp = c.exchange(&req).await.unwrap();
    assert_eq!(status_of(&resp), 200);
    assert!(header_of(&resp, "cseq").unwrap().ends_with("SERVICE"));

    let counters = h.role.status().counters;
    assert_eq!(counters["refused_identity"], 1);
    assert_eq!(counters["rate_limited"], 1);
}

#[tokio::test]
async fn framing_errors_are_answered_then_the_connection_closes() {
    let h = start(loopback_config()).await;
    let mut c = SipClient::connect(&h, Some("pool1")).await.unwrap();
    // No Content-Length on a stream: cannot be resynchronised.
    let resp = c
        .exchange(b"SERVICE sip:x SIP/2.0\r\nVia: SIP/2.0/TLS a;branch=z9hG4bK1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status_of(&resp), 400);
    assert!(c.read_message().await.is_err(), "connection must close");
    // Others are still served.
    let mut c2 = SipClient::connect(&h, Some("pool1")).await.unwrap();
    let body = build_request("ok", "alice@example.test", Location::Intranet, None);
    assert_eq!(c2.service(CT, body.as_bytes()).await.unwrap().0, 200);
}

#[tokio::test]
async fn a_client_without_certificate_is_refused_and_others_keep_working() {
    let h = start(loopback_config()).await;
    let body = build_request("r", "alice@example.test", Location::Intranet, None);
    // In TLS 1.3 the client finishes its side first; the refusal shows on the first read.
    match SipClient::connect(&h, None).await {
        Err(_) => {}
        Ok(mut c) => {
            let result = c.service(CT, body.as_bytes()).await;
            assert!(
                result.is_err(),
                "served without a client certificate: {result:?}"
            );
        }
    }
    let mut ok = SipClient::connect(&h, Some("pool1")).await.unwrap();
    assert_eq!(ok.service(CT, body.as_bytes()).await.unwrap().0, 200);
    assert!(h.role.status().counters["tls_failures"] >= 1);
}
