#!/usr/bin/env bash
# make bench-turn: coturn and edged's A/V Edge side by side under the same turn-load load.
#
# Both servers run pinned to the same core (SERVER_CORE) with one relay thread; the load
# generator runs on another core (LOAD_CORE). Server CPU comes from /proc/PID/stat
# (utime+stime), forwarded packets from what the generator received. Prints forwarded
# packets per server CPU-second, loss, p50/p99 latency, allocations/s and memory per
# allocation, and the edged/coturn ratios. On a 2-core machine the generator shares one
# core between its sender and receiver, so "saturation" is a fixed high rate (the
# generator's own limit), and losses there are mostly the generator's: srv_drops counts the
# datagrams dropped on the server's own sockets, so the two can be told apart.
#
#   bench/turn-bench.sh            full run (several minutes)
#   bench/turn-bench.sh --smoke    short run for CI (under a minute)
set -euo pipefail

MODE=full
[[ "${1:-}" == "--smoke" ]] && MODE=smoke
ROOT=$(cd "$(dirname "$0")/../../../.." && pwd)
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

# EDGED_BIN / LOAD_BIN run prebuilt binaries instead (e.g. to compare two builds of edged).
if [[ -z "${EDGED_BIN:-}" || -z "${LOAD_BIN:-}" ]]; then
  RELEASE=$("$ROOT/firmware/build-release.sh")
fi
STANDALONE=${EDGED_BIN:-$RELEASE/examples/standalone}
LOAD=${LOAD_BIN:-$RELEASE/turn-load}

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Other work on this machine (builds) must not decide the result. As root, both servers
# run SCHED_FIFO (a relay thread that waits for the scheduler while its receive buffer
# fills drops packets that no amount of efficiency can save) and the generator at the
# highest ordinary priority (not FIFO: its sender spins between packets and would starve
# its own receiver). SERVER_PRIO_OVERRIDE / PRIO_OVERRIDE replace them, e.g.
# SERVER_PRIO_OVERRIDE="nice -n -20".
PRIO=() SERVER_PRIO=()
if [[ $(id -u) == 0 ]]; then
  PRIO=(nice -n -20) SERVER_PRIO=(nice -n -20)
  chrt -f 10 true 2>/dev/null && SERVER_PRIO=(chrt -f 10)
fi
[[ -n "${PRIO_OVERRIDE:-}" ]] && read -r -a PRIO <<<"$PRIO_OVERRIDE"
[[ -n "${SERVER_PRIO_OVERRIDE:-}" ]] && read -r -a SERVER_PRIO <<<"$SERVER_PRIO_OVERRIDE"

LOGDIR=$(mktemp -d)
"${SERVER_PRIO[@]}" taskset -c "$SERVER_CORE" turnserver -n --listening-ip=127.0.0.1 --listening-port=$COTURN_PORT \
  --relay-ip=127.0.0.1 --min-port=40000 --max-port=49999 --relay-threads=1 \
  --lt-cred-mech --user=$USER:$PASS --realm=$REALM --allow-loopback-peers \
  --no-cli --no-tls --no-dtls --no-tcp-relay --log-file=stdout --simple-log \
  >"$LOGDIR/coturn.log" 2>&1 &
PIDS+=($!); COTURN_PID=$!
echo "coturn: $(turnserver --version 2>/dev/null | head -1); edged: $STANDALONE; servers: ${SERVER_PRIO[*]:-default}; generator: ${PRIO[*]:-default}"
"${SERVER_PRIO[@]}" taskset -c "$SERVER_CORE" "$STANDALONE" 127.0.0.1:$EDGED_PORT $USER $PASS $REALM 1 127.0.0.0/8 \
  >"$LOGDIR/edged.log" 2>&1 &
