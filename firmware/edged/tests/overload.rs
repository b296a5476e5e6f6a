//! A role at the cap of its descriptor budget is overloaded, not failed: the admin API still
//! answers (the liveness query the watchdog probes, and status), and status says
//! `overloaded` with the reason, which neither the watchdog nor the health check (a rollback)
//! counts as a failure.

mod common;

use std::io::Read as _;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{config_for, edgectl, Edged};

const BUDGET: u64 = 16;

fn edgectl_json(e: &Edged, args: &[&str]) -> serde_json::Value {
    let out = Command::new(edgectl())
        .arg("--socket")
        .arg(&e.socket)
        .arg("--json")
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("edgectl: {err}"));
    assert!(
        out.status.success(),
        "edgectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|err| panic!("edgectl {args:?}: {err}"))
}

fn av_auth(status: &serde_json::Value) -> serde_json::Value {
    status["roles"]
        .as_array()
        .and_then(|roles| roles.iter().find(|r| r["role"] == "av_auth"))
        .cloned()
        .unwrap_or_else(|| panic!("no av_auth in {status}"))
}

/// Polls status until `done` holds for the A/V Authentication Service, or panics.
fn wait_for(e: &Edged, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let role = av_auth(&edgectl_json(e, &["status"]));
        if done(&role) {
            return role;
        }
        assert!(
            Instant::now() < give_up,
            "{what}: never happened; last: {role}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_role_at_its_cap_is_overloaded_and_the_admin_api_still_answers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut config =
        edged_config::Config::from_toml(&config_for(43)).unwrap_or_else(|e| panic!("{e}"));
    config.access_edge.enabled = false;
    config.webconf_edge.enabled = false;
    config.av_edge.enabled = false;
    config.metrics.enabled = false;
    config.limits.descriptors.insert("av_auth".into(), BUDGET);
    config.limits.source_share_percent = 100;
    let path = dir.path().join("edged.toml");
    std::fs::write(&path, config.to_toml()).unwrap_or_else(|e| panic!("{e}"));
    let mut e = Edged::start(dir.path(), Some(&path));
    e.wait_ready(Duration::from_secs(60));
    // Degraded only because the A/V Edge is off here: serving either way.
    let before = wait_for(&e, "av_auth serving", |r| {
        r["health"]["state"] == "ready" || r["health"]["state"] == "degraded"
    });
    assert_eq!(before["counters"]["budget_descriptors"], BUDGET);

    // Idle connections (no TLS handshake) fill the budget.
    let rest: SocketAddr =
        SocketAddr::new(config.network.internal.address, config.av_auth.rest_port);
    let _held: Vec<TcpStream> = (0..BUDGET)
        .map(|_| TcpStream::connect(rest).unwrap_or_else(|err| panic!("connect: {err}")))
        .collect();
    wait_for(&e, "the budget filled", |r| {
        r["counters"]["budget_open"] == BUDGET
    });

    // One more is closed at once, and the role says why.
    let mut extra = TcpStream::connect(rest).unwrap_or_else(|err| panic!("connect: {err}"));
    extra
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap_or_else(|err| panic!("{err}"));
    let mut buf = [0u8; 8];
    let read = extra.read(&mut buf);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection over the budget was not closed: {read:?}"
    );
    let role = wait_for(&e, "a refusal counted", |r| {
        r["counters"]["budget_refused"].as_u64() >= Some(1)
    });
    assert_eq!(role["health"]["state"], "overloaded", "{role}");
    let reason = role["health"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("{BUDGET}")), "{reason}");

    let alive = edgectl_json(&e, &["alive"]);
    assert_eq!(alive["alive"], true, "{alive}");
}
