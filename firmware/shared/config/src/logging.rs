//! Log levels, overall and per role, changeable at runtime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ConfigErrors;

/// The roles (and shared parts) whose level can be set on its own.
pub const LOG_TARGETS: &[&str] = &[
    "access_edge",
    "webconf_edge",
    "av_edge",
    "av_auth",
    "media_relay",
    "edged",
    "store",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// error, warn, info, debug or trace.
    pub level: String,
    /// Per-role levels overriding `level`, e.g. `access_edge = "debug"`.
    pub roles: BTreeMap<String, String>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            roles: BTreeMap::new(),
        }
    }
}

/// Accepts the five tracing levels (any case) and `off`.
pub fn parse_level(s: &str) -> Option<&'static str> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Some("error"),
        "warn" | "warning" => Some("warn"),
        "info" => Some("info"),
        "debug" => Some("debug"),
        "trace" => Some("trace"),
        "off" => Some("off"),
        _ => None,
    }
}

impl LoggingConfig {
    pub(crate) fn validate(&self, errs: &mut ConfigErrors) {
        if parse_level(&self.level).is_none() {
            errs.push(
                "logging.level",
                format!(
                    "\"{}\" is not a log level; expected one of: error, warn, info, debug, trace, off",
                    self.level
                ),
            );
        }
        for (role, level) in &self.roles {
            let key = format!("logging.roles.{role}");
            if !LOG_TARGETS.contains(&role.as_str()) {
                errs.push(
                    key,
                    format!("unknown role; expected one of: {}", LOG_TARGETS.join(", ")),
                );
            } else if parse_level(level).is_none() {
                errs.push(
                    key,
                    format!("\"{level}\" is not a log level; expected one of: error, warn, info, debug, trace, off"),
                );
            }
        }
    }
}
