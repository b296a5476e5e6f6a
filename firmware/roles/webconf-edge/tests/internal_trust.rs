//! Internal trust: only the conferencing servers `webconf_edge.internal_peers` lists get a
//! link (and with it the session keys), and a conference registered by one connected
//! server is not taken over by a server of another identity.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use webconf_connector::connector::Connector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_server_of_the_internal_ca_gets_no_link_and_no_keys() {
    let t = start(|_| {}).await;
    // Issued by the very CA the internal port trusts, for a name the list does not hold.
    match t.echo_connector_as("rogue.localhost", &["alpha"]).await {
        Err(_) => {}
        Ok((c, _)) => panic!(
            "an unlisted server got a link (and was sent the session keys: {})",
            c.key_ring().is_some()
        ),
    }
    assert_eq!(t.edge.connected_servers(), 0);
    // A listed one still gets both.
    let (listed, _) = t.echo_connector(&["alpha"]).await;
    assert!(listed.key_ring().is_some());
    assert_eq!(t.edge.connected_servers(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_conference_is_not_taken_over_by_another_server() {
    let t = start(|c| {
        c.webconf_edge
            .internal_peers
            .push("conf-b.localhost".into())
    })
    .await;
    let (a, on_a) = t.echo_connector(&["alpha"]).await;
    // Server B is listed too, and asks for A's conference while A is connected.
    let mut b = Connector::connect(
        t.edge.internal_addr(),
        "localhost",
        t.connector_tls_as("conf-b.localhost"),
        &["beta".to_owned()],
    )
    .await
    .unwrap();
    t.wait_servers(2).await;
    assert_eq!(
        b.register(&["alpha".to_owned()]).await.unwrap(),
        1,
        "B owns beta only"
    );
    let client = t.client();
    for quic in [false, true] {
        let mut s = connect(&client, t.ext(), quic, "alpha", &t.token("alpha"))
            .await
            .unwrap();
        s.send(b"a").await.unwrap();
        s.recv_exact(1).await.unwrap();
    }
    assert_eq!(on_a.load(Ordering::SeqCst), 2, "alpha stays with A");

    // The same server reconnecting (same name, a renewed key) before its old link timed
    // out gets its conference back.
    let (a2, on_a2) = t.echo_connector(&["alpha"]).await;
    t.wait_servers(3).await;
    let mut s = client
        .connect_tls(t.ext(), "alpha", &t.token("alpha"))
        .await
        .unwrap();
    s.send(b"a").await.unwrap();
    s.recv_exact(1).await.unwrap();
    assert_eq!(on_a2.load(Ordering::SeqCst), 1);

    // Once A (both links) is gone, B may host alpha.
    a.close().await;
    a2.close().await;
    assert!(wait_until(Duration::from_secs(30), || t.edge.connected_servers() == 1).await);
    assert_eq!(b.register(&["alpha".to_owned()]).await.unwrap(), 2);
}
