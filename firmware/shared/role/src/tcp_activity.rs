//! How long a TCP connection has carried no data, read from the kernel (`TCP_INFO`), so
//! the accept loop can enforce an idle deadline on connections whose stream the role owns.
//!
//! The loop keeps only the descriptor number. Once the role has closed its stream the number
//! may belong to another socket; [`quiet_for`] therefore answers only while the descriptor
//! still names the same connection (same local and peer address), and `None` otherwise.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use nix::sys::socket::{getpeername, getsockname, SockaddrStorage};

/// Time since the last data in either direction on `fd`, if `fd` is still the connection
/// from `peer` to `local`.
pub fn quiet_for(fd: RawFd, local: SocketAddr, peer: SocketAddr) -> Option<Duration> {
    if !names(fd, local, peer) {
        return None;
    }
    let info = tcp_info(fd)?;
    let ms = info.tcpi_last_data_recv.min(info.tcpi_last_data_sent);
    Some(Duration::from_millis(u64::from(ms)))
}

fn names(fd: RawFd, local: SocketAddr, peer: SocketAddr) -> bool {
    let same = |a: Option<SockaddrStorage>, want: SocketAddr| {
        a.and_then(|s| {
            s.as_sockaddr_in()
                .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
                .or_else(|| {
                    s.as_sockaddr_in6()
                        .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
                })
        }) == Some(want)
    };
    same(getsockname(fd).ok(), local) && same(getpeername(fd).ok(), peer)
}

fn tcp_info(fd: RawFd) -> Option<libc::tcp_info> {
    // SAFETY: tcp_info is plain old data, so all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` are live, writable and sized as passed; the kernel writes at
    // most `len` bytes. A stale descriptor only makes the call fail (EBADF, ENOTSOCK).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::os::fd::AsRawFd as _;

    #[test]
    fn a_fresh_connection_is_quiet_and_a_foreign_address_is_not_answered() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let mut client =
            std::net::TcpStream::connect(listener.local_addr().unwrap_or_else(|e| panic!("{e}")))
                .unwrap_or_else(|e| panic!("{e}"));
        let (mut server, peer) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        let local = server.local_addr().unwrap_or_else(|e| panic!("{e}"));
        client.write_all(b"x").unwrap_or_else(|e| panic!("{e}"));
        let mut b = [0u8; 1];
        server.read_exact(&mut b).unwrap_or_else(|e| panic!("{e}"));
        let quiet = quiet_for(server.as_raw_fd(), local, peer);
        assert!(
            matches!(quiet, Some(d) if d < Duration::from_secs(30)),
            "{quiet:?}"
        );
        let elsewhere: SocketAddr = "127.0.0.9:9".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(quiet_for(server.as_raw_fd(), local, elsewhere), None);
    }
}
