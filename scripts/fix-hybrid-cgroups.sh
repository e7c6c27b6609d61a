#!/usr/bin/env bash
# fix-hybrid-cgroups.sh - let crun run on this hybrid cgroup host (for `make bench` only).
#
# Why: crun 1.8 refuses hybrid mode (v1 hierarchies + a cgroup2 mount at /sys/fs/cgroup/unified)
# if the v2 hierarchy has ANY controller available: "cgroups in hybrid mode not supported, drop all
# controllers from cgroupv2". On this VM hugetlb is not bound to a v1 hierarchy, so it shows up in
# unified/cgroup.controllers. Binding every such controller to its own v1 hierarchy removes it from
# v2, and crun then works. Same as fix_cgroups in ../shared/peers/peers.sh.
#
# Idempotent: a controller that already has a v1 mount is left alone; nothing to do on a host
# without /sys/fs/cgroup/unified (pure v1 or pure v2). Not used by the tests (skiff and runc do
# not need it). The mounts stay until reboot (or `umount /sys/fs/cgroup/<controller>`).
set -uo pipefail

u=/sys/fs/cgroup/unified/cgroup.controllers
[ -r "$u" ] || exit 0
for c in $(cat "$u"); do
    mountpoint -q "/sys/fs/cgroup/$c" && continue
    # a controller enabled for the root's children (dockerd's default cgroup parent does that)
    # cannot move to v1 while it is: take it back first (refused while a child cgroup uses it)
    if grep -qw "$c" /sys/fs/cgroup/unified/cgroup.subtree_control 2>/dev/null; then
        echo "-$c" > /sys/fs/cgroup/unified/cgroup.subtree_control 2>/dev/null ||
            echo "[fix-hybrid-cgroups] $c is in use below /sys/fs/cgroup/unified" >&2
    fi
    if mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"; then
        echo "[fix-hybrid-cgroups] mounted v1 cgroup hierarchy $c (crun 1.8 refuses hybrid mode otherwise)" >&2
    else
        # not fatal: the bench still measures skiff and runc, and shows crun's own error
        echo "[fix-hybrid-cgroups] could not mount $c" >&2
    fi
done
exit 0
