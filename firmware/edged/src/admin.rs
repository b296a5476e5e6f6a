//! The local admin API: JSON over HTTP on a Unix socket. edgectl speaks it today; the web
//! admin page will speak the same API. Every error is an HTTP 4xx/5xx with a JSON body
//! naming what was wrong.
//!
//! A client names itself in the `X-Edged-Actor` header ([`Actor`]: `edgectl`, `web`,
//! `console`; `api` when absent); every change it makes is audited once under that name:
//! configuration changes by [`Daemon::update`] with the commit, role actions by the role in
//! the transaction that makes the change.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use axum::extract::{FromRequestParts, Path as UrlPath, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use edged_admin_api::{
    Actor, Alive, ApiError, ConfigDocument, ConfigUpload, LogLevelRequest, SetRequest, Status,
    ValidateResult, ACTOR_HEADER,
};
use edged_config::Config;
use edged_role::{AdminError, Health, RoleStatus};
use edged_store::AuditRecord;
use serde::Deserialize;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::daemon::{ChangeError, Daemon};
use crate::handover::{BoundSocket, Dir, Origin};

type Shared = Arc<Daemon>;

/// Binds the socket, refusing to steal it from another running edged. Its directory is
/// created (0750) when missing; the socket and the directory it is in come back for the
/// hand-over to the service account (see [`crate::handover`]), which leaves an existing
/// directory alone.
pub fn bind(path: &Path) -> anyhow::Result<(UnixListener, Option<BoundSocket>)> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = Dir::create(parent, 0o750, Origin::Shared)?;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(anyhow!(
                "another edged is serving the admin socket {}; stop it first",
                path.display()
            ));
        }
        // A socket file left by a process that died without cleaning up.
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    // Owner and group only: the admin API is root-equivalent for the appliance.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting permissions of {}", path.display()))?;
    let bound = match (dir, path.file_name()) {
        (Some(dir), Some(name)) => Some(BoundSocket {
            dir,
            name: name.to_owned(),
        }),
        _ => None,
    };
    Ok((listener, bound))
}

pub fn router(daemon: Shared) -> Router {
    Router::new()
        .route("/api/v1/alive", get(alive))
        .route("/api/v1/status", get(status))
        .route(
            "/api/v1/config",
            get(get_config).put(put_config).patch(patch_config),
        )
        .route("/api/v1/config/value", get(get_value))
        .route("/api/v1/config/validate", post(validate))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/log-level", get(get_log_level).put(put_log_level))
        .route("/api/v1/audit", get(audit))
        .route(
            "/api/v1/roles/{role}/{what}",
            get(role_query).post(role_action),
        )
        .fallback(|| async { err(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(daemon)
}

pub fn serve(listener: UnixListener, daemon: Shared, stop: CancellationToken) {
    let app = router(daemon);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
        {
            tracing::error!(target: "edged", error = %e, "admin API stopped");
        }
    });
}

fn err(code: StatusCode, msg: impl Into<String>) -> Response {
    (
        code,
        Json(ApiError {
            error: msg.into(),
            problems: Vec::new(),
        }),
    )
        .into_response()
}

fn change_err(e: ChangeError) -> Response {
    match e {
        ChangeError::Invalid(problems) => (
            StatusCode::BAD_REQUEST,
            Json(ApiError {
                error: format!(
                    "invalid configuration ({} problem(s)); nothing was changed",
                    problems.len()
                ),
                problems,
            }),
        )
            .into_response(),
        ChangeError::Failed(m) => err(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

/// Touches no role and no lock: a change in progress or roles at their caps never delay it.
async fn alive(State(d): State<Shared>) -> Json<Alive> {
    Json(Alive {
        alive: true,
        uptime_seconds: d.started.elapsed().as_secs(),
    })
}

async fn status(State(d): State<Shared>) -> Json<Status> {
    let cur = d.current().await;
    Json(Status {
        appliance: cur.config.appliance.name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: d.started.elapsed().as_secs(),
        config_generation: cur.generation,
        roles: d.roles.iter().map(|r| with_budget(r.status())).collect(),
    })
}

/// A role's status with its descriptor budget: the figures, and `overloaded` when the
/// role is at its cap or refused connections for it lately (unless it is worse off).
fn with_budget(mut s: RoleStatus) -> RoleStatus {
    let Some(pool) = edged_role::budget::pool(&s.role) else {
        return s;
    };
    s.counters
        .insert("budget_descriptors".into(), pool.budget());
    s.counters.insert("budget_open".into(), pool.open() as u64);
    s.counters.insert("budget_refused".into(), pool.refused());
    if matches!(s.health, Health::Ready | Health::Degraded(_)) {
        if let Some(reason) = pool.overload(std::time::Instant::now()) {
            s.health = Health::Overloaded(reason);
        }
    }
    s
}

async fn get_config(State(d): State<Shared>) -> Json<ConfigDocument> {
    let cur = d.current().await;
    Json(ConfigDocument {
        generation: cur.generation,
        toml: cur.config.to_toml(),
    })
}

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

async fn get_value(State(d): State<Shared>, Query(q): Query<KeyQuery>) -> Response {
    let cur = d.current().await;
    match cur.config.get_value(&q.key) {
        Ok(v) => Json(serde_json::json!({ "key": q.key, "value": v })).into_response(),
        Err(e) => change_err(e.into()),
    }
}

/// Who is asking, from [`ACTOR_HEADER`] (`api` when absent); an unknown name is refused
/// rather than recorded.
struct ClientActor(Actor);

impl<S: Send + Sync> FromRequestParts<S> for ClientActor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Response> {
        let Some(value) = parts.headers.get(ACTOR_HEADER) else {
            return Ok(ClientActor(Actor::Api));
        };
        value
            .to_str()
            .ok()
            .and_then(Actor::from_header)
            .map(ClientActor)
            .ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    format!("{ACTOR_HEADER}: expected edgectl, web, console or api"),
                )
            })
    }
}

