//! Credentials issued per second on each endpoint: SIP SERVICE over mutual TLS and REST
//! over HTTPS, with the role started in-process on loopback.
//!
//! `cargo run --release -p av-auth --example issue_rate -- [--smoke] [--workers N] [--secs S]`
//!
//! Each worker holds one keep-alive connection and sends requests back to back, each for
//! its own identity (so the per-identity rate limit is not what is measured). Every
//! credential is audited durably before it is answered; concurrent requests share commits.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;

use mras::{build_request, Location};
use support::*;

struct Args {
    workers: usize,
    secs: f64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        workers: 8,
        secs: 10.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smoke" => a.secs = 3.0,
            "--workers" => {
                a.workers = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--workers N")?
            }
            "--secs" => a.secs = it.next().and_then(|v| v.parse().ok()).ok_or("--secs S")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if std::env::var_os("EDGED_BENCH_SMOKE").is_some() {
        a.secs = a.secs.min(3.0);
    }
    if a.workers == 0 || !(0.5..=120.0).contains(&a.secs) {
        return Err("workers must be >= 1 and secs within 0.5..120".into());
    }
    Ok(a)
}

struct Outcome {
    ok: u64,
    failed: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn sip_worker(h: &Harness, w: usize, until: Instant) -> Outcome {
    let mut out = Outcome {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    let Ok(mut c) = SipClient::connect(h, Some("bench-pool")).await else {
        out.failed += 1;
        return out;
    };
    let start = Instant::now();
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let body = build_request(
            &format!("{w}-{i}"),
            &format!("user{w}@example.test"),
            Location::Intranet,
            None,
        );
        let t = Instant::now();
        match c.service(mras::CONTENT_TYPE, body.as_bytes()).await {
            Ok((200, _)) => out.ok += 1,
            _ => out.failed += 1,
        }
        out.latencies.push(t.elapsed());
    }
    out.elapsed = start.elapsed();
    out
}

async fn rest_worker(h: &Harness, key: &str, w: usize, until: Instant) -> Outcome {
    let mut out = Outcome {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    let Ok(mut c) = RestClient::connect(h, None).await else {
        out.failed += 1;
        return out;
    };
    let path = format!("/api/v1/turn-credentials?username=user{w}@example.test&ttl=600");
    let start = Instant::now();
    while Instant::now() < until {
        let t = Instant::now();
        match c.get(&path, &[("x-api-key", key)]).await {
            Ok(r) if r.status == 200 => out.ok += 1,
            _ => out.failed += 1,
        }
        out.latencies.push(t.elapsed());
    }
    out.elapsed = start.elapsed();
    out
}

fn summarise(name: &str, outcomes: Vec<Outcome>, secs: f64) -> (String, f64) {
    let ok: u64 = outcomes.iter().map(|o| o.ok).sum();
    let failed: u64 = outcomes.iter().map(|o| o.failed).sum();
    let mut lat: Vec<Duration> = outcomes.into_iter().flat_map(|o| o.latencies).collect();
    lat.sort();
    let rate = ok as f64 / secs;
    (
        format!(
            "| {name:<22} | {rate:>10.0} | {ok:>9} | {failed:>6} | {:>8.2} | {:>8.2} |",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        ),
        rate,
    )
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("issue_rate: {e}");
            std::process::exit(2);
        }
    };
    let mut config = loopback_config();
    // The bench's pool server is a listed client, as a real one would be.
    config
        .av_auth
        .allowed_clients
        .push("bench-pool.example.test".into());
    let h = Arc::new(start(config).await);
    let key: Arc<str> = create_api_key(&h, "bench").await.into();
    // One request first, as a portal's first call: the key is then remembered as verified,
    // and the workers measure issuance rather than argon2 (a few checks at once at most).
    if let Ok(mut c) = RestClient::connect(&h, None).await {
        let _ = c
            .get(
                "/api/v1/turn-credentials?username=warm@example.test",
                &[("x-api-key", &key)],
            )
            .await;
    }

    let until = Instant::now() + Duration::from_secs_f64(a.secs);
    let sip = join_all((0..a.workers).map(|w| {
        let h = h.clone();
        tokio::spawn(async move { sip_worker(&h, w, until).await })
    }))
    .await;
    let (sip_line, sip_rate) = summarise(
        "SIP SERVICE (mTLS)",
        sip.into_iter().flatten().collect(),
        a.secs,
    );

    let until = Instant::now() + Duration::from_secs_f64(a.secs);
    let rest = join_all((0..a.workers).map(|w| {
        let (h, key) = (h.clone(), key.clone());
        tokio::spawn(async move { rest_worker(&h, &key, w, until).await })
    }))
    .await;
    let (rest_line, rest_rate) = summarise(
        "REST (HTTPS, API key)",
        rest.into_iter().flatten().collect(),
        a.secs,
    );

    println!(
        "credentials issued per second, {} workers, {:.1} s per endpoint",
        a.workers, a.secs
    );
    println!("| endpoint               |  issued/s  |    issued | failed |  p50 ms  |  p99 ms  |");
    println!("|------------------------|------------|-----------|--------|----------|----------|");
    println!("{sip_line}");
    println!("{rest_line}");
    if sip_rate > 0.0 {
        println!("REST / SIP ratio: {:.2}", rest_rate / sip_rate);
    }
}
