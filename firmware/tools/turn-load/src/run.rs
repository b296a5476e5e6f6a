//! One load run: set up the flows, send at the configured rate in both directions for the
//! configured time, collect what arrived.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use crate::client::{ClientError, Credentials, TurnClient};
use crate::srtp::{SrtpReceiver, SrtpSender, MIN_PACKET};
use crate::stats::{Direction, Jitter};

/// Bytes of the measurement header at the start of every payload: flow, sequence, send
/// time in nanoseconds since the run started.
pub const STAMP_LEN: usize = 16;
const CHANNEL: u16 = 0x4000;

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub server: SocketAddr,
    pub credentials: Credentials,
    pub allocations: usize,
    /// Packets per second per flow and direction; 0 sends as fast as possible.
    pub rate_pps: u32,
    /// Payload bytes per packet (at least the 16-byte stamp).
    pub size: usize,
    pub duration: Duration,
    pub client_ip: IpAddr,
    pub peer_ip: IpAddr,
    pub sender_threads: usize,
    /// Only one direction (client to peer): for a pure forwarding measurement.
    pub one_way: bool,
}

/// What the flows carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// Stamped filler: cheapest, for load measurements.
    Plain,
    /// Real SRTP (AES_CM_128_HMAC_SHA1_80) checked packet by packet at the far side;
    /// packets are at least [`MIN_PACKET`] bytes.
    Srtp,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub media: Media,
    pub allocations: usize,
    pub setup: Duration,
    pub sending: Duration,
    pub to_peer: Direction,
    pub to_client: Direction,
}

struct Flow {
    client: Arc<UdpSocket>,
    peer: Arc<UdpSocket>,
    relayed: SocketAddr,
}

/// Peer sockets are shared by flows (a peer serves many callers, and one descriptor per
/// flow would exhaust the descriptor limit long before 10,000 allocations).
const PEER_SOCKETS: usize = 64;

fn bind(ip: IpAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(SocketAddr::new(ip, 0))
}

/// Sets up every flow: allocation and channel to its own peer socket.
fn setup(cfg: &LoadConfig) -> Result<(Vec<Flow>, Vec<TurnClient>), ClientError> {
    let mut flows = Vec::with_capacity(cfg.allocations);
    let mut clients = Vec::with_capacity(cfg.allocations);
    let mut peers = Vec::new();
    for _ in 0..cfg.allocations.clamp(1, PEER_SOCKETS) {
        let peer = bind(cfg.peer_ip)?;
        peer.set_nonblocking(true)?;
        peers.push(Arc::new(peer));
    }
    for i in 0..cfg.allocations {
        let client_sock = Arc::new(bind(cfg.client_ip)?);
        let peer = peers[i % peers.len()].clone();
        let mut turn = TurnClient::new(client_sock.clone(), cfg.server, &cfg.credentials)?;
        let relayed = turn.allocate(600)?;
        turn.bind_channel(CHANNEL, peer.local_addr()?)?;
        client_sock.set_nonblocking(true)?;
        flows.push(Flow {
            client: client_sock,
            peer,
            relayed,
        });
        clients.push(turn);
    }
    Ok((flows, clients))
}

fn stamp(buf: &mut [u8], flow: u32, seq: u32, t_ns: u64) {
    buf[0..4].copy_from_slice(&flow.to_be_bytes());
    buf[4..8].copy_from_slice(&seq.to_be_bytes());
    buf[8..16].copy_from_slice(&t_ns.to_be_bytes());
}

fn read_stamp(buf: &[u8]) -> Option<(u32, u64)> {
    let flow = u32::from_be_bytes(buf.get(0..4)?.try_into().ok()?);
    let t = u64::from_be_bytes(buf.get(8..16)?.try_into().ok()?);
    Some((flow, t))
}

struct Sender {
    flows: Vec<(u32, Arc<UdpSocket>, Arc<UdpSocket>, SocketAddr)>,
    /// SRTP mode: protects this thread's packets.
    srtp: Option<SrtpSender>,
}

/// Fills `frame` (exactly `frame.len()` bytes) with the packet `seq` of `flow`: the bare
/// stamp and filler, or an SRTP packet of the same size carrying the stamp.
fn fill(
    frame: &mut [u8],
    srtp: Option<&mut SrtpSender>,
    flow: u32,
    to_client: bool,
    seq: u32,
    t_ns: u64,
) -> bool {
    match srtp {
        None => {
            stamp(frame, flow, seq, t_ns);
            true
        }
        Some(tx) => {
            let mut s = [0u8; STAMP_LEN];
            stamp(&mut s, flow, seq, t_ns);
            match tx.protect(flow, to_client, seq, &s, frame.len()) {
                Ok(packet) if packet.len() == frame.len() => {
                    frame.copy_from_slice(&packet);
                    true
                }
                _ => false,
            }
        }
    }
}

