//! The one small interface between edged and its roles.
//!
//! edged starts each enabled role with a [`RoleContext`] (the configuration, the TLS
//! material, the store, the metrics registry) and from then on only calls the [`Role`]
//! trait: status for `edgectl status`, apply for configuration changes and reloads, drain
//! and stop for shutdown. A role never reaches into another role; what they share comes
//! through the context.
//!
//! What every role repeats lives here too: one [`Lifecycle`] (drain and stop mean the same
//! in every role), one accept loop for TCP and TLS listeners ([`Listener`], with its
//! sans-IO decisions in [`admission`]), and, with the `test-support` feature,
//! [`RoleContext::for_test`].

pub mod admission;
pub mod budget;
pub mod idle;
pub mod lifecycle;
pub mod listener;
pub mod outsider_log;
#[allow(unsafe_code)] // getsockopt(TCP_INFO), which neither nix nor std wraps.
mod tcp_activity;
#[cfg(feature = "test-support")]
pub mod test_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use edged_admin_api::{Actor, ApplyReport, Health, ListenerInfo, RoleStatus, Side, Transport};
pub use edged_config::Config;
pub use edged_metrics::Registry;
pub use edged_store::Store;
pub use edged_tls::TlsMaterial;

pub use admission::{ListenerLimits, Refusal};
pub use lifecycle::{wait_until, Lifecycle};
pub use listener::{Handler, Incoming, Listener, ListenerHandle, ListenerStats};
#[doc(hidden)]
pub use tracing as __tracing;

/// What a role is started with.
#[derive(Clone)]
pub struct RoleContext {
    pub config: Arc<Config>,
    pub tls: Arc<TlsMaterial>,
    pub store: Store,
    pub metrics: Registry,
}

/// One configuration and the TLS material loaded for it: what a change goes from and to.
#[derive(Clone)]
pub struct Setup {
    pub config: Arc<Config>,
    pub tls: Arc<TlsMaterial>,
}

impl Setup {
    /// Whether a role presenting the certificate `cert` names (in each configuration) and
    /// trusting `anchors` meets different TLS material in `new` than here: a renewed
    /// certificate file, another certificate, or other anchors.
    pub fn tls_changed(&self, new: &Setup, cert: fn(&Config) -> &str, anchors: &[Anchors]) -> bool {
        !self
            .tls
            .same_certificate(cert(&self.config), &new.tls, cert(&new.config))
            || anchors.iter().any(|a| match a {
                Anchors::Internal => !self.tls.same_internal_anchors(&new.tls),
                Anchors::Federation => !self.tls.same_federation_anchors(&new.tls),
            })
    }
}

/// The trust anchors a role verifies peers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchors {
    Internal,
    Federation,
}

/// A running role.
#[async_trait::async_trait]
pub trait Role: Send + Sync + 'static {
    /// The role's config section name, e.g. `access_edge`.
    fn name(&self) -> &'static str;

    /// Health, bound listeners and counters, cheap enough to call on every status request.
    fn status(&self) -> RoleStatus;

    /// Goes from `old` to `new` (already validated, with the TLS material built from it).
    /// Applies what can change live without dropping established connections or media and
    /// reports the rest as needing a restart; never fails silently. Reports only what
    /// differs between `old` and `new` in this role's part (its section, the certificate it
    /// presents, the anchors it trusts); edged reports `enabled` and its own sections.
    async fn apply(&self, old: &Setup, new: &Setup) -> ApplyReport;

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
    ///
    /// Naming, one scheme for every role: a query is a plural noun in kebab-case (`domains`,
    /// `keys`, `api-keys`, `issuance`); an action (below) is a kebab-case `verb-noun`
    /// (`add-user`, `rotate-keys`, `create-api-key`, `revoke-api-key`, `promote-domain`,
    /// `block-domain`). A query that lists things answers with a JSON array of flat
    /// objects, or an object whose list fields hold flat objects, so `edgectl` can show
    /// them as tables. Names from before the scheme are accepted through
    /// [`current_name`] with a warning.
    async fn query(&self, what: &str) -> Result<serde_json::Value, AdminError> {
        Err(AdminError::NotFound(format!(
            "{} has no \"{what}\"",
            self.name()
        )))
    }

    /// Role-specific admin action, `POST /api/v1/roles/<role>/<action>` with a JSON argument
    /// (for example promoting a federation partner, or rotating credential keys). Named
    /// `verb-noun` in kebab-case, as described at [`Role::query`]. An action that changes
    /// something writes its one audit entry, under `actor`, in the same store transaction as
    /// the change; edged does not audit actions again.
    async fn action(
        &self,
        action: &str,
        _arg: serde_json::Value,
        _actor: Actor,
    ) -> Result<serde_json::Value, AdminError> {
        Err(AdminError::NotFound(format!(
            "{} has no action \"{action}\"",
            self.name()
        )))
    }
}

