#!/bin/sh
# Buildroot post-build (args: TARGET_DIR BOARD_DIR): what the Debian path does in
# images/mk-rootfs.sh after copying the overlays: the RAUC keyring, mount points, release.
set -eu
target=$1
board=${2:-}
keyring=${RAUC_KEYRING:-${BR2_EXTERNAL_EDGE_PATH}/../images/out/keys/ca.cert.pem}
mkdir -p "$target/data" "$target/boot/efi" "$target/etc/rauc"
if [ -f "$keyring" ]; then
    install -m 644 "$keyring" "$target/etc/rauc/keyring.pem"
else
    echo "post-build: no RAUC keyring at $keyring (set RAUC_KEYRING)" >&2
    exit 1
fi
echo "${EDGE_VERSION:-$(date -u +%Y.%m.%d)}" >"$target/etc/edge-release"
[ -n "$board" ] && [ -d "$board/rootfs-overlay" ] && cp -a "$board/rootfs-overlay/." "$target/"
exit 0
