//! Starting the relay threads and talking to them from the control plane.

use edged_sandbox::ThreadClass;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use edged_metrics::Registry;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use socket2::{Domain, Protocol, Socket, Type};

use crate::command::Command;
use crate::command_queue::CommandSender;
use crate::counters::ThreadCounters;
use crate::worker::Worker;

/// Commands queued per thread before the control plane sees back-pressure.
const COMMAND_QUEUE: usize = 4096;

/// What the data plane is started with.
#[derive(Debug, Clone)]
pub struct PlaneConfig {
    /// Relay threads; 0 means one per core but core 0 (one thread on a single core).
    pub threads: usize,
    /// Cores to pin the threads to, in order; empty means automatic.
    pub cores: Vec<usize>,
    /// Client-facing UDP listeners (port 0 picks one, shared by every shard).
    pub listeners: Vec<SocketAddr>,
    /// Kernel socket buffer size for listener shards, in bytes.
    pub socket_buffer_bytes: usize,
    /// Never forwarded to: the appliance's own addresses outside the relay port range.
    pub guard: PeerGuard,
    /// Shortest relay-thread turn that moved traffic, at light and at heavy load: a light
    /// turn is followed by a sleep so the next handles more datagrams (see the worker).
    /// Zero turns pacing off.
    pub pacing: (std::time::Duration, std::time::Duration),
    pub metrics: Registry,
}

/// Real-time options for the relay threads, both off by default: they need privileges
/// (CAP_SYS_NICE, CAP_IPC_LOCK or root) and a misconfigured real-time thread can starve a
/// core, so an operator opts in. When not permitted, the plane logs it and runs without.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Realtime {
    /// SCHED_FIFO priority (1-99) for the relay threads: a relay thread then preempts
    /// ordinary work on its core as soon as a packet arrives.
    pub fifo_priority: Option<u8>,
    /// `mlockall(MCL_CURRENT | MCL_FUTURE)`: no page fault on the packet path, ever.
    pub lock_memory: bool,
}

/// The data plane's last line of defence on the Send path: even with a permission for the
/// appliance's own address, only relay ports (client to client) are reachable there.
#[derive(Debug, Clone, Default)]
pub struct PeerGuard {
    pub own_addresses: Vec<IpAddr>,
    pub relay_ports: Option<RangeInclusive<u16>>,
}

impl PeerGuard {
    #[inline]
    pub fn allows(&self, peer: SocketAddr) -> bool {
        if peer.port() == 0 {
            return false;
        }
        if self.own_addresses.contains(&peer.ip()) {
            return self
                .relay_ports
                .as_ref()
                .is_some_and(|r| r.contains(&peer.port()));
        }
        true
    }
}

/// A STUN message a relay thread hands to the control plane.
#[derive(Debug)]
pub struct ControlPacket {
    pub shard: usize,
    pub listener: usize,
    pub from: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Index into `PlaneConfig::listeners`.
        listener: usize,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("relay thread setup failed: {0}")]
    Setup(String),
    #[error("relay thread {0} command queue is full")]
    QueueFull(usize),
    #[error("no relay thread {0}")]
    NoShard(usize),
}

struct ShardHandle {
    commands: Mutex<CommandSender>,
    wake: Arc<EventFd>,
    /// Clones of the thread's listener sockets: the control plane answers STUN requests
    /// from the very address the client sent them to.
    senders: Vec<UdpSocket>,
    allocations: Arc<AtomicUsize>,
}

/// The running data plane.
pub struct RelayPlane {
    shards: Vec<ShardHandle>,
    listeners: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn bind_shard(addr: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    if addr.port() == 0 {
        return bind_unused_port(addr, buffer);
    }
    bind_reuse_port(addr, buffer)
}

/// Port 0 with SO_REUSEPORT is unsafe: the kernel may hand out a port another
/// SO_REUSEPORT socket of the same user already holds, and the two would then share
/// traffic. A plain socket first proves a port is unused; the shard then takes it. The
/// window between the two binds is tiny and a lost race is retried.
fn bind_unused_port(addr: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    let mut last = None;
    for _ in 0..16 {
        let probe = std::net::UdpSocket::bind(addr)?;
        let port = probe.local_addr()?.port();
        drop(probe);
        match bind_reuse_port(SocketAddr::new(addr.ip(), port), buffer) {
            Ok(socket) => return Ok(socket),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse)))
}

