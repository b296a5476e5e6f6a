//! TURN load generator and media client for tests and benchmarks.
//!
//! Real TURN clients allocate, permit and bind a channel each, then every flow sends
//! timestamped packets at a set rate in both directions (client to peer as ChannelData,
//! peer to client through the relayed address). The receivers measure loss, one-way
//! latency percentiles and jitter (RFC 3550 interarrival jitter). In SRTP mode every packet
//! is real SRTP and the receivers prove each one arrived bit for bit.

pub mod client;
pub mod run;
pub mod srtp;
pub mod stats;
