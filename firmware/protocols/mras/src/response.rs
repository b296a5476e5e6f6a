//! The response body: built by the A/V Authentication Service, parsed by clients (and this
//! appliance's tests).

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::xml::{escape, is_mras_element, parse_positive_integer};
use crate::{
    CredentialsRequest, Grant, MediaRelay, MrasError, ParsedResponse, ReasonPhrase, Route,
    NAMESPACE, PROTOCOL_VERSION, SERVER_VERSION,
};

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
