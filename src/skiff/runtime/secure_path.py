"""Walk a path inside an untrusted root the way the container would see it: the one walker.

A mount target names a path *inside* a root (a rootfs on the host before the start, the
init's root of a running container), and the root is not trusted: any component may be a
symlink, absolute or full of `..`, that points out of it, and another container sharing a
volume may swap a folder for such a link while we look (runc's CVE-2021-30465). Every
lookup here starts from an fd on the root and moves by fds, never by a path the kernel
resolves from ``/``: symlinks are expanded relative to the root and `..` stops at its top
(`CLAMP`, what filepath-securejoin and runc do at create) or is an error there (`REFUSE`,
what a live attach wants). `open_in_root` asks the kernel first, in one
`openat2(RESOLVE_IN_ROOT)` (or `RESOLVE_BENEATH` when refusing), as runc's pathrs does;
only when that does not find the path (a part is missing and is to be made, or a magic link
is on the way) does it walk one component at a time: `O_PATH|O_NOFOLLOW` below the fd of
the folder above, each link read from the fd it was found by, what is missing made as a
folder (or, last, an empty file) and entered without following anything, so a link swapped
into what we just made is an error, never a folder made where it points. `secure_join` and
`make_target` are the same walk answering with a host path, for the callers that work with
paths; `pin` holds such a path for the mount itself.
"""

from __future__ import annotations

import errno
import os
import stat

from skiff.errors import InvalidArgument, KernelError
from skiff.kernel import syscall as sc

CLAMP = "clamp"    # `..` at the root stays at the root, as in the container
REFUSE = "refuse"  # `..` at the root is an error: the path leaves the root
_MAX_LINKS = 40  # the kernel's own limit on symlinks in one lookup
_FAST = {CLAMP: sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS,
         REFUSE: sc.RESOLVE_BENEATH | sc.RESOLVE_NO_MAGICLINKS}