fn bind_reuse_port(addr: SocketAddr, buffer: usize) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    // Best effort: the kernel caps these at net.core.rmem_max/wmem_max.
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Threads and cores: every core but core 0 when there are several.
fn placement(threads: usize, cores: &[usize]) -> Vec<Option<usize>> {
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    let count = match threads {
        0 if available > 1 => available - 1,
        0 => 1,
        n => n,
    };
    (0..count)
        .map(|i| {
            if !cores.is_empty() {
                Some(cores[i % cores.len()])
            } else if available > 1 {
                Some(1 + i % (available - 1))
            } else {
                None
            }
        })
        .collect()
}

/// Locks the process's memory, present and future; logs when not permitted.
fn lock_memory() {
    // SAFETY: mlockall takes flags only and touches no memory of ours.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if rc == 0 {
        tracing::info!(target: "media_relay", "relay memory locked (mlockall)");
    } else {
        let e = std::io::Error::last_os_error();
        tracing::warn!(target: "media_relay", "cannot lock memory (mlockall), running unlocked: {e}");
    }
}

/// Puts the calling relay thread under SCHED_FIFO; logs when not permitted.
fn set_fifo(thread: usize, priority: u8) {
    // SAFETY: sched_param is a plain C struct for which all-zero bytes are a valid value
    // (musl adds sporadic-server fields beside sched_priority; they stay zero).
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = i32::from(priority.clamp(1, 99));
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        tracing::info!(target: "media_relay", thread, priority = param.sched_priority, "relay thread runs SCHED_FIFO");
    } else {
        let e = std::io::Error::last_os_error();
        tracing::warn!(target: "media_relay", thread, "SCHED_FIFO not permitted, relay thread stays SCHED_OTHER: {e}");
    }
}

impl RelayPlane {
    /// Binds every listener shard, starts the threads and returns. STUN messages other than
    /// Send indications go to `control`.
    pub fn start(
        config: PlaneConfig,
        control: tokio::sync::mpsc::Sender<ControlPacket>,
    ) -> Result<RelayPlane, PlaneError> {
        Self::start_with(config, control, Realtime::default())
    }

