//! Issuance: policy checks, minting under the current key, audit, counters.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use edged_config::roles::av_auth::AvAuthConfig;
use edged_store::{AuditRecord, Store};
use relay_credentials::Credential;

use edged_tls::PeerIdentity;

use crate::audit::AuditWriter;
use crate::client_scope::client_may_request;
use crate::keys::{minting_ring, unix_now, RingCache};
use crate::metrics::{Endpoint, Metrics};
use crate::policy::{
    clean_identity, grant_lifetime, identity_allowed, IdentityError, LifetimeError, RateLimiter,
};

/// Audit action of one issued credential.
pub const ISSUED_ACTION: &str = "relay-credential-issued";

/// One request for credentials, as either endpoint understood it.
#[derive(Debug, Clone)]
pub struct IssueRequest<'a> {
    pub identity: &'a str,
    /// Seconds; `None` for the configured default.
    pub lifetime_secs: Option<u64>,
    /// Lower a too-long lifetime to the maximum instead of refusing it.
    pub clamp_lifetime: bool,
    pub endpoint: Endpoint,
    /// Who asked (client certificate subject or API key name), for the audit log.
    pub requester: &'a str,
    /// The client certificate the request came with, if it was authenticated by one: it
    /// bounds the identities (`av_auth.allowed_clients`, `av_auth.client_identities`).
    pub client: Option<&'a PeerIdentity>,
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("identity: {0}")]
    BadIdentity(#[from] IdentityError),
    #[error("lifetime: {0}")]
    BadLifetime(#[from] LifetimeError),
    #[error("identity is not allowed to obtain relay credentials")]
    NotAllowed,
    #[error("issuance rate limit reached for this identity")]
    RateLimited { retry_after: Duration },
    #[error("credentials cannot be issued now: {0}")]
    Unavailable(String),
}

/// A credential with the lifetime granted.
#[derive(Debug, Clone)]
pub struct Issued {
    pub credential: Credential,
    pub lifetime_secs: u64,
}

pub struct Issuer {
    ring: RingCache,
    limiter: Mutex<RateLimiter>,
    audit: AuditWriter,
    metrics: Metrics,
}

impl Issuer {
    pub fn new(store: Store, metrics: Metrics) -> Self {
        Issuer {
            ring: RingCache::new(store.clone()),
            limiter: Mutex::new(RateLimiter::new()),
            audit: AuditWriter::spawn(store),
            metrics,
        }
    }

    pub fn ring(&self) -> &RingCache {
        &self.ring
    }

    pub async fn issue(
        &self,
        policy: &AvAuthConfig,
        req: IssueRequest<'_>,
    ) -> Result<Issued, IssueError> {
        let result = self.issue_inner(policy, &req).await;
        match &result {
            Ok(_) => self.metrics.issued(req.endpoint).inc(),
            Err(IssueError::NotAllowed) => self.metrics.refused_identity.inc(),
            Err(IssueError::RateLimited { .. }) => self.metrics.rate_limited.inc(),
            Err(IssueError::BadIdentity(_) | IssueError::BadLifetime(_)) => {
                self.metrics.bad_requests.inc()
            }
            Err(IssueError::Unavailable(_)) => {}
        }
        result
    }

    async fn issue_inner(
        &self,
        policy: &AvAuthConfig,
        req: &IssueRequest<'_>,
    ) -> Result<Issued, IssueError> {
        let identity = clean_identity(req.identity)?;
        let max = u64::from(policy.max_lifetime_minutes) * 60;
        let default = u64::from(policy.default_lifetime_minutes) * 60;
        let lifetime = grant_lifetime(req.lifetime_secs, default, max, req.clamp_lifetime)?;
        if !identity_allowed(&policy.allowed_identities, identity) {
            tracing::info!(target: "av_auth", identity, endpoint = req.endpoint.as_str(), "identity not allowed to obtain relay credentials");
            return Err(IssueError::NotAllowed);
        }
        if let Some(who) = req.client {
            if !client_may_request(policy, who, identity) {
                tracing::info!(target: "av_auth", identity, client = %who.label(), endpoint = req.endpoint.as_str(),
                    "identity outside what this client certificate may request");
                return Err(IssueError::NotAllowed);
            }
        }
        {
            let mut limiter = self
                .limiter
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(retry_after) =
                limiter.try_take(identity, policy.issuance_per_minute, Instant::now())
            {
                tracing::info!(target: "av_auth", identity, "issuance rate limit reached");
                return Err(IssueError::RateLimited { retry_after });
            }
        }
        let ring = self
            .ring
            .get()
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        let now = unix_now();
        let credential = minting_ring(&ring, now)
            .mint(identity, lifetime, now)
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        self.audit
            .append(AuditRecord::new(
                "av_auth",
                ISSUED_ACTION,
                format!(
                    "identity={identity} expires={} key={} endpoint={} requester={}",
                    credential.expires_at,
                    credential.key_id,
                    req.endpoint.as_str(),
                    req.requester
                ),
            ))
            .await
            .map_err(IssueError::Unavailable)?;
        tracing::debug!(target: "av_auth", identity, expires = credential.expires_at, key = %credential.key_id, "relay credential issued");
        Ok(Issued {
            credential,
            lifetime_secs: lifetime,
        })
    }
}
