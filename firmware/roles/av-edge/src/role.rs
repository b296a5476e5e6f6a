//! Starting the role and the `Role` interface edged drives.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use edged_config::{Protocol, Transport as ConfigTransport};
use edged_role::{
    wait_until, Actor, AdminError, ApplyReport, Health, Lifecycle, Listener, ListenerHandle,
    ListenerInfo, ListenerLimits, Role, RoleContext, RoleError, RoleStatus, Setup, TlsMaterial,
};
use edged_tls::ClientAuth;
use media_relay::{PeerGuard, PlaneConfig, PlaneError, Realtime, RelayPlane};
use rand::RngCore;
use tokio::net::TcpListener;

use crate::credentials::Credentials;
use crate::server::Server;
use crate::settings::Settings;
use crate::stream::{StreamKind, StreamListener};

const NAME: &str = "av_edge";
const CONTROL_QUEUE: usize = 8192;
const SOCKET_BUFFER: usize = 4 << 20;

pub struct AvEdge {
    server: Arc<Server>,
    listeners: Vec<ListenerInfo>,
    tls: Arc<ArcSwap<rustls::ServerConfig>>,
    secret: [u8; 32],
    own_addresses: Vec<IpAddr>,
    /// Drain stops the listeners; relayed media flows until the allocations are gone or
    /// the deadline passes, then `closing` ends the rest.
    life: Lifecycle,
    hints: Vec<String>,
    /// The TCP/TLS listeners, whose caps follow the configuration.
    stream_listeners: Vec<Arc<ListenerHandle>>,
}

/// The caps and first-request deadline of the TURN TCP/TLS listeners.
fn stream_limits(cfg: &edged_config::roles::av_edge::AvEdgeConfig) -> ListenerLimits {
    ListenerLimits {
        max_connections: cfg.tcp_max_connections as usize,
        max_per_source: cfg.tcp_max_connections_per_source as usize,
        first_request_timeout: Duration::from_secs(u64::from(cfg.tcp_first_request_timeout_secs)),
        // A TURN client over TCP may be silent between refreshes for up to the longest
        // lifetime; the stricter deadlines before authentication and without an allocation
        // are the stream's own (stream_clock).
        idle_timeout: Some(Duration::from_secs(u64::from(cfg.max_lifetime_secs) + 60)),
    }
}

fn tls_config(ctx_tls: &TlsMaterial, cert: &str) -> Result<Arc<rustls::ServerConfig>, RoleError> {
    Ok(ctx_tls.server_config(cert, ClientAuth::None, &[])?)
}

