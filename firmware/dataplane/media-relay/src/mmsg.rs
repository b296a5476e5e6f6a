//! Batched datagram I/O over preallocated arrays: `recvmmsg` fills fixed slots, `sendmmsg`
//! sends frames that were built in place inside those slots. Nothing here allocates after
//! construction, so the packet path stays free of heap traffic.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use crate::forward::PAYLOAD_OFFSET;
use crate::sockaddr;

/// Largest UDP payload a slot holds. Datagrams are received whole, as with a plain
/// `recvfrom` into a 64 KiB buffer; only the pages a datagram touches are ever resident.
const MAX_PAYLOAD: usize = 65_536;
/// One slot: Data indication head room, the payload, and up to 3 bytes of padding.
pub(crate) const SLOT_LEN: usize = PAYLOAD_OFFSET + MAX_PAYLOAD + 4;

/// The preallocated `mmsghdr`/`iovec`/`sockaddr_storage` arrays both directions need:
/// header `i` always describes one datagram whose address lives in `names[i]` and whose
/// single buffer is `iov[i]`.
struct Headers {
    iov: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside `iov` and `hdrs` are rewritten (by `point`) before every
// system call and only ever point into their owner's own buffers; nothing aliases them
// across threads.
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

    /// Wires header `i` to `names[i]` and to `buffer` as its only iovec, and clears what the
    /// previous call left. The address length is left alone: a receive sets it to the
    /// whole storage, a send to the encoded address.
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
}

impl RecvSlots {
    pub fn new(count: usize) -> Self {
        RecvSlots {
            buf: vec![0u8; count * SLOT_LEN],
            headers: Headers::new(count),
        }
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
        let base = self.buf.as_mut_ptr();
        for i in start..end {
            // SAFETY: slot i lies inside `buf` (i < capacity, buf is capacity * SLOT_LEN).
            let payload = unsafe { base.add(i * SLOT_LEN + PAYLOAD_OFFSET) };
            self.headers.point(
                i,
                libc::iovec {
                    iov_base: payload.cast(),
                    iov_len: MAX_PAYLOAD,
                },
            );
            self.headers.hdrs[i].msg_hdr.msg_namelen =
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

    /// The whole slot `i`: head room, payload at `PAYLOAD_OFFSET`, padding room.
    #[inline]
    pub fn slot(&self, i: usize) -> &[u8] {
        &self.buf[i * SLOT_LEN..(i + 1) * SLOT_LEN]
    }

    #[inline]
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.buf[i * SLOT_LEN..(i + 1) * SLOT_LEN]
    }
}

/// One frame waiting to leave: `len` bytes at `start` of receive slot `slot`, through the
/// socket the caller knows as `socket`.
#[derive(Clone, Copy)]
struct Pending {
    slot: usize,
    start: usize,
    len: usize,
    socket: u64,
}

/// Frames queued for `sendmmsg`: each run of consecutive frames for one socket leaves in
/// one call.
pub(crate) struct SendQueue {
    pending: Vec<Pending>,
    /// Besides this value's own arrays, the iovecs point into the slots passed to `flush`,
    /// only for the duration of that call.
    headers: Headers,
}

/// What a flush did, for the counters.
#[derive(Default, Clone, Copy)]
pub(crate) struct Flushed {
    pub packets: u64,
    pub bytes: u64,
    pub errors: u64,
    /// `sendmmsg` calls that sent at least one datagram.
    pub calls: u64,
}

impl SendQueue {
    pub fn new(count: usize) -> Self {
        SendQueue {
            pending: Vec::with_capacity(count),
            headers: Headers::new(count),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Queues `range` of slot `slot` for `to`; the caller flushes before the slot is
    /// reused. `false` if the queue is full.
    #[inline]
    pub fn push(&mut self, slot: usize, range: Range<usize>, to: SocketAddr, socket: u64) -> bool {
        let i = self.pending.len();
        if i == self.headers.len() {
            return false;
        }
        let namelen = sockaddr::encode(to, &mut self.headers.names[i]);
        self.headers.hdrs[i].msg_hdr.msg_namelen = namelen;
        self.pending.push(Pending {
            slot,
            start: range.start,
            len: range.len(),
            socket,
        });
        true
    }

    /// Sends everything queued, one `sendmmsg` per run of frames for the same socket;
    /// `fd_of` maps the caller's socket keys to descriptors (`None`: counted as errors).
    pub fn flush(&mut self, slots: &RecvSlots, fd_of: impl Fn(u64) -> Option<RawFd>) -> Flushed {
        let mut done = Flushed::default();
        let count = self.pending.len();
        let base = slots.buf.as_ptr();
        for (i, p) in self.pending.iter().enumerate() {
            let in_bounds = p.slot < slots.capacity() && p.start + p.len <= SLOT_LEN;
            self.headers.point(
                i,
                libc::iovec {
                    // SAFETY: checked in bounds of `slots.buf` just above; a frame out of
                    // bounds (never queued by the worker) is sent as an empty datagram.
                    iov_base: if in_bounds {
                        unsafe { base.add(p.slot * SLOT_LEN + p.start) as *mut libc::c_void }
                    } else {
                        base as *mut libc::c_void
                    },
                    iov_len: if in_bounds { p.len } else { 0 },
                },
            );
        }
        let mut start = 0;
        while start < count {
            let socket = self.pending[start].socket;
            let mut end = start + 1;
            while end < count && self.pending[end].socket == socket {
                end += 1;
            }
            match fd_of(socket) {
                Some(fd) => self.send_run(fd, start, end, &mut done),
                None => done.errors += (end - start) as u64,
            }
            start = end;
        }
        self.pending.clear();
        done
    }

    /// `sendmmsg` over headers start..end, resuming after partial sends; a datagram the
    /// kernel refuses is counted and skipped, a full send buffer drops the rest.
    fn send_run(&mut self, fd: libc::c_int, start: usize, end: usize, done: &mut Flushed) {
        let mut next = start;
        while next < end {
            // SAFETY: headers next..end were filled by `flush` and point at this value's
            // names/iovecs and at live slot memory borrowed for the duration of `flush`.
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
                if e.kind() == io::ErrorKind::WouldBlock {
                    done.errors += (end - next) as u64;
                    return;
                }
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                done.errors += 1;
                next += 1;
                continue;
            }
            done.calls += 1;
            for i in next..next + n as usize {
                done.packets += 1;
                done.bytes += u64::from(self.headers.hdrs[i].msg_len);
            }
            next += n as usize;
        }
    }
}
