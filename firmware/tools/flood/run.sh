#!/usr/bin/env bash
# make bench-flood: edged keeps serving legitimate load while hostile floods run, one at a
# time, against it; then coturn under the same TURN floods and Kamailio under the same SIP
# floods, side by side. Prints one row per flood and server: the legitimate load's success
# (calls and web conferencing sessions completed, media loss), the server's memory and open
# descriptors at the peak and after, its CPU seconds and the log bytes it wrote, and the
# flood's own outcome (what the server answered, closed or refused).
#
#   firmware/tools/flood/run.sh            full run: every flood for 30 s (about 25 minutes)
#   firmware/tools/flood/run.sh --smoke    CI: a few seconds each, smaller counts, a subset
#                                          of listeners (under 3 minutes once built)
#
# The bench prints; it does not judge the server by exit code. It exits non-zero when the
# harness itself breaks: a namespace, certificate or server that cannot be set up, a tool
# that prints no RESULT, or a baseline (no flood) in which no legitimate call, session or
# media packet gets through.
#
# Everything runs in network namespaces it creates (and deletes on exit): nothing reaches
# the host's own network. Needs root (namespaces, raw sockets for spoofed sources).
#
#   edge ns    edged (or coturn, or Kamailio): external 10.77.0.1 (bridge), internal 10.78.0.1 (bridge)
#   client ns  legitimate users: 10.77.1.2 outside; 10.78.0.3 inside (TURN peers)
#   flood ns   the attacker: 10.77.2.2; owns 10.128.0.0/9 (local route), so any address of it
#              can be bound or spoofed, and the edge routes answers to it there to be counted
#   int ns     the organisation: Director (SIPp UAS behind stunnel), conferencing server
#              (webconf-connector), a TCP peer for RFC 6062: 10.78.0.2
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
SMOKE=0
[[ "${1:-}" == "--smoke" || "${BENCH_SMOKE:-0}" == "1" ]] && SMOKE=1

if [[ $(id -u) != 0 ]]; then
    echo "bench-flood: needs root (network namespaces, raw sockets)" >&2
    exit 2
fi
for tool in ip sipp stunnel4 turnserver kamailio openssl python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "bench-flood: $tool not installed (Debian: iproute2 sip-tester stunnel4 coturn kamailio kamailio-tls-modules openssl python3)" >&2
        exit 2
    fi
done
# Every server and tool here gets the most descriptors this shell may give; a server that
# crashes under a flood leaves no core file behind.
ulimit -n "$(ulimit -Hn)"
ulimit -c 0

if [[ $SMOKE == 1 ]]; then
    SECS=3; AFTER_SECS=1; IDLE=400; TLS_RATE=100; STUN_RATE=2000; QUIC_RATE=300; SIP_RATE=100; SLOW=100
    TURN_CAP=40; TURN_SECS=6; CALL_RATE=10; ALLOCS=10; SESSION_RATE=2
else
    SECS=30; AFTER_SECS=3; IDLE=20000; TLS_RATE=500; STUN_RATE=20000; QUIC_RATE=2000; SIP_RATE=500; SLOW=2000
    TURN_CAP=2000; TURN_SECS=$SECS; CALL_RATE=40; ALLOCS=50; SESSION_RATE=5
fi
# The bench's targets for the legitimate load (printed with each row).
CALLS_TARGET=99.9; SESSIONS_TARGET=99.9; LOSS_TARGET=1

EXT=10.77.0.1 INT=10.78.0.1 CLIENT=10.77.1.2 CLIENT_IN=10.78.0.3 FLOODER=10.77.2.2 ORG=10.78.0.2
SPOOF_NET=10.128.0.0/9
TCP_PEERS=10.78.32.0/20
TAG=fl$$
NS_EDGE=$TAG-edge NS_CLI=$TAG-cli NS_FLOOD=$TAG-flood NS_INT=$TAG-int
[[ -n "${FLOOD_BIN_DIR:-}" ]] && FLOOD_BIN_DIR=$(cd "$FLOOD_BIN_DIR" && pwd)
WORK=$(mktemp -d /tmp/bench-flood.XXXXXX)
chmod 755 "$WORK"
# Servers and tools write whatever they write beside them (SIPp's logs) in the work directory.
cd "$WORK"
PIDS=()

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in "$NS_EDGE" "$NS_CLI" "$NS_FLOOD" "$NS_INT"; do ip netns del "$ns" 2>/dev/null || true; done
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then echo "bench-flood: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
die() { echo "bench-flood: $*" >&2; exit 1; }

