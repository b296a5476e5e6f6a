//! Timer C (RFC 3261 16.6 step 11, 16.8) over real TLS: a ringing INVITE whose next hop goes
//! quiet is cancelled and the caller gets the 487; a silent one is answered 408.

mod common;

use std::time::{Duration, Instant};

use common::*;
use edged_role::Role;

/// An edge with a 1 s Timer C (and the rig's 3 s Timer B) in front of one Director.
async fn rig() -> (Site, std::sync::Arc<access_edge::AccessEdge>, Director) {
    let mut site = Site::new(&["127.0.0.1", "127.0.0.2"]);
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![director.addr.to_string()];
    site.config.access_edge.timer_c_secs = 1;
    let edge = site.start().await;
    (site, edge, director)
}

async fn user(site: &Site, edge: &access_edge::AccessEdge) -> SipPeer {
    connect(
        site.client_config(None),
        listener(edge, "remote users"),
        "127.0.0.1",
    )
    .await
}

#[tokio::test]
async fn ringing_then_silence_cancels_the_branch_and_the_caller_gets_487() {
    let (site, edge, director) = rig().await;
    let mut alice = user(&site, &edge).await;
    let (mut dir, inv) = ringing_invite(&mut alice, &director, "z9hG4bKtc1", "tc-1").await;
    // A second provisional answer restarts Timer C: the CANCEL is due 1 s after this one.
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Taken before the send: the edge restarts Timer C when the 183 reaches it, which may
    // be before this test runs again on a loaded machine.
    let restarted = Instant::now();
    dir.send(&respond(&inv, 183, "Session Progress", "")).await;
    assert_eq!(status_of(&alice.recv().await), 183);

    let cancel = next_request_within(&mut dir, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("Timer C never cancelled the branch"));
    let waited = restarted.elapsed();
    assert!(
        cancel.starts_with("CANCEL sip:bob@example.test"),
        "{cancel}"
    );
    assert!(
        waited >= Duration::from_millis(1000),
        "CANCEL only after Timer C counted from the last provisional: {waited:?}"
    );
    assert_eq!(
        headers(&cancel, "Via")[0],
        headers(&inv, "Via")[0],
        "the CANCEL names the INVITE's branch"
    );
    assert_eq!(header(&cancel, "CSeq"), Some("1 CANCEL"));
    assert_eq!(edge.status().counters["timer_c_cancels"], 1);

    // The Director answers as a UAS does: 200 for the CANCEL, 487 for the INVITE.
    dir.send(&respond(&cancel, 200, "OK", "")).await;
    dir.send(&respond(&inv, 487, "Request Terminated", ""))
        .await;
    let ack = next_request(&mut dir).await;
    assert!(ack.starts_with("ACK sip:bob@example.test"), "{ack}");
    let term = alice.recv().await;
    assert_eq!(status_of(&term), 487, "{term}");
    assert_eq!(headers(&term, "Via").len(), 1, "our Via removed: {term}");
    // The caller sees exactly one final answer: no 408 made up on top of the 487.
    let more = alice.recv_within(Duration::from_secs(4)).await;
    assert!(more.is_none(), "{more:?}");
}

#[tokio::test]
async fn invite_with_no_answer_at_all_gets_408_when_timer_c_fires_and_no_cancel() {
    let (site, edge, director) = rig().await;
    let mut alice = user(&site, &edge).await;
    let sent = Instant::now();
    alice
        .send(&request("INVITE", "z9hG4bKtc2", "tc-2", ""))
        .await;
    assert_eq!(status_of(&alice.recv().await), 100);
    let mut dir = director.accept().await;
    let inv = next_request(&mut dir).await;
    assert!(inv.starts_with("INVITE "), "{inv}");

    let answer = alice
        .recv_within(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no answer after Timer C"));
    let waited = sent.elapsed();
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "408 from Timer C (1 s), before Timer B (3 s): {waited:?}"
    );
    // No provisional answer came, so nothing is cancelled (RFC 3261 9.1).
    let after = next_request_within(&mut dir, Duration::from_millis(800)).await;
    assert!(after.is_none(), "{after:?}");
    assert_eq!(edge.status().counters["timer_c_cancels"], 0);
    assert_eq!(edge.status().counters["transaction_timeouts"], 1);
}

#[tokio::test]
async fn cancelled_branch_whose_next_hop_never_answers_ends_in_408() {
    let (site, edge, director) = rig().await;
    let mut alice = user(&site, &edge).await;
    // Taken before the 180 is sent: Timer C (1 s) runs from the moment the edge has it,
    // and the CANCEL's transaction time (3 s) from the moment the edge sends the CANCEL,
    // both of which may come before this test sees them on a loaded machine.
    let ringing = Instant::now();
    let (mut dir, _inv) = ringing_invite(&mut alice, &director, "z9hG4bKtc3", "tc-3").await;
    let cancel = next_request_within(&mut dir, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no CANCEL"));
    assert!(cancel.starts_with("CANCEL "), "{cancel}");
    // The Director ignores the CANCEL: after a transaction time (3 s) the caller gets 408.
    let answer = alice
        .recv_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("the caller was left waiting"));
    assert_eq!(status_of(&answer), 408, "{answer}");
    let waited = ringing.elapsed();
    assert!(
        waited >= Duration::from_secs(1 + 3),
        "408 only after Timer C and the CANCEL's transaction time: {waited:?}"
    );
}
