#!/usr/bin/env bash
# `make bench-sip`: edged's Access Edge against Kamailio 5.6 as the same edge proxy, under
# the same SIPp load (SIPp -> stunnel -> proxy over TLS -> stunnel -> SIPp as the Director).
#
#   bench/run.sh            full run (a few minutes): rate steps up to 2,000 calls/s, 10,000 idle TLS
#   bench/run.sh --smoke    under a minute, for CI
#
# Measures per proxy: the highest offered rate with zero failed calls, CPU-seconds per call
# (utime+stime of the proxy's processes from /proc, at the highest rate both passed), and
# memory per 10,000 idle TLS connections: PSS growth summed over all the proxy's processes
# while N handshaken connections are held, on fresh processes before any load (for Kamailio
# also the growth of its own allocators' in-use bytes, shm + pkg, from kamcmd). Prints a
# table and the ratios.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
SMOKE=0
[[ "${1:-}" == "--smoke" || "${BENCH_SMOKE:-0}" == "1" ]] && SMOKE=1
if [[ $SMOKE == 1 ]]; then
    RATES=(100 200); STEP_SECS=3; CONNS=500
else
    RATES=(200 400 800 1200 1600 2000); STEP_SECS=8; CONNS=10000
fi

for tool in sipp stunnel4 kamailio python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "bench-sip: $tool not installed (Debian: sip-tester stunnel4 kamailio kamailio-tls-modules python3)" >&2
        exit 2
    fi
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK=$(mktemp -d /tmp/bench-sip.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    # Tunnels started inside $(...) run in a subshell: their pids are in this file.
    if [[ -f "$WORK/pids" ]]; then
        while read -r p; do kill "$p" 2>/dev/null || true; done <"$WORK/pids"
    fi
    wait 2>/dev/null || true
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then echo "bench-sip: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"
}

