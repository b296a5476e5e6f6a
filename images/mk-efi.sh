#!/bin/bash
# mk-efi.sh OUTPUT BOARD_COMMON_DIR
# The EFI system partition: a standalone GRUB that reads squashfs (gzip) slots, the A/B boot
# logic (grub.cfg) and its environment (grubenv), written with mtools instead of a mount.
set -euo pipefail
output=$1 common=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

grub-mkstandalone -O x86_64-efi -o "$tmp/BOOTX64.EFI" \
    --modules="part_gpt fat squash4 xzio gzio linux normal loadenv test echo configfile reboot sleep" \
    --locales= --fonts= --themes= \
    "boot/grub/grub.cfg=$common/grub-embed.cfg"
grub-editenv "$tmp/grubenv" create
vars=()
while IFS= read -r line; do
    case "$line" in '' | '#'*) ;; *) vars+=("$line") ;; esac
done <"$common/grubenv.defaults"
grub-editenv "$tmp/grubenv" set "${vars[@]}"
rm -f "$output"
mkfs.vfat -C -n EFI "$output" $((16 * 1024)) >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$output" ::EFI ::EFI/BOOT
mcopy -i "$output" "$tmp/BOOTX64.EFI" ::EFI/BOOT/BOOTX64.EFI
mcopy -i "$output" "$common/grub.cfg" ::EFI/BOOT/grub.cfg
mcopy -i "$output" "$tmp/grubenv" ::EFI/BOOT/grubenv
