#!/bin/bash
# mk-rootfs.sh DIR BINDIR VMLINUZ INITRD KEYRING VERSION OVERLAY...
# The read-only root filesystem of one slot: busybox userspace and init, edged and edgectl
# with the glibc libraries they load, RAUC with the D-Bus system bus it talks on, the kernel
# and initramfs GRUB loads from this slot, and the board overlays (later overlays win).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
root=$1 bindir=$2 vmlinuz=$3 initrd=$4 keyring=$5 version=$6
shift 6
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,data,boot/efi,root,var/lib}
ln -s ../run "$root/var/run"
ln -s ../tmp "$root/var/tmp"

install -m 755 /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list-full); do
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done

install -s -m 755 "$bindir/edged" "$root/usr/bin/edged"
install -s -m 755 "$bindir/edgectl" "$root/usr/bin/edgectl"
copy_libs_of "$root" "$bindir/edged" "$bindir/edgectl"

copy_with_libs "$root" /usr/bin/rauc /usr/bin/dbus-daemon /usr/bin/grub-editenv /sbin/e2fsck
ln -sf e2fsck "$root/sbin/fsck.ext4"
# The system bus configuration and RAUC's bus policy (from the rauc-service package).
mkdir -p "$root/usr/share/dbus-1/system.d" "$root/etc/dbus-1/system.d"
cp /usr/share/dbus-1/system.conf "$root/usr/share/dbus-1/system.conf"
cache="$here/out/cache"
if ! ls "$cache"/rauc-service_*.deb >/dev/null 2>&1; then
    (cd "$cache" && apt-get download -qq rauc-service >/dev/null 2>&1) || die "cannot download rauc-service"
fi
svc=$(mktemp -d)
dpkg-deb -x "$(ls "$cache"/rauc-service_*.deb | head -n 1)" "$svc"
find "$svc" -name 'de.pengutronix.rauc.conf' -path '*dbus-1*' -exec cp {} "$root/usr/share/dbus-1/system.d/" \;
rm -rf "$svc"
# GRUB's environment tool wants its locale directory; nothing else of grub-common is needed.
mkdir -p "$root/usr/share/locale"

install -m 644 "$vmlinuz" "$root/boot/vmlinuz"
install -m 644 "$initrd" "$root/boot/initrd.img"
install -D -m 644 "$keyring" "$root/etc/rauc/keyring.pem"

for overlay in "$@"; do
    [ -d "$overlay" ] && cp -a "$overlay/." "$root/"
done
echo "$version" >"$root/etc/edge-release"
chmod 600 "$root/etc/shadow"
