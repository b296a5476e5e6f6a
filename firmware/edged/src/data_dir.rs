//! The data directory holds the store (private keys, the relay key ring, session secrets):
//! created 0700, and an existing one this process owns is tightened to 0700.
//!
//! The directory is opened with `O_NOFOLLOW` and changed through that descriptor, so a
//! symlink planted at the path is never followed, and a directory another account owns is
//! left alone.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::Path;

use anyhow::Context as _;
use nix::fcntl::OFlag;

const PRIVATE_DIR: u32 = 0o700;

pub fn prepare(path: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(path)
        .with_context(|| format!("cannot create the data directory {}", path.display()))?;
    let dir = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
        .open(path)
    {
        Ok(dir) => dir,
        // A symlink (ELOOP) or something else in the way: leave it as the operator set it.
        Err(e) => {
            // Logging is not set up yet at this point of the start.
            eprintln!(
                "edged: warning: {} is not a plain directory ({e}); its mode is left as is",
                path.display()
            );
            return Ok(());
        }
    };
    let meta = dir
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    let ours = meta.uid() == nix::unistd::geteuid().as_raw();
    if ours && meta.permissions().mode() & 0o077 != 0 {
        dir.set_permissions(std::fs::Permissions::from_mode(PRIVATE_DIR))
            .with_context(|| format!("restricting {} to its owner", path.display()))?;
    }
    Ok(())
}