/// The scheme's name for an admin query or action given by its name from before the
/// `verb-noun` scheme (`renamed` lists `(old, new)` pairs), so operators' scripts keep
/// working for a while; the log says which name to use instead. Unknown and current names
/// come back unchanged.
pub fn current_name<'a>(
    role: &str,
    name: &'a str,
    renamed: &[(&'static str, &'static str)],
) -> &'a str {
    match renamed.iter().find(|(old, _)| *old == name) {
        Some((old, new)) => {
            tracing::warn!(target: "edged", role, old, new, "deprecated admin name; use the new one");
            new
        }
        None => name,
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
    async fn apply(&self, _old: &Setup, _new: &Setup) -> ApplyReport {
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

/// The dotted keys under `section` whose values differ between `old` and `new` (lists
/// compare whole): what a role names when it reports a live change.
pub fn changed_keys<T: serde::Serialize>(section: &str, old: &T, new: &T) -> Vec<String> {
    fn walk(path: String, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::Object;
        match (a, b) {
            (Object(x), Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                let null = serde_json::Value::Null;
                for k in keys {
                    let (va, vb) = (x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null));
                    walk(format!("{path}.{k}"), va, vb, out);
                }
            }
            _ if a != b => out.push(path),
            _ => {}
        }
    }
    let value = |v: &T| serde_json::to_value(v).unwrap_or(serde_json::Value::Null);
    let mut out = Vec::new();
    walk(section.to_owned(), &value(old), &value(new), &mut out);
    out
}

/// Whether `enabled` changed for a role, which always needs a restart. edged reports it
/// for every role (running or not), so roles do not.
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
    fn changed_keys_name_each_differing_leaf() {
        let old = Config::embedded_default();
        assert!(changed_keys("access_edge", &old.access_edge, &old.access_edge).is_empty());
        let mut new = old.clone();
        new.access_edge.idle_timeout_secs += 1;
        new.access_edge.federation.discovery = !old.access_edge.federation.discovery;
        new.access_edge.next_hops.push("127.0.0.3:5060".into());
        assert_eq!(
            changed_keys("access_edge", &old.access_edge, &new.access_edge),
            [
                "access_edge.federation.discovery",
                "access_edge.idle_timeout_secs",
                "access_edge.next_hops",
            ]
        );
        // A key present on one side only (an optional value set) counts as changed.
        new.av_edge.relay_address = Some("127.0.0.9".parse().unwrap());
        assert_eq!(
            changed_keys("av_edge", &old.av_edge, &new.av_edge),
            ["av_edge.relay_address"]
        );
    }

    #[test]
    fn tls_changes_only_when_the_material_does() {
        edged_tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let config = Config::embedded_default();
        let setup = |c: &Config| Setup {
            config: Arc::new(c.clone()),
            tls: Arc::new(TlsMaterial::load(c, &store).unwrap()),
        };
        fn cert(c: &Config) -> &str {
            &c.av_edge.certificate
        }
        let old = setup(&config);
        let reloaded = setup(&config);
        assert!(!old.tls_changed(&reloaded, cert, &[Anchors::Internal, Anchors::Federation]));
        let mut untrusting = config.clone();
        untrusting.tls.trust_own_certificates = false;
        let new = setup(&untrusting);
        assert!(
            !old.tls_changed(&new, cert, &[]),
            "anchors the role does not use"
        );
        assert!(old.tls_changed(&new, cert, &[Anchors::Internal]));
        // Last: a new name reissues the stored self-signed certificate.
        let mut reissued = config.clone();
        reissued
            .certificates
            .get_mut("default")
            .unwrap()
            .sans
            .push("x.localhost".into());
        assert!(old.tls_changed(&setup(&reissued), cert, &[]));
    }

    #[test]
    fn old_admin_names_resolve_to_the_scheme() {
        let renamed = [("rotate", "rotate-keys")];
        assert_eq!(
            current_name("webconf_edge", "rotate", &renamed),
            "rotate-keys"
        );
        assert_eq!(
            current_name("webconf_edge", "rotate-keys", &renamed),
            "rotate-keys"
        );
        assert_eq!(current_name("webconf_edge", "explode", &renamed), "explode");
    }

    #[test]
    fn enabling_needs_restart() {
        assert!(enabled_change("av_auth", true, false).is_some());
        assert!(enabled_change("av_auth", true, true).is_none());
    }
}
