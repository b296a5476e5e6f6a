//! Deserialisation errors in an operator's words.
//!
//! serde speaks of Rust types ("invalid value: integer `70000`, expected u16") and toml
//! adds a byte offset into the document. An operator typed one key or edits a file: they
//! need the allowed range or kind of value, and a line number at most. This module only
//! rewrites messages; which key a problem belongs to comes from the deserialiser's path.

/// The reason for one deserialisation problem, in words. Messages it does not recognise
/// are passed on as they are.
pub(crate) fn reason(message: &str) -> String {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        if let Some((got, expected)) = split_expected(rest) {
            return invalid_value(got, expected);
        }
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((got, expected)) = split_expected(rest) {
            return invalid_type(got, expected);
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (got, choices) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return format!(
            "{} is not allowed; expected one of: {}",
            quoted(got),
            names(choices).join(", ")
        );
    }
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("{} is required here", unticked(field));
    }
    match message {
        "invalid IP address syntax" => {
            "expected an IP address such as 192.0.2.10 or 2001:db8::10".into()
        }
        "invalid socket address syntax" => {
            "expected an address with a port such as 192.0.2.53:53 or [2001:db8::53]:53".into()
        }
        other => other.to_owned(),
    }
}

/// An unknown key, with the closest known name when one is near enough to be a typo.
pub(crate) struct UnknownKey {
    pub field: String,
    pub suggestion: Option<String>,
}

/// Recognises serde's "unknown field `x`, expected one of `a`, `b`".
pub(crate) fn unknown_key(message: &str) -> Option<UnknownKey> {
    let rest = message.trim().strip_prefix("unknown field ")?;
    let (field, choices) = rest
        .split_once(", expected ")
        .map_or((rest, ""), |(f, c)| (f, c));
    let field = unticked(field.split(", there are no fields").next().unwrap_or(field));
    let suggestion = closest(&field, &names(choices));
    Some(UnknownKey { field, suggestion })
}

