//! The store as one TOML document, for backups and for moving an appliance's state.
//!
//! The state table holds the secrets (private keys, the relay key ring, session secrets,
//! user keys), so an export leaves it out unless a passphrase is given, and then it is
//! sealed with that passphrase ([`crate::sealed`]). An import checks every state key and
//! value it would write before writing any.

use std::collections::BTreeMap;

use base64::Engine as _;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize as _, Zeroizing};

use crate::sealed::{self, Sealed};
use crate::{AuditRecord, StateCheck, Store, StoreError, CONFIG, KEY_ACTIVE, STATE};

/// The exported form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exported {
    store_schema_version: u64,
    config_generation: u64,
    /// The configuration document, verbatim.
    config: String,
    /// The state table (JSON of key to base64 value), sealed; absent without a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed_state: Option<Sealed>,
}

/// What the sealed part is bound to: the unencrypted rest of the document.
fn bound(schema: u64, config: &str) -> Vec<u8> {
    format!("edged store export\n{schema}\n{config}").into_bytes()
}

pub(crate) fn export(store: &Store, passphrase: Option<&str>) -> Result<String, StoreError> {
    let rtx = store.db().begin_read()?;
    let cfg = rtx.open_table(CONFIG)?;
    let config = cfg
        .get(KEY_ACTIVE)?
        .map(|v| v.value().to_owned())
        .unwrap_or_default();
    let store_schema_version = store.schema_version()?;
    let sealed_state = match passphrase {
        None => None,
        Some(pass) => {
            let state_t = rtx.open_table(STATE)?;
            let mut state = BTreeMap::new();
            for item in state_t.iter()? {
                let (k, v) = item?;
                state.insert(
                    k.value().to_owned(),
                    base64::engine::general_purpose::STANDARD.encode(v.value()),
                );
            }
            let serialized = serde_json::to_vec(&state);
            state.values_mut().for_each(|v| v.zeroize());
            let plain = Zeroizing::new(serialized.map_err(|e| StoreError::Db(e.to_string()))?);
            let sealed = sealed::seal(&plain, pass, &bound(store_schema_version, &config))
                .map_err(|e| StoreError::Import(e.to_string()))?;
            Some(sealed)
        }
    };
    drop((cfg, rtx));
    let doc = Exported {
        store_schema_version,
        config_generation: store.config()?.map_or(0, |c| c.generation),
        config,
        sealed_state,
    };
    toml::to_string_pretty(&doc).map_err(|e| StoreError::Db(e.to_string()))
}

/// Decoded state whose base64 values are cleared however the import ends.
struct ClearedOnDrop(BTreeMap<String, String>);

impl Drop for ClearedOnDrop {
    fn drop(&mut self) {
        self.0.values_mut().for_each(|v| v.zeroize());
    }
}

/// One state value to write, checked.
struct Value {
    ns: String,
    key: String,
    bytes: Zeroizing<Vec<u8>>,
}

/// Opens and checks the sealed state: every key must be `namespace/key` and accepted by
/// `check_state` with its value, or the whole import is refused naming the key.
fn checked_state(
    doc: &Exported,
    sealed: &Sealed,
    passphrase: Option<&str>,
    check_state: &StateCheck,
) -> Result<Vec<Value>, StoreError> {
    let pass = passphrase.ok_or_else(|| {
        StoreError::Import("the export holds sealed secrets: its passphrase is needed".into())
    })?;
    let plain = sealed::open(sealed, pass, &bound(doc.store_schema_version, &doc.config))
        .map_err(|e| StoreError::Import(e.to_string()))?;
    let state = ClearedOnDrop(
        serde_json::from_slice::<BTreeMap<String, String>>(&plain)
            .map_err(|e| StoreError::Import(format!("the sealed state is not valid: {e}")))?,
    );
    let state = &state.0;
    let mut values = Vec::with_capacity(state.len());
    for (k, v) in state {
        let refused = |reason: String| StoreError::Import(format!("state key \"{k}\": {reason}"));
        let Some((ns, key)) = k.split_once('/') else {
            return Err(refused("has no namespace".into()));
        };
        crate::state_key(ns, key).map_err(|_| refused("is not namespace/key".into()))?;
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .map_err(|e| refused(format!("value is not base64: {e}")))?,
        );
        check_state(ns, key, &bytes).map_err(refused)?;
        values.push(Value {
            ns: ns.to_owned(),
            key: key.to_owned(),
            bytes,
        });
    }
    Ok(values)
}

pub(crate) fn import(
    store: &Store,
    text: &str,
    passphrase: Option<&str>,
    check_config: impl FnOnce(&str) -> Result<(), String>,
    check_state: &StateCheck,
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
    // Everything is checked before the transaction: a refused import writes nothing.
    let values = match &doc.sealed_state {
        Some(sealed) => Some(checked_state(&doc, sealed, passphrase, check_state)?),
        None => None,
    };
    store.write(|tx| {
        if let Some(values) = &values {
            // Replace, not merge: state the export does not hold is gone afterwards.
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
            for v in values {
                tx.put(&v.ns, &v.key, &v.bytes)?;
            }
        }
        // An export without secrets restores the configuration and keeps the state.
        let generation = tx.set_config(&doc.config)?;
        tx.audit(audit)?;
        Ok(generation)
    })
}
