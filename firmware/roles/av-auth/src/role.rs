//! The `Role` implementation: status, live reload, drain and admin actions.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use edged_role::{
    Actor, AdminError, Anchors, ApplyReport, Health, Lifecycle, ListenerInfo, Role, RoleStatus,
    Setup,
};
use rustls::ServerConfig;
use serde_json::{json, Value};

use crate::issuer::ISSUED_ACTION;
use crate::keys::{self, unix_now};
use crate::service::Service;
use crate::{tls_configs, NAME};

/// Issuance audit entries `query issuance` returns at most.
const ISSUANCE_SHOWN: usize = 100;
/// Audit entries scanned for them (the log also holds other roles' entries).
const AUDIT_SCANNED: usize = 2000;

pub struct AvAuthRole {
    pub(crate) service: Arc<Service>,
    pub(crate) store: edged_store::Store,
    pub(crate) listeners: Vec<ListenerInfo>,
    pub(crate) sip_tls: Arc<ArcSwap<ServerConfig>>,
    pub(crate) rest_tls: Arc<ArcSwap<ServerConfig>>,
    pub(crate) life: Lifecycle,
}

fn failed(e: impl std::fmt::Display) -> AdminError {
    AdminError::Failed(e.to_string())
}

/// Runs blocking store or hashing work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, AdminError> {
    tokio::task::spawn_blocking(f).await.map_err(failed)?
}

fn name_arg(arg: &Value) -> Result<String, AdminError> {
    arg.get("name")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| AdminError::BadRequest("argument must be {\"name\": \"...\"}".into()))
}