/// The known name a typo most likely meant: at most a third of its letters differ.
fn closest(typed: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(typed, k), k))
        .filter(|(d, k)| *d > 0 && *d * 3 <= k.len().max(3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

/// Splits "<what was given>, expected <what was wanted>".
fn split_expected(text: &str) -> Option<(&str, &str)> {
    text.rsplit_once(", expected ")
}

fn invalid_value(got: &str, expected: &str) -> String {
    match (given(got), integer_range(expected)) {
        (Given::Integer(n), Some((min, max))) => {
            format!("{n} is out of range ({min}-{max})")
        }
        (g, _) => format!(
            "{} is not allowed; expected {}",
            g.words(),
            wanted(expected)
        ),
    }
}

fn invalid_type(got: &str, expected: &str) -> String {
    let g = given(got);
    let mut out = format!("expected {}, not {}", wanted(expected), g.words());
    // A number or a boolean where text belongs: the operator may mean it as text.
    if matches!(expected, "a string" | "path string" | "a character") {
        if let Given::Integer(n) | Given::Other(n) = &g {
            out.push_str(&format!(" (quote it, '\"{n}\"', to use it as text)"));
        }
    }
    out
}

/// What a value was, from serde's `Unexpected` display.
enum Given {
    Integer(String),
    Text(String),
    Other(String),
    Kind(&'static str),
}

impl Given {
    fn words(&self) -> String {
        match self {
            Given::Integer(n) | Given::Other(n) => n.clone(),
            Given::Text(s) => format!("\"{s}\""),
            Given::Kind(k) => (*k).to_owned(),
        }
    }
}

fn given(text: &str) -> Given {
    let ticked = |prefix: &str| text.strip_prefix(prefix).map(unticked);
    if let Some(n) = ticked("integer ") {
        return Given::Integer(n);
    }
    if let Some(s) = text.strip_prefix("string ") {
        return Given::Text(s.trim_matches('"').to_owned());
    }
    for prefix in ["floating point ", "boolean ", "character "] {
        if let Some(v) = ticked(prefix) {
            return Given::Other(v);
        }
    }
    Given::Kind(match text {
        "sequence" => "a list",
        "map" => "a section",
        "unit value" | "Option value" => "nothing",
        _ => "that",
    })
}

/// serde's `Expected` for a type, as an operator would say it.
fn wanted(expected: &str) -> String {
    if let Some((min, max)) = integer_range(expected) {
        return format!("a whole number from {min} to {max}");
    }
    match expected {
        "a boolean" => "true or false".into(),
        "a string" | "path string" | "a character" => "text".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "a list such as [\"a\", \"b\"]".into(),
        "IP address" => "an IP address such as 192.0.2.10".into(),
        "socket address" => "an address with a port such as 192.0.2.53:53".into(),
        e if e == "a map" || e.starts_with("struct ") => "a section of keys".into(),
        e if e.starts_with("one of ") => format!("one of: {}", names(e).join(", ")),
        other => other.to_owned(),
    }
}

fn integer_range(expected: &str) -> Option<(i128, i128)> {
    Some(match expected {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" => (0, u64::MAX.into()),
        "usize" => (0, usize::MAX as i128),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    })
}

/// The back-ticked names of serde's "one of `a`, `b`" or "`a` or `b`" lists.
fn names(list: &str) -> Vec<String> {
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn unticked(text: &str) -> String {
    text.trim().trim_matches('`').to_owned()
}

fn quoted(ticked: &str) -> String {
    format!("\"{}\"", unticked(ticked))
}

/// The 1-based line of a byte offset, for problems in a document an operator can open.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_integers_name_the_range() {
        assert_eq!(
            reason("invalid value: integer `70000`, expected u16"),
            "70000 is out of range (0-65535)"
        );
        assert_eq!(
            reason("invalid value: integer `-1`, expected u32"),
            "-1 is out of range (0-4294967295)"
        );
    }

    #[test]
    fn wrong_types_say_what_is_expected() {
        assert_eq!(
            reason("invalid type: string \"abc\", expected u16"),
            "expected a whole number from 0 to 65535, not \"abc\""
        );
        assert_eq!(
            reason("invalid type: string \"yes\", expected a boolean"),
            "expected true or false, not \"yes\""
        );
        assert_eq!(
            reason("invalid type: integer `5`, expected a string"),
            "expected text, not 5 (quote it, '\"5\"', to use it as text)"
        );
        assert_eq!(
            reason("invalid type: integer `5`, expected a sequence"),
            "expected a list such as [\"a\", \"b\"], not 5"
        );
        assert_eq!(
            reason("invalid type: integer `5`, expected struct AvEdgeConfig"),
            "expected a section of keys, not 5"
        );
    }

    #[test]
    fn enum_values_list_the_choices() {
        assert_eq!(
            reason("unknown variant `loud`, expected one of `error`, `warn`"),
            "\"loud\" is not allowed; expected one of: error, warn"
        );
    }

    #[test]
    fn addresses_are_described_by_example() {
        assert!(reason("invalid IP address syntax").starts_with("expected an IP address such as"));
        assert!(reason("invalid socket address syntax").contains("with a port"));
    }

    #[test]
    fn unknown_messages_pass_through() {
        assert_eq!(reason("something new"), "something new");
    }

    #[test]
    fn unknown_keys_suggest_near_names_only() {
        let k = unknown_key(
            "unknown field `relay_port_mn`, expected one of `relay_port_min`, `relay_port_max`, `realm`",
        )
        .unwrap();
        assert_eq!(k.field, "relay_port_mn");
        assert_eq!(k.suggestion.as_deref(), Some("relay_port_min"));
        let k = unknown_key("unknown field `colour`, expected one of `enabled`, `realm`").unwrap();
        assert_eq!(k.suggestion, None);
        let k = unknown_key("unknown field `x`, there are no fields").unwrap();
        assert_eq!((k.field.as_str(), k.suggestion), ("x", None));
        assert!(unknown_key("invalid type: integer `5`, expected u16").is_none());
    }

    #[test]
    fn lines_count_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
