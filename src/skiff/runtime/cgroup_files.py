"""One write to a cgroupfs control file, its error, and the move of a process by files.

cgroupfs is not an ordinary filesystem: each write(2) is one command that the kernel
accepts or refuses with an errno, so a write here is a single `os.write` on its own file
descriptor, and a failure is a `CgroupError` naming the file and the errno, as crun's
read (``write `max` to `…/pids.max`: EINVAL (…)``). The cgroup drivers (`runtime.cgroups`)
write through this module; so does `exec`, which moves its process into the container's
cgroup by the cgroup.procs files `create` kept in the state (`join`), without loading the
drivers, whose import and reading of the mount table cost an exec about 1 ms. Files that
take one entry per write (cgroup.procs, devices.allow, io.max…) are opened for appending:
on the fake trees of the unit tests they then keep every line written.
"""

from __future__ import annotations

import errno
import os

from skiff.errors import CgroupError


def failure(op: str, path: str, exc: OSError, detail: str = "") -> CgroupError:
    """A CgroupError that reads like crun's: ``write `max` to `…/pids.max`: EINVAL (…)``.

    The errno and path are also kept as attributes so callers can react to EBUSY & co.
    """
    code = exc.errno or errno.EIO
    name = errno.errorcode.get(code, str(code))
    err = CgroupError(f"{op} `{path}`{detail}: {name} ({os.strerror(code)})")
    err.errno = code  # type: ignore[attr-defined]
    err.path = path  # type: ignore[attr-defined]
    return err


def write(path: str, value: str, *, append: bool = False) -> None:
    """Write `value` to a control file in one write(2).

    Files taking one entry per write (`append=True`) get a newline after each entry, which
    the kernel ignores and which keeps the lines apart on a fake tree.
    """
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC)
    data = (value + "\n" if append else value).encode()
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise failure(f"write `{value}` to", path, e) from e
    try:
        os.write(fd, data)
    except OSError as e:
        raise failure(f"write `{value}` to", path, e) from e
    finally:
        os.close(fd)


def join(procs_files: list[str], pid: int) -> None:
    """Move `pid` into a cgroup by its cgroup.procs file in every hierarchy
    (`Cgroup.procs_files`, in its order)."""
    for path in procs_files:
        write(path, str(pid), append=True)
