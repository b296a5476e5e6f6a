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
    /// Who did it: "edgectl", "web", "console", "provisioning", a role name.
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
