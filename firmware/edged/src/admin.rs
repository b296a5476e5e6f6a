//! The local admin API: JSON over HTTP on a Unix socket. edgectl speaks it today; the web
//! admin page will speak the same API. Every error is an HTTP 4xx/5xx with a JSON body
//! naming what was wrong.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use edged_admin_api::{
    ApiError, ConfigDocument, ConfigUpload, LogLevelRequest, SetRequest, Status, ValidateResult,
};
use edged_config::Config;
use edged_role::AdminError;
use edged_store::AuditRecord;
use serde::Deserialize;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::daemon::{ChangeError, Daemon};

type Shared = Arc<Daemon>;

/// Binds the socket, refusing to steal it from another running edged.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
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
    Ok(listener)
}

pub fn router(daemon: Shared) -> Router {
    Router::new()
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

async fn status(State(d): State<Shared>) -> Json<Status> {
    let cur = d.current().await;
    Json(Status {
        appliance: cur.config.appliance.name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: d.started.elapsed().as_secs(),
        config_generation: cur.generation,
        roles: d.roles.iter().map(|r| r.status()).collect(),
    })
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

async fn patch_config(State(d): State<Shared>, Json(req): Json<SetRequest>) -> Response {
    let cur = d.current().await;
    let new = match cur.config.with_value(&req.key, &req.value) {
        Ok(c) => c,
        Err(e) => return change_err(e.into()),
    };
    if *cur.config == new {
        return Json(edged_admin_api::CommitResult {
            generation: cur.generation,
            report: Default::default(),
        })
        .into_response();
    }
    let audit = AuditRecord::new(
        "admin-api",
        "config set",
        format!("{} = {}", req.key, req.value),
    );
    match d.commit(new, audit).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => change_err(e),
    }
}

async fn put_config(State(d): State<Shared>, Json(up): Json<ConfigUpload>) -> Response {
    let new = match Config::from_toml(&up.toml) {
        Ok(c) => c,
        Err(e) => return change_err(e.into()),
    };
    let audit = AuditRecord::new("admin-api", "config import", "whole configuration replaced");
    match d.commit(new, audit).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => change_err(e),
    }
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

async fn reload(State(d): State<Shared>) -> Response {
    match d.reload("admin-api").await {
        Ok(r) => Json(r).into_response(),
        Err(e) => change_err(e),
    }
}

async fn get_log_level(State(d): State<Shared>) -> Json<edged_admin_api::LogLevels> {
    Json(d.log.levels())
}

async fn put_log_level(State(d): State<Shared>, Json(req): Json<LogLevelRequest>) -> Response {
    match d.log.set(req.role.as_deref(), &req.level) {
        Ok(levels) => {
            tracing::info!(target: "edged", role = ?req.role, level = %req.level, "log level changed");
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

async fn role_action(
    State(d): State<Shared>,
    UrlPath((role, action)): UrlPath<(String, String)>,
    body: Option<Json<serde_json::Value>>,
) -> Response {
    let Some(r) = find_role(&d, &role) else {
        return err(StatusCode::NOT_FOUND, format!("no role \"{role}\""));
    };
    let arg = body.map_or(serde_json::Value::Null, |Json(v)| v);
    match r.action(&action, arg).await {
        Ok(v) => {
            let store = d.store.clone();
            let detail = format!("{role} {action}");
            let _ = tokio::task::spawn_blocking(move || {
                store.write(|tx| tx.audit(AuditRecord::new("admin-api", "role action", detail)))
            })
            .await;
            Json(v).into_response()
        }
        Err(e) => admin_err(e),
    }
}
