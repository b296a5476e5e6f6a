#!/bin/sh
# make bench-webconf: edged's Web Conferencing Edge against haproxy (Debian package
# haproxy). Pass --smoke for the short CI run (under a minute once built).
set -eu
cd "$(dirname "$0")/../../../.."
cargo build --release -p webconf-edge --example webconf-bench
exec "${CARGO_TARGET_DIR:-target}/release/examples/webconf-bench" "$@"
