#!/bin/bash
# Runs the HIL suite (`make hil`): installs what the rig needs, a venv with labgrid and
# pytest, then the tests against the image in images/out (qemu; KVM when it works, TCG
# otherwise). Extra arguments go to pytest, e.g. `hil-tests/run.sh -k watchdog` or
# `--lg-env hil-tests/env/rig-example.yaml` for a real rig.
# Everything the run creates (namespaces, qemu, servers) is removed on exit, also on failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
. "$repo/images/lib.sh"

[ "$(id -u)" = 0 ] || die "the rig creates network namespaces and taps: run as root"

pkgs=(qemu-system-x86 ovmf coturn sip-tester stunnel4 openssl iproute2 python3-venv)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get update -qq >/dev/null
    # qemu-utils from backports breaks the distribution's qemu-system: keep them one version.
    qv=$(apt-cache policy qemu-system-x86 | awk '/Candidate/{print $2}')
    extra=()
    dpkg-query -W qemu-utils >/dev/null 2>&1 && extra=(--allow-downgrades "qemu-utils=$qv")
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" "${extra[@]}" >/dev/null
fi
# coturn's server is not wanted on the rig host, only its test clients.
if pidof turnserver >/dev/null 2>&1 && [ -f /etc/init.d/coturn ]; then /etc/init.d/coturn stop >/dev/null 2>&1 || true; fi

if [ ! -x "$here/.venv/bin/pytest" ] || ! "$here/.venv/bin/python" -c "import labgrid" 2>/dev/null; then
    log "python venv (labgrid, pytest)"
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install -q --disable-pip-version-check "labgrid==26.*" "pytest>=8,<10"
fi

[ -f "$repo/images/out/edge-appliance.img" ] || die "no image: run images/build-image.sh (make image) first"

cleanup() {
    "$here/.venv/bin/python" -c "import sys; sys.path.insert(0, '$here'); from rig import netns; netns.remove_stale()" || true
    if [ -f "$here/.work/qemu.pids" ]; then
        while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done <"$here/.work/qemu.pids"
        rm -f "$here/.work/qemu.pids"
    fi
}
trap cleanup EXIT INT TERM

env_file="$here/env/qemu.yaml"
for arg in "$@"; do case "$arg" in --lg-env*) env_file="" ;; esac; done
mkdir -p "$here/.work/logs"
cd "$here"
start=$(date +%s)
set +e
timeout --signal=INT --kill-after=30 "${HIL_TIMEOUT:-900}" "$here/.venv/bin/pytest" \
    ${env_file:+--lg-env "$env_file"} --lg-log "$here/.work/logs" -v -s \
    --junitxml "$here/.work/results.xml" "$@"
rc=$?
set -e
log "HIL suite finished in $(($(date +%s) - start))s (exit $rc); console logs in hil-tests/.work/logs"
exit $rc
