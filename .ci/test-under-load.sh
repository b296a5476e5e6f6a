#!/usr/bin/env bash
# .ci/test-under-load.sh [RUNS]: the unit and integration suites (`cargo test --workspace`)
# RUNS times in a row (default 5) while stress-ng keeps the machine's cores busy, stopping
# at the first failure. The proof that tests wait for what they read rather than for a
# fixed time. `make test-under-load` runs it.
#
# Environment: STRESS_CPUS (stress-ng workers, default: every core), STRESS_TIMEOUT (the
# bound on stress-ng's run, default 4h; it is stopped at exit anyway).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

if ! command -v stress-ng >/dev/null 2>&1; then
    echo "installing stress-ng"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends stress-ng >/dev/null
fi

# Integration tests drive edged and edgectl as separate processes: build them unloaded.
cargo build --workspace --bins
cargo test --workspace --no-run

stress-ng --cpu "${STRESS_CPUS:-$(nproc)}" --timeout "${STRESS_TIMEOUT:-4h}" >/dev/null 2>&1 &
stress=$!
trap 'kill "$stress" 2>/dev/null; wait "$stress" 2>/dev/null' EXIT
echo "stress-ng (pid $stress) keeps ${STRESS_CPUS:-$(nproc)} cores busy"

for run in $(seq 1 "$runs"); do
    start=$(date +%s)
    if ! EDGED_REQUIRE_TOOLS=1 cargo test --workspace; then
        echo "test-under-load: run $run of $runs FAILED after $(($(date +%s) - start))s"
        exit 1
    fi
    echo "test-under-load: run $run of $runs passed in $(($(date +%s) - start))s"
done
echo "test-under-load: $runs runs passed under load"
