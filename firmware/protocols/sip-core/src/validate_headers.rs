//! Parse-level header checks: what makes a message malformed regardless of
//! who receives it (RFC 3261 7, 8.1.1, 20 and the RFC 4475 invalid cases).

use crate::error::ParseError;
use crate::message::Parts;
use crate::name_addr::NameAddr;
use crate::names::full_name;
use crate::scan::{trim_lws, ListItems};
use crate::values::{
    parse_expires, parse_max_forwards, validate_call_id, validate_content_type, validate_date,
    validate_option_tags, CSeq,
};
use crate::via::Via;

/// Headers the parser checks, classified once per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Via,
    To,
    From,
    CallId,
    CSeq,
    Contact,
    Route,
    RecordRoute,
    MaxForwards,
    ContentType,
    Date,
    Expires,
    Require,
    ProxyRequire,
    Supported,
}

const KNOWN: [(&str, Known); 15] = [
    ("Via", Known::Via),
    ("To", Known::To),
    ("From", Known::From),
    ("Call-ID", Known::CallId),
    ("CSeq", Known::CSeq),
    ("Contact", Known::Contact),
    ("Route", Known::Route),
    ("Record-Route", Known::RecordRoute),
    ("Max-Forwards", Known::MaxForwards),
    ("Content-Type", Known::ContentType),
    ("Date", Known::Date),
    ("Expires", Known::Expires),
    ("Require", Known::Require),
    ("Proxy-Require", Known::ProxyRequire),
    ("Supported", Known::Supported),
];

/// Headers every request and response carries (RFC 3261 8.1.1).
const MANDATORY: [Known; 5] = [
    Known::Via,
    Known::To,
    Known::From,
    Known::CallId,
    Known::CSeq,
];

/// Headers that may appear only once; several To/From/Call-ID/CSeq make
/// the dialog and transaction ambiguous (`multi01`).
const SINGLETONS: [Known; 8] = [
    Known::To,
    Known::From,
    Known::CallId,
    Known::CSeq,
    Known::MaxForwards,
    Known::ContentType,
    Known::Expires,
    Known::Date,
];

fn classify(name: &str) -> Option<Known> {
    let full = full_name(name);
    KNOWN
        .iter()
        .find(|(known, _)| known.len() == full.len() && known.eq_ignore_ascii_case(full))
        .map(|(_, kind)| *kind)
}

fn display_name(kind: Known) -> &'static str {
    KNOWN
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("", |(name, _)| name)
}

pub(crate) fn check_headers(
    parts: &Parts<'_>,
    request_method: Option<&str>,
) -> Result<(), ParseError> {
    let mut seen = [0u16; KNOWN.len()];
    for field in parts.headers() {
        let Some(kind) = classify(field.name) else {
            continue;
        };
        let count = &mut seen[kind as usize];
        *count = count.saturating_add(1);
        if *count > 1 && SINGLETONS.contains(&kind) {
            return Err(ParseError::DuplicateHeader(display_name(kind)));
        }
        check_field(kind, field.value, request_method)?;
    }
    for kind in MANDATORY {
        if seen[kind as usize] == 0 {
            return Err(ParseError::MissingHeader(display_name(kind)));
        }
    }
    Ok(())
}

fn check_field(kind: Known, value: &str, request_method: Option<&str>) -> Result<(), ParseError> {
    match kind {
        Known::Via => {
            for item in ListItems::new(value) {
                Via::parse(item)?;
            }
        }
        Known::From => {
            NameAddr::parse(value, "From")?;
        }
        Known::To => {
            NameAddr::parse(value, "To")?;
        }
        Known::Contact => {
            if trim_lws(value) != "*" {
                for item in ListItems::new(value) {
                    NameAddr::parse(item, "Contact")?;
                }
            }
        }
        Known::Route | Known::RecordRoute => {
            let header = display_name(kind);
            for item in ListItems::new(value) {
                if !NameAddr::parse(item, header)?.angle_brackets {
                    return Err(ParseError::BadHeaderValue(header));
                }
            }
        }
        Known::CSeq => {
            let cseq = CSeq::parse(value)?;
            // Methods are case-sensitive (RFC 3261 7.1).
            if request_method.is_some_and(|m| m != cseq.method) {
                return Err(ParseError::CSeqMethodMismatch);
            }
        }
        Known::MaxForwards => {
            parse_max_forwards(value)?;
        }
        Known::CallId => validate_call_id(value)?,
        Known::ContentType => validate_content_type(value)?,
        Known::Date => validate_date(value)?,
        Known::Expires => {
            parse_expires(value)?;
        }
        Known::Require | Known::ProxyRequire | Known::Supported => {
            validate_option_tags(value, display_name(kind))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_covers_compact_forms_and_case() {
        assert_eq!(classify("v"), Some(Known::Via));
        assert_eq!(classify("CALL-id"), Some(Known::CallId));
        assert_eq!(classify("i"), Some(Known::CallId));
        assert_eq!(classify("X-Via"), None);
        for (name, kind) in KNOWN {
            assert_eq!(classify(name), Some(kind));
            assert_eq!(display_name(kind), name);
        }
    }
}
