//! The store as one TOML document, for backups and for moving an appliance's state.

use base64::Engine as _;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::{AuditRecord, Store, StoreError, CONFIG, KEY_ACTIVE, STATE};

/// The exported form. State values are base64 so any bytes survive the round trip.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exported {
    store_schema_version: u64,
    config_generation: u64,
    /// The configuration document, verbatim.
    config: String,
    #[serde(default)]
    state: std::collections::BTreeMap<String, String>,
}

pub(crate) fn export(store: &Store) -> Result<String, StoreError> {
    let rtx = store.db().begin_read()?;
    let cfg = rtx.open_table(CONFIG)?;
    let config = cfg
        .get(KEY_ACTIVE)?
        .map(|v| v.value().to_owned())
        .unwrap_or_default();
    let state_t = rtx.open_table(STATE)?;
    let mut state = std::collections::BTreeMap::new();
    for item in state_t.iter()? {
        let (k, v) = item?;
        state.insert(
            k.value().to_owned(),
            base64::engine::general_purpose::STANDARD.encode(v.value()),
        );
    }
    drop((cfg, state_t, rtx));
    let doc = Exported {
        store_schema_version: store.schema_version()?,
        config_generation: store.config()?.map_or(0, |c| c.generation),
        config,
        state,
    };
    toml::to_string_pretty(&doc).map_err(|e| StoreError::Db(e.to_string()))
}

pub(crate) fn import(
    store: &Store,
    text: &str,
    check_config: impl FnOnce(&str) -> Result<(), String>,
    audit: AuditRecord,
) -> Result<u64, StoreError> {
    let doc: Exported =
        toml::from_str(text).map_err(|e| StoreError::Import(e.message().to_owned()))?;
    if doc.store_schema_version > crate::STORE_SCHEMA_VERSION {
        return Err(StoreError::Import(format!(
            "the export has store schema {}, newer than this build ({})",
            doc.store_schema_version,
            crate::STORE_SCHEMA_VERSION
        )));
    }
    check_config(&doc.config)
        .map_err(|e| StoreError::Import(format!("its configuration is invalid: {e}")))?;
    let mut values = Vec::with_capacity(doc.state.len());
    for (k, v) in &doc.state {
        let Some((ns, key)) = k.split_once('/') else {
            return Err(StoreError::Import(format!(
                "state key \"{k}\" has no namespace"
            )));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|e| StoreError::Import(format!("state value {k}: {e}")))?;
        values.push((ns.to_owned(), key.to_owned(), bytes));
    }
    store.write(|tx| {
        // Replace, not merge: what the export does not hold is gone afterwards.
        {
            let mut t = tx.wtx.open_table(STATE)?;
            let old: Vec<String> = t
                .iter()?
                .filter_map(|r| r.ok().map(|(k, _)| k.value().to_owned()))
                .collect();
            for k in old {
                t.remove(k.as_str())?;
            }
        }
        for (ns, key, bytes) in &values {
            tx.put(ns, key, bytes)?;
        }
        let generation = tx.set_config(&doc.config)?;
        tx.audit(audit)?;
        Ok(generation)
    })
}
