//! Headless Chromium through the appliance: edged runs with every role, relay credentials
//! come from both A/V Authentication Service endpoints (SIP SERVICE over mutual TLS for the
//! caller, the REST endpoint with an API key for the callee), and a page with two peer
//! connections forced to relay (`iceTransportPolicy: 'relay'`) echoes data-channel messages
//! and sends audio through edged's TURN listener, over UDP and then over TCP.
//!
//! Needs Debian's `chromium`; skipped with a note when it is missing, unless
//! EDGED_REQUIRE_TOOLS=1.

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{config_for, request, Edged};
use edged_tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use edged_tls::rustls::{ClientConfig, RootCertStore};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const CHROMIUM: &str = "/usr/bin/chromium";
/// The test's own loopback block (see `config_for`): 127.0.41.1 external, .2 internal.
const NET: u8 = 41;
const PAGE: &str = include_str!("media/relay_page.html");
/// Chromium is killed after this, whatever the page did.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn chromium_present() -> bool {
    edged_test_tools::require(&[CHROMIUM], "chromium")
}

/// Chromium in a process group of its own: the browser and every helper process it
/// started (renderer, GPU, network service) are killed and reaped however the test ends.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(-(self.0.id() as i32));
        let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the test needs from the store before edged owns it: the appliance CA (to trust the
/// service's certificate) and a client certificate from it, as a pool server would have.
struct Trust {
    ca_pem: String,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
}

fn prepare_store(data_dir: &Path) -> Trust {
    let store = edged_store::Store::open(&data_dir.join("edged.redb")).expect("store");
    let issued =
        edged_tls::issue_client_certificate(&store, "pool1", &["pool1.example.test".to_string()])
            .expect("client certificate");
    let client_chain = rustls_pemfile::certs(&mut issued.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("chain");
    let client_key = rustls_pemfile::private_key(&mut issued.key_pem.as_bytes())
        .expect("key")
        .expect("a key");
    Trust {
        ca_pem: issued.ca_pem.clone(),
        client_chain,
        client_key,
    }
}

fn tls_client(trust: &Trust, with_certificate: bool, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    edged_tls::add_pem_anchors(&mut roots, "test", &trust.ca_pem).expect("CA");
    let builder = ClientConfig::builder_with_provider(edged_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut cfg = if with_certificate {
        builder
            .with_client_auth_cert(trust.client_chain.clone(), trust.client_key.clone_key())
            .expect("client certificate")
    } else {
        builder.with_no_client_auth()
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

async fn tls_connect(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::time::timeout(IO_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(
        IO_TIMEOUT,
        tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
    .expect("handshake")
}

/// Reads one message framed by a header block and Content-Length (SIP and HTTP/1.1 alike);
/// returns (status code, body).
async fn read_framed(stream: &mut (impl AsyncRead + Unpin)) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let status = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("no status line in {head}"));
                return (status, buf[end + 4..end + 4 + length].to_vec());
            }
        }
        let n = tokio::time::timeout(IO_TIMEOUT, stream.read(&mut chunk))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "connection closed mid-message");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A credential from the SIP SERVICE endpoint (MS-AVEDGEA), as an internal pool asks.
async fn sip_credential(addr: SocketAddr, trust: &Trust) -> (String, String) {
    let mut tls = tls_connect(addr, tls_client(trust, true, &[])).await;
    let body = mras::build_request(
        "chromium-1",
        "alice@example.test",
        mras::Location::Internet,
        Some(30),
    );
    let req = format!(
        "SERVICE sip:edge.example.test SIP/2.0\r\n\
         Via: SIP/2.0/TLS 127.0.{NET}.2:5061;branch=z9hG4bKchromium1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:pool.example.test>;tag=chromium\r\n\
         To: <sip:edge.example.test>\r\n\
         Call-ID: chromium-relay-1\r\n\
         CSeq: 1 SERVICE\r\n\
         Content-Type: {}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        mras::CONTENT_TYPE,
        body.len()
    );
    tls.write_all(req.as_bytes()).await.expect("send SERVICE");
    let (status, body) = read_framed(&mut tls).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let grant = mras::parse_response(&body).expect("MS-AVEDGEA response");
    (grant.username, grant.password)
}

/// A credential and the TURN URIs from the REST endpoint, authenticated by API key.
async fn rest_credential(addr: SocketAddr, trust: &Trust, api_key: &str) -> Value {
    let mut tls = tls_connect(addr, tls_client(trust, false, &[b"http/1.1"])).await;
    let req = format!(
        "GET /api/v1/turn-credentials?username=bob@example.test&ttl=1800 HTTP/1.1\r\n\
         Host: {addr}\r\nX-API-Key: {api_key}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).await.expect("send GET");
    let (status, body) = read_framed(&mut tls).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("JSON")
}

/// The page's HTTP server: the page, its configuration, and where it posts the outcome.
#[derive(Clone)]
struct PageState {
    config: Value,
    results: mpsc::Sender<Value>,
}

async fn serve_page(config: Value) -> (SocketAddr, mpsc::Receiver<Value>) {
    let (tx, rx) = mpsc::channel(4);
    let app = Router::new()
        .route("/", get(|| async { axum::response::Html(PAGE) }))
        .route(
            "/config",
            get(|State(s): State<PageState>| async move { Json(s.config) }),
        )
        .route(
            "/result",
            post(
                |State(s): State<PageState>, Json(v): Json<Value>| async move {
                    let _ = s.results.send(v).await;
                    "ok"
                },
            ),
        )
        .with_state(PageState {
            config,
            results: tx,
        });
    let listener = tokio::net::TcpListener::bind(format!("127.0.{NET}.3:0"))
        .await
        .expect("page listener");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, rx)
}

fn launch_chromium(url: &str, profile: &Path, log: &Path) -> Browser {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--allow-loopback-in-peer-connection",
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
            "--enable-logging=stderr",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("chromium starts");
    Browser(child)
}

/// The first URI of `transport` among the service's TURN URIs.
fn uri_for(uris: &Value, transport: &str) -> String {
    uris.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|u| u.starts_with("turn:") && u.ends_with(&format!("?transport={transport}")))
        .unwrap_or_else(|| panic!("no turn: URI for {transport} in {uris}"))
        .to_owned()
}

fn counter(status: &Value, role: &str, name: &str) -> u64 {
    status["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["role"] == role)
        .and_then(|r| r["counters"][name].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_peer_connections_relay_data_and_audio_through_edged() {
    if !chromium_present() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let trust = prepare_store(dir.path());
    let config_path = dir.path().join("edged.toml");
    std::fs::write(&config_path, config_for(NET)).expect("config");
    let mut edged = Edged::start(dir.path(), Some(&config_path));
    edged.wait_ready(Duration::from_secs(30));

    let (status, created) = request(
        &edged.socket,
        "POST",
        "/api/v1/roles/av_auth/create-api-key",
        Some(&json!({ "name": "chromium-page" })),
    )
    .expect("admin API");
    assert_eq!(status, 200, "{created}");
    let api_key = created["key"].as_str().expect("key").to_owned();

    let internal = |port: u16| SocketAddr::from(([127, 0, NET, 2], port));
    let defaults = edged_config::Config::embedded_default();
    let (caller_user, caller_password) =
        sip_credential(internal(defaults.av_auth.sip_port), &trust).await;
    let rest = rest_credential(internal(defaults.av_auth.rest_port), &trust, &api_key).await;
    let page_config = json!({
        "caller": { "username": caller_user, "password": caller_password },
        "callee": { "username": rest["username"], "password": rest["password"] },
        "urls": { "udp": uri_for(&rest["uris"], "udp"), "tcp": uri_for(&rest["uris"], "tcp") },
        "transports": ["udp", "tcp"],
        "messages": 20,
        "audioPackets": 50,
    });
    eprintln!("page configuration: {}", page_config["urls"]);

    let (page, mut results) = serve_page(page_config).await;
    let profile = tempfile::tempdir().expect("profile dir");
    let log = dir.path().join("chromium.log");
    let browser = launch_chromium(&format!("http://{page}/"), profile.path(), &log);
    let outcome = tokio::time::timeout(BROWSER_LIMIT, results.recv()).await;
    drop(browser);
    let browser_log = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    };
    let result = match outcome {
        Ok(Some(v)) => v,
        _ => panic!(
            "the page posted no result within {BROWSER_LIMIT:?}; chromium said:\n{}",
            browser_log()
        ),
    };
    eprintln!("page result: {result:#}");
    assert_eq!(result["ok"], true, "the page failed: {}", result["error"]);

    let runs = result["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2, "{result}");
    for (run, transport) in runs.iter().zip(["udp", "tcp"]) {
        assert_eq!(run["transport"], transport);
        for side in ["caller", "callee"] {
            let pair = &run[side];
            assert_eq!(pair["local"], "relay", "{transport} {side}: {pair}");
            assert_eq!(pair["remote"], "relay", "{transport} {side}: {pair}");
            assert_eq!(
                pair["relayProtocol"], transport,
                "{transport} {side} reached the relay over the wrong transport: {pair}"
            );
            assert!(pair["bytesReceived"].as_u64().unwrap_or(0) > 0, "{pair}");
        }
        let gathered = run["gathered"].as_array().expect("gathered");
        assert!(
            !gathered.is_empty()
                && gathered
                    .iter()
                    .all(|c| c.as_str().is_some_and(|c| c.starts_with("relay/"))),
            "{transport}: candidates other than relay were offered: {gathered:?}"
        );
        assert_eq!(run["messagesSent"], 20, "{run}");
        assert_eq!(
            run["echoesMatching"], 20,
            "{transport}: data channel echoes lost or altered: {run}"
        );
        assert!(
            run["audioPackets"].as_u64().unwrap_or(0) >= 50,
            "{transport}: too little audio arrived: {run}"
        );
    }

    // The relay counted the page's allocations: the media went through edged, not around it.
    let (_, status) = request(&edged.socket, "GET", "/api/v1/status", None).expect("status");
    let allocations = counter(&status, "av_edge", "allocations_created");
    assert!(
        allocations >= 4,
        "two peer connections per run, two runs: only {allocations} allocations at the relay"
    );
}
