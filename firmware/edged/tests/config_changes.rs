//! Configuration changes as transactions: concurrent `edgectl config set` calls from
//! separate processes all land, each is audited once, and a change reports exactly what it
//! changed ("nothing changed" when it touched nothing).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{config_for, edgectl, request, Edged};

/// Keys that apply live in every role, each set to its default plus one by the test.
const KEYS: [&str; 16] = [
    "appliance.drain_timeout_secs",
    "access_edge.handshake_timeout_secs",
    "access_edge.idle_timeout_secs",
    "access_edge.transaction_timeout_secs",
    "access_edge.health_check_interval_secs",
    "access_edge.connection_rate_per_ip",
    "access_edge.max_connections_per_ip",
    "access_edge.federation.watch_threshold",
    "webconf_edge.idle_timeout_secs",
    "webconf_edge.max_sessions_per_address",
    "webconf_edge.max_sessions_per_conference",
    "av_edge.max_allocations",
    "av_edge.max_allocations_per_user",
    "av_edge.nonce_lifetime_secs",
    "av_edge.unauthenticated_rate_per_sec",
    "av_auth.issuance_per_minute",
];

fn start(dir: &Path, n: u8) -> Edged {
    let cfg = dir.join("edged.toml");
    std::fs::write(&cfg, config_for(n)).unwrap();
    let mut e = Edged::start(dir, Some(&cfg));
    e.wait_ready(Duration::from_secs(60));
    e
}

fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(edgectl())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn generation(socket: &Path) -> u64 {
    request(socket, "GET", "/api/v1/config", None).unwrap().1["generation"]
        .as_u64()
        .unwrap()
}