/// Starts the A/V Edge: binds every listener, starts the relay threads and the control
/// tasks on the current runtime.
pub async fn start(ctx: RoleContext) -> Result<Arc<dyn Role>, RoleError> {
    let cfg = &ctx.config.av_edge;
    let specs: Vec<_> = ctx
        .config
        .sockets()
        .into_iter()
        .filter(|s| s.owner == NAME)
        .collect();
    let (relay_ip, relay_ports) = cfg.relay_range(&ctx.config.network);
    let relay_ip_v6 = cfg.relay_address_v6;
    let mut own_addresses: Vec<IpAddr> = specs.iter().map(|s| s.addr.ip()).collect();
    own_addresses.push(relay_ip);
    own_addresses.extend(relay_ip_v6);
    own_addresses.sort();
    own_addresses.dedup();

    let udp_specs: Vec<_> = specs
        .iter()
        .filter(|s| s.protocol == Protocol::Udp)
        .collect();
    let (control_tx, control_rx) = tokio::sync::mpsc::channel(CONTROL_QUEUE);
    let plane = RelayPlane::start_with(
        PlaneConfig {
            threads: cfg.relay_threads,
            cores: cfg.relay_cores.clone(),
            listeners: udp_specs.iter().map(|s| s.addr).collect(),
            socket_buffer_bytes: SOCKET_BUFFER,
            guard: PeerGuard {
                own_addresses: own_addresses.clone(),
                relay_ports: Some(relay_ports.clone()),
            },
            metrics: ctx.metrics.clone(),
            pacing: (
                std::time::Duration::from_micros(u64::from(cfg.relay_pacing_us)),
                std::time::Duration::from_micros(u64::from(cfg.relay_pacing_max_us)),
            ),
        },
        control_tx,
        Realtime {
            fifo_priority: (cfg.relay_realtime_priority > 0).then_some(cfg.relay_realtime_priority),
            lock_memory: cfg.relay_lock_memory,
        },
    )
    .map_err(|e| match e {
        PlaneError::Bind {
            listener,
            addr,
            source,
        } => RoleError::Bind {
            key: udp_specs
                .get(listener)
                .map_or_else(|| "av_edge.udp_port".into(), |s| s.key.clone()),
            addr,
            source,
        },
        other => RoleError::Other(format!("av_edge relay threads: {other}")),
    })?;
    let plane = Arc::new(plane);
    let udp_bound: Vec<SocketAddr> = plane.listener_addrs().to_vec();

    let mut listeners: Vec<ListenerInfo> = udp_specs
        .iter()
        .zip(&udp_bound)
        .map(|(s, addr)| ListenerInfo {
            purpose: s.purpose.clone(),
            side: s.side,
            transport: edged_role::Transport::Udp,
            address: addr.to_string(),
        })
        .collect();
    let mut tcp = Vec::new();
    for s in specs.iter().filter(|s| s.protocol == Protocol::Tcp) {
        let l = TcpListener::bind(s.addr)
            .await
            .map_err(|source| RoleError::Bind {
                key: s.key.clone(),
                addr: s.addr,
                source,
            })?;
        let bound = l.local_addr().map_err(|source| RoleError::Bind {
            key: s.key.clone(),
            addr: s.addr,
            source,
        })?;
        let kind = if s.transport == ConfigTransport::Tls {
            StreamKind::TlsOnly
        } else {
            StreamKind::Sniffed
        };
        listeners.push(ListenerInfo {
            purpose: s.purpose.clone(),
            side: s.side,
            transport: if kind == StreamKind::TlsOnly {
                edged_role::Transport::Tls
            } else {
                edged_role::Transport::Tcp
            },
            address: bound.to_string(),
        });
        tcp.push((l, kind, s.key.clone()));
    }

    let credentials = Credentials::open(ctx.store.clone())?;
    let mut hints = Vec::new();
    if cfg.demo_user {
        let password = credentials.ensure_demo_user(&cfg.realm)?;
        tracing::info!(target: "av_edge", realm = %cfg.realm, "demo relay user: demo / {password}");
        if let Some(udp) = udp_bound.first() {
            hints.push(format!(
                "A/V Edge (TURN, realm {realm}): turnutils_peer -L 127.0.0.3 & turnutils_uclient -u demo -w {password} -p {port} -e 127.0.0.3 {ip}",
                realm = cfg.realm,
                port = udp.port(),
                ip = udp.ip()
            ));
        }
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let settings = Settings::new(cfg, &secret, own_addresses.clone(), relay_ports.clone());
    if settings.max_allocations < cfg.max_allocations {
        tracing::warn!(target: "av_edge", configured = cfg.max_allocations, allowed = settings.max_allocations,
            "av_edge.max_allocations is above what the role's descriptor budget holds; the budget's figure applies");
    }
    let server = Arc::new(Server::new(
        settings,
        credentials,
        plane.clone(),
        relay_ip,
        relay_ip_v6,
        relay_ports,
        &ctx.metrics,
    ));
    let tls = Arc::new(ArcSwap::new(tls_config(&ctx.tls, &cfg.certificate)?));
    let life = Lifecycle::new();

    tokio::spawn(crate::udp::run(
        server.clone(),
        control_rx,
        udp_bound.clone(),
        life.closing().clone(),
    ));
    let mut stream_listeners = Vec::new();
    for (l, kind, name) in tcp {
        let handler = Arc::new(StreamListener {
            server: server.clone(),
            kind,
            tls: tls.clone(),
            life: life.clone(),
        });
        stream_listeners.push(Listener::new(name, l, stream_limits(cfg)).spawn(&life, handler));
    }
    {
        let server = server.clone();
        let closing = life.closing().clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => server.sweep(),
                    _ = closing.cancelled() => break,
                }
            }
        });
    }
    tracing::info!(target: "av_edge", udp = ?udp_bound, relay = %relay_ip, relay_v6 = ?relay_ip_v6, threads = plane.shard_count(), "A/V Edge started");
    Ok(Arc::new(AvEdge {
        server,
        listeners,
        tls,
        secret,
        own_addresses,
        life,
        hints,
        stream_listeners,
    }))
}

