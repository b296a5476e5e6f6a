//! Both ends of the link over an in-memory pipe (the TLS beneath is the caller's): streams
//! open in order, bytes arrive intact both ways, ends and reset codes reach the peer, and
//! a reader that stops holds the sender back instead of growing a buffer.

use std::time::Duration;

use bytes::Bytes;
use webconf_link::server::IncomingStream;
use webconf_link::{edge, server, LinkError, CONTROL_PATH, SESSION_PATH};

struct Pair {
    edge: edge::EdgeLink,
    streams: tokio::sync::mpsc::Receiver<IncomingStream>,
}

async fn pair() -> Pair {
    let (a, b) = tokio::io::duplex(256 * 1024);
    let (edge_side, server_side) = tokio::join!(edge::handshake(a), server::handshake(b));
    let (edge, edge_driver) = edge_side.unwrap();
    let (streams, server_driver) = server_side.unwrap();
    tokio::spawn(edge_driver);
    tokio::spawn(server_driver);
    Pair { edge, streams }
}

#[tokio::test]
async fn streams_carry_bytes_both_ways_and_end_cleanly() {
    let mut p = pair().await;
    let (open, taken) = tokio::join!(p.edge.open(CONTROL_PATH), p.streams.recv());
    let (mut up, mut down) = open.unwrap();
    let mut control = taken.unwrap();
    assert_eq!(control.path, CONTROL_PATH);

    // 3 MB each way: more than the stream window, so credit must flow back.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let expect = data.clone();
    let send = async {
        up.send(Bytes::from(data)).await.unwrap();
        up.finish().unwrap();
    };
    let echo = async {
        while let Some(piece) = control.recv.chunk().await.unwrap() {
            control.send.send(piece).await.unwrap();
        }
        control.send.finish().unwrap();
    };
    let receive = async {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 10_000];
        while let Some(n) = down.read(&mut buf).await.unwrap() {
            got.extend_from_slice(&buf[..n]);
        }
        got
    };
    let ((), (), got) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(send, echo, receive)
    })
    .await
    .expect("3 MB each way within 30 s");
    assert_eq!(got, expect);
}

#[tokio::test]
async fn a_reset_reaches_the_peer_with_its_code() {
    let mut p = pair().await;
    let (open, taken) = tokio::join!(p.edge.open(SESSION_PATH), p.streams.recv());
    let (mut up, _down) = open.unwrap();
    let mut s = taken.unwrap();
    assert_eq!(s.path, SESSION_PATH);
    up.write_all(b"before").await.unwrap();
    up.reset(12);
    let mut buf = [0u8; 16];
    // What was sent before the reset may or may not be read; the reset then surfaces.
    let err = loop {
        match s.recv.read(&mut buf).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a reset is not a clean end"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, LinkError::Reset(12)), "{err}");
}

#[tokio::test]
async fn a_stalled_reader_holds_the_sender_back() {
    let mut p = pair().await;
    let (open, taken) = tokio::join!(p.edge.open(SESSION_PATH), p.streams.recv());
    let (mut up, _down) = open.unwrap();
    let _never_read = taken.unwrap();
    // The stream window is 1 MiB: 8 MiB cannot all be taken while nobody reads.
    let all = tokio::time::timeout(
        Duration::from_secs(2),
        up.send(Bytes::from(vec![7u8; 8 << 20])),
    )
    .await;
    assert!(all.is_err(), "the sender must wait for credit");
    // The other streams of the link keep flowing meanwhile.
    let (open, taken) = tokio::join!(p.edge.open(SESSION_PATH), p.streams.recv());
    let (mut up2, _down2) = open.unwrap();
    let mut s2 = taken.unwrap();
    up2.write_all(b"still moving").await.unwrap();
    let mut buf = [0u8; 32];
    let n = s2.recv.read(&mut buf).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"still moving");
}

#[tokio::test]
async fn a_closed_link_fails_its_streams() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (edge_side, server_side) = tokio::join!(edge::handshake(a), server::handshake(b));
    let (edge, edge_driver) = edge_side.unwrap();
    let (mut streams, server_driver) = server_side.unwrap();
    tokio::spawn(edge_driver);
    let server_task = tokio::spawn(server_driver);
    let (open, taken) = tokio::join!(edge.open(SESSION_PATH), streams.recv());
    let (_up, mut down) = open.unwrap();
    let _s = taken.unwrap();
    // The server's side goes away (its process dies): the edge's reads fail, not hang.
    server_task.abort();
    let mut buf = [0u8; 8];
    let r = tokio::time::timeout(Duration::from_secs(5), down.read(&mut buf))
        .await
        .expect("the closed link is noticed");
    assert!(r.is_err(), "{r:?}");
    assert!(edge.open(SESSION_PATH).await.is_err());
}
