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
//!
//! ```
//! use sip_core::{parse, validate_for_proxy, Message, MessageEditor};
//!
//! let received = b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/TLS 192.0.2.1;branch=z9hG4bK77;rport\r\n\
//!     Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\n\
//!     From: <sip:alice@example.net>;tag=1\r\nCall-ID: x1\r\nCSeq: 1 OPTIONS\r\n\
//!     P-Asserted-Identity: <sip:ceo@example.com>\r\nContent-Length: 0\r\n\r\n";
//! let message = parse(received).expect("valid");
//! let Message::Request(request) = &message else { unreachable!() };
//! assert_eq!(request.method(), "OPTIONS");
//! assert!(validate_for_proxy(request).is_ok());
//!
//! let mut editor = MessageEditor::new(request.parts());
//! editor.insert_top("Via", "SIP/2.0/TLS edge.example.com;branch=z9hG4bKe1");
//! editor.remove_all("P-Asserted-Identity");
//! editor.decrement_max_forwards();
//! let mut out = Vec::new();
//! editor.write_into(&mut out).expect("edits are disjoint");
//!
//! let forwarded = parse(&out).expect("still valid");
//! assert_eq!(forwarded.header("via").count(), 2);
//! assert_eq!(forwarded.max_forwards(), Some(69));
//! assert!(!forwarded.has_header("p-asserted-identity"));
//! ```

mod editor;
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
mod uri;
mod validate_headers;
mod values;
mod via;

pub use editor::{EditError, MessageEditor};
pub use error::ParseError;
pub use framing::{parse_datagram, Datagram, FramingError, StreamFramer, StreamItem};
pub use host::{parse_host, parse_hostport, parse_ip_loose, Host};
pub use limits::Limits;
pub use message::{parse, parse_with, Header, HeaderValues, Message, Parts, Request, Response};
pub use name_addr::NameAddr;
pub use params::{Param, Params};
pub use proxy_checks::{validate_for_proxy, validate_for_proxy_with, ProxyPolicy, Reject};
pub use response::{
    branch_from_counter, branch_from_random, build_response, ResponseSpec, MAGIC_COOKIE,
};
pub use scan::ListItems;
pub use uri::{SipUri, Uri};
pub use values::{parse_content_length, parse_expires, parse_max_forwards, CSeq};
pub use via::{ResponseTarget, Via};
