//! The RFC 4475 / RFC 5118 torture corpus over live TLS, with the verdicts of
//! `shared/sip-torture/README.md`: valid requests are forwarded to the Director, invalid ones
//! get a 4xx/5xx and nothing is forwarded, responses matching no transaction are dropped.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

/// Where the corpus is: beside the checkout in CI, or the copy in sip-core's test data.
fn corpus() -> Option<PathBuf> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        here.join("../../../../shared/sip-torture"),
        here.join("../../protocols/sip-core/tests/data"),
    ]
    .into_iter()
    .find(|p| p.join("rfc4475").is_dir())
}

/// The Call-ID of a corpus message (full or compact form), to recognise it at the Director.
fn file_call_id(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim();
            (n.eq_ignore_ascii_case("call-id") || n.eq_ignore_ascii_case("i"))
                .then(|| v.trim().to_owned())
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Forwarded to the Director (requests).
    Forwarded,
    /// Answered with this status or another of at least 400 (`0`: any 4xx/5xx).
    Refused(u16),
    /// Forwarded or refused, the RFC allows both (or a proxy judges by routing only).
    Either,
    /// A response: dropped (no transaction of ours), nothing forwarded.
    Dropped,
    /// Cannot be framed on a stream until the connection times out.
    ClosedAfterTimeout,
}

fn verdict(name: &str) -> Verdict {
    use Verdict::*;
    match name {
        "bcast" | "noreason" | "unreason" | "scalarlg" | "bigcode" => Dropped,
        "clerr" => ClosedAfterTimeout,
        "insuf" | "mcl01" | "multi01" => Refused(400),
        "zeromf" => Refused(483),
        "trws" | "unkscm" | "novelsc" | "badbranch" | "bext01" | "invut" | "regaut01"
        | "cparam01" | "cparam02" | "regescrt" | "sdp01" | "inv2543" | "unksm2" => Either,
        "badinv01"
        | "ncl"
        | "scalar02"
        | "quotbal"
        | "ltgtruri"
        | "lwsruri"
        | "lwsstart"
        | "escruri"
        | "baddate"
        | "regbadct"
        | "badaspec"
        | "baddn"
        | "badvers"
        | "mismatch01"
        | "mismatch02"
        | "ipv6-bad"
        | "ipv6-bug-abnf-3-colons"
        | "port-ambiguous" => Refused(0),
        _ => Forwarded,
    }
}

#[tokio::test]
async fn torture_corpus_over_tls_gets_the_edge_verdicts() {
    let Some(root) = corpus() else {
        println!("skipped: torture corpus not found");
        return;
    };
    let mut site = Site::new(&["127.0.0.1", "127.0.0.2"]);
    site.config.access_edge.idle_timeout_secs = 2;
    let director = site.director().await;
    site.config.access_edge.next_hops = vec![director.addr.to_string()];
    let edge = site.start().await;
    let user_cfg = site.client_config(None);
    let addr = listener(&edge, "remote users");

    // A first request opens the edge's connection to the Director.
    let mut warm = connect(user_cfg.clone(), addr, "127.0.0.1").await;
    warm.send(&request("OPTIONS", "z9hG4bKwarm", "warm", ""))
        .await;
    let mut dir = director.accept().await;
    let w = next_request_within(&mut dir, Duration::from_secs(5))
        .await
        .unwrap_or_default();
    dir.send(&respond(&w, 200, "OK", "")).await;

    let mut files: Vec<PathBuf> = ["rfc4475", "rfc5118"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(root.join(d))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        })
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    assert!(files.len() >= 60, "corpus incomplete: {}", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_owned();
        let bytes = std::fs::read(path).unwrap_or_default();
        let expected = verdict(&name);
        let mut peer = connect(user_cfg.clone(), addr, "127.0.0.1").await;
        peer.send_bytes(&bytes).await;
        // A refusal is an answer the test waits for (bounded); otherwise the edge may or
        // may not answer by itself, within a short window.
        let wait = if matches!(expected, Verdict::Refused(_)) {
            edged_test_tools::wait::WAIT
        } else {
            Duration::from_millis(700)
        };
        let answer = peer.recv_within(wait).await;
        let call_id = file_call_id(&bytes);
        // Whatever reaches the Director within the window and carries this file's Call-ID.
        // Forwarded: waited for (bounded), the loop ends when it arrives. Refused: nothing
        // may arrive within a short window.
        let window = if expected == Verdict::Forwarded {
            edged_test_tools::wait::WAIT
        } else {
            Duration::from_millis(600)
        };
        let deadline = tokio::time::Instant::now() + window;
        let mut forwarded = None;
        while forwarded.is_none() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(f) = next_request_within(&mut dir, left).await else {
                break;
            };
            if !f.starts_with("ACK") && !f.starts_with("SIP/") {
                // Answer it so no transaction lingers.
                dir.send(&respond(&f, 200, "OK", "")).await;
            }
            if header(&f, "Call-ID").or_else(|| header(&f, "i")) == call_id.as_deref() {
                forwarded = Some(f);
            }
        }
        let status = answer.as_deref().map(status_of);
        let ok = match expected {
            Verdict::Forwarded => forwarded.is_some() && status.is_none_or(|s| s < 300),
            Verdict::Refused(code) => {
                forwarded.is_none()
                    && status.is_some_and(|s| if code == 0 { s >= 400 } else { s == code })
            }
            Verdict::Either => forwarded.is_some() || status.is_some_and(|s| s >= 400),
            Verdict::Dropped => forwarded.is_none() && answer.is_none(),
            Verdict::ClosedAfterTimeout => {
                forwarded.is_none() && peer.closed_within(Duration::from_secs(4)).await
            }
        };
        if !ok {
            failures.push(format!(
                "{name}: expected {expected:?}, answer {status:?}, forwarded {}",
                forwarded.is_some()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "verdicts differ:\n{}",
        failures.join("\n")
    );
    // The edge still serves a well-behaved user after all of that.
    let mut fresh = connect(user_cfg.clone(), addr, "127.0.0.1").await;
    fresh
        .send(&request("OPTIONS", "z9hG4bKafter", "after-torture", ""))
        .await;
    let w = next_request_within(&mut dir, Duration::from_secs(5))
        .await
        .unwrap_or_default();
    assert!(w.contains("after-torture"), "{w}");
}
