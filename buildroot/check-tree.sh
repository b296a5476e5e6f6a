#!/bin/bash
# Checks the BR2_EXTERNAL tree without Buildroot (it cannot download sources here):
#  - the tree's own files exist (external.desc, Config.in, external.mk, every sourced Config.in);
#  - every file a defconfig, package makefile or Config.in refers to through
#    $(BR2_EXTERNAL_EDGE_PATH) exists, and referenced scripts are executable;
#  - every symbol a defconfig sets or unsets is defined by the tree or is a known Buildroot
#    symbol (br2-symbols.txt);
#  - symbols a Config.in selects or depends on are known too;
#  - busybox is not setuid: a post-fakeroot script strips the bit, the fragments switch
#    CONFIG_FEATURE_SUID off, and no board overlay holds a setuid or setgid file.
# Exit 0 when clean, 1 with one line per problem.
set -uo pipefail
tree=$(cd "$(dirname "$0")" && pwd)
problems=0
problem() {
    echo "check-tree: $*" >&2
    problems=$((problems + 1))
}

for f in external.desc Config.in external.mk br2-symbols.txt; do
    [ -f "$tree/$f" ] || problem "missing $f"
done
grep -q '^name: EDGE$' "$tree/external.desc" 2>/dev/null || problem "external.desc must declare name: EDGE"

# Resolves $(BR2_EXTERNAL_EDGE_PATH) and $BR2_EXTERNAL_EDGE_PATH to the tree.
expand() { sed -e "s|\$(BR2_EXTERNAL_EDGE_PATH)|$tree|g" -e "s|\$BR2_EXTERNAL_EDGE_PATH|$tree|g"; }

config_ins=$(find "$tree" -name Config.in -not -path '*/vendor/*')
for c in $config_ins; do
    while read -r path; do
        [ -f "$path" ] || problem "$c sources missing $path"
    done < <(sed -n 's/^[[:space:]]*source[[:space:]]*"\(.*\)"/\1/p' "$c" | expand)
done

defined=$(cat $config_ins | sed -n 's/^[[:space:]]*\(menu\)\{0,1\}config[[:space:]]\{1,\}\(BR2_[A-Za-z0-9_]*\).*/\2/p' | sort -u)
known=$(grep -v '^#' "$tree/br2-symbols.txt" | sed '/^$/d' | sort -u)
is_known() { grep -qx "$1" <<<"$defined" || grep -qx "$1" <<<"$known"; }

defconfigs=$(ls "$tree"/configs/*_defconfig 2>/dev/null)
[ -n "$defconfigs" ] || problem "no defconfigs in configs/"
for d in $defconfigs; do
    name=$(basename "$d")
    while read -r sym; do
        is_known "$sym" || problem "$name: unknown symbol $sym"
    done < <(sed -n -e 's/^\(BR2_[A-Za-z0-9_]*\)=.*/\1/p' -e 's/^# \(BR2_[A-Za-z0-9_]*\) is not set$/\1/p' "$d")
    # Every path under the tree a string option names must exist.
    while read -r path; do
        [ -e "$path" ] || problem "$name: refers to missing $path"
        case "$path" in *.sh) [ -x "$path" ] || problem "$name: $path is not executable" ;; esac
    done < <(grep -o '\$(BR2_EXTERNAL_EDGE_PATH)[^" ]*' "$d" | expand)
    bad=$(grep -vE '^(#.*|BR2_[A-Za-z0-9_]+=.*|)$' "$d")
    [ -z "$bad" ] || problem "$name: malformed line(s): $bad"
done

for c in $config_ins; do
    while read -r sym; do
        is_known "$sym" || problem "$(basename "$(dirname "$c")")/Config.in: unknown symbol $sym"
    done < <(sed -n -e 's/^[[:space:]]*select[[:space:]]\{1,\}\(BR2_[A-Za-z0-9_]*\).*/\1/p' \
        -e 's/^[[:space:]]*depends on[[:space:]]\{1,\}.*/&/p' "$c" | grep -o 'BR2_[A-Za-z0-9_]*' | sort -u)
