//! DONT-FRAGMENT (RFC 8656 14.8): datagrams leaving an allocation's relay socket carry the
//! DF bit (IPv4) or are never fragmented by this host (IPv6). The option is per socket,
//! so it holds for the whole allocation.

#[cfg(test)]
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

fn set_int_option(sock: &impl AsRawFd, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: the descriptor is owned by `sock` and open for this call; the pointer and
    // length describe a live c_int on this stack frame.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Sets "do not fragment" on a relay socket of either family.
pub fn set(sock: &impl AsRawFd, ipv4: bool) -> std::io::Result<()> {
    if ipv4 {
        // IP_PMTUDISC_DO: DF on every datagram; too large ones fail with EMSGSIZE
        // instead of being fragmented.
        set_int_option(
            sock,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
    } else {
        set_int_option(sock, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 1)
    }
}

/// Reads the option back (for tests and diagnostics).
#[cfg(test)]
pub fn is_set(sock: &UdpSocket) -> std::io::Result<bool> {
    let (level, name, want) = if sock.local_addr()?.is_ipv4() {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 1)
    };
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: as in `set_int_option`; `value` and `len` outlive the call and `len` holds
    // the size of `value`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value == want)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_df_on_both_families() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(sock) = UdpSocket::bind(bind) else {
                // A host without IPv6 loopback cannot run the IPv6 half.
                continue;
            };
            assert!(!is_set(&sock).unwrap_or(true), "{bind}: DF before set");
            set(&sock, bind.starts_with('1')).unwrap_or_else(|e| panic!("{bind}: {e}"));
            assert!(is_set(&sock).unwrap_or(false), "{bind}: DF after set");
        }
    }

    #[test]
    fn df_socket_still_relays_ordinary_datagrams() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let b = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        set(&a, true).unwrap_or_else(|e| panic!("{e}"));
        let to = b.local_addr().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.send_to(&[7u8; 1200], to).ok(), Some(1200));
        let mut buf = [0u8; 2000];
        assert_eq!(b.recv(&mut buf).ok(), Some(1200));
    }
}