_STEP = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class Created:
    """What a walk made, oldest first, each as (a dup of its parent's fd, its name, whether a
    folder), for the caller to take back when what the walk was for failed. As a context
    manager: taken back on an error, the fds closed either way."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, str, bool]] = []

    def add(self, parent: int, name: str, is_dir: bool) -> None:
        # a dup: the walk closes its own fd on the parent as it moves on
        self.entries.append((os.dup(parent), name, is_dir))

    def undo(self) -> None:
        """Remove what was made, newest first; a folder something has gone into meanwhile
        (the container's own) stays."""
        for parent, name, is_dir in reversed(self.entries):
            try:
                if is_dir:
                    os.rmdir(name, dir_fd=parent)
                else:
                    os.unlink(name, dir_fd=parent)
            except OSError:
                pass

    def close(self) -> None:
        for parent, _, _ in self.entries:
            os.close(parent)
        self.entries.clear()

    def __enter__(self) -> Created:
        return self

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        try:
            if kind is not None:
                self.undo()
        finally:
            self.close()


def open_in_root(root: int, unsafe: str, *, want_dir: bool = False, create: bool = False,
                 escape: str = CLAMP, made: Created | None = None,
                 owner: tuple[int, int] | None = None, what: str = "path") -> int:
    """An O_PATH fd on `unsafe` resolved below the folder `root` (an fd), which the caller
    closes. `want_dir`: it must be a folder; `create`: what is missing is made (folders,
    and the last part an empty file unless `want_dir`), each recorded in `made` and given
    to `owner` (uid, gid) when set. Errors name `what` and `unsafe`."""
    try:
        fd = sc.openat2(root, _relative(unsafe), os.O_PATH, _FAST[escape])
    except KernelError:
        pass  # missing, a magic link, a race on `..`, an escape: the walk tells which
    else:
        if not want_dir or stat.S_ISDIR(os.fstat(fd).st_mode):
            return fd
        os.close(fd)  # the walk names what is in the way
    fd, _, _ = _walk(root, unsafe, want_dir=want_dir, create=create, missing_ok=False,
                     escape=escape, made=made, owner=owner, what=what)
    return fd


def secure_join(root: str, unsafe: str) -> str:
    """The host path of `unsafe` as the container sees it below the folder `root`, links
    expanded and `..` clamped; what is missing is kept as given, below what exists."""
    root = os.path.abspath(root)
    fd, names, rest = _walk_path(root, unsafe, "path", want_dir=False, create=False,
                                 missing_ok=True)
    os.close(fd)
    return os.path.join(root, *names, *rest)


def make_target(root: str, unsafe: str, is_dir: bool) -> str:
    """The host path of `unsafe` below the folder `root` (as `secure_join` finds it),
    created as a folder or an empty file where missing."""
    root = os.path.abspath(root)
    fd, names, _ = _walk_path(root, unsafe, "mount target", want_dir=is_dir, create=True,
                               missing_ok=False)
    os.close(fd)
    return os.path.join(root, *names)


def pin(root: str, path: str) -> int:
    """An O_PATH fd on `path`, checked to be inside `root` as the kernel sees it now.

    `make_target` answered with a path; between that and a mount, another process of
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


# -- the walk -------------------------------------------------------------------------------
def _relative(unsafe: str) -> str:
    """`unsafe` without its leading slashes and `.` parts: RESOLVE_BENEATH takes no
    absolute path, and an empty one is the root itself."""
    return "/".join(p for p in unsafe.split("/") if p and p != ".") or "."


def _walk_path(root: str, unsafe: str, what: str,
               **how: bool) -> tuple[int, list[str], list[str]]:
    """`_walk` below the folder `root` (a host path), `..` clamped."""
    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise KernelError.from_os("open root", e, root) from None
    try:
        return _walk(root_fd, unsafe, escape=CLAMP, made=None, owner=None, what=what, **how)
    finally:
        os.close(root_fd)


def _walk(root: int, unsafe: str, *, want_dir: bool, create: bool, missing_ok: bool,
          escape: str, made: Created | None, owner: tuple[int, int] | None,
          what: str) -> tuple[int, list[str], list[str]]:
    """(an O_PATH fd on the last part of `unsafe` below `root` that exists, the names from
    the root down to it, the missing names below it — only with `missing_ok`, else a
    missing part is ENOENT unless `create` makes it)."""
    fds = [root]  # the folders from the root down to where the walk is; root is the caller's
    names: list[str] = []
    rest: list[str] = []
    todo = _parts(unsafe)  # reversed: the next part is the last
    links = 0
    try:
        while todo:
            name = todo.pop()
            if name == "..":
                if rest:
                    rest.pop()
                elif names:
                    names.pop()
                    os.close(fds.pop())
                elif escape == REFUSE:
                    raise InvalidArgument(f"{what} `{unsafe}` leaves the container's root "
                                          "through a symlink")
                continue
            if rest:  # below a missing part nothing exists to look at
                rest.append(name)
                continue
            last = not todo
            fd = _step(fds[-1], name, create and (want_dir or not last), create, made, owner,
                       unsafe, what)
            if fd < 0:
                if not missing_ok:
                    raise KernelError(f"open {what}", errno.ENOENT, unsafe, f"(at `{name}`)")
                rest.append(name)
                continue
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                link = os.readlink("", dir_fd=fd)  # from the fd: the link we looked at
                os.close(fd)
                links += 1
                if links > _MAX_LINKS:
                    raise KernelError(f"resolve {what}", errno.ELOOP, unsafe)
                if link.startswith("/"):
                    for held in fds[1:]:
                        os.close(held)
                    del fds[1:], names[:]
                todo += _parts(link)
                continue
            fds.append(fd)
            names.append(name)
            if not stat.S_ISDIR(mode) and (todo or want_dir):
                raise KernelError(what, errno.ENOTDIR, unsafe, f"(at `{name}`: not a folder)")
        found = fds.pop() if len(fds) > 1 else os.dup(root)
        return found, names, rest
    finally:
        for held in fds[1:]:
            os.close(held)


def _parts(path: str) -> list[str]:
    return [p for p in reversed(path.split("/")) if p and p != "."]


def _step(parent: int, name: str, as_dir: bool, create: bool, made: Created | None,
          owner: tuple[int, int] | None, unsafe: str, what: str) -> int:
    """An O_PATH fd on `name` below `parent`, never following it (the walk expands a link
    itself); when missing: made (a folder when `as_dir`, else an empty file) if `create`,
    else -1."""
    for _ in range(3):  # look again if something appeared between the look and the making
        try:
            return os.open(name, _STEP, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return -1
        except OSError as e:
            raise KernelError(f"open {what}", e.errno or errno.EIO, unsafe,
                              f"(at `{name}`)") from None
        try:
            if as_dir:
                os.mkdir(name, 0o755, dir_fd=parent)
            else:
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o644, dir_fd=parent))
        except FileExistsError:
            continue
        except OSError as e:
            raise KernelError(f"{'mkdir' if as_dir else 'create'} {what}", e.errno or errno.EIO,
                              unsafe, f"(at `{name}`)") from None
        if made is not None:
            made.add(parent, name, as_dir)
        if owner is not None:
            os.chown(name, *owner, dir_fd=parent, follow_symlinks=False)
        return _enter_made(parent, name, as_dir, unsafe, what)
    raise KernelError(f"mkdir {what}", errno.EEXIST, unsafe, f"(at `{name}`)")


def _enter_made(parent: int, name: str, as_dir: bool, unsafe: str, what: str) -> int:
    """An fd on what `_step` just made, refused if it is a link now: something swapped it
    in since (a container sharing the volume), and it is not followed."""
    try:
        fd = os.open(name, _STEP | (os.O_DIRECTORY if as_dir else 0), dir_fd=parent)
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.ELOOP):
            raise KernelError(what, e.errno, unsafe,
                              f"(at `{name}`: not a folder: a file, or a link swapped in)") from None
        raise KernelError(f"open {what}", e.errno or errno.EIO, unsafe, f"(at `{name}`)") from None
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        os.close(fd)
        raise KernelError(what, errno.ELOOP, unsafe, f"(at `{name}`: a link swapped in)")
    return fd
