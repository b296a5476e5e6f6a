#!/bin/sh
# The qemu binary labgrid starts: runs qemu inside the rig's network namespace (where the
# bridges and taps of the two appliance ports live) and records its pid so the suite can
# always reap it, even when a test dies mid-way.
if [ "${1:-}" = "--version" ] || [ -z "${LG_RIG_NETNS:-}" ]; then
    exec qemu-system-x86_64 "$@"
fi
[ -n "${LG_WORK:-}" ] && echo $$ >>"$LG_WORK/qemu.pids"
exec ip netns exec "$LG_RIG_NETNS" qemu-system-x86_64 "$@"
