#!/bin/bash
# Proves check-tree.sh catches what it claims to: runs it on the real tree (must pass) and on
# broken copies (each must fail naming the problem). Fast, no Buildroot needed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
failures=0

"$here/check-tree.sh" >/dev/null || { echo "test-check-tree: the tree itself does not pass"; failures=$((failures + 1)); }

# expect_failure DESCRIPTION EXPECTED_MESSAGE MUTATION (run inside a copy of the repo subset)
expect_failure() {
    local what=$1 expected=$2 mutation=$3 tmp out
    tmp=$(mktemp -d) && [ -d "$tmp" ] || { echo "test-check-tree: cannot create a scratch directory" >&2; exit 1; }
    cp -a "$repo/buildroot" "$repo/board" "$tmp/"
    touch "$tmp/Cargo.lock"
    (cd "$tmp" && eval "$mutation")
    if out=$("$tmp/buildroot/check-tree.sh" 2>&1); then
        echo "test-check-tree: not caught: $what"
        failures=$((failures + 1))
    elif ! grep -q "$expected" <<<"$out"; then
        echo "test-check-tree: $what: expected '$expected' in: $out"
        failures=$((failures + 1))
    fi
    rm -rf "$tmp"
}

expect_failure "unknown defconfig symbol" "unknown symbol BR2_PACKAGE_NO_SUCH" \
    "echo BR2_PACKAGE_NO_SUCH=y >>buildroot/configs/edge_qemu_x86_64_defconfig"
expect_failure "missing post-image script" "refers to missing" \
    "rm board/common/post-image.sh"
expect_failure "script not executable" "not executable" \
    "chmod -x board/common/post-build.sh"
expect_failure "missing sourced Config.in" "sources missing" \
    "rm buildroot/package/edged/Config.in && touch buildroot/package/edged/Config.in.orig && echo 'source \"\$BR2_EXTERNAL_EDGE_PATH/package/gone/Config.in\"' >>buildroot/Config.in"
expect_failure "unknown selected symbol" "unknown symbol BR2_PACKAGE_NOT_IN_BUILDROOT" \
    "printf '\tselect BR2_PACKAGE_NOT_IN_BUILDROOT\n' >>buildroot/package/edged/Config.in"
expect_failure "malformed defconfig line" "malformed" \
    "echo 'this is not kconfig' >>buildroot/configs/edge_pc_x86_64_defconfig"
expect_failure "missing shared board file" "missing shared board file" \
    "rm board/common/grub.cfg"
expect_failure "busybox left setuid (no post-fakeroot script)" "busybox stays setuid root" \
    "sed -i '/^BR2_ROOTFS_POST_FAKEROOT_SCRIPT=/d' buildroot/configs/edge_qemu_x86_64_defconfig"
expect_failure "post-fakeroot script that keeps the setuid bit" "leaves setuid/setgid files:.*bin/busybox" \
    "printf '#!/bin/sh\nchmod u-s \"\$1/usr/bin/passwd\"\n' >board/common/post-fakeroot.sh"
expect_failure "busybox fragment enabling FEATURE_SUID" "enables CONFIG_FEATURE_SUID" \
    "sed -i 's/^# CONFIG_FEATURE_SUID is not set$/CONFIG_FEATURE_SUID=y/' board/common/busybox.fragment"
expect_failure "setuid file in an overlay" "setuid/setgid file in a board overlay: board/common/rootfs-overlay/usr/sbin/edge-health" \
    "chmod u+s board/common/rootfs-overlay/usr/sbin/edge-health"

if [ "$failures" -gt 0 ]; then
    echo "test-check-tree: $failures failure(s)"
    exit 1
fi
echo "test-check-tree: OK (1 clean tree, 11 broken trees caught)"
