//! The seccomp filters of edged's thread classes, kept as data (the lists below), and the
//! calls that install them. Firecracker's per-thread-class filters are the model.
//!
//! Two classes, stacked:
//! - [`ThreadClass::Process`]: installed by `main` before any thread exists, so every thread
//!   edged ever runs (main, the tokio workers and blocking pool, the web conferencing
//!   runtime, the relay threads) inherits it. A deny list: calls edged never makes and an
//!   intruder wants (running programs, tracing other processes, namespaces, kernel modules,
//!   BPF, io_uring, the clock, reboot). The privilege drop still runs after it (binding ports
//!   below 1024 comes first), so `setuid` and `capset` stay allowed in this class.
//! - [`ThreadClass::Relay`]: each media relay thread adds it at its start, after pinning. An
//!   allow list of what a relay thread was measured to call (`strace` of a relay thread
//!   relaying UDP and TCP allocations, their setup, expiry and removal): batched datagram I/O,
//!   epoll, its eventfd, sleeping, futexes, memory for its tables, and what a thread needs to
//!   log, exit or abort, and take part in the privilege drop. It cannot open a file, create,
//!   bind or connect a socket, start a thread or a program, or raise a capability.
//!
//! A forbidden call fails with `EPERM` in both classes rather than killing the process: a
//! rare path missed by the measurement then fails one operation instead of every role.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

/// The thread classes; each has one filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadClass {
    /// Every thread (installed before the first thread exists): a deny list.
    Process,
    /// Media relay threads (stacked on `Process`): an allow list.
    Relay,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("seccomp: this architecture ({0}) has no filter")]
    Arch(&'static str),
    #[error("seccomp: building the {class:?} filter: {reason}")]
    Build { class: ThreadClass, reason: String },
    #[error("seccomp: setting no_new_privs: {0}")]
    NoNewPrivs(std::io::Error),
    #[error("seccomp: installing the {class:?} filter: {reason}")]
    Install { class: ThreadClass, reason: String },
}

/// Calls no edged thread makes; an intruder's first tools.
const PROCESS_DENIED: &[i64] = &[
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_fanotify_init,
    libc::SYS_personality,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_vhangup,
    libc::SYS_mknodat,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_fork,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_vfork,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_mknod,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// What a relay thread calls, measured with `strace -f -p <relay tid>` while coturn's
/// `turnutils_uclient` relayed UDP and TCP allocations through it, allocations expired and
/// were removed (see the crate's README); plus exit, abort and logging paths.
const RELAY_ALLOWED: &[i64] = &[
    // Batched datagram I/O on sockets the control plane created.
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_recvfrom,
    libc::SYS_sendmmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_shutdown,
    // Readiness and wake-ups: epoll, the command eventfd, descriptors handed over or closed.
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_fcntl,
    libc::SYS_close,
    // Pacing and locks.
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_gettimeofday,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    // Memory for tables that grow on a command (never per packet).
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_getrandom,
    // The privilege drop: it runs after the relay threads exist (they bind the relay ports
    // first), and glibc has every thread repeat setuid/setgid/setgroups; a thread that is
    // refused aborts the process. After the drop these grant nothing: every id of every
    // thread is the service account's and no thread holds a capability, so the calls can
    // only switch among ids the thread already has.
    libc::SYS_setgroups,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    // Thread exit, signal handlers (glibc's setxid broadcast is one), panics and abort.
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_tgkill,
    libc::SYS_rseq,
    libc::SYS_restart_syscall,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

impl ThreadClass {
    /// The class's syscall list: denied for `Process`, allowed for `Relay`.
    pub fn syscalls(self) -> &'static [i64] {
        match self {
            ThreadClass::Process => PROCESS_DENIED,
            ThreadClass::Relay => RELAY_ALLOWED,
        }
    }

    fn actions(self) -> (SeccompAction, SeccompAction) {
        let refuse = SeccompAction::Errno(libc::EPERM as u32);
        match self {
            // (on a call not in the list, on a call in the list)
            ThreadClass::Process => (SeccompAction::Allow, refuse),
            ThreadClass::Relay => (refuse, SeccompAction::Allow),
        }
    }

    /// The class's filter compiled to BPF for this machine's architecture.
    pub fn program(self) -> Result<BpfProgram, SandboxError> {
        let arch = TargetArch::try_from(std::env::consts::ARCH)
            .map_err(|_| SandboxError::Arch(std::env::consts::ARCH))?;
        let rules: BTreeMap<i64, Vec<SeccompRule>> =
            self.syscalls().iter().map(|&nr| (nr, Vec::new())).collect();
        let (mismatch, matched) = self.actions();
        let filter = SeccompFilter::new(rules, mismatch, matched, arch).map_err(|e| {
            SandboxError::Build {
                class: self,
                reason: e.to_string(),
            }
        })?;
        filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| SandboxError::Build {
                class: self,
                reason: e.to_string(),
            })
    }

    /// Installs the class's filter on the calling thread; threads it spawns later inherit it.
    /// Sets `no_new_privs` on the thread first (the kernel requires it of an unprivileged
    /// caller; edged has set it process-wide already).
    pub fn install(self) -> Result<(), SandboxError> {
        let program = self.program()?;
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| SandboxError::NoNewPrivs(std::io::Error::from(e)))?;
        seccompiler::apply_filter(&program).map_err(|e| SandboxError::Install {
            class: self,
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_compiles_for_this_machine() {
        for class in [ThreadClass::Process, ThreadClass::Relay] {
            let program = class.program().expect("compiles");
            assert!(program.len() > class.syscalls().len(), "{class:?}");
        }
    }

    #[test]
    fn no_call_is_both_denied_to_every_thread_and_needed_by_the_relay() {
        for nr in RELAY_ALLOWED {
            assert!(!PROCESS_DENIED.contains(nr), "syscall {nr}");
        }
    }

    #[test]
    fn the_relay_may_not_open_files_make_sockets_or_start_anything() {
        for nr in [
            libc::SYS_openat,
            libc::SYS_socket,
            libc::SYS_bind,
            libc::SYS_connect,
            libc::SYS_capset,
            libc::SYS_execve,
            libc::SYS_clone,
            libc::SYS_clone3,
        ] {
            assert!(!RELAY_ALLOWED.contains(&nr), "syscall {nr}");
        }
    }
}
