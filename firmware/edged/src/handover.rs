//! What edged, still root, hands to its service account before the drop: the top of its own
//! directories and the admin socket it bound. Nothing more.
//!
//! A compromised edged can leave links in the directories it owns, then crash, and init
//! restarts it as root. So nothing here recurses or follows a link: a directory is changed
//! through a descriptor opened with `O_NOFOLLOW` (a link there is left alone), the socket
//! with `fchownat(AT_SYMLINK_NOFOLLOW)` after checking it is still a socket, and a directory
//! edged did not create (the shared parent of an admin socket, say) is never touched. On the
//! appliance the image creates the directories with the right owner at boot, so all that
//! changes at start is the socket's owner.

use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use anyhow::{anyhow, Context as _};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, SFlag};
use nix::unistd::{fchown, fchownat};

use crate::privileges::Account;

/// How edged came to have a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Its data directory: given to edged alone by configuration, created or not.
    DataDir,
    /// Created by this start (a missing admin socket directory).
    CreatedNow,
    /// Somebody else's that edged only uses (an existing directory the socket goes into).
    Shared,
}

/// Whether a directory of `origin`, owned by `owner_uid`, goes to the service account: only
/// edged's own, and only while root still owns it (one owned by any other account was set
/// up that way by the image or the operator, and stays as it is).
pub fn hand_over(origin: Origin, owner_uid: u32) -> bool {
    match origin {
        Origin::DataDir | Origin::CreatedNow => owner_uid == 0,
        Origin::Shared => false,
    }
}

/// A directory edged uses, opened without following a link at its path.
#[derive(Debug)]
pub struct Dir {
    dir: File,
    origin: Origin,
}

impl Dir {
    /// Opens `path` as a directory with `O_NOFOLLOW`: `None` when it is a symlink or not a
    /// directory, which is then never handed over.
    pub fn open(path: &Path, origin: Origin) -> anyhow::Result<Option<Dir>> {
        match OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
            .open(path)
        {
            Ok(dir) => Ok(Some(Dir { dir, origin })),
            Err(e)
                if [Errno::ELOOP, Errno::ENOTDIR]
                    .iter()
                    .any(|n| e.raw_os_error() == Some(*n as i32)) =>
            {
                Ok(None)
            }
            Err(e) => Err(anyhow!("cannot open {}: {e}", path.display())),
        }
    }

    /// Creates `path` (mode `mode`, its missing parents as for `mkdir -p`) and opens it;
    /// the origin says whether this start created it.
    pub fn create(path: &Path, mode: u32, existing: Origin) -> anyhow::Result<Option<Dir>> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let origin = match DirBuilder::new().mode(mode).create(path) {
            Ok(()) => Origin::CreatedNow,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => existing,
            Err(e) => return Err(anyhow!("cannot create {}: {e}", path.display())),
        };
        Dir::open(path, origin)
    }

    pub fn file(&self) -> &File {
        &self.dir
    }

    /// Gives the directory itself (never what it holds) to `account` when [`hand_over`]
    /// says so.
    pub fn hand_over(&self, account: &Account) -> anyhow::Result<bool> {
        let owner = self
            .dir
            .metadata()
            .context("reading a directory's owner")?
            .uid();
        if !hand_over(self.origin, owner) {
            return Ok(false);
        }
        fchown(self.dir.as_raw_fd(), Some(account.uid), Some(account.gid)).context("fchown")?;
        Ok(true)
    }
}

/// The admin socket edged bound: `name` in `dir`.
#[derive(Debug)]
pub struct BoundSocket {
    pub dir: Dir,
    pub name: OsString,
}

impl BoundSocket {
    /// Gives the socket file to `account` (so the service account's group reaches it) when
    /// the entry is still a socket, without following a link put in its place.
    pub fn hand_over(&self, account: &Account) -> anyhow::Result<()> {
        let dirfd = self.dir.file().as_raw_fd();
        let name: &OsStr = &self.name;
        let st = fstatat(Some(dirfd), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .context("reading the admin socket")?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
            return Err(anyhow!("the admin socket was replaced by something else"));
        }
        fchownat(
            Some(dirfd),
            name,
            Some(account.uid),
            Some(account.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .context("fchownat")?;
        Ok(())
    }
}

/// Hands edged's data directory and admin socket (with its directory when edged created
/// it) to `account`.
pub fn hand_over_all(
    account: &Account,
    data_dir: Option<&Dir>,
    socket: Option<&BoundSocket>,
) -> anyhow::Result<()> {
    if let Some(d) = data_dir {
        d.hand_over(account)
            .with_context(|| format!("handing the data directory to {}", account.name))?;
    }
    if let Some(s) = socket {
        s.dir
            .hand_over(account)
            .with_context(|| format!("handing the admin socket's directory to {}", account.name))?;
        s.hand_over(account)
            .with_context(|| format!("handing the admin socket to {}", account.name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_directories_go_to_the_account_only_while_root_owns_them() {
        assert!(hand_over(Origin::DataDir, 0));
        assert!(hand_over(Origin::CreatedNow, 0));
        assert!(
            !hand_over(Origin::DataDir, 100),
            "already set up by the image"
        );
        assert!(!hand_over(Origin::DataDir, 1000), "another account's");
    }

    #[test]
    fn a_shared_directory_is_never_handed_over() {
        assert!(!hand_over(Origin::Shared, 0));
        assert!(!hand_over(Origin::Shared, 100));
    }

    #[test]
    fn a_symlinked_directory_is_not_opened() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        let link = root.path().join("run");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(Dir::open(&link, Origin::DataDir).unwrap().is_none());
        assert!(Dir::create(&link, 0o750, Origin::Shared).unwrap().is_none());
    }

    #[test]
    fn create_tells_a_new_directory_from_an_existing_one() {
        let root = tempfile::tempdir().unwrap();
        let new = root.path().join("a").join("run");
        let d = Dir::create(&new, 0o750, Origin::Shared).unwrap().unwrap();
        assert_eq!(d.origin, Origin::CreatedNow);
        let again = Dir::create(&new, 0o750, Origin::Shared).unwrap().unwrap();
        assert_eq!(again.origin, Origin::Shared);
    }
}
