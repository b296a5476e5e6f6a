//! DONT-FRAGMENT (RFC 8656 11.2, 14.8): the socket option for the control plane (`set`,
//! on Allocate and on TCP/TLS clients' Send indications), and its per-socket switching for
//! Send indications on the relay threads (`DfState`).
//!
//! Linux has no per-datagram DF control for IPv4, so the relay socket's own option is
//! switched: IP_MTU_DISCOVER to IP_PMTUDISC_DO for a Send indication with DONT-FRAGMENT,
//! back to the value the allocation was created with for one without. IPv6 uses the same
//! scheme with IPV6_DONTFRAG, so both families share one code path and one state. The
//! state each relay socket is in is remembered, so a run of Send indications of one kind
//! costs no system call; only a change of kind does (one `setsockopt`, after the payloads
//! already queued for that socket have left with the old setting).

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// The DF option of one relay socket: what the allocation was created with and what the
/// socket is set to now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DfState {
    /// The option value found when the socket was installed (the allocation's choice:
    /// the control plane sets DF before installing when the Allocate asked for it).
    created_value: i32,
    /// Whether that value means "do not fragment".
    created_df: bool,
    /// Whether the socket currently sends with DF.
    current_df: bool,
    ipv4: bool,
}

impl DfState {
    /// Reads the socket's option once, when the relay thread takes the socket over.
    pub fn read(sock: &UdpSocket) -> io::Result<DfState> {
        let ipv4 = sock.local_addr()?.is_ipv4();
        let (level, name) = option(ipv4);
        let value = get_int_option(sock, level, name)?;
        let created_df = if ipv4 {
            value == libc::IP_PMTUDISC_DO
        } else {
            value != 0
        };
        Ok(DfState {
            created_value: value,
            created_df,
            current_df: created_df,
            ipv4,
        })
    }

    /// The DF setting a Send indication asks for: DF when it carries DONT-FRAGMENT, else
    /// whatever the allocation was created with.
    #[inline]
    pub fn wanted(&self, send_has_dont_fragment: bool) -> bool {
        send_has_dont_fragment || self.created_df
    }

    /// True when the socket must be switched before a datagram wanting `df` leaves.
    #[inline]
    pub fn needs_switch(&self, df: bool) -> bool {
        self.current_df != df
    }

    /// Switches the socket to `df` (DF on, or back to the allocation's own value).
    pub fn switch(&mut self, sock: &UdpSocket, df: bool) -> io::Result<()> {
        let (level, name) = option(self.ipv4);
        let value = if df {
            df_value(self.ipv4)
        } else {
            self.created_value
        };
        set_int_option(sock, level, name, value)?;
        self.current_df = df;
        Ok(())
    }
}

/// Sets "do not fragment" on a socket of either family: DONT-FRAGMENT on Allocate (the
/// whole allocation), and on a TCP/TLS client's Send indication (its connection task).
pub fn set(sock: &impl AsRawFd, ipv4: bool) -> io::Result<()> {
    let (level, name) = option(ipv4);
    // IPv4: IP_PMTUDISC_DO, DF on every datagram; too large ones fail with EMSGSIZE
    // instead of being fragmented.
    set_int_option(sock, level, name, df_value(ipv4))
}

/// Whether a socket sends with "do not fragment" (tests and diagnostics).
pub fn is_set(sock: &impl AsRawFd, ipv4: bool) -> io::Result<bool> {
    Ok(option_value(sock, ipv4)? == df_value(ipv4))
}

/// The socket's raw DF option (IP_MTU_DISCOVER or IPV6_DONTFRAG), for tests and
/// diagnostics that check a value is restored exactly.
pub fn option_value(sock: &impl AsRawFd, ipv4: bool) -> io::Result<i32> {
    let (level, name) = option(ipv4);
    get_int_option(sock, level, name)
}

fn df_value(ipv4: bool) -> i32 {
    if ipv4 {
        libc::IP_PMTUDISC_DO
    } else {
        1
    }
}

fn option(ipv4: bool) -> (i32, i32) {
    if ipv4 {
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG)
    }
}

fn set_int_option(sock: &impl AsRawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
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
        Err(io::Error::last_os_error())
    }
}

fn get_int_option(sock: &impl AsRawFd, level: i32, name: i32) -> io::Result<i32> {
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
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
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
            let ipv4 = bind.starts_with('1');
            assert!(
                !is_set(&sock, ipv4).unwrap_or(true),
                "{bind}: DF before set"
            );
            set(&sock, ipv4).unwrap_or_else(|e| panic!("{bind}: {e}"));
            assert!(is_set(&sock, ipv4).unwrap_or(false), "{bind}: DF after set");
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

    #[test]
    fn switches_on_and_back_to_the_created_value() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(sock) = UdpSocket::bind(bind) else {
                // A host without IPv6 loopback cannot run the IPv6 half.
                continue;
            };
            let ipv4 = bind.starts_with('1');
            let (level, name) = option(ipv4);
            let before = get_int_option(&sock, level, name).unwrap_or_else(|e| panic!("{e}"));
            let mut state = DfState::read(&sock).unwrap_or_else(|e| panic!("{e}"));
            assert!(!state.wanted(false), "{bind}: created without DF");
            assert!(state.wanted(true));
            assert!(!state.needs_switch(false));
            assert!(state.needs_switch(true));
            state.switch(&sock, true).unwrap_or_else(|e| panic!("{e}"));
            let on = get_int_option(&sock, level, name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(on, if ipv4 { libc::IP_PMTUDISC_DO } else { 1 }, "{bind}");
            assert!(!state.needs_switch(true));
            state.switch(&sock, false).unwrap_or_else(|e| panic!("{e}"));
            let back = get_int_option(&sock, level, name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, before, "{bind}: restored");
        }
    }

    #[test]
    fn allocation_created_with_df_keeps_it() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        set_int_option(
            &sock,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let state = DfState::read(&sock).unwrap_or_else(|e| panic!("{e}"));
        assert!(state.wanted(false) && state.wanted(true));
        assert!(!state.needs_switch(true));
    }
}
