"""A container's files as the container itself sees them, for ``docker cp`` (moby's
openContainerFS): the work runs on a thread of its own whose root (chroot) is the container's.

A running container is seen through its init: the thread's root becomes /proc/<pid>/root,
the container's root in its own mount namespace, with its volumes, binds and tmpfs mounts.
That directory is checked to be the container's rootfs (the device and inode of the
snapshot's merged dir), so an init that exited meanwhile — its pid gone, or given to
another process — is a clear error, never a copy into someone else's files. A stopped
container is its snapshot with its volumes and binds mounted on it as moby mounts them
for the copy (read-only ones read-only; tmpfs mounts have nothing, as in moby), in a mount
namespace of the thread's own (unshare CLONE_FS | CLONE_NEWNS, made rprivate before any
mount, so nothing reaches the host, and gone with the thread). Inside the root the kernel
keeps every path in it: absolute links and ``..`` stop at its top, whatever the container
changes meanwhile. As that root is the container's, nothing may be loaded from it: a
finder refuses every import on these threads (the modules the work needs are imported
before), so a file the container planted can never run as skiff's code, and the tar writer
asks no NSS database for names (moby's CVE-2019-14271, a docker cp loading the container's
libnss).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading

from skiff.errors import ContainerConflict, KernelError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from importlib.machinery import ModuleSpec
    from typing import Any, TypeVar

    T = TypeVar("T")

# what the work does in the container's root: imported before, since nothing can be then
_NEEDED = ("tarfile", "gzip", "lzma", "bz2", "shutil", "skiff.engine.times",
           "skiff.engine.mounts", "skiff.engine.oci_spec", "skiff.runtime.secure_path",
           "skiff.store.layers", "skiff.store.rooted_untar", "skiff.kernel.syscall")
_OPTIONAL = ("zstandard",)
_inside: set[int] = set()  # the threads whose root is a container's
_lock = threading.Lock()


class _NoImports:
    """The first finder of ``sys.meta_path``: no import on a thread inside a container."""

    @staticmethod
    def find_spec(name: str, path: Sequence[str] | None = None,
                  target: Any = None) -> ModuleSpec | None:
        if threading.get_ident() in _inside:
            raise ImportError(f"no import inside a container's root (of {name})")
        return None


def _prepare() -> None:
    with _lock:
        if not any(isinstance(f, _NoImports) for f in sys.meta_path):
            sys.meta_path.insert(0, _NoImports())
    for name in _NEEDED:
        importlib.import_module(name)
    for name in _OPTIONAL:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def init_root(pid: int, rootfs: str, cid: str) -> int:
    """An fd on the root of the running container `cid`, through its init `pid`, checked
    to be its snapshot's `rootfs`."""
    why = ""
    try:
        fd = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        why = e.strerror or str(e)
    else:
        try:
            mine, want = os.fstat(fd), os.stat(rootfs)
        except OSError as e:
            os.close(fd)
            why = e.strerror or str(e)
        else:
            if (mine.st_dev, mine.st_ino) == (want.st_dev, want.st_ino):
                return fd
            os.close(fd)
            why = "its root is not the container's"
    raise ContainerConflict(f"container {cid}: its init process {pid} has exited ({why}); "
                            f"try again")


def _bind(rootfs: str, mounts: Iterable[dict[str, Any]]) -> None:
    """The spec's bind mounts over `rootfs`, in the thread's own mount namespace."""
    import stat

    from skiff.engine.mounts import by_depth
    from skiff.kernel import syscall as sc
    from skiff.runtime.rootfs import mount_onto, remount_bind
    from skiff.runtime.secure_path import make_target

    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)  # before any mount: none leaks
    for m in by_depth([m for m in mounts if m["type"] == "bind"]):
        try:
            is_dir = stat.S_ISDIR(os.stat(m["source"]).st_mode)
        except OSError as e:
            raise KernelError.from_os("stat bind source", e, m["source"]) from None
        target = make_target(rootfs, m["destination"], is_dir)  # moby: CreateIfNotExists
        flags = sc.MS_BIND | (sc.MS_REC if "rbind" in m["options"] else 0)
        mount_onto(rootfs, target, m["source"], None, flags)
        if "ro" in m["options"]:
            remount_bind(target, sc.MS_RDONLY)


def run_in_root(fn: Callable[[str], T], *, root_fd: int | None = None, rootfs: str = "",
                mounts: Iterable[dict[str, Any]] | None = None, chroot: bool = True) -> T:
    """`fn(root)` on a thread of its own, where `root` is the container's root: the
    directory `root_fd` (which this closes), or else `rootfs` with the bind `mounts` (the
    spec's) over it. With `chroot` it is the thread's root (`root` is ``/``); without,
    `fn` must resolve every path in `root` itself (as `store.rooted_untar` does, which
    needs the host's /proc). `fn`'s answer, or its error."""
    from skiff.kernel import syscall as sc

    _prepare()
    outcome: dict[str, Any] = {}

    def enter() -> str:
        flags = sc.CLONE_FS if chroot else 0  # the chroot is this thread's alone
        if mounts is not None:
            flags |= sc.CLONE_FS | sc.CLONE_NEWNS
        if flags:
            sc.unshare(flags)
        if mounts is not None:
            _bind(rootfs, mounts)
        if not chroot:
            return rootfs if root_fd is None else f"/proc/self/fd/{root_fd}"
        if root_fd is not None:
            os.fchdir(root_fd)
        else:
            os.chdir(rootfs)  # skiff's own path: nothing of the container's on its way
        os.chroot(".")
        os.chdir("/")
        return "/"

    def body() -> None:
        me = threading.get_ident()
        try:
            root = enter()
            if chroot:
                _inside.add(me)
            outcome["value"] = fn(root)
        except BaseException as e:  # given to the caller's thread
            outcome["error"] = e
        finally:
            _inside.discard(me)

    thread = threading.Thread(target=body, name="skiffd-container-root", daemon=True)
    try:
        thread.start()
        thread.join()
    finally:
        if root_fd is not None:
            os.close(root_fd)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]
