//! The configuration model of the appliance.
//!
//! One typed document describes the whole appliance: its two sides (external and internal),
//! the certificates, and one section per role. Every way a configuration enters edged (the
//! embedded default, a file, `edgectl config set|import`, the web page, first-boot
//! provisioning) is checked by [`Config::validate`] (through [`Config::from_toml`], or once per
//! change in edged's change transaction), which reports *every* problem it finds, each
//! naming the key, so an operator fixes a file in one pass.

mod certificates;
mod error;
mod internal_only;
mod limits;
mod listeners;
mod logging;
mod network;
pub mod peers;
pub mod roles;
mod set_path;
mod wording;

use serde::{Deserialize, Serialize};

pub use certificates::{CertificateConfig, TlsTrust};
pub use error::{ConfigError, ConfigErrors, ConfigProblem};
pub use limits::{
    process_descriptor_limit, set_process_descriptor_limit, Budgets, LimitsConfig,
    MIN_ROLE_DESCRIPTORS, ROLE_WEIGHTS,
};
pub use listeners::{Protocol, SocketSpec, Transport};
pub use logging::{parse_level, LoggingConfig, LOG_TARGETS};
pub use network::{NetworkConfig, Side, SideConfig};
pub use peers::{parse_peers, AllowedPeer};
pub use roles::{
    access_edge::AccessEdgeConfig, av_auth::AvAuthConfig, av_edge::AvEdgeConfig,
    webconf_edge::WebconfEdgeConfig,
};

/// Version of the configuration schema this build writes. Older documents are migrated by
/// the store on open; a newer one is refused rather than half-understood.
pub const SCHEMA_VERSION: u32 = 1;

/// The embedded default used by `make run` and by a store that has never been configured:
/// everything on loopback and unprivileged ports, with a self-signed certificate.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// The whole appliance configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    #[serde(default)]
    pub appliance: ApplianceConfig,
    #[serde(default)]
    pub network: NetworkConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Descriptor budgets of the roles and the reserve kept for edged itself.
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub tls: TlsTrust,
    /// Certificates by name; roles refer to them by that name.
    #[serde(default)]
    pub certificates: std::collections::BTreeMap<String, CertificateConfig>,
    #[serde(default)]
    pub access_edge: AccessEdgeConfig,
    #[serde(default)]
    pub webconf_edge: WebconfEdgeConfig,
    #[serde(default)]
    pub av_edge: AvEdgeConfig,
    #[serde(default)]
    pub av_auth: AvAuthConfig,
}

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

/// Settings of the appliance as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApplianceConfig {
    /// Shown in status, logs and the web page.
    pub name: String,
    /// Unprivileged account edged switches to after binding its sockets (when started as root).
    pub user: String,
    /// How long SIGTERM waits for in-flight work before exiting.
    pub drain_timeout_secs: u64,
}

impl Default for ApplianceConfig {
    fn default() -> Self {
        Self {
            name: "edge".into(),
            user: "edged".into(),
            drain_timeout_secs: 10,
        }
    }
}

/// The Prometheus text endpoint, on the internal side only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub port: u16,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            port: 9100,
        }
    }
}

impl Default for Config {
    /// The production defaults: OCS 2007 edge ports, addresses still to be set by the admin.
    fn default() -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            appliance: ApplianceConfig::default(),
            network: NetworkConfig::default(),
            logging: LoggingConfig::default(),
            metrics: MetricsConfig::default(),
            limits: LimitsConfig::default(),
            tls: TlsTrust::default(),
            certificates: Default::default(),
            access_edge: AccessEdgeConfig::default(),
            webconf_edge: WebconfEdgeConfig::default(),
            av_edge: AvEdgeConfig::default(),
            av_auth: AvAuthConfig::default(),
        }
    }
}

/// Role sections name the certificate they present; checked here once for all roles.
pub(crate) struct CertRef<'a> {
    pub key: String,
    pub name: &'a str,
}

