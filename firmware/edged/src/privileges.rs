//! Dropping root after the sockets are bound.
//!
//! The listeners below 1024 (443 on three roles) need root, or CAP_NET_BIND_SERVICE, only
//! to bind. Everything after that runs as an unprivileged account with no capabilities and
//! `no_new_privs`, so a compromised role cannot regain them.

use std::path::Path;

use anyhow::{anyhow, Context as _};
use nix::unistd::{chown, setgid, setgroups, setuid, Gid, Uid, User};

/// The account edged ended up running as.
#[derive(Debug, Clone)]
pub struct Dropped {
    pub user: String,
    pub uid: u32,
    pub effective_caps: u64,
}

/// Switches to `user` (or `nobody` when that account does not exist on a development
/// machine) when running as root; does nothing otherwise. `owned` paths are handed to the
/// account first so it can keep writing its store.
pub fn drop_root(user: &str, owned: &[&Path]) -> anyhow::Result<Option<Dropped>> {
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
    for p in owned {
        chown_tree(p, account.uid, account.gid)
            .with_context(|| format!("handing {} to {name}", p.display()))?;
    }
    setgroups(&[account.gid]).context("setgroups")?;
    setgid(account.gid).context("setgid")?;
    // glibc and musl apply setuid to every thread of the process, so the runtime's worker
    // threads change identity too.
    setuid(account.uid).context("setuid")?;
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
    Ok(Some(Dropped {
        user: name,
        uid: account.uid.as_raw(),
        effective_caps: caps,
    }))
}

fn chown_tree(p: &Path, uid: Uid, gid: Gid) -> nix::Result<()> {
    chown(p, Some(uid), Some(gid))?;
    if p.is_dir() {
        if let Ok(entries) = std::fs::read_dir(p) {
            for e in entries.flatten() {
                chown_tree(&e.path(), uid, gid)?;
            }
        }
    }
    Ok(())
}

/// CapEff of this process, from /proc.
pub fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}
