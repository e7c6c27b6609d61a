"""Mount a host folder into a running container, and take it out again, with no restart.

`add_mount` makes `source_dir` appear at `target` inside the container's mount namespace,
read-only, nosuid and nodev, for every process already in it and every one started later;
`remove_mount` takes it away. This is the runtime's primitive for capsules (the engine owns
versions, dependencies and what is attached where). The mount is made with the new mount API,
in two halves: on the host, `open_tree(OPEN_TREE_CLONE)` clones the source into a detached
mount and `mount_setattr` makes it read-only, nosuid, nodev and private (so nothing mounted
later on the host under the source shows up in the container, nor the other way round); then
a thread that entered the container's mount namespace (its own fs_struct first, as setns
demands) resolves the target and `move_mount`s the clone onto it. Until that last call the
clone is attached nowhere and goes away with its fd, so a failure at any step leaves no mount;
the folders made for the target are removed again.

Not noexec: a capsule holds libraries and programs, and the kernel refuses to map a file of a
noexec mount executable, so dlopen of a capsule's library would fail with EPERM.

The target is resolved from the init's root by `secure_path.open_in_root`, the runtime's one
walker: what the container would see, except that a symlink that would climb above the root
is an error (`REFUSE`), not clamped, and a `..` in the target as given is refused outright. Nothing
in the container can write through the mount: it is read-only, and remounting it read-write
takes CAP_SYS_ADMIN, which a container lacks by default (in a user namespace of its own, the
host's files it shows are not its to write either).
"""

from __future__ import annotations

import errno
import os
import stat
import threading

from skiff.errors import InvalidArgument, KernelError
from skiff.kernel import syscall as sc
from skiff.runtime.container import Container
from skiff.runtime.secure_path import REFUSE, Created, open_in_root
from skiff.runtime.state import process_start_time

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Callable, TypeVar
    T = TypeVar("T")

# what a capsule's mount is: read-only, no set-uid, no device nodes (see above for noexec)
ATTACH_ATTRS = sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NODEV


def check_target(target: str) -> str:
    """`target` as the container sees it, refused unless absolute, below ``/`` and free of
    ``..`` (a target that climbs is a mistake or an attack, never what a user means)."""
    if not target.startswith("/"):
        raise InvalidArgument(f"mount target `{target}`: give an absolute path")
    parts = [p for p in target.split("/") if p and p != "."]
    if ".." in parts:
        raise InvalidArgument(f"mount target `{target}`: `..` is not allowed in a target")
    if not parts:
        raise InvalidArgument(f"mount target `{target}`: cannot mount over the container's root")
    return "/" + "/".join(parts)


