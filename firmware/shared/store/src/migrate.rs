//! Schema versions of the store and the steps between them.
//!
//! Each step runs inside the same write transaction that records the new version, so a
//! crash during a migration leaves the store at the old version, and the next start
//! migrates again.

use redb::{Database, ReadableTable, WriteTransaction};

use crate::{StoreError, AUDIT, CONFIG, KEY_SCHEMA, META, STATE};

/// The schema this build writes.
pub const STORE_SCHEMA_VERSION: u64 = 1;

type Step = fn(&WriteTransaction) -> Result<(), StoreError>;

/// `STEPS[n]` migrates from version n to n + 1.
const STEPS: &[Step] = &[v0_to_v1];

/// Version 1: the four tables exist.
fn v0_to_v1(wtx: &WriteTransaction) -> Result<(), StoreError> {
    wtx.open_table(META)?;
    wtx.open_table(CONFIG)?;
    wtx.open_table(STATE)?;
    wtx.open_table(AUDIT)?;
    Ok(())
}

pub(crate) fn run(db: &Database) -> Result<(), StoreError> {
    let wtx = db.begin_write()?;
    let current = {
        let meta = wtx.open_table(META)?;
        let v = meta.get(KEY_SCHEMA)?.map_or(0, |v| v.value());
        v
    };
    if current > STORE_SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            supported: STORE_SCHEMA_VERSION,
        });
    }
    if current == STORE_SCHEMA_VERSION {
        // Nothing to do; dropping the transaction aborts it without a disk write.
        return Ok(());
    }
    for (from, step) in STEPS.iter().enumerate().skip(current as usize) {
        step(&wtx)?;
        tracing::info!(target: "store", from, to = from + 1, "store schema migrated");
    }
    {
        let mut meta = wtx.open_table(META)?;
        meta.insert(KEY_SCHEMA, STORE_SCHEMA_VERSION)?;
    }
    wtx.commit()?;
    Ok(())
}
