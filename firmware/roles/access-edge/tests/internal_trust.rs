//! Internal trust: a certificate from the internal CA makes a Director only when it names a
//! configured Director (`access_edge.internal_peers`, or the next hops' hosts when that list
//! is empty), on the internal listener and for the next hops the edge connects to.

mod common;

use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(5);

async fn director_peer(site: &Site, edge: &access_edge::AccessEdge, sans: &[&str]) -> SipPeer {
    connect(
        site.client_config(Some(("director", sans))),
        listener(edge, "Director pool"),
        "127.0.0.2",
    )
    .await
}

#[tokio::test]
async fn only_a_configured_director_is_served_on_the_internal_port() {
    let mut site = Site::new(&["edge.example.test", "127.0.0.1", "127.0.0.2"]);
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![director.addr.to_string()];
    let edge = site.start().await;

    // The next hop's host, 127.0.0.2, is a Director: its keep-alive is answered.
    let mut listed = director_peer(&site, &edge, &["127.0.0.2"]).await;
    listed.send("\r\n\r\n").await;
    assert_eq!(listed.read_raw(WAIT).await, b"\r\n");

    // Issued by the same CA for another host: not a Director.
    for sans in [&["127.0.0.9"][..], &["director.example.test"]] {
        let mut rogue = director_peer(&site, &edge, sans).await;
        rogue.send("\r\n\r\n").await;
        assert_ne!(
            rogue.read_raw(WAIT).await,
            b"\r\n",
            "{sans:?} was served as a Director"
        );
        assert!(rogue.closed_within(WAIT).await, "{sans:?}");
    }
}

#[tokio::test]
async fn a_listed_name_admits_a_director_and_the_next_hop_must_match_it_too() {
    let mut site = Site::new(&["edge.example.test", "127.0.0.1", "127.0.0.2"]);
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![director.addr.to_string()];
    // The list replaces the next hops' hosts: the test Director (127.0.0.2) is not on it.
    site.config.access_edge.internal_peers = vec!["director.example.test".into()];
    let edge = site.start().await;

    let mut listed = director_peer(&site, &edge, &["director.example.test"]).await;
    listed.send("\r\n\r\n").await;
    assert_eq!(listed.read_raw(WAIT).await, b"\r\n");
    let mut by_address = director_peer(&site, &edge, &["127.0.0.2"]).await;
    by_address.send("\r\n\r\n").await;
    assert_ne!(
        by_address.read_raw(WAIT).await,
        b"\r\n",
        "the next hop's host is no Director once the list names others"
    );

    // The edge does not hand a request to a next hop whose certificate is not listed: the
    // Director runs its handshakes, the edge refuses each on the certificate.
    let _director = tokio::spawn(async move {
        let mut dir = director.accept().await;
        next_request(&mut dir).await
    });
    let mut alice = connect(
        site.client_config(None),
        listener(&edge, "remote users"),
        "127.0.0.1",
    )
    .await;
    alice
        .send(&request("INVITE", "z9hG4bKit1", "it-1", ""))
        .await;
    assert_eq!(status_of(&alice.recv().await), 100);
    assert_eq!(status_of(&alice.recv().await), 503);
}
