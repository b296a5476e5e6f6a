//! Tests and benchmarks that drive real external programs (coturn's clients, SIPp, stunnel,
//! Chromium, haproxy) ask here whether those programs are installed.
//!
//! A developer without them gets the test skipped with a note naming the Debian packages;
//! `make test` sets `EDGED_REQUIRE_TOOLS=1`, and then a missing program fails the test
//! instead, so CI can never pass by skipping.

use std::path::{Path, PathBuf};

pub mod wait;

/// The variable `make test` sets to turn a skip into a failure.
pub const REQUIRE_VAR: &str = "EDGED_REQUIRE_TOOLS";

/// The programs of `programs` (names looked up in `PATH`, or absolute paths) that are not
/// installed.
pub fn missing(programs: &[&str]) -> Vec<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    programs
        .iter()
        .filter(|p| !installed(p, &dirs))
        .map(|p| (*p).to_owned())
        .collect()
}

fn installed(program: &str, dirs: &[PathBuf]) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    dirs.iter().any(|d| d.join(program).is_file())
}

/// Whether every program is installed. When one is missing: panics if `EDGED_REQUIRE_TOOLS=1`,
/// else prints a note naming `debian_packages` and returns false, so the caller skips.
pub fn require(programs: &[&str], debian_packages: &str) -> bool {
    let gone = missing(programs);
    if gone.is_empty() {
        return true;
    }
    let what = format!(
        "{} not installed (Debian: {debian_packages})",
        gone.join(", ")
    );
    if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
        panic!("{what}; {REQUIRE_VAR}=1 demands it");
    }
    eprintln!("skipped: {what}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_in_path_and_by_absolute_path() {
        // `sh` exists on every system these tests run on.
        assert!(missing(&["sh", "/bin/sh"]).is_empty());
    }

    #[test]
    fn names_exactly_the_missing_ones() {
        let gone = missing(&["sh", "no-such-program-edged", "/no/such/path"]);
        assert_eq!(gone, ["no-such-program-edged", "/no/such/path"]);
    }
}
