#!/usr/bin/env bash
# .ci/stages.sh STAGE...: runs `make STAGE` for each stage in order, stopping at the first
# that fails, and prints how long each took at the end (also after a failure: the stages
# that ran so far). The times are kept in target/stage-times (stage, start, end, result;
# Unix seconds), so a CI log and a developer's terminal show the same table.
set -uo pipefail
cd "$(dirname "$0")/.."
times=target/stage-times
mkdir -p target
: >"$times"

table() {
    local total=0 name start end result
    echo
    echo "stage times:"
    while read -r name start end result; do
        printf '  %-16s %6ds  %s\n' "$name" $((end - start)) "$result"
        total=$((total + end - start))
    done <"$times"
    printf '  %-16s %6ds  (%dm%02ds)\n' total "$total" $((total / 60)) $((total % 60))
}

for stage in "$@"; do
    start=$(date +%s)
    make --no-print-directory "$stage"
    rc=$?
    if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (exit $rc)"; fi
    echo "$stage $start $(date +%s) $result" >>"$times"
    if [ "$rc" -ne 0 ]; then
        table
        exit "$rc"
    fi
done
table
