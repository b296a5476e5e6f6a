//! Batched datagram I/O over preallocated arrays: `recvmmsg` fills fixed slots, `sendmmsg`
//! sends frames that were built in place inside those slots. Nothing here allocates after
//! construction, so the packet path stays free of heap traffic.
//!
//! Sending groups the frames of one flush by socket and destination (keeping each flow's
//! order) and hands each run of equal-sized frames to the kernel as one UDP GSO message
//! (`UDP_SEGMENT`): the stack then routes, builds and delivers the run once instead of once
//! per datagram, which is where a relay's CPU goes.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use crate::forward::PAYLOAD_OFFSET;
use crate::sockaddr;

/// Largest UDP payload a full-size slot holds: datagrams are received whole, as with a
/// plain `recvfrom` into a 64 KiB buffer; only the pages a datagram touches are resident.
pub(crate) const MAX_PAYLOAD: usize = 65_536;
/// Slot room besides the payload: Data indication head room and up to 3 bytes of padding.
const SLOT_EXTRA: usize = PAYLOAD_OFFSET + 4;

/// `UDP_SEGMENT` from `linux/udp.h` (Linux 4.18): not exported by libc for every target.
const UDP_SEGMENT: libc::c_int = 103;
/// Datagrams per GSO message: the kernel's UDP_MAX_SEGMENTS was 64 before Linux 6.9.
const GSO_MAX_SEGMENTS: usize = 64;
/// Bytes per GSO message: the whole run must fit one UDP datagram's length field.
const GSO_MAX_BYTES: usize = 65_000;
/// Control buffer for one `UDP_SEGMENT` message: CMSG_SPACE(2) is 24 bytes on 64-bit.
const CMSG_ROOM: usize = 32;

/// Whether the kernel takes `UDP_SEGMENT` on a UDP socket like `fd`.
pub fn gso_supported(fd: BorrowedFd<'_>) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes stated.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    rc == 0
}

/// Preallocated `mmsghdr`/`iovec`/`sockaddr_storage` arrays. For the receive slots, header
/// `i` always describes slot `i` and its address lives in `names[i]`; a send queue lays
/// its messages out in them anew for every flush.
struct Headers {
    iov: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside `iov` and `hdrs` point only into heap buffers that never
// move: the receive slots' own, or, in a send queue, its own arrays and the slots borrowed
// by one `flush` (rewritten before each). Nothing aliases them across threads.
unsafe impl Send for Headers {}

impl Headers {
    fn new(count: usize) -> Self {
        Headers {
            iov: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                };
                count
            ],
            // SAFETY: all-zero bytes are a valid sockaddr_storage and a valid mmsghdr (null
            // pointers, zero lengths).
            names: vec![unsafe { std::mem::zeroed() }; count],
            // SAFETY: as above.
            hdrs: vec![unsafe { std::mem::zeroed() }; count],
        }
    }

    fn len(&self) -> usize {
        self.hdrs.len()
    }

    /// Wires header `i` to `names[i]` and to `buffer` as its only iovec.
    fn point(&mut self, i: usize, buffer: libc::iovec) {
        self.iov[i] = buffer;
        let h = &mut self.hdrs[i];
        h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
        h.msg_hdr.msg_iov = &mut self.iov[i];
        h.msg_hdr.msg_iovlen = 1;
        h.msg_hdr.msg_control = std::ptr::null_mut();
        h.msg_hdr.msg_controllen = 0;
        h.msg_hdr.msg_flags = 0;
        h.msg_len = 0;
    }
}

/// Receive slots: datagram `i` lands at `PAYLOAD_OFFSET` of slot `i`, so a Data
/// indication or ChannelData header can be written in front of it without a copy.
pub(crate) struct RecvSlots {
    buf: Vec<u8>,
    headers: Headers,
    slot_len: usize,
}

