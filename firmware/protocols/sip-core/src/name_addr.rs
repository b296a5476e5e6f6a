//! `name-addr / addr-spec` values with header parameters: From, To,
//! Contact, Route, Record-Route (RFC 3261 20.10, 20.20, 20.39).

use crate::error::ParseError;
use crate::params::{self, Params};
use crate::scan::{is_lws, is_token_char, quoted_end, skip_lws, trim_lws};
use crate::uri::Uri;

#[derive(Debug, Clone)]
pub struct NameAddr<'a> {
    /// Display name as written: a quoted string's inside (escapes kept) or
    /// the token words.
    pub display_name: Option<&'a str>,
    pub uri: Uri<'a>,
    /// Whether the URI was enclosed in `<>`.
    pub angle_brackets: bool,
    params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses one value; `header` names the header in errors.
    pub fn parse(value: &'a str, header: &'static str) -> Result<Self, ParseError> {
        let bad = ParseError::BadHeaderValue(header);
        let text = trim_lws(value);
        if text.is_empty() {
            return Err(bad);
        }
        let (display_name, rest) = if text.starts_with('"') {
            let end = quoted_end(text, 0).ok_or(ParseError::UnbalancedQuotes(header))?;
            let rest = &text[skip_lws(text, end)..];
            if !rest.starts_with('<') {
                return Err(bad);
            }
            (Some(&text[1..end - 1]), rest)
        } else if let Some(open) = text.find('<') {
            let words = trim_lws(&text[..open]);
            if text[..open].contains('"') {
                return Err(ParseError::UnbalancedQuotes(header));
            }
            if !words.bytes().all(|b| is_token_char(b) || is_lws(b)) {
                return Err(bad);
            }
            ((!words.is_empty()).then_some(words), &text[open..])
        } else {
            return Self::parse_addr_spec(text, header);
        };
        let close = rest.find('>').ok_or(bad.clone())?;
        let uri_text = &rest[1..close];
        if uri_text.bytes().any(is_lws) {
            return Err(bad);
        }
        let uri = Uri::parse(uri_text)?;
        let param_text = &rest[close + 1..];
        params::validate(param_text).map_err(|()| bad)?;
        Ok(NameAddr {
            display_name,
            uri,
            angle_brackets: true,
            params: Params::new(param_text),
        })
    }

    /// A bare URI: it ends at the first `;` (what follows are header
    /// parameters) and may not contain `?` or `,` (RFC 3261 20).
    fn parse_addr_spec(text: &'a str, header: &'static str) -> Result<Self, ParseError> {
        let bad = ParseError::BadHeaderValue(header);
        let (uri_text, param_text) = match text.find(';') {
            Some(semi) => (trim_lws(&text[..semi]), &text[semi..]),
            None => (text, ""),
        };
        if uri_text
            .bytes()
            .any(|b| is_lws(b) || b == b'?' || b == b',' || b == b'"')
        {
            return Err(bad);
        }
        let uri = Uri::parse(uri_text)?;
        params::validate(param_text).map_err(|()| bad)?;
        Ok(NameAddr {
            display_name: None,
            uri,
            angle_brackets: false,
            params: Params::new(param_text),
        })
    }

    pub fn params(&self) -> Params<'a> {
        self.params.clone()
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_display_name_with_escapes_and_folds() {
        let na = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
            "From",
        )
        .unwrap();
        assert_eq!(na.display_name, Some("J Rosenberg \\\\\\\""));
        assert_eq!(na.tag(), Some("98asjd8"));
        assert_eq!(na.uri.as_sip().unwrap().user, Some("jdrosen"));
    }

    #[test]
    fn token_display_name_and_addr_spec() {
        let na = NameAddr::parse("caller<sip:caller@example.com>;tag=323", "From").unwrap();
        assert_eq!(na.display_name, Some("caller"));
        let bare =
            NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam", "Contact").unwrap();
        assert!(!bare.angle_brackets);
        assert!(bare.params().contains("unknownparam"));
        assert!(bare.uri.as_sip().unwrap().params.is_empty());
    }

    #[test]
    fn torture_faults_are_refused() {
        assert_eq!(
            NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>", "To").unwrap_err(),
            ParseError::UnbalancedQuotes("To")
        );
        for bad in [
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:caller@example.org>;;;;",
            "<sip:a@b",
        ] {
            assert!(NameAddr::parse(bad, "To").is_err(), "{bad}");
        }
        assert!(NameAddr::parse(
            "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
            "Contact"
        )
        .is_ok());
    }
}