def refuse_escape(root_dir: str, target: str) -> str:
    """`target` checked as `add_mount` checks it, walked below the folder `root_dir` (a
    container's rootfs on the host, before its start): InvalidArgument when a symlink on
    the way leaves it; a missing rest is fine (the start makes it). The target, cleaned."""
    target = check_target(target)
    root = os.open(root_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(_resolve(root, target))
    except KernelError as e:
        if e.errno != errno.ENOENT:
            raise
    finally:
        os.close(root)
    return target


def add_mount(container: Container, source_dir: str, target: str) -> None:
    """Mount `source_dir` (a host folder) read-only at `target` in the running (or created,
    or paused) `container`, creating the target's missing folders."""
    target = check_target(target)
    container.require("mount")
    try:
        st = os.stat(source_dir)
    except OSError as e:
        raise KernelError.from_os("stat mount source", e, source_dir) from None
    if not stat.S_ISDIR(st.st_mode):
        raise KernelError("mount source", errno.ENOTDIR, source_dir)
    owner = _root_owner(container.state.pid)
    tree = sc.open_tree(source_dir, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC)
    try:
        sc.mount_setattr(tree, ATTACH_ATTRS, propagation=sc.MS_PRIVATE, what=source_dir)

        def place(root: int) -> None:
            with Created() as made:  # the folders made for the target go again on an error
                fd = _resolve(root, target, made, owner)
                try:
                    sc.move_mount(tree, fd, what=target)
                finally:
                    os.close(fd)

        _in_namespace(container, place)
    finally:
        os.close(tree)


def remove_mount(container: Container, target: str) -> None:
    """Take away the mount at `target` in `container` (lazily: a process that holds a file of
    it keeps that file, everyone loses the path at once). An error if nothing is mounted there."""
    target = check_target(target)
    container.require("mount")

    def take(root: int) -> None:
        fd = _resolve(root, target)
        try:
            # `..` of a mount's root is the folder its mount point is in, on the mount below
            parent = os.open("..", os.O_PATH | os.O_CLOEXEC, dir_fd=fd)
            try:
                mounted = sc.mount_id(fd, target) != sc.mount_id(parent, target)
            finally:
                os.close(parent)
            if not mounted:
                raise InvalidArgument(f"nothing is mounted at `{target}` in container "
                                      f"`{container.id}`")
            os.fchdir(fd)  # the mount's root: umount2 of "." needs no /proc in there
            try:
                sc.umount(".", sc.MNT_DETACH)
            except KernelError as e:
                raise KernelError(e.call, e.errno, target) from None
        finally:
            os.close(fd)

    _in_namespace(container, take)


# -- entering the container -------------------------------------------------------------------
def _in_namespace(container: Container, fn: Callable[[int], T]) -> T:
    """`fn(root_fd)` run in a fresh thread that joined the container's mount namespace;
    `root_fd` is the init's root. A thread, not a fork: setns only needs the thread's own
    fs_struct (unshare(CLONE_FS)), and a thread costs tens of microseconds where forking a
    daemon costs milliseconds. The thread ends after `fn`, namespace and all, and must not
    import or open paths of the host meanwhile (they would be looked up in the container)."""
    pid = container.state.pid
    try:
        ns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise KernelError.from_os("open mount namespace", e, f"/proc/{pid}/ns/mnt") from None
    try:
        try:
            root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise KernelError.from_os("open container root", e, f"/proc/{pid}/root") from None
        try:
            # both fds were opened by pid; make sure pid was still the container's init then
            if process_start_time(pid) != container.state.pid_start:
                raise KernelError("open mount namespace", errno.ESRCH, f"/proc/{pid}/ns/mnt",
                                  f"(container `{container.id}` has no init any more)")
            return _run_entered(ns, root, fn)
        finally:
            os.close(root)
    finally:
        os.close(ns)


def _run_entered(ns: int, root: int, fn: Callable[[int], T]) -> T:
    out: list = [None, None]

    def body() -> None:
        try:
            sc.unshare(sc.CLONE_FS)
            sc.setns(ns, sc.CLONE_NEWNS, "container mount namespace")
            out[0] = fn(root)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            out[1] = e

    t = threading.Thread(target=body, name="skiff-live-mount", daemon=True)
    t.start()
    t.join()
    if out[1] is not None:
        raise out[1]
    return out[0]


def _root_owner(pid: int) -> tuple[int, int] | None:
    """The host uid and gid of the container's root when it has a user namespace of its own
    (folders made for a target are given to it), else None."""
    ids = []
    for kind in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{kind}") as f:
            for line in f:
                inside, outside, count = (int(x) for x in line.split())
                if inside == 0 and count > 0:
                    ids.append(outside)
                    break
            else:
                ids.append(0)
    return None if ids == [0, 0] else (ids[0], ids[1])


# -- resolving the target -------------------------------------------------------------------
def _resolve(root: int, target: str, made: Created | None = None,
             owner: tuple[int, int] | None = None) -> int:
    """An O_PATH fd on the folder `target` below `root`, a symlink that climbs out refused;
    with `made`, its missing folders are created (given to `owner`) and recorded there."""
    fd = open_in_root(root, target, want_dir=True, create=made is not None, escape=REFUSE,
                      made=made, owner=owner, what="mount target")
    if os.path.samestat(os.fstat(fd), os.fstat(root)):
        os.close(fd)
        raise InvalidArgument(f"mount target `{target}` resolves to the container's root")
    return fd