impl RecvSlots {
    /// `count` slots for datagrams of up to `max_payload` bytes; a longer one arrives
    /// truncated and says so (`truncated`).
    pub fn new(count: usize, max_payload: usize) -> Self {
        let slot_len = SLOT_EXTRA + max_payload;
        let mut slots = RecvSlots {
            buf: vec![0u8; count * slot_len],
            headers: Headers::new(count),
            slot_len,
        };
        // The slots never move (the buffer is never resized), so every header points at
        // its slot once and for all; a receive only resets what the kernel writes back.
        let base = slots.buf.as_mut_ptr();
        for i in 0..count {
            // SAFETY: slot i lies inside `buf` (i < count, buf is count * slot_len).
            let payload = unsafe { base.add(i * slot_len + PAYLOAD_OFFSET) };
            slots.headers.point(
                i,
                libc::iovec {
                    iov_base: payload.cast(),
                    iov_len: max_payload,
                },
            );
        }
        slots
    }

    pub fn capacity(&self) -> usize {
        self.headers.len()
    }

    /// Receives up to `slots.len()` datagrams without blocking into those slots; returns
    /// how many arrived (0 when none was queued).
    pub fn recv(&mut self, fd: BorrowedFd<'_>, slots: Range<usize>) -> io::Result<usize> {
        let end = slots.end.min(self.capacity());
        let start = slots.start.min(end);
        if start == end {
            return Ok(0);
        }
        for h in &mut self.headers.hdrs[start..end] {
            h.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: headers start..end point at live buffers of this value (names, iovecs,
        // slot memory of the stated lengths); the call does not block (MSG_DONTWAIT) and
        // writes only inside them.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.headers.hdrs.as_mut_ptr().add(start),
                (end - start) as libc::c_uint,
                // The flags are c_int on glibc and c_uint on musl.
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize)
    }

    /// Payload length and sender of the datagram in slot `i` after `recv`.
    #[inline]
    pub fn datagram(&self, i: usize) -> (usize, Option<SocketAddr>) {
        (
            self.headers.hdrs[i].msg_len as usize,
            sockaddr::decode(&self.headers.names[i]),
        )
    }

    /// Whether the datagram in slot `i` was longer than the slot and arrived cut short.
    #[inline]
    pub fn truncated(&self, i: usize) -> bool {
        self.headers.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// The whole slot `i`: head room, payload at `PAYLOAD_OFFSET`, padding room.
    #[inline]
    pub fn slot(&self, i: usize) -> &[u8] {
        &self.buf[i * self.slot_len..(i + 1) * self.slot_len]
    }

    #[inline]
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.buf[i * self.slot_len..(i + 1) * self.slot_len]
    }
}

/// One frame waiting to leave: `len` bytes at `start` of receive slot `slot`, to `to`,
/// through the socket the caller knows as `socket`.
#[derive(Clone, Copy)]
struct Pending {
    slot: usize,
    start: usize,
    len: usize,
    socket: u64,
    to: SocketAddr,
}

/// The control message of one GSO send, aligned for `cmsghdr`.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Cmsg([u8; CMSG_ROOM]);

/// Frames queued for `sendmmsg`. With GSO, frames for one socket and destination leave
/// as one message per run of equal sizes; without, one message per frame, and each run of
/// consecutive frames for one socket in one call.
pub(crate) struct SendQueue {
    pending: Vec<Pending>,
    /// Flush order: indexes into `pending`, grouped by socket and destination.
    order: Vec<usize>,
    /// `iov`: one iovec per frame, in message order, pointing into the slots passed to
    /// `flush` only for the duration of that call. `names` and `hdrs`: per message, its
    /// destination and header.
    headers: Headers,
    /// Per message: GSO control buffer, socket key, and the range of its frames in `iov`.
    cmsgs: Vec<Cmsg>,
    sockets: Vec<u64>,
    frames: Vec<Range<usize>>,
    gso: bool,
}

/// What a flush did, for the counters.
#[derive(Default, Clone, Copy)]
pub(crate) struct Flushed {
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
    /// `sendmmsg`/`sendto` calls that sent at least one datagram.
    pub calls: u64,
    /// GSO messages sent (each carried two datagrams or more).
    pub gso_messages: u64,
}

impl SendQueue {
    /// A queue of up to `count` frames, grouped into GSO messages when `gso` is set (see
    /// `gso_supported`).
    pub fn new(count: usize, gso: bool) -> Self {
        SendQueue {
            pending: Vec::with_capacity(count),
            order: Vec::with_capacity(count),
            headers: Headers::new(count),
            cmsgs: vec![Cmsg([0; CMSG_ROOM]); count],
            sockets: vec![0; count],
            frames: vec![0..0; count],
            gso,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether runs still leave as GSO messages (off after the kernel refused one with EIO:
    /// a device without checksum offload).
    #[cfg(test)]
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Queues `range` of slot `slot` for `to`; the caller flushes before the slot is
    /// reused. `false` if the queue is full.
    #[inline]
    pub fn push(&mut self, slot: usize, range: Range<usize>, to: SocketAddr, socket: u64) -> bool {
        if self.pending.len() == self.pending.capacity() {
            return false;
        }
        self.pending.push(Pending {
            slot,
            start: range.start,
            len: range.len(),
            socket,
            to,
        });
        true
    }

    /// Sends everything queued; `fd_of` maps the caller's socket keys to descriptors
    /// (`None`: counted as errors).
    pub fn flush(&mut self, slots: &RecvSlots, fd_of: impl Fn(u64) -> Option<RawFd>) -> Flushed {
        let mut done = Flushed::default();
        if self.pending.is_empty() {
            return done;
        }
        let messages = self.build(slots);
        let mut start = 0;
        while start < messages {
            let socket = self.sockets[start];
            let mut end = start + 1;
            while end < messages && self.sockets[end] == socket {
                end += 1;
            }
            match fd_of(socket) {
                Some(fd) => self.send_run(fd, start, end, &mut done),
                None => {
                    for m in start..end {
                        done.errors += self.frames[m].len() as u64;
                    }
                }
            }
            start = end;
        }
        self.pending.clear();
        done
    }

    /// Lays the queued frames out as messages; returns how many.
    fn build(&mut self, slots: &RecvSlots) -> usize {
        let pending = &self.pending;
        self.order.clear();
        self.order.extend(0..pending.len());
        if self.gso && pending.len() > 1 {
            // The index breaks ties, so each flow keeps its order (the sort allocates
            // nothing: it is in place).
            self.order
                .sort_unstable_by_key(|&i| (pending[i].socket, pending[i].to, i));
        }
        let base = slots.buf.as_ptr();
        let mut messages = 0;
        let mut k = 0;
        while k < self.order.len() {
            let first = pending[self.order[k]];
            // A message: `first`, then (with GSO) the frames after it for the same socket
            // and destination with its size; one shorter frame may close the run.
            let mut end = k + 1;
            if self.gso {
                let mut bytes = first.len;
                while end < self.order.len() && end - k < GSO_MAX_SEGMENTS {
                    let next = pending[self.order[end]];
                    if next.socket != first.socket
                        || next.to != first.to
                        || next.len > first.len
                        || next.len == 0
                        || bytes + next.len > GSO_MAX_BYTES
                    {
                        break;
                    }
                    bytes += next.len;
                    end += 1;
                    if next.len < first.len {
                        break;
                    }
                }
            }
            for (j, &i) in self.order[k..end].iter().enumerate() {
                let p = pending[i];
                let in_bounds = p.slot < slots.capacity() && p.start + p.len <= slots.slot_len;
                // A frame out of bounds (never queued by the worker) is sent as an empty
                // datagram.
                self.headers.iov[k + j] = libc::iovec {
                    iov_base: if in_bounds {
                        // SAFETY: checked in bounds of `slots.buf` just above.
                        unsafe { base.add(p.slot * slots.slot_len + p.start) as *mut libc::c_void }
                    } else {
                        base as *mut libc::c_void
                    },
                    iov_len: if in_bounds { p.len } else { 0 },
                };
            }
            let m = messages;
            let namelen = sockaddr::encode(first.to, &mut self.headers.names[m]);
            let h = &mut self.headers.hdrs[m];
            h.msg_hdr.msg_name = (&mut self.headers.names[m] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = namelen;
            h.msg_hdr.msg_iov = &mut self.headers.iov[k];
            h.msg_hdr.msg_iovlen = (end - k) as _;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
            if end - k > 1 {
                let control = &mut self.cmsgs[m];
                write_segment_size(control, first.len as u16);
                h.msg_hdr.msg_control = control.0.as_mut_ptr().cast();
                // SAFETY: CMSG_SPACE only computes a size.
                h.msg_hdr.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
            } else {
                h.msg_hdr.msg_control = std::ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
            }
            self.sockets[m] = first.socket;
            self.frames[m] = k..end;
            messages += 1;
            k = end;
        }
        messages
    }

    /// `sendmmsg` over messages start..end, resuming after partial sends. A message the
    /// kernel refuses is counted and skipped (a refused GSO message is retried datagram by
    /// datagram first); a full send buffer drops the rest.
    fn send_run(&mut self, fd: libc::c_int, start: usize, end: usize, done: &mut Flushed) {
        if end - start == 1 && self.frames[start].len() == 1 {
            // One datagram for this socket (the common case with many slow flows, each
            // with its own relay socket): `sendto` skips sendmmsg's header copies.
            self.send_single(fd, start, done);
            return;
        }
        let mut next = start;
        while next < end {
            // SAFETY: messages next..end were laid out by `build` and point at this value's
            // names, iovecs and control buffers, and at slot memory borrowed for the
            // duration of `flush`.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.headers.hdrs.as_mut_ptr().add(next),
                    (end - next) as libc::c_uint,
                    // The flags are c_int on glibc and c_uint on musl.
                    libc::MSG_DONTWAIT as _,
                )
            };
            if n <= 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if e.kind() == io::ErrorKind::WouldBlock {
                    for m in next..end {
                        done.errors += self.frames[m].len() as u64;
                    }
                    return;
                }
                if self.frames[next].len() > 1 {
                    if e.raw_os_error() == Some(libc::EIO) {
                        // The device cannot checksum segments: no more GSO on this queue.
                        self.gso = false;
                    }
                    self.send_one_by_one(fd, next, done);
                } else {
                    done.errors += 1;
                }
                next += 1;
                continue;
            }
            done.calls += 1;
            for m in next..next + n as usize {
                let frames = self.frames[m].len() as u64;
                done.packets += frames;
                done.bytes += u64::from(self.headers.hdrs[m].msg_len);
                if frames > 1 {
                    done.gso_messages += 1;
                }
            }
            next += n as usize;
        }
    }

    /// Sends message `m`, a single datagram, with `sendto`.
    fn send_single(&mut self, fd: libc::c_int, m: usize, done: &mut Flushed) {
        let iov = self.headers.iov[self.frames[m].start];
        loop {
            // SAFETY: the iovec points at slot memory borrowed for the duration of `flush`
            // and the address storage holds `msg_namelen` valid bytes.
            let rc = unsafe {
                libc::sendto(
                    fd,
                    iov.iov_base,
                    iov.iov_len,
                    libc::MSG_DONTWAIT as _,
                    (&self.headers.names[m] as *const libc::sockaddr_storage).cast(),
                    self.headers.hdrs[m].msg_hdr.msg_namelen,
                )
            };
            if rc >= 0 {
                done.calls += 1;
                done.packets += 1;
                done.bytes += rc as u64;
                return;
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                done.errors += 1;
                return;
            }
        }
    }

    /// Sends the frames of GSO message `m` as plain datagrams, one `sendmsg` each.
    fn send_one_by_one(&mut self, fd: libc::c_int, m: usize, done: &mut Flushed) {
        for i in self.frames[m].clone() {
            // SAFETY: all-zero bytes are a valid msghdr.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut self.headers.names[m] as *mut libc::sockaddr_storage).cast();
            msg.msg_namelen = self.headers.hdrs[m].msg_hdr.msg_namelen;
            msg.msg_iov = &mut self.headers.iov[i];
            msg.msg_iovlen = 1;
            // SAFETY: `msg` points at this value's address storage and at iovec `i`, which
            // points at slot memory borrowed for the duration of `flush`.
            let rc = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT as _) };
            if rc < 0 {
                done.errors += 1;
            } else {
                done.packets += 1;
                done.bytes += rc as u64;
            }
        }
    }
}

