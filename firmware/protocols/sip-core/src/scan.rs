//! Character classes and small scanners shared by the header parsers.
//!
//! Header values are kept exactly as received, folding included: a fold is
//! CRLF followed by SP/HT, so treating CR and LF as linear white space while
//! scanning a value is equivalent to unfolding it first, without copying.

/// `token` characters of RFC 3261 25.1.
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Linear white space, folds included.
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
}

pub(crate) fn skip_lws(s: &str, mut pos: usize) -> usize {
    let bytes = s.as_bytes();
    while pos < bytes.len() && is_lws(bytes[pos]) {
        pos += 1;
    }
    pos
}

/// End (exclusive) of a quoted string starting at `start` (which holds `"`),
/// honouring `\` escapes; `None` when the closing quote is missing.
pub(crate) fn quoted_end(s: &str, start: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Splits a comma-separated header value into trimmed items, ignoring commas
/// inside quoted strings and `<...>`. Empty items are reported (as empty
/// strings) so strict parsers can refuse them.
pub struct ListItems<'a> {
    rest: Option<&'a str>,
}

impl<'a> ListItems<'a> {
    pub(crate) fn new(value: &'a str) -> Self {
        Self { rest: Some(value) }
    }
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let bytes = rest.as_bytes();
        let mut i = 0;
        let mut in_angle = false;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => match quoted_end(rest, i) {
                    Some(end) => {
                        i = end;
                        continue;
                    }
                    // Unterminated quote: the remainder is one (bad) item.
                    None => i = bytes.len(),
                },
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                b',' if !in_angle => {
                    self.rest = Some(&rest[i + 1..]);
                    return Some(trim_lws(&rest[..i]));
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = None;
        Some(trim_lws(rest))
    }
}

/// Byte range of `inner` within `outer`; `inner` must be a sub-slice.
pub(crate) fn offset_in(outer: &str, inner: &str) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// Parses an unsigned decimal made only of digits, `None` on overflow.
pub(crate) fn parse_digits_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_respect_quotes_and_angles() {
        let items: Vec<&str> = ListItems::new(r#""a,b" <sip:x;p=1,2>, <sip:y> ,z"#).collect();
        assert_eq!(items, vec![r#""a,b" <sip:x;p=1,2>"#, "<sip:y>", "z"]);
    }

    #[test]
    fn list_items_report_empty_items() {
        let items: Vec<&str> = ListItems::new("a,,b,").collect();
        assert_eq!(items, vec!["a", "", "b", ""]);
    }

    #[test]
    fn quoted_end_handles_escapes() {
        assert_eq!(quoted_end(r#""a\"b" x"#, 0), Some(6));
        assert_eq!(quoted_end(r#""a\""#, 0), None);
    }

    #[test]
    fn digits_overflow_is_none() {
        assert_eq!(parse_digits_u64("0068"), Some(68));
        assert_eq!(parse_digits_u64("36893488147419103232"), None);
        assert_eq!(parse_digits_u64("-1"), None);
    }
}
