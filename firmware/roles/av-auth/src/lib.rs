//! A/V Authentication Service role: relay credentials for internal users.
//!
//! Two endpoints on the internal side only, never the external one:
//! - SIP SERVICE over mutual TLS (`av_auth.sip_port`, OCS 5062) with MS-AVEDGEA bodies;
//! - HTTPS REST (`av_auth.rest_port`): `GET /api/v1/turn-credentials`, TURN REST API shape,
//!   authenticated by client certificate or API key.
//!
//! Credentials are TURN REST credentials (`<expiry>:<identity>`, HMAC-SHA1 password) signed
//! with the key ring the A/V Edge verifies from the store (`relay_credentials::stored`).

pub mod api_keys;
mod audit;
mod client_scope;
mod handshake;
pub mod issuer;
pub mod key_checks;
pub mod keys;
mod limits;
pub mod metrics;
mod peer;
pub mod policy;
mod reconfigure;
pub mod relays;
pub mod rest;
mod rest_listener;
mod role;
mod service;
mod sip_listener;
pub mod sip_service;
mod tls_configs;

use std::sync::Arc;

use arc_swap::ArcSwap;
use edged_role::{DisabledRole, Lifecycle, Listener, ListenerInfo, Role, RoleContext, RoleError};
use tokio::net::TcpListener;

use crate::api_keys::ApiKeys;
use crate::issuer::Issuer;
use crate::metrics::Metrics;
use crate::role::AvAuthRole;
use crate::service::Service;

/// The role's config section and log target.
pub const NAME: &str = "av_auth";

/// Binds the role's listeners on the internal side, starts serving and returns the role.
pub async fn start(ctx: RoleContext) -> Result<Arc<dyn Role>, RoleError> {
    if !ctx.config.av_auth.enabled {
        return Ok(DisabledRole::arc(NAME));
    }
    edged_tls::install_crypto_provider();
    let ring = keys::load_or_create(&ctx.store, keys::unix_now()).map_err(|e| match e {
        keys::KeyStoreError::Store(s) => RoleError::Store(s),
        other => RoleError::Other(format!("relay key ring: {other}")),
    })?;
    tracing::info!(target: "av_auth", key = %ring.current().id, overlap_secs = ring.overlap(), "relay key ring ready");

    if ctx.config.av_auth.allowed_clients.is_empty() {
        tracing::warn!(target: "av_auth", "av_auth.allowed_clients is empty: no client certificate is accepted (SIP SERVICE admits nobody; REST takes API keys only)");
    }
    let sip_tls = Arc::new(ArcSwap::new(tls_configs::sip(&ctx.config, &ctx.tls)?));
    let rest_tls = Arc::new(ArcSwap::new(tls_configs::rest(&ctx.config, &ctx.tls)?));

    let metrics = Metrics::register(&ctx.metrics);
    let service = Arc::new(Service {
        config: ArcSwap::new(ctx.config.clone()),
        issuer: Issuer::new(ctx.store.clone(), metrics.clone()),
        api_keys: ApiKeys::new(ctx.store.clone()),
        key_checks: Default::default(),
        metrics,
    });
    let life = Lifecycle::new();
    let mut listeners = Vec::new();
    // The configuration lists this role's sockets, all on the internal side by
    // construction (see edged-config's av_auth section); bind exactly those.
    for spec in ctx.config.sockets().into_iter().filter(|s| s.owner == NAME) {
        let listener = TcpListener::bind(spec.addr)
            .await
            .map_err(|source| RoleError::Bind {
                key: spec.key.clone(),
                addr: spec.addr,
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| RoleError::Bind {
            key: spec.key.clone(),
            addr: spec.addr,
            source,
        })?;
        listeners.push(ListenerInfo {
            purpose: spec.purpose.clone(),
            side: spec.side,
            transport: spec.transport,
            address: bound.to_string(),
        });
        tracing::info!(target: "av_auth", key = %spec.key, address = %bound, "listening");
        let limits = limits::listener_limits();
        match spec.key.as_str() {
            "av_auth.sip_port" => {
                Listener::new("av_auth.sip_port", listener, limits).spawn(
                    &life,
                    Arc::new(sip_listener::SipListener {
                        service: service.clone(),
                        tls: sip_tls.clone(),
                        life: life.clone(),
                    }),
                );
            }
            "av_auth.rest_port" => {
                Listener::new("av_auth.rest_port", listener, limits).spawn(
                    &life,
                    Arc::new(rest_listener::RestListener {
                        service: service.clone(),
                        router: rest::router(service.clone()),
                        tls: rest_tls.clone(),
                        life: life.clone(),
                    }),
                );
            }
            other => {
                return Err(RoleError::Config {
                    key: other.to_owned(),
                    reason: "unknown av_auth listener".into(),
                })
            }
        }
    }
    Ok(Arc::new(AvAuthRole {
        service,
        store: ctx.store.clone(),
        listeners,
        sip_tls,
        rest_tls,
        life,
    }))
}