    /// `start` with real-time scheduling and memory locking as asked in `realtime`.
    pub fn start_with(
        config: PlaneConfig,
        control: tokio::sync::mpsc::Sender<ControlPacket>,
        realtime: Realtime,
    ) -> Result<RelayPlane, PlaneError> {
        if realtime.lock_memory {
            lock_memory();
        }
        let placement = placement(config.threads, &config.cores);
        // Shard 0 binds first so port 0 resolves to one port the other shards then share.
        let mut bound: Vec<SocketAddr> = config.listeners.clone();
        let mut sockets: Vec<Vec<UdpSocket>> = Vec::new();
        for _ in &placement {
            let mut mine = Vec::new();
            for (listener, addr) in bound.iter_mut().enumerate() {
                let sock = bind_shard(*addr, config.socket_buffer_bytes).map_err(|source| {
                    PlaneError::Bind {
                        listener,
                        addr: *addr,
                        source,
                    }
                })?;
                if addr.port() == 0 {
                    *addr = sock.local_addr().map_err(|source| PlaneError::Bind {
                        listener,
                        addr: *addr,
                        source,
                    })?;
                }
                mine.push(sock);
            }
            sockets.push(mine);
        }

        let stop = Arc::new(AtomicBool::new(false));
        let guard = Arc::new(config.guard.clone());
        let setup = |e: std::io::Error| PlaneError::Setup(e.to_string());
        let nix_setup = |e: nix::errno::Errno| PlaneError::Setup(e.to_string());
        let mut shards = Vec::new();
        let mut workers = Vec::new();
        for (index, listeners) in sockets.into_iter().enumerate() {
            let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(nix_setup)?;
            let wake = Arc::new(
                EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                    .map_err(nix_setup)?,
            );
            epoll
                .add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, u64::MAX))
                .map_err(nix_setup)?;
            let mut senders = Vec::new();
            for (i, s) in listeners.iter().enumerate() {
                epoll
                    .add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
                    .map_err(nix_setup)?;
                senders.push(s.try_clone().map_err(setup)?);
            }
            let (producer, consumer) = rtrb::RingBuffer::new(COMMAND_QUEUE);
            let allocations = Arc::new(AtomicUsize::new(0));
            shards.push(ShardHandle {
                commands: Mutex::new(CommandSender::new(producer)),
                wake: wake.clone(),
                senders,
                allocations: allocations.clone(),
            });
            workers.push(Worker {
                index,
                epoll,
                wake,
                commands: consumer,
                listeners,
                control: control.clone(),
                counters: ThreadCounters::new(&config.metrics, index),
                stop: stop.clone(),
                guard: guard.clone(),
                allocations,
                pacing: config.pacing,
            });
        }

        let mut threads = Vec::new();
        for (worker, core) in workers.into_iter().zip(placement) {
            let index = worker.index;
            let handle = std::thread::Builder::new()
                .name(format!("relay-{index}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                            tracing::warn!(target: "media_relay", thread = index, core, "cannot pin relay thread");
                        }
                    }
                    if let Some(priority) = realtime.fifo_priority {
                        set_fifo(index, priority);
                    }
                    // Last, after pinning and scheduling (which the filter forbids): from
                    // here the thread can only relay (edged_sandbox::ThreadClass::Relay).
                    let sandboxed = match ThreadClass::Relay.install() {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(target: "media_relay", thread = index, "relay thread runs without its syscall filter: {e}");
                            false
                        }
                    };
                    tracing::info!(target: "media_relay", thread = index, ?core, sandboxed, "relay thread started");
                    worker.run();
                })
                .map_err(setup)?;
            threads.push(handle);
        }
        Ok(RelayPlane {
            shards,
            listeners: bound,
            stop,
            threads: Mutex::new(threads),
        })
    }

    /// The bound listener addresses, in the order of `PlaneConfig::listeners`.
    pub fn listener_addrs(&self) -> &[SocketAddr] {
        &self.listeners
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Allocations installed on each thread, as last seen by the thread.
    pub fn allocations_per_shard(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|s| s.allocations.load(Ordering::Relaxed))
            .collect()
    }

    /// Hands a change to a relay thread and wakes it. A full queue refuses new work but
    /// never a removal (Remove, Revoke, Unbind): that waits for room, see
    /// [`retry_removals`](Self::retry_removals).
    pub fn command(&self, shard: usize, command: Command) -> Result<(), PlaneError> {
        let handle = self.shards.get(shard).ok_or(PlaneError::NoShard(shard))?;
        let sent = handle
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(command);
        let _ = handle.wake.write(1);
        sent.map_err(|_| PlaneError::QueueFull(shard))
    }

    /// Moves removals that found the queue full into it as far as there is room now, and
    /// wakes the threads that got some; the removals still waiting. The control plane calls
    /// this periodically (every command retries too).
    pub fn retry_removals(&self) -> usize {
        let mut waiting = 0;
        for s in &self.shards {
            let mut commands = s.commands.lock().unwrap_or_else(PoisonError::into_inner);
            if commands.backlog() == 0 {
                continue;
            }
            commands.retry();
            waiting += commands.backlog();
            drop(commands);
            let _ = s.wake.write(1);
        }
        waiting
    }

    /// Sends a control-plane answer from a listener shard's address.
    pub fn send_from_listener(
        &self,
        shard: usize,
        listener: usize,
        bytes: &[u8],
        to: SocketAddr,
    ) -> std::io::Result<()> {
        let sock = self
            .shards
            .get(shard)
            .and_then(|s| s.senders.get(listener))
            .ok_or_else(|| std::io::Error::other("no such listener shard"))?;
        sock.send_to(bytes, to).map(|_| ())
    }

    /// Stops and joins the threads; their sockets close with them.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in &self.shards {
            let _ = s.wake.write(1);
        }
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for RelayPlane {
    fn drop(&mut self) {
        self.shutdown();
    }
}
