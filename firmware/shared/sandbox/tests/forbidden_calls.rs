//! Each class's filter on a thread of its own (a filter binds only the thread that installs
//! it and the threads it spawns): what the class forbids fails with EPERM, what it needs works.

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::thread;

use edged_sandbox::ThreadClass;

fn is_eperm(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EPERM) || e.kind() == ErrorKind::PermissionDenied
}

#[test]
fn a_relay_thread_cannot_open_a_file_or_make_a_socket_but_relays() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    thread::spawn(move || {
        ThreadClass::Relay.install().expect("filter installed");
        let open = std::fs::File::open("/etc/hostname").expect_err("open is forbidden");
        assert!(is_eperm(&open), "{open}");
        let socket = UdpSocket::bind("127.0.0.1:0").expect_err("socket is forbidden");
        assert!(is_eperm(&socket), "{socket}");
        // What it is for still works: a datagram out of a socket it was handed.
        relay_socket
            .send_to(b"media", peer_addr)
            .expect("sendto allowed");
    })
    .join()
    .expect("the relay thread ran to its end");
    let mut buf = [0u8; 16];
    let (n, _) = peer.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"media");
}

#[test]
fn no_thread_of_the_process_class_can_run_a_program() {
    thread::spawn(|| {
        ThreadClass::Process.install().expect("filter installed");
        let err = std::process::Command::new("/bin/true")
            .status()
            .expect_err("execve is forbidden");
        assert!(is_eperm(&err), "{err}");
        // Ordinary work is untouched.
        std::fs::File::open("/etc/hostname").expect("open allowed");
        UdpSocket::bind("127.0.0.1:0").expect("socket allowed");
    })
    .join()
    .expect("the thread ran to its end");
    // The test's own thread has no filter: a program still runs here.
    assert!(std::process::Command::new("/bin/true")
        .status()
        .unwrap()
        .success());
}
