//! The request body: parsed by the A/V Authentication Service, built by internal servers
//! (and this appliance's tests and benchmark).

use crate::xml::{
    escape, is_mras_element, parse_positive_integer, required_id, required_sip_uri,
    required_version,
};
use crate::{
    CredentialsRequest, Location, MrasError, Route, MAX_BODY, MAX_CREDENTIALS_REQUESTS, NAMESPACE,
    PROTOCOL_VERSION,
};

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
