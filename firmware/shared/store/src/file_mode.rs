//! The store file holds private keys and secrets: it is created 0600 (and its directory
//! 0700 when the store creates it), and an existing file that others could read is
//! tightened before it is opened.
//!
//! edged opens the store as root, in a directory its service account owns. So the file is
//! opened here, once, with `O_NOFOLLOW`, and handed to redb as that descriptor: a symlink at
//! the store's path is refused (never followed), and so is a file with other hard links, so
//! a link a compromised edged planted never makes root open, change or initialise another
//! file.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Error, ErrorKind};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::Path;

const PRIVATE_FILE: u32 = 0o600;
const PRIVATE_DIR: u32 = 0o700;

pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
}

/// Opens the store file read-write, creating it 0600 when missing (redb then initialises
/// the empty file as a new database) and restricting an existing one to its owner.
pub(crate) fn open_store_file(path: &Path) -> std::io::Result<File> {
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(PRIVATE_FILE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Error::other(
                "it is a symlink; the store is never opened through one",
            ))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.nlink() > 1 {
        return Err(Error::other(format!(
            "it has {} hard links; the store must have one",
            meta.nlink()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE))?;
    }
    Ok(file)
}
