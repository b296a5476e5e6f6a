//! Web Conferencing Edge role: session-key admission over TLS and QUIC.
//!
//! External meeting clients reach the external port over TLS/TCP or QUIC/UDP (same port,
//! ALPN `edged-webconf/1`). Their first frame carries the conference id and a session key
//! minted by the internal conferencing server; nothing goes inside before the key checks
//! out. Conferencing servers connect *out* to the edge's internal port (TCP with mutual
//! TLS, HTTP/2 streams: `webconf_link`) and register their conferences; each admitted
//! session becomes its own stream over that connection. The edge never opens a connection towards the internal network.
//!
//! Modules: [`settings`] (live settings), [`keys`] (session-key ring in the store),
//! `admission` (first frame), `relay` (bytes of one session), `external` (client
//! listeners), `quic_admission` (Retry or handshake for a QUIC attempt), `internal` (server listener and links), [`pool`] (routing), [`limits`],
//! [`metrics`], [`bundle`] (demo connector bundle), `rotation` (key rotation and listing),
//! `role` (start, status, apply, drain, admin queries `keys` and action `rotate`).

mod admission;
pub mod bundle;
mod external;
mod internal;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod pool;
mod quic_admission;
mod relay;
mod role;
mod rotation;
pub mod settings;
mod shared;

pub use role::{start, start_edge, WebconfEdge};
pub use session_key::wire::{ALPN_CLIENT, ALPN_INTERNAL};
