//! The one small interface between edged and its roles.
//!
//! edged starts each enabled role with a [`RoleContext`] (the configuration, the TLS
//! material, the store, the metrics registry) and from then on only calls the [`Role`]
//! trait: status for `edgectl status`, apply for reloads, drain and stop for shutdown. A
//! role never reaches into another role; what they share comes through the context.
//!
//! What every role repeats lives here too: one [`Lifecycle`] (drain and stop mean the same
//! in every role), one accept loop for TCP and TLS listeners ([`Listener`], with its
//! sans-IO decisions in [`admission`]), and, with the `test-support` feature,
//! [`RoleContext::for_test`].

pub mod admission;
pub mod lifecycle;
pub mod listener;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use edged_admin_api::{ApplyReport, Health, ListenerInfo, RoleStatus, Side, Transport};
pub use edged_config::Config;
pub use edged_metrics::Registry;
pub use edged_store::Store;
pub use edged_tls::TlsMaterial;

pub use admission::{ListenerLimits, Refusal};
pub use lifecycle::{wait_until, Lifecycle};
pub use listener::{Handler, Incoming, Listener, ListenerHandle, ListenerStats};

/// What a role is started with.
#[derive(Clone)]
pub struct RoleContext {
    pub config: Arc<Config>,
    pub tls: Arc<TlsMaterial>,
    pub store: Store,
    pub metrics: Registry,
}

/// A running role.
#[async_trait::async_trait]
pub trait Role: Send + Sync + 'static {
    /// The role's config section name, e.g. `access_edge`.
    fn name(&self) -> &'static str;

    /// Health, bound listeners and counters, cheap enough to call on every status request.
    fn status(&self) -> RoleStatus;

    /// Takes a new, already validated configuration (and the TLS material built from it).
    /// Applies what can change live without dropping established connections or media and
    /// reports the rest as needing a restart; never fails silently.
    async fn apply(&self, config: Arc<Config>, tls: Arc<TlsMaterial>) -> ApplyReport;

    /// Stops accepting new work at once, lets in-flight work finish until `deadline`
    /// elapses, then closes what is left. Returns when the role is stopped. Roles do this
    /// with their [`Lifecycle`].
    async fn drain(&self, deadline: Duration);

    /// Closes everything now: a drain with no time for in-flight work.
    async fn stop(&self) {
        self.drain(Duration::ZERO).await;
    }

    /// Lines telling an operator how to try the role by hand (printed by `make run`).
    fn hints(&self) -> Vec<String> {
        Vec::new()
    }

    /// Role-specific admin query, `GET /api/v1/roles/<role>/<what>` (for example the
    /// Access Edge's per-domain federation figures).
    async fn query(&self, what: &str) -> Result<serde_json::Value, AdminError> {
        Err(AdminError::NotFound(format!(
            "{} has no \"{what}\"",
            self.name()
        )))
    }

    /// Role-specific admin action, `POST /api/v1/roles/<role>/<action>` with a JSON argument
    /// (for example promoting a federation partner, or rotating credential keys).
    async fn action(
        &self,
        action: &str,
        _arg: serde_json::Value,
    ) -> Result<serde_json::Value, AdminError> {
        Err(AdminError::NotFound(format!(
            "{} has no action \"{action}\"",
            self.name()
        )))
    }
}

/// Why a role-specific admin request failed; the admin API turns it into 404 or 400.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Failed(String),
}

