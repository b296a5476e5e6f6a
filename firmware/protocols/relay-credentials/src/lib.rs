//! Short-lived relay credentials (TURN REST convention) with rotating keys.
//!
//! username = `<expiry unix seconds>:<identity>`,
//! password = base64(HMAC-SHA1(key secret, username)), as coturn's `--use-auth-secret`
//! computes it. Verification needs no state beyond the key ring. How the roles keep the
//! ring in the appliance store is [`stored`].

mod error;
mod keyring;
pub mod stored;
mod username;

pub use error::{CredentialError, KeyError, MalformedReason};
pub use keyring::{password, Credential, KeyRing, RelayKey, MIN_SECRET_LEN};
pub use username::{parse_username, ParsedUsername};
