"""Resolve a path inside a container's rootfs the way the container would see it.

A mount target in config.json names a path *inside* the rootfs, and the rootfs is not
trusted: any component may be a symlink, absolute or full of `..`, that points out of it.
`secure_join` walks the path one component at a time, expands symlinks relative to the
rootfs and clamps `..` at its top (what filepath-securejoin does for runc), so the answer is
always below the rootfs. `make_target` then creates what is missing — directories, or an
empty file when a file is bind-mounted — below fds, without following any link, and `pin`
holds the target for the mount itself.
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
        try:
            target = os.readlink(candidate)
        except OSError:  # no link any more (swapped meanwhile): look at this part again
            todo.insert(0, part)
            continue
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
    """The resolved path of `unsafe` under `root`, created as a directory or empty file.

    What is missing is made one component at a time below its parent's fd, never through
    a link: `secure_join` expanded every link it met, so a component that is one now was
    swapped in since (by a container sharing a volume) and is an error, not a folder made
    where it points — outside the rootfs."""
    path = secure_join(root, unsafe)
    rel = os.path.relpath(path, root)
    parts = [] if rel == "." else rel.split("/")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    cur = root
    try:
        for part in parts if is_dir else parts[:-1]:
            cur = os.path.join(cur, part)
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as e:
                raise KernelError.from_os("mkdir mount target", e, cur) from None
            parent, fd = fd, _step(fd, part, cur)
            os.close(parent)
        if not is_dir and parts:
            _make_file(fd, parts[-1], path)
    finally:
        os.close(fd)
    return path


def _step(parent: int, name: str, path: str) -> int:
    """An O_PATH fd on the directory `name` below `parent`, refused if it is a link or no
    directory."""
    try:
        return os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                       dir_fd=parent)
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ELOOP):
            raise KernelError("mount target", e.errno, path,
                              "(not a folder: a file, or a link swapped in)") from None
        raise KernelError.from_os("open mount target", e, path) from None


def _make_file(parent: int, name: str, path: str) -> None:
    """An empty file `name` below `parent` unless something is there (a link included)."""
    try:
        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644, dir_fd=parent))
    except FileExistsError:
        pass
    except OSError as e:
        raise KernelError.from_os("create mount target", e, path) from None
