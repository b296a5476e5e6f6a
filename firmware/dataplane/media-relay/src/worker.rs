//! One relay thread: an epoll loop over its listener shards, its relay sockets and a
//! wake-up eventfd, with the command queue drained on every turn.
//!
//! I/O is batched: a ready socket is drained with `recvmmsg` (one call returns everything
//! queued, where reading packet by packet would end with a wasted EAGAIN read). What
//! clients send during a turn collects in a window of up to `CLIENT_WINDOW` datagrams and
//! leaves at the end of the turn, grouped per relay socket and peer: a flow's consecutive
//! payloads go out as one UDP GSO message. Frames back to clients leave through their
//! listener the same way.
//!
//! A turn that moved traffic lasts at least the pacing time (a sleep after a light turn):
//! at a few hundred microseconds, each turn then handles dozens of datagrams instead of
//! one. Fewer wake-ups of this thread, and sends in bursts, which wake each receiver once
//! per burst rather than once per datagram. A busy thread never sleeps: its turns are
//! longer than the pacing time anyway. The pacing adapts to the load (see `Pacing`): when
//! the thread's flows are fast enough that a longer turn holds several datagrams of each,
//! turns stretch to the longest pacing and GSO sends those datagrams together.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use nix::sys::eventfd::EventFd;

use crate::command::Command;
use crate::counters::{Tally, ThreadCounters};
use crate::dont_fragment::DfState;
use crate::forward::{build_data_indication, classify_stun, ClientPacket, PAYLOAD_OFFSET};
use crate::mmsg::{gso_supported, RecvSlots, SendQueue, MAX_PAYLOAD};
use crate::plane::{ControlPacket, PeerGuard};
use crate::table::{family_index, Allocation, Bucket, Table};

const TOKEN_WAKE: u64 = u64::MAX;
/// Relay socket tokens start here: `RELAY_BASE + 2 * slot + family`; below are listener
/// indexes.
const RELAY_BASE: u64 = 1 << 32;
/// Datagrams per `recvmmsg`, and the slots for datagrams from peers.
const BATCH: usize = 64;
/// Datagrams from clients collected per turn before they leave: the wider the window, the
/// more payloads of one flow a GSO message carries under load. It is also what one
/// readiness event of a listener may read before the other sockets get their turn.
const CLIENT_WINDOW: usize = 512;
/// Largest datagram taken from a client: a jumbo frame's payload. Media never comes close;
/// longer datagrams are dropped and counted as `oversize`.
const CLIENT_MAX_PAYLOAD: usize = 9_216;

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
    /// Shortest turn that moved traffic, at light and at heavy load (zero: no pacing).
    pub pacing: (Duration, Duration),
}

/// How often the pacing looks at the packet rate again.
const PACING_REVIEW: Duration = Duration::from_millis(100);
/// Datagrams per flow and turn from which stretching turns to the longest pacing pays:
/// from two on, GSO sends them as one.
const GROUPING_PAYS: f64 = 2.0;

/// Adaptive turn pacing: the short pacing keeps latency low where longer turns would buy
/// nothing (many slow flows, such as 50-packet-per-second audio: a flow has at most one
/// datagram in any turn), the long one lets GSO group the datagrams of fast flows.
struct Pacing {
    light: Duration,
    heavy: Duration,
    current: Duration,
    since: Instant,
    moved: u64,
}

impl Pacing {
    fn new((light, heavy): (Duration, Duration)) -> Self {
        Pacing {
            light,
            heavy: heavy.max(light),
            current: light,
            since: Instant::now(),
            moved: 0,
        }
    }

