//! What can be wrong with a body, and the `reasonPhrase` each fault calls for.

use crate::{ReasonPhrase, MAX_BODY, MAX_CREDENTIALS_REQUESTS, NAMESPACE};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MrasError {
    #[error("body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("body is not well-formed XML: {0}")]
    Xml(String),
    #[error("root element must be <request> in namespace {NAMESPACE}")]
    NotARequest,
    #[error("<request> has no {0} attribute")]
    MissingAttribute(&'static str),
    #[error("{0} attribute is not valid")]
    BadAttribute(&'static str),
    #[error("route must be loadbalanced or directip")]
    BadRoute,
    #[error("request has no <credentialsRequest>")]
    NoCredentialsRequest,
    #[error("request has {0} <credentialsRequest> elements, at most {MAX_CREDENTIALS_REQUESTS} are allowed")]
    TooManyCredentialsRequests(usize),
    #[error("request has {0} <credentialsRequest> elements; this server answers one per request")]
    SeveralCredentialsRequests(usize),
    #[error("<credentialsRequest> has no <{0}>")]
    Missing(&'static str),
    #[error("<location> must be intranet or internet")]
    BadLocation,
    #[error("<duration> must be a positive number of minutes")]
    BadDuration,
}

impl MrasError {
    /// The `reasonPhrase` of the error response this fault calls for.
    pub fn reason_phrase(&self) -> ReasonPhrase {
        match self {
            MrasError::TooLarge | MrasError::TooManyCredentialsRequests(_) => {
                ReasonPhrase::RequestTooLarge
            }
            MrasError::SeveralCredentialsRequests(_) => ReasonPhrase::NotSupported,
            _ => ReasonPhrase::RequestMalformed,
        }
    }
}
