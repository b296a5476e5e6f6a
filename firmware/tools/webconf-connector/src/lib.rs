//! What a conferencing server runs to sit behind the Web Conferencing Edge ([`connector`]),
//! and a reference meeting client ([`client`]); the edge's tests and the demo use both.

pub mod bundle;
pub mod client;
pub mod connector;
pub mod pem;
