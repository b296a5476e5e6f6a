//! Starting the role, and the [`Role`] interface edged drives: status, apply, drain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use edged_config::roles::webconf_edge::WebconfEdgeConfig;
use edged_config::{parse_peers, Config, Protocol};
use edged_role::{
    listener_changes, Actor, AdminError, Anchors, ApplyReport, Health, Lifecycle, Listener,
    ListenerInfo, ListenerLimits, Role, RoleContext, RoleError, RoleStatus, Setup, Side, Transport,
};
use edged_store::Store;
use edged_tls::{AllowedPeers, ClientAuth, TlsMaterial};
use session_key::wire::{ALPN_CLIENT, ALPN_INTERNAL};
use session_key::{CloseCode, KeyRing, ParticipantRole};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::bundle::{self, BundleEndpoints};
use crate::keys;
use crate::limits::{Gate, Limits};
use crate::metrics::EdgeMetrics;
use crate::pool::Pool;
use crate::settings::Settings;
use crate::shared::Shared;
use crate::{external, internal, rotation};

const NAME: &str = "webconf_edge";
const EXTERNAL_KEY: &str = "webconf_edge.external_port";
const INTERNAL_KEY: &str = "webconf_edge.internal_port";
const PEERS_KEY: &str = "webconf_edge.internal_peers";

/// The running role.
pub struct WebconfEdge {
    shared: Arc<Shared>,
    store: Store,
    /// Where the demo connector bundle goes (`webconf_edge.connector_bundle_dir`): rotated
    /// keys are written there too.
    bundle_dir: Mutex<Option<PathBuf>>,
    external_addr: SocketAddr,
    internal_addr: SocketAddr,
    ext_quic: quinn::Endpoint,
    /// Whether `webconf_edge.internal_peers` lists anyone (the status says why no server
    /// is connected when it does not).
    peers_listed: AtomicBool,
}

/// Starts the role for edged, on a single-threaded runtime on a thread of its own: the
/// listeners, every client session and the internal links run there. A session's bytes go
/// from its client task to the link's driver and back without waking a second thread,
/// which on the daemon's per-core runtime cost more than the cryptography: in
/// `make bench-webconf` the role on its own thread moved 1.45x the bytes per CPU-second
/// (402 against 277 MB), and more bytes per second too. The current-thread scheduler, not
/// a one-worker multi-thread one: nothing to steal from or hand over to, and new sessions
/// per CPU-second rose about 10 % with it. One thread carries several hundred MB/s of
/// meeting content, far beyond what a meeting needs, and a flood of meeting clients cannot
/// take the cores of the other roles. The runtime lives as long as edged (roles are
/// started once; a change that needs a new role is a restart).
pub async fn start(ctx: RoleContext) -> Result<Arc<dyn Role>, RoleError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RoleError::Other(format!("webconf_edge: cannot start its runtime: {e}")))?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("edged-webconf".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|e| RoleError::Other(format!("webconf_edge: cannot start its thread: {e}")))?;
    let edge: Arc<dyn Role> = handle
        .spawn(start_edge(ctx))
        .await
        .map_err(|e| RoleError::Other(format!("webconf_edge: start failed: {e}")))??;
    Ok(edge)
}

fn socket(config: &Config, key: &str, protocol: Protocol) -> Result<SocketAddr, RoleError> {
    config
        .sockets()
        .into_iter()
        .find(|s| s.owner == NAME && s.key == key && s.protocol == protocol)
        .map(|s| s.addr)
        .ok_or_else(|| RoleError::Config {
            key: key.into(),
            reason: "no socket defined".into(),
        })
}

/// `{"overlap_secs": N}` (optional; an empty or absent argument takes the configured overlap).
fn overlap_arg(arg: &serde_json::Value) -> Result<Option<u64>, AdminError> {
    match arg.get("overlap_secs") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&s| s <= 7 * 86_400)
            .map(Some)
            .ok_or_else(|| {
                AdminError::BadRequest(
                    "overlap_secs must be a number of seconds up to 604800".into(),
                )
            }),
    }
}

