"""The one exception tree of skiff: every layer raises a subclass of `SkiffError`.

Callers catch the root to report any failure, or a leaf to handle one case. A kernel
error carries the call, the path it was about and the errno, so a message reads like
crun's: ``mount `/proc` on `/tmp/rootfs/proc`: EPERM (Operation not permitted)``.

    SkiffError
     +-- SpecError                 a config.json / spec document is malformed (names the field)
     +-- KernelError               a system call failed (call, path, errno)
     +-- RuntimeError_             the OCI runtime refused or failed an operation
     |    +-- ContainerNotFound
     |    +-- ContainerExists
     |    +-- InvalidState         an illegal move in the container state machine
     |    +-- HookFailed
     +-- CgroupError               a cgroup could not be made, set or removed
     +-- UsageError                a command line is malformed (or asked for --help)
"""

from __future__ import annotations

import errno as _errno
import os


class SkiffError(Exception):
    """Root of every error skiff raises on purpose."""


class SpecError(SkiffError):
    """A spec document is malformed; `field` is the dotted path of the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class KernelError(SkiffError):
    """A system call failed: which call, about which path, with which errno."""

    def __init__(self, call: str, errno: int, path: str | None = None, detail: str = "") -> None:
        self.call = call
        self.errno = errno
        self.path = path
        self.detail = detail
        name = _errno.errorcode.get(errno, str(errno))
        where = f" `{path}`" if path else ""
        extra = f" {detail}" if detail else ""
        super().__init__(f"{call}{where}{extra}: {name} ({os.strerror(errno)})")

    @classmethod
    def from_os(cls, call: str, exc: OSError, path: str | None = None) -> "KernelError":
        return cls(call, exc.errno or _errno.EIO, path if path is not None else exc.filename)


class RuntimeError_(SkiffError):
    """The OCI runtime refused or failed an operation (named with a trailing _ to keep
    Python's builtin RuntimeError usable)."""


class ContainerNotFound(RuntimeError_):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container `{container_id}` does not exist")


class ContainerExists(RuntimeError_):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container `{container_id}` already exists")


class InvalidState(RuntimeError_):
    """An operation is not allowed in the container's current state."""

    def __init__(self, container_id: str, operation: str, status: str, hint: str = "") -> None:
        self.status = status
        tail = f": {hint}" if hint else ""
        super().__init__(f"cannot {operation} container `{container_id}` in state {status}{tail}")


class HookFailed(RuntimeError_):
    pass


class CgroupError(SkiffError):
    pass


class UsageError(SkiffError):
    """A malformed command line; `help` is set when the user asked for the usage text."""

    def __init__(self, message: str, help: bool = False) -> None:
        self.help = help
        super().__init__(message)
