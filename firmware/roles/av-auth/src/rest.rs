//! `GET /api/v1/turn-credentials?username=..&ttl=..` in the TURN REST API shape.
//!
//! Authentication: a client certificate from the internal anchors (checked by TLS), or an
//! API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`). CORS is off unless
//! `av_auth.cors_origins` lists origins; then only those get CORS headers and preflights.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use edged_tls::PeerIdentity;
use serde::Serialize;

use crate::issuer::{IssueError, IssueRequest};
use crate::metrics::Endpoint;
use crate::relays::relays;
use crate::service::Service;

pub const PATH: &str = "/api/v1/turn-credentials";

/// The verified client certificate of the connection, if the client sent one.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// Its subject common name, for the audit log.
    pub name: Option<String>,
    /// Who it names, which bounds the identities it may request.
    pub identity: Option<PeerIdentity>,
}

#[derive(Debug, Serialize)]
pub struct TurnCredentials {
    pub username: String,
    pub password: String,
    pub ttl: u64,
    pub uris: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: String,
}

fn error(status: StatusCode, error: &str, detail: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorBody {
            error,
            detail: detail.into(),
        }),
    )
        .into_response()
}

pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route(PATH, get(turn_credentials).options(preflight))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("the only resource is GET {PATH}"),
            )
        })
        .layer(middleware::from_fn_with_state(service.clone(), cors))
        .with_state(service)
}

/// The request's Origin if CORS is on and it is one of the configured origins.
fn allowed_origin(service: &Service, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let config = service.config.load();
    let text = origin.to_str().ok()?;
    config
        .av_auth
        .cors_origins
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(text))
        .then(|| origin.clone())
}

async fn cors(State(service): State<Arc<Service>>, req: Request, next: Next) -> Response {
    let origin = allowed_origin(&service, req.headers());
    let mut resp = next.run(req).await;
    if let Some(origin) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

async fn preflight(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    if allowed_origin(&service, &headers).is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "cors_refused",
            "cross-origin requests are not allowed from this origin",
        );
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, x-api-key"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    resp
}

/// The API key a request presents, if any.
fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_owned())
}

/// Who is calling: `cert:<CN>` or `key:<name>`, or the error response.
async fn authenticate(
    service: &Arc<Service>,
    peer: &PeerCertificate,
    headers: &HeaderMap,
) -> Result<String, Response> {
    if let Some(cn) = &peer.name {
        return Ok(format!("cert:{cn}"));
    }
    let unauthorized = |detail: &str| {
        service.metrics.unauthorized.inc();
        let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"edged\""),
        );
        r
    };
    let Some(key) = presented_key(headers) else {
        return Err(unauthorized(
            "present a client certificate, or an API key in Authorization: Bearer or X-API-Key",
        ));
    };
    if let Some(name) = service.api_keys.recently_verified(&key) {
        return Ok(format!("key:{name}"));
    }
    // Each check holds about 19 MiB: past the bound, answer now instead of queueing.
    let limit = service.config.load().av_auth.max_concurrent_key_checks;
    let Some(permit) = service.key_checks.try_enter(limit) else {
        service.metrics.key_checks_busy.inc();
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many API-key checks are in progress; retry in 1 s",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(r);
    };
    let svc = service.clone();
    // The permit goes with the check: it is given back when the hashing ends, also if
    // the client has gone away meanwhile.
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        svc.api_keys.verify(&key)
    })
    .await;
    match verified {
        Ok(Ok(Some(name))) => Ok(format!("key:{name}")),
        Ok(Ok(None)) => Err(unauthorized("the API key is not valid")),
        Ok(Err(e)) => {
            tracing::warn!(target: "av_auth", error = %e, "API key verification failed");
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "API key verification failed",
            ))
        }
        Err(_) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "API key verification failed",
        )),
    }
}

async fn turn_credentials(
    State(service): State<Arc<Service>>,
    Extension(peer): Extension<PeerCertificate>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let requester = match authenticate(&service, &peer, &headers).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some(identity) = query.get("username") else {
        service.metrics.bad_requests.inc();
        return error(
            StatusCode::BAD_REQUEST,
            "bad_username",
            "the username parameter is required",
        );
    };
    let ttl = match query.get("ttl").map(|t| t.trim()) {
        None | Some("") => None,
        Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => match t.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => return bad_ttl(&service, "ttl is out of range"),
        },
        Some(_) => return bad_ttl(&service, "ttl must be a whole number of seconds"),
    };
    let config = service.config.load_full();
    let issued = service
        .issuer
        .issue(
            &config.av_auth,
            IssueRequest {
                identity,
                lifetime_secs: ttl,
                clamp_lifetime: false,
                endpoint: Endpoint::Rest,
                requester: &requester,
                client: peer
                    .name
                    .is_some()
                    .then_some(peer.identity.as_ref())
                    .flatten(),
            },
        )
        .await;
    match issued {
        Ok(mut issued) => Json(TurnCredentials {
            username: std::mem::take(&mut issued.credential.username),
            password: std::mem::take(&mut issued.credential.password),
            ttl: issued.lifetime_secs,
            uris: relays(&config).iter().flat_map(|r| r.turn_uris()).collect(),
        })
        .into_response(),
        Err(IssueError::BadLifetime(e)) => error(StatusCode::BAD_REQUEST, "bad_ttl", e.to_string()),
        Err(IssueError::BadIdentity(e)) => {
            error(StatusCode::BAD_REQUEST, "bad_username", e.to_string())
        }
        Err(IssueError::NotAllowed) => error(
            StatusCode::FORBIDDEN,
            "identity_not_allowed",
            "this identity may not obtain relay credentials",
        ),
        Err(IssueError::RateLimited { retry_after }) => {
            let secs = retry_after.as_secs().max(1);
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("issuance rate limit reached for this identity; retry in {secs} s"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        Err(IssueError::Unavailable(e)) => {
            tracing::warn!(target: "av_auth", error = %e, "credential issuance failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "credentials cannot be issued now",
            )
        }
    }
}

fn bad_ttl(service: &Service, detail: &str) -> Response {
    service.metrics.bad_requests.inc();
    error(StatusCode::BAD_REQUEST, "bad_ttl", detail)
}
