//! Types of the local admin JSON API.
//!
//! edged serves this API on a Unix socket (and, later, the web admin page on the internal
//! side); edgectl and the page are its clients. Keeping the types in one small crate means
//! the daemon and its clients cannot drift apart. What the configuration model already
//! defines (sides, transports, configuration problems) is that model's, re-exported here,
//! so each of them has one definition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Defined by the configuration model, which owns them; the API carries them as they are.
pub use edged_config::{ConfigProblem, Side, Transport};

/// Version prefix of every admin API path.
pub const API_PREFIX: &str = "/api/v1";

/// Request header an admin API client names itself with (`edgectl`, `web`, `console`); the
/// audit log records every change under that name. Without it a change is recorded as `api`.
pub const ACTOR_HEADER: &str = "x-edged-actor";

/// Who made a change, as the audit log names it. These are all the actors of configuration
/// changes and admin actions; a role's own work (issuing a credential) is recorded under
/// the role's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// `edgectl`, through the admin API.
    Edgectl,
    /// The web admin page, through the admin API.
    Web,
    /// The serial console, through the admin API.
    Console,
    /// An admin API client that did not name itself.
    Api,
    /// The configuration file edged was started with (`--config`).
    ConfigFile,
    /// SIGHUP: the configuration file and certificates re-read.
    Signal,
    /// edged on its own: the embedded default at first start, generated certificates,
    /// scheduled key rotations.
    Edged,
}

impl Actor {
    /// Every actor, for documentation and tests.
    pub const ALL: [Actor; 7] = [
        Actor::Edgectl,
        Actor::Web,
        Actor::Console,
        Actor::Api,
        Actor::ConfigFile,
        Actor::Signal,
        Actor::Edged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Edgectl => "edgectl",
            Actor::Web => "web",
            Actor::Console => "console",
            Actor::Api => "api",
            Actor::ConfigFile => "config-file",
            Actor::Signal => "signal",
            Actor::Edged => "edged",
        }
    }

    /// The actor an admin API client names in [`ACTOR_HEADER`]: only the clients of the
    /// API may be named there (a request cannot claim to be the daemon or a signal).
    pub fn from_header(value: &str) -> Option<Actor> {
        [Actor::Edgectl, Actor::Web, Actor::Console, Actor::Api]
            .into_iter()
            .find(|a| a.as_str() == value)
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One socket a role listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    /// What the listener is for, e.g. "remote users" or "federation".
    pub purpose: String,
    pub side: Side,
    pub transport: Transport,
    /// The bound address (after binding, so port 0 shows the real port).
    pub address: String,
}

/// Health of one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "lowercase")]
pub enum Health {
    /// Serving.
    Ready,
    /// Serving, with a problem an operator should look at (e.g. no next hop reachable).
    Degraded(String),
    /// Not serving.
    Down(String),
    /// Turned off in the configuration.
    Disabled,
    /// Stopping: no new work accepted, in-flight work finishing.
    Draining,
    /// Serving, at the limit of its descriptor budget: new connections are refused (a
    /// flood, or a budget too small). Not a failure: the daemon is not hung and nothing
    /// restarts or rolls back for it.
    Overloaded(String),
}

/// What `edgectl status` shows for one role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleStatus {
    pub role: String,
    pub health: Health,
    pub listeners: Vec<ListenerInfo>,
    pub counters: BTreeMap<String, u64>,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub appliance: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub config_generation: u64,
    pub roles: Vec<RoleStatus>,
}

/// `GET /api/v1/alive`: answered by the admin API itself, without asking a role or
/// waiting for a configuration change, so a daemon that answers it is not hung however
/// loaded its roles are. The watchdog feeder probes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alive {
    pub alive: bool,
    pub uptime_seconds: u64,
}

/// `GET /api/v1/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigDocument {
    pub generation: u64,
    /// The whole configuration as TOML, the form operators edit and export.
    pub toml: String,
}

/// `PATCH /api/v1/config`: set one key (dotted path) to a value written as TOML
/// (`5061`, `true`, `"text"`, `["a", "b"]`); a bare word is taken as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRequest {
    pub key: String,
    pub value: String,
}

/// `PUT /api/v1/config` and `POST /api/v1/config/validate` take the whole config as TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigUpload {
    pub toml: String,
}

/// What applying a configuration did, per role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Changes now in effect.
    pub applied: Vec<String>,
    /// Changes stored but only in effect after a restart of edged, each with the reason.
    pub restart_required: Vec<String>,
}

impl ApplyReport {
    /// Nothing was applied and nothing waits for a restart: the change touched nothing.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.restart_required.is_empty()
    }

    pub fn merge(&mut self, other: ApplyReport) {
        self.applied.extend(other.applied);
        self.restart_required.extend(other.restart_required);
    }
}

/// Answer to a committed config change or a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitResult {
    pub generation: u64,
    pub report: ApplyReport,
}

/// `POST /api/v1/config/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateResult {
    pub valid: bool,
    pub problems: Vec<ConfigProblem>,
}

/// `PUT /api/v1/log-level`: `role` empty sets the default level of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLevelRequest {
    #[serde(default)]
    pub role: Option<String>,
    pub level: String,
}

/// The current log filter, as `GET /api/v1/log-level` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLevels {
    pub default: String,
    pub roles: BTreeMap<String, String>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub unix_time: u64,
    /// Who did it: one of [`Actor`]'s names, or a role's name for the role's own work.
    pub actor: String,
    pub action: String,
    pub detail: String,
}

/// Every error of the admin API: HTTP status plus this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ConfigProblem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_api_clients_can_be_named_in_the_header() {
        for a in Actor::ALL {
            let client = matches!(a, Actor::Edgectl | Actor::Web | Actor::Console | Actor::Api);
            assert_eq!(Actor::from_header(a.as_str()), client.then_some(a), "{a}");
        }
        assert_eq!(Actor::from_header("root"), None);
    }
}
