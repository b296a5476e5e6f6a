#!/bin/sh
# Buildroot post-image (args: BINARIES_DIR BOARD_DIR): the same disk layout as the Debian
# path, from the same files: EFI partition (Buildroot's grub-efi + board/common/grub.cfg),
# rootfs.squashfs in slot A, an ext4 data partition with the provisioning file, genimage.
set -eu
binaries=$1
board=$2
common=$(cd "$(dirname "$0")" && pwd)
efi="$binaries/efi.vfat"
rm -f "$efi"
mkfs.vfat -C -n EFI "$efi" 16384 >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$efi" ::EFI ::EFI/BOOT
mcopy -i "$efi" "$binaries/efi-part/EFI/BOOT/bootx64.efi" ::EFI/BOOT/BOOTX64.EFI
mcopy -i "$efi" "$common/grub.cfg" ::EFI/BOOT/grub.cfg
grub-editenv "$binaries/grubenv" create
grub-editenv "$binaries/grubenv" set "ORDER=A B" A_OK=1 A_TRY=0 B_OK=0 B_TRY=0
mcopy -i "$efi" "$binaries/grubenv" ::EFI/BOOT/grubenv

data="$binaries/data-root"
rm -rf "$data" "$binaries/data.ext4"
mkdir -p "$data/edged" "$data/rauc"
if [ -f "$board/provisioning.toml" ]; then cp "$board/provisioning.toml" "$data/provisioning.toml"; fi
mkfs.ext4 -q -L data -d "$data" "$binaries/data.ext4" 64M

genimage --config "$board/genimage.cfg" --inputpath "$binaries" --outputpath "$binaries" \
    --rootpath "$(mktemp -d)" --tmppath "$binaries/genimage.tmp"
