#!/usr/bin/env bash
# make bench-turn: coturn and edged's A/V Edge side by side under the same turn-load load.
#
# Both servers run pinned to the same core (SERVER_CORE) with one relay thread; the load
# generator runs on another core (LOAD_CORE). Server CPU comes from /proc/PID/stat
# (utime+stime), forwarded packets from what the generator received. Prints forwarded
# packets per server CPU-second, loss, p50/p99 latency, allocations/s and memory per
# allocation, and the edged/coturn ratios. On a 2-core machine the generator shares one
# core between its sender and receiver, so "saturation" is a fixed high rate (the
# generator's own limit), and losses there are mostly the generator's.
#
#   bench/turn-bench.sh            full run (several minutes)
#   bench/turn-bench.sh --smoke    short run for CI (under a minute)
set -euo pipefail

MODE=full
[[ "${1:-}" == "--smoke" ]] && MODE=smoke
ROOT=$(cd "$(dirname "$0")/../../../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SERVER_CORE=${SERVER_CORE:-1}
LOAD_CORE=${LOAD_CORE:-0}
COTURN_PORT=${COTURN_PORT:-23478}
EDGED_PORT=${EDGED_PORT:-24478}
USER=bench PASS=benchpw REALM=bench
PEER_IP=127.0.0.3

if ! command -v turnserver >/dev/null; then
  echo "skipped: turnserver not installed (Debian package coturn)"
  [[ "${EDGED_REQUIRE_TOOLS:-}" == 1 ]] && exit 1
  exit 0
fi
ulimit -n 250000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

(cd "$ROOT" && cargo build --release -q -p av-edge --example standalone && cargo build --release -q -p turn-load --bins)
STANDALONE=$TARGET/release/examples/standalone
LOAD=$TARGET/release/turn-load

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

LOGDIR=$(mktemp -d)
taskset -c "$SERVER_CORE" turnserver -n --listening-ip=127.0.0.1 --listening-port=$COTURN_PORT \
  --relay-ip=127.0.0.1 --min-port=40000 --max-port=49999 --relay-threads=1 \
  --lt-cred-mech --user=$USER:$PASS --realm=$REALM --allow-loopback-peers \
  --no-cli --no-tls --no-dtls --no-tcp-relay --log-file=stdout --simple-log \
  >"$LOGDIR/coturn.log" 2>&1 &
PIDS+=($!); COTURN_PID=$!
taskset -c "$SERVER_CORE" "$STANDALONE" 127.0.0.1:$EDGED_PORT $USER $PASS $REALM 1 127.0.0.0/8 \
  >"$LOGDIR/edged.log" 2>&1 &
PIDS+=($!); EDGED_PID=$!
sleep 1
kill -0 $COTURN_PID || { cat "$LOGDIR/coturn.log"; exit 1; }
kill -0 $EDGED_PID || { cat "$LOGDIR/edged.log"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

# run <server pid> <port> <turn-load args...> -> "cpu_s received loss p50 p99 alloc_per_sec mem_kb_delta"
run() {
  local pid=$1 port=$2; shift 2
  local t0 r0 out t1 h1
  t0=$(cpu_ticks "$pid"); r0=$(rss_kb "$pid")
  out=$(taskset -c "$LOAD_CORE" "$LOAD" --server 127.0.0.1:"$port" --user $USER --password $PASS \
        --peer-ip $PEER_IP "$@" | grep '^RESULT') || { echo "turn-load failed" >&2; return 1; }
  t1=$(cpu_ticks "$pid"); h1=$(hwm_kb "$pid")
  local field; field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$out"; }
  echo "$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN{printf "%.2f", (b-a)/hz}') \
$(field received) $(field loss_pct) $(field p50_us) $(field p99_us) $(field alloc_per_sec) $((h1 - r0))"
}

if [[ $MODE == smoke ]]; then
  AUDIO=(--allocations 50 --rate 50 --size 172 --seconds 3)
  SAT_SMALL=(--allocations 20 --rate 1000 --size 172 --seconds 2 --one-way)
  SAT_LARGE=(--allocations 20 --rate 1000 --size 1200 --seconds 2 --one-way)
  MEM=(--allocations 500 --rate 1 --size 172 --seconds 1)
else
  AUDIO=(--allocations 1000 --rate 50 --size 172 --seconds 15)
  SAT_SMALL=(--allocations 100 --rate 1500 --size 172 --seconds 10 --one-way)
  SAT_LARGE=(--allocations 100 --rate 1500 --size 1200 --seconds 10 --one-way)
  MEM=(--allocations 5000 --rate 1 --size 172 --seconds 2)
fi

printf "%-28s %-7s %8s %10s %12s %7s %8s %8s %9s %9s\n" scenario server cpu_s received pkts_per_cpu_s loss% p50_us p99_us allocs/s kB/alloc
declare -A PER_CPU
for scenario in audio sat172 sat1200 memory; do
  case $scenario in
    audio) args=("${AUDIO[@]}"); label="audio ${AUDIO[1]}x50pps x172B";;
    sat172) args=("${SAT_SMALL[@]}"); label="saturation ${SAT_SMALL[1]} x172B";;
    sat1200) args=("${SAT_LARGE[@]}"); label="saturation ${SAT_LARGE[1]} x1200B";;
    memory) args=("${MEM[@]}"); label="memory ${MEM[1]} allocations";;
  esac
  for server in coturn edged; do
    if [[ $server == coturn ]]; then pid=$COTURN_PID port=$COTURN_PORT; else pid=$EDGED_PID port=$EDGED_PORT; fi
    result=$(run "$pid" "$port" "${args[@]}") || exit 1
    read -r cpu recv loss p50 p99 aps mem <<<"$result"
    per=$(awk -v r="$recv" -v c="$cpu" 'BEGIN{ if (c > 0) printf "%.0f", r/c; else print "inf" }')
    per_alloc=$(awk -v m="$mem" -v n="${args[1]}" 'BEGIN{ printf "%.2f", (m > 0 ? m : 0)/n }')
    PER_CPU[$scenario.$server]=$per
    printf "%-28s %-7s %8s %10s %12s %7s %8s %8s %9s %9s\n" "$label" $server "$cpu" "$recv" "$per" "$loss" "$p50" "$p99" "$aps" "$per_alloc"
    sleep 1
  done
done
echo
for scenario in audio sat172 sat1200; do
  awk -v s=$scenario -v e="${PER_CPU[$scenario.edged]}" -v c="${PER_CPU[$scenario.coturn]}" \
    'BEGIN{ if (c > 0 && e != "inf") printf "%-8s edged/coturn forwarded packets per CPU-second: %.2fx\n", s, e/c; else printf "%-8s ratio not measurable (server CPU below clock resolution)\n", s }'
done