fn bind_error(key: &str, addr: SocketAddr) -> impl FnOnce(std::io::Error) -> RoleError + '_ {
    move |source| RoleError::Bind {
        key: key.into(),
        addr,
        source,
    }
}

fn external_transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    // One session per QUIC connection, on the client's first bidirectional stream.
    t.max_concurrent_bidi_streams(1u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.max_idle_timeout(Some(quinn::VarInt::from_u32(60_000).into()));
    Arc::new(t)
}

/// The QUIC server side of the external port; `max_incoming` bounds the attempts queued
/// before the accept loop takes them (quinn refuses beyond it; its default is 65,536).
fn quic_server(
    tls: Arc<rustls::ServerConfig>,
    transport: Arc<quinn::TransportConfig>,
    max_incoming: u32,
) -> Result<quinn::ServerConfig, RoleError> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| RoleError::Other(format!("QUIC TLS configuration: {e}")))?;
    let mut sc = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    sc.transport_config(transport);
    sc.max_incoming(usize::try_from(max_incoming).unwrap_or(usize::MAX));
    Ok(sc)
}

struct TlsConfigs {
    acceptor: TlsAcceptor,
    ext_quic: quinn::ServerConfig,
    internal: TlsAcceptor,
}

/// The conferencing servers the internal port admits (`webconf_edge.internal_peers`).
fn allowed_servers(config: &WebconfEdgeConfig) -> AllowedPeers {
    AllowedPeers::new(PEERS_KEY, parse_peers(&config.internal_peers))
}

fn tls_configs(tls: &TlsMaterial, config: &WebconfEdgeConfig) -> Result<TlsConfigs, RoleError> {
    let cert = config.certificate.as_str();
    let quic_max_incoming = config.quic_max_incoming;
    let client_tls = tls.server_config(cert, ClientAuth::None, &[ALPN_CLIENT])?;
    let internal_tls =
        tls.internal_server_config(cert, &allowed_servers(config), &[ALPN_INTERNAL])?;
    Ok(TlsConfigs {
        acceptor: TlsAcceptor::from(client_tls.clone()),
        ext_quic: quic_server(client_tls, external_transport(), quic_max_incoming)?,
        internal: TlsAcceptor::from(internal_tls),
    })
}

/// Binds TCP and UDP on the same external port. With port 0 (tests) the TCP port is
/// chosen first and UDP takes the same number, retried if that UDP port is taken.
fn bind_external(
    addr: SocketAddr,
) -> Result<(std::net::TcpListener, std::net::UdpSocket), RoleError> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let tcp = std::net::TcpListener::bind(addr).map_err(bind_error(EXTERNAL_KEY, addr))?;
        let bound = tcp.local_addr().map_err(bind_error(EXTERNAL_KEY, addr))?;
        match std::net::UdpSocket::bind(bound) {
            Ok(udp) => return Ok((tcp, udp)),
            Err(e) => last = Some((bound, e)),
        }
    }
    let (bound, e) = last.unwrap_or((addr, std::io::Error::other("no attempt")));
    Err(RoleError::Bind {
        key: EXTERNAL_KEY.into(),
        addr: bound,
        source: e,
    })
}

/// Writes the demo connector bundle (see [`bundle`]).
fn write_bundle(
    dir: &std::path::Path,
    config: &Config,
    store: &Store,
    tls: &TlsMaterial,
    ring: &KeyRing,
    external: SocketAddr,
    internal: SocketAddr,
) -> Result<(), String> {
    let server_name = config
        .certificates
        .get(&config.webconf_edge.certificate)
        .and_then(|c| c.sans.first().cloned())
        .unwrap_or_else(|| "localhost".into());
    let endpoints = BundleEndpoints {
        internal: internal.to_string(),
        external: external.to_string(),
        server_name,
    };
    bundle::write(dir, store, tls, ring, &endpoints)?;
    tracing::info!(target: "webconf_edge", dir = %dir.display(),
        "connector bundle written (demo): webconf-connector serve --bundle {}", dir.display());
    Ok(())
}