    /// Counts a turn's datagrams; every `PACING_REVIEW` decides the pacing from the rate
    /// and the number of allocations (flows) the thread carries.
    #[inline]
    fn account(&mut self, moved: u64, now: Instant, flows: usize) {
        self.moved += moved;
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < PACING_REVIEW {
            return;
        }
        let rate = self.moved as f64 / elapsed.as_secs_f64();
        let per_flow_in_heavy_turn = rate * self.heavy.as_secs_f64() / flows.max(1) as f64;
        self.current = if per_flow_in_heavy_turn >= GROUPING_PAYS {
            self.heavy
        } else {
            self.light
        };
        self.since = now;
        self.moved = 0;
    }
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

/// The thread's packet-path state, allocated once when the thread starts.
struct Path {
    table: Table,
    /// Datagrams from clients (listener shards), kept until the turn's flush.
    from_clients: RecvSlots,
    /// Slots of `from_clients` in use this turn.
    client_slots_used: usize,
    /// Datagrams from peers; frames to clients are built in place here and stay until the
    /// turn's `sendmmsg`.
    from_peers: RecvSlots,
    /// Slots of `from_peers` in use this turn.
    peer_slots_used: usize,
    to_clients: SendQueue,
    /// Payloads from `from_clients` on their way to peers.
    to_peers: SendQueue,
    tally: Tally,
    ids: Ids,
    /// One clock read per turn: the bandwidth buckets need no finer time.
    now: Instant,
}

impl Worker {
    pub fn run(mut self) {
        let seed = (self.index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        let gso = self
            .listeners
            .first()
            .is_some_and(|l| gso_supported(l.as_fd()));
        tracing::debug!(target: "media_relay", thread = self.index, gso, "relay thread I/O");
        let mut path = Path {
            table: Table::default(),
            from_clients: RecvSlots::new(CLIENT_WINDOW, CLIENT_MAX_PAYLOAD),
            client_slots_used: 0,
            from_peers: RecvSlots::new(BATCH, MAX_PAYLOAD),
            peer_slots_used: 0,
            to_clients: SendQueue::new(BATCH, gso),
            to_peers: SendQueue::new(CLIENT_WINDOW, gso),
            tally: Tally::default(),
            ids: Ids(seed | 1),
            now: Instant::now(),
        };
        let mut events = [EpollEvent::empty(); 256];
        let mut pacing = Pacing::new(self.pacing);
        while !self.stop.load(Ordering::Relaxed) {
            let ready = match self.epoll.wait(&mut events, 200u16) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => {
                    tracing::error!(target: "media_relay", thread = self.index, "relay thread epoll failed: {e}");
                    break;
                }
            };
            self.apply_commands(&mut path.table);
            path.now = Instant::now();
            for ev in &events[..ready] {
                match ev.data() {
                    TOKEN_WAKE => {
                        let _ = self.wake.read();
                    }
                    t if t >= RELAY_BASE => {
                        let t = t - RELAY_BASE;
                        self.on_peer_datagrams((t >> 1) as usize, (t & 1) as usize, &mut path);
                    }
                    t => self.on_client_datagrams(t as usize, &mut path),
                }
            }
            free_client_window(&mut path);
            self.flush_to_clients(&mut path);
            let moved = path.tally.to_peer_packets + path.tally.to_client_packets;
            path.tally.publish(&self.counters);
            pacing.account(moved, path.now, path.table.len());
            if moved > 0 && !pacing.current.is_zero() {
                let spent = path.now.elapsed();
                if spent < pacing.current {
                    std::thread::sleep(pacing.current - spent);
                }
            }
        }
        tracing::debug!(target: "media_relay", thread = self.index, "relay thread stopped");
    }

    fn apply_commands(&mut self, table: &mut Table) {
        while let Ok(cmd) = self.commands.pop() {
            match cmd {
                Command::Install {
                    id,
                    client,
                    listener,
                    relay,
                    relay_v6,
                    bandwidth_bytes_per_sec,
                } => self.install(
                    table,
                    id,
                    client,
                    listener,
                    relay,
                    relay_v6,
                    bandwidth_bytes_per_sec,
                ),
                Command::Permit { id, peer, ports } => {
                    if let Some(a) = table.by_id_mut(id) {
                        match a.permissions.iter_mut().find(|(p, _)| *p == peer) {
                            Some((_, held)) => *held = ports,
                            None => a.permissions.push((peer, ports)),
                        }
                    }
                }
                Command::Revoke { id, peer } => {
                    if let Some(a) = table.by_id_mut(id) {
                        a.permissions.retain(|(p, _)| *p != peer);
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
                        for relay in a.relays.iter().flatten() {
                            let _ = self.epoll.delete(relay.as_fd());
                        }
                    }
                }
            }
        }
        self.allocations.store(table.len(), Ordering::Relaxed);
    }