/// Sends on a fixed schedule: event j goes to flow j % n at start + j * period / n, so
/// flows are spread evenly over the period instead of bursting together.
fn send_loop(
    mut s: Sender,
    cfg: &LoadConfig,
    epoch: Instant,
    until: Instant,
    sent_to_peer: &AtomicU64,
    sent_to_client: &AtomicU64,
) {
    let n = s.flows.len() as u64;
    if n == 0 {
        return;
    }
    let size = packet_size(cfg, s.srtp.is_some());
    let mut client_frame = vec![0u8; 4 + size];
    client_frame[0..2].copy_from_slice(&CHANNEL.to_be_bytes());
    client_frame[2..4].copy_from_slice(&(size as u16).to_be_bytes());
    let mut peer_frame = vec![0u8; size];
    let step_ns = if cfg.rate_pps == 0 {
        0
    } else {
        1_000_000_000 / u64::from(cfg.rate_pps) / n
    };
    let start = Instant::now();
    let (mut to_peer, mut to_client) = (0u64, 0u64);
    let mut j: u64 = 0;
    loop {
        let due = start + Duration::from_nanos(j * step_ns);
        let now = Instant::now();
        if now >= until {
            break;
        }
        if due > now {
            let wait = due - now;
            if wait > Duration::from_micros(200) {
                std::thread::sleep(wait - Duration::from_micros(100));
            }
            continue;
        }
        let (flow, client, peer, relayed) = &s.flows[(j % n) as usize];
        let seq = (j / n) as u32;
        let t = epoch.elapsed().as_nanos() as u64;
        if fill(
            &mut client_frame[4..],
            s.srtp.as_mut(),
            *flow,
            false,
            seq,
            t,
        ) && client.send_to(&client_frame, cfg.server).is_ok()
        {
            to_peer += 1;
        }
        if !cfg.one_way
            && fill(&mut peer_frame, s.srtp.as_mut(), *flow, true, seq, t)
            && peer.send_to(&peer_frame, *relayed).is_ok()
        {
            to_client += 1;
        }
        j += 1;
    }
    sent_to_peer.fetch_add(to_peer, Ordering::Relaxed);
    sent_to_client.fetch_add(to_client, Ordering::Relaxed);
}

/// Payload bytes per packet: at least the stamp, and in SRTP mode a whole SRTP packet.
fn packet_size(cfg: &LoadConfig, srtp: bool) -> usize {
    let floor = if srtp { MIN_PACKET } else { STAMP_LEN };
    cfg.size.max(floor)
}

