//! Dropping root after the sockets are bound.
//!
//! The listeners below 1024 (443 on three roles) need root, or CAP_NET_BIND_SERVICE, only
//! to bind. Everything after that runs as an unprivileged account with no capabilities and
//! `no_new_privs` (set first thing in `main`), so a compromised role cannot regain them.
//! What the account needs to own is handed over beforehand by [`crate::handover`], which
//! never recurses and never follows a link.

use anyhow::{anyhow, Context as _};
use nix::sys::mman::{mlockall, MlockAllFlags};
use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};
use nix::unistd::{setgid, setgroups, setuid, Gid, Uid, User};

/// The service account edged switches to.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// The account edged ended up running as.
#[derive(Debug, Clone)]
pub struct Dropped {
    pub user: String,
    pub uid: u32,
    pub effective_caps: u64,
}

/// What must survive the drop.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// The relay locked all present and future memory (`av_edge.relay_lock_memory`): without
    /// CAP_IPC_LOCK every later mapping (a thread stack, a heap arena) counts against
    /// RLIMIT_MEMLOCK, so the limit goes to infinity first or edged aborts on its next
    /// allocation that needs new memory.
    pub locked_memory: bool,
}

/// The account to switch to: `user`, or `nobody` when that account does not exist on a
/// development machine. `None` when not running as root (nothing to drop).
pub fn service_account(user: &str) -> anyhow::Result<Option<Account>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let (name, account) = match User::from_name(user).context("looking up the service account")? {
        Some(u) => (user.to_owned(), u),
        None => {
            let fallback = User::from_name("nobody")
                .context("looking up nobody")?
                .ok_or_else(|| anyhow!("neither account \"{user}\" nor \"nobody\" exists"))?;
            tracing::warn!(target: "edged", user, "service account does not exist; running as nobody");
            ("nobody".to_owned(), fallback)
        }
    };
    Ok(Some(Account {
        name,
        uid: account.uid,
        gid: account.gid,
    }))
}

/// Switches to `account` for good.
pub fn drop_to(account: &Account, keep: Keep) -> anyhow::Result<Dropped> {
    if keep.locked_memory {
        keep_memory_locked()?;
    }
    setgroups(&[account.gid]).context("setgroups")?;
    setgid(account.gid).context("setgid")?;
    // glibc and musl apply setuid to every thread of the process, so the runtime's worker
    // threads change identity too.
    setuid(account.uid).context("setuid")?;
    // Already set in main for every thread; repeated so this function holds on its own.
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    if Uid::effective().is_root() || setuid(Uid::from_raw(0)).is_ok() {
        return Err(anyhow!(
            "still able to act as root after dropping privileges"
        ));
    }
    let caps = effective_caps().unwrap_or(u64::MAX);
    if caps != 0 {
        return Err(anyhow!(
            "capabilities remain after dropping privileges: {caps:#x}"
        ));
    }
    Ok(Dropped {
        user: account.name.clone(),
        uid: account.uid.as_raw(),
        effective_caps: caps,
    })
}

/// Lets memory locked with `MCL_FUTURE` stay usable without CAP_IPC_LOCK: RLIMIT_MEMLOCK
/// goes to infinity. Where even root may not raise a hard limit (no CAP_SYS_RESOURCE, as in
/// some containers), what is locked now stays locked (the relay threads and the buffers
/// they allocated at start) and later mappings are not locked (`mlockall(MCL_CURRENT)`
/// without `MCL_FUTURE`), rather than failing every one of them.
fn keep_memory_locked() -> anyhow::Result<()> {
    match setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY) {
        Ok(()) => Ok(()),
        Err(e) => {
            mlockall(MlockAllFlags::MCL_CURRENT).context("locking the present memory only")?;
            tracing::warn!(target: "edged", "cannot raise RLIMIT_MEMLOCK ({e}): memory locked until now stays locked, later memory is not");
            Ok(())
        }
    }
}

/// CapEff of this process, from /proc.
pub fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}
