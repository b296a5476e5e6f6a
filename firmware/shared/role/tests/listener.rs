//! The shared accept loop over real sockets: caps, per-source shares, the first-request
//! deadline and drain. The handler's "first request" is one line; it answers `OK` and then
//! holds the connection until the client closes it or the role closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use edged_role::{Handler, Incoming, Lifecycle, Listener, ListenerHandle, ListenerLimits};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

struct LineFirst {
    life: Lifecycle,
}

impl Handler for LineFirst {
    type Ticket = ();
    type Opened = BufReader<TcpStream>;

    fn admit(&self, _peer: SocketAddr) -> Option<()> {
        Some(())
    }

    async fn open(&self, incoming: Incoming, _ticket: ()) -> Option<BufReader<TcpStream>> {
        let mut reader = BufReader::new(incoming.tcp);
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(n) if n > 0 && line.ends_with('\n') => Some(reader),
            _ => None,
        }
    }

    async fn serve(&self, mut reader: BufReader<TcpStream>) {
        if reader.get_mut().write_all(b"OK\n").await.is_err() {
            return;
        }
        let mut buf = [0u8; 64];
        loop {
            tokio::select! {
                r = reader.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { return },
                () = self.life.closing().cancelled() => return,
            }
        }
    }
}

async fn start(limits: ListenerLimits) -> (Lifecycle, Arc<ListenerHandle>, SocketAddr) {
    let tcp = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = tcp.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let life = Lifecycle::new();
    let handler = Arc::new(LineFirst { life: life.clone() });
    let handle = Listener::new("test", tcp, limits).spawn(&life, handler);
    (life, handle, addr)
}

/// Connects from `from` (a loopback address) and completes the first request.
async fn served_client(from: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    sock.bind(
        format!("{from}:0")
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    let mut c = sock
        .connect(to)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    c.write_all(b"HELLO\n")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ok = [0u8; 3];
    c.read_exact(&mut ok)
        .await
        .unwrap_or_else(|e| panic!("no answer: {e}"));
    assert_eq!(&ok, b"OK\n");
    c
}

/// Reads until the server closes; fails if it answers instead. Bounded only as a guard
/// against a hang: the assertion is the EOF itself.
async fn server_closes(c: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(60), c.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("the server did not close the connection"));
    match read {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close, got {other:?}"),
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once_and_a_freed_place_is_reused() {
    let (_life, handle, addr) = start(ListenerLimits {
        max_connections: 2,
        ..ListenerLimits::default()
    })
    .await;
    let first = served_client("127.0.0.1", addr).await;
    let _second = served_client("127.0.0.2", addr).await;
    let mut third = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    server_closes(&mut third).await;
    assert_eq!(handle.stats().refused(), 1);
    assert_eq!(handle.open(), 2);

    drop(first);
    // The place is free once the server has seen the close: wait for it, not for a time.
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while handle.open() > 1 {
        assert!(
            std::time::Instant::now() < give_up,
            "the closed connection was not released"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _again = served_client("127.0.0.3", addr).await;
    assert_eq!(handle.stats().refused(), 1);
}

#[tokio::test]
async fn one_source_holds_only_its_share() {
    let (_life, handle, addr) = start(ListenerLimits {
        max_per_source: 2,
        ..ListenerLimits::default()
    })
    .await;
    let _a = served_client("127.0.0.1", addr).await;
    let _b = served_client("127.0.0.1", addr).await;
    let sock = TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    sock.bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut third = sock.connect(addr).await.unwrap_or_else(|e| panic!("{e}"));
    server_closes(&mut third).await;
    assert_eq!(handle.stats().refused(), 1);
    // Another address is not held to the first one's share.
    let _other = served_client("127.0.0.2", addr).await;
}

#[tokio::test]
async fn a_client_without_a_first_request_is_closed_at_the_deadline() {
    let deadline = Duration::from_millis(300);
    let (_life, handle, addr) = start(ListenerLimits {
        first_request_timeout: deadline,
        ..ListenerLimits::default()
    })
    .await;
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Half a line is not a first request.
    silent
        .write_all(b"HEL")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    server_closes(&mut silent).await;
    assert!(started.elapsed() >= deadline, "{:?}", started.elapsed());
    assert_eq!(handle.stats().timed_out(), 1);
    // A client that completes its first request in time stays.
    let mut kept = served_client("127.0.0.1", addr).await;
    tokio::time::sleep(deadline * 2).await;
    kept.write_all(b"still here")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(handle.stats().timed_out(), 1);
    assert_eq!(handle.open(), 1);
}

#[tokio::test]
async fn drain_stops_accepting_and_closes_the_rest_at_its_deadline() {
    let (life, _handle, addr) = start(ListenerLimits::default()).await;
    let mut kept = served_client("127.0.0.1", addr).await;
    life.drain(Duration::from_millis(200)).await;
    server_closes(&mut kept).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listening socket is closed after the drain"
    );
}

#[tokio::test]
async fn a_listener_of_in_flight_work_accepts_during_the_drain_until_its_work_ends() {
    let tcp = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = tcp.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let life = Lifecycle::new();
    let work = edged_role::DrainToken::new();
    let handler = Arc::new(LineFirst { life: life.clone() });
    Listener::new("test", tcp, ListenerLimits::default())
        .until(work.clone())
        .spawn(&life, handler);
    let drain = tokio::spawn({
        let life = life.clone();
        async move {
            life.drain_until_idle(Duration::from_secs(600), life.tasks_ended())
                .await
        }
    });
    life.draining().cancelled().await;
    let client = served_client("127.0.0.1", addr).await;
    work.cancel();
    drop(client);
    let finished = drain.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        finished,
        "the drain ended when the work did, not at its deadline"
    );
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_served_connection_that_goes_quiet_is_closed_at_the_idle_deadline() {
    let idle = Duration::from_secs(2);
    let (_life, handle, addr) = start(ListenerLimits {
        idle_timeout: Some(idle),
        ..ListenerLimits::default()
    })
    .await;
    let mut quiet = served_client("127.0.0.1", addr).await;
    let mut busy = served_client("127.0.0.2", addr).await;
    // The busy client sends a byte every 100 ms until the quiet one is closed (which takes
    // at least the idle time), and must be open afterwards.
    let started = std::time::Instant::now();
    let closed = tokio::spawn(async move { server_closes(&mut quiet).await });
    while !closed.is_finished() {
        busy.write_all(b"x")
            .await
            .unwrap_or_else(|e| panic!("busy client cut off: {e}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    closed.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(started.elapsed() >= idle, "closed before the idle deadline");
    assert_eq!(handle.stats().idled_out(), 1);
    busy.write_all(b"x").await.unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 1];
    let still_open = tokio::time::timeout(Duration::from_millis(200), busy.read(&mut buf)).await;
    assert!(
        still_open.is_err(),
        "the busy client was closed: {still_open:?}"
    );
}
