#!/bin/sh
# make bench-webconf: edged's Web Conferencing Edge against haproxy (Debian package
# haproxy). Pass --smoke for the short CI run (under a minute once built).
set -eu
cd "$(dirname "$0")/../../../.."
bin=$(firmware/build-release.sh)
exec "$bin/examples/webconf-bench" "$@"
