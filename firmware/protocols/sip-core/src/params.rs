//! `;name[=value]` parameter lists of header values (Via, From, To, Contact).

use crate::scan::{is_lws, is_token_char, quoted_end, skip_lws};

/// One parameter; `value` keeps the quotes of a quoted-string value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
}

/// Iterator over a validated parameter list (text starting at the first `;`).
/// Text that fails validation simply ends the iteration.
#[derive(Debug, Clone)]
pub struct Params<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Params<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    /// Value of the first parameter named `name` (case-insensitive):
    /// `Some(None)` for a parameter without value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.clone()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        let (param, next) = next_param(self.text, self.pos).ok()??;
        self.pos = next;
        Some(param)
    }
}

/// Characters of an unquoted parameter value: token characters plus what
/// hosts and IPv6 addresses need (`received=2001:db8::1`, `maddr=[::1]`).
fn is_value_char(b: u8) -> bool {
    is_token_char(b)
        || matches!(
            b,
            b':' | b'[' | b']' | b'/' | b'@' | b'?' | b'&' | b'=' | b'$'
        )
}

/// Parses the parameter at `pos`. `Ok(None)` at the end of the text;
/// `Err(())` when the text is not a well-formed parameter list.
#[allow(clippy::result_unit_err)]
pub(crate) fn next_param(text: &str, pos: usize) -> Result<Option<(Param<'_>, usize)>, ()> {
    let bytes = text.as_bytes();
    let mut i = skip_lws(text, pos);
    if i >= bytes.len() {
        return Ok(None);
    }
    if bytes[i] != b';' {
        return Err(());
    }
    i = skip_lws(text, i + 1);
    let name_start = i;
    while i < bytes.len() && is_token_char(bytes[i]) {
        i += 1;
    }
    if i == name_start {
        return Err(());
    }
    let name = &text[name_start..i];
    let after_name = skip_lws(text, i);
    if after_name < bytes.len() && bytes[after_name] == b'=' {
        let v_start = skip_lws(text, after_name + 1);
        if v_start >= bytes.len() {
            return Err(());
        }
        let v_end = if bytes[v_start] == b'"' {
            quoted_end(text, v_start).ok_or(())?
        } else {
            let mut j = v_start;
            while j < bytes.len() && is_value_char(bytes[j]) {
                j += 1;
            }
            j
        };
        if v_end == v_start {
            return Err(());
        }
        // A value must be followed by white space, another parameter or the end.
        if v_end < bytes.len() && !is_lws(bytes[v_end]) && bytes[v_end] != b';' {
            return Err(());
        }
        let param = Param {
            name,
            value: Some(&text[v_start..v_end]),
        };
        return Ok(Some((param, v_end)));
    }
    if i < bytes.len() && !is_lws(bytes[i]) && bytes[i] != b';' {
        return Err(());
    }
    Ok(Some((Param { name, value: None }, i)))
}

/// Checks a whole parameter list, returning how many parameters it has.
pub(crate) fn validate(text: &str) -> Result<usize, ()> {
    let mut pos = 0;
    let mut count = 0;
    while let Some((_, next)) = next_param(text, pos)? {
        pos = next;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_with_lws_and_quotes() {
        let text = " ;  tag = 1918 ;\r\n  lr ; q=\"a;b\"";
        assert_eq!(validate(text), Ok(3));
        let params = Params::new(text);
        assert_eq!(params.get("TAG"), Some(Some("1918")));
        assert_eq!(params.get("lr"), Some(None));
        assert_eq!(params.get("q"), Some(Some("\"a;b\"")));
        assert_eq!(params.get("x"), None);
    }

    #[test]
    fn empty_parameters_are_refused() {
        assert!(validate(";;").is_err());
        assert!(validate(";a=").is_err());
        assert!(validate(";a b").is_err());
        assert!(validate(";a=\"open").is_err());
    }

    #[test]
    fn ipv6_values_are_accepted() {
        assert_eq!(
            validate(";received=2001:db8::9:255;branch=z9hG4bKas3"),
            Ok(2)
        );
        assert_eq!(
            Params::new(";received=[2001:db8::9:255]").get("received"),
            Some(Some("[2001:db8::9:255]"))
        );
    }
}
