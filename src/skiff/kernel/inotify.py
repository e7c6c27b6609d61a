"""inotify(7): be told when files change instead of polling them.

`Inotify` is one inotify instance (its fd non-blocking and close-on-exec) with watches on
paths; `read(timeout)` waits up to `timeout` seconds and returns the events that came, as
`InotifyEvent` records (the watch, the mask, the name inside a watched folder). A log
reader following a growing file, or the engine waiting for a container's exit file, select
on its `fileno()` together with other fds. A daemon-side module: it loads libc's functions (through
`kernel.syscall`).
"""

from __future__ import annotations

import os
import select
import struct

from skiff.errors import KernelError
from skiff.kernel import ffi
from skiff.kernel.syscall import libc
from skiff.record import Record

IN_ACCESS = 0x1
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_CLOSE_NOWRITE = 0x10
IN_OPEN = 0x20
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000  # events were lost: rescan what you watch
IN_IGNORED = 0x8000  # the watch is gone (removed, or its path deleted)
IN_ONLYDIR = 0x1000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name

libc.inotify_add_watch.argtypes = (ffi.c_int, ffi.c_char_p, ffi.c_uint32)


class InotifyEvent(Record):
    wd: int
    mask: int
    cookie: int
    name: str  # the entry's name in a watched folder; "" for the watched path itself


def parse_events(data: bytes) -> list[InotifyEvent]:
    """The events in one read of an inotify fd."""
    out = []
    offset = 0
    while offset + _EVENT.size <= len(data):
        wd, mask, cookie, length = _EVENT.unpack_from(data, offset)
        offset += _EVENT.size
        raw = data[offset:offset + length].split(b"\0", 1)[0]
        offset += length
        out.append(InotifyEvent(wd, mask, cookie, os.fsdecode(raw)))
    return out


class Inotify:
    def __init__(self) -> None:
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise KernelError("inotify_init1", ffi.get_errno())
        self.fd: int = fd

    def fileno(self) -> int:
        return self.fd

    def add_watch(self, path: str, mask: int) -> int:
        """Watch `path` for the events in `mask`; the watch descriptor (the same one again
        for a path already watched)."""
        wd = libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            raise KernelError("inotify_add_watch", ffi.get_errno(), path)
        return int(wd)

    def remove_watch(self, wd: int) -> None:
        if libc.inotify_rm_watch(self.fd, wd) < 0:
            err = ffi.get_errno()
            if err != 22:  # EINVAL: already gone with its path
                raise KernelError("inotify_rm_watch", err, detail=f"(watch {wd})")

    def read(self, timeout: float | None = None) -> list[InotifyEvent]:
        """The events that are there, or that come within `timeout` seconds (None: wait
        for one); an empty list when none came."""
        if timeout is None or timeout > 0:
            if not select.select([self.fd], [], [], timeout)[0]:
                return []
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return []
        return parse_events(data)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Inotify:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
