//! Key rotation seen from the relay: a credential signed with a key that was rotated out
//! gets a real Allocate at the A/V Edge during the overlap window and 401 after it; expired
//! and tampered credentials get 401. The A/V Edge runs in the same process on the same
//! store, and the client is the project's TURN client (no external tool needed).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edged_role::test_support::TestSite;
use edged_role::{Side, Transport};
use relay_credentials::{KeyRing, RelayKey};
use support::*;
use turn_load::client::{ClientError, Credentials, TurnClient};

/// A short overlap so the window closes within the test; longer than the relay's ring
/// re-read interval (5 s), so the relay has seen the rotation while the window is open.
const OVERLAP_SECS: u64 = 12;

/// One Allocate (then Refresh 0 to free the quota) from a fresh client socket; `Ok` with
/// the relayed address, or the error the relay answered.
async fn allocate(
    server: SocketAddr,
    username: &str,
    password: &str,
) -> Result<SocketAddr, ClientError> {
    let creds = Credentials::LongTerm {
        user: username.to_owned(),
        password: password.to_owned(),
    };
    tokio::task::spawn_blocking(move || {
        let socket = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0")?);
        let mut client = TurnClient::new(socket, server, &creds)?;
        let relayed = client.allocate(60)?;
        client.release()?;
        Ok(relayed)
    })
    .await
    .map_err(|e| ClientError::BadAnswer(e.to_string()))?
}

fn refused_401(result: Result<SocketAddr, ClientError>, what: &str) {
    match result {
        Err(ClientError::Refused { code: 401, .. }) => {}
        other => panic!("{what}: expected 401 at the relay, got {other:?}"),
    }
}

struct Setup {
    h: Harness,
    relay: SocketAddr,
    _edge: Arc<dyn edged_role::Role>,
}

/// The relay and the service on one store whose ring has a short overlap and a first key
/// old enough to mint with at once.
async fn start_both() -> Setup {
    let config = relay_and_service_config();

    let site = TestSite::new();
    let store = site.store.clone();
    let now = av_auth::keys::unix_now();
    let first = RelayKey::generate("k-first", now - 3600).expect("key");
    let ring = KeyRing::new(first, OVERLAP_SECS).expect("ring");
    let stored = relay_credentials::stored::encode(&ring).expect("ring encoded");
    store
        .write(|tx| {
            tx.put(
                relay_credentials::stored::STORE_NAMESPACE,
                relay_credentials::stored::STORE_KEY,
                &stored,
            )
        })
        .expect("ring stored");
    let edge = av_edge::start(site.context(config.clone()))
        .await
        .expect("av_edge starts");
    let relay = edge
        .status()
        .listeners
        .iter()
        .find(|l| l.transport == Transport::Udp && l.side == Side::External)
        .and_then(|l| l.address.parse().ok())
        .expect("relay UDP listener");
    let h = start_with(config, site).await;
    Setup {
        h,
        relay,
        _edge: edge,
    }
}