/// Starts the role and returns its concrete type (tests and the benchmark use the extra
/// methods; edged uses [`start`]).
pub async fn start_edge(ctx: RoleContext) -> Result<Arc<WebconfEdge>, RoleError> {
    edged_tls::install_crypto_provider();
    let cfg = &ctx.config.webconf_edge;
    let ext_cfg = socket(&ctx.config, EXTERNAL_KEY, Protocol::Tcp)?;
    let int_cfg = socket(&ctx.config, INTERNAL_KEY, Protocol::Tcp)?;
    let ring = keys::load_or_create(&ctx.store).map_err(|e| RoleError::Other(e.to_string()))?;
    let configs = tls_configs(&ctx.tls, cfg)?;
    if cfg.internal_peers.is_empty() {
        tracing::warn!(target: "webconf_edge",
            "{PEERS_KEY} is empty: no conferencing server is admitted on the internal port");
    }

    let (tcp, udp_ext) = bind_external(ext_cfg)?;
    let external_addr = tcp
        .local_addr()
        .map_err(bind_error(EXTERNAL_KEY, ext_cfg))?;
    tcp.set_nonblocking(true)
        .map_err(bind_error(EXTERNAL_KEY, ext_cfg))?;
    let tcp = TcpListener::from_std(tcp).map_err(bind_error(EXTERNAL_KEY, ext_cfg))?;
    let tcp_int =
        std::net::TcpListener::bind(int_cfg).map_err(bind_error(INTERNAL_KEY, int_cfg))?;
    let internal_addr = tcp_int
        .local_addr()
        .map_err(bind_error(INTERNAL_KEY, int_cfg))?;
    tcp_int
        .set_nonblocking(true)
        .map_err(bind_error(INTERNAL_KEY, internal_addr))?;
    let tcp_int =
        TcpListener::from_std(tcp_int).map_err(bind_error(INTERNAL_KEY, internal_addr))?;
    let ext_quic = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(configs.ext_quic),
        udp_ext,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(bind_error(EXTERNAL_KEY, external_addr))?;

    if let Some(dir) = &cfg.connector_bundle_dir {
        write_bundle(
            dir,
            &ctx.config,
            &ctx.store,
            &ctx.tls,
            &ring,
            external_addr,
            internal_addr,
        )
        .map_err(|reason| RoleError::Config {
            key: "webconf_edge.connector_bundle_dir".into(),
            reason,
        })?;
    }

    let metrics = EdgeMetrics::new(&ctx.metrics);
    let limits = Limits {
        quic_handshakes: Arc::new(Gate::new(metrics.quic_handshakes.clone())),
        ..Limits::default()
    };
    let shared = Arc::new(Shared {
        settings: ArcSwap::from_pointee(Settings::from_config(cfg)),
        keys: ArcSwap::from_pointee(ring),
        keys_changed: tokio::sync::watch::Sender::new(()),
        tls_acceptor: ArcSwap::from_pointee(configs.acceptor),
        internal_acceptor: ArcSwap::from_pointee(configs.internal),
        metrics,
        limits,
        pool: Pool::default(),
        clients: Lifecycle::new(),
        links: Lifecycle::new(),
        next_session: AtomicU64::new(1),
        next_server: AtomicU64::new(1),
    });
    let clients = Arc::new(external::TlsClients {
        shared: shared.clone(),
    });
    // The relay closes idle sessions itself after webconf_edge.idle_timeout_secs; the
    // listener's deadline is the backstop and never the shorter one.
    let idle = std::time::Duration::from_secs(cfg.idle_timeout_secs)
        .max(edged_role::admission::DEFAULT_IDLE_TIMEOUT);
    let external_limits = ListenerLimits {
        idle_timeout: Some(idle),
        ..ListenerLimits::default()
    };
    Listener::new(EXTERNAL_KEY, tcp, external_limits).spawn(&shared.clients, clients);
    tokio::spawn(external::quic_accept_loop(ext_quic.clone(), shared.clone()));
    let servers = Arc::new(internal::Servers {
        shared: shared.clone(),
    });
    let internal_limits = ListenerLimits {
        first_request_timeout: internal::HANDSHAKE_TIMEOUT,
        ..ListenerLimits::default()
    };
    Listener::new(INTERNAL_KEY, tcp_int, internal_limits).spawn(&shared.links, servers);
    tracing::info!(target: "webconf_edge", external = %external_addr, internal = %internal_addr,
        "web conferencing edge listening (TLS+QUIC external, mutual TLS internal)");
    let stop = shared.clients.draining().clone();
    let edge = Arc::new(WebconfEdge {
        shared,
        store: ctx.store.clone(),
        bundle_dir: Mutex::new(ctx.config.webconf_edge.connector_bundle_dir.clone()),
        external_addr,
        internal_addr,
        ext_quic,
        peers_listed: AtomicBool::new(!cfg.internal_peers.is_empty()),
    });
    tokio::spawn(rotation::run_schedule(Arc::downgrade(&edge), stop));
    Ok(edge)
}