#[async_trait::async_trait]
impl Role for AvEdge {
    fn name(&self) -> &'static str {
        NAME
    }

    fn status(&self) -> RoleStatus {
        let c = &self.server.counters;
        let mut counters = std::collections::BTreeMap::new();
        counters.insert("allocations".into(), self.server.allocation_count() as u64);
        counters.insert("allocations_created".into(), c.allocations_created.get());
        counters.insert("requests".into(), c.requests.get());
        counters.insert("auth_failures".into(), c.auth_failures.get());
        counters.insert("forbidden_peers".into(), c.forbidden_peers.get());
        counters.insert("quota_rejections".into(), c.quota_rejections.get());
        counters.insert("bad_requests".into(), c.bad_requests.get());
        counters.insert("tcp_throttled_ms".into(), c.tcp_throttled_ms.get());
        counters.insert(
            "tcp_unbound_connections".into(),
            self.server.pending.len() as u64,
        );
        counters.insert(
            "relay_threads".into(),
            self.server.plane.shard_count() as u64,
        );
        let health = if self.life.is_draining() {
            Health::Draining
        } else {
            Health::Ready
        };
        RoleStatus {
            role: NAME.into(),
            health,
            listeners: self.listeners.clone(),
            counters,
        }
    }

    async fn apply(&self, old: &Setup, new: &Setup) -> ApplyReport {
        let mut report = crate::reconfigure::report(&old.config, &new.config);
        let (o, n) = (&old.config.av_edge, &new.config.av_edge);
        if crate::reconfigure::settings_changed(&old.config, &new.config) {
            // The relay sockets keep the range they were bound with.
            let (_, relay_ports) = o.relay_range(&old.config.network);
            let settings = Settings::new(n, &self.secret, self.own_addresses.clone(), relay_ports);
            self.server.settings.store(Arc::new(settings));
            for l in &self.stream_listeners {
                l.set_limits(stream_limits(n));
            }
        }
        if old.tls_changed(new, |c| c.av_edge.certificate.as_str(), &[]) {
            match tls_config(&new.tls, &n.certificate) {
                Ok(c) => {
                    self.tls.store(c);
                    report.applied.push(
                        "av_edge.certificate: new TLS connections use the new certificate".into(),
                    );
                }
                Err(e) => report
                    .restart_required
                    .push(format!("av_edge.certificate: {e}")),
            }
        }
        report
    }

    async fn drain(&self, deadline: Duration) {
        self.server
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        // The in-flight work is the allocations: media keeps flowing while any remain,
        // until the deadline.
        let server = &self.server;
        let idle = wait_until(&server.allocations_changed, || {
            server.allocation_count() == 0
        });
        self.life.drain_until_idle(deadline, idle).await;
        let plane = self.server.plane.clone();
        let _ = tokio::task::spawn_blocking(move || plane.shutdown()).await;
        tracing::info!(target: "av_edge", "A/V Edge stopped");
    }

    fn hints(&self) -> Vec<String> {
        self.hints.clone()
    }

    async fn action(
        &self,
        action: &str,
        arg: serde_json::Value,
        actor: Actor,
    ) -> Result<serde_json::Value, AdminError> {
        match edged_role::current_name("av_edge", action, &[("add_user", "add-user")]) {
            "add-user" => {
                let field = |k: &str| {
                    arg.get(k)
                        .and_then(|v| v.as_str())
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            AdminError::BadRequest(format!(
                                "\"{k}\" (a non-empty string) is required"
                            ))
                        })
                };
                let (name, password) = (field("name")?, field("password")?);
                let realm = self.server.settings.load().realm.clone();
                self.server
                    .credentials
                    .put_user(name, &realm, password, actor)
                    .map_err(|e| AdminError::Failed(e.to_string()))?;
                Ok(serde_json::json!({ "user": name, "realm": realm }))
            }
            other => Err(AdminError::NotFound(format!(
                "av_edge has no action \"{other}\" (actions: add-user)"
            ))),
        }
    }
}
