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

use std::fmt::Write as _;
use std::net::IpAddr;

pub const CONTENT_TYPE: &str = "application/msrtc-media-relay-auth+xml";
pub const NAMESPACE: &str = "http://schemas.microsoft.com/2006/09/sip/mrasp";
/// Longest body accepted; a real request is a few hundred bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// Most `credentialsRequest` elements one request may carry (requestType `maxOccurs`).
pub const MAX_CREDENTIALS_REQUESTS: usize = 100;
/// Longest `max64CharStringType` value (`requestID`, `credentialsRequestID`).
const MAX_ID_CHARS: usize = 64;
/// `serverVersion` of responses: the spec says it SHOULD be "3.0" (2.2.3.1.2).
pub const SERVER_VERSION: &str = "3.0";
/// Protocol version sent by [`build_request`], and written in a response when the request was
/// too malformed for its own `version` to be echoed.
pub const PROTOCOL_VERSION: &str = "2.0";

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
    const ALL: [ReasonPhrase; 10] = [
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

/// Whether `n` is the element `name` of this protocol. Elements without a namespace are
/// accepted too: some senders omit the default namespace declaration.
fn is_mras_element(n: roxmltree::Node<'_, '_>, name: &str) -> bool {
    n.is_element()
        && n.tag_name().name() == name
        && n.tag_name().namespace().is_none_or(|ns| ns == NAMESPACE)
}

fn required_attr(n: roxmltree::Node<'_, '_>, name: &'static str) -> Result<String, MrasError> {
    n.attribute(name)
        .map(|v| v.trim().to_owned())
        .ok_or(MrasError::MissingAttribute(name))
}

/// A `max64CharStringType` attribute: present, non-empty, at most 64 characters.
fn required_id(n: roxmltree::Node<'_, '_>, name: &'static str) -> Result<String, MrasError> {
    let v = required_attr(n, name)?;
    if v.is_empty() || v.chars().count() > MAX_ID_CHARS {
        return Err(MrasError::BadAttribute(name));
    }
    Ok(v)
}

/// A `mrasUriType` attribute: the spec requires a SIP URI for `to` and `from`.
fn required_sip_uri(n: roxmltree::Node<'_, '_>, name: &'static str) -> Result<String, MrasError> {
    let v = required_attr(n, name)?;
    let scheme_ok = v.split_once(':').is_some_and(|(scheme, rest)| {
        (scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips"))
            && !rest.is_empty()
    });
    if !scheme_ok || v.chars().any(char::is_control) {
        return Err(MrasError::BadAttribute(name));
    }
    Ok(v)
}

/// A `versionType` attribute, `major.minor` in digits.
fn required_version(n: roxmltree::Node<'_, '_>) -> Result<String, MrasError> {
    let v = required_attr(n, "version")?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
    match v.split_once('.') {
        Some((major, minor)) if digits(major) && digits(minor) => Ok(v),
        _ => Err(MrasError::BadAttribute("version")),
    }
}

/// An `xs:positiveInteger`: optional `+`, digits, value at least 1.
fn parse_positive_integer(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().filter(|&v| v >= 1)
}

/// Parses a request body. DTDs are refused (roxmltree's default), so entity expansion
/// cannot be used to blow up memory.
pub fn parse_request(body: &[u8]) -> Result<CredentialsRequest, MrasError> {
    if body.len() > MAX_BODY {
        return Err(MrasError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| MrasError::NotUtf8)?;
    let doc = roxmltree::Document::parse(text).map_err(|e| MrasError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if !is_mras_element(root, "request") {
        return Err(MrasError::NotARequest);
    }
    let request_id = required_id(root, "requestID")?;
    let version = required_version(root)?;
    let to = required_sip_uri(root, "to")?;
    let from = required_sip_uri(root, "from")?;
    let route = match root.attribute("route") {
        None => Route::default(),
        Some(r) => Route::parse(r).ok_or(MrasError::BadRoute)?,
    };

    let mut items = root
        .children()
        .filter(|n| is_mras_element(*n, "credentialsRequest"));
    let cr = items.next().ok_or(MrasError::NoCredentialsRequest)?;
    let count = 1 + items.count();
    if count > MAX_CREDENTIALS_REQUESTS {
        return Err(MrasError::TooManyCredentialsRequests(count));
    }
    if count > 1 {
        return Err(MrasError::SeveralCredentialsRequests(count));
    }

    let credentials_request_id = required_id(cr, "credentialsRequestID")?;
    let child_text = |name: &'static str| -> Option<String> {
        cr.children()
            .find(|n| is_mras_element(*n, name))
            .map(|n| n.text().unwrap_or("").trim().to_owned())
    };
    let identity = child_text("identity")
        .filter(|s| !s.is_empty())
        .ok_or(MrasError::Missing("identity"))?;
    let location = match child_text("location") {
        None => None,
        Some(l) => Some(Location::parse(&l).ok_or(MrasError::BadLocation)?),
    };
    let duration_minutes = match child_text("duration") {
        None => None,
        Some(d) => Some(parse_positive_integer(&d).ok_or(MrasError::BadDuration)?),
    };
    Ok(CredentialsRequest {
        request_id,
        version,
        to,
        from,
        route,
        credentials_request_id,
        identity,
        location,
        duration_minutes,
    })
}

/// What goes into a successful response.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub duration_minutes: u64,
    pub relays: &'a [MediaRelay],
}

/// Escapes text for element content and double-quoted attributes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The `<response ...>` start tag. `req` is `None` when the request was too malformed to
/// echo: the spec then omits `requestID`, `to` and `from` (2.2.3.1.2).
fn response_start(x: &mut String, req: Option<&CredentialsRequest>, reason: ReasonPhrase) {
    // Writing into a String cannot fail.
    let _ = write!(
        x,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<response xmlns=\"{NAMESPACE}\""
    );
    if let Some(req) = req {
        let _ = write!(
            x,
            " requestID=\"{}\" version=\"{}\" serverVersion=\"{SERVER_VERSION}\" to=\"{}\" from=\"{}\"",
            escape(&req.request_id),
            escape(&req.version),
            escape(&req.to),
            escape(&req.from),
        );
    } else {
        let _ = write!(
            x,
            " version=\"{PROTOCOL_VERSION}\" serverVersion=\"{SERVER_VERSION}\""
        );
    }
    let _ = write!(x, " reasonPhrase=\"{}\"", reason.as_str());
}

/// One `mediaRelay`. With `route="directip"` an address literal goes out as
/// `directIPAddress`; a name cannot, so it stays a `hostName` (the schema allows either).
fn write_media_relay(x: &mut String, relay: &MediaRelay, route: Route) {
    let host_element = match (route, relay.host.parse::<IpAddr>()) {
        (Route::DirectIp, Ok(_)) => "directIPAddress",
        _ => "hostName",
    };
    let _ = write!(
        x,
        "<mediaRelay><location>{}</location><{host_element}>{}</{host_element}><udpPort>{}</udpPort><tcpPort>{}</tcpPort></mediaRelay>",
        relay.location.as_str(),
        escape(&relay.host),
        relay.udp_port,
        relay.tcp_port
    );
}

/// The response body for a granted request.
pub fn build_response(req: &CredentialsRequest, grant: &Grant<'_>) -> String {
    let mut x = String::with_capacity(1024);
    response_start(&mut x, Some(req), ReasonPhrase::Ok);
    // `duration` is an xs:positiveInteger: a lifetime under a minute still reads 1.
    let duration = grant.duration_minutes.max(1);
    let _ = write!(
        x,
        "><credentialsResponse credentialsRequestID=\"{}\">\
         <credentials><username>{}</username><password>{}</password><duration>{duration}</duration></credentials>\
         <mediaRelayList>",
        escape(&req.credentials_request_id),
        escape(grant.username),
        escape(grant.password),
    );
    for relay in grant.relays {
        write_media_relay(&mut x, relay, req.route);
    }
    x.push_str("</mediaRelayList></credentialsResponse></response>\r\n");
    x
}

/// The XML body of an error response (3.1.5.1: every failure after the media-type check
/// carries one). `req` is the parsed request when there is one, so its identifiers are echoed.
pub fn build_error_response(req: Option<&CredentialsRequest>, reason: ReasonPhrase) -> String {
    let mut x = String::with_capacity(512);
    response_start(&mut x, req, reason);
    x.push_str("/>\r\n");
    x
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

pub fn parse_response(body: &[u8]) -> Result<ParsedResponse, MrasError> {
    let text = std::str::from_utf8(body).map_err(|_| MrasError::NotUtf8)?;
    let doc = roxmltree::Document::parse(text).map_err(|e| MrasError::Xml(e.to_string()))?;
    let root = doc.root_element();
    fn find<'a, 'i>(
        n: roxmltree::Node<'a, 'i>,
        name: &'static str,
    ) -> Result<roxmltree::Node<'a, 'i>, MrasError> {
        n.descendants()
            .find(|d| is_mras_element(*d, name))
            .ok_or(MrasError::Missing(name))
    }
    fn text_of(n: roxmltree::Node<'_, '_>, name: &'static str) -> Result<String, MrasError> {
        Ok(find(n, name)?.text().unwrap_or("").trim().to_owned())
    }
    let port = |s: String| s.parse::<u16>().map_err(|_| MrasError::Missing("port"));
    let creds = find(root, "credentials")?;
    let mut relays = Vec::new();
    for r in root
        .descendants()
        .filter(|d| is_mras_element(*d, "mediaRelay"))
    {
        let host = text_of(r, "hostName").or_else(|_| text_of(r, "directIPAddress"))?;
        relays.push((
            text_of(r, "location")?,
            host,
            port(text_of(r, "udpPort")?)?,
            port(text_of(r, "tcpPort")?)?,
        ));
    }
    Ok(ParsedResponse {
        request_id: root.attribute("requestID").unwrap_or("").to_owned(),
        reason_phrase: root.attribute("reasonPhrase").unwrap_or("").to_owned(),
        username: text_of(creds, "username")?,
        password: text_of(creds, "password")?,
        duration_minutes: parse_positive_integer(&text_of(creds, "duration")?)
            .ok_or(MrasError::BadDuration)?,
        relays,
    })
}

/// A request body as an internal server would send it.
pub fn build_request(
    request_id: &str,
    identity: &str,
    location: Location,
    duration_minutes: Option<u64>,
) -> String {
    let duration = duration_minutes.map_or(String::new(), |d| format!("<duration>{d}</duration>"));
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <request requestID=\"{}\" version=\"{PROTOCOL_VERSION}\" to=\"sip:edge\" from=\"sip:pool\" xmlns=\"{NAMESPACE}\">\
         <credentialsRequest credentialsRequestID=\"{}\"><identity>{}</identity><location>{}</location>{duration}</credentialsRequest></request>",
        escape(request_id),
        escape(request_id),
        escape(identity),
        location.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request shaped as the spec describes it: XML declaration, default namespace,
    /// attributes in schema order, indentation between elements, gruu-style SIP URIs.
    const SPEC_SHAPED_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<request requestID="40961235" version="2.0"
    to="sip:edge01.contoso.com@contoso.com;gruu;opaque=srvr:MRAS:Ab12Cd34"
    from="sip:pool01.contoso.com@contoso.com;gruu;opaque=srvr:MRAS:Ef56Gh78"
    xmlns="http://schemas.microsoft.com/2006/09/sip/mrasp">
  <credentialsRequest credentialsRequestID="40961235">
    <identity>alice@contoso.com</identity>
    <location>internet</location>
    <duration>480</duration>
  </credentialsRequest>
</request>
"#;

    #[test]
    fn locations_parse_without_regard_to_case_or_spaces() {
        assert_eq!(Location::parse(" Intranet "), Some(Location::Intranet));
        assert_eq!(Location::parse("INTERNET"), Some(Location::Internet));
        assert_eq!(Location::parse("moon"), None);
    }

    fn relay(location: Location, host: &str) -> MediaRelay {
        MediaRelay {
            location,
            host: host.into(),
            udp_port: 3478,
            tcp_port: 443,
        }
    }

    /// One particle of an `xs:sequence`: any of `names`, between `min` and `max` times.
    struct Particle {
        names: &'static [&'static str],
        min: usize,
        max: usize,
    }

    const fn one(name: &'static [&'static str]) -> Particle {
        Particle {
            names: name,
            min: 1,
            max: 1,
        }
    }

    const fn optional(name: &'static [&'static str]) -> Particle {
        Particle {
            names: name,
            min: 0,
            max: 1,
        }
    }

    /// The response side of the [MS-AVEDGEA] schema: element name -> (required attributes,
    /// allowed attributes, child sequence). Leaves have an empty sequence.
    fn schema(
        name: &str,
    ) -> (
        &'static [&'static str],
        &'static [&'static str],
        Vec<Particle>,
    ) {
        match name {
            "response" => (
                &["version", "reasonPhrase"],
                &[
                    "requestID",
                    "version",
                    "serverVersion",
                    "to",
                    "from",
                    "reasonPhrase",
                ],
                vec![Particle {
                    names: &["credentialsResponse"],
                    min: 0,
                    max: 100,
                }],
            ),
            "credentialsResponse" => (
                &["credentialsRequestID"],
                &["credentialsRequestID"],
                vec![one(&["credentials"]), one(&["mediaRelayList"])],
            ),
            "credentials" => (
                &[],
                &[],
                vec![
                    one(&["username"]),
                    one(&["password"]),
                    one(&["duration"]),
                    optional(&["realm"]),
                ],
            ),
            "mediaRelayList" => (
                &[],
                &[],
                vec![Particle {
                    names: &["mediaRelay"],
                    min: 1,
                    max: usize::MAX,
                }],
            ),
            "mediaRelay" => (
                &[],
                &[],
                vec![
                    one(&["location"]),
                    one(&["hostName", "directIPAddress"]),
                    optional(&["udpPort"]),
                    optional(&["tcpPort"]),
                ],
            ),
            _ => (&[], &[], Vec::new()),
        }
    }

    /// Checks one element and its subtree against [`schema`]: namespace, attributes, child
    /// order and counts, and the simple types of the leaves.
    fn check_against_schema(n: roxmltree::Node<'_, '_>) {
        let name = n.tag_name().name();
        assert_eq!(
            n.tag_name().namespace(),
            Some(NAMESPACE),
            "<{name}> namespace"
        );
        let (required, allowed, sequence) = schema(name);
        for a in required {
            assert!(n.attribute(*a).is_some(), "<{name}> lacks required {a}");
        }
        for a in n.attributes() {
            assert!(
                allowed.contains(&a.name()),
                "<{name}> has unexpected {}",
                a.name()
            );
        }
        let children: Vec<_> = n.children().filter(|c| c.is_element()).collect();
        let mut at = 0;
        for particle in &sequence {
            let mut count = 0;
            while at < children.len()
                && count < particle.max
                && particle.names.contains(&children[at].tag_name().name())
            {
                check_against_schema(children[at]);
                at += 1;
                count += 1;
            }
            assert!(count >= particle.min, "<{name}> lacks {:?}", particle.names);
        }
        assert_eq!(
            at,
            children.len(),
            "<{name}> has children out of order or unknown"
        );
        let text = n.text().unwrap_or("");
        match name {
            "duration" => assert!(parse_positive_integer(text).is_some(), "duration {text:?}"),
            "udpPort" | "tcpPort" => assert!(text.parse::<u16>().is_ok(), "{name} {text:?}"),
            "location" => assert!(
                ["intranet", "internet"].contains(&text),
                "location {text:?}"
            ),
            "directIPAddress" => assert!(text.parse::<IpAddr>().is_ok(), "address {text:?}"),
            "username" | "password" | "hostName" => assert!(!text.is_empty(), "empty <{name}>"),
            _ => {}
        }
        if let Some(reason) = n.attribute("reasonPhrase") {
            assert!(
                ReasonPhrase::parse(reason).is_some(),
                "reasonPhrase {reason:?}"
            );
        }
        if let Some(id) = n.attribute("requestID") {
            assert!(id.chars().count() <= 64);
        }
    }

    fn check_response_document(body: &str) -> roxmltree::Document<'_> {
        let doc = roxmltree::Document::parse(body).expect("well-formed response");
        assert_eq!(doc.root_element().tag_name().name(), "response");
        check_against_schema(doc.root_element());
        doc
    }

    #[test]
    fn spec_shaped_request_parses() {
        let req = parse_request(SPEC_SHAPED_REQUEST.as_bytes()).unwrap();
        assert_eq!(
            req,
            CredentialsRequest {
                request_id: "40961235".into(),
                version: "2.0".into(),
                to: "sip:edge01.contoso.com@contoso.com;gruu;opaque=srvr:MRAS:Ab12Cd34".into(),
                from: "sip:pool01.contoso.com@contoso.com;gruu;opaque=srvr:MRAS:Ef56Gh78".into(),
                route: Route::LoadBalanced,
                credentials_request_id: "40961235".into(),
                identity: "alice@contoso.com".into(),
                location: Some(Location::Internet),
                duration_minutes: Some(480),
            }
        );
    }

    #[test]
    fn response_to_the_spec_shaped_request_follows_the_schema() {
        let req = parse_request(SPEC_SHAPED_REQUEST.as_bytes()).unwrap();
        let relays = [relay(Location::Internet, "av.contoso.com")];
        let body = build_response(
            &req,
            &Grant {
                username: "1700000000:alice@contoso.com",
                password: "c2VjcmV0",
                duration_minutes: 480,
                relays: &relays,
            },
        );
        let doc = check_response_document(&body);
        let root = doc.root_element();
        // Echoed as received: to stays to, from stays from (2.2.3.1.2).
        assert_eq!(root.attribute("to"), Some(req.to.as_str()));
        assert_eq!(root.attribute("from"), Some(req.from.as_str()));
        assert_eq!(root.attribute("requestID"), Some("40961235"));
        assert_eq!(root.attribute("version"), Some("2.0"));
        assert_eq!(root.attribute("serverVersion"), Some(SERVER_VERSION));
        assert_eq!(root.attribute("reasonPhrase"), Some("OK"));
        let cr = root.first_element_child().unwrap();
        assert_eq!(cr.attribute("credentialsRequestID"), Some("40961235"));
        let names: Vec<_> = root
            .descendants()
            .filter(|n| n.is_element())
            .map(|n| n.tag_name().name())
            .collect();
        assert_eq!(
            names,
            [
                "response",
                "credentialsResponse",
                "credentials",
                "username",
                "password",
                "duration",
                "mediaRelayList",
                "mediaRelay",
                "location",
                "hostName",
                "udpPort",
                "tcpPort"
            ]
        );
        let parsed = parse_response(body.as_bytes()).unwrap();
        assert_eq!(parsed.reason_phrase, "OK");
        assert_eq!(parsed.duration_minutes, 480);
        assert_eq!(
            parsed.relays,
            [("internet".into(), "av.contoso.com".into(), 3478, 443)]
        );
    }

    #[test]
    fn the_schema_checker_rejects_what_the_schema_forbids() {
        let ns = NAMESPACE;
        let bad = [
            // Elements of credentials out of order.
            format!("<response xmlns=\"{ns}\" version=\"2.0\" reasonPhrase=\"OK\"><credentialsResponse credentialsRequestID=\"1\"><credentials><password>p</password><username>u</username><duration>1</duration></credentials><mediaRelayList><mediaRelay><location>intranet</location><hostName>h</hostName></mediaRelay></mediaRelayList></credentialsResponse></response>"),
            // No reasonPhrase.
            format!("<response xmlns=\"{ns}\" version=\"2.0\"/>"),
            // A reasonPhrase outside the enumeration.
            format!("<response xmlns=\"{ns}\" version=\"2.0\" reasonPhrase=\"Bad Request\"/>"),
            // Zero is not a positiveInteger.
            format!("<response xmlns=\"{ns}\" version=\"2.0\" reasonPhrase=\"OK\"><credentialsResponse credentialsRequestID=\"1\"><credentials><username>u</username><password>p</password><duration>0</duration></credentials><mediaRelayList><mediaRelay><location>intranet</location><hostName>h</hostName></mediaRelay></mediaRelayList></credentialsResponse></response>"),
            // Both hostName and directIPAddress.
            format!("<response xmlns=\"{ns}\" version=\"2.0\" reasonPhrase=\"OK\"><credentialsResponse credentialsRequestID=\"1\"><credentials><username>u</username><password>p</password><duration>1</duration></credentials><mediaRelayList><mediaRelay><location>intranet</location><hostName>h</hostName><directIPAddress>10.0.0.1</directIPAddress></mediaRelay></mediaRelayList></credentialsResponse></response>"),
            // Wrong namespace.
            "<response xmlns=\"urn:other\" version=\"2.0\" reasonPhrase=\"OK\"/>".to_owned(),
        ];
        for body in bad {
            let outcome = std::panic::catch_unwind(|| {
                check_response_document(&body);
            });
            assert!(outcome.is_err(), "accepted: {body}");
        }
    }

    #[test]
    fn request_round_trip() {
        let body = build_request("r1", "alice@example.com", Location::Internet, Some(60));
        let req = parse_request(body.as_bytes()).unwrap();
        assert_eq!(req.identity, "alice@example.com");
        assert_eq!(req.location, Some(Location::Internet));
        assert_eq!(req.duration_minutes, Some(60));
        assert_eq!(req.request_id, "r1");
        assert_eq!(req.version, PROTOCOL_VERSION);
        let req2 =
            parse_request(build_request("r2", "bob", Location::Intranet, None).as_bytes()).unwrap();
        assert_eq!(req2.duration_minutes, None);
    }

    #[test]
    fn optional_elements_may_be_absent_and_positive_integers_take_a_sign() {
        let ns = NAMESPACE;
        let body = format!(
            "<request xmlns=\"{ns}\" requestID=\"a\" version=\"1.0\" to=\"sip:e\" from=\"SIPS:p\">\
             <credentialsRequest credentialsRequestID=\"b\"><identity> bob@x </identity><extension/></credentialsRequest></request>"
        );
        let req = parse_request(body.as_bytes()).unwrap();
        assert_eq!(req.identity, "bob@x");
        assert_eq!(req.location, None);
        assert_eq!(req.duration_minutes, None);
        assert_eq!(req.version, "1.0");
        let body = format!(
            "<request xmlns=\"{ns}\" requestID=\"a\" version=\"2.0\" to=\"sip:e\" from=\"sip:p\" route=\"directip\">\
             <credentialsRequest credentialsRequestID=\"b\"><identity>bob@x</identity><duration>+015</duration></credentialsRequest></request>"
        );
        let req = parse_request(body.as_bytes()).unwrap();
        assert_eq!(req.duration_minutes, Some(15));
        assert_eq!(req.route, Route::DirectIp);
    }

    #[test]
    fn direct_ip_route_names_address_relays_by_address() {
        let mut req = parse_request(SPEC_SHAPED_REQUEST.as_bytes()).unwrap();
        req.route = Route::DirectIp;
        let relays = [
            relay(Location::Intranet, "192.0.2.10"),
            relay(Location::Internet, "2001:db8::10"),
            relay(Location::Internet, "av.contoso.com"),
        ];
        let body = build_response(
            &req,
            &Grant {
                username: "u",
                password: "p",
                duration_minutes: 0,
                relays: &relays,
            },
        );
        let doc = check_response_document(&body);
        let hosts: Vec<_> = doc
            .descendants()
            .filter(|n| is_mras_element(*n, "mediaRelay"))
            .map(|r| {
                let host = r.children().filter(|c| c.is_element()).nth(1).unwrap();
                (host.tag_name().name(), host.text().unwrap_or(""))
            })
            .collect();
        assert_eq!(
            hosts,
            [
                ("directIPAddress", "192.0.2.10"),
                ("directIPAddress", "2001:db8::10"),
                ("hostName", "av.contoso.com")
            ]
        );
        // A lifetime under a minute still writes a positiveInteger.
        assert_eq!(parse_response(body.as_bytes()).unwrap().duration_minutes, 1);
    }

    #[test]
    fn error_responses_follow_the_schema() {
        let req = parse_request(SPEC_SHAPED_REQUEST.as_bytes()).unwrap();
        let body = build_error_response(Some(&req), ReasonPhrase::Forbidden);
        let doc = check_response_document(&body);
        let root = doc.root_element();
        assert_eq!(root.attribute("reasonPhrase"), Some("Forbidden"));
        assert_eq!(root.attribute("requestID"), Some("40961235"));
        assert_eq!(root.attribute("to"), Some(req.to.as_str()));
        assert!(root.first_element_child().is_none());

        // Malformed: nothing of the request is echoed.
        let err = parse_request(b"<request").unwrap_err();
        let body = build_error_response(None, err.reason_phrase());
        let doc = check_response_document(&body);
        let root = doc.root_element();
        assert_eq!(root.attribute("reasonPhrase"), Some("Request Malformed"));
        for absent in ["requestID", "to", "from"] {
            assert_eq!(root.attribute(absent), None);
        }
        assert_eq!(root.attribute("version"), Some(PROTOCOL_VERSION));

        for r in ReasonPhrase::ALL {
            assert_eq!(ReasonPhrase::parse(r.as_str()), Some(r));
        }
        assert_eq!(ReasonPhrase::parse("ok"), None);
    }

    #[test]
    fn response_round_trip_escapes() {
        let req = parse_request(build_request("<&>", "a@b", Location::Intranet, None).as_bytes())
            .unwrap();
        assert_eq!(req.request_id, "<&>");
        let relays = [relay(Location::Intranet, "edge.example.com")];
        let body = build_response(
            &req,
            &Grant {
                username: "1700000000:a@b",
                password: "pa<ss>&",
                duration_minutes: 480,
                relays: &relays,
            },
        );
        check_response_document(&body);
        let parsed = parse_response(body.as_bytes()).unwrap();
        assert_eq!(parsed.request_id, "<&>");
        assert_eq!(parsed.password, "pa<ss>&");
        assert_eq!(parsed.duration_minutes, 480);
        assert_eq!(
            parsed.relays,
            [("intranet".into(), "edge.example.com".into(), 3478, 443)]
        );
    }

    #[test]
    fn malformed_bodies_get_distinct_errors() {
        let ns = NAMESPACE;
        let head = format!(
            "<request xmlns=\"{ns}\" requestID=\"r\" version=\"2.0\" to=\"sip:e\" from=\"sip:p\">"
        );
        let cr = |inner: &str| {
            format!("{head}<credentialsRequest credentialsRequestID=\"c\">{inner}</credentialsRequest></request>")
        };
        let many = |n: usize| format!("{head}{}</request>", "<credentialsRequest/>".repeat(n));
        let cases: Vec<(String, MrasError)> = vec![
            ("<request".into(), MrasError::Xml(String::new())),
            ("<other/>".into(), MrasError::NotARequest),
            ("<request xmlns=\"urn:other\"><credentialsRequest/></request>".to_owned(), MrasError::NotARequest),
            (format!("<request xmlns=\"{ns}\"/>"), MrasError::MissingAttribute("requestID")),
            (format!("<request xmlns=\"{ns}\" requestID=\"{}\"/>", "x".repeat(65)), MrasError::BadAttribute("requestID")),
            (format!("<request xmlns=\"{ns}\" requestID=\"r\" to=\"sip:e\" from=\"sip:p\"/>"), MrasError::MissingAttribute("version")),
            (format!("<request xmlns=\"{ns}\" requestID=\"r\" version=\"two\" to=\"sip:e\" from=\"sip:p\"/>"), MrasError::BadAttribute("version")),
            (format!("<request xmlns=\"{ns}\" requestID=\"r\" version=\"2.0\" to=\"tel:+1\" from=\"sip:p\"/>"), MrasError::BadAttribute("to")),
            (format!("<request xmlns=\"{ns}\" requestID=\"r\" version=\"2.0\" to=\"sip:e\"/>"), MrasError::MissingAttribute("from")),
            (format!("<request xmlns=\"{ns}\" requestID=\"r\" version=\"2.0\" to=\"sip:e\" from=\"sip:p\" route=\"anycast\"/>"), MrasError::BadRoute),
            (format!("{head}</request>"), MrasError::NoCredentialsRequest),
            (many(2), MrasError::SeveralCredentialsRequests(2)),
            (many(101), MrasError::TooManyCredentialsRequests(101)),
            (format!("{head}<credentialsRequest><identity>a</identity></credentialsRequest></request>"), MrasError::MissingAttribute("credentialsRequestID")),
            (cr("<location>intranet</location>"), MrasError::Missing("identity")),
            (cr("<identity>a</identity><location>moon</location>"), MrasError::BadLocation),
            (cr("<identity>a</identity><duration>-5</duration>"), MrasError::BadDuration),
            (cr("<identity>a</identity><duration>0</duration>"), MrasError::BadDuration),
            (cr("<identity>a</identity><duration>99999999999999999999999</duration>"), MrasError::BadDuration),
            ("<!DOCTYPE r [<!ENTITY a \"aaaa\">]><request/>".into(), MrasError::Xml(String::new())),
        ];
        for (body, want) in cases {
            let got = parse_request(body.as_bytes()).unwrap_err();
            match (&got, &want) {
                (MrasError::Xml(_), MrasError::Xml(_)) => {}
                _ => assert_eq!(got, want, "{body}"),
            }
        }
        assert_eq!(
            parse_request(&[0xff, 0xfe]).unwrap_err(),
            MrasError::NotUtf8
        );
        assert_eq!(
            parse_request(&vec![b' '; MAX_BODY + 1]).unwrap_err(),
            MrasError::TooLarge
        );
        assert_eq!(
            MrasError::TooManyCredentialsRequests(101).reason_phrase(),
            ReasonPhrase::RequestTooLarge
        );
        assert_eq!(
            MrasError::TooLarge.reason_phrase(),
            ReasonPhrase::RequestTooLarge
        );
        assert_eq!(
            MrasError::SeveralCredentialsRequests(2).reason_phrase(),
            ReasonPhrase::NotSupported
        );
        assert_eq!(
            MrasError::BadDuration.reason_phrase(),
            ReasonPhrase::RequestMalformed
        );
    }
}
