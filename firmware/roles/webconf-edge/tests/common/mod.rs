//! A real edge on loopback (tempdir store, embedded default config on free ports), real
//! connectors and clients.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edged_config::Config;
use edged_role::test_support::TestSite;
use edged_store::Store;
use webconf_connector::client::{Client, ClientError, Session};
use webconf_connector::connector::{echo, Connector};
use webconf_edge::{WebconfEdge, ALPN_INTERNAL};

pub struct TestEdge {
    pub edge: Arc<WebconfEdge>,
    pub store: Store,
    pub ca_pem: String,
    _dir: TestSite,
}

pub fn config(adjust: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::embedded_default();
    c.webconf_edge.external_port = 0;
    c.webconf_edge.internal_port = 0;
    c.webconf_edge.max_sessions_per_address = 2000;
    adjust(&mut c);
    c
}

pub async fn start(adjust: impl FnOnce(&mut Config)) -> TestEdge {
    start_prepared(|_, _| {}, adjust).await
}

/// Like [`start`], after `prepare` had the (empty) store and the test directory: seed
/// state, or point the config at files in the directory.
pub async fn start_prepared(
    prepare: impl FnOnce(&Store, &std::path::Path),
    adjust: impl FnOnce(&mut Config),
) -> TestEdge {
    let site = TestSite::new();
    prepare(&site.store, site.path());
    let mut config = config(adjust);
    if config.webconf_edge.connector_bundle_dir.is_some() {
        config.webconf_edge.connector_bundle_dir = Some(site.path().join("bundle"));
    }
    let ctx = site.context(config);
    let ca_pem = ctx.tls.ca_pem().unwrap().to_owned();
    let edge = webconf_edge::start_edge(ctx).await.unwrap();
    TestEdge {
        edge,
        store: site.store.clone(),
        ca_pem,
        _dir: site,
    }
}

impl TestEdge {
    /// The connector bundle directory (when the config asked for one).
    pub fn bundle_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("bundle")
    }

    pub fn ext(&self) -> SocketAddr {
        self.edge.external_addr()
    }

    /// A conferencing server's TLS: a certificate from the appliance CA for
    /// `conf-server.localhost`, which the embedded default lists in
    /// `webconf_edge.internal_peers`.
    pub fn connector_tls(&self) -> Arc<rustls::ClientConfig> {
        self.connector_tls_as("conf-server.localhost")
    }

    /// A conferencing server's TLS with a fresh certificate (new key) from the appliance CA
    /// for `name`.
    pub fn connector_tls_as(&self, name: &str) -> Arc<rustls::ClientConfig> {
        let issued =
            edged_tls::issue_client_certificate(&self.store, name, &[name.to_owned()]).unwrap();
        webconf_connector::pem::client_config(
            &self.ca_pem,
            Some((&issued.chain_pem, &issued.key_pem)),
            &[ALPN_INTERNAL],
        )
        .unwrap()
    }

    pub fn client(&self) -> Client {
        let tls = webconf_connector::pem::client_config(&self.ca_pem, None, &[]).unwrap();
        Client::new(&tls, "localhost").unwrap()
    }

    pub fn token(&self, conf: &str) -> String {
        self.edge
            .mint(conf, session_key::ParticipantRole::Attendee, 600)
            .unwrap()
    }

    /// Connects an echo connector; returns it and the count of sessions it received.
    pub async fn echo_connector(&self, confs: &[&str]) -> (Arc<Connector>, Arc<AtomicUsize>) {
        self.echo_connector_as("conf-server.localhost", confs)
            .await
            .unwrap()
    }

    /// [`Self::echo_connector`] presenting a certificate for `name`.
    pub async fn echo_connector_as(
        &self,
        name: &str,
        confs: &[&str],
    ) -> Result<(Arc<Connector>, Arc<AtomicUsize>), webconf_connector::connector::ConnectorError>
    {
        let confs: Vec<String> = confs.iter().map(|s| s.to_string()).collect();
        let c = Arc::new(
            Connector::connect(
                self.edge.internal_addr(),
                "localhost",
                self.connector_tls_as(name),
                &confs,
            )
            .await?,
        );
        let count = Arc::new(AtomicUsize::new(0));
        let (c2, n2) = (c.clone(), count.clone());
        tokio::spawn(async move {
            while let Ok(s) = c2.accept().await {
                n2.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(echo(s));
            }
        });
        self.wait_servers(self.edge.connected_servers().max(1))
            .await;
        Ok((c, count))
    }

    pub async fn wait_servers(&self, n: usize) {
        wait_until(Duration::from_secs(5), || {
            self.edge.connected_servers() >= n
        })
        .await;
    }

    pub fn active(&self) -> u64 {
        use edged_role::Role;
        self.edge.status().counters["sessions_active"]
    }

    /// Waits until no session and no limit entry is left.
    pub async fn assert_no_leak(&self) {
        let ok = wait_until(Duration::from_secs(10), || {
            self.active() == 0 && self.edge.open_limit_entries() == (0, 0)
        })
        .await;
        assert!(
            ok,
            "leak: active {} limits {:?}",
            self.active(),
            self.edge.open_limit_entries()
        );
    }
}

/// A session over QUIC or over TLS: tests run the same steps on both transports.
pub async fn connect(
    client: &Client,
    edge: SocketAddr,
    quic: bool,
    conf: &str,
    token: &str,
) -> Result<Session, ClientError> {
    if quic {
        client.connect_quic(edge, conf, token).await
    } else {
        client.connect_tls(edge, conf, token).await
    }
}

pub async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// A connector in its own runtime, so a test can make it vanish the way a crashed process
/// does: no QUIC close is sent, the edge notices from silence alone.
pub struct CrashableConnector {
    rt: Option<tokio::runtime::Runtime>,
    pub sessions: Arc<AtomicUsize>,
}

impl CrashableConnector {
    pub fn start(edge: SocketAddr, tls: Arc<rustls::ClientConfig>, confs: Vec<String>) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sessions = Arc::new(AtomicUsize::new(0));
        let n = sessions.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let c = Connector::connect(edge, "localhost", tls, &confs)
                .await
                .unwrap();
            tx.send(()).unwrap();
            while let Ok(s) = c.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(echo(s));
            }
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Self {
            rt: Some(rt),
            sessions,
        }
    }

    pub fn crash(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for CrashableConnector {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
