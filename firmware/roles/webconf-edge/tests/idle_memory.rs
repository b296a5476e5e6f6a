//! What an idle session costs the edge: once a client has been quiet for a while, its
//! session gives its large read buffer back. Alone in its own test binary, so the heap
//! measured is this test's only.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

mod common;

use std::time::Duration;

use common::start;
use session_key::CloseCode;

/// Bytes the allocator has handed out and not yet had back, process-wide.
#[allow(
    unsafe_code,
    reason = "glibc's allocator counters are only reachable through mallinfo2"
)]
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters; it takes no arguments and
    // returns a plain struct by value.
    unsafe { libc::mallinfo2() }.uordblks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_sessions_give_their_read_buffers_back() {
    const SESSIONS: usize = 100;
    let t = start(|_| {}).await;
    let (_c, _sessions) = t.echo_connector(&[]).await;
    let client = t.client();
    let token = t.token("listeners");
    let msg = vec![0x42u8; 64 * 1024];
    let mut open = Vec::new();
    for _ in 0..SESSIONS {
        let mut s = client
            .connect_tls(t.ext(), "listeners", &token)
            .await
            .unwrap();
        s.send(&msg).await.unwrap();
        assert_eq!(s.recv_exact(msg.len()).await.unwrap(), msg);
        open.push(s);
    }
    let busy = heap_in_use();
    // Past the edge's quiet period (2 s) the sessions give their buffers back: wait for
    // that (bounded), not for a fixed time.
    let given_back = || busy.saturating_sub(heap_in_use()) / SESSIONS;
    common::wait_until(Duration::from_secs(30), || given_back() >= 100 * 1024).await;
    let quiet = heap_in_use();
    let freed = busy.saturating_sub(quiet) / SESSIONS;
    println!(
        "heap in use with {SESSIONS} sessions: {} KiB busy, {} KiB quiet; {} KiB given back per session",
        busy / 1024,
        quiet / 1024,
        freed / 1024
    );
    // Each had read one 64 KiB message into a buffer of eight records' room (128 KiB).
    assert!(
        freed >= 100 * 1024,
        "quiet sessions kept their read buffers: {freed} bytes given back per session"
    );
    // And they still work.
    for mut s in open {
        s.send(b"still here").await.unwrap();
        assert_eq!(s.recv_exact(10).await.unwrap(), b"still here");
        assert_eq!(s.close().await.unwrap(), CloseCode::Normal);
    }
    t.assert_no_leak().await;
}
