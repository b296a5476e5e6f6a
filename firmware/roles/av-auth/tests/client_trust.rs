//! Internal trust: a certificate from the internal CA is not enough to obtain credentials;
//! it must be listed in `av_auth.allowed_clients`, and `av_auth.client_identities` bounds
//! which identities it may ask for. API-key checks run a bounded number at once.

mod support;

use std::collections::BTreeMap;

use mras::{build_request, Location};
use support::*;

const CT: &str = mras::CONTENT_TYPE;
const PATH: &str = "/api/v1/turn-credentials";

async fn sip_status(h: &Harness, cn: &str, identity: &str) -> std::io::Result<u16> {
    let mut c = SipClient::connect(h, Some(cn)).await?;
    let body = build_request("r1", identity, Location::Intranet, Some(60));
    Ok(c.service(CT, body.as_bytes()).await?.0)
}

async fn rest_status(h: &Harness, cn: &str, identity: &str) -> std::io::Result<u16> {
    let mut c = RestClient::connect(h, Some(cn)).await?;
    Ok(c.get(&format!("{PATH}?username={identity}"), &[])
        .await?
        .status)
}

#[tokio::test]
async fn a_certificate_of_the_internal_ca_that_is_not_listed_gets_nothing() {
    let h = start(loopback_config()).await;
    // Listed (the embedded default lists pool1.example.test and webapp.example.test).
    assert_eq!(
        sip_status(&h, "pool1", "alice@example.test").await.unwrap(),
        200
    );
    assert_eq!(
        rest_status(&h, "webapp", "alice@example.test")
            .await
            .unwrap(),
        200
    );
    // Issued by the same CA, but for a name the list does not hold: no credentials on
    // either endpoint (the handshake or the first exchange fails).
    let sip = sip_status(&h, "rogue", "alice@example.test").await;
    assert!(
        sip.is_err(),
        "SIP SERVICE answered an unlisted client: {sip:?}"
    );
    let rest = rest_status(&h, "rogue", "alice@example.test").await;
    assert!(rest.is_err(), "REST answered an unlisted client: {rest:?}");
    assert_eq!(h.role.status().counters["issued_sip"], 1);
    assert_eq!(h.role.status().counters["issued_rest"], 1);
    assert!(h.role.status().counters["tls_failures"] >= 2);

    // Dropping a client from the list applies to new connections.
    let old = h.config.clone();
    let mut new = old.clone();
    new.av_auth.allowed_clients = vec!["webapp.example.test".into()];
    h.apply(&old, &new).await;
    assert!(sip_status(&h, "pool1", "alice@example.test").await.is_err());
}

#[tokio::test]
async fn a_client_certificate_obtains_only_the_identities_it_is_bound_to() {
    let mut config = loopback_config();
    config.av_auth.client_identities = BTreeMap::from([(
        "pool1.example.test".to_owned(),
        vec!["*@sales.example.test".to_owned()],
    )]);
    let h = start(config).await;
    assert_eq!(
        sip_status(&h, "pool1", "ann@sales.example.test")
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        sip_status(&h, "pool1", "ceo@example.test").await.unwrap(),
        403,
        "pool1 may not obtain credentials outside its users"
    );
    // The other listed client is not bound beyond av_auth.allowed_identities.
    assert_eq!(
        rest_status(&h, "webapp", "ceo@example.test").await.unwrap(),
        200
    );
    assert_eq!(h.role.status().counters["refused_identity"], 1);
}

/// More API-key checks at once than `av_auth.max_concurrent_key_checks`: never more run at
/// the same time (each holds about 19 MiB); the rest are answered 503 with Retry-After at
/// once. Counted by the role's own counter of checks in flight, not by timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_checks_beyond_the_bound_are_answered_busy_not_queued() {
    const BOUND: u32 = 2;
    const REQUESTS: usize = 12;
    let mut config = loopback_config();
    config.av_auth.max_concurrent_key_checks = BOUND;
    let h = std::sync::Arc::new(start(config).await);
    let key = create_api_key(&h, "portal").await;
    // A wrong secret is never remembered as verified: every request runs argon2.
    let wrong = format!("portal.{}", "A".repeat(43));
    let mut tasks = Vec::new();
    for _ in 0..REQUESTS {
        let (h, wrong) = (h.clone(), wrong.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = RestClient::connect(&h, None).await.unwrap();
            let r = c
                .get(
                    &format!("{PATH}?username=alice@example.test"),
                    &[("x-api-key", &wrong)],
                )
                .await
                .unwrap();
            (r.status, r.headers.get("retry-after").cloned())
        }));
    }
    let mut unauthorized = 0;
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            (401, _) => unauthorized += 1,
            (503, Some(retry)) => {
                assert_eq!(retry, "1");
                busy += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let counters = h.role.status().counters;
    assert!(
        counters["key_checks_peak"] <= u64::from(BOUND),
        "{} checks ran at once, the bound is {BOUND}",
        counters["key_checks_peak"]
    );
    assert!(counters["key_checks_peak"] >= 1);
    assert!(unauthorized >= 1, "some checks ran");
    assert_eq!(unauthorized + busy, REQUESTS);
    assert_eq!(counters["key_checks_busy"], busy as u64);
    // The places are given back: the right key gets through afterwards.
    let mut c = RestClient::connect(&h, None).await.unwrap();
    let r = c
        .get(
            &format!("{PATH}?username=alice@example.test"),
            &[("x-api-key", &key)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.json);
}