impl Config {
    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
        let config = Config::parse_unvalidated(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document, checking syntax, keys and types but not the cross-field
    /// rules: for edged's change transaction, which validates every new configuration once
    /// itself before it commits. Anything else wants [`Config::from_toml`].
    pub fn parse_unvalidated(text: &str) -> Result<Config, ConfigErrors> {
        Self::parse(text, error::Source::Document(text))
    }

    /// Deserialises `text` without the cross-field rules; `source` decides how problems
    /// are located.
    pub(crate) fn parse(text: &str, source: error::Source) -> Result<Config, ConfigErrors> {
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { "(document)".into() } else { key };
            ConfigErrors::one(error::deserialize_problem(&key, &e.into_inner(), source))
        })?;
        Ok(config)
    }

    /// The embedded default, already validated.
    pub fn embedded_default() -> Config {
        match Config::from_toml(EMBEDDED_DEFAULT) {
            Ok(c) => c,
            // The embedded document is a build input covered by tests; failing here means
            // the binary itself is broken, not the operator's input.
            Err(e) => unreachable!("embedded default config is invalid: {e}"),
        }
    }

    /// Serialises to the TOML form operators read and edit.
    pub fn to_toml(&self) -> String {
        match toml::to_string_pretty(self) {
            Ok(s) => s,
            Err(e) => unreachable!("config always serialises: {e}"),
        }
    }

    /// Returns a copy with `key` (a dotted path such as `access_edge.federation.discovery`)
    /// set to `value` (TOML syntax, or a bare word taken as a string), validated as a whole.
    pub fn with_value(&self, key: &str, value: &str) -> Result<Config, ConfigErrors> {
        let config = self.with_value_unvalidated(key, value)?;
        config.validate()?;
        Ok(config)
    }

    /// [`Config::with_value`] without the cross-field rules (the value's type is checked):
    /// for a caller that validates the result once itself, as edged's change transaction does.
    pub fn with_value_unvalidated(&self, key: &str, value: &str) -> Result<Config, ConfigErrors> {
        set_path::with_value(self, key, value)
    }

    /// Returns the value at a dotted path, as TOML.
    pub fn get_value(&self, key: &str) -> Result<String, ConfigErrors> {
        set_path::get_value(self, key)
    }

    /// Checks every cross-field rule, collecting all problems.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = ConfigErrors::default();
        if self.schema_version != SCHEMA_VERSION {
            errs.push(
                "schema_version",
                format!(
                    "this build understands schema version {SCHEMA_VERSION}, the document has {}",
                    self.schema_version
                ),
            );
        }
        if self.appliance.name.trim().is_empty() {
            errs.push("appliance.name", "must not be empty");
        }
        if self.appliance.user.trim().is_empty() {
            errs.push("appliance.user", "must not be empty");
        }
        if self.appliance.drain_timeout_secs > 600 {
            errs.push(
                "appliance.drain_timeout_secs",
                "must be at most 600 seconds",
            );
        }
        self.logging.validate(&mut errs);
        self.limits.validate(&self.enabled_roles(), &mut errs);
        for (name, cert) in &self.certificates {
            cert.validate(&format!("certificates.{name}"), &mut errs);
        }
        self.tls.validate(&mut errs);

        let mut cert_refs = Vec::new();
        self.access_edge.validate(&mut errs, &mut cert_refs);
        self.webconf_edge.validate(&mut errs, &mut cert_refs);
        self.av_edge.validate(&mut errs, &mut cert_refs);
        self.av_auth.validate(&mut errs, &mut cert_refs);
        for r in cert_refs {
            if !self.certificates.contains_key(r.name) {
                errs.push(
                    r.key,
                    format!(
                        "names certificate \"{}\", which is not defined under [certificates]",
                        r.name
                    ),
                );
            }
        }
        if self.metrics.enabled && self.metrics.port == 0 {
            errs.push("metrics.port", "must be a port number from 1 to 65535");
        }
        listeners::check_clashes(&self.sockets(), self, &mut errs);
        internal_only::check_internal_only(self, &mut errs);
        errs.into_result()
    }

    /// The config section names of the enabled roles, in start order.
    pub fn enabled_roles(&self) -> Vec<&'static str> {
        [
            ("access_edge", self.access_edge.enabled),
            ("webconf_edge", self.webconf_edge.enabled),
            ("av_edge", self.av_edge.enabled),
            ("av_auth", self.av_auth.enabled),
        ]
        .into_iter()
        .filter_map(|(r, on)| on.then_some(r))
        .collect()
    }

    /// Each enabled role's descriptor budget under the process limit `limit`.
    pub fn descriptor_budgets(&self, limit: u64) -> Budgets {
        self.limits.budgets(&self.enabled_roles(), limit)
    }

    /// Every socket the enabled roles and services listen on, with the key that sets it.
    pub fn sockets(&self) -> Vec<SocketSpec> {
        let mut out = Vec::new();
        self.access_edge.sockets(&self.network, &mut out);
        self.webconf_edge.sockets(&self.network, &mut out);
        self.av_edge.sockets(&self.network, &mut out);
        self.av_auth.sockets(&self.network, &mut out);
        if self.metrics.enabled {
            out.push(SocketSpec {
                key: "metrics.port".into(),
                owner: "metrics",
                purpose: "Prometheus metrics".into(),
                side: Side::Internal,
                protocol: Protocol::Tcp,
                transport: Transport::Http,
                addr: std::net::SocketAddr::new(self.network.internal.address, self.metrics.port),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;
