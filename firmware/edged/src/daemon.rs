//! The daemon's life: configuration at start, roles up, privileges down, then serve until
//! SIGTERM; SIGHUP reloads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use edged_admin_api::{Actor, ApplyReport, CommitResult, ConfigProblem};
use edged_config::{Config, ConfigErrors, EMBEDDED_DEFAULT};
use edged_metrics::Registry;
use edged_role::{Role, RoleContext, Setup};
use edged_store::{AuditRecord, Store};
use edged_tls::TlsMaterial;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::cli::Args;
use crate::handover::Dir;
use crate::logging::LogControl;
use crate::{admin, handover, logging, metrics_http, privileges, roles};

pub enum RunError {
    /// The configuration is invalid: one problem per line, each naming its key.
    Config(ConfigErrors),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for RunError {
    fn from(e: anyhow::Error) -> Self {
        RunError::Other(e)
    }
}

/// What the admin API and the signal handlers act on.
pub struct Daemon {
    pub store: Store,
    pub metrics: Registry,
    pub roles: Vec<Arc<dyn Role>>,
    pub log: LogControl,
    pub started: Instant,
    pub config_file: Option<PathBuf>,
    /// The running configuration. Every change holds this lock from reading the current
    /// configuration to applying the new one ([`Daemon::update`]), so two admins changing
    /// it at once cannot start from the same generation and lose one of the changes.
    current: tokio::sync::Mutex<Current>,
}

#[derive(Clone)]
pub struct Current {
    pub config: Arc<Config>,
    pub tls: Arc<TlsMaterial>,
    pub generation: u64,
}

/// Why a configuration change was refused; the running configuration is untouched.
#[derive(Debug)]
pub enum ChangeError {
    Invalid(Vec<ConfigProblem>),
    Failed(String),
}

impl From<ConfigErrors> for ChangeError {
    fn from(e: ConfigErrors) -> Self {
        ChangeError::Invalid(e.problems())
    }
}

fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join("edged.redb")
}

/// The configuration edged starts with, and its generation in the store.
fn initial_config(args: &Args, store: &Store, commit: bool) -> Result<(Config, u64), RunError> {
    let stored = store.config().context("reading the stored configuration")?;
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        let config = Config::from_toml(&text).map_err(RunError::Config)?;
        // Only compared with the file, which is validated: parsing is enough.
        let same = stored
            .as_ref()
            .and_then(|s| Config::parse_unvalidated(&s.toml).ok())
            .is_some_and(|s| s == config);
        if same || !commit {
            return Ok((config, stored.map_or(0, |s| s.generation)));
        }
        let generation = store
            .commit_config(
                &config.to_toml(),
                AuditRecord::new(
                    Actor::ConfigFile.as_str(),
                    "config",
                    format!("loaded {}", path.display()),
                ),
            )
            .context("committing the configuration file to the store")?;
        return Ok((config, generation));
    }
    match stored {
        Some(s) => {
            let config = Config::from_toml(&s.toml).map_err(RunError::Config)?;
            Ok((config, s.generation))
        }
        None => {
            let config = Config::embedded_default();
            if !commit {
                return Ok((config, 0));
            }
            let generation = store
                .commit_config(
                    &config.to_toml(),
                    AuditRecord::new(
                        Actor::Edged.as_str(),
                        "config",
                        "initialised from the embedded default",
                    ),
                )
                .context("storing the embedded default configuration")?;
            Ok((config, generation))
        }
    }
}

/// `open_files`: the process's open-files limit, measured at start.
pub fn run(args: Args, open_files: u64) -> Result<(), RunError> {
    if args.print_default_config {
        print!("{EMBEDDED_DEFAULT}");
        return Ok(());
    }
    edged_tls::install_crypto_provider();
    let data_dir = crate::data_dir::prepare(&args.data_dir)?;
    let store = Store::open(&store_path(&args.data_dir)).context("opening the store")?;
    if args.check {
        edged_config::set_process_descriptor_limit(open_files);
        initial_config(&args, &store, false)?;
        println!("configuration is valid");
        return Ok(());
    }
    let (config, generation) = initial_config(&args, &store, true)?;
    let log_file = match &args.log_file {
        Some(path) => Some(
            crate::log_file::BoundedFile::open(path, args.log_file_max_bytes)
                .with_context(|| format!("cannot open the log file {}", path.display()))?,
        ),
        None => None,
    };
    let log = logging::init(&config.logging, log_file);
    // The running configuration is not refused for the limit (a lowered hard limit must
    // not keep the appliance down): its budgets are scaled to fit. Changes from now on are
    // checked against it.
    edged_config::set_process_descriptor_limit(open_files);
    install_budgets(&config, open_files);
    store.set_audit_retention(config.limits.audit_entries);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("edged-control")
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args, data_dir, store, config, generation, log))
}