impl WebconfEdge {
    /// The bound external address (TCP and UDP share the port).
    pub fn external_addr(&self) -> SocketAddr {
        self.external_addr
    }

    /// The bound internal address (TCP, mutual TLS).
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal_addr
    }

    /// The key ring in use (what a conferencing server shares).
    pub fn key_ring(&self) -> KeyRing {
        KeyRing::clone(&self.shared.keys.load())
    }

    /// Mints a session key with the current key (tests and demos).
    pub fn mint(
        &self,
        conference_id: &str,
        role: ParticipantRole,
        lifetime_secs: u64,
    ) -> Result<String, String> {
        self.shared
            .keys
            .load()
            .mint(conference_id, role, lifetime_secs, keys::unix_now())
            .map_err(|e| e.to_string())
    }

    /// Rotates the session key in the store (audited under `actor`) and starts using it;
    /// older keys verify for `overlap_secs` more. A demo bundle gets the new ring at once.
    pub fn rotate_keys(&self, overlap_secs: u64, actor: Actor) -> Result<KeyRing, String> {
        let ring = keys::rotate(&self.store, overlap_secs, actor).map_err(|e| e.to_string())?;
        self.adopt_rotated(&ring);
        Ok(ring)
    }

    /// The same as [`Self::rotate_keys`], off the async threads (the store writes to disk).
    async fn rotate_keys_off_thread(
        &self,
        overlap_secs: u64,
        actor: Actor,
    ) -> Result<KeyRing, String> {
        let store = self.store.clone();
        let ring = tokio::task::spawn_blocking(move || {
            keys::rotate(&store, overlap_secs, actor).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        self.adopt_rotated(&ring);
        Ok(ring)
    }

    /// Verifies and mints with a freshly rotated ring from now on.
    fn adopt_rotated(&self, ring: &KeyRing) {
        self.shared.set_keys(ring.clone());
        let bundle_dir = self
            .bundle_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(dir) = bundle_dir {
            if let Err(e) = bundle::write_keys(&dir, ring) {
                // The rotation stands; the overlap leaves time to fix the bundle directory.
                tracing::warn!(target: "webconf_edge", error = %e, "rotated session keys not written to the connector bundle");
            }
        }
    }

    /// One turn of the rotation schedule: rotates if due; returns how long to wait.
    pub(crate) async fn scheduled_rotation_step(&self) -> Duration {
        let settings = self.shared.settings.load_full();
        let Some(period) = settings.key_rotation else {
            return rotation::sleep_for(u64::MAX);
        };
        let now = keys::unix_now();
        let due_in = rotation::seconds_until_due(&self.shared.keys.load(), period, now);
        if due_in > 0 {
            return rotation::sleep_for(due_in);
        }
        match self
            .rotate_keys_off_thread(settings.key_overlap.as_secs(), Actor::Edged)
            .await
        {
            Ok(ring) => {
                tracing::info!(target: "webconf_edge", key_id = ?ring.current(now).map(|k| k.id),
                    "scheduled session key rotation");
                rotation::sleep_for(period.as_secs())
            }
            Err(e) => {
                tracing::warn!(target: "webconf_edge", error = %e, "scheduled session key rotation failed; retrying");
                rotation::sleep_for(u64::MAX)
            }
        }
    }

    /// What `edgectl role webconf_edge keys` shows.
    pub fn keys_report(&self) -> serde_json::Value {
        let now = keys::unix_now();
        let ring = self.shared.keys.load();
        let settings = self.shared.settings.load();
        serde_json::json!({
            "current": ring.current(now).map(|k| k.id),
            "rotation_hours": settings.key_rotation.map(|d| d.as_secs() / 3600),
            "overlap_secs": settings.key_overlap.as_secs(),
            "keys": rotation::describe(&ring, now),
        })
    }

    /// Open per-address and per-conference entries (zero when no session is left).
    pub fn open_limit_entries(&self) -> (usize, usize) {
        (
            self.shared.limits.by_address.len(),
            self.shared.limits.by_conference.len(),
        )
    }

    /// How many sessions ended with `code` (refusals included).
    pub fn close_count(&self, code: CloseCode) -> u64 {
        self.shared.metrics.close_count(code)
    }

    pub fn connected_servers(&self) -> usize {
        self.shared.pool.len()
    }

    fn listeners(&self) -> Vec<ListenerInfo> {
        let ext = self.external_addr.to_string();
        vec![
            ListenerInfo {
                purpose: "meeting clients".into(),
                side: Side::External,
                transport: Transport::Tls,
                address: ext.clone(),
            },
            ListenerInfo {
                purpose: "meeting clients".into(),
                side: Side::External,
                transport: Transport::Quic,
                address: ext,
            },
            ListenerInfo {
                purpose: "conferencing servers (mutual TLS)".into(),
                side: Side::Internal,
                transport: Transport::Tls,
                address: self.internal_addr.to_string(),
            },
        ]
    }
}

#[async_trait::async_trait]
impl Role for WebconfEdge {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The demo: a bundle for the reference connector, the connector, and a client.
    fn hints(&self) -> Vec<String> {
        let configured = self
            .bundle_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut out = vec![format!(
            "Web Conferencing Edge (meeting clients on {}, conferencing servers on {}):",
            self.external_addr, self.internal_addr
        )];
        let dir = match configured {
            Some(dir) => dir.display().to_string(),
            None => {
                let dir = "/tmp/edged-webconf".to_string();
                out.push(format!(
                    "  edgectl config set webconf_edge.connector_bundle_dir {dir}   (the edge writes a demo connector bundle there)"
                ));
                dir
            }
        };
        out.push(format!(
            "  target/debug/webconf-connector serve --bundle {dir} --conference demo &"
        ));
        out.push(format!(
            "  target/debug/webconf-client --bundle {dir} --conference demo --token \"$(target/debug/webconf-connector mint --bundle {dir} --conference demo)\" [--quic]"
        ));
        out
    }

    fn status(&self) -> RoleStatus {
        let health = if self.shared.clients.is_draining() {
            Health::Draining
        } else if self.shared.pool.is_empty() {
            Health::Degraded(if self.peers_listed.load(Ordering::Relaxed) {
                "no conferencing server connected on the internal port".into()
            } else {
                format!("no conferencing server is admitted: {PEERS_KEY} is empty")
            })
        } else {
            Health::Ready
        };
        RoleStatus {
            role: NAME.into(),
            health,
            listeners: self.listeners(),
            counters: self.shared.metrics.snapshot(),
        }
    }

    async fn apply(&self, old: &Setup, new: &Setup) -> ApplyReport {
        let (config, tls) = (&new.config, &new.tls);
        let mut report = ApplyReport {
            restart_required: listener_changes(NAME, &old.config, config),
            ..ApplyReport::default()
        };
        let bundle_dir = config.webconf_edge.connector_bundle_dir.clone();
        if old.config.webconf_edge.connector_bundle_dir != bundle_dir {
            bundle_dir.clone_into(
                &mut self
                    .bundle_dir
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if let Some(dir) = &bundle_dir {
                let ring = self.key_ring();
                match write_bundle(
                    dir,
                    config,
                    &self.store,
                    tls,
                    &ring,
                    self.external_addr,
                    self.internal_addr,
                ) {
                    Ok(()) => report.applied.push(format!(
                        "webconf_edge.connector_bundle_dir: bundle written to {}",
                        dir.display()
                    )),
                    Err(e) => report.restart_required.push(format!(
                        "webconf_edge.connector_bundle_dir: not written ({e})"
                    )),
                }
            }
        }
        let new_settings = Settings::from_config(&config.webconf_edge);
        report
            .applied
            .extend(Settings::from_config(&old.config.webconf_edge).changes(&new_settings));
        self.shared.settings.store(Arc::new(new_settings));
        // A renewed certificate, another list of servers or another QUIC queue bound (it
        // lives in quinn's server configuration): new handshakes use the new configuration,
        // established sessions keep theirs.
        let cert_changed = old.tls_changed(
            new,
            |c| c.webconf_edge.certificate.as_str(),
            &[Anchors::Internal],
        );
        let peers_changed =
            old.config.webconf_edge.internal_peers != config.webconf_edge.internal_peers;
        self.peers_listed.store(
            !config.webconf_edge.internal_peers.is_empty(),
            Ordering::Relaxed,
        );
        let incoming_changed =
            old.config.webconf_edge.quic_max_incoming != config.webconf_edge.quic_max_incoming;
        if cert_changed || peers_changed || incoming_changed {
            match tls_configs(tls, &config.webconf_edge) {
                Ok(c) => {
                    self.ext_quic.set_server_config(Some(c.ext_quic));
                    if cert_changed {
                        self.shared.tls_acceptor.store(Arc::new(c.acceptor));
                        report
                            .applied
                            .push("webconf_edge.certificate: in use for new handshakes".into());
                    }
                    if cert_changed || peers_changed {
                        self.shared.internal_acceptor.store(Arc::new(c.internal));
                    }
                    if peers_changed {
                        report.applied.push(format!(
                            "{PEERS_KEY}: applies to conferencing servers connecting from now on"
                        ));
                    }
                }
                Err(e) => report.restart_required.push(format!(
                    "webconf_edge.certificate: not applied ({e}); the previous certificate stays in use"
                )),
            }
        }
        match keys::load(&self.store) {
            Ok(ring) if !ring.is_empty() => self.shared.set_keys(ring),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(target: "webconf_edge", error = %e, "session keys not reloaded")
            }
        }
        report
    }

    async fn query(&self, what: &str) -> Result<serde_json::Value, AdminError> {
        match what {
            "keys" => Ok(self.keys_report()),
            other => Err(AdminError::NotFound(format!(
                "webconf_edge has no \"{other}\" (queries: keys)"
            ))),
        }
    }

    async fn action(
        &self,
        action: &str,
        arg: serde_json::Value,
        actor: Actor,
    ) -> Result<serde_json::Value, AdminError> {
        match edged_role::current_name(NAME, action, &[("rotate", "rotate-keys")]) {
            "rotate-keys" => {
                let overlap_secs = overlap_arg(&arg)?
                    .unwrap_or_else(|| self.shared.settings.load().key_overlap.as_secs());
                self.rotate_keys_off_thread(overlap_secs, actor)
                    .await
                    .map_err(AdminError::Failed)?;
                tracing::info!(target: "webconf_edge", overlap_secs, "session key rotated by the administrator");
                Ok(self.keys_report())
            }
            other => Err(AdminError::NotFound(format!(
                "webconf_edge has no action \"{other}\" (actions: rotate-keys)"
            ))),
        }
    }

    async fn drain(&self, deadline: Duration) {
        tracing::info!(target: "webconf_edge", ?deadline, "draining: no new clients");
        let clients = &self.shared.clients;
        if !clients
            .drain_until_idle(deadline, clients.tasks_ended())
            .await
        {
            tracing::info!(target: "webconf_edge", left = self.shared.metrics.sessions_active.get(),
                "drain deadline reached: the sessions left were closed");
        }
        let code = quinn::VarInt::from_u32(CloseCode::Draining.to_quic());
        self.ext_quic.close(code, b"draining");
        self.shared.links.stop().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ext_quic.wait_idle()).await;
        tracing::info!(target: "webconf_edge", "drained");
    }
}
