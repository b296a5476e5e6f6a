//! The REST endpoint over real HTTPS: API keys, client certificates, errors, CORS.

mod support;

use support::*;

const PATH: &str = "/api/v1/turn-credentials";

/// Request headers, path, expected status, expected error code.
type Case<'a> = (Vec<(&'a str, String)>, String, u16, &'a str);

fn now() -> u64 {
    av_auth::keys::unix_now()
}

#[tokio::test]
async fn api_key_and_certificate_clients_get_verifiable_credentials() {
    let h = start(loopback_config()).await;
    let key = create_api_key(&h, "portal").await;
    let mut c = RestClient::connect(&h, None).await.unwrap();

    let auth = format!("Bearer {key}");
    let r = c
        .get(
            &format!("{PATH}?username=alice@example.test&ttl=600"),
            &[("authorization", &auth)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json);
    let username = r.json["username"].as_str().unwrap();
    let password = r.json["password"].as_str().unwrap();
    assert_eq!(r.json["ttl"], 600);
    assert!(username.ends_with(":alice@example.test"));
    let ring = h.ring();
    assert_eq!(
        ring.verify(username, password, now()).unwrap(),
        ring.current().id
    );
    let uris: Vec<&str> = r.json["uris"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let cfg = loopback_config();
    assert!(
        uris.contains(&format!("turn:127.0.0.2:{}?transport=udp", cfg.av_edge.udp_port).as_str()),
        "{uris:?}"
    );
    assert!(
        uris.contains(&format!("turn:127.0.0.1:{}?transport=tcp", cfg.av_edge.tcp_port).as_str()),
        "{uris:?}"
    );
    assert!(r.headers.get("access-control-allow-origin").is_none());

    // Same keep-alive connection, X-API-Key header, default ttl.
    let r = c
        .get(
            &format!("{PATH}?username=bob@example.test"),
            &[("x-api-key", &key)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json["ttl"], 480 * 60);

    // A client certificate from the internal anchors needs no key.
    let mut cc = RestClient::connect(&h, Some("webapp")).await.unwrap();
    let r = cc
        .get(&format!("{PATH}?username=carol@example.test&ttl=60"), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json);
    assert!(ring
        .verify(
            r.json["username"].as_str().unwrap(),
            r.json["password"].as_str().unwrap(),
            now()
        )
        .is_ok());

    assert_eq!(h.role.status().counters["issued_rest"], 3);
    // The audit log names identity, expiry and key; never the password.
    let issuance = h.role.query("issuance").await.unwrap();
    let entries = issuance["issuance"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let text = issuance.to_string();
    assert!(text.contains("identity=carol@example.test"));
    assert!(text.contains(&format!("key={}", ring.current().id)));
    assert!(text.contains("requester=cert:webapp"));
    assert!(text.contains("requester=key:portal"));
    assert!(!text.contains(password));
}

#[tokio::test]
async fn each_error_is_clear_and_the_next_good_request_succeeds() {
    let mut config = loopback_config();
    config.av_auth.allowed_identities = vec!["*@example.test".into()];
    config.av_auth.issuance_per_minute = 2;
    let h = start(config).await;
    let key = create_api_key(&h, "portal").await;
    let auth = format!("Bearer {key}");
    let mut c = RestClient::connect(&h, None).await.unwrap();
    let mut n = 0;
    let cases: Vec<Case> = vec![
        (
            vec![],
            format!("{PATH}?username=a@example.test"),
            401,
            "unauthorized",
        ),
        (
            vec![("authorization", format!("Bearer {key}x"))],
            format!("{PATH}?username=a@example.test"),
            401,
            "unauthorized",
        ),
        (
            vec![("x-api-key", "portal.wrong".into())],
            format!("{PATH}?username=a@example.test"),
            401,
            "unauthorized",
        ),
        (
            vec![("authorization", "Basic Zm9vOmJhcg==".into())],
            format!("{PATH}?username=a@example.test"),
            401,
            "unauthorized",
        ),
        (
            vec![("authorization", auth.clone())],
            format!("{PATH}?username=a@example.test&ttl=abc"),
            400,
            "bad_ttl",
        ),
        (
            vec![("authorization", auth.clone())],
            format!("{PATH}?username=a@example.test&ttl=0"),
            400,
            "bad_ttl",
        ),
        (
            vec![("authorization", auth.clone())],
            format!("{PATH}?username=a@example.test&ttl=28801"),
            400,
            "bad_ttl",
        ),
        (
            vec![("authorization", auth.clone())],
            format!("{PATH}?username=a@example.test&ttl=99999999999999999999999"),
            400,
            "bad_ttl",
        ),
        (
            vec![("authorization", auth.clone())],
            format!("{PATH}?ttl=60"),
            400,
            "bad_username",
        ),
        (
            vec![("authorization", auth.clone())],
            format!("{PATH}?username=a%20b@example.test"),
            400,
            "bad_username",
        ),
        (
            vec![("authorization", auth.clone())],
            format!("{PATH}?username=eve@evil.test"),
            403,
            "identity_not_allowed",
        ),
        (
            vec![("authorization", auth.clone())],
            "/api/v1/other".to_owned(),
            404,
            "not_found",
        ),
    ];
    for (headers, path, status, code) in cases {
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = c.get(&path, &hdrs).await.unwrap();
        assert_eq!(r.status, status, "{path} {headers:?}: {}", r.json);
        assert_eq!(r.json["error"], code, "{path}");
        assert!(r.json["detail"].as_str().is_some_and(|d| !d.is_empty()));
        if status == 401 {
            assert!(r.headers.get("www-authenticate").is_some());
        }
        {
            n += 1;
            good(&mut c, &auth, n).await;
        }
    }

    // Rate limit: 2 per minute per identity, then 429 with Retry-After.
    for _ in 0..2 {
        let r = c
            .get(
                &format!("{PATH}?username=burst@example.test"),
                &[("authorization", &auth)],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let r = c
        .get(
            &format!("{PATH}?username=burst@example.test"),
            &[("authorization", &auth)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.json["error"], "rate_limited");
    assert!(r.headers.get("retry-after").is_some());
    {
        n += 1;
        good(&mut c, &auth, n).await;
    }

    // A revoked key stops working at once, also on a connection that used it.
    h.role
        .action(
            "revoke-api-key",
            serde_json::json!({"name": "portal"}),
            edged_role::Actor::Edgectl,
        )
        .await
        .unwrap();
    let r = c
        .get(
            &format!("{PATH}?username=a@example.test"),
            &[("authorization", &auth)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let listed = h.role.query("api-keys").await.unwrap();
    assert_eq!(listed["api_keys"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn cors_is_off_by_default_and_limited_to_configured_origins() {
    let h = start(loopback_config()).await;
    let key = create_api_key(&h, "web").await;
    let mut c = RestClient::connect(&h, None).await.unwrap();
    let path = format!("{PATH}?username=alice@example.test");
    let preflight = [
        ("origin", "https://app.example.test"),
        ("access-control-request-method", "GET"),
    ];
    let r = c.request("OPTIONS", &path, &preflight).await.unwrap();
    assert_eq!(r.status, 403);
    let r = c
        .get(
            &path,
            &[("x-api-key", &key), ("origin", "https://app.example.test")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers.get("access-control-allow-origin").is_none());

    // Turned on by a live reload.
    let mut config = h.config.clone();
    config.av_auth.cors_origins = vec!["https://app.example.test".into()];
    let report = h.apply(&h.config, &config).await;
    assert!(report.restart_required.is_empty(), "{report:?}");
    let r = c.request("OPTIONS", &path, &preflight).await.unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example.test"
    );
    assert!(r.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("x-api-key"));
    let r = c
        .get(
            &path,
            &[("x-api-key", &key), ("origin", "https://app.example.test")],
        )
        .await
        .unwrap();
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example.test"
    );
    // Errors carry the header too, so the page can read them.
    let r = c
        .get(&path, &[("origin", "https://app.example.test")])
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example.test"
    );
    // Any other origin: nothing.
    let r = c
        .get(
            &path,
            &[("x-api-key", &key), ("origin", "https://evil.test")],
        )
        .await
        .unwrap();
    assert!(r.headers.get("access-control-allow-origin").is_none());
    let evil = [
        ("origin", "https://evil.test"),
        ("access-control-request-method", "GET"),
    ];
    assert_eq!(
        c.request("OPTIONS", &path, &evil).await.unwrap().status,
        403
    );
}

/// A request that must succeed, each for a fresh identity.
async fn good(c: &mut RestClient, auth: &str, n: u32) {
    let path = format!("{PATH}?username=user{n}@example.test&ttl=60");
    let r = c.get(&path, &[("authorization", auth)]).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.json);
}