/// Receives on every socket until `stop`, then drains for a moment.
fn receive_loop(
    sockets: Vec<(Arc<UdpSocket>, bool)>,
    mut srtp: Option<SrtpReceiver>,
    epoch: Instant,
    stop: &AtomicBool,
    expected: usize,
    flows: usize,
) -> std::io::Result<(Direction, Direction)> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(std::io::Error::from)?;
    for (i, (s, _)) in sockets.iter().enumerate() {
        epoll
            .add(s.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
            .map_err(std::io::Error::from)?;
    }
    let mut to_peer = Direction {
        latencies_us: Vec::with_capacity(expected),
        ..Default::default()
    };
    let mut to_client = Direction {
        latencies_us: Vec::with_capacity(expected),
        ..Default::default()
    };
    // Per flow: (to peer, to client).
    let mut jitter = vec![(Jitter::default(), Jitter::default()); flows];
    let mut events = vec![EpollEvent::empty(); 256];
    let mut buf = vec![0u8; 65_536];
    let mut idle_since: Option<Instant> = None;
    loop {
        let n = epoll.wait(&mut events, 50u16).unwrap_or(0);
        if n == 0 && stop.load(Ordering::Relaxed) {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(300) {
                break;
            }
        } else {
            idle_since = None;
        }
        for ev in &events[..n] {
            let i = ev.data() as usize;
            let Some((sock, is_client)) = sockets.get(i) else {
                continue;
            };
            while let Ok(len) = sock.recv(&mut buf) {
                let now = epoch.elapsed().as_nanos() as u64;
                // Clients receive ChannelData (4-byte header), peers the bare payload.
                let payload = if *is_client {
                    buf.get(4..len)
                } else {
                    buf.get(..len)
                };
                let stamped = match srtp.as_mut() {
                    // A packet that fails the SRTP check is counted there and measures
                    // nothing: its stamp cannot be trusted.
                    Some(rx) => payload
                        .and_then(|p| rx.check(p, *is_client))
                        .and_then(|s| read_stamp(&s)),
                    None => payload.and_then(read_stamp),
                };
                let Some((flow, sent_at)) = stamped else {
                    continue;
                };
                let Some(jit) = jitter.get_mut(flow as usize) else {
                    continue;
                };
                let transit_us = (now.saturating_sub(sent_at) / 1000) as i64;
                let (dir, jit) = if *is_client {
                    (&mut to_client, &mut jit.1)
                } else {
                    (&mut to_peer, &mut jit.0)
                };
                dir.received += 1;
                dir.latencies_us
                    .push(transit_us.clamp(0, i64::from(u32::MAX)) as u32);
                jit.update(transit_us);
            }
        }
    }
    for (a, b) in &jitter {
        to_peer.jitter_sum_us += a.value;
        to_peer.jitter_flows += 1;
        to_client.jitter_sum_us += b.value;
        to_client.jitter_flows += 1;
    }
    if let Some(rx) = srtp {
        to_peer.srtp_verified = rx.to_peer.verified;
        to_peer.srtp_failures = rx.to_peer.failures;
        to_client.srtp_verified = rx.to_client.verified;
        to_client.srtp_failures = rx.to_client.failures;
    }
    Ok((to_peer, to_client))
}

/// Runs the load with plain stamped payloads and returns what was measured.
pub fn run(cfg: &LoadConfig) -> Result<Report, ClientError> {
    run_with(cfg, Media::Plain)
}

/// Runs the load carrying `media` and returns what was measured.
pub fn run_with(cfg: &LoadConfig, media: Media) -> Result<Report, ClientError> {
    let srtp = media == Media::Srtp;
    let setup_start = Instant::now();
    let (flows, mut clients) = setup(cfg)?;
    let setup_time = setup_start.elapsed();

    let threads = cfg.sender_threads.max(1);
    let mut senders = Vec::with_capacity(threads);
    for _ in 0..threads {
        senders.push(Sender {
            flows: Vec::new(),
            srtp: if srtp { Some(SrtpSender::new()?) } else { None },
        });
    }
    let receiver_srtp = if srtp {
        Some(SrtpReceiver::new()?)
    } else {
        None
    };
    let mut receive = Vec::with_capacity(flows.len() + PEER_SOCKETS);
    for (i, f) in flows.iter().enumerate() {
        senders[i % threads]
            .flows
            .push((i as u32, f.client.clone(), f.peer.clone(), f.relayed));
        receive.push((f.client.clone(), true));
        if i < PEER_SOCKETS {
            receive.push((f.peer.clone(), false));
        }
    }
    let flow_count = flows.len();
    let expected = if cfg.rate_pps == 0 {
        1 << 20
    } else {
        (cfg.allocations as u64 * u64::from(cfg.rate_pps) * cfg.duration.as_secs().max(1))
            .min(1 << 24) as usize
    };
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sent_to_peer = Arc::new(AtomicU64::new(0));
    let sent_to_client = Arc::new(AtomicU64::new(0));
    let receiver = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            receive_loop(receive, receiver_srtp, epoch, &stop, expected, flow_count)
        })
    };
    let until = Instant::now() + cfg.duration;
    let send_start = Instant::now();
    std::thread::scope(|scope| {
        for s in senders {
            let (a, b) = (&sent_to_peer, &sent_to_client);
            scope.spawn(move || send_loop(s, cfg, epoch, until, a, b));
        }
    });
    let sending = send_start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut to_peer, mut to_client) = receiver
        .join()
        .map_err(|_| ClientError::BadAnswer("receiver thread panicked".into()))??;
    to_peer.sent = sent_to_peer.load(Ordering::Relaxed);
    to_client.sent = sent_to_client.load(Ordering::Relaxed);
    for c in &mut clients {
        // Best effort: the allocations would expire anyway.
        if c.socket.set_nonblocking(false).is_ok() {
            let _ = c.release();
        }
    }
    Ok(Report {
        media,
        allocations: flows.len(),
        setup: setup_time,
        sending,
        to_peer,
        to_client,
    })
}
