//! Web conferencing session keys and the wire format of the Web Conferencing Edge.
//!
//! The internal conferencing server mints a session key (a token) for each meeting
//! participant with a secret it shares with the edge; the edge checks the token in the
//! client's first frame before a single byte reaches the inside. Everything here is
//! sans-IO: pure functions over byte slices and Unix timestamps, so every rule is tested
//! without sockets.
//!
//! - [`token`]: the token itself (conference id, role, issue and expiry times, key id,
//!   HMAC-SHA256) and the age limits the edge puts on it.
//! - [`keyring`]: shared secrets with ids, rotation with overlap, minting and verification.
//! - [`wire`]: frames on the client leg and on the internal leg, and the close codes.

pub mod keyring;
pub mod token;
pub mod wire;

pub use keyring::{KeyRing, KeyRingError, SessionSecret};
pub use token::{Claims, ParticipantRole, TokenLimits, VerifyError};
pub use wire::CloseCode;
