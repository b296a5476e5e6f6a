//! The data directory holds the store (private keys, the relay key ring, session secrets):
//! created 0700, and an existing one this process owns is tightened to 0700.
//!
//! The directory is opened with `O_NOFOLLOW` and changed through that descriptor, so a
//! symlink planted at the path is never followed, and a directory another account owns is
//! left alone. Its parents, when missing, are created as `mkdir -p` would.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::Context as _;

use crate::handover::{Dir, Origin};

const PRIVATE_DIR: u32 = 0o700;

/// Creates or tightens the data directory; returns it opened (for the hand-over to the
/// service account), or `None` when a symlink or something else is in the way.
pub fn prepare(path: &Path) -> anyhow::Result<Option<Dir>> {
    let Some(dir) = Dir::create(path, PRIVATE_DIR, Origin::DataDir)
        .with_context(|| format!("cannot create the data directory {}", path.display()))?
    else {
        // Logging is not set up yet at this point of the start.
        eprintln!(
            "edged: warning: {} is not a plain directory; its mode and owner are left as is",
            path.display()
        );
        return Ok(None);
    };
    let meta = dir
        .file()
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    let ours = meta.uid() == nix::unistd::geteuid().as_raw();
    if ours && meta.permissions().mode() & 0o077 != 0 {
        dir.file()
            .set_permissions(std::fs::Permissions::from_mode(PRIVATE_DIR))
            .with_context(|| format!("restricting {} to its owner", path.display()))?;
    }
    Ok(Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn existing_open_directory_of_ours_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&data).unwrap();
        assert_eq!(mode_of(&data), 0o700);
    }

    #[test]
    fn symlinked_data_directory_is_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = root.path().join("data");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        prepare(&link).unwrap();
        assert_eq!(mode_of(&target), 0o755, "the link's target was changed");
    }
}
