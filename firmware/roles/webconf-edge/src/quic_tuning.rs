//! QUIC settings of the internal leg (conferencing servers connect in on it).
//!
//! Larger packets (path MTU discovery up to 64 KiB on loopback, found within a second),
//! 4 MiB socket buffers and a relaxed loss time threshold were measured on the benchmark:
//! no gain in bytes per CPU-second of the edge (263 against 266 MB with the defaults), and
//! under a loaded host the 400-session test then lost its internal connection about one
//! run in four. So the leg keeps quinn's defaults for packet size and loss detection.

use std::sync::Arc;
use std::time::Duration;

pub fn internal_transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    // Control streams only come from the server; session streams are opened by the edge.
    t.max_concurrent_bidi_streams(16u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    // A conferencing server that vanishes (power cut, kill -9) is noticed within seconds,
    // so its sessions are closed with "server gone" instead of hanging.
    t.keep_alive_interval(Some(Duration::from_secs(2)));
    t.max_idle_timeout(Some(quinn::VarInt::from_u32(8_000).into()));
    Arc::new(t)
}
