#!/bin/sh
# Buildroot post-fakeroot (args: TARGET_DIR BOARD_DIR): runs after the package permission
# tables are applied, and Buildroot's busybox package installs /bin/busybox setuid root there
# (individual applets too, with BR2_PACKAGE_BUSYBOX_INDIVIDUAL_BINARIES). Nothing on the
# appliance needs a setuid or setgid file (init, the services and the console login run as
# root; edged drops to its own account), and a setuid multi-call binary offers every local
# account su, mount, passwd and the rest: strip the bits from the whole image.
set -eu
target=$1
find "$target" -xdev -type f -perm /6000 -exec chmod ug-s {} +
left=$(find "$target" -xdev -type f -perm /6000)
if [ -n "$left" ]; then
    echo "post-fakeroot: still setuid/setgid: $left" >&2
    exit 1
fi
exit 0