/// Why a role could not start.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("{key}: cannot listen on {addr}: {source}")]
    Bind {
        key: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
    #[error("TLS: {0}")]
    Tls(#[from] edged_tls::TlsError),
    #[error("store: {0}")]
    Store(#[from] edged_store::StoreError),
    #[error("{0}")]
    Other(String),
}

/// Stands in for a role turned off in the configuration, so status lists all four.
pub struct DisabledRole {
    name: &'static str,
}

impl DisabledRole {
    pub fn arc(name: &'static str) -> Arc<dyn Role> {
        Arc::new(Self { name })
    }
}

#[async_trait::async_trait]
impl Role for DisabledRole {
    fn name(&self) -> &'static str {
        self.name
    }
    fn status(&self) -> RoleStatus {
        RoleStatus {
            role: self.name.into(),
            health: Health::Disabled,
            listeners: Vec::new(),
            counters: Default::default(),
        }
    }
    async fn apply(&self, _config: Arc<Config>, _tls: Arc<TlsMaterial>) -> ApplyReport {
        ApplyReport::default()
    }
    async fn drain(&self, _deadline: Duration) {}
}

/// The restart-required lines for listener changes of one role between two configs:
/// a listening socket cannot move while it is in use (and after privileges are dropped,
/// ports below 1024 cannot be bound again), so edged reports the change instead.
pub fn listener_changes(owner: &str, old: &Config, new: &Config) -> Vec<String> {
    // One key can set several sockets (the A/V Edge listens on both sides, UDP and TCP,
    // with one port key), so a socket is known by key, side, protocol and transport, and
    // one is unchanged when the same socket exists at the same address.
    let pick = |c: &Config| {
        c.sockets()
            .into_iter()
            .filter(|s| s.owner == owner)
            .map(|s| ((s.key, s.side, s.protocol, s.transport), s.addr))
            .collect::<Vec<_>>()
    };
    let (a, b) = (pick(old), pick(new));
    let mut out = Vec::new();
    for socket @ (id, addr) in &b {
        if a.contains(socket) {
            continue;
        }
        let key = &id.0;
        match a.iter().find(|old @ (i, _)| i == id && !b.contains(old)) {
            Some((_, old_addr)) => out.push(format!(
                "{key}: listener moves from {old_addr} to {addr}; restart edged to rebind"
            )),
            None => out.push(format!(
                "{key}: new listener {addr}; restart edged to bind it"
            )),
        }
    }
    for (id, addr) in &a {
        if !b.iter().any(|(i, _)| i == id) {
            out.push(format!(
                "{}: listener {addr} is removed; restart edged to close it",
                id.0
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether `enabled` changed for a role, which always needs a restart.
pub fn enabled_change(owner: &str, was: bool, is: bool) -> Option<String> {
    (was != is).then(|| {
        format!(
            "{owner}.enabled: the role is {} after a restart of edged",
            if is { "started" } else { "stopped" }
        )
    })
}

/// A cancellation signal shared by tasks (the [`Lifecycle`]'s two, or one allocation's end).
pub type DrainToken = tokio_util::sync::CancellationToken;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_changes_are_reported() {
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.access_edge.remote_users_port = 20443;
        new.access_edge.federation.discovery = false;
        let lines = listener_changes("access_edge", &old, &new);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with(
            "access_edge.remote_users_port: listener moves from 127.0.0.1:10443 to 127.0.0.1:20443"
        ));
        assert!(listener_changes("webconf_edge", &old, &new).is_empty());
    }

    #[test]
    fn a_key_that_sets_sockets_on_both_sides_is_not_reported_unchanged() {
        // av_edge.udp_port sets a listener on each side: an unrelated change moves neither.
        let old = Config::embedded_default();
        let mut new = old.clone();
        new.av_edge.realm = "other.example".into();
        assert!(listener_changes("av_edge", &old, &new).is_empty());
        new.av_edge.udp_port = 13478;
        let lines = listener_changes("av_edge", &old, &new);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines
            .iter()
            .all(|l| l.starts_with("av_edge.udp_port: listener moves from")
                && l.contains(":3478 to ")
                && l.contains(":13478")));
    }

    #[test]
    fn enabling_needs_restart() {
        assert!(enabled_change("av_auth", true, false).is_some());
        assert!(enabled_change("av_auth", true, true).is_none());
    }
}