PIDS+=($!); EDGED_PID=$!
sleep 1
kill -0 $COTURN_PID || { cat "$LOGDIR/coturn.log"; exit 1; }
kill -0 $EDGED_PID || { cat "$LOGDIR/edged.log"; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
# Datagrams the kernel dropped on the server's own sockets (full receive buffers): the
# "drops" column of /proc/net/udp{,6} for the socket inodes the process holds. Loss the
# generator reports beyond this happened in the generator's sockets, not the server's.
server_drops() {
  local inodes
  inodes=$(ls -l "/proc/$1/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p')
  awk 'NR == FNR { want[$1] = 1; next } FNR > 1 && ($10 in want) { d += $NF } END { print d + 0 }' \
    <(echo "$inodes") /proc/net/udp /proc/net/udp6
}

# run <server pid> <port> <turn-load args...>
#   -> "cpu_s received loss p50 p99 alloc_per_sec mem_kb_delta server_drops"
run() {
  local pid=$1 port=$2; shift 2
  local t0 r0 d0 out t1 h1 d1
  t0=$(cpu_ticks "$pid"); r0=$(rss_kb "$pid"); d0=$(server_drops "$pid")
  out=$("${PRIO[@]}" taskset -c "$LOAD_CORE" "$LOAD" --server 127.0.0.1:"$port" --user $USER --password $PASS \
        --peer-ip $PEER_IP "$@" | grep '^RESULT') || { echo "turn-load failed" >&2; return 1; }
  t1=$(cpu_ticks "$pid"); h1=$(hwm_kb "$pid"); d1=$(server_drops "$pid")
  local field; field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$out"; }
  echo "$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN{printf "%.2f", (b-a)/hz}') \
$(field received) $(field loss_pct) $(field p50_us) $(field p99_us) $(field alloc_per_sec) $((h1 - r0)) $((d1 - d0))"
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

# This machine's timings drift by tens of percent over minutes: the full run takes each
# scenario ROUNDS times, coturn and edged alternating, and compares the sums.
ROUNDS=${ROUNDS:-$([[ $MODE == smoke ]] && echo 1 || echo 2)}

printf "%-28s %-7s %8s %10s %12s %7s %9s %8s %8s %9s %9s\n" scenario server cpu_s received pkts_per_cpu_s loss% srv_drops p50_us p99_us allocs/s kB/alloc
declare -A CPU RECV
for scenario in audio sat172 sat1200 memory; do
  case $scenario in
    audio) args=("${AUDIO[@]}"); label="audio ${AUDIO[1]}x50pps x172B";;
    sat172) args=("${SAT_SMALL[@]}"); label="saturation ${SAT_SMALL[1]} x172B";;
    sat1200) args=("${SAT_LARGE[@]}"); label="saturation ${SAT_LARGE[1]} x1200B";;
    memory) args=("${MEM[@]}"); label="memory ${MEM[1]} allocations";;
  esac
  rounds=$ROUNDS
  [[ $scenario == memory ]] && rounds=1
  for ((round = 1; round <= rounds; round++)); do
    for server in coturn edged; do
      if [[ $server == coturn ]]; then pid=$COTURN_PID port=$COTURN_PORT; else pid=$EDGED_PID port=$EDGED_PORT; fi
      result=$(run "$pid" "$port" "${args[@]}") || exit 1
      read -r cpu recv loss p50 p99 aps mem drops <<<"$result"
      per=$(awk -v r="$recv" -v c="$cpu" 'BEGIN{ if (c > 0) printf "%.0f", r/c; else print "inf" }')
      per_alloc=$(awk -v m="$mem" -v n="${args[1]}" 'BEGIN{ printf "%.2f", (m > 0 ? m : 0)/n }')
      CPU[$scenario.$server]=$(awk -v a="${CPU[$scenario.$server]:-0}" -v b="$cpu" 'BEGIN{print a + b}')
      RECV[$scenario.$server]=$(( ${RECV[$scenario.$server]:-0} + recv ))
      printf "%-28s %-7s %8s %10s %12s %7s %9s %8s %8s %9s %9s\n" "$label" $server "$cpu" "$recv" "$per" "$loss" "$drops" "$p50" "$p99" "$aps" "$per_alloc"
      sleep 1
    done
  done
done
echo
for scenario in audio sat172 sat1200; do
  awk -v s=$scenario -v n="$ROUNDS" \
    -v er="${RECV[$scenario.edged]}" -v ec="${CPU[$scenario.edged]}" \
    -v cr="${RECV[$scenario.coturn]}" -v cc="${CPU[$scenario.coturn]}" \
    'BEGIN{ if (cc > 0 && ec > 0) printf "%-8s edged/coturn forwarded packets per CPU-second: %.2fx (%.0f vs %.0f, %d round(s))\n", s, (er/ec)/(cr/cc), er/ec, cr/cc, n; else printf "%-8s ratio not measurable (server CPU below clock resolution)\n", s }'
done
