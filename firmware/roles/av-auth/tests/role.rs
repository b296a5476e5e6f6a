//! Internal side only, key rotation, admin queries, reload and drain.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use edged_role::{Health, Side};
use mras::{build_request, parse_response, Location};
use relay_credentials::CredentialError;
use support::*;

#[tokio::test]
async fn neither_endpoint_answers_on_the_external_address() {
    let h = start(config([127, 0, 0, 1].into(), [127, 0, 0, 2].into())).await;
    let status = h.role.status();
    assert_eq!(status.listeners.len(), 2);
    for l in &status.listeners {
        assert_eq!(l.side, Side::Internal);
        let addr: SocketAddr = l.address.parse().unwrap();
        assert_eq!(addr.ip().to_string(), "127.0.0.2");
        // The same port on the external address: nothing listens there.
        let external = SocketAddr::new([127, 0, 0, 1].into(), addr.port());
        let err = tokio::net::TcpStream::connect(external)
            .await
            .expect_err("external side must refuse");
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{external}"
        );
        // And the internal one serves.
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    }
    // The operator hints point at the internal REST address.
    assert!(h
        .role
        .hints()
        .iter()
        .any(|l| l.contains(&format!("https://{}/api/v1/turn-credentials", h.rest))));
    let mut c = SipClient::connect(&h, Some("pool1")).await.unwrap();
    let body = build_request("r", "alice@example.test", Location::Internet, None);
    assert_eq!(
        c.service(mras::CONTENT_TYPE, body.as_bytes())
            .await
            .unwrap()
            .0,
        200
    );
}

