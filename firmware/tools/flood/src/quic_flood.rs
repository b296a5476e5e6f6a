//! Random-source QUIC Initials: each one a real client Initial (a fresh connection id and
//! ClientHello, from quinn-proto without a socket), sent from a random spoofed source. The
//! server must either answer statelessly (Retry) or spend a handshake on an address that
//! will never answer; the answers are counted where they land.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use quinn_proto::crypto::rustls::QuicClientConfig;
use quinn_proto::{ClientConfig, Endpoint, EndpointConfig};

use crate::pacing::{paced, Budget};
use crate::raw::{build_udp, count_answers, RawSender};
use crate::report::Report;
use crate::sources::Sources;

/// Makes client Initials for `target`; the endpoint forgets each connection at once.
pub struct InitialMaker {
    endpoint: Endpoint,
    config: ClientConfig,
    target: SocketAddr,
    server_name: String,
}

impl InitialMaker {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        target: SocketAddr,
        server_name: &str,
    ) -> Result<Self> {
        let crypto = QuicClientConfig::try_from(tls).context("QUIC client TLS configuration")?;
        Ok(InitialMaker {
            endpoint: Endpoint::new(Arc::new(EndpointConfig::default()), None, false, None),
            config: ClientConfig::new(Arc::new(crypto)),
            target,
            server_name: server_name.into(),
        })
    }

    /// One Initial datagram into `out`.
    pub fn next(&mut self, out: &mut Vec<u8>) -> Result<()> {
        let now = Instant::now();
        let (handle, mut conn) = self
            .endpoint
            .connect(now, self.config.clone(), self.target, &self.server_name)
            .context("quinn-proto connect")?;
        out.clear();
        let t = conn
            .poll_transmit(now, 1, out)
            .context("no Initial to send")?;
        out.truncate(t.size);
        // Forget the connection: nothing will ever answer it here.
        drop(conn);
        let _ = self
            .endpoint
            .handle_event(handle, quinn_proto::EndpointEvent::drained());
        Ok(())
    }
}

pub fn run(
    target: SocketAddrV4,
    sources: Sources,
    tls: Arc<rustls::ClientConfig>,
    server_name: &str,
    budget: Budget,
) -> Result<Report> {
    let mut maker = InitialMaker::new(tls, SocketAddr::V4(target), server_name)?;
    let sender = RawSender::new()?;
    let stop = Arc::new(AtomicBool::new(false));
    let counter = count_answers(target, stop.clone())?;
    let mut rng = rand::thread_rng();
    let (mut initial, mut packet) = (Vec::with_capacity(1500), Vec::with_capacity(1500));
    let (mut sent_bytes, mut failed) = (0u64, 0u64);
    let mut result = Ok(());
    let sent = paced(budget, |_| {
        if let Err(e) = maker.next(&mut initial) {
            result = Err(e);
            return;
        }
        let src = SocketAddrV4::new(
            sources.random(&mut rng),
            rand::Rng::gen_range(&mut rng, 1024..65535),
        );
        build_udp(&mut packet, src, target, &initial);
        if sender.send(&packet, target) {
            sent_bytes += initial.len() as u64;
        } else {
            failed += 1;
        }
    });
    result?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let answers = counter
        .join()
        .map_err(|_| anyhow::anyhow!("answer counter panicked"))?;
    let mut r = Report::new();
    r.add("sent", sent - failed)
        .add("send_failed", failed)
        .add("sent_bytes", sent_bytes)
        .add("answers", answers.packets)
        .add("answer_bytes", answers.payload_bytes)
        .ratio("bytes_out_per_in", answers.payload_bytes, sent_bytes);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_are_long_header_padded_and_each_one_new() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let mut m =
            InitialMaker::new(Arc::new(tls), "10.77.0.1:11443".parse().unwrap(), "edge").unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        m.next(&mut a).unwrap();
        m.next(&mut b).unwrap();
        assert!(a.len() >= 1200, "{}", a.len());
        assert_eq!(a[0] & 0xf0, 0xc0, "long header, Initial");
        // Different destination connection ids: every Initial is a new handshake.
        assert_ne!(a[6..14], b[6..14]);
    }
}