async fn serve(
    args: Args,
    data_dir: Option<Dir>,
    store: Store,
    config: Config,
    generation: u64,
    log: LogControl,
) -> Result<(), RunError> {
    // Handlers first: a SIGTERM that arrives while the roles start must drain, not kill.
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let tls = {
        let (c, s) = (config.clone(), store.clone());
        tokio::task::spawn_blocking(move || TlsMaterial::load(&c, &s))
            .await
            .map_err(|e| anyhow!("loading certificates: {e}"))?
            .map_err(|e| anyhow!("{e}"))?
    };
    let tls = Arc::new(tls);
    let config = Arc::new(config);
    let metrics = Registry::new();
    let ctx = RoleContext {
        config: config.clone(),
        tls: tls.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
    };
    let roles = roles::start_all(&ctx).await.map_err(|e| anyhow!("{e}"))?;

    let (admin_listener, admin_socket) = admin::bind(&args.admin_socket)?;
    let metrics_listener = if config.metrics.enabled {
        let addr = std::net::SocketAddr::new(config.network.internal.address, config.metrics.port);
        Some(
            metrics_http::bind(addr)
                .await
                .map_err(|e| anyhow!("metrics.port: cannot listen on {addr}: {e}"))?,
        )
    } else {
        None
    };

    // Every socket is bound: root is no longer needed.
    match privileges::service_account(&config.appliance.user)? {
        Some(account) => {
            handover::hand_over_all(&account, data_dir.as_ref(), admin_socket.as_ref())?;
            let keep = privileges::Keep {
                locked_memory: config.av_edge.enabled && config.av_edge.relay_lock_memory,
            };
            let d = privileges::drop_to(&account, keep)?;
            tracing::info!(target: "edged", user = %d.user, uid = d.uid, caps = d.effective_caps, "dropped root privileges");
        }
        None => tracing::debug!(target: "edged", "not running as root; nothing to drop"),
    }
    drop((data_dir, admin_socket));

    let daemon = Arc::new(Daemon {
        store,
        metrics: metrics.clone(),
        roles,
        log,
        started: Instant::now(),
        config_file: args.config.clone(),
        current: tokio::sync::Mutex::new(Current {
            config: config.clone(),
            tls,
            generation,
        }),
    });
    let stop = CancellationToken::new();
    admin::serve(admin_listener, daemon.clone(), stop.clone());
    tokio::spawn(summarise_outsider_events(stop.clone()));
    if let Some(l) = metrics_listener {
        metrics_http::serve(l, metrics, stop.clone());
    }
    let uptime = daemon.metrics.gauge(
        "edged_config_generation",
        "Generation of the running configuration",
        &[],
    );
    uptime.set(generation as i64);

    tracing::info!(target: "edged", appliance = %config.appliance.name, generation, "all roles started");
    if args.banner {
        print_banner(&daemon, &args).await;
    }
    notify_systemd("READY=1");

    loop {
        tokio::select! {
            _ = hup.recv() => {
                match daemon.reload(Actor::Signal).await {
                    Ok(r) => tracing::info!(target: "edged", generation = r.generation,
                        applied = ?r.report.applied, restart_required = ?r.report.restart_required, "reloaded"),
                    Err(e) => tracing::error!(target: "edged", error = %describe(&e), "reload refused; running configuration unchanged"),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }

    notify_systemd("STOPPING=1");
    let deadline = Duration::from_secs(daemon.current().await.config.appliance.drain_timeout_secs);
    tracing::info!(target: "edged", deadline_secs = deadline.as_secs(), "draining");
    // All roles drain at once, each within the same deadline; a role that overruns it does
    // not hold the appliance hostage.
    let drains = futures::future::join_all(daemon.roles.iter().map(|r| r.drain(deadline)));
    if tokio::time::timeout(deadline + Duration::from_secs(2), drains)
        .await
        .is_err()
    {
        tracing::warn!(target: "edged", "a role did not finish draining in time");
    }
    stop.cancel();
    let _ = std::fs::remove_file(&args.admin_socket);
    tracing::info!(target: "edged", "stopped");
    Ok(())
}

/// Writes the summaries of outsider-triggered events whose interval is over, so a burst
/// that stops is summed up too.
async fn summarise_outsider_events(stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => edged_role::outsider_log::flush(),
        }
    }
}

/// Gives every enabled role its descriptor budget: the caps all its listeners share.
fn install_budgets(config: &Config, open_files: u64) {
    let budgets = config.descriptor_budgets(open_files);
    if budgets.scaled_down {
        tracing::error!(target: "edged", open_files, reserve = config.limits.reserve_descriptors,
            configured = ?config.limits.descriptors, running = ?budgets.roles,
            "limits.descriptors exceed the open-files limit; every budget is scaled down to fit (lower them, or raise the hard limit)");
    }
    for (role, n) in &budgets.roles {
        edged_role::budget::install(role, *n, config.limits.source_share_percent);
    }
    tracing::info!(target: "edged", open_files, budgets = ?budgets.roles, "descriptor budgets");
}

/// Tells systemd (when it started us with Type=notify) how far along we are.
fn notify_systemd(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
            let _ = sock.send_to(state.as_bytes(), path);
        }
    }
}

