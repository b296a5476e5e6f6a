//! Reading and setting one key of the configuration by its dotted path.

use crate::error::Source;
use crate::{Config, ConfigError, ConfigErrors};

/// A value as an operator types it: TOML (`5061`, `true`, `["a"]`, `"x"`), or a bare word
/// taken as a string so `edgectl config set appliance.name edge-01` works without quoting.
fn parse_value(text: &str) -> toml::Value {
    let doc = format!("v = {text}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(text.to_owned())),
        Err(_) => toml::Value::String(text.to_owned()),
    }
}

fn segments(key: &str) -> Result<Vec<&str>, ConfigErrors> {
    let segs: Vec<&str> = key.split('.').collect();
    if key.is_empty() || segs.iter().any(|s| s.is_empty()) {
        return Err(ConfigErrors::one(ConfigError::new(
            if key.is_empty() { "(key)" } else { key },
            "not a key: use dotted names such as access_edge.federation.discovery",
        )));
    }
    Ok(segs)
}

fn to_table(config: &Config) -> toml::Table {
    match toml::Table::try_from(config) {
        Ok(t) => t,
        Err(e) => unreachable!("config always serialises: {e}"),
    }
}

pub(crate) fn with_value(config: &Config, key: &str, value: &str) -> Result<Config, ConfigErrors> {
    let segs = segments(key)?;
    let mut root = to_table(config);
    let (last, parents) = segs
        .split_last()
        .ok_or_else(|| ConfigErrors::one(ConfigError::new(key, "not a key")))?;
    let mut table = &mut root;
    for (depth, seg) in parents.iter().enumerate() {
        // Sections that are maps (certificates, logging.roles) may gain new entries.
        let entry = table
            .entry((*seg).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigErrors::one(ConfigError::new(
                    segs[..=depth].join("."),
                    "is a value, not a section",
                )))
            }
        };
    }
    table.insert((*last).to_owned(), parse_value(value));
    let text = match toml::to_string(&root) {
        Ok(t) => t,
        Err(e) => return Err(ConfigErrors::one(ConfigError::new(key, e.to_string()))),
    };
    Config::parse(&text, Source::Key(key))
}

pub(crate) fn get_value(config: &Config, key: &str) -> Result<String, ConfigErrors> {
    let segs = segments(key)?;
    let root = toml::Value::Table(to_table(config));
    let mut v = &root;
    for (depth, seg) in segs.iter().enumerate() {
        v = match v {
            toml::Value::Table(t) => t.get(*seg).ok_or_else(|| {
                ConfigErrors::one(ConfigError::new(segs[..=depth].join("."), "no such key"))
            })?,
            _ => {
                return Err(ConfigErrors::one(ConfigError::new(
                    segs[..depth].join("."),
                    "is a value, not a section",
                )))
            }
        };
    }
    Ok(match v {
        toml::Value::Table(t) => toml::to_string_pretty(t).unwrap_or_default(),
        other => other.to_string(),
    })
}
