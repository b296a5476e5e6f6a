//! The store file holds private keys and secrets: it is created 0600 (and its directory
//! 0700 when the store creates it), and an existing file that others could read is
//! tightened before it is opened. A symlink at the store's path is never followed here.

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

const PRIVATE_FILE: u32 = 0o600;
const PRIVATE_DIR: u32 = 0o700;

pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
}

/// Creates the (empty) store file 0600 if it is missing, or restricts an existing regular
/// file to its owner. redb then initialises an empty file as a new database.
pub(crate) fn secure_store_file(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        // A symlink: not ours to change through its target.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            tracing::warn!(target: "store", path = %path.display(), "store path is a symlink; its target's mode is left as is");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE))?;
    }
    Ok(())
}
