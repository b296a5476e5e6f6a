//! Parse-level header checks: what makes a message malformed regardless of
//! who receives it (RFC 3261 7, 8.1.1, 20 and the RFC 4475 invalid cases).

use crate::error::ParseError;
use crate::message::Parts;
use crate::name_addr::NameAddr;
use crate::names::{full_name, same_header};
use crate::scan::{trim_lws, ListItems};
use crate::values::{
    parse_expires, parse_max_forwards, validate_call_id, validate_content_type, validate_date,
    validate_option_tags, CSeq,
};
use crate::via::Via;

/// Headers every request and response carries (RFC 3261 8.1.1).
const MANDATORY: [&str; 5] = ["Via", "To", "From", "Call-ID", "CSeq"];

/// Headers that may appear only once; several To/From/Call-ID/CSeq make
/// the dialog and transaction ambiguous (`multi01`).
const SINGLETONS: [&str; 8] =
    ["To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Type", "Expires", "Date"];

pub(crate) fn check_headers(parts: &Parts<'_>, request_method: Option<&str>) -> Result<(), ParseError> {
    for name in MANDATORY {
        if !parts.has_header(name) {
            return Err(ParseError::MissingHeader(name));
        }
    }
    for name in SINGLETONS {
        if parts.header_fields(name).nth(1).is_some() {
            return Err(ParseError::DuplicateHeader(name));
        }
    }
    for field in parts.headers() {
        check_field(full_name(field.name), field.value, request_method)?;
    }
    Ok(())
}

fn check_field(name: &str, value: &str, request_method: Option<&str>) -> Result<(), ParseError> {
    let is = |known: &str| same_header(name, known);
    if is("Via") {
        for item in ListItems::new(value) {
            Via::parse(item)?;
        }
    } else if is("From") {
        NameAddr::parse(value, "From")?;
    } else if is("To") {
        NameAddr::parse(value, "To")?;
    } else if is("Contact") {
        if trim_lws(value) != "*" {
            for item in ListItems::new(value) {
                NameAddr::parse(item, "Contact")?;
            }
        }
    } else if is("Route") || is("Record-Route") {
        let header = if is("Route") { "Route" } else { "Record-Route" };
        for item in ListItems::new(value) {
            if !NameAddr::parse(item, header)?.angle_brackets {
                return Err(ParseError::BadHeaderValue(header));
            }
        }
    } else if is("CSeq") {
        let cseq = CSeq::parse(value)?;
        // Methods are case-sensitive (RFC 3261 7.1).
        if request_method.is_some_and(|m| m != cseq.method) {
            return Err(ParseError::CSeqMethodMismatch);
        }
    } else if is("Max-Forwards") {
        parse_max_forwards(value)?;
    } else if is("Call-ID") {
        validate_call_id(value)?;
    } else if is("Content-Type") {
        validate_content_type(value)?;
    } else if is("Date") {
        validate_date(value)?;
    } else if is("Expires") {
        parse_expires(value)?;
    } else if is("Require") {
        validate_option_tags(value, "Require")?;
    } else if is("Proxy-Require") {
        validate_option_tags(value, "Proxy-Require")?;
    } else if is("Supported") {
        validate_option_tags(value, "Supported")?;
    }
    Ok(())
}
