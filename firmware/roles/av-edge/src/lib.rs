//! A/V Edge role: the STUN/TURN relay.
//!
//! The tokio side (this crate) authenticates and answers requests and keeps the
//! allocation table; the relay threads of `media-relay` forward UDP clients' media.
//! TCP/TLS clients' media is forwarded by their connection tasks.

mod allocate_request;
mod allocation;
mod auth;
pub mod credentials;
pub mod policy;
mod reconfigure;
mod relay_sockets;
mod role;
mod server;
mod settings;
mod source_budget;
mod stream;
mod stream_clock;
mod tcp_bandwidth;
mod tcp_relay;
mod udp;

pub use role::{start, AvEdge};
