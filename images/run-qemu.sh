#!/bin/bash
# images/run-qemu.sh [IMAGE]: boots a scratch copy of the appliance image in qemu with the
# serial console on this terminal (Ctrl-A X quits), UEFI and the i6300esb watchdog. The two
# ports exist but lead nowhere (isolated user networking): for trying the image by hand.
# The HIL suite builds the full rig with both ports bridged into network namespaces.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=${1:-$here/out/edge-appliance.img}
[ -f "$image" ] || { echo "no image at $image: run images/build-image.sh" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp --sparse=always "$image" "$scratch/disk.img"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$scratch/vars.fd"
accel=tcg
cpu=qemu64
if [ -n "${KVM:-}" ]; then accel=kvm cpu=host; fi
qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -machine q35,smm=off -smp 2 -m 512 -nodefaults -no-user-config \
    -display none -serial mon:stdio \
    -drive if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
    -drive if=pflash,format=raw,file="$scratch/vars.fd" \
    -drive if=virtio,format=raw,file="$scratch/disk.img" \
    -device i6300esb -watchdog-action reset \
    -object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0 \
    -nic user,model=virtio-net-pci,restrict=on -nic user,model=virtio-net-pci,restrict=on