pub fn describe(e: &ChangeError) -> String {
    match e {
        ChangeError::Invalid(p) => p
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        ChangeError::Failed(s) => s.clone(),
    }
}

impl Daemon {
    pub async fn current(&self) -> Current {
        self.current.lock().await.clone()
    }

    /// The one way the running configuration changes (`config set`, import, reload, the
    /// web page and the console alike): under the daemon's lock, `change` derives the new
    /// configuration from the running one, which is validated once, its TLS material
    /// loaded, committed to the store with `audit` (its one audit entry) and applied to the
    /// roles. Nothing changes, neither the store nor the running roles, unless every step
    /// before the commit succeeds. A change that leaves the configuration as it is commits
    /// nothing, audits nothing and reports nothing.
    pub async fn update(
        &self,
        audit: AuditRecord,
        change: impl FnOnce(&Config) -> Result<Config, ChangeError>,
    ) -> Result<CommitResult, ChangeError> {
        self.transact(audit, false, change).await
    }

    /// SIGHUP and `edgectl reload`: re-read the configuration file (when edged runs from
    /// one) and the certificate files, and apply what changed.
    pub async fn reload(&self, actor: Actor) -> Result<CommitResult, ChangeError> {
        let path = self.config_file.clone();
        let detail = match &path {
            Some(p) => format!("reloaded {}", p.display()),
            None => "re-read the certificates".into(),
        };
        let audit = AuditRecord::new(actor.as_str(), "reload", detail);
        // Read before taking the lock: the file is the input, not the running state.
        let text =
            match &path {
                Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                    ChangeError::Failed(format!("cannot read {}: {e}", p.display()))
                })?),
                None => None,
            };
        self.transact(audit, true, |old| match &text {
            Some(t) => Ok(Config::parse_unvalidated(t)?),
            None => Ok(old.clone()),
        })
        .await
    }

    /// [`Daemon::update`]; `reread_certificates` loads the TLS material again even when the
    /// configuration stays the same (a renewed certificate file), and audits the reload
    /// when that changed something.
    async fn transact(
        &self,
        audit: AuditRecord,
        reread_certificates: bool,
        change: impl FnOnce(&Config) -> Result<Config, ChangeError>,
    ) -> Result<CommitResult, ChangeError> {
        let mut cur = self.current.lock().await;
        let new = change(&cur.config)?;
        let config_changed = new != *cur.config;
        if !config_changed && !reread_certificates {
            return Ok(CommitResult {
                generation: cur.generation,
                report: ApplyReport::default(),
            });
        }
        if config_changed {
            // The single gate: nothing else validates a change.
            new.validate()?;
        }
        let tls = self.load_tls(&new).await?;
        let old = Setup {
            config: cur.config.clone(),
            tls: cur.tls.clone(),
        };
        let new = Setup {
            config: Arc::new(new),
            tls,
        };
        let generation = if config_changed {
            let store = self.store.clone();
            let (text, record) = (new.config.to_toml(), audit.clone());
            tokio::task::spawn_blocking(move || store.commit_config(&text, record))
                .await
                .map_err(|e| ChangeError::Failed(e.to_string()))?
                .map_err(|e| ChangeError::Failed(e.to_string()))?
        } else {
            cur.generation
        };
        let report = self.apply(&old, &new).await;
        if !config_changed && !report.is_empty() {
            // Same configuration, other certificates: still a change, audited once.
            let store = self.store.clone();
            let audited = tokio::task::spawn_blocking(move || store.write(|tx| tx.audit(audit)))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            if let Err(e) = audited {
                tracing::error!(target: "edged", error = %e, "reload applied but not audited");
            }
        }
        *cur = Current {
            config: new.config,
            tls: new.tls,
            generation,
        };
        self.metrics
            .gauge(
                "edged_config_generation",
                "Generation of the running configuration",
                &[],
            )
            .set(generation as i64);
        Ok(CommitResult { generation, report })
    }

    async fn load_tls(&self, config: &Config) -> Result<Arc<TlsMaterial>, ChangeError> {
        let (c, s) = (config.clone(), self.store.clone());
        let tls = tokio::task::spawn_blocking(move || TlsMaterial::load(&c, &s))
            .await
            .map_err(|e| ChangeError::Failed(e.to_string()))?
            .map_err(|e| match e {
                edged_tls::TlsError::Certificate { key, reason } => {
                    ChangeError::Invalid(vec![ConfigProblem { key, reason }])
                }
                other => ChangeError::Failed(other.to_string()),
            })?;
        Ok(Arc::new(tls))
    }

    /// Hands the new configuration to every role and collects what took effect. edged
    /// reports its own sections and every role's `enabled` (the one place that does);
    /// each role reports its own part.
    async fn apply(&self, old_setup: &Setup, new_setup: &Setup) -> ApplyReport {
        let (old, new) = (&*old_setup.config, &*new_setup.config);
        let mut report = ApplyReport::default();
        for (name, was, is) in [
            (
                "access_edge",
                old.access_edge.enabled,
                new.access_edge.enabled,
            ),
            (
                "webconf_edge",
                old.webconf_edge.enabled,
                new.webconf_edge.enabled,
            ),
            ("av_edge", old.av_edge.enabled, new.av_edge.enabled),
            ("av_auth", old.av_auth.enabled, new.av_auth.enabled),
        ] {
            if let Some(line) = edged_role::enabled_change(name, was, is) {
                report.restart_required.push(line);
            }
        }
        for role in &self.roles {
            report.merge(role.apply(old_setup, new_setup).await);
        }
        if old.logging != new.logging {
            self.log.apply_config(&new.logging);
            report.applied.push("logging: levels changed".into());
        }
        if old.limits != new.limits {
            if let Some(open_files) = edged_config::process_descriptor_limit() {
                install_budgets(new, open_files);
            }
            self.store.set_audit_retention(new.limits.audit_entries);
            report
                .applied
                .push("limits: budgets apply to new connections".into());
        }
        if old.metrics != new.metrics || old.network.internal != new.network.internal {
            report
                .restart_required
                .push("metrics: the metrics listener changes after a restart of edged".into());
        }
        for key in edged_role::changed_keys("appliance", &old.appliance, &new.appliance) {
            if key == "appliance.user" {
                report.restart_required.push(
                    "appliance.user: the service account changes after a restart of edged".into(),
                );
            } else {
                // Read where they are used (status, the next drain).
                report.applied.push(format!("{key}: applied"));
            }
        }
        report.applied.sort();
        report.applied.dedup();
        report.restart_required.sort();
        report.restart_required.dedup();
        report
    }
}

