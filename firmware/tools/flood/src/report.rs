//! The one line a flood prints for the harness: `RESULT key=value ...`.

use std::fmt::Write;

#[derive(Debug)]
pub struct Report {
    line: String,
}

impl Report {
    pub fn new() -> Self {
        Report {
            line: "RESULT".into(),
        }
    }

    pub fn add(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.line, " {key}={value}");
        self
    }

    /// `num / den` with three decimals, `-` when nothing was counted below.
    pub fn ratio(&mut self, key: &str, num: u64, den: u64) -> &mut Self {
        if den == 0 {
            self.add(key, "-")
        } else {
            self.add(key, format!("{:.3}", num as f64 / den as f64))
        }
    }

    pub fn line(&self) -> &str {
        &self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_one_line_of_pairs() {
        let mut r = Report::new();
        r.add("sent", 10).ratio("per", 5, 10).ratio("none", 1, 0);
        assert_eq!(r.line(), "RESULT sent=10 per=0.500 none=-");
    }
}