# CPU ticks (utime+stime) of a process and its children.
cpu_ticks() {
    local total=0 p stat rest
    for p in "$1" $(pgrep -P "$1" || true); do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        # shellcheck disable=SC2086
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# A process and all its descendants (Kamailio forks its workers from the main process).
proc_tree() {
    local c
    echo "$1"
    for c in $(pgrep -P "$1" || true); do proc_tree "$c"; done
}

# Proportional set size (KiB) summed over a process tree. PSS splits shared pages between the
# processes mapping them, so Kamailio's shared-memory pool is counted once, not per process.
pss_kib() {
    local total=0 p v
    for p in $(proc_tree "$1"); do
        v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# Bytes Kamailio's own allocators hold: shm pool real_used + pkg real_used of every process.
# PSS only sees pages once touched and never sees them returned to the pool, so both are kept.
kam_pool_bytes() {
    local shm pkg
    shm=$(kamcmd -s "unix:$WORK/kamailio_ctl" core.shmmem | awk '/real_used/ {print $2}')
    pkg=$(kamcmd -s "unix:$WORK/kamailio_ctl" pkg.stats | awk '/real_used/ {s += $2} END {print s + 0}')
    echo $((${shm:-0} + ${pkg:-0}))
}

# Established TCP connections on a local port, as the server sees them.
established_on() {
    ss -Htn state established "( sport = :$1 )" | wc -l
}

wait_port() {
    for _ in $(seq 1 100); do
        if python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 0.2)' "$1" "$2" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "bench-sip: $1:$2 never listened" >&2
    exit 1
}

echo "building the edge (release)..." >&2
BIN="$("$ROOT/firmware/build-release.sh")/examples/sip_bench_edge"
TICK=$(getconf CLK_TCK)

# The Director: SIPp's UAS behind stunnel (mutual TLS with the appliance CA).
UAS_PORT=$(free_port 127.0.0.2)
DIR_TLS=$(free_port 127.0.0.2)
mkdir -p "$WORK/edged"
mkfifo "$WORK/edged.in"
"$BIN" "$WORK/edged" "127.0.0.2:$DIR_TLS" <"$WORK/edged.in" >"$WORK/edged.out" 2>"$WORK/edged.err" &
PIDS+=($!)
exec 3>"$WORK/edged.in"
for _ in $(seq 1 100); do grep -q READY "$WORK/edged.out" 2>/dev/null && break; sleep 0.1; done
read -r _ EDGED_ADDR EDGED_PID <"$WORK/edged.out"
CERTS="$WORK/edged"

sipp -sn uas -t t1 -i 127.0.0.2 -p "$UAS_PORT" -nostdin -buff_size 4194304 -max_socket 100000 >/dev/null 2>&1 &
PIDS+=($!)
cat >"$WORK/director.conf" <<CONF
foreground = yes
pid =
[director]
accept = 127.0.0.2:$DIR_TLS
connect = 127.0.0.2:$UAS_PORT
cert = $CERTS/director.pem
key = $CERTS/director.key
CAfile = $CERTS/ca.pem
verifyChain = yes
CONF
stunnel4 "$WORK/director.conf" >/dev/null 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$DIR_TLS"

# Kamailio as the same edge.
K_IN=$(free_port 127.0.0.1)
K_OUT=$(free_port 127.0.0.2)
sed -e "s|@DIR@|$CERTS|g" "$HERE/kamailio-tls.cfg.in" >"$WORK/kamailio-tls.cfg"
start_kamailio() { # TLS_WORKERS
    sed -e "s|@IN_PORT@|$K_IN|; s|@OUT_PORT@|$K_OUT|; s|@DIR@|$WORK|; s|@DIRECTOR_PORT@|$DIR_TLS|; s|@TCP_CHILDREN@|$1|" \
        "$HERE/kamailio.cfg.in" >"$WORK/kamailio.cfg"
    rm -f "$WORK/kamailio_ctl"
    kamailio -f "$WORK/kamailio.cfg" -DD -E -m 2048 -M 32 >>"$WORK/kamailio.log" 2>&1 &
    KAM_PID=$!
    PIDS+=($KAM_PID)
    wait_port 127.0.0.1 "$K_IN"
    for _ in $(seq 1 50); do [[ -S "$WORK/kamailio_ctl" ]] && break; sleep 0.1; done
}
stop_kamailio() {
    kill "$KAM_PID" 2>/dev/null || true
    wait "$KAM_PID" 2>/dev/null || true
}
# Idle connections are measured with one TLS worker: Kamailio 5.6.3 with Debian's OpenSSL 3
# loses a worker to a crash (double free in its shm allocator, kamailio issue #3791; the
# `tls_threads_mode` fix came after 5.6.3) when two workers handshake thousands of
# connections at once. Per-connection state lives in shm and tcp_main either way, so the
# per-connection figure does not depend on the worker count; the load runs with two.
start_kamailio 1

# One stunnel client per proxy: SIPp speaks TCP to it, it speaks TLS to the proxy.
client_tunnel() { # name target -> prints local port
    local port
    port=$(free_port 127.0.0.1)
    cat >"$WORK/$1.conf" <<CONF
foreground = yes
pid =
[$1]
client = yes
accept = 127.0.0.1:$port
connect = $2
CAfile = $CERTS/ca.pem
verifyChain = yes
CONF
    stunnel4 "$WORK/$1.conf" >/dev/null 2>&1 &
    echo $! >>"$WORK/pids"
    wait_port 127.0.0.1 "$port"
    echo "$port"
}

# run_steps NAME PID TUNNEL_PORT -> writes "$WORK/NAME.steps": rate ok ticks calls
run_steps() {
    local name=$1 pid=$2 port=$3 rate calls before after rc
    : >"$WORK/$name.steps"
    for rate in "${RATES[@]}"; do
        calls=$((rate * STEP_SECS))
        before=$(cpu_ticks "$pid")
        rc=0
        timeout $((STEP_SECS * 4 + 30)) sipp -sn uac "127.0.0.1:$port" -t t1 -i 127.0.0.1 -r "$rate" -m "$calls" \
            -nostdin -buff_size 4194304 -timeout $((STEP_SECS * 3 + 20))s >/dev/null 2>&1 || rc=$?
        after=$(cpu_ticks "$pid")
        echo "$rate $rc $((after - before)) $calls" >>"$WORK/$name.steps"
        echo "  $name: $rate calls/s x ${STEP_SECS}s -> sipp exit $rc, $((after - before)) ticks" >&2
        [[ $rc == 0 ]] || break
        sleep 1
    done
}

# idle_memory NAME PID HOST PORT -> "handshaken failed server_side pss_delta_kib pool_delta_bytes"
# Run on fresh processes, before any load: afterwards both allocators reuse pages freed by the
# load and the growth no longer shows in PSS.
idle_memory() {
    local name=$1 pid=$2 host=$3 port=$4 pss0 pss1 pool0=0 pool1=0 up failed server
    sleep 1
    pss0=$(pss_kib "$pid")
    [[ $name == kamailio ]] && pool0=$(kam_pool_bytes)
    python3 "$HERE/idle_tls.py" "$host" "$port" "$CERTS/ca.pem" "$CONNS" 30 >"$WORK/$name.idle" 2>/dev/null &
    local ipid=$!
    PIDS+=($ipid)
    for _ in $(seq 1 600); do grep -q UP "$WORK/$name.idle" 2>/dev/null && break; sleep 0.5; done
    sleep 2
    pss1=$(pss_kib "$pid")
    [[ $name == kamailio ]] && pool1=$(kam_pool_bytes)
    server=$(established_on "$port")
    read -r _ up _ failed <"$WORK/$name.idle" || true
    kill "$ipid" 2>/dev/null || true
    wait "$ipid" 2>/dev/null || true
    echo "  $name: ${up:-0} handshaken, ${failed:-?} failed, $server established server-side, PSS +$((pss1 - pss0)) KiB, pool +$((pool1 - pool0)) B" >&2
    echo "${up:-0} ${failed:--1} $server $((pss1 - pss0)) $((pool1 - pool0))"
}

echo "idle TLS connections: $CONNS each, fresh processes" >&2
read -r E_UP E_FAILED E_SERVER E_KIB _ < <(idle_memory edged "$EDGED_PID" 127.0.0.1 "${EDGED_ADDR##*:}")
sleep 3 # let the closed connections drain before the next proxy's handshakes
# Should Kamailio still crash, the attempt is no measurement: it is restarted fresh and the
# idle run repeated (at most 3 tries), and the crashes are reported with the table.
K_TRIES=0
while :; do
    K_TRIES=$((K_TRIES + 1))
    read -r K_UP K_FAILED K_SERVER K_KIB K_POOL < <(idle_memory kamailio "$KAM_PID" 127.0.0.1 "$K_IN")
    if kill -0 "$KAM_PID" 2>/dev/null && [[ $K_UP == "$CONNS" ]]; then break; fi
    echo "  kamailio: crashed or incomplete on attempt $K_TRIES; restarting it fresh" >&2
    stop_kamailio
    start_kamailio 1
    [[ $K_TRIES -lt 3 ]] || break
done
stop_kamailio
start_kamailio 2

echo "load: edged" >&2
E_PORT=$(client_tunnel edged-client "$EDGED_ADDR")
run_steps edged "$EDGED_PID" "$E_PORT"
echo "load: kamailio" >&2
K_PORT=$(client_tunnel kam-client "127.0.0.1:$K_IN")
run_steps kamailio "$KAM_PID" "$K_PORT"

K_CRASHES=$(grep -cE "exited by a signal (6|11)" "$WORK/kamailio.log" || true)
python3 - "$WORK/edged.steps" "$WORK/kamailio.steps" "$TICK" "$SMOKE" "$CONNS" \
    "$E_UP" "$E_FAILED" "$E_SERVER" "$E_KIB" "$K_UP" "$K_FAILED" "$K_SERVER" "$K_KIB" "$K_POOL" \
    "$K_TRIES" "${K_CRASHES:-0}" <<'PY'
import sys
e_steps, k_steps, tick, smoke, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
e_up, e_failed, e_server, e_kib = map(int, sys.argv[6:10])
k_up, k_failed, k_server, k_kib, k_pool = map(int, sys.argv[10:15])
k_tries, k_crashes = int(sys.argv[15]), int(sys.argv[16])

def load(path):
    rows = []
    for line in open(path):
        rate, rc, ticks, calls = map(int, line.split())
        rows.append((rate, rc, ticks, calls))
    return rows

e, k = load(e_steps), load(k_steps)
def best(rows):
    ok = [r for r in rows if r[1] == 0]
    return max((r[0] for r in ok), default=0)
common = [r for r in (set(r[0] for r in e if r[1] == 0) & set(r[0] for r in k if r[1] == 0))]
at = max(common) if common else None
def cpu_ms(rows, rate):
    for r in rows:
        if r[0] == rate and r[3]:
            return 1000.0 * r[2] / tick / r[3]
    return float("nan")
def per10k_mib(up, kib):
    # Only a run where every connection completed its handshake is a measurement.
    return (kib / up * 10000 / 1024) if up and up == conns else float("nan")
NAN = float("nan")
e_ms, k_ms = (cpu_ms(e, at), cpu_ms(k, at)) if at else (NAN, NAN)
e_mem, k_mem = per10k_mib(e_up, e_kib), per10k_mib(k_up, k_kib)
k_pool_mem = per10k_mib(k_up, k_pool / 1024)
print(f"bench-sip{' (smoke)' if smoke else ''}: SIPp uac/uas through each proxy over TLS (stunnel at both ends)")
print()
cpu_col = f"CPU ms/call @ {at} calls/s"
print(f"| proxy    | max clean calls/s | {cpu_col} | calls per CPU-second | idle TLS handshaken / offered | MiB per 10,000 idle TLS (PSS) | (allocator in-use) |")
print(f"|----------|-------------------|-{'-' * len(cpu_col)}-|----------------------|-------------------------------|-------------------------------|--------------------|")
for name, rows, ms, up, mem, pool in (("edged", e, e_ms, e_up, e_mem, "-"), ("kamailio", k, k_ms, k_up, k_mem, f"{k_pool_mem:.1f}")):
    cps = 1000.0 / ms if ms == ms and ms > 0 else NAN
    print(f"| {name:<8} | {best(rows):>17} | {ms:>{len(cpu_col)}.3f} | {cps:>20.0f} | {f'{up} / {conns}':>29} | {mem:>29.1f} | {pool:>18} |")
print()
print(f"idle TLS: server-side established edged {e_server}, kamailio {k_server}; failed handshakes edged {e_failed}, kamailio {k_failed}")
print(f"kamailio: idle run took {k_tries} attempt(s); worker processes crashed during the run: {k_crashes}")
if e_ms == e_ms and k_ms == k_ms and e_ms > 0:
    print(f"calls per CPU-second, edged / kamailio: {k_ms / e_ms:.2f}x  (target >= 2x)")
if e_mem == e_mem and k_mem == k_mem and k_mem > 0:
    print(f"memory per idle TLS connection, edged / kamailio (PSS of all processes): {e_mem / k_mem:.3f}  (target <= 0.25)")
if e_mem == e_mem and k_pool_mem == k_pool_mem and k_pool_mem > 0:
    print(f"memory per idle TLS connection, edged PSS / kamailio shm+pkg in use (kamcmd): {e_mem / k_pool_mem:.3f}  (target <= 0.25)")
PY
