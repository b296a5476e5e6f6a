//! Configuration problems, each naming the key it is about.

use serde::{Deserialize, Serialize};

use crate::wording;

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

/// Where a document that failed to deserialise came from, which decides how a problem is
/// located for the operator.
pub(crate) enum Source<'a> {
    /// A document the operator can open (a file, an import): problems carry a line number.
    Document(&'a str),
    /// A document built from one `config set KEY`: the key the operator typed locates it.
    Key(&'a str),
}

/// One deserialisation problem at dotted path `key`, in the operator's words.
pub(crate) fn deserialize_problem(key: &str, e: &toml::de::Error, source: Source) -> ConfigError {
    // toml's messages carry a multi-line source excerpt; the first line says what was wrong.
    let msg = e.message().trim();
    let first = msg.lines().next().unwrap_or(msg).trim();
    let (key, mut reason) = match wording::unknown_key(first) {
        Some(unknown) => unknown_key_problem(key, unknown, &source),
        None => (key.to_owned(), wording::reason(first)),
    };
    if let (Source::Document(text), Some(span)) = (source, e.span()) {
        reason.push_str(&format!(" (line {})", wording::line_of(text, span.start)));
    }
    ConfigError::new(key, reason)
}

/// "no such key", naming the full key the operator wrote and a near known one if any.
fn unknown_key_problem(
    path: &str,
    unknown: wording::UnknownKey,
    source: &Source,
) -> (String, String) {
    // The path may or may not end with the unknown name itself; the section is what
    // comes before it.
    let section = match path.rsplit_once('.') {
        Some((section, last)) if last == unknown.field => section,
        None if path == unknown.field || path == "(document)" => "",
        _ => path,
    };
    let join = |name: &str| {
        if section.is_empty() {
            name.to_owned()
        } else {
            format!("{section}.{name}")
        }
    };
    let written = join(&unknown.field);
    // A typed key may go on below the unknown part (`av_edg.relay_port_min`).
    let (key, rest) = match source {
        Source::Key(typed) if typed.starts_with(&format!("{written}.")) => {
            (typed.to_string(), &typed[written.len()..])
        }
        _ => (written, ""),
    };
    let reason = match unknown.suggestion {
        Some(near) => format!("no such key (did you mean {}{rest}?)", join(&near)),
        None if section.is_empty() => "no such key".to_owned(),
        None => format!("no such key in [{section}] (edgectl config get {section} lists them)"),
    };
    (key, reason)
}