done

while IFS= read -r mk; do
    while read -r path; do
        [ -e "$path" ] || problem "$(basename "$mk"): refers to missing $path"
    done < <(grep -o '\$(BR2_EXTERNAL_EDGE_PATH)/[^ );"]*' "$mk" | grep -v '/vendor$' | expand)
    grep -q '\$(eval \$(cargo-package))' "$mk" || problem "$(basename "$mk"): not a cargo-package"
done < <(find "$tree/package" -name '*.mk')

# No setuid busybox. Buildroot's busybox package installs /bin/busybox 4755 root through its
# permission table, after post-build scripts run; only a post-fakeroot script runs later. So
# every defconfig names one, and it must strip the bit: tried here on a fake target. The
# busybox fragments must switch CONFIG_FEATURE_SUID off (Buildroot's default has it on).
for d in $defconfigs; do
    name=$(basename "$d")
    scripts=$(sed -n 's/^BR2_ROOTFS_POST_FAKEROOT_SCRIPT="\(.*\)"$/\1/p' "$d" | expand)
    if [ -z "$scripts" ]; then
        problem "$name: no BR2_ROOTFS_POST_FAKEROOT_SCRIPT: busybox stays setuid root"
    elif ! fake=$(mktemp -d) || [ -z "$fake" ] || [ ! -d "$fake" ]; then
        # Never go on without the scratch tree: with an empty path the lines below would
        # write and chmod the host's own /bin/busybox (seen once on a full disk).
        problem "$name: cannot create a scratch directory to try the post-fakeroot script"
    else
        mkdir -p "$fake/bin" "$fake/usr/bin"
        : >"$fake/bin/busybox" && chmod 4755 "$fake/bin/busybox"
        : >"$fake/usr/bin/passwd" && chmod 6755 "$fake/usr/bin/passwd"
        args=$(sed -n 's/^BR2_ROOTFS_POST_SCRIPT_ARGS="\(.*\)"$/\1/p' "$d" | expand)
        for s in $scripts; do
            [ -x "$s" ] && "$s" "$fake" $args >/dev/null 2>&1
        done
        left=$(cd "$fake" && find . -type f -perm /6000)
        [ -z "$left" ] || problem "$name: the post-fakeroot script leaves setuid/setgid files:" $left
        rm -rf "$fake"
    fi
    fragments=$(sed -n 's/^BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES="\(.*\)"$/\1/p' "$d" | expand)
    [ -n "$fragments" ] || problem "$name: no busybox fragment switching CONFIG_FEATURE_SUID off"
    for f in $fragments; do
        [ -f "$f" ] || continue
        grep -q '^CONFIG_FEATURE_SUID=y' "$f" && problem "$name: $(basename "$f") enables CONFIG_FEATURE_SUID"
        grep -qx '# CONFIG_FEATURE_SUID is not set' "$f" ||
            problem "$name: $(basename "$f") does not switch CONFIG_FEATURE_SUID off"
    done
done
while read -r f; do
    problem "setuid/setgid file in a board overlay: ${f#"$tree/../"}"
done < <(find "$tree/../board" -type f -perm /6000)

# The board files the Buildroot path shares with the Debian path.
for f in board/common/grub.cfg board/common/grub-embed.cfg board/common/rootfs-overlay/etc/rauc/system.conf \
    board/qemu-x86_64/genimage.cfg board/pc-x86_64/genimage.cfg; do
    [ -f "$tree/../$f" ] || problem "missing shared board file $f"
done
[ -f "$tree/../Cargo.lock" ] || problem "the workspace has no committed Cargo.lock (cargo --locked needs it)"

if [ "$problems" -gt 0 ]; then
    echo "check-tree: $problems problem(s)" >&2
    exit 1
fi
echo "check-tree: $(echo "$defconfigs" | wc -w) defconfigs, $(echo "$defined" | wc -w) tree symbols, OK"
