//! Header names: compact forms (RFC 3261 7.3.3 and later registrations) and
//! which headers are comma-separated lists.

/// Full name for a compact form; any other name is returned unchanged.
pub fn full_name(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'o' => "Event",
        b'u' => "Allow-Events",
        b'r' => "Refer-To",
        b'x' => "Session-Expires",
        b'b' => "Referred-By",
        b'a' => "Accept-Contact",
        b'j' => "Reject-Contact",
        b'd' => "Request-Disposition",
        b'y' => "Identity",
        b'n' => "Identity-Info",
        _ => name,
    }
}

/// True when `a` and `b` name the same header, compact forms included.
pub fn same_header(a: &str, b: &str) -> bool {
    full_name(a).eq_ignore_ascii_case(full_name(b))
}

/// Headers whose value is a comma-separated list (RFC 3261 7.3.1); others
/// (Date, WWW-Authenticate, ...) may contain commas inside one value.
pub fn is_list_header(name: &str) -> bool {
    const LISTS: &[&str] = &[
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Require",
        "Proxy-Require",
        "Supported",
        "Unsupported",
        "Allow",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Content-Encoding",
        "Content-Language",
        "Allow-Events",
        "Path",
        "Service-Route",
        "In-Reply-To",
        "Alert-Info",
        "Call-Info",
        "Error-Info",
        "Warning",
        "P-Asserted-Identity",
        "Accept-Contact",
        "Reject-Contact",
        "Request-Disposition",
    ];
    let full = full_name(name);
    LISTS.iter().any(|l| l.eq_ignore_ascii_case(full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms_match_full_names() {
        assert!(same_header("v", "Via"));
        assert!(same_header("I", "call-id"));
        assert!(same_header("l", "CONTENT-LENGTH"));
        assert!(!same_header("C%6Fntact", "Contact"));
        assert!(is_list_header("m"));
        assert!(!is_list_header("Date"));
    }
}
