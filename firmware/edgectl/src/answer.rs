//! Role queries and actions answer with JSON of any shape; this shows it to a person: lists
//! of objects as tables, other fields as `name: value` lines, Unix times as ISO 8601, and
//! an empty list in words. `--json` bypasses all of it.

use serde_json::{Map, Value};

use crate::{clock, table};

/// Columns that identify a row come first; the others follow in the API's (sorted) order.
const LEADING_COLUMNS: &[&str] = &["domain", "name", "id"];

/// The text form of what `edgectl role ROLE WHAT` received.
pub fn render(role: &str, what: &str, answer: &Value) -> String {
    match answer {
        Value::Array(items) if items.is_empty() => {
            format!("{role}: no {} yet\n", words(what))
        }
        Value::Array(items) if items.iter().all(Value::is_object) => list(items),
        Value::Object(fields) => object(fields),
        other => format!("{}\n", cell("", other)),
    }
}

fn object(fields: &Map<String, Value>) -> String {
    let is_table =
        |v: &Value| matches!(v, Value::Array(items) if items.iter().all(Value::is_object));
    let scalars: Vec<(&String, &Value)> = fields.iter().filter(|(_, v)| !is_table(v)).collect();
    let width = scalars
        .iter()
        .map(|(k, _)| label(k).len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in &scalars {
        out.push_str(&format!(
            "{:<width$}  {}\n",
            format!("{}:", label(key)),
            cell(key, value),
            width = width + 1
        ));
    }
    for (key, value) in fields.iter().filter(|(_, v)| is_table(v)) {
        let Value::Array(items) = value else { continue };
        if !out.is_empty() {
            out.push('\n');
        }
        if items.is_empty() {
            out.push_str(&format!("no {} yet\n", words(key)));
        } else {
            out.push_str(&format!("{}:\n", label(key)));
            out.push_str(&list(items));
        }
    }
    out
}

fn list(items: &[Value]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for item in items {
        if let Value::Object(fields) = item {
            for key in fields.keys() {
                if !columns.contains(&key.as_str()) {
                    columns.push(key);
                }
            }
        }
    }
    columns.sort_by_key(|c| {
        LEADING_COLUMNS
            .iter()
            .position(|l| l == c)
            .unwrap_or(LEADING_COLUMNS.len())
    });
    let headers: Vec<String> = columns.iter().map(|c| label(c).to_uppercase()).collect();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| item.get(*c).map_or_else(String::new, |v| cell(c, v)))
                .collect()
        })
        .collect();
    table::render(&headers, &rows)
}

/// Whether a field holds Unix seconds, by the names the roles give such fields.
fn is_time(key: &str) -> bool {
    key == "unix_time"
        || key == "created"
        || key.ends_with("_at")
        || key.ends_with("_unix")
        || key.ends_with("_until")
}

fn cell(key: &str, value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) if is_time(key) => match n.as_u64() {
            Some(0) => "-".into(),
            Some(secs) => clock::iso8601(secs),
            None => n.to_string(),
        },
        Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => items
            .iter()
            .map(|v| cell("", v))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// A field name as a label: `last_seen_unix` -> `last seen` (its value is shown as a time).
fn label(key: &str) -> String {
    let key = key
        .strip_suffix("_unix")
        .filter(|k| !k.is_empty())
        .unwrap_or(key);
    key.replace('_', " ")
}

/// A query or field name as words: `api-keys` -> `api keys`.
fn words(name: &str) -> String {
    name.replace(['_', '-'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_lists_say_so() {
        assert_eq!(
            render("access_edge", "domains", &json!([])),
            "access_edge: no domains yet\n"
        );
        assert_eq!(
            render("av_auth", "api-keys", &json!({ "api_keys": [] })),
            "no api keys yet\n"
        );
    }

    #[test]
    fn lists_of_objects_are_tables_with_times_in_iso() {
        let text = render(
            "access_edge",
            "domains",
            &json!([
                { "kind": "discovered", "domain": "partner.example", "messages": 12, "last_seen_unix": 1_796_659_503u64 },
                { "kind": "blocked", "domain": "spam.example", "messages": 0, "last_seen_unix": 0 },
            ]),
        );
        assert_eq!(
            text,
            "DOMAIN           KIND        LAST SEEN             MESSAGES\n\
             partner.example  discovered  2026-12-07T16:05:03Z  12\n\
             spam.example     blocked     -                     0\n"
        );
    }

    #[test]
    fn objects_show_fields_then_their_tables() {
        let text = render(
            "webconf_edge",
            "keys",
            &json!({
                "current": 2,
                "overlap_secs": 300,
                "rotation_hours": null,
                "keys": [
                    { "id": 1, "state": "retiring", "created_at": 951_782_400, "retire_at": 951_782_700 },
                    { "id": 2, "state": "active", "created_at": 951_782_400, "retire_at": null },
                ],
            }),
        );
        assert_eq!(
            text,
            "current:         2\n\
             overlap secs:    300\n\
             rotation hours:  -\n\
             \n\
             keys:\n\
             ID  CREATED AT            RETIRE AT             STATE\n\
             1   2000-02-29T00:00:00Z  2000-02-29T00:05:00Z  retiring\n\
             2   2000-02-29T00:00:00Z  -                     active\n"
        );
    }

    #[test]
    fn scalars_and_scalar_lists_print_plainly() {
        assert_eq!(render("x", "y", &json!("done")), "done\n");
        assert_eq!(
            render("x", "y", &json!({ "hosts": ["a", "b"] })),
            "hosts:  a, b\n"
        );
    }
}
