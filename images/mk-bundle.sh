#!/bin/bash
# mk-bundle.sh ROOTFS_SQUASHFS VERSION CERT KEY KEYRING OUTPUT
# A signed RAUC bundle (verity format: the appliance checks every block as it reads it,
# so one tampered byte fails the install).
set -euo pipefail
rootfs=$1 version=$2 cert=$3 key=$4 keyring=$5 output=$6
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/content"
cp "$rootfs" "$tmp/content/rootfs.img"
cat >"$tmp/content/manifest.raucm" <<MANIFEST
[update]
compatible=edge-appliance-x86_64
version=$version

[bundle]
format=verity

[image.rootfs]
filename=rootfs.img
MANIFEST
rm -f "$output"
rauc bundle --cert="$cert" --key="$key" --keyring="$keyring" "$tmp/content" "$output" >"$tmp/log" 2>&1 ||
    { cat "$tmp/log" >&2; exit 1; }
rauc info --keyring="$keyring" "$output" >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
