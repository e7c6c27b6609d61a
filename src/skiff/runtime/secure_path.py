"""Resolve a path inside a container's rootfs the way the container would see it.

A mount target in config.json names a path *inside* the rootfs, and the rootfs is not
trusted: any component may be a symlink, absolute or full of `..`, that points out of it.
`secure_join` walks the path one component at a time, expands symlinks relative to the
rootfs and clamps `..` at its top (what filepath-securejoin does for runc), so the answer is
always below the rootfs. `make_target` then creates what is missing — directories, or an
empty file when a file is bind-mounted — without following any link out.
"""

from __future__ import annotations

import errno
import os
import stat

from skiff.errors import KernelError

_MAX_LINKS = 255


def secure_join(root: str, unsafe: str) -> str:
    root = os.path.abspath(root)
    todo = [p for p in unsafe.split("/") if p]
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        candidate = os.path.join(root, *done, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            done.append(part)
            continue
        except NotADirectoryError:
            raise KernelError("secure_join", errno.ENOTDIR, candidate) from None
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise KernelError("secure_join", errno.ELOOP, os.path.join(root, unsafe.lstrip("/")))
        target = os.readlink(candidate)
        if target.startswith("/"):
            done = []
        todo = [p for p in target.split("/") if p] + todo
    return os.path.join(root, *done)


def pin(root: str, path: str) -> int:
    """An O_PATH fd on `path`, checked to be inside `root` as the kernel sees it now.

    `secure_join` resolved the path as text; between that and a mount, another process of
    the container (one sharing a volume, say) could swap a component for a symlink. The
    fd holds the very directory or file that was checked, and mounting onto
    /proc/self/fd/N mounts there, whatever the path says meanwhile (runc's remedy for
    CVE-2021-30465)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise KernelError.from_os("open mount target", e, path) from None
    if stat.S_ISLNK(os.fstat(fd).st_mode):  # the last component became a link
        os.close(fd)
        raise KernelError("mount target", errno.ELOOP, path, "(a symlink now)")
    real = os.readlink(f"/proc/self/fd/{fd}")
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        os.close(fd)
        raise KernelError("mount target", errno.EXDEV, path, f"(resolves to {real}, outside the rootfs)")
    return fd


def make_target(root: str, unsafe: str, is_dir: bool) -> str:
    """The resolved path of `unsafe` under `root`, created as a directory or empty file."""
    path = secure_join(root, unsafe)
    parent = os.path.dirname(path) if not is_dir else path
    rel = os.path.relpath(parent, root)
    cur = root
    for part in ([] if rel == "." else rel.split("/")):
        cur = os.path.join(cur, part)
        try:
            os.mkdir(cur, 0o755)
        except FileExistsError:
            if not os.path.isdir(cur):
                raise KernelError("mkdir", errno.ENOTDIR, cur) from None
        except OSError as e:
            raise KernelError.from_os("mkdir", e, cur) from None
    if not is_dir and not os.path.lexists(path):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))
        except OSError as e:
            raise KernelError.from_os("create mount target", e, path) from None
    return path
