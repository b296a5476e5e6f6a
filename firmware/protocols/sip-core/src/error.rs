//! Parse errors, each mapped to the SIP status an edge answers a request with.

use thiserror::Error;

/// Why a message was refused by the parser.
///
/// A request that fails to parse is answered with [`ParseError::status`] and
/// [`ParseError::reason`]; a response that fails to parse is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("message is empty")]
    Empty,
    #[error("message head is not valid UTF-8")]
    NotUtf8,
    #[error("malformed start line")]
    BadStartLine,
    #[error("malformed request method")]
    BadMethod,
    #[error("malformed Request-URI")]
    BadRequestUri,
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    #[error("malformed SIP version")]
    BadVersion,
    #[error("status code outside 100-699")]
    BadStatusCode,
    #[error("malformed header line")]
    BadHeaderLine,
    #[error("header section not terminated by an empty line")]
    UnterminatedHead,
    #[error("line longer than the configured limit")]
    LineTooLong,
    #[error("more header fields than the configured limit")]
    TooManyHeaders,
    #[error("message larger than the configured limit")]
    MessageTooLarge,
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} appears more than once")]
    DuplicateHeader(&'static str),
    #[error("invalid {0} header value")]
    BadHeaderValue(&'static str),
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    #[error("Content-Length is not a number")]
    BadContentLength,
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    #[error("body shorter than Content-Length")]
    BodyTooShort,
    #[error("unbalanced quotes in {0}")]
    UnbalancedQuotes(&'static str),
    #[error("malformed URI")]
    BadUri,
    #[error("malformed host or IPv6 reference")]
    BadHost,
}

impl ParseError {
    /// Status a request failing this way is answered with (RFC 3261 21.4).
    pub fn status(&self) -> u16 {
        match self {
            ParseError::UnsupportedVersion => 505,
            ParseError::MessageTooLarge => 513,
            _ => 400,
        }
    }

    /// Short reason phrase for the answer; it names the fault so the peer
    /// can fix it, without echoing any of its bytes back.
    pub fn reason(&self) -> &'static str {
        match self {
            ParseError::Empty | ParseError::NotUtf8 => "Bad Request",
            ParseError::BadStartLine => "Malformed Request Line",
            ParseError::BadMethod => "Malformed Method",
            ParseError::BadRequestUri => "Malformed Request-URI",
            ParseError::UnsupportedVersion => "Version Not Supported",
            ParseError::BadVersion => "Malformed SIP Version",
            ParseError::BadStatusCode => "Bad Status Code",
            ParseError::BadHeaderLine => "Malformed Header",
            ParseError::UnterminatedHead => "Incomplete Header Section",
            ParseError::LineTooLong => "Line Too Long",
            ParseError::TooManyHeaders => "Too Many Headers",
            ParseError::MessageTooLarge => "Message Too Large",
            ParseError::MissingHeader(_) => "Missing Mandatory Header",
            ParseError::DuplicateHeader(_) => "Duplicate Header",
            ParseError::BadHeaderValue(name) => bad_value_reason(name),
            ParseError::CSeqMethodMismatch => "CSeq Method Mismatch",
            ParseError::BadContentLength => "Malformed Content-Length",
            ParseError::ConflictingContentLength => "Conflicting Content-Length",
            ParseError::BodyTooShort => "Body Shorter Than Content-Length",
            ParseError::UnbalancedQuotes(_) => "Unbalanced Quotes",
            ParseError::BadUri => "Malformed URI",
            ParseError::BadHost => "Malformed Host",
        }
    }
}

fn bad_value_reason(name: &str) -> &'static str {
    match name {
        "Via" => "Malformed Via",
        "CSeq" => "Malformed CSeq",
        "Max-Forwards" => "Malformed Max-Forwards",
        "From" => "Malformed From",
        "To" => "Malformed To",
        "Contact" => "Malformed Contact",
        "Call-ID" => "Malformed Call-ID",
        "Date" => "Malformed Date",
        _ => "Malformed Header Value",
    }
}
