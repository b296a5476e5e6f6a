//! Process-wide protections set first thing in `main`, before any thread exists.
//!
//! `no_new_privs` is a per-thread attribute inherited only by threads created after it is
//! set, so it must come before the runtimes, the blocking pool and the relay threads that
//! parse network input. Core dumps would write keys and session secrets to disk. The soft
//! descriptor limit (often 1024) would let a thousand idle connections stop every role.

use anyhow::Context as _;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Returns the open-files limit the process now runs with.
pub fn apply() -> anyhow::Result<u64> {
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")?;
    setrlimit(Resource::RLIMIT_CORE, 0, 0).context("disabling core dumps")?;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("reading RLIMIT_NOFILE")?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
        .context("raising the open files limit to its hard limit")?;
    Ok(hard)
}