async fn print_banner(daemon: &Daemon, args: &Args) {
    let cur = daemon.current().await;
    let mut out = String::new();
    out.push_str(&format!(
        "\nedged {} is up: appliance \"{}\", configuration generation {}, store {}\n\n",
        env!("CARGO_PKG_VERSION"),
        cur.config.appliance.name,
        cur.generation,
        store_path(&args.data_dir).display()
    ));
    for role in &daemon.roles {
        let s = role.status();
        out.push_str(&format!("  {:<13} {}\n", s.role, health_word(&s.health)));
        for l in &s.listeners {
            out.push_str(&format!(
                "      {:<8} {:<5} {:<22} {}\n",
                l.side.to_string(),
                l.transport.to_string(),
                l.address,
                l.purpose
            ));
        }
    }
    if cur.config.metrics.enabled {
        out.push_str(&format!(
            "  {:<13} http://{}/metrics\n",
            "metrics",
            std::net::SocketAddr::new(cur.config.network.internal.address, cur.config.metrics.port)
        ));
    }
    out.push_str("\nHow to try it:\n");
    let edgectl = format!("edgectl --socket {}", args.admin_socket.display());
    out.push_str(&format!("  {edgectl} status\n"));
    if let Some(ca) = cur.tls.ca_pem() {
        let ca_path = args.data_dir.join("appliance-ca.pem");
        if std::fs::write(&ca_path, ca).is_ok() {
            out.push_str(&format!(
                "  the appliance CA (trust it in clients): {}\n",
                ca_path.display()
            ));
        }
    }
    for role in &daemon.roles {
        for hint in role.hints() {
            out.push_str(&format!("  {hint}\n"));
        }
    }
    out.push_str("  Ctrl-C stops edged (it drains first).\n");
    println!("{out}");
}

pub fn health_word(h: &edged_admin_api::Health) -> String {
    match h {
        edged_admin_api::Health::Ready => "ready".into(),
        edged_admin_api::Health::Degraded(r) => format!("degraded: {r}"),
        edged_admin_api::Health::Down(r) => format!("down: {r}"),
        edged_admin_api::Health::Disabled => "disabled".into(),
        edged_admin_api::Health::Draining => "draining".into(),
        edged_admin_api::Health::Overloaded(r) => format!("overloaded: {r}"),
    }
}