#[async_trait::async_trait]
impl Role for AvAuthRole {
    fn name(&self) -> &'static str {
        NAME
    }

    fn status(&self) -> RoleStatus {
        let health = if self.life.is_draining() {
            Health::Draining
        } else if !self.service.config.load().av_edge.enabled {
            Health::Degraded("av_edge is disabled: credentials carry an empty relay list".into())
        } else {
            Health::Ready
        };
        RoleStatus {
            role: NAME.into(),
            health,
            listeners: self.listeners.clone(),
            counters: {
                let mut c = self.service.metrics.snapshot();
                c.insert("key_checks_peak".into(), self.service.key_checks.peak());
                c
            },
        }
    }

    async fn apply(&self, old: &Setup, new: &Setup) -> ApplyReport {
        let mut report = crate::reconfigure::report(&old.config, &new.config);
        // The client list is part of the handshake's check: a change rebuilds the configs.
        let clients_changed =
            old.config.av_auth.allowed_clients != new.config.av_auth.allowed_clients;
        let tls_changed = old.tls_changed(
            new,
            |c| c.av_auth.certificate.as_str(),
            &[Anchors::Internal],
        );
        if clients_changed || tls_changed {
            match (
                tls_configs::sip(&new.config, &new.tls),
                tls_configs::rest(&new.config, &new.tls),
            ) {
                (Ok(sip), Ok(rest)) => {
                    self.sip_tls.store(sip);
                    self.rest_tls.store(rest);
                    if tls_changed {
                        report.applied.push(
                            "av_auth.certificate: certificate and trust anchors apply to new connections"
                                .into(),
                        );
                    }
                }
                (Err(e), _) | (_, Err(e)) => report.restart_required.push(format!(
                    "av_auth.certificate: not applied ({e}); the previous certificate stays in use"
                )),
            }
        }
        // The service serves requests from this configuration (it is not compared with).
        self.service.config.store(new.config.clone());
        report
    }

    async fn drain(&self, deadline: Duration) {
        tracing::info!(target: "av_auth", "draining");
        self.life.drain(deadline).await;
        tracing::info!(target: "av_auth", "stopped");
    }

    fn hints(&self) -> Vec<String> {
        let rest = self
            .listeners
            .iter()
            .find(|l| l.transport == edged_role::Transport::Https);
        let sip = self
            .listeners
            .iter()
            .find(|l| l.transport == edged_role::Transport::Mtls);
        let mut out = vec!["A/V Authentication Service (internal side only):".to_owned()];
        if let Some(rest) = rest {
            out.push(
                "  REST API key: edgectl role av_auth create-api-key --action '{\"name\":\"demo\"}'   (the key is shown once)"
                    .to_owned(),
            );
            out.push(format!(
                "  credentials:  curl --cacert <appliance CA> -H 'Authorization: Bearer <key>' 'https://{}/api/v1/turn-credentials?username=alice@example.test&ttl=600'",
                rest.address
            ));
        }
        if let Some(sip) = sip {
            out.push(format!(
                "  SIP SERVICE (MS-AVEDGEA) over mutual TLS on {}: needs a client certificate from the appliance CA",
                sip.address
            ));
        }
        out.push("  keys: edgectl role av_auth keys | edgectl role av_auth rotate-keys --action '{}' | edgectl role av_auth issuance".into());
        out
    }

    async fn query(&self, what: &str) -> Result<Value, AdminError> {
        match edged_role::current_name(NAME, what, &[("list-api-keys", "api-keys")]) {
            "keys" => {
                let ring = self.service.issuer.ring().get().map_err(failed)?;
                Ok(json!({ "overlap_secs": ring.overlap(), "keys": keys::describe(&ring) }))
            }
            "issuance" => {
                let store = self.store.clone();
                let entries =
                    blocking(move || store.audit_tail(AUDIT_SCANNED).map_err(failed)).await?;
                let mut issued: Vec<_> = entries
                    .into_iter()
                    .filter(|e| e.action == ISSUED_ACTION)
                    .collect();
                let skip = issued.len().saturating_sub(ISSUANCE_SHOWN);
                issued.drain(..skip);
                Ok(json!({ "issuance": issued }))
            }
            "api-keys" => {
                let service = self.service.clone();
                let keys = blocking(move || service.api_keys.list().map_err(failed)).await?;
                Ok(json!({ "api_keys": keys }))
            }
            other => Err(AdminError::NotFound(format!(
                "av_auth has no \"{other}\" (queries: keys, issuance, api-keys)"
            ))),
        }
    }

    async fn action(&self, action: &str, arg: Value, actor: Actor) -> Result<Value, AdminError> {
        match edged_role::current_name(NAME, action, &[("rotate-key", "rotate-keys")]) {
            "rotate-keys" => {
                let store = self.store.clone();
                let ring = blocking(move || keys::rotate(&store, actor.as_str(), unix_now()).map_err(failed)).await?;
                self.service.issuer.ring().invalidate();
                tracing::info!(target: "av_auth", current = %ring.current().id, "relay key rotated");
                Ok(json!({
                    "current": ring.current().id,
                    "overlap_secs": ring.overlap(),
                    "keys": keys::describe(&ring),
                }))
            }
            "create-api-key" => {
                let name = name_arg(&arg)?;
                let service = self.service.clone();
                let n = name.clone();
                let key = blocking(move || {
                    service.api_keys.create(&n, actor.as_str(), unix_now()).map_err(|e| match e {
                        crate::api_keys::ApiKeyError::BadName | crate::api_keys::ApiKeyError::Exists(_) => {
                            AdminError::BadRequest(e.to_string())
                        }
                        other => failed(other),
                    })
                })
                .await?;
                tracing::info!(target: "av_auth", name = %name, "REST API key created");
                Ok(json!({ "name": name, "key": key, "note": "the key is shown only now; the appliance keeps a hash" }))
            }
            "revoke-api-key" => {
                let name = name_arg(&arg)?;
                let service = self.service.clone();
                let n = name.clone();
                blocking(move || {
                    service.api_keys.revoke(&n, actor.as_str()).map_err(|e| match e {
                        crate::api_keys::ApiKeyError::NotFound(_) => AdminError::NotFound(e.to_string()),
                        crate::api_keys::ApiKeyError::BadName => AdminError::BadRequest(e.to_string()),
                        other => failed(other),
                    })
                })
                .await?;
                tracing::info!(target: "av_auth", name = %name, "REST API key revoked");
                Ok(json!({ "revoked": name }))
            }
            other => Err(AdminError::NotFound(format!(
                "av_auth has no action \"{other}\" (actions: rotate-keys, create-api-key, revoke-api-key)"
            ))),
        }
    }
}
