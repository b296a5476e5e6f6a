//! The appliance's store: configuration and small state (admin accounts, federation lists,
//! keys, the audit log) in one crash-safe file.
//!
//! Built on redb: every commit is a copy-on-write transaction made durable with fsync
//! before it is acknowledged, so a power cut leaves either the old or the new state, never
//! a mix. (sled 0.34, named in the original design, has open reports of corruption after
//! abrupt stops and no maintained release; see the README for the decision.)
//!
//! Layout: four tables.
//! - `meta`: schema version, config generation, audit sequence.
//! - `config`: the active configuration document (TOML) under `active`.
//! - `state`: namespaced small values, key `namespace/key`, bytes (JSON by convention).
//! - `audit`: append-only log, sequence number to a JSON [`AuditEntry`]. Only the newest
//!   [`Store::set_audit_retention`] entries are kept (the data partition is small): each
//!   append drops what falls out of the window, in the same transaction.

mod export;
mod file_mode;
mod migrate;
mod sealed;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

pub use edged_admin_api::AuditEntry;
pub use migrate::STORE_SCHEMA_VERSION;
pub use sealed::MIN_PASSPHRASE_LEN;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const CONFIG: TableDefinition<&str, &str> = TableDefinition::new("config");
pub(crate) const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
pub(crate) const AUDIT: TableDefinition<u64, &str> = TableDefinition::new("audit");

pub(crate) const KEY_SCHEMA: &str = "schema_version";
pub(crate) const KEY_GENERATION: &str = "config_generation";
pub(crate) const KEY_AUDIT_SEQ: &str = "audit_seq";
pub(crate) const KEY_ACTIVE: &str = "active";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("store schema version {found} is newer than this build understands ({supported})")]
    TooNew { found: u64, supported: u64 },
    #[error("store I/O failed: {0}")]
    Db(String),
    #[error("stored value {key} is not valid: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("invalid key \"{0}\": namespace and key must be non-empty and the namespace must not contain '/'")]
    BadKey(String),
    #[error("import refused: {0}")]
    Import(String),
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Checks one state value an import would write: `(namespace, key, value)`, an error
/// saying what is wrong with it.
pub type StateCheck = dyn Fn(&str, &str, &[u8]) -> Result<(), String>;

/// The configuration document as stored, with the generation that counts its commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConfig {
    pub generation: u64,
    pub toml: String,
}

/// Who did what, for the audit log.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub actor: String,
    pub action: String,
    pub detail: String,
}

impl AuditRecord {
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            detail: detail.into(),
        }
    }
}

/// A handle to the open store; cheap to clone and share between roles.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    audit_keep: Arc<AtomicU64>,
}