/// Fills `control` with one `UDP_SEGMENT` control message carrying `size`.
fn write_segment_size(control: &mut Cmsg, size: u16) {
    let hdr = control.0.as_mut_ptr().cast::<libc::cmsghdr>();
    // SAFETY: `control` is 8-aligned and larger than CMSG_SPACE(2), so the header and its
    // two data bytes lie inside it; CMSG_LEN/CMSG_DATA only compute sizes and offsets.
    unsafe {
        hdr.write_bytes(0, 1);
        (*hdr).cmsg_level = libc::SOL_UDP;
        (*hdr).cmsg_type = UDP_SEGMENT;
        (*hdr).cmsg_len = libc::CMSG_LEN(2) as _;
        libc::CMSG_DATA(hdr).cast::<u16>().write_unaligned(size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;
    use std::time::Duration;

    fn udp() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap_or_else(|e| panic!("timeout: {e}"));
        s
    }

    /// Whether this kernel takes `UDP_SEGMENT`; says so when a test is skipped for it.
    fn kernel_has_gso() -> bool {
        let has = gso_supported(udp().as_fd());
        if !has {
            eprintln!("skipped: this kernel has no UDP GSO");
        }
        has
    }

    fn addr(s: &UdpSocket) -> SocketAddr {
        s.local_addr().unwrap_or_else(|e| panic!("addr: {e}"))
    }

    /// Datagram `seq` of a flow: `len` bytes of `seq`.
    fn datagram(seq: u8, len: usize) -> Vec<u8> {
        vec![seq; len]
    }

    /// Receives `frames` into slots the way a relay thread does (one datagram a slot).
    fn receive_all(frames: &[Vec<u8>]) -> RecvSlots {
        let inbound = udp();
        let sender = udp();
        for f in frames {
            sender
                .send_to(f, addr(&inbound))
                .unwrap_or_else(|e| panic!("send: {e}"));
        }
        let mut slots = RecvSlots::new(frames.len(), 2048);
        let mut got = 0;
        for _ in 0..100 {
            got += slots
                .recv(inbound.as_fd(), got..frames.len())
                .unwrap_or_else(|e| panic!("recvmmsg: {e}"));
            if got == frames.len() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(got, frames.len(), "every datagram reached the slots");
        slots
    }

    fn drain(sock: &UdpSocket, count: usize) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 2048];
        (0..count)
            .map(|_| {
                let (n, _) = sock
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("receive: {e}"));
                buf[..n].to_vec()
            })
            .collect()
    }

    /// Two flows interleaved through one socket, with sizes that end runs early: each
    /// receiver gets its datagrams whole and in order, and runs left as GSO messages.
    fn interleaved_flows_arrive_whole_and_in_order(gso: bool) -> Flushed {
        let a = udp();
        let b = udp();
        // Flow A: a run of 300s closed by a shorter one, then two more; flow B: a larger
        // datagram after a 300 (a longer datagram cannot join a run, so it starts one).
        let flow_a: Vec<Vec<u8>> = [300, 300, 300, 100, 300, 300]
            .iter()
            .enumerate()
            .map(|(i, &len)| datagram(i as u8, len))
            .collect();
        let flow_b: Vec<Vec<u8>> = [300, 500, 300]
            .iter()
            .enumerate()
            .map(|(i, &len)| datagram(100 + i as u8, len))
            .collect();
        let mut frames = Vec::new();
        let mut order = Vec::new();
        for i in 0..flow_a.len().max(flow_b.len()) {
            if let Some(f) = flow_a.get(i) {
                frames.push(f.clone());
                order.push(addr(&a));
            }
            if let Some(f) = flow_b.get(i) {
                frames.push(f.clone());
                order.push(addr(&b));
            }
        }
        let slots = receive_all(&frames);
        let out = udp();
        let mut queue = SendQueue::new(frames.len(), gso);
        for (i, (f, to)) in frames.iter().zip(&order).enumerate() {
            let range = PAYLOAD_OFFSET..PAYLOAD_OFFSET + f.len();
            assert!(queue.push(i, range, *to, 7));
        }
        let fd = out.as_raw_fd();
        let done = queue.flush(&slots, |key| (key == 7).then_some(fd));
        assert_eq!(done.errors, 0);
        assert_eq!(done.packets, frames.len() as u64);
        let bytes: usize = frames.iter().map(Vec::len).sum();
        assert_eq!(done.bytes, bytes as u64);
        assert_eq!(drain(&a, flow_a.len()), flow_a);
        assert_eq!(drain(&b, flow_b.len()), flow_b);
        assert!(queue.is_empty());
        done
    }

    #[test]
    fn gso_groups_runs_of_a_flow_and_keeps_their_order() {
        if !kernel_has_gso() {
            return;
        }
        let done = interleaved_flows_arrive_whole_and_in_order(true);
        // A: [300 300 300 100] [300 300]; B: [300] [500 300] (a shorter datagram may close
        // a run). Five messages, three of them GSO; one sendmmsg (one socket).
        assert_eq!(done.gso_messages, 3);
        assert_eq!(done.calls, 1);
    }

    #[test]
    fn without_gso_every_datagram_is_its_own_message() {
        let done = interleaved_flows_arrive_whole_and_in_order(false);
        assert_eq!(done.gso_messages, 0);
    }

    /// A run longer than a GSO message may carry is split, not refused.
    #[test]
    fn long_runs_are_split_at_the_segment_limit() {
        if !kernel_has_gso() {
            return;
        }
        let count = GSO_MAX_SEGMENTS * 2 + 5;
        let frames: Vec<Vec<u8>> = (0..count).map(|i| datagram(i as u8, 200)).collect();
        let slots = receive_all(&frames);
        let to = udp();
        to.set_nonblocking(false)
            .unwrap_or_else(|e| panic!("blocking: {e}"));
        let out = udp();
        let mut queue = SendQueue::new(count, true);
        for (i, f) in frames.iter().enumerate() {
            assert!(queue.push(i, PAYLOAD_OFFSET..PAYLOAD_OFFSET + f.len(), addr(&to), 1));
        }
        let fd = out.as_raw_fd();
        let done = queue.flush(&slots, |_| Some(fd));
        assert_eq!(done.packets, count as u64);
        assert_eq!(done.gso_messages, 3);
        assert_eq!(drain(&to, count), frames);
        assert!(queue.gso());
    }

    #[test]
    fn unknown_socket_counts_every_frame_as_an_error() {
        let frames = vec![datagram(1, 50), datagram(2, 50)];
        let slots = receive_all(&frames);
        let to = udp();
        let mut queue = SendQueue::new(2, true);
        for i in 0..2 {
            assert!(queue.push(i, PAYLOAD_OFFSET..PAYLOAD_OFFSET + 50, addr(&to), 9));
        }
        assert!(!queue.push(0, 0..1, addr(&to), 9), "the queue is full");
        let done = queue.flush(&slots, |_| None);
        assert_eq!(done.errors, 2);
        assert_eq!(done.packets, 0);
    }

    #[test]
    fn a_datagram_longer_than_its_slot_says_so() {
        let inbound = udp();
        let sender = udp();
        sender
            .send_to(&[1u8; 3000], addr(&inbound))
            .unwrap_or_else(|e| panic!("send: {e}"));
        sender
            .send_to(&[2u8; 100], addr(&inbound))
            .unwrap_or_else(|e| panic!("send: {e}"));
        std::thread::sleep(Duration::from_millis(20));
        let mut slots = RecvSlots::new(4, 1024);
        let got = slots
            .recv(inbound.as_fd(), 0..4)
            .unwrap_or_else(|e| panic!("recvmmsg: {e}"));
        assert_eq!(got, 2);
        assert!(slots.truncated(0));
        assert!(!slots.truncated(1));
        assert_eq!(slots.datagram(1).0, 100);
    }
}
