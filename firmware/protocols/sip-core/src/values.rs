//! Scalar header values: CSeq, Max-Forwards, Content-Length, Call-ID,
//! Content-Type, Date, Expires and option-tag lists.

use crate::error::ParseError;
use crate::scan::{is_lws, is_token, parse_digits_u64, trim_lws, ListItems};

/// CSeq (RFC 3261 20.16): the number must be below 2**31 (8.1.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub number: u32,
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    pub fn parse(value: &'a str) -> Result<Self, ParseError> {
        const BAD: ParseError = ParseError::BadHeaderValue("CSeq");
        let text = trim_lws(value);
        let split = text
            .find(|c: char| c.is_ascii() && is_lws(c as u8))
            .ok_or(BAD)?;
        let number = parse_digits_u64(&text[..split])
            .filter(|n| *n < 1 << 31)
            .ok_or(BAD)?;
        let method = trim_lws(&text[split..]);
        if !is_token(method) {
            return Err(BAD);
        }
        Ok(CSeq {
            number: u32::try_from(number).map_err(|_| BAD)?,
            method,
        })
    }
}

pub fn parse_max_forwards(value: &str) -> Result<u8, ParseError> {
    parse_digits_u64(trim_lws(value))
        .and_then(|n| u8::try_from(n).ok())
        .ok_or(ParseError::BadHeaderValue("Max-Forwards"))
}

pub fn parse_content_length(value: &str) -> Result<usize, ParseError> {
    parse_digits_u64(trim_lws(value))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(ParseError::BadContentLength)
}

/// Expires: delta-seconds; absurdly large values saturate (RFC 3261 allows
/// a server to treat them as its maximum) rather than refuse the message.
pub fn parse_expires(value: &str) -> Result<u32, ParseError> {
    let text = trim_lws(value);
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadHeaderValue("Expires"));
    }
    Ok(parse_digits_u64(text).map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX)))
}

/// Call-ID: `word ["@" word]` with the wide `word` alphabet of RFC 3261.
pub fn validate_call_id(value: &str) -> Result<(), ParseError> {
    let text = trim_lws(value);
    let is_word_char =
        |b: u8| b.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&b);
    let mut parts = text.split('@');
    let ok = parts
        .next()
        .is_some_and(|w| !w.is_empty() && w.bytes().all(is_word_char))
        && parts
            .next()
            .is_none_or(|w| !w.is_empty() && w.bytes().all(is_word_char))
        && parts.next().is_none();
    if ok {
        Ok(())
    } else {
        Err(ParseError::BadHeaderValue("Call-ID"))
    }
}

/// Content-Type: `type "/" subtype *(";" parameter)`.
pub fn validate_content_type(value: &str) -> Result<(), ParseError> {
    const BAD: ParseError = ParseError::BadHeaderValue("Content-Type");
    let text = trim_lws(value);
    let (media, params) = match text.find(';') {
        Some(semi) => (&text[..semi], &text[semi..]),
        None => (text, ""),
    };
    let (kind, sub) = media.split_once('/').ok_or(BAD)?;
    if !is_token(trim_lws(kind)) || !is_token(trim_lws(sub)) {
        return Err(BAD);
    }
    crate::params::validate(params)
        .map(|_| ())
        .map_err(|()| BAD)
}

/// Date: an RFC 1123 date, which SIP requires to be in GMT (RFC 3261 20.17).
pub fn validate_date(value: &str) -> Result<(), ParseError> {
    let text = trim_lws(value);
    let ok = text.ends_with(" GMT")
        && text.split_ascii_whitespace().count() == 6
        && text.as_bytes().get(3) == Some(&b',');
    if ok {
        Ok(())
    } else {
        Err(ParseError::BadHeaderValue("Date"))
    }
}

/// Require / Proxy-Require / Supported: comma-separated option tags.
pub fn validate_option_tags(value: &str, header: &'static str) -> Result<(), ParseError> {
    if ListItems::new(value).all(is_token) {
        Ok(())
    } else {
        Err(ParseError::BadHeaderValue(header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_with_fold_and_leading_zeros() {
        assert_eq!(
            CSeq::parse("0009\r\n  INVITE"),
            Ok(CSeq {
                number: 9,
                method: "INVITE"
            })
        );
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("8").is_err());
        assert!(CSeq::parse("8 IN VITE").is_err());
    }

    #[test]
    fn scalar_limits() {
        assert_eq!(parse_max_forwards(" 0068"), Ok(68));
        assert!(parse_max_forwards("300").is_err());
        assert_eq!(parse_content_length("150 "), Ok(150));
        assert_eq!(
            parse_content_length("-999"),
            Err(ParseError::BadContentLength)
        );
        assert_eq!(parse_expires(&"1".repeat(60)), Ok(u32::MAX));
        assert!(parse_expires("soon").is_err());
    }

    #[test]
    fn call_id_date_and_content_type() {
        assert!(validate_call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
        assert!(validate_call_id("a b").is_err());
        assert!(validate_call_id("a@b@c").is_err());
        assert!(validate_date("Sat, 15 Oct 2005 04:44:56 GMT").is_ok());
        assert!(validate_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(validate_content_type("multipart/mixed;boundary=7a9cbec02ceef655").is_ok());
        assert!(validate_content_type("sdp").is_err());
        assert!(validate_option_tags("foo, bar", "Require").is_ok());
        assert!(validate_option_tags("foo,, bar", "Require").is_err());
    }
}