/// Audit entries kept unless the configuration says otherwise (`limits.audit_entries`):
/// years of an operator's changes, a few megabytes at most.
pub const DEFAULT_AUDIT_ENTRIES: u64 = 10_000;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn state_key(ns: &str, key: &str) -> Result<String, StoreError> {
    if ns.is_empty() || key.is_empty() || ns.contains('/') {
        return Err(StoreError::BadKey(format!("{ns}/{key}")));
    }
    Ok(format!("{ns}/{key}"))
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Store {
    /// Opens (creating if needed) the store file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                file_mode::create_private_dir(dir).map_err(|e| StoreError::Open {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            }
        }
        let file = file_mode::open_store_file(path).map_err(|e| StoreError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let db = redb::Builder::new()
            .create_file(file)
            .map_err(|e| StoreError::Open {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let store = Store {
            db: Arc::new(db),
            path: path.to_owned(),
            audit_keep: Arc::new(AtomicU64::new(DEFAULT_AUDIT_ENTRIES)),
        };
        migrate::run(&store.db)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the newest `entries` (at least one) of the audit log from the next append on,
    /// for every clone of this store.
    pub fn set_audit_retention(&self, entries: u64) {
        self.audit_keep.store(entries.max(1), Ordering::Relaxed);
    }

    pub fn schema_version(&self) -> Result<u64, StoreError> {
        let rtx = self.db.begin_read()?;
        let meta = rtx.open_table(META)?;
        Ok(meta.get(KEY_SCHEMA)?.map_or(0, |v| v.value()))
    }

    /// The active configuration, if one was ever committed.
    pub fn config(&self) -> Result<Option<StoredConfig>, StoreError> {
        let rtx = self.db.begin_read()?;
        let cfg = rtx.open_table(CONFIG)?;
        let meta = rtx.open_table(META)?;
        let generation = meta.get(KEY_GENERATION)?.map_or(0, |v| v.value());
        Ok(cfg.get(KEY_ACTIVE)?.map(|v| StoredConfig {
            generation,
            toml: v.value().to_owned(),
        }))
    }

    /// Commits a new configuration document with its audit entry; returns its generation.
    /// The caller validates the document first: the store keeps what it is given.
    pub fn commit_config(&self, toml: &str, audit: AuditRecord) -> Result<u64, StoreError> {
        self.write(|tx| {
            let generation = tx.set_config(toml)?;
            tx.audit(audit)?;
            Ok(generation)
        })
    }

    /// Runs `f` in one write transaction: everything it writes is committed together and
    /// durably (fsync) before this returns, or nothing is.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&mut Txn<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let wtx = self.db.begin_write()?;
        let out = {
            let mut txn = Txn {
                wtx: &wtx,
                audit_keep: self.audit_keep.load(Ordering::Relaxed),
            };
            f(&mut txn)?
        };
        wtx.commit()?;
        Ok(out)
    }

    /// One small value, raw.
    pub fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = state_key(ns, key)?;
        let rtx = self.db.begin_read()?;
        let t = rtx.open_table(STATE)?;
        Ok(t.get(k.as_str())?.map(|v| v.value().to_vec()))
    }

    /// One small value, decoded from JSON.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        ns: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get(ns, key)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        key: format!("{ns}/{key}"),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Stores one value as JSON in its own transaction.
    pub fn put_json<T: Serialize>(&self, ns: &str, key: &str, value: &T) -> Result<(), StoreError> {
        self.write(|tx| tx.put_json(ns, key, value))
    }

    /// Every value of a namespace, ordered by key.
    pub fn list(&self, ns: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let prefix = state_key(ns, "x")?;
        let prefix = &prefix[..prefix.len() - 1];
        let rtx = self.db.begin_read()?;
        let t = rtx.open_table(STATE)?;
        let mut out = Vec::new();
        for item in t.range(prefix..)? {
            let (k, v) = item?;
            let Some(rest) = k.value().strip_prefix(prefix) else {
                break;
            };
            out.push((rest.to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The audit log from sequence `after` (exclusive), at most `limit` entries, oldest first.
    pub fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let rtx = self.db.begin_read()?;
        let t = rtx.open_table(AUDIT)?;
        let mut out = Vec::new();
        for item in t.range(after.saturating_add(1)..)?.take(limit) {
            let (k, v) = item?;
            let entry: AuditEntry =
                serde_json::from_str(v.value()).map_err(|e| StoreError::Corrupt {
                    key: format!("audit/{}", k.value()),
                    reason: e.to_string(),
                })?;
            out.push(entry);
        }
        Ok(out)
    }

    /// The newest `limit` audit entries, oldest first.
    pub fn audit_tail(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let rtx = self.db.begin_read()?;
        let meta = rtx.open_table(META)?;
        let last = meta.get(KEY_AUDIT_SEQ)?.map_or(0, |v| v.value());
        drop(meta);
        drop(rtx);
        self.audit_log(last.saturating_sub(limit as u64), limit)
    }

    /// Writes the store as one TOML document [`Store::import_toml`] can restore: the
    /// configuration always; the state (keys, key rings, users: the secrets) only with a
    /// `passphrase` (at least [`MIN_PASSPHRASE_LEN`] characters), sealed with it (argon2id,
    /// AES-256-GCM). The audit log stays on the appliance.
    pub fn export_toml(&self, passphrase: Option<&str>) -> Result<String, StoreError> {
        export::export(self, passphrase)
    }

    /// Restores an exported document in one transaction, after `check_config` accepted its
    /// configuration and `check_state` every state key and value it holds (namespace, key,
    /// value): an unknown or malformed one refuses the whole import, naming the key, and
    /// nothing is written. Sealed state needs its `passphrase` and replaces the state; an
    /// export without it replaces the configuration only. The audit log gains an entry.
    pub fn import_toml(
        &self,
        text: &str,
        passphrase: Option<&str>,
        check_config: impl FnOnce(&str) -> Result<(), String>,
        check_state: &StateCheck,
        audit: AuditRecord,
    ) -> Result<u64, StoreError> {
        export::import(self, text, passphrase, check_config, check_state, audit)
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }
}

/// The write side of one transaction.
pub struct Txn<'a> {
    wtx: &'a redb::WriteTransaction,
    audit_keep: u64,
}

impl Txn<'_> {
    pub fn put(&mut self, ns: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let k = state_key(ns, key)?;
        let mut t = self.wtx.open_table(STATE)?;
        t.insert(k.as_str(), value)?;
        Ok(())
    }

    pub fn put_json<T: Serialize>(
        &mut self,
        ns: &str,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
            key: format!("{ns}/{key}"),
            reason: e.to_string(),
        })?;
        self.put(ns, key, &bytes)
    }

    pub fn get(&mut self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = state_key(ns, key)?;
        let t = self.wtx.open_table(STATE)?;
        let v = t.get(k.as_str())?.map(|v| v.value().to_vec());
        Ok(v)
    }

    pub fn delete(&mut self, ns: &str, key: &str) -> Result<bool, StoreError> {
        let k = state_key(ns, key)?;
        let mut t = self.wtx.open_table(STATE)?;
        let existed = t.remove(k.as_str())?.is_some();
        Ok(existed)
    }

    /// Replaces the active configuration; returns the new generation.
    pub fn set_config(&mut self, toml: &str) -> Result<u64, StoreError> {
        let mut meta = self.wtx.open_table(META)?;
        let generation = meta.get(KEY_GENERATION)?.map_or(0, |v| v.value()) + 1;
        meta.insert(KEY_GENERATION, generation)?;
        let mut cfg = self.wtx.open_table(CONFIG)?;
        cfg.insert(KEY_ACTIVE, toml)?;
        Ok(generation)
    }

    /// Appends to the audit log; returns the entry's sequence number.
    pub fn audit(&mut self, rec: AuditRecord) -> Result<u64, StoreError> {
        let mut meta = self.wtx.open_table(META)?;
        let seq = meta.get(KEY_AUDIT_SEQ)?.map_or(0, |v| v.value()) + 1;
        meta.insert(KEY_AUDIT_SEQ, seq)?;
        let entry = AuditEntry {
            seq,
            unix_time: now_unix(),
            actor: rec.actor,
            action: rec.action,
            detail: rec.detail,
        };
        let json = serde_json::to_string(&entry).map_err(|e| StoreError::Db(e.to_string()))?;
        let mut t = self.wtx.open_table(AUDIT)?;
        t.insert(seq, json.as_str())?;
        // Sequence numbers are contiguous: keep seq - keep + 1 ..= seq. Usually one entry
        // goes; more after the retention was lowered.
        loop {
            let first = t.first()?.map(|(k, _)| k.value());
            match first {
                Some(k) if k.saturating_add(self.audit_keep) <= seq => {
                    t.pop_first()?;
                }
                _ => break,
            }
        }
        Ok(seq)
    }
}

#[cfg(test)]
mod tests;
