#!/bin/bash
# Builds the appliance image (Debian path) into images/out/:
#   edge-appliance.img     GPT disk: efi (GRUB), rootfs-a, rootfs-b (squashfs, gzip), data (ext4)
#   edge-appliance.img.xz  the same, compressed for distribution
#   edge-appliance.raucb   signed RAUC update bundle of the root filesystem
#   hil/                   bundles only the HIL suite uses (never-healthy system, foreign signer)
#   keys/                  development signing keys (generated once; see images/README.md)
# No loop mounts: filesystems are built from directories (mksquashfs, mkfs.ext4 -d, mtools)
# and assembled by genimage.
#
# Environment:
#   EDGED_BIN_DIR   directory with prebuilt edged and edgectl (skips cargo)
#   PROVISIONING    provisioning file put on the data partition (default: the qemu rig's)
#   BOARD           board directory under board/ (default qemu-x86_64)
#   RAUC_KEY, RAUC_CERT, RAUC_KEYRING  production signing material (default: dev keys)
#   VERSION         bundle version (default: date based)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
out="$here/out"
board="$repo/board/${BOARD:-qemu-x86_64}"
common="$repo/board/common"
work="$out/work"
cache="$out/cache"
version=${VERSION:-$(date -u +%Y.%m.%d-%H%M%S)}

# shellcheck source=images/lib.sh
. "$here/lib.sh"

log "packages"
ensure_packages genimage rauc squashfs-tools mtools dosfstools grub-efi-amd64-bin grub-common \
    busybox-static e2fsprogs xz-utils openssl kmod cpio dbus-daemon dbus-system-bus-common \
    fdisk

mkdir -p "$out" "$cache"
rm -rf "$work"
mkdir -p "$work"

log "edged and edgectl (release build)"
bindir=$(build_edged "$repo")

log "kernel (Debian linux-image-amd64)"
kdir="$cache/kernel"
kver=$(fetch_kernel "$cache" "$kdir")
echo "  kernel $kver"

log "initramfs"
"$here/mk-initramfs.sh" "$kdir" "$kver" "$common/initramfs" "$work/initrd.img" "$board/initramfs-modules"

log "keys"
"$here/mk-keys.sh" "$out/keys"
keyring=${RAUC_KEYRING:-$out/keys/ca.cert.pem}
cert=${RAUC_CERT:-$out/keys/signing.cert.pem}
key=${RAUC_KEY:-$out/keys/signing.key.pem}

log "root filesystem"
"$here/mk-rootfs.sh" "$work/rootfs" "$bindir" "$kdir/boot/vmlinuz-$kver" "$work/initrd.img" \
    "$keyring" "$version" "$common/rootfs-overlay" "$board/rootfs-overlay"
mksquashfs "$work/rootfs" "$work/rootfs.squashfs" -comp gzip -b 256K -noappend \
    -all-root -no-progress -quiet >/dev/null

log "EFI partition"
"$here/mk-efi.sh" "$work/efi.vfat" "$common"

log "data partition"
prov=${PROVISIONING:-$board/provisioning.toml}
mkdir -p "$work/data/edged" "$work/data/rauc"
if [ -f "$prov" ]; then cp "$prov" "$work/data/provisioning.toml"; fi
rm -f "$work/data.ext4"
mkfs.ext4 -q -L data -O ^metadata_csum_seed -E root_owner=0:0 -d "$work/data" "$work/data.ext4" 64M

log "disk image (genimage)"
rm -rf "$work/genimage-tmp" "$work/genimage-root"
mkdir -p "$work/genimage-root"
genimage --config "$board/genimage.cfg" --inputpath "$work" --outputpath "$out" \
    --tmppath "$work/genimage-tmp" --rootpath "$work/genimage-root" >"$work/genimage.log" 2>&1 ||
    { cat "$work/genimage.log"; die "genimage failed"; }
xz -T0 -6 -k -f "$out/edge-appliance.img"

log "RAUC bundles"
"$here/mk-bundle.sh" "$work/rootfs.squashfs" "$version" "$cert" "$key" "$keyring" "$out/edge-appliance.raucb"
# For the HIL suite: a system whose edged never becomes healthy (fallback test) and a
# bundle signed by a key outside the keyring (refusal test).
mkdir -p "$out/hil"
cp -a "$work/rootfs" "$work/rootfs-broken"
printf '#!/bin/sh\necho "edged: refusing to start (fallback test system)" >&2\nsleep 5\nexit 1\n' \
    >"$work/rootfs-broken/usr/bin/edged"
chmod 755 "$work/rootfs-broken/usr/bin/edged"
echo "$version-never-healthy" >"$work/rootfs-broken/etc/edge-release"
mksquashfs "$work/rootfs-broken" "$work/rootfs-broken.squashfs" -comp gzip -b 256K \
    -noappend -all-root -no-progress -quiet >/dev/null
"$here/mk-bundle.sh" "$work/rootfs-broken.squashfs" "$version-never-healthy" "$cert" "$key" "$keyring" \
    "$out/hil/never-healthy.raucb"
"$here/mk-keys.sh" "$out/hil/foreign-keys"
"$here/mk-bundle.sh" "$work/rootfs.squashfs" "$version-foreign" "$out/hil/foreign-keys/signing.cert.pem" \
    "$out/hil/foreign-keys/signing.key.pem" "$out/hil/foreign-keys/ca.cert.pem" "$out/hil/foreign-signer.raucb"
cp "$work/rootfs/boot/vmlinuz" "$out/hil/vmlinuz"
echo "$version" >"$out/VERSION"

log "sizes"
export SIZES_FILE="$out/sizes.tsv"
: >"$SIZES_FILE"
report_size "disk image (raw, sparse)" "$out/edge-appliance.img"
report_size "disk image (xz)" "$out/edge-appliance.img.xz"
report_size "root filesystem (squashfs)" "$work/rootfs.squashfs"
report_size "update bundle" "$out/edge-appliance.raucb"
limit=$((64 * 1024 * 1024))
if [ "$(stat -c %s "$out/edge-appliance.img.xz")" -gt "$limit" ]; then
    die "compressed image exceeds the 64 MiB budget"
fi
rm -rf "$work/rootfs-broken" "$work/genimage-tmp"
echo "image: $out/edge-appliance.img  bundle: $out/edge-appliance.raucb  version: $version"
