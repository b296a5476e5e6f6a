//! The values a request and a response carry, as the schema's types name them.

/// `reasonPhraseType` (2.2.4.7): the only values a response's `reasonPhrase` may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonPhrase {
    Ok,
    RequestMalformed,
    RequestTooLarge,
    NotSupported,
    ServerBusy,
    TimeOut,
    Forbidden,
    InternalServerError,
    OtherFailure,
    VersionMismatch,
}

impl ReasonPhrase {
    pub(crate) const ALL: [ReasonPhrase; 10] = [
        ReasonPhrase::Ok,
        ReasonPhrase::RequestMalformed,
        ReasonPhrase::RequestTooLarge,
        ReasonPhrase::NotSupported,
        ReasonPhrase::ServerBusy,
        ReasonPhrase::TimeOut,
        ReasonPhrase::Forbidden,
        ReasonPhrase::InternalServerError,
        ReasonPhrase::OtherFailure,
        ReasonPhrase::VersionMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonPhrase::Ok => "OK",
            ReasonPhrase::RequestMalformed => "Request Malformed",
            ReasonPhrase::RequestTooLarge => "Request Too Large",
            ReasonPhrase::NotSupported => "Not Supported",
            ReasonPhrase::ServerBusy => "Server Busy",
            ReasonPhrase::TimeOut => "Time Out",
            ReasonPhrase::Forbidden => "Forbidden",
            ReasonPhrase::InternalServerError => "Internal Server Error",
            ReasonPhrase::OtherFailure => "Other Failure",
            ReasonPhrase::VersionMismatch => "Version Mismatch",
        }
    }

    /// Exact match: the schema enumeration is case-sensitive.
    pub fn parse(s: &str) -> Option<ReasonPhrase> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// `routeType`: how the relays are named in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// Relays by host name (FQDN or address), the schema default.
    #[default]
    LoadBalanced,
    /// Relays by address (`directIPAddress`) wherever the address is known.
    DirectIp,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::LoadBalanced => "loadbalanced",
            Route::DirectIp => "directip",
        }
    }

    pub fn parse(s: &str) -> Option<Route> {
        match s.trim() {
            "loadbalanced" => Some(Route::LoadBalanced),
            "directip" => Some(Route::DirectIp),
            _ => None,
        }
    }
}

/// `locationType`: where a client is, and so which relay interface it can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Intranet,
    Internet,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Intranet => "intranet",
            Location::Internet => "internet",
        }
    }

    pub fn parse(s: &str) -> Option<Location> {
        match s.trim() {
            l if l.eq_ignore_ascii_case("intranet") => Some(Location::Intranet),
            l if l.eq_ignore_ascii_case("internet") => Some(Location::Internet),
            _ => None,
        }
    }
}

/// One `mediaRelay` of a response: a relay interface as the client should reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRelay {
    pub location: Location,
    /// Host name or address literal as clients should use it.
    pub host: String,
    pub udp_port: u16,
    pub tcp_port: u16,
}

/// A parsed credentials request: the `request` attributes and its `credentialsRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsRequest {
    pub request_id: String,
    /// The client's protocol version, echoed in the response.
    pub version: String,
    /// The `to`/`from` attributes, echoed unchanged in the response.
    pub to: String,
    pub from: String,
    pub route: Route,
    pub credentials_request_id: String,
    pub identity: String,
    /// `None` when the request names no location: every relay is then offered.
    pub location: Option<Location>,
    /// Minutes; `None` asks for the default.
    pub duration_minutes: Option<u64>,
}

/// What goes into a successful response.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub duration_minutes: u64,
    pub relays: &'a [MediaRelay],
}

/// A parsed response, for clients and tests of this appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedResponse {
    pub request_id: String,
    pub reason_phrase: String,
    pub username: String,
    pub password: String,
    pub duration_minutes: u64,
    /// (location, host name or direct address, udp port, tcp port)
    pub relays: Vec<(String, String, u16, u16)>,
}
