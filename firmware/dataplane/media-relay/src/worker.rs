//! One relay thread: an epoll loop over its listener shards, its relay sockets and a
//! wake-up eventfd, with the command queue drained on every turn.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::channel;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::eventfd::EventFd;

use crate::command::Command;
use crate::counters::ThreadCounters;
use crate::forward::{build_data_indication, classify_stun, ClientPacket, PAYLOAD_OFFSET};
use crate::plane::{ControlPacket, PeerGuard};
use crate::table::{Allocation, Bucket, Table};

const TOKEN_WAKE: u64 = u64::MAX;
/// Relay socket tokens start here; below are listener indexes.
const RELAY_BASE: u64 = 1 << 32;
/// Datagrams read from a listener shard per readiness event before looking at the other
/// sockets, so a busy listener cannot starve the relay sockets.
const BATCH: usize = 64;
/// Datagrams read from a relay socket per readiness event. One: a relay socket carries one
/// flow (50 packets/s for audio), so a second read nearly always returns EAGAIN, a wasted
/// system call per packet; level-triggered epoll reports the socket again if more is queued.
const PEER_BATCH: usize = 1;
/// Largest UDP payload plus the Data indication head room.
const BUF_LEN: usize = PAYLOAD_OFFSET + 65_536 + 4;

pub(crate) struct Worker {
    pub index: usize,
    pub epoll: Epoll,
    pub wake: Arc<EventFd>,
    pub commands: rtrb::Consumer<Command>,
    pub listeners: Vec<UdpSocket>,
    pub control: tokio::sync::mpsc::Sender<ControlPacket>,
    pub counters: ThreadCounters,
    pub stop: Arc<AtomicBool>,
    pub guard: Arc<PeerGuard>,
    pub allocations: Arc<std::sync::atomic::AtomicUsize>,
}

/// xorshift64*: Data indication transaction ids only need to differ, not to be secret.
struct Ids(u64);

impl Ids {
    #[inline]
    fn next(&mut self) -> [u8; 12] {
        let mut out = [0u8; 12];
        for chunk in out.chunks_mut(6) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_be_bytes();
            chunk.copy_from_slice(&v[..6]);
        }
        out
    }
}

impl Worker {
    pub fn run(mut self) {
        let mut table = Table::default();
        let mut buf = vec![0u8; BUF_LEN];
        let mut events = [EpollEvent::empty(); 256];
        let seed = (self.index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        let mut ids = Ids(seed | 1);
        while !self.stop.load(Ordering::Relaxed) {
            let ready = match self.epoll.wait(&mut events, 200u16) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => {
                    tracing::error!(target: "av_edge", thread = self.index, "relay thread epoll failed: {e}");
                    break;
                }
            };
            self.apply_commands(&mut table);
            let now = Instant::now();
            for ev in &events[..ready] {
                match ev.data() {
                    TOKEN_WAKE => {
                        let _ = self.wake.read();
                    }
                    t if t >= RELAY_BASE => self.on_peer_datagrams(
                        (t - RELAY_BASE) as usize,
                        &mut table,
                        &mut buf,
                        &mut ids,
                        now,
                    ),
                    t => self.on_client_datagrams(t as usize, &mut table, &mut buf, now),
                }
            }
        }
        tracing::debug!(target: "av_edge", thread = self.index, "relay thread stopped");
    }

    fn apply_commands(&mut self, table: &mut Table) {
        while let Ok(cmd) = self.commands.pop() {
            match cmd {
                Command::Install {
                    id,
                    client,
                    listener,
                    relay,
                    bandwidth_bytes_per_sec,
                } => {
                    let now = Instant::now();
                    let alloc = Allocation {
                        id,
                        client,
                        listener,
                        relay,
                        permissions: Vec::with_capacity(4),
                        channels: Vec::with_capacity(4),
                        to_peer: Bucket::new(bandwidth_bytes_per_sec, now),
                        to_client: Bucket::new(bandwidth_bytes_per_sec, now),
                    };
                    let slot = table.insert(alloc);
                    let ev = EpollEvent::new(EpollFlags::EPOLLIN, RELAY_BASE + slot as u64);
                    let watched = match table.slot_mut(slot) {
                        Some(a) => self.epoll.add(a.relay.as_fd(), ev),
                        None => continue,
                    };
                    if let Err(e) = watched {
                        tracing::warn!(target: "av_edge", "cannot watch relay socket of allocation {id}: {e}");
                        table.remove(id);
                    }
                }
                Command::Permit { id, peer } => {
                    if let Some(a) = table.by_id_mut(id) {
                        if !a.permissions.contains(&peer) {
                            a.permissions.push(peer);
                        }
                    }
                }
                Command::Revoke { id, peer } => {
                    if let Some(a) = table.by_id_mut(id) {
                        a.permissions.retain(|p| *p != peer);
                    }
                }
                Command::Bind { id, channel, peer } => {
                    if let Some(a) = table.by_id_mut(id) {
                        a.channels.retain(|(c, _)| *c != channel);
                        a.channels.push((channel, peer));
                    }
                }
                Command::Unbind { id, channel } => {
                    if let Some(a) = table.by_id_mut(id) {
                        a.channels.retain(|(c, _)| *c != channel);
                    }
                }
                Command::Remove { id } => {
                    if let Some(a) = table.remove(id) {
                        let _ = self.epoll.delete(a.relay.as_fd());
                    }
                }
            }
        }
        self.allocations.store(table.len(), Ordering::Relaxed);
    }

