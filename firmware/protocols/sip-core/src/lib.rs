//! Sans-IO SIP message parsing, framing and editing (RFC 3261).
//!
//! A parsed [`Message`] borrows the received bytes; header fields are slices
//! of it and the only allocation is the vector of header entries. Outgoing
//! messages are produced by splicing the original ([`MessageEditor`]) or by
//! [`build_response`], into a caller-owned buffer.
//!
//! Checks are split in two layers:
//! - [`parse`] refuses what is malformed for anyone (syntax, limits, missing
//!   or conflicting mandatory headers); [`ParseError::status`] gives the
//!   answer for a request, a malformed response is dropped.
//! - [`validate_for_proxy`] applies the RFC 3261 16.3 decisions of a proxy
//!   (Max-Forwards exhausted, unsupported scheme or proxy extension).

mod error;
pub mod framing;
mod host;
mod limits;
mod message;
mod name_addr;
pub mod names;
mod params;
mod proxy_checks;
mod response;
mod scan;
mod editor;
mod uri;
mod validate_headers;
mod values;
mod via;

pub use editor::{EditError, MessageEditor};
pub use error::ParseError;
pub use framing::{Datagram, FramingError, StreamFramer, StreamItem};
pub use host::{parse_host, parse_hostport, parse_ip_loose, Host};
pub use limits::Limits;
pub use message::{parse, parse_with, Header, HeaderValues, Message, Parts, Request, Response};
pub use name_addr::NameAddr;
pub use params::{Param, Params};
pub use proxy_checks::{validate_for_proxy, validate_for_proxy_with, ProxyPolicy, Reject};
pub use response::{branch_from_counter, branch_from_random, build_response, ResponseSpec, MAGIC_COOKIE};
pub use scan::ListItems;
pub use uri::{SipUri, Uri};
pub use values::{parse_content_length, parse_expires, parse_max_forwards, CSeq};
pub use via::{ResponseTarget, Via};
