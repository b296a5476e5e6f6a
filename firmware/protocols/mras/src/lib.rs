//! MS-AVEDGEA credential request and response bodies
//! (`application/msrtc-media-relay-auth+xml`), the SIP SERVICE payload of the A/V
//! Authentication Service. Sans-IO: bytes in, bytes out; the role frames SIP and decides
//! who gets a credential, this crate only reads and writes the XML.
//!
//! Shapes follow the [MS-AVEDGEA] schema (namespace [`NAMESPACE`]):
//! - `request` (2.2.2.1.2 requestType): attributes `requestID`, `version`, `to`, `from`
//!   (required) and `route` (optional, default `loadbalanced`); 1 to 100 `credentialsRequest`.
//! - `credentialsRequest` (credentialsRequestType): attribute `credentialsRequestID`
//!   (required); sequence `identity`, `location`?, `duration`? (minutes).
//! - `response` (2.2.3.1.2 responseType): attributes `requestID`, `version` (required),
//!   `serverVersion`, `to`, `from` (the request's own values, not swapped) and `reasonPhrase`
//!   (required); 0 to 100 `credentialsResponse`.
//! - `credentialsResponse` (2.2.3.1.3.2): attribute `credentialsRequestID`; sequence
//!   `credentials`, `mediaRelayList`.
//! - `credentials` (2.2.4.3): sequence `username`, `password`, `duration`, `realm`?.
//! - `mediaRelay` (2.2.4.4): sequence `location`, (`hostName` | `directIPAddress`),
//!   `udpPort`?, `tcpPort`?.
//!
//! Parsing is tolerant where the schema is (optional elements, element order, unknown
//! elements are skipped) and strict where a value has a defined type (required attributes,
//! 64-character identifiers, SIP URIs, positive integers, enumerations).

mod error;
mod model;
mod request;
mod response;
mod xml;

pub use error::MrasError;
pub use model::{
    CredentialsRequest, Grant, Location, MediaRelay, ParsedResponse, ReasonPhrase, Route,
};
pub use request::{build_request, parse_request};
pub use response::{build_error_response, build_response, parse_response};

pub const CONTENT_TYPE: &str = "application/msrtc-media-relay-auth+xml";
pub const NAMESPACE: &str = "http://schemas.microsoft.com/2006/09/sip/mrasp";
/// Longest body accepted; a real request is a few hundred bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// Most `credentialsRequest` elements one request may carry (requestType `maxOccurs`).
pub const MAX_CREDENTIALS_REQUESTS: usize = 100;
/// Longest `max64CharStringType` value (`requestID`, `credentialsRequestID`).
pub(crate) const MAX_ID_CHARS: usize = 64;
/// `serverVersion` of responses: the spec says it SHOULD be "3.0" (2.2.3.1.2).
pub const SERVER_VERSION: &str = "3.0";
/// Protocol version sent by [`build_request`], and written in a response when the request was
/// too malformed for its own `version` to be echoed.
pub const PROTOCOL_VERSION: &str = "2.0";

#[cfg(test)]
mod tests;
