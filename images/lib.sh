# shellcheck shell=bash
# Functions shared by the image scripts (sourced, not run).

log() { printf "==> [%s] %s\n" "$(date +%T)" "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Installs the Debian packages that are missing, quietly; a no-op when all are present.
ensure_packages() {
    local missing=()
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Prints the directory holding edged and edgectl, building them if needed. The development
# image carries the same release build the benchmarks measure (firmware/build-release.sh),
# linked against Debian's glibc; mk-rootfs.sh copies the libraries it loads. The production
# image builds its own with Buildroot's toolchain.
build_edged() {
    local repo=$1
    if [ -n "${EDGED_BIN_DIR:-}" ]; then
        [ -x "$EDGED_BIN_DIR/edged" ] && [ -x "$EDGED_BIN_DIR/edgectl" ] ||
            die "EDGED_BIN_DIR=$EDGED_BIN_DIR lacks edged or edgectl"
        echo "$EDGED_BIN_DIR"
        return
    fi
    "$repo/firmware/build-release.sh" || die "edged does not build"
}

# Downloads (once) and unpacks the kernel package linux-image-amd64 points at; prints its version.
fetch_kernel() {
    local cache=$1 kdir=$2 pkg kver
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$pkg" ] || die "cannot resolve linux-image-amd64 (apt-get update?)"
    kver=${pkg#linux-image-}
    kver=${kver%-unsigned}
    if [ ! -f "$kdir/boot/vmlinuz-$kver" ]; then
        (cd "$cache" && ls "$pkg"_*.deb >/dev/null 2>&1 || apt-get download -qq "$pkg" >/dev/null 2>&1) ||
            die "cannot download $pkg"
        rm -rf "$kdir"
        dpkg-deb -x "$(ls "$cache/$pkg"_*.deb | head -n 1)" "$kdir"
        # The package ships no modules.dep; build it so modprobe can resolve dependencies.
        depmod -b "$kdir" "$kver"
    fi
    echo "$kver"
}

# Copies executables with every shared library they load into a root directory.
copy_with_libs() {
    local root=$1
    shift
    local f
    for f in "$@"; do
        install -D -m 755 "$f" "$root$f"
        copy_libs_of "$root" "$f"
    done
}

# Copies the shared libraries (and the dynamic loader) executables load into a root
# directory, at the paths they load them from.
copy_libs_of() {
    local root=$1
    shift
    local f lib
    for f in "$@"; do
        for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
            [ -e "$root$lib" ] || install -D -m 755 "$(readlink -f "$lib")" "$root$lib"
        done
    done
}

report_size() {
    local bytes
    bytes=$(stat -c %s "$2")
    printf '  %-28s %10d bytes (%s MiB)\n' "$1" "$bytes" "$(awk "BEGIN{printf \"%.1f\", $bytes/1048576}")" >&2
    printf "%s\t%s\n" "$1" "$bytes" >>"${SIZES_FILE:-/dev/null}"
}