fn committed(r: Result<edged_admin_api::CommitResult, ChangeError>) -> Response {
    match r {
        Ok(r) => Json(r).into_response(),
        Err(e) => change_err(e),
    }
}

async fn patch_config(
    State(d): State<Shared>,
    ClientActor(actor): ClientActor,
    Json(req): Json<SetRequest>,
) -> Response {
    let audit = AuditRecord::new(
        actor.as_str(),
        "config set",
        format!("{} = {}", req.key, req.value),
    );
    committed(
        d.update(audit, |old| {
            Ok(old.with_value_unvalidated(&req.key, &req.value)?)
        })
        .await,
    )
}

async fn put_config(
    State(d): State<Shared>,
    ClientActor(actor): ClientActor,
    Json(up): Json<ConfigUpload>,
) -> Response {
    let audit = AuditRecord::new(
        actor.as_str(),
        "config import",
        "whole configuration replaced",
    );
    committed(
        d.update(audit, |_| Ok(Config::parse_unvalidated(&up.toml)?))
            .await,
    )
}

async fn validate(Json(up): Json<ConfigUpload>) -> Json<ValidateResult> {
    Json(match Config::from_toml(&up.toml) {
        Ok(_) => ValidateResult {
            valid: true,
            problems: Vec::new(),
        },
        Err(e) => ValidateResult {
            valid: false,
            problems: e.problems(),
        },
    })
}

async fn reload(State(d): State<Shared>, ClientActor(actor): ClientActor) -> Response {
    committed(d.reload(actor).await)
}

async fn get_log_level(State(d): State<Shared>) -> Json<edged_admin_api::LogLevels> {
    Json(d.log.levels())
}

async fn put_log_level(
    State(d): State<Shared>,
    ClientActor(actor): ClientActor,
    Json(req): Json<LogLevelRequest>,
) -> Response {
    match d.log.set(req.role.as_deref(), &req.level) {
        Ok(levels) => {
            tracing::info!(target: "edged", role = ?req.role, level = %req.level, %actor, "log level changed");
            // Runtime only (the configuration keeps its levels), but still an operator's
            // change: audited once like the others.
            let store = d.store.clone();
            let detail = format!("{} {}", req.role.as_deref().unwrap_or("default"), req.level);
            let record = AuditRecord::new(actor.as_str(), "log level", detail);
            match tokio::task::spawn_blocking(move || store.write(|tx| tx.audit(record))).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(target: "edged", error = %e, "log level change not audited")
                }
                Err(e) => {
                    tracing::error!(target: "edged", error = %e, "log level change not audited")
                }
            }
            Json(levels).into_response()
        }
        Err(m) => err(StatusCode::BAD_REQUEST, m),
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    50
}

async fn audit(State(d): State<Shared>, Query(q): Query<AuditQuery>) -> Response {
    let store = d.store.clone();
    let limit = q.limit.clamp(1, 10_000);
    match tokio::task::spawn_blocking(move || store.audit_tail(limit)).await {
        Ok(Ok(entries)) => Json(entries).into_response(),
        Ok(Err(e)) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn find_role(d: &Daemon, name: &str) -> Option<Arc<dyn edged_role::Role>> {
    d.roles.iter().find(|r| r.name() == name).cloned()
}

fn admin_err(e: AdminError) -> Response {
    match e {
        AdminError::NotFound(m) => err(StatusCode::NOT_FOUND, m),
        AdminError::BadRequest(m) => err(StatusCode::BAD_REQUEST, m),
        AdminError::Failed(m) => err(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

async fn role_query(
    State(d): State<Shared>,
    UrlPath((role, what)): UrlPath<(String, String)>,
) -> Response {
    let Some(r) = find_role(&d, &role) else {
        return err(StatusCode::NOT_FOUND, format!("no role \"{role}\""));
    };
    match r.query(&what).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => admin_err(e),
    }
}

/// The role audits the action itself, in the transaction that makes the change.
async fn role_action(
    State(d): State<Shared>,
    UrlPath((role, action)): UrlPath<(String, String)>,
    ClientActor(actor): ClientActor,
    body: Option<Json<serde_json::Value>>,
) -> Response {
    let Some(r) = find_role(&d, &role) else {
        return err(StatusCode::NOT_FOUND, format!("no role \"{role}\""));
    };
    let arg = body.map_or(serde_json::Value::Null, |Json(v)| v);
    match r.action(&action, arg, actor).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => admin_err(e),
    }
}