# ------------------------------------------------------------------ build
# FLOOD_BIN_DIR runs prebuilt binaries instead (e.g. a debug build while working on the rig).
if [[ -n "${FLOOD_BIN_DIR:-}" ]]; then
    BIN=$FLOOD_BIN_DIR
else
    echo "bench-flood: building (release)..." >&2
    BIN=$("$ROOT/firmware/build-release.sh")
fi
for b in edged edgectl turn-load webconf-connector flood; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b missing after the build"
done

# ------------------------------------------------------------------ namespaces
setup_namespaces() {
    local ns
    for ns in "$NS_EDGE" "$NS_CLI" "$NS_FLOOD" "$NS_INT"; do
        ip netns add "$ns"
        in_ns "$ns" ip link set lo up
    done
    in_ns "$NS_EDGE" ip link add brx type bridge
    in_ns "$NS_EDGE" ip link add bri type bridge
    # veth name in the edge ns, peer namespace, peer device, bridge, address there.
    local spec
    for spec in "vc $NS_CLI eth0 brx $CLIENT/16" "vh $NS_FLOOD eth0 brx $FLOODER/16" \
                "vi $NS_INT eth0 bri $ORG/16" "vci $NS_CLI eth1 bri $CLIENT_IN/16"; do
        read -r dev peer_ns peer_dev br addr <<<"$spec"
        in_ns "$NS_EDGE" ip link add "$dev" type veth peer name "$peer_dev" netns "$peer_ns"
        in_ns "$NS_EDGE" ip link set "$dev" master "$br" up
        in_ns "$peer_ns" ip addr add "$addr" dev "$peer_dev"
        in_ns "$peer_ns" ip link set "$peer_dev" up
    done
    in_ns "$NS_EDGE" ip addr add "$EXT/16" dev brx
    in_ns "$NS_EDGE" ip addr add "$INT/16" dev bri
    in_ns "$NS_EDGE" ip link set brx up
    in_ns "$NS_EDGE" ip link set bri up
    # The attacker's address space: local in its namespace, routed to it from the edge.
    in_ns "$NS_FLOOD" ip route add local "$SPOOF_NET" dev lo
    # The organisation answers the relay (10.77.0.1) through the edge, and owns a range of
    # TCP peers (one listener on all of them) for RFC 6062 Connect requests.
    in_ns "$NS_INT" ip route add default via "$INT"
    in_ns "$NS_INT" ip route add local "$TCP_PEERS" dev lo
    in_ns "$NS_EDGE" ip route add "$SPOOF_NET" via "$FLOODER"
    in_ns "$NS_FLOOD" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
    in_ns "$NS_CLI" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
    in_ns "$NS_EDGE" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
}
setup_namespaces || die "could not create the namespaces"