/// A credential from the REST endpoint, with the id of the key that signed it.
async fn rest_credential(h: &Harness, key: &str, identity: &str) -> (String, String, String) {
    let mut rest = RestClient::connect(h, None).await.expect("REST connection");
    let r = rest
        .get(
            &format!("/api/v1/turn-credentials?username={identity}&ttl=600"),
            &[("x-api-key", key)],
        )
        .await
        .expect("REST answer");
    assert_eq!(r.status, 200, "{}", r.json);
    let text = |k: &str| r.json[k].as_str().expect(k).to_owned();
    let (username, password) = (text("username"), text("password"));
    let signer = h
        .ring()
        .verify(&username, &password, av_auth::keys::unix_now())
        .expect("the service's own credential verifies");
    (username, password, signer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_key_is_accepted_during_the_overlap_and_refused_after() {
    let Setup { h, relay, _edge } = start_both().await;
    let api_key = create_api_key(&h, "rotation").await;

    // Issued by the service with the first key, accepted by the relay.
    let (old_user, old_password, signed_with) =
        rest_credential(&h, &api_key, "carol@example.test").await;
    assert_eq!(signed_with, "k-first");
    allocate(relay, &old_user, &old_password)
        .await
        .expect("a fresh credential is accepted");

    // Rotation through the operator's action: the first key is retired now.
    let rotated = h
        .role
        .action(
            "rotate-keys",
            serde_json::Value::Null,
            edged_role::Actor::Edgectl,
        )
        .await
        .expect("rotate-keys");
    let rotated_at = Instant::now();
    assert_eq!(rotated["overlap_secs"], OVERLAP_SECS);
    let new_key = rotated["current"].as_str().expect("current key").to_owned();
    assert_ne!(new_key, "k-first");
    let ring = h.ring();
    assert_eq!(ring.current().id, new_key);
    let keys = rotated["keys"].as_array().expect("keys");
    let first = keys
        .iter()
        .find(|k| k["id"] == "k-first")
        .expect("the retired key is still listed");
    assert_eq!(first["current"], false);
    assert!(first["retired_at"].as_u64().is_some());

    // A credential only the new key signs: once the relay accepts it, the relay has read
    // the rotated ring, in which the first key is retired.
    let fresh = ring
        .mint("dave@example.test", 600, av_auth::keys::unix_now())
        .expect("mint");
    loop {
        match allocate(relay, &fresh.username, &fresh.password).await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    rotated_at.elapsed() < Duration::from_secs(OVERLAP_SECS - 4),
                    "the relay did not pick up the rotated ring in time: {e}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    // Inside the overlap window: the retired key still verifies at the relay.
    assert!(rotated_at.elapsed() < Duration::from_secs(OVERLAP_SECS - 2));
    allocate(relay, &old_user, &old_password)
        .await
        .expect("a credential signed with the retired key, inside the overlap window");

    // After the window: the same, still unexpired credential is refused.
    let window_end = Duration::from_secs(OVERLAP_SECS + 2);
    tokio::time::sleep(window_end.saturating_sub(rotated_at.elapsed())).await;
    refused_401(
        allocate(relay, &old_user, &old_password).await,
        "a credential signed with a key past its overlap",
    );
    // The current key keeps working, and the service now issues with it.
    allocate(relay, &fresh.username, &fresh.password)
        .await
        .expect("the new key's credential");
    let (user, password, signed_with) = rest_credential(&h, &api_key, "erin@example.test").await;
    assert_eq!(signed_with, new_key);
    allocate(relay, &user, &password)
        .await
        .expect("a credential issued after the rotation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_tampered_credentials_get_401_at_the_relay() {
    let Setup { h, relay, _edge } = start_both().await;
    let api_key = create_api_key(&h, "tamper").await;
    let (user, password, _) = rest_credential(&h, &api_key, "frank@example.test").await;
    allocate(relay, &user, &password)
        .await
        .expect("the untouched credential is accepted");

    let mut bad_password = password.clone().into_bytes();
    bad_password[0] = if bad_password[0] == b'A' { b'B' } else { b'A' };
    let bad_password = String::from_utf8(bad_password).expect("ASCII");
    let (expiry, identity) = user.split_once(':').expect("expiry:identity");
    let later: u64 = expiry.parse::<u64>().expect("expiry") + 3600;
    let now = av_auth::keys::unix_now();
    let expired = h
        .ring()
        .mint("frank@example.test", 10, now - 100)
        .expect("mint");
    let cases = [
        ("tampered password", user.clone(), bad_password),
        (
            "tampered identity",
            user.replace("frank", "mallory"),
            password.clone(),
        ),
        (
            "lifetime stretched",
            format!("{later}:{identity}"),
            password.clone(),
        ),
        (
            "expired",
            expired.username.clone(),
            expired.password.clone(),
        ),
    ];
    for (what, u, p) in cases {
        refused_401(allocate(relay, &u, &p).await, what);
    }
    // The relay keeps serving good credentials after the refusals.
    allocate(relay, &user, &password)
        .await
        .expect("the untouched credential, after the refusals");
}