#[tokio::test]
async fn rotation_keeps_old_credentials_for_the_overlap_only() {
    let h = start(loopback_config()).await;
    // A ring with a 10-minute overlap (shorter than the credential) so that the end of the
    // overlap, not the credential's expiry, is what refuses it below.
    let short = relay_credentials::KeyRing::new(h.ring().current().clone(), 600).unwrap();
    h.put_ring(&short);
    let mut c = SipClient::connect(&h, Some("pool1")).await.unwrap();
    let body = build_request("r", "alice@example.test", Location::Intranet, Some(480));
    let (_, resp) = c
        .service(mras::CONTENT_TYPE, body.as_bytes())
        .await
        .unwrap();
    let old = parse_response(&body_of(&resp)).unwrap();

    let keys = h.role.query("keys").await.unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    let first = keys["keys"][0]["id"].as_str().unwrap().to_owned();
    assert!(!keys.to_string().contains("secret"), "{keys}");

    let rotated = h
        .role
        .action(
            "rotate-keys",
            serde_json::Value::Null,
            edged_role::Actor::Edgectl,
        )
        .await
        .unwrap();
    let second = rotated["current"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let ring = h.ring();
    assert_eq!(ring.current().id, second);
    let now = av_auth::keys::unix_now();
    // Old credential: accepted within the overlap, refused after it.
    assert_eq!(
        ring.verify(&old.username, &old.password, now).unwrap(),
        first
    );
    let after_overlap = now + ring.overlap() + 1;
    assert_eq!(
        ring.verify(&old.username, &old.password, after_overlap),
        Err(CredentialError::UnknownOrRetiredKey)
    );

    // Right after the rotation the previous key still mints (relays re-read the ring every
    // few seconds and must know a key before credentials signed with it arrive); what is
    // issued verifies under the stored ring either way.
    let body = build_request("r2", "alice@example.test", Location::Intranet, Some(10));
    let (_, resp) = c
        .service(mras::CONTENT_TYPE, body.as_bytes())
        .await
        .unwrap();
    let new = parse_response(&body_of(&resp)).unwrap();
    assert_eq!(
        ring.verify(&new.username, &new.password, now).unwrap(),
        first
    );

    let keys = h.role.query("keys").await.unwrap();
    let list = keys["keys"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .any(|k| k["id"] == first.as_str() && k["retired_at"].is_u64() && k["current"] == false));
    let audit = h.store.audit_tail(50).unwrap();
    assert!(audit.iter().any(|e| e.action == "relay-key-rotated"));
}

#[tokio::test]
async fn reload_applies_policy_live_and_reports_listener_moves() {
    let h = start(loopback_config()).await;
    let mut c = SipClient::connect(&h, Some("pool1")).await.unwrap();
    let body = build_request("r", "alice@example.test", Location::Intranet, None);
    assert_eq!(
        c.service(mras::CONTENT_TYPE, body.as_bytes())
            .await
            .unwrap()
            .0,
        200
    );

    let mut config = h.config.clone();
    config.av_auth.allowed_identities = vec!["*@other.test".into()];
    let report = h.apply(&h.config, &config).await;
    assert!(report.restart_required.is_empty(), "{report:?}");
    assert!(!report.applied.is_empty());
    // Same connection, new policy.
    assert_eq!(
        c.service(mras::CONTENT_TYPE, body.as_bytes())
            .await
            .unwrap()
            .0,
        403
    );

    let old = config.clone();
    config.av_auth.sip_port = 15062;
    let report = h.apply(&old, &config).await;
    assert!(
        report
            .restart_required
            .iter()
            .any(|l| l.starts_with("av_auth.sip_port")),
        "{report:?}"
    );
}

#[tokio::test]
async fn drain_stops_accepting_and_finishes_connections() {
    let h = start(loopback_config()).await;
    let mut c = SipClient::connect(&h, Some("pool1")).await.unwrap();
    let role = h.role.clone();
    let drained = tokio::spawn(async move { role.drain(Duration::from_secs(2)).await });
    // The drain runs in its own task, and the listeners close when their loops see it:
    // wait for each (bounded), not for a fixed time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while h.role.status().health != Health::Draining {
        assert!(tokio::time::Instant::now() < deadline, "never draining");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for listener in [h.sip, h.rest] {
        while tokio::net::TcpStream::connect(listener).await.is_ok() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "still accepting on {listener}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tokio::time::timeout(Duration::from_secs(30), drained)
        .await
        .unwrap()
        .unwrap();
    // The idle connection was closed by the drain.
    assert!(c.read_message().await.is_err());
}

#[tokio::test]
async fn admin_requests_with_bad_arguments_are_refused_clearly() {
    use edged_role::AdminError;
    let h = start(loopback_config()).await;
    let bad = h
        .role
        .action(
            "create-api-key",
            serde_json::json!({}),
            edged_role::Actor::Edgectl,
        )
        .await;
    assert!(matches!(bad, Err(AdminError::BadRequest(_))), "{bad:?}");
    let bad = h
        .role
        .action(
            "create-api-key",
            serde_json::json!({"name": "has space"}),
            edged_role::Actor::Edgectl,
        )
        .await;
    assert!(matches!(bad, Err(AdminError::BadRequest(_))), "{bad:?}");
    create_api_key(&h, "once").await;
    let again = h
        .role
        .action(
            "create-api-key",
            serde_json::json!({"name": "once"}),
            edged_role::Actor::Edgectl,
        )
        .await;
    assert!(matches!(again, Err(AdminError::BadRequest(_))), "{again:?}");
    let missing = h
        .role
        .action(
            "revoke-api-key",
            serde_json::json!({"name": "nobody"}),
            edged_role::Actor::Edgectl,
        )
        .await;
    assert!(
        matches!(missing, Err(AdminError::NotFound(_))),
        "{missing:?}"
    );
    assert!(matches!(
        h.role
            .action(
                "explode",
                serde_json::Value::Null,
                edged_role::Actor::Edgectl
            )
            .await,
        Err(AdminError::NotFound(_))
    ));
    assert!(matches!(
        h.role.query("secrets").await,
        Err(AdminError::NotFound(_))
    ));
    // Listing shows names and dates, never the key or its hash.
    let listed = h.role.query("api-keys").await.unwrap();
    assert_eq!(listed["api_keys"][0]["name"], "once");
    assert!(!listed.to_string().contains("argon2"), "{listed}");
}
