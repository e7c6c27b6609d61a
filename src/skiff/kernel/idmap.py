"""Idmapped mounts (Linux 5.12+): a bind mount through which files show shifted owners.

`userns_fd(uid_maps, gid_maps)` makes a user namespace holding the mappings (a forked child
unshares it, the parent writes the maps, keeps a descriptor of it, and lets the child go);
`idmapped_bind(source, target, fd)` clones the tree at `source` (open_tree), marks the
clone with that namespace's mapping (mount_setattr MOUNT_ATTR_IDMAP) and attaches it at
`target` (move_mount). A file owned by uid 0 under `source` then shows as owned by the host
uid that container uid 0 maps to, below `target`: what lets a remapped container's overlay
use the image's layers as they are, with no chowned copy. The three calls have the same
number on every architecture (they came after the syscall tables were unified).
"""

from __future__ import annotations

import os

from skiff.errors import KernelError
from skiff.kernel import syscall as sc
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

_OVERFLOW_ID = 65534  # /proc/sys/kernel/overflowuid's default: what an unmapped id shows as

# (container id, host id, size), as in /proc/<pid>/uid_map
IdRange = tuple[int, int, int]


class IdMaps(Record):
    """The uid and gid mappings of a user namespace."""

    uids: tuple[IdRange, ...]
    gids: tuple[IdRange, ...]

    def host_ids(self, uid: int = 0, gid: int = 0) -> tuple[int, int]:
        """The host uid and gid that container `uid` and `gid` map to (-1: unmapped)."""
        return _through(self.uids, uid), _through(self.gids, gid)

    def container_ids(self, uid: int, gid: int) -> tuple[int, int]:
        """The container uid and gid that host `uid` and `gid` are; an id no range holds
        is the kernel's overflow id (65534), as the container sees it."""
        return _back(self.uids, uid), _back(self.gids, gid)


def _through(ranges: Sequence[IdRange], inside_id: int) -> int:
    for inside, outside, size in ranges:
        if inside <= inside_id < inside + size:
            return outside + inside_id - inside
    return -1


def _back(ranges: Sequence[IdRange], outside_id: int) -> int:
    for inside, outside, size in ranges:
        if outside <= outside_id < outside + size:
            return inside + outside_id - outside
    return _OVERFLOW_ID


def _map_text(ranges: Sequence[IdRange]) -> str:
    return "".join(f"{inside} {outside} {size}\n" for inside, outside, size in ranges)


def userns_fd(uid_maps: Sequence[IdRange], gid_maps: Sequence[IdRange]) -> int:
    """A descriptor of a new user namespace with these mappings (close it when done)."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: unshare, say so, wait to be let go; nothing else
        try:
            os.close(ready_r)
            os.close(go_w)
            ok = sc.libc.unshare(sc.CLONE_NEWUSER) == 0
            os.write(ready_w, b"1" if ok else b"0")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise KernelError("unshare(CLONE_NEWUSER)", 1, detail="for an id mapping")
        try:
            for name, text in (("uid_map", _map_text(uid_maps)), ("setgroups", "deny"),
                               ("gid_map", _map_text(gid_maps))):
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(text)
            return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise KernelError.from_os("write id map", e, f"/proc/{pid}") from None
    finally:
        os.close(ready_r)
        os.close(go_w)  # the child reads EOF and exits
        os.waitpid(pid, 0)


def idmapped_bind(source: str, target: str, ns_fd: int) -> None:
    """Bind `source` (recursively) at `target`, its owners shifted by the namespace `ns_fd`."""
    fd = sc.open_tree(source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | sc.AT_RECURSIVE)
    try:
        sc.mount_setattr(fd, sc.MOUNT_ATTR_IDMAP, flags=sc.AT_EMPTY_PATH | sc.AT_RECURSIVE,
                         what=source, userns_fd=ns_fd)
        sc.move_mount(fd, sc.AT_FDCWD, target, to_path=target,
                      flags=sc.MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        os.close(fd)