fn audit(socket: &Path) -> Vec<serde_json::Value> {
    let (code, body) = request(socket, "GET", "/api/v1/audit?limit=1000", None).unwrap();
    assert_eq!(code, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// The lines of an apply report: what was applied and what needs a restart.
fn report_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("applied:") || l.starts_with("needs a restart:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn concurrent_sets_from_separate_processes_all_land_and_are_audited_once() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path(), 34);
    let defaults = edged_config::Config::embedded_default();
    let wanted: Vec<(&str, String)> = KEYS
        .iter()
        .map(|k| {
            let v: u64 = defaults.get_value(k).unwrap().parse().unwrap();
            (*k, (v + 1).to_string())
        })
        .collect();
    let g0 = generation(&e.socket);

    // Every edgectl is its own process, all started before any is waited for.
    let children: Vec<_> = wanted
        .iter()
        .map(|(k, v)| {
            Command::new(edgectl())
                .arg("--socket")
                .arg(&e.socket)
                .args(["config", "set", k, v])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (child, (k, v)) in children.into_iter().zip(&wanted) {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "config set {k} {v}: {}", text(&out));
    }

    let lost: Vec<String> = wanted
        .iter()
        .filter_map(|(k, v)| {
            let out = ctl(&e.socket, &["config", "get", k]);
            let got = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            (got != *v).then(|| format!("{k}: wanted {v}, configuration has {got}"))
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} concurrent changes were lost:\n{}",
        lost.len(),
        wanted.len(),
        lost.join("\n")
    );
    assert_eq!(
        generation(&e.socket),
        g0 + wanted.len() as u64,
        "one generation per change"
    );

    let entries = audit(&e.socket);
    for (k, v) in &wanted {
        let detail = format!("{k} = {v}");
        let matching: Vec<_> = entries
            .iter()
            .filter(|a| a["detail"] == detail.as_str())
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "audit entries for {detail}: {matching:?}"
        );
        assert_eq!(matching[0]["actor"], "edgectl", "{:?}", matching[0]);
        assert_eq!(matching[0]["action"], "config set", "{:?}", matching[0]);
    }
}

#[test]
fn a_change_reports_exactly_what_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path(), 35);

    // A reload with nothing changed on disk (configuration file and certificates alike)
    // reports nothing.
    let out = ctl(&e.socket, &["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(report_lines(&out).is_empty(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing changed"),
        "{}",
        text(&out)
    );

    // Setting a key to the value it has changes nothing: no new generation, no audit entry.
    let g0 = generation(&e.socket);
    let audited = audit(&e.socket).len();
    let out = ctl(&e.socket, &["config", "set", "appliance.name", "edge-demo"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing changed"),
        "{}",
        text(&out)
    );
    assert!(report_lines(&out).is_empty(), "{}", text(&out));
    assert_eq!(generation(&e.socket), g0);
    assert_eq!(audit(&e.socket).len(), audited);

    // A log level change reports logging and nothing else: no certificates, no quotas.
    let out = ctl(&e.socket, &["config", "set", "logging.level", "debug"]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = report_lines(&out);
    assert_eq!(lines.len(), 1, "{}", text(&out));
    assert!(lines[0].starts_with("applied: logging"), "{}", text(&out));
    assert_eq!(generation(&e.socket), g0 + 1);

    // A role setting is reported by that role alone, naming the key.
    let out = ctl(
        &e.socket,
        &["config", "set", "av_edge.max_allocations", "77"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let lines = report_lines(&out);
    assert_eq!(lines.len(), 1, "{}", text(&out));
    assert!(
        lines[0].starts_with("applied: av_edge.max_allocations"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_role_action_is_audited_once_under_the_client_that_asked() {
    let dir = tempfile::tempdir().unwrap();
    let e = start(dir.path(), 36);
    let before = audit(&e.socket).len();
    let out = ctl(
        &e.socket,
        &[
            "role",
            "access_edge",
            "block",
            "--action",
            r#"{"domain":"evil.example"}"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let entries = audit(&e.socket);
    let blocked: Vec<_> = entries
        .iter()
        .filter(|a| {
            a["detail"]
                .as_str()
                .is_some_and(|d| d.contains("evil.example"))
        })
        .collect();
    assert_eq!(blocked.len(), 1, "{entries:?}");
    assert_eq!(blocked[0]["actor"], "edgectl", "{blocked:?}");
    assert_eq!(
        entries.len(),
        before + 1,
        "one entry for the action: {entries:?}"
    );

    // A client that names no actor is recorded as "api".
    let (code, body) = request(
        &e.socket,
        "POST",
        "/api/v1/roles/access_edge/promote",
        Some(&serde_json::json!({"domain": "partner.example"})),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let entries = audit(&e.socket);
    let promoted: Vec<_> = entries
        .iter()
        .filter(|a| {
            a["detail"]
                .as_str()
                .is_some_and(|d| d.contains("partner.example"))
        })
        .collect();
    assert_eq!(promoted.len(), 1, "{promoted:?}");
    assert_eq!(promoted[0]["actor"], "api", "{promoted:?}");
}

#[test]
fn a_reload_reports_a_renewed_certificate_file_and_nothing_for_the_same_one() {
    let dir = tempfile::tempdir().unwrap();
    // Certificate files from a CA of the test's own, as an operator's PKI would issue them.
    let ca = edged_store::Store::open(&dir.path().join("ca.redb")).unwrap();
    let (cert_file, key_file) = (dir.path().join("edge.pem"), dir.path().join("edge.key"));
    let renew = || {
        let issued = edged_tls::issue_client_certificate(
            &ca,
            "edge.localhost",
            &["edge.localhost".into(), "127.0.37.1".into()],
        )
        .unwrap();
        std::fs::write(&cert_file, &issued.chain_pem).unwrap();
        std::fs::write(&key_file, &issued.key_pem).unwrap();
    };
    renew();
    let mut config = edged_config::Config::from_toml(&config_for(37)).unwrap();
    // The A/V Edge alone: it presents the certificate and needs no trust anchors.
    config.access_edge.enabled = false;
    config.webconf_edge.enabled = false;
    config.av_auth.enabled = false;
    config.metrics.enabled = false;
    config.certificates.insert(
        "default".into(),
        edged_config::CertificateConfig {
            cert_file: Some(cert_file.clone()),
            key_file: Some(key_file.clone()),
            self_signed: false,
            sans: Vec::new(),
        },
    );
    let cfg = dir.path().join("edged.toml");
    std::fs::write(&cfg, config.to_toml()).unwrap();
    let mut e = Edged::start(dir.path(), Some(&cfg));
    e.wait_ready(Duration::from_secs(60));

    let out = ctl(&e.socket, &["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(report_lines(&out).is_empty(), "same files: {}", text(&out));

    renew();
    let out = ctl(&e.socket, &["reload"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        report_lines(&out),
        ["applied: av_edge.certificate: new TLS connections use the new certificate"],
        "{}",
        text(&out)
    );
    // The renewal changed what runs, so it is audited, once.
    let renewals = audit(&e.socket)
        .into_iter()
        .filter(|a| a["action"] == "reload")
        .count();
    assert_eq!(renewals, 1);
}
