//! Session-key rotation through the role's admin hooks (what `edgectl role webconf_edge
//! keys` and `... rotate-keys` reach) and on a schedule, with the reference connector minting
//! from the bundle the edge keeps up to date.

mod common;

use std::time::Duration;

use common::{start, start_prepared};
use edged_role::{AdminError, Role};
use serde_json::json;
use session_key::{CloseCode, KeyRing, ParticipantRole, SessionSecret};
use webconf_connector::bundle::Bundle;
use webconf_connector::client::Client;
use webconf_edge::keys::unix_now;

/// A token minted the way a conferencing server does: from the bundle's ring, read now.
fn mint_from_bundle(t: &common::TestEdge, conf: &str) -> (u32, String) {
    let b = Bundle::load(&t.bundle_dir()).unwrap();
    let ring = KeyRing::from_records(b.keys).unwrap();
    let now = unix_now();
    let id = ring.current(now).unwrap().id;
    let token = ring
        .mint(conf, ParticipantRole::Presenter, 600, now)
        .unwrap();
    (id, token)
}

/// Admitted and echoing over TLS and QUIC, or the close code of the refusal.
async fn try_session(client: &Client, t: &common::TestEdge, token: &str) -> Result<(), CloseCode> {
    for quic in [false, true] {
        let r = common::connect(client, t.ext(), quic, "m", token).await;
        let mut s = r.map_err(|e| e.close_code().unwrap_or(CloseCode::Internal))?;
        s.send(b"ping").await.unwrap();
        assert_eq!(s.recv_exact(4).await.unwrap(), b"ping");
        assert_eq!(s.close().await.unwrap(), CloseCode::Normal);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_action_keeps_the_old_key_for_the_overlap_then_refuses_it() {
    let t = start(|c| c.webconf_edge.connector_bundle_dir = Some("/placeholder".into())).await;
    let (_c, _) = t.echo_connector(&[]).await;
    let client = t.client();

    let listed = t.edge.query("keys").await.unwrap();
    assert_eq!(listed["current"], 1);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
    assert_eq!(listed["keys"][0]["state"], "active");
    let (old_id, old) = mint_from_bundle(&t, "m");
    assert_eq!(old_id, 1);

    let report = t
        .edge
        .action(
            "rotate-keys",
            json!({ "overlap_secs": 2 }),
            edged_role::Actor::Edgectl,
        )
        .await
        .unwrap();
    assert_eq!(report["current"], 2);
    assert_eq!(report["keys"][0]["id"], 1);
    assert_eq!(report["keys"][0]["state"], "retiring");
    assert_eq!(report["keys"][1]["state"], "active");
    assert!(
        !report.to_string().contains("secret"),
        "no secret in {report}"
    );

    // The connector re-reads the bundle and signs with the new key at once.
    let (new_id, new) = mint_from_bundle(&t, "m");
    assert_eq!(new_id, 2);
    assert_eq!(
        try_session(&client, &t, &old).await,
        Ok(()),
        "old key in the overlap"
    );
    assert_eq!(try_session(&client, &t, &new).await, Ok(()), "new key");

    // After the overlap the old key is refused, the new one still admitted.
    let retire_at = report["keys"][0]["retire_at"].as_u64().unwrap();
    assert!(
        common::wait_until(Duration::from_secs(6), || unix_now() > retire_at).await,
        "clock did not pass the retirement"
    );
    // The client hears only "refused"; the edge counts the reason.
    assert_eq!(
        try_session(&client, &t, &old).await,
        Err(CloseCode::KeyRefused),
        "old key after the overlap"
    );
    assert_eq!(t.edge.close_count(CloseCode::KeyUnknown), 1);
    assert_eq!(
        try_session(&client, &t, &new).await,
        Ok(()),
        "new key after the overlap"
    );
    let listed = t.edge.query("keys").await.unwrap();
    assert_eq!(listed["keys"][0]["state"], "retired");

    // The ring is in the store: a restart keeps it.
    let stored = webconf_edge::keys::load(&t.store).unwrap();
    assert_eq!(stored.current(unix_now()).map(|k| k.id), Some(2));
}

#[tokio::test]
async fn rotate_without_argument_uses_the_configured_overlap() {
    let t = start(|c| c.webconf_edge.key_overlap_minutes = 7).await;
    let before = unix_now();
    let report = t
        .edge
        .action("rotate-keys", json!({}), edged_role::Actor::Edgectl)
        .await
        .unwrap();
    let retire_at = report["keys"][0]["retire_at"].as_u64().unwrap();
    assert!(
        (before + 420..=unix_now() + 420).contains(&retire_at),
        "retire_at {retire_at}"
    );
    assert_eq!(report["overlap_secs"], 420);
}

#[tokio::test]
async fn bad_admin_requests_get_clear_errors() {
    let t = start(|_| {}).await;
    for bad in [
        json!({ "overlap_secs": "soon" }),
        json!({ "overlap_secs": -1 }),
        json!({ "overlap_secs": 10_000_000 }),
    ] {
        match t
            .edge
            .action("rotate-keys", bad.clone(), edged_role::Actor::Edgectl)
            .await
        {
            Err(AdminError::BadRequest(m)) => assert!(m.contains("overlap_secs"), "{m}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(matches!(
        t.edge.action("explode", json!({}), edged_role::Actor::Edgectl).await,
        Err(AdminError::NotFound(m)) if m.contains("rotate")
    ));
    assert!(matches!(
        t.edge.query("secrets").await,
        Err(AdminError::NotFound(m)) if m.contains("keys")
    ));
    // Nothing was rotated by the refused requests.
    assert_eq!(t.edge.query("keys").await.unwrap()["current"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_rotation_replaces_a_key_past_its_age() {
    // Key 1 was created two hours ago; the schedule rotates hourly with 30 min overlap.
    let created = unix_now() - 7_200;
    let seeded = SessionSecret::new(1, &[7u8; 32], created).unwrap();
    let old_ring = KeyRing::from_records(vec![seeded.clone()]).unwrap();
    let t = start_prepared(
        |store, _| {
            store
                .put_json(webconf_edge::keys::NAMESPACE, "key:1", &seeded)
                .unwrap();
        },
        |c| {
            c.webconf_edge.key_rotation_hours = 1;
            c.webconf_edge.key_overlap_minutes = 30;
            c.webconf_edge.connector_bundle_dir = Some("/placeholder".into());
        },
    )
    .await;
    let (_c, _) = t.echo_connector(&[]).await;
    let rotated = common::wait_until(Duration::from_secs(30), || {
        t.edge.key_ring().current(unix_now()).map(|k| k.id) == Some(2)
    })
    .await;
    assert!(rotated, "the schedule did not rotate the two-hour-old key");
    let listed = t.edge.query("keys").await.unwrap();
    assert_eq!(listed["rotation_hours"], 1);
    assert_eq!(listed["keys"][0]["state"], "retiring");
    let retire_at = listed["keys"][0]["retire_at"].as_u64().unwrap();
    assert!(
        retire_at >= unix_now() + 1_700,
        "30 min overlap, got {retire_at}"
    );

    let client = t.client();
    let old = old_ring
        .mint("m", ParticipantRole::Attendee, 600, unix_now())
        .unwrap();
    assert_eq!(
        try_session(&client, &t, &old).await,
        Ok(()),
        "old key in the overlap"
    );
    // The bundle follows the schedule too.
    assert!(
        common::wait_until(Duration::from_secs(30), || {
            Bundle::load(&t.bundle_dir()).is_ok_and(|b| b.keys.iter().any(|k| k.id == 2))
        })
        .await,
        "the bundle never carried the new key"
    );
    let (id, new) = mint_from_bundle(&t, "m");
    assert_eq!(id, 2);
    assert_eq!(try_session(&client, &t, &new).await, Ok(()), "new key");
    // A fresh key is not rotated again on the next turn of the schedule.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(t.edge.key_ring().records().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_pushes_its_key_ring_to_connected_servers_at_every_rotation() {
    // No bundle: the ring reaches the conferencing server only over its link.
    let t = start(|_| {}).await;
    let (c, _) = t.echo_connector(&[]).await;
    let client = t.client();
    let now = unix_now();

    // Pushed at connect: the connector mints with the edge's current key.
    let ring = c.key_ring().expect("pushed at connect");
    assert_eq!(ring.current(now).unwrap().id, 1);
    let old = ring.mint("m", ParticipantRole::Attendee, 600, now).unwrap();
    assert_eq!(try_session(&client, &t, &old).await, Ok(()));

    // A rotation reaches the connector without anything copied by hand.
    let mut updates = c.key_updates();
    updates.borrow_and_update();
    t.edge
        .action(
            "rotate-keys",
            json!({ "overlap_secs": 600 }),
            edged_role::Actor::Edgectl,
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), updates.changed())
        .await
        .expect("pushed within 5 s")
        .unwrap();
    let ring = c.key_ring().unwrap();
    let now = unix_now();
    assert_eq!(ring.current(now).unwrap().id, 2);
    // The retiring key travels too, with its end, so tokens minted before still verify.
    let retiring = ring.records().into_iter().find(|r| r.id == 1).unwrap();
    assert!(retiring.retire_at.is_some());
    let new = ring
        .mint("m", ParticipantRole::Presenter, 600, now)
        .unwrap();
    assert_eq!(try_session(&client, &t, &new).await, Ok(()), "new key");
    assert_eq!(
        try_session(&client, &t, &old).await,
        Ok(()),
        "old key in the overlap"
    );
    // A connector that connects later gets the same ring.
    let (late, _) = t.echo_connector(&[]).await;
    assert_eq!(
        late.key_ring().unwrap().records(),
        c.key_ring().unwrap().records()
    );
}