# ------------------------------------------------------------------ certificates
# The rig's PKI: one CA; the edge (server and client toward the Director), the Director and
# the conferencing server each get a certificate from it.
issue() { # name sans
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/$1.key" \
        -out "$WORK/$1.csr" -subj "/CN=$1" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' "$2" >"$WORK/$1.ext"
    openssl x509 -req -in "$WORK/$1.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
        -out "$WORK/$1.pem" -days 2 -extfile "$WORK/$1.ext" 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/ca.key" \
    -out "$WORK/ca.pem" -days 2 -subj "/CN=bench-flood rig CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null \
    || die "openssl could not make the rig CA"
issue edge "DNS:edge.flood,IP:$EXT,IP:$INT"
issue director "DNS:director.flood,IP:$ORG"
issue conf "DNS:conf.flood,IP:$ORG"
chmod 644 "$WORK"/*.pem "$WORK"/*.key

# ------------------------------------------------------------------ the organisation (int ns)
wait_tcp() { # ns host port
    local _
    for _ in $(seq 1 150); do
        in_ns "$1" python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 0.2)' "$2" "$3" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
start_bg() { # logfile ns cmd... -> pid in LAST_PID
    local log=$1 ns=$2; shift 2
    # `ip netns exec` execs the command: $! is the server's own pid, to measure and to stop.
    ip netns exec "$ns" "$@" >"$log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

start_bg "$WORK/uas.log" "$NS_INT" sipp -sn uas -t t1 -i "$ORG" -p 5070 -nostdin -buff_size 4194304 -max_socket 100000
cat >"$WORK/director.conf" <<CONF
foreground = yes
pid =
[director]
accept = $ORG:5061
connect = $ORG:5070
cert = $WORK/director.pem
key = $WORK/director.key
CAfile = $WORK/ca.pem
verifyChain = yes
CONF
start_bg "$WORK/director-stunnel.log" "$NS_INT" stunnel4 "$WORK/director.conf"
# The RFC 6062 peers: one listener on every address of $TCP_PEERS, holding what it accepts.
start_bg "$WORK/tcp-peer.log" "$NS_INT" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000)); s.listen(4096); held = []
while True:
    c, _ = s.accept(); held.append(c)'
wait_tcp "$NS_INT" "$ORG" 5061 || die "the Director's TLS port never listened"
wait_tcp "$NS_INT" "$ORG" 9000 || die "the TCP peer never listened"

# The legitimate remote user's TLS client (SIPp has no TLS).
cat >"$WORK/user.conf" <<CONF
foreground = yes
pid =
[user]
client = yes
accept = 127.0.0.1:5090
connect = $EXT:10443
sni = edge.flood
CAfile = $WORK/ca.pem
verifyChain = yes
CONF
start_bg "$WORK/user-stunnel.log" "$NS_CLI" stunnel4 "$WORK/user.conf"
wait_tcp "$NS_CLI" 127.0.0.1 5090 || die "the user's stunnel never listened"

# ------------------------------------------------------------------ servers
SERVER_PID=
SERVER_LOG=
EDGECTL=("$BIN/edgectl" --socket "$WORK/admin.sock")

write_edged_config() {
    cat >"$WORK/edged.toml" <<TOML
schema_version = 1

[appliance]
name = "bench-flood"
user = "edged"
drain_timeout_secs = 2

[network.external]
address = "$EXT"

[network.internal]
address = "$INT"

[logging]
level = "info"

[metrics]
enabled = true
port = 9100

[tls]
internal_ca_files = ["$WORK/ca.pem"]
# Federation partners would come from public CAs; the rig has one CA for everything.
federation_ca_files = ["$WORK/ca.pem"]

[certificates.default]
cert_file = "$WORK/edge.pem"
key_file = "$WORK/edge.key"

[access_edge]
enabled = true
certificate = "default"
remote_users_port = 10443
federation_port = 10061
internal_port = 10061
next_hops = ["$ORG:5061"]
internal_peers = ["director.flood"]
sip_domains = ["example.test"]
# The legitimate SIPp load is many users' calls multiplexed on one stunnel connection
# (about 120 requests/s); a real remote user's connection stays under the default 20/s.
remote_user_requests_per_sec = 1000

[access_edge.federation]
discovery = false

[webconf_edge]
enabled = true
certificate = "default"
external_port = 11443
internal_port = 18057
# The organisation's conferencing server (the reference connector's certificate).
internal_peers = ["conf.flood"]

[av_edge]
enabled = true
certificate = "default"
realm = "flood"
udp_port = 3478
tcp_port = 12443
tls_port = 5349
relay_port_min = 50000
relay_port_max = 59999
allowed_peer_ranges = ["10.78.0.0/16"]
# The legitimate load is one relay user with $ALLOCS allocations.
max_allocations_per_user = 100

[av_auth]
enabled = true
certificate = "default"
sip_port = 5062
rest_port = 8443
TOML
}

start_edged() {
    rm -f "$WORK/admin.sock"
    start_bg "$WORK/edged.log" "$NS_EDGE" "$BIN/edged" --data-dir "$WORK/edged-data" \
        --config "$WORK/edged.toml" --admin-socket "$WORK/admin.sock"
    SERVER_PID=$LAST_PID SERVER_LOG=$WORK/edged.log
    local _
    for _ in $(seq 1 300); do
        if "${EDGECTL[@]}" --json status >"$WORK/status.json" 2>/dev/null &&
            python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["roles"]; sys.exit(0 if all(x["health"]["state"] in ("ready","degraded") for x in r) else 1)' "$WORK/status.json" 2>/dev/null; then
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 30 "$WORK/edged.log" >&2; die "edged exited at start"; }
        sleep 0.1
    done
    "${EDGECTL[@]}" role av_edge add-user --action '{"name":"legit","password":"legitpw"}' >/dev/null
    "${EDGECTL[@]}" role av_edge add-user --action '{"name":"flooder","password":"floodpw"}' >/dev/null
    # The conferencing server connects out to the edge and hosts the legitimate conference.
    start_bg "$WORK/connector.log" "$NS_INT" "$BIN/webconf-connector" serve --edge "$INT:18057" \
        --server-name edge.flood --ca "$WORK/ca.pem" --cert "$WORK/conf.pem" --key "$WORK/conf.key" \
        --conference legit --keys-out "$WORK/keys.json"
    CONNECTOR_PID=$LAST_PID
    for _ in $(seq 1 150); do [[ -s "$WORK/keys.json" ]] && break; sleep 0.1; done
    [[ -s "$WORK/keys.json" ]] || { tail -n 20 "$WORK/connector.log" >&2; die "the conferencing server never got the edge's keys"; }
}

stop_server() {
    [[ -n "${CONNECTOR_PID:-}" ]] && { kill "$CONNECTOR_PID" 2>/dev/null || true; wait "$CONNECTOR_PID" 2>/dev/null || true; CONNECTOR_PID=; }
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

start_coturn() {
    start_bg "$WORK/coturn.out" "$NS_EDGE" turnserver -n --listening-ip="$EXT" --relay-ip="$EXT" \
        --listening-port=3478 --tls-listening-port=5349 --cert="$WORK/edge.pem" --pkey="$WORK/edge.key" \
        --min-port=50000 --max-port=59999 --lt-cred-mech --realm=flood \
        --user=legit:legitpw --user=flooder:floodpw --no-cli --no-dtls \
        --log-file="$WORK/coturn.log" --simple-log
    SERVER_PID=$LAST_PID SERVER_LOG=$WORK/coturn.log
    wait_tcp "$NS_EDGE" "$EXT" 3478 || die "coturn never listened"
}

start_kamailio() {
    sed -e "s|@EXT@|$EXT|g; s|@INT@|$INT|g; s|@ORG@|$ORG|g; s|@DIR@|$WORK|g" "$HERE/kamailio.cfg.in" >"$WORK/kamailio.cfg"
    sed -e "s|@DIR@|$WORK|g" "$HERE/kamailio-tls.cfg.in" >"$WORK/kamailio-tls.cfg"
    start_bg "$WORK/kamailio.log" "$NS_EDGE" kamailio -f "$WORK/kamailio.cfg" -DD -E -m 1024 -M 32
    SERVER_PID=$LAST_PID SERVER_LOG=$WORK/kamailio.log
    wait_tcp "$NS_EDGE" "$EXT" 10443 || { tail -n 20 "$WORK/kamailio.log" >&2; die "Kamailio never listened"; }
}

# ------------------------------------------------------------------ measurements
proc_tree() { local c; echo "$1"; for c in $(pgrep -P "$1" || true); do proc_tree "$c"; done; }
# "rss_kib fds cpu_ticks" summed over the server's processes (Kamailio forks workers; its
# RSS sum counts its shared pool once per process, which the table notes).
sample() {
    local p rss=0 fds=0 ticks=0 v stat rest
    for p in $(proc_tree "$SERVER_PID"); do
        v=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        rss=$((rss + ${v:-0}))
        v=$(ls "/proc/$p/fd" 2>/dev/null | wc -l || true)
        fds=$((fds + v))
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${stat##*) }
        # shellcheck disable=SC2086
        set -- $rest
        ticks=$((ticks + ${12} + ${13}))
    done
    echo "$rss $fds $ticks"
}
log_bytes() { stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)

# ------------------------------------------------------------------ legitimate load
# Each writes its RESULT-like summary to $WORK/legit.<kind>.
legit_calls() {
    local n=$((CALL_RATE * SECS))
    rm -f "$WORK"/uac_*.csv
    (cd "$WORK" && in_ns "$NS_CLI" timeout $((SECS + 60)) sipp -sn uac 127.0.0.1:5090 -t t1 -i 127.0.0.1 \
        -r "$CALL_RATE" -m "$n" -nostdin -buff_size 4194304 -timeout $((SECS + 40))s \
        -trace_stat -stf "$WORK/uac_stat.csv" -fd 1 >/dev/null 2>&1) || true
    python3 - "$WORK/uac_stat.csv" "$n" >"$WORK/legit.calls" <<'PY' || echo "RESULT offered=$n completed=0 failed=0 missing=1" >"$WORK/legit.calls"
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=";"))
head, last = rows[0], rows[-1]
ok = int(last[head.index("SuccessfulCall(C)")]); bad = int(last[head.index("FailedCall(C)")])
print(f"RESULT offered={sys.argv[2]} completed={ok} failed={bad}")
PY
}
legit_media() {
    in_ns "$NS_CLI" timeout $((SECS + 60)) "$BIN/turn-load" --server "$1" --user legit --password legitpw \
        --client-ip "$CLIENT" --peer-ip "$CLIENT_IN" --allocations "$ALLOCS" --rate 50 --size 172 \
        --seconds "$SECS" 2>&1 | grep '^RESULT' >"$WORK/legit.media" || echo "RESULT missing=1" >"$WORK/legit.media"
}
legit_sessions() {
    local token
    token=$(in_ns "$NS_INT" "$BIN/webconf-connector" mint --keys-file "$WORK/keys.json" --conference legit --lifetime-secs 120) || true
    in_ns "$NS_CLI" timeout $((SECS + 60)) "$BIN/flood" webconf-sessions --edge "$EXT:11443" --conference legit \
        --token "${token:-none}" --rate "$SESSION_RATE" --seconds "$SECS" --ca "$WORK/ca.pem" --server-name edge.flood \
        2>"$WORK/legit.sessions.err" | grep '^RESULT' >"$WORK/legit.sessions" || echo "RESULT missing=1" >"$WORK/legit.sessions"
}

# ------------------------------------------------------------------ one phase
ROWS=$WORK/rows.tsv
: >"$ROWS"
HARNESS_BROKEN=0
TLS_ARGS=(--ca "$WORK/ca.pem" --server-name edge.flood)

# phase SERVER LEGIT(calls,media,sessions|-) FLOOD-NAME [flood args... | -]
#   The flood runs in the flood namespace as `flood ARGS`; its RESULT is kept. An argument
#   `xN` before the flood arguments splits it over N processes (descriptor limits).
phase() {
    local server=$1 legit=$2 name=$3; shift 3
    local procs=1
    if [[ "${1:-}" =~ ^x([0-9]+)$ ]]; then procs=${BASH_REMATCH[1]}; shift; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "bench-flood: $server is not running before $name; restarting it" >&2; restart_server "$server"; }
    rm -f "$WORK"/legit.* "$WORK"/flood.out.*
    local s0 l0 lp=() fp=() i
    read -r _ _ c0 <<<"$(sample)"
    l0=$(log_bytes)
    [[ $legit == *calls* ]] && { legit_calls & lp+=($!); }
    [[ $legit == *media* ]] && { legit_media "$EXT:3478" & lp+=($!); }
    [[ $legit == *sessions* ]] && { legit_sessions & lp+=($!); }
    if [[ "${1:-}" != - && $# -gt 0 ]]; then
        for ((i = 0; i < procs; i++)); do
            in_ns "$NS_FLOOD" timeout $((SECS + 90)) "$BIN/flood" "$@" >"$WORK/flood.out.$i" 2>&1 &
            fp+=($!)
        done
    fi
    # Peak memory and descriptors while the flood and the legitimate load run.
    local peak_rss=0 peak_fds=0 rss fds c1 running ticks last_ticks=$c0
    while :; do
        running=0
        for i in "${fp[@]}" "${lp[@]}"; do kill -0 "$i" 2>/dev/null && running=1; done
        read -r rss fds ticks <<<"$(sample)"
        # A server that dies mid-flood keeps the CPU it had used by its last sample.
        ((ticks > last_ticks)) && last_ticks=$ticks
        ((rss > peak_rss)) && peak_rss=$rss
        ((fds > peak_fds)) && peak_fds=$fds
        ((running)) || break
        sleep 0.5
    done
    for i in "${fp[@]}" "${lp[@]}"; do wait "$i" 2>/dev/null || true; done
    read -r _ _ c1 <<<"$(sample)"
    ((c1 > last_ticks)) || c1=$last_ticks
    local l1; l1=$(log_bytes)
    # "After": once the flood's process has gone and its connections with it.
    sleep "$AFTER_SECS"
    local after_rss after_fds alive=yes
    read -r after_rss after_fds _ <<<"$(sample)"
    kill -0 "$SERVER_PID" 2>/dev/null || alive=no
    local flood_result="-"
    if ((${#fp[@]})); then
        flood_result=$(cat "$WORK"/flood.out.* | grep -h '^RESULT' | sed 's/^RESULT //' | paste -sd'|' - || true)
        if [[ -z $flood_result ]]; then
            echo "bench-flood: flood $name printed no RESULT:" >&2
            tail -n 5 "$WORK"/flood.out.* >&2
            HARNESS_BROKEN=1
            flood_result="(no result)"
        fi
    fi
    local calls=- media=- sessions=- k
    for k in calls media sessions; do
        [[ $legit == *$k* ]] || continue
        local line; line=$(sed 's/^RESULT //' "$WORK/legit.$k" 2>/dev/null || echo missing=1)
        [[ -z $line || $line == *missing=1* ]] && { echo "bench-flood: legitimate $k load printed no result in $name" >&2; HARNESS_BROKEN=1; }
        printf -v "$k" '%s' "$line"
    done
    if [[ $name == baseline ]]; then
        check_baseline "$server" "$calls" "$media" "$sessions"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$name" "$calls" "$media" "$sessions" \
        "$peak_rss" "$after_rss" "$peak_fds" "$after_fds" "$(((c1 - c0)))" "$((l1 - l0))" "$alive|$flood_result" >>"$ROWS"
    echo "  $server $name: flood [$flood_result] calls [$calls] media [$media] sessions [$sessions]" >&2
    if [[ $alive == no ]]; then
        echo "bench-flood: $server exited during $name (a finding, not a harness failure); restarting it" >&2
        tail -n 5 "$SERVER_LOG" >&2 || true
        restart_server "$server"
    fi
}

# A baseline with no flood must let legitimate traffic through, or the rig is broken.
check_baseline() {
    local server=$1 calls=$2 media=$3 sessions=$4 v
    if [[ $calls != - ]]; then
        v=$(sed -n 's/.*completed=\([0-9]*\).*/\1/p' <<<"$calls")
        ((${v:-0} > 0)) || { echo "bench-flood: no call completed through $server without a flood" >&2; HARNESS_BROKEN=1; }
    fi
    if [[ $media != - ]]; then
        v=$(sed -n 's/.*received=\([0-9]*\).*/\1/p' <<<"$media")
        ((${v:-0} > 0)) || { echo "bench-flood: no media relayed by $server without a flood" >&2; HARNESS_BROKEN=1; }
    fi
    if [[ $sessions != - ]]; then
        v=$(sed -n 's/.*completed=\([0-9]*\).*/\1/p' <<<"$sessions")
        ((${v:-0} > 0)) || { echo "bench-flood: no web conferencing session completed through $server without a flood" >&2; tail -n 3 "$WORK/legit.sessions.err" >&2; HARNESS_BROKEN=1; }
    fi
    if ((HARNESS_BROKEN)); then
        tail -n 20 "$SERVER_LOG" >&2 || true
        die "the baseline failed: the rig, not the server under test, is broken"
    fi
}

