//! Idle TCP connections: N to one listener, each from a source of the pool, optionally with
//! one first byte (a TURN port reads 0x16 as TLS; anything else must not hold forever),
//! then held in silence. Counts how many the server closed, and when.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::net::connect_from;
use crate::report::Report;
use crate::sources::Sources;

enum Outcome {
    Refused,
    Held,
    ClosedAfter(Duration),
}

pub async fn run(
    target: SocketAddr,
    sources: Sources,
    conns: u64,
    first_byte: Option<u8>,
    seconds: f64,
    open_rate: u64,
) -> Result<Report> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    // Connection attempts in flight at once: enough to reach the count within the run.
    let in_flight = Arc::new(Semaphore::new(512));
    let mut tasks = tokio::task::JoinSet::new();
    let interval = Duration::from_secs_f64(1.0 / open_rate.max(1) as f64);
    for i in 0..conns {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let permit = in_flight.clone().acquire_owned().await?;
        let src = sources.nth(i);
        tasks.spawn(async move {
            let opened = Instant::now();
            let stream = connect_from(Some(src), target).await;
            drop(permit);
            let Ok(mut stream) = stream else {
                return Outcome::Refused;
            };
            if let Some(b) = first_byte {
                if stream.write_all(&[b]).await.is_err() {
                    return Outcome::ClosedAfter(opened.elapsed());
                }
            }
            let mut sink = [0u8; 512];
            loop {
                match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
                    Err(_) => return Outcome::Held,
                    Ok(Ok(0)) | Ok(Err(_)) => return Outcome::ClosedAfter(opened.elapsed()),
                    Ok(Ok(_)) => {}
                }
            }
        });
        if i % 64 == 63 {
            tokio::time::sleep(interval * 64).await;
        }
    }
    let offered = tasks.len() as u64;
    let (mut refused, mut held, mut closed) = (0u64, 0u64, Vec::new());
    while let Some(r) = tasks.join_next().await {
        match r? {
            Outcome::Refused => refused += 1,
            Outcome::Held => held += 1,
            Outcome::ClosedAfter(d) => closed.push(d.as_secs_f64()),
        }
    }
    closed.sort_by(f64::total_cmp);
    let median = closed.get(closed.len() / 2).copied().unwrap_or(0.0);
    let mut r = Report::new();
    r.add("offered", offered)
        .add("connected", offered - refused)
        .add("refused", refused)
        .add("closed_by_server", closed.len())
        .add("held_to_end", held)
        .add("median_close_s", format!("{median:.1}"))
        .add("seconds", format!("{:.1}", start.elapsed().as_secs_f64()));
    Ok(r)
}
