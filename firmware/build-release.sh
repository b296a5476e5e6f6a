#!/usr/bin/env bash
# Builds every release binary the benchmarks and the development image use, in one cargo
# invocation, and prints the directory that holds them.
#
# One invocation matters: cargo unifies the features of shared crates (tokio, rustls...)
# over the packages it is asked for, so building the benchmarks and the daemon separately
# compiles those crates twice with different feature sets. Built together, the benchmarks
# measure the very edged and edgectl the image carries. After the first call this is a
# no-op of a few seconds, so every consumer calls it rather than cargo directly.
#
#   firmware/build-release.sh        build (quietly) and print the binary directory
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release -q \
  -p edged -p edgectl -p webconf-connector -p turn-load -p flood --bins \
  -p av-edge --example standalone \
  -p access-edge --example sip_bench_edge \
  -p webconf-edge --example webconf-bench \
  -p av-auth --example issue_rate >&2
echo "${CARGO_TARGET_DIR:-$ROOT/target}/release"