restart_server() {
    stop_server
    case $1 in
        edged) start_edged ;;
        coturn) start_coturn ;;
        kamailio) start_kamailio ;;
    esac
}

# ------------------------------------------------------------------ the floods
idle_procs() { echo "x$(((IDLE + 14999) / 15000))"; }
idle() { # server legit name port [first byte]
    local n; n=$(idle_procs)
    local per=$((IDLE / ${n#x}))
    phase "$1" "$2" "$3" "$n" idle-tcp --target "$EXT:$4" --conns "$per" --seconds "$SECS" \
        --source-count 1000 ${5:+--first-byte "$5"}
}
tls() { # server legit name port [alpn]
    phase "$1" "$2" "$3" tls-handshake --target "$EXT:$4" --rate "$TLS_RATE" --seconds "$SECS" \
        --source-count 1000 "${TLS_ARGS[@]}" ${5:+--alpn "$5"}
}
stun() { # server legit name method [--integrity]
    phase "$1" "$2" "$3" stun --target "$EXT:3478" --method "$4" ${5:-} --rate "$STUN_RATE" \
        --seconds "$SECS" --source-count 0
}
sip_invite() { # server legit name sources
    local per=1
    [[ $4 == 1 ]] && per=8
    phase "$1" "$2" "$3" sip-invite --target "$EXT:10443" --rate "$SIP_RATE" --seconds "$SECS" \
        --source-count "$4" --conns-per-source "$per" "${TLS_ARGS[@]}"
}
slowloris() { # server legit name kind port
    phase "$1" "$2" "$3" slowloris --target "$EXT:$5" --kind "$4" --conns "$SLOW" --seconds "$SECS" \
        --interval-ms 3000 --source-count 1000 "${TLS_ARGS[@]}"
}
turn_user() { # server legit tcp-port
    phase "$1" "$2" turn-user turn-user --server "$EXT:3478" --tcp-server "$EXT:$3" --tcp-peers "$TCP_PEERS" \
        --peers 10.78.16.0/20 --user flooder --password floodpw --src 10.128.0.1 --seconds "$TURN_SECS" \
        --max-tcp "$TURN_CAP" --max-peer-connections "$TURN_CAP" --max-allocations "$TURN_CAP" \
        --max-permissions "$TURN_CAP" --max-channels "$TURN_CAP"
}

ALL=calls,media,sessions
START=$(date +%s)
echo "bench-flood$([[ $SMOKE == 1 ]] && echo ' (smoke)'): ${SECS}s per flood; legitimate load: $CALL_RATE calls/s, $ALLOCS relayed audio flows (50 pps x 172 B each way), $SESSION_RATE web conferencing sessions/s" >&2

write_edged_config
start_edged
echo "edged up after $(($(date +%s) - START)) s; floods:" >&2
phase edged "$ALL" baseline -
if [[ $SMOKE == 1 ]]; then
    idle edged "$ALL" idle-tcp:turn-tcp 12443 00
    tls edged "$ALL" tls:sip 10443
else
    idle edged "$ALL" idle-tcp:sip 10443
    idle edged "$ALL" idle-tcp:federation 10061
    idle edged "$ALL" idle-tcp:webconf 11443
    idle edged "$ALL" idle-tcp:turn-tcp 12443 00
    idle edged "$ALL" idle-tcp:turn-tls 5349
    tls edged "$ALL" tls:sip 10443
    tls edged "$ALL" tls:federation 10061
    tls edged "$ALL" tls:webconf 11443 edged-webconf/1
    tls edged "$ALL" tls:turn-tls 5349
fi
stun edged "$ALL" stun:binding binding
if [[ $SMOKE == 0 ]]; then
    stun edged "$ALL" stun:binding+mi binding --integrity
    stun edged "$ALL" stun:allocate allocate
fi
stun edged "$ALL" stun:allocate+mi allocate --integrity
phase edged "$ALL" quic-initials quic --target "$EXT:11443" --rate "$QUIC_RATE" --seconds "$SECS" --source-count 0 "${TLS_ARGS[@]}"
sip_invite edged "$ALL" sip-invite:1-source 1
sip_invite edged "$ALL" sip-invite:1000-sources 1000
slowloris edged "$ALL" slowloris:sip sip 10443
slowloris edged "$ALL" slowloris:webconf webconf 11443
turn_user edged "$ALL" 12443
stop_server

# coturn under the TURN floods: TURN over TCP and TLS on its own ports (3478 and 5349).
start_coturn
phase coturn media baseline -
if [[ $SMOKE == 1 ]]; then
    stun coturn media stun:allocate+mi allocate --integrity
else
    idle coturn media idle-tcp:turn-tcp 3478 00
    idle coturn media idle-tcp:turn-tls 5349
    tls coturn media tls:turn-tls 5349
    stun coturn media stun:binding binding
    stun coturn media stun:binding+mi binding --integrity
    stun coturn media stun:allocate allocate
    stun coturn media stun:allocate+mi allocate --integrity
fi
turn_user coturn media 3478
stop_server

# Kamailio under the SIP floods, as the same edge (TLS in, mutual TLS to the Director).
start_kamailio
phase kamailio calls baseline -
if [[ $SMOKE == 1 ]]; then
    sip_invite kamailio calls sip-invite:1000-sources 1000
else
    idle kamailio calls idle-tcp:sip 10443
    tls kamailio calls tls:sip 10443
    sip_invite kamailio calls sip-invite:1-source 1
    sip_invite kamailio calls sip-invite:1000-sources 1000
    slowloris kamailio calls slowloris:sip sip 10443
fi
stop_server

echo "bench-flood: $(($(date +%s) - START)) s" >&2
python3 "$HERE/table.py" "$ROWS" "$HZ" "$SECS" "$SMOKE" "$CALLS_TARGET" "$SESSIONS_TARGET" "$LOSS_TARGET"
((HARNESS_BROKEN == 0)) || die "the harness broke (see above): a tool printed no result"
