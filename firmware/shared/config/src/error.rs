//! Configuration problems, each naming the key it is about.

use serde::{Deserialize, Serialize};

/// One problem: the dotted key and why it is wrong. The admin API carries it as it is
/// (`{"key": .., "reason": ..}`), under the name [`ConfigProblem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A [`ConfigError`] as the admin API names it in its answers.
pub type ConfigProblem = ConfigError;

/// Every problem found in one document (never empty when returned as an error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn one(e: ConfigError) -> Self {
        Self(vec![e])
    }
    pub fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.0.push(ConfigError::new(key, reason));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
    /// The problems, for the admin API's answers.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        self.0.clone()
    }
}

impl std::fmt::Display for ConfigErrors {
    /// One line per problem, the form edged prints when it refuses to start.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// toml's messages carry a multi-line source excerpt; keep the first meaningful line, which
/// says what was wrong ("invalid type: string \"x\", expected u16", "unknown field `prot`").
pub(crate) fn describe_toml_error(e: &toml::de::Error) -> String {
    let msg = e.message().trim();
    let line = msg.lines().next().unwrap_or(msg).trim();
    let mut reason = line.to_owned();
    if let Some(span) = e.span() {
        reason.push_str(&format!(" (at byte {})", span.start));
    }
    reason
}
