//! The XML helpers both directions share: element matching, typed attributes, escaping.

use crate::{MrasError, MAX_ID_CHARS, NAMESPACE};

/// Whether `n` is the element `name` of this protocol. Elements without a namespace are
/// accepted too: some senders omit the default namespace declaration.
pub(crate) fn is_mras_element(n: roxmltree::Node<'_, '_>, name: &str) -> bool {
    n.is_element()
        && n.tag_name().name() == name
        && n.tag_name().namespace().is_none_or(|ns| ns == NAMESPACE)
}

pub(crate) fn required_attr(
    n: roxmltree::Node<'_, '_>,
    name: &'static str,
) -> Result<String, MrasError> {
    n.attribute(name)
        .map(|v| v.trim().to_owned())
        .ok_or(MrasError::MissingAttribute(name))
}

/// A `max64CharStringType` attribute: present, non-empty, at most 64 characters.
pub(crate) fn required_id(
    n: roxmltree::Node<'_, '_>,
    name: &'static str,
) -> Result<String, MrasError> {
    let v = required_attr(n, name)?;
    if v.is_empty() || v.chars().count() > MAX_ID_CHARS {
        return Err(MrasError::BadAttribute(name));
    }
    Ok(v)
}

/// A `mrasUriType` attribute: the spec requires a SIP URI for `to` and `from`.
pub(crate) fn required_sip_uri(
    n: roxmltree::Node<'_, '_>,
    name: &'static str,
) -> Result<String, MrasError> {
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
pub(crate) fn required_version(n: roxmltree::Node<'_, '_>) -> Result<String, MrasError> {
    let v = required_attr(n, "version")?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
    match v.split_once('.') {
        Some((major, minor)) if digits(major) && digits(minor) => Ok(v),
        _ => Err(MrasError::BadAttribute("version")),
    }
}

/// An `xs:positiveInteger`: optional `+`, digits, value at least 1.
pub(crate) fn parse_positive_integer(s: &str) -> Option<u64> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().filter(|&v| v >= 1)
}

/// Escapes text for element content and double-quoted attributes.
pub(crate) fn escape(s: &str) -> String {
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
