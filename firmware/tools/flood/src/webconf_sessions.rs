//! The legitimate side of web conferencing during a flood: meeting sessions at a steady
//! rate through the edge (alternately TLS and QUIC), each admitted with a session key the
//! conferencing server's connector minted, one echo round trip, then a normal close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::Mutex;
use webconf_connector::client::Client;

use crate::report::Report;

const MESSAGE: &[u8] = b"legitimate meeting traffic during a flood";
/// A session that has not finished its round trip by then counts as failed.
const SESSION_DEADLINE: Duration = Duration::from_secs(10);

async fn one(
    client: &Client,
    edge: SocketAddr,
    quic: bool,
    conference: &str,
    token: &str,
) -> Result<()> {
    let mut s = if quic {
        client.connect_quic(edge, conference, token).await?
    } else {
        client.connect_tls(edge, conference, token).await?
    };
    s.send(MESSAGE).await?;
    let back = s.recv_exact(MESSAGE.len()).await?;
    anyhow::ensure!(back == MESSAGE, "echo differs");
    s.close().await?;
    Ok(())
}

pub async fn run(
    client: Client,
    edge: SocketAddr,
    conference: String,
    token: String,
    rate: f64,
    seconds: f64,
) -> Result<Report> {
    let start = Instant::now();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut i = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let due = Duration::from_secs_f64(i as f64 / rate.max(0.001));
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
            continue;
        }
        let (client, conference, token, errors) = (
            client.clone(),
            conference.clone(),
            token.clone(),
            errors.clone(),
        );
        let quic = i % 2 == 1;
        tasks.spawn(async move {
            let r = tokio::time::timeout(
                SESSION_DEADLINE,
                one(&client, edge, quic, &conference, &token),
            )
            .await;
            let err = match r {
                Ok(Ok(())) => return true,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no round trip within 10 s".to_string(),
            };
            let mut e = errors.lock().await;
            if e.len() < 3 {
                e.push(format!("{}: {err}", if quic { "quic" } else { "tls" }));
            }
            false
        });
        i += 1;
    }
    let (mut ok, mut failed) = (0u64, 0u64);
    while let Some(r) = tasks.join_next().await {
        if r.unwrap_or(false) {
            ok += 1
        } else {
            failed += 1
        }
    }
    for e in errors.lock().await.iter() {
        eprintln!("webconf session failed: {e}");
    }
    let mut r = Report::new();
    r.add("sessions", ok + failed)
        .add("completed", ok)
        .add("failed", failed);
    Ok(r)
}
