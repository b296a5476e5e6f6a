//! The binaries as a demo user runs them: an edge writes its connector bundle, the
//! connector process serves from it, the client process joins; then the connector is
//! killed with SIGKILL and a client still connected hears "server gone".

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use edged_role::RoleContext;
use session_key::CloseCode;
use webconf_connector::bundle::Bundle;
use webconf_connector::client::Client;

const CONNECTOR: &str = env!("CARGO_BIN_EXE_webconf-connector");
const CLIENT: &str = env!("CARGO_BIN_EXE_webconf-client");

async fn start_edge(bundle: &Path, store_dir: &Path) -> Arc<webconf_edge::WebconfEdge> {
    let store = edged_store::Store::open(&store_dir.join("s.redb")).unwrap();
    let mut config = edged_config::Config::embedded_default();
    config.webconf_edge.external_port = 0;
    config.webconf_edge.internal_port = 0;
    config.webconf_edge.connector_bundle_dir = Some(bundle.to_path_buf());
    let ctx = RoleContext::for_test_on(&store, config);
    webconf_edge::start_edge(ctx).await.unwrap()
}

/// Runs `webconf-connector mint` with the key source `from` (`--bundle DIR` or
/// `--keys-file FILE`); returns the token.
fn mint_from(from: &str, path: &Path, conference: &str) -> String {
    let out = Command::new(CONNECTOR)
        .args(["mint", from])
        .arg(path)
        .args(["--conference", conference, "--role", "presenter"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn mint(bundle: &Path, conference: &str) -> String {
    mint_from("--bundle", bundle, conference)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_bundle_binaries_and_a_killed_connector() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let edge = start_edge(&bundle, dir.path()).await;
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(bundle.join("session-keys.json"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "session keys are private to the owner");

    let pushed = dir.path().join("pushed-keys.json");
    let mut connector = Command::new(CONNECTOR)
        .args(["serve", "--bundle"])
        .arg(&bundle)
        .args(["--conference", "demo", "--keys-out"])
        .arg(&pushed)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..250 {
        if edge.connected_servers() == 1 {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "the connector process registered");

    let token = mint(&bundle, "demo");
    // The ring the edge pushed over the link is written for `mint --keys-file`, owner-only.
    let mut written = false;
    for _ in 0..250 {
        if pushed.exists() {
            written = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(written, "the pushed key ring was written");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&pushed).unwrap().permissions())
            & 0o077,
        0
    );
    let from_push = mint_from("--keys-file", &pushed, "demo");
    assert!(!from_push.is_empty());
    let b = Bundle::load(&bundle).unwrap();
    let tls = webconf_connector::pem::client_config(&b.ca_pem, None, &[]).unwrap();
    let mut s = Client::new(&tls, &b.server_name)
        .unwrap()
        .connect_tls(b.external, "demo", &from_push)
        .await
        .expect("a token minted from the pushed ring is admitted");
    s.send(b"pushed").await.unwrap();
    assert_eq!(s.recv_exact(6).await.unwrap(), b"pushed");
    s.close().await.unwrap();
    for quic in [false, true] {
        let mut cmd = tokio::process::Command::new(CLIENT);
        cmd.arg("--bundle").arg(&bundle).args([
            "--conference",
            "demo",
            "--token",
            &token,
            "--message",
            "ping-pong",
            "--count",
            "3",
        ]);
        if quic {
            cmd.arg("--quic");
        }
        let out = cmd.output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "quic={quic}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("admitted as presenter\n"), "{stdout}");
        assert_eq!(stdout.matches("ping-pong").count(), 3, "{stdout}");
    }
    // A key for another conference is refused with exit code 2; outside the edge every
    // refusal that depends on the key ring reads the same.
    let out = tokio::process::Command::new(CLIENT)
        .arg("--bundle")
        .arg(&bundle)
        .args(["--conference", "other", "--token", &token])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key_refused"));

    // A session left open while the connector process is killed.
    let b = Bundle::load(&bundle).unwrap();
    let tls = webconf_connector::pem::client_config(&b.ca_pem, None, &[]).unwrap();
    let client = Client::new(&tls, &b.server_name).unwrap();
    let mut s = client
        .connect_quic(b.external, "demo", &token)
        .await
        .unwrap();
    s.send(b"before").await.unwrap();
    assert_eq!(s.recv_exact(6).await.unwrap(), b"before");
    connector.kill().unwrap();
    let _ = connector.wait();
    let err = tokio::time::timeout(Duration::from_secs(20), s.recv())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.close_code(), Some(CloseCode::ServerGone), "{err}");
    assert_eq!(edge.close_count(CloseCode::ServerGone), 1);
}
