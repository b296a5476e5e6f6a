#!/bin/sh
# Vendors the workspace's crates (exactly the committed Cargo.lock) for the offline Buildroot
# build. Run where crates.io is reachable; the result is package/edged/vendor/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"
cargo vendor --locked --versioned-dirs "$here/vendor" >/dev/null
echo "vendored $(ls "$here/vendor" | wc -l) crates into $here/vendor"
