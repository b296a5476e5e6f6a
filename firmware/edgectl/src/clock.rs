//! Times as people and logs read them: ISO 8601 in UTC.

use time::OffsetDateTime;

/// `2026-12-07T16:05:03Z` for Unix seconds; the plain number when it is past what a
/// calendar date can hold, so nothing is hidden.
pub fn iso8601(unix_seconds: u64) -> String {
    let Some(t) = i64::try_from(unix_seconds)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    else {
        return unix_seconds.to_string();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_seconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        // 2026-12-07 16:05:03 UTC.
        assert_eq!(iso8601(1_796_659_503), "2026-12-07T16:05:03Z");
        // A leap day.
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn out_of_calendar_values_stay_numbers() {
        assert_eq!(iso8601(u64::MAX), u64::MAX.to_string());
    }
}