    /// Datagrams on a listener shard: ChannelData and Send go out here, other STUN goes
    /// to the control plane.
    fn on_client_datagrams(
        &mut self,
        listener: usize,
        table: &mut Table,
        buf: &mut [u8],
        now: Instant,
    ) {
        let Some(sock) = self.listeners.get(listener) else {
            return;
        };
        for _ in 0..BATCH {
            let (len, from) = match sock.recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => continue,
            };
            let packet = &buf[..len];
            let Some(&first) = packet.first() else {
                continue;
            };
            if channel::is_channel_data(first) {
                let Some((number, data)) = channel::parse_datagram(packet) else {
                    self.counters.dropped_malformed.inc();
                    continue;
                };
                let Some(alloc) = table.by_client_mut(listener, from) else {
                    self.counters.dropped_no_allocation.inc();
                    continue;
                };
                let Some(peer) = alloc.channel_peer(number) else {
                    self.counters.dropped_no_permission.inc();
                    continue;
                };
                if !alloc.permits(peer.ip()) {
                    self.counters.dropped_no_permission.inc();
                    continue;
                }
                if !alloc.to_peer.take(data.len(), now) {
                    self.counters.dropped_bandwidth.inc();
                    continue;
                }
                send(
                    &alloc.relay,
                    data,
                    peer,
                    &self.counters.to_peer_packets,
                    &self.counters.to_peer_bytes,
                    &self.counters.dropped_send_error,
                );
                continue;
            }
            if first >> 6 != 0 {
                self.counters.dropped_malformed.inc();
                continue;
            }
            match classify_stun(packet) {
                ClientPacket::Send(peer, data) => {
                    let peer = crate::address::normalise(peer);
                    let Some(alloc) = table.by_client_mut(listener, from) else {
                        self.counters.dropped_no_allocation.inc();
                        continue;
                    };
                    if !alloc.permits(peer.ip()) || !self.guard.allows(peer) {
                        self.counters.dropped_no_permission.inc();
                        continue;
                    }
                    if !alloc.to_peer.take(data.len(), now) {
                        self.counters.dropped_bandwidth.inc();
                        continue;
                    }
                    send(
                        &alloc.relay,
                        data,
                        peer,
                        &self.counters.to_peer_packets,
                        &self.counters.to_peer_bytes,
                        &self.counters.dropped_send_error,
                    );
                }
                ClientPacket::BadSend => self.counters.dropped_malformed.inc(),
                ClientPacket::Control => {
                    let msg = ControlPacket {
                        shard: self.index,
                        listener,
                        from,
                        bytes: packet.to_vec(),
                    };
                    match self.control.try_send(msg) {
                        Ok(()) => self.counters.control_forwarded.inc(),
                        Err(_) => self.counters.control_queue_full.inc(),
                    }
                }
            }
        }
    }

    /// Datagrams on a relay socket: to the client as ChannelData when a channel is bound,
    /// as a Data indication otherwise; nothing without a permission.
    fn on_peer_datagrams(
        &mut self,
        slot: usize,
        table: &mut Table,
        buf: &mut [u8],
        ids: &mut Ids,
        now: Instant,
    ) {
        let Some(alloc) = table.slot_mut(slot) else {
            return;
        };
        let Some(client_sock) = self.listeners.get(alloc.listener) else {
            return;
        };
        for _ in 0..PEER_BATCH {
            let (len, from) = match alloc.relay.recv_from(&mut buf[PAYLOAD_OFFSET..BUF_LEN - 4]) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => continue,
            };
            let from = crate::address::normalise(from);
            if !alloc.permits(from.ip()) {
                self.counters.dropped_no_permission.inc();
                continue;
            }
            if !alloc.to_client.take(len, now) {
                self.counters.dropped_bandwidth.inc();
                continue;
            }
            let frame = match alloc.peer_channel(from) {
                Some(number) => {
                    let start = PAYLOAD_OFFSET - channel::HEADER_LEN;
                    if channel::write_header(&mut buf[start..], number, len).is_none() {
                        continue;
                    }
                    start..PAYLOAD_OFFSET + len
                }
                None => match build_data_indication(buf, len, from, &ids.next()) {
                    Some(r) => r,
                    None => continue,
                },
            };
            send(
                client_sock,
                &buf[frame],
                alloc.client,
                &self.counters.to_client_packets,
                &self.counters.to_client_bytes,
                &self.counters.dropped_send_error,
            );
        }
    }
}

#[inline]
fn send(
    sock: &UdpSocket,
    bytes: &[u8],
    to: SocketAddr,
    packets: &edged_metrics::Counter,
    octets: &edged_metrics::Counter,
    errors: &edged_metrics::Counter,
) {
    match sock.send_to(bytes, to) {
        Ok(_) => {
            packets.inc();
            octets.add(bytes.len() as u64);
        }
        Err(_) => errors.inc(),
    }
}