    /// Files the relay sockets under their address family and watches them.
    #[allow(clippy::too_many_arguments)]
    fn install(
        &mut self,
        table: &mut Table,
        id: u64,
        client: SocketAddr,
        listener: usize,
        relay: UdpSocket,
        relay_v6: Option<UdpSocket>,
        bandwidth_bytes_per_sec: u64,
    ) {
        let mut relays: [Option<UdpSocket>; 2] = [None, None];
        for sock in std::iter::once(relay).chain(relay_v6) {
            let family = match sock.local_addr() {
                Ok(a) => family_index(a.ip()),
                Err(e) => {
                    tracing::warn!(target: "media_relay", "relay socket of allocation {id} unusable: {e}");
                    return;
                }
            };
            if relays[family].is_some() {
                tracing::warn!(target: "media_relay", "allocation {id} has two relay sockets of one address family; not installed");
                return;
            }
            relays[family] = Some(sock);
        }
        let mut df = [None, None];
        for (state, sock) in df.iter_mut().zip(&relays) {
            let Some(sock) = sock else { continue };
            match DfState::read(sock) {
                Ok(s) => *state = Some(s),
                Err(e) => {
                    tracing::warn!(target: "media_relay", "DF option of allocation {id} unreadable, DONT-FRAGMENT in Send ignored: {e}");
                }
            }
        }
        let now = Instant::now();
        let slot = table.insert(Allocation {
            id,
            client,
            listener,
            relays,
            df,
            permissions: Vec::with_capacity(4),
            channels: Vec::with_capacity(4),
            to_peer: Bucket::new(bandwidth_bytes_per_sec, now),
            to_client: Bucket::new(bandwidth_bytes_per_sec, now),
        });
        let Some(alloc) = table.slot_mut(slot) else {
            return;
        };
        let mut failed = None;
        for (family, relay) in alloc.relays.iter().enumerate() {
            let Some(relay) = relay else { continue };
            let token = RELAY_BASE + 2 * slot as u64 + family as u64;
            if let Err(e) = self
                .epoll
                .add(relay.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            {
                failed = Some(e);
            }
        }
        if let Some(e) = failed {
            tracing::warn!(target: "media_relay", "cannot watch relay socket of allocation {id}: {e}");
            if let Some(a) = table.remove(id) {
                for relay in a.relays.iter().flatten() {
                    let _ = self.epoll.delete(relay.as_fd());
                }
            }
        }
    }

    /// Datagrams on a listener shard: ChannelData and Send go out to peers, other STUN
    /// goes to the control plane.
    fn on_client_datagrams(&mut self, listener: usize, path: &mut Path) {
        let Some(sock) = self.listeners.get(listener) else {
            return;
        };
        let mut budget = CLIENT_WINDOW;
        while budget > 0 {
            if path.client_slots_used == CLIENT_WINDOW {
                // The slots are reused by the next read: everything queued leaves now.
                free_client_window(path);
            }
            let first = path.client_slots_used;
            let want = (CLIENT_WINDOW - first).min(BATCH).min(budget);
            let received = match path.from_clients.recv(sock.as_fd(), first..first + want) {
                Ok(n) => n,
                Err(_) => return,
            };
            path.client_slots_used += received;
            budget -= want;
            if received > 0 {
                path.tally.receive_batches_client += 1;
            }
            for i in first..first + received {
                let (len, from) = path.from_clients.datagram(i);
                let Some(from) = from else { continue };
                if path.from_clients.truncated(i) {
                    path.tally.dropped_oversize += 1;
                    continue;
                }
                let packet = &path.from_clients.slot(i)[PAYLOAD_OFFSET..PAYLOAD_OFFSET + len];
                let Some(out) = self.client_datagram(
                    listener,
                    from,
                    packet,
                    &mut path.table,
                    &mut path.tally,
                    path.now,
                ) else {
                    continue;
                };
                if let Some(df) = out.dont_fragment {
                    set_dont_fragment(path, out.slot, out.family, df);
                }
                let range = PAYLOAD_OFFSET + out.data.start..PAYLOAD_OFFSET + out.data.end;
                let key = relay_key(out.slot, out.family);
                if !path.to_peers.push(i, range, out.peer, key) {
                    path.tally.dropped_send_error += 1;
                }
            }
            if received < want {
                return;
            }
        }
    }

    /// Decides what to do with one datagram from a client: `Some` for a payload to relay
    /// (already checked against permissions and the bandwidth cap).
    #[inline]
    fn client_datagram(
        &self,
        listener: usize,
        from: SocketAddr,
        packet: &[u8],
        table: &mut Table,
        tally: &mut Tally,
        now: Instant,
    ) -> Option<ToPeer> {
        let first = *packet.first()?;
        let (peer, data, send_df) = if channel::is_channel_data(first) {
            let Some((number, data)) = channel::parse_datagram(packet) else {
                tally.dropped_malformed += 1;
                return None;
            };
            let Some(alloc) = table.by_client_mut(listener, from) else {
                tally.dropped_no_allocation += 1;
                return None;
            };
            let Some(peer) = alloc.channel_peer(number) else {
                tally.dropped_no_permission += 1;
                return None;
            };
            if !alloc.permits(peer.ip()) {
                tally.dropped_no_permission += 1;
                return None;
            }
            (peer, data, None)
        } else if first >> 6 != 0 {
            tally.dropped_malformed += 1;
            return None;
        } else {
            match classify_stun(packet) {
                ClientPacket::Send(peer, data, dont_fragment) => {
                    let peer = crate::address::normalise(peer);
                    let Some(alloc) = table.by_client_mut(listener, from) else {
                        tally.dropped_no_allocation += 1;
                        return None;
                    };
                    if !alloc.permits_send_to(peer) || !self.guard.allows(peer) {
                        tally.dropped_no_permission += 1;
                        return None;
                    }
                    (peer, data, Some(dont_fragment))
                }
                ClientPacket::BadSend => {
                    tally.dropped_malformed += 1;
                    return None;
                }
                ClientPacket::Control => {
                    let msg = ControlPacket {
                        shard: self.index,
                        listener,
                        from,
                        bytes: packet.to_vec(),
                    };
                    match self.control.try_send(msg) {
                        Ok(()) => tally.control_forwarded += 1,
                        Err(_) => tally.control_queue_full += 1,
                    }
                    return None;
                }
            }
        };
        let slot = table.client_slot(listener, from)?;
        let alloc = table.slot_mut(slot)?;
        let family = family_index(peer.ip());
        if alloc.relays[family].is_none() {
            // A single-family allocation and a peer of the other family (RFC 6156 answers
            // 443 on the control path; a stray packet is simply dropped).
            tally.dropped_no_permission += 1;
            return None;
        }
        if !alloc.to_peer.take(data.len(), now) {
            tally.dropped_bandwidth += 1;
            return None;
        }
        // `data` lies inside `packet`; its offset is plain address arithmetic.
        let start = data.as_ptr() as usize - packet.as_ptr() as usize;
        // ChannelData leaves as the socket is; a Send indication states what it wants.
        let dont_fragment = match (send_df, &alloc.df[family]) {
            (Some(asked), Some(state)) => Some(state.wanted(asked)),
            _ => None,
        };
        Some(ToPeer {
            slot,
            family,
            peer,
            data: start..start + data.len(),
            dont_fragment,
        })
    }

    /// Datagrams on a relay socket: to the client as ChannelData when a channel is bound,
    /// as a Data indication otherwise; nothing without a permission. The socket is drained
    /// a batch at a time; frames wait in their slots for the turn's `sendmmsg`.
    fn on_peer_datagrams(&mut self, slot: usize, family: usize, path: &mut Path) {
        let Path {
            table,
            from_peers,
            peer_slots_used,
            to_clients,
            tally,
            ids,
            now,
            ..
        } = path;
        // One full batch per readiness event at most: level-triggered epoll reports the
        // socket again next turn if more is queued, so one busy peer cannot starve others.
        let mut budget = BATCH;
        while budget > 0 {
            if *peer_slots_used == BATCH {
                flush(to_clients, from_peers, &self.listeners, tally);
                *peer_slots_used = 0;
            }
            let Some(alloc) = table.slot_mut(slot) else {
                return;
            };
            let Some(relay) = alloc.relays.get(family).and_then(Option::as_ref) else {
                return;
            };
            let first = *peer_slots_used;
            let want = (BATCH - first).min(budget);
            let received = match from_peers.recv(relay.as_fd(), first..first + want) {
                Ok(n) => n,
                Err(_) => return,
            };
            *peer_slots_used += received;
            if received > 0 {
                tally.receive_batches_peer += 1;
            }
            budget -= want;
            for i in first..first + received {
                let Some(frame) = peer_datagram(alloc, from_peers, i, tally, ids, *now) else {
                    continue;
                };
                if !to_clients.push(i, frame, alloc.client, alloc.listener as u64) {
                    tally.dropped_send_error += 1;
                }
            }
            if received < want {
                return;
            }
        }
    }

    /// Sends the frames built this turn and frees their slots.
    fn flush_to_clients(&mut self, path: &mut Path) {
        flush(
            &mut path.to_clients,
            &path.from_peers,
            &self.listeners,
            &mut path.tally,
        );
        path.peer_slots_used = 0;
    }
}

fn flush(queue: &mut SendQueue, slots: &RecvSlots, listeners: &[UdpSocket], tally: &mut Tally) {
    if queue.is_empty() {
        return;
    }
    let done = queue.flush(slots, |key| {
        listeners.get(key as usize).map(AsRawFd::as_raw_fd)
    });
    tally.send_batches_client += done.calls;
    tally.gso_sends += done.gso_messages;
    tally.to_client_packets += done.packets;
    tally.to_client_bytes += done.bytes;
    tally.dropped_send_error += done.errors;
}

/// Checks the datagram in receive slot `i` against the allocation and frames it for the
/// client in place; returns the frame's range in the slot.
#[inline]
fn peer_datagram(
    alloc: &mut Allocation,
    from_peers: &mut RecvSlots,
    i: usize,
    tally: &mut Tally,
    ids: &mut Ids,
    now: Instant,
) -> Option<std::ops::Range<usize>> {
    let (len, from) = from_peers.datagram(i);
    let from = crate::address::normalise(from?);
    if !alloc.permits(from.ip()) {
        tally.dropped_no_permission += 1;
        return None;
    }
    if !alloc.to_client.take(len, now) {
        tally.dropped_bandwidth += 1;
        return None;
    }
    let buf = from_peers.slot_mut(i);
    match alloc.peer_channel(from) {
        Some(number) => {
            let start = PAYLOAD_OFFSET - channel::HEADER_LEN;
            channel::write_header(&mut buf[start..], number, len)?;
            Some(start..PAYLOAD_OFFSET + len)
        }
        None => build_data_indication(buf, len, from, &ids.next()),
    }
}

/// A payload from a client, cleared for relaying: bytes `data` of the datagram go to `peer`
/// from relay socket `family` of the allocation in table slot `slot`.
struct ToPeer {
    slot: usize,
    family: usize,
    peer: SocketAddr,
    data: std::ops::Range<usize>,
    /// For a Send indication: whether it must leave with DF (RFC 8656 14.8).
    dont_fragment: Option<bool>,
}

/// Puts relay socket `family` of the allocation in `slot` into the DF state a Send
/// indication wants. Nothing happens (no system call) when the socket is already in it;
/// otherwise the payloads already queued leave first, with the setting they were queued
/// under, and the socket is switched.
#[inline]
fn set_dont_fragment(path: &mut Path, slot: usize, family: usize, df: bool) {
    let needs_switch = path
        .table
        .slot(slot)
        .and_then(|a| a.df[family].as_ref())
        .is_some_and(|s| s.needs_switch(df));
    if !needs_switch {
        return;
    }
    flush_to_peers(path);
    let Some(alloc) = path.table.slot_mut(slot) else {
        return;
    };
    let Allocation {
        relays, df: states, ..
    } = alloc;
    if let (Some(sock), Some(state)) = (&relays[family], &mut states[family]) {
        // Cannot fail for a valid UDP socket; if it did, the datagram leaves with the
        // socket's previous setting, as it would have before DONT-FRAGMENT was honoured.
        if let Err(e) = state.switch(sock, df) {
            tracing::debug!(target: "media_relay", "DF switch on a relay socket failed: {e}");
        }
    }
}

/// The `SendQueue` key of an allocation's relay socket.
#[inline]
fn relay_key(slot: usize, family: usize) -> u64 {
    (slot as u64) << 1 | family as u64
}

/// Sends what the client window holds and frees its slots: at the end of a turn, or when
/// the window is full.
fn free_client_window(path: &mut Path) {
    flush_to_peers(path);
    path.client_slots_used = 0;
}

/// Sends the payloads queued from the client window. The slots stay in use: a flush can
/// also come in the middle of a batch (a DF switch) whose later payloads still point into
/// them, so only `free_client_window` frees them.
fn flush_to_peers(path: &mut Path) {
    if path.to_peers.is_empty() {
        return;
    }
    let table = &path.table;
    let done = path.to_peers.flush(&path.from_clients, |key| {
        let alloc = table.slot((key >> 1) as usize)?;
        let relay = alloc.relays.get((key & 1) as usize)?.as_ref()?;
        Some(relay.as_raw_fd())
    });
    path.tally.send_batches_peer += done.calls;
    path.tally.gso_sends += done.gso_messages;
    path.tally.to_peer_packets += done.packets;
    path.tally.to_peer_bytes += done.bytes;
    path.tally.dropped_send_error += done.errors;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIGHT: Duration = Duration::from_micros(300);
    const HEAVY: Duration = Duration::from_micros(2_000);

    /// Feeds `pps` for `flows` flows over two review periods; returns the pacing chosen.
    fn pacing_for(pps: u64, flows: usize) -> Duration {
        let mut p = Pacing::new((LIGHT, HEAVY));
        let start = p.since;
        for step in 1..=20u64 {
            let now = start + PACING_REVIEW * step as u32 / 10;
            p.account(pps * PACING_REVIEW.as_millis() as u64 / 10_000, now, flows);
        }
        p.current
    }

    #[test]
    fn pacing_stays_short_for_many_slow_flows() {
        // 1,000 audio flows at 50 packets/s each way: 0.2 datagrams per flow in 2 ms.
        assert_eq!(pacing_for(100_000, 1_000), LIGHT);
        // Idle.
        assert_eq!(pacing_for(0, 10), LIGHT);
    }

    #[test]
    fn pacing_stretches_when_flows_are_fast_enough_to_group() {
        // 100 flows at 1,500 packets/s: 3 datagrams per flow in 2 ms.
        assert_eq!(pacing_for(150_000, 100), HEAVY);
        // And returns once the load goes.
        let mut p = Pacing::new((LIGHT, HEAVY));
        let t0 = p.since;
        p.account(15_000, t0 + PACING_REVIEW, 100);
        assert_eq!(p.current, HEAVY);
        p.account(10, t0 + PACING_REVIEW * 2, 100);
        assert_eq!(p.current, LIGHT);
    }

    #[test]
    fn heavy_pacing_is_never_below_light() {
        let p = Pacing::new((HEAVY, LIGHT));
        assert_eq!(p.heavy, HEAVY);
    }
}
