"""The messages between the runtime and the processes it forks, over a pair of pipes.

One message is one JSON object with a `type`, framed by its length. A child that fails
sends `error` with the message of the exception and dies; the parent turns that into the
same exception text, so a failure deep inside the container's init reads as if it
happened in the command. Closing without a word (the child crashed) is an error too.
Pipes rather than a socketpair: `socket` is the costliest import a `run` would make.
"""

from __future__ import annotations

import os
import select

from skiff import jsonfast
from skiff.errors import RuntimeError_, SkiffError

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn


class Channel:
    """One end: read from the other side's pipe, write to our own."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        return cls(r1, w2), cls(r2, w1)

    def send(self, kind: str, **data: Any) -> None:
        payload = jsonfast.dumps({"type": kind, **data}).encode()
        frame = memoryview(len(payload).to_bytes(4, "big") + payload)
        while frame:
            frame = frame[os.write(self.wfd, frame):]

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = os.read(self.rfd, n - len(out))
            if not chunk:
                return b""
            out += chunk
        return out

    def _next(self) -> dict[str, Any] | None:
        header = self._read(4)
        if not header:
            return None
        payload = self._read(int.from_bytes(header, "big"))
        return jsonfast.loads(payload) if payload else None

    def recv(self, expect: str) -> dict[str, Any]:
        msg = self._next()
        if msg is None:
            raise RuntimeError_(f"container process died before `{expect}`")
        if msg["type"] == "error":
            raise RuntimeError_(msg["message"])
        if msg["type"] != expect:
            raise RuntimeError_(f"protocol: expected `{expect}`, got `{msg['type']}`")
        return msg

    def poll(self, timeout: float) -> dict[str, Any] | None:
        """The next message if one comes within `timeout` seconds, else None."""
        if select.select([self.rfd], [], [], timeout)[0]:
            return self._next()
        return None

    def wait_closed(self) -> bytes:
        """Block until every copy of the other side's writing end is closed (by its
        execve when close-on-exec, or its death); what came meanwhile, raw."""
        out = b""
        while True:
            chunk = os.read(self.rfd, 4096)
            if not chunk:
                return out
            out += chunk

    def raise_pending(self, cause: BaseException) -> NoReturn:
        """Raise the child's own error if it sent one (it failed first, and says better
        what went wrong), else `cause`."""
        msg = self.poll(1.0)  # a dying child's last word is on its way or already here
        if msg is not None and msg.get("type") == "error":
            raise RuntimeError_(msg["message"]) from None
        raise cause

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                os.close(fd)
        self.rfd = self.wfd = -1


def join_cgroup(chan: Channel, add: Callable[[int], None], pid: int) -> None:
    """Parent side: put `pid` in the cgroup, then let it go on (`wait_cgroup`)."""
    try:
        add(pid)
        chan.send("cgroup")
    except (OSError, SkiffError) as e:
        chan.raise_pending(e)


def wait_cgroup(chan: Channel) -> None:
    """Child side: block until the parent has moved us into the cgroup; before that, we
    must not fork, exec or make a cgroup namespace."""
    chan.recv("cgroup")


def child_failed(chan: Channel, exc: BaseException) -> NoReturn:
    """Report an exception from a forked child to its parent, then die at once.

    Nothing here may import: after the pivot (or setns into the mount namespace) an import
    would be looked up in the container's filesystem, and run the image's code as root."""
    try:
        if isinstance(exc, SkiffError):
            message = str(exc)
        elif isinstance(exc, OSError):
            message = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
        else:  # a bug: its type, its text and where it happened
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb else ""
            message = f"{type(exc).__name__}: {exc}{where}"
        try:
            chan.send("error", message=message)
        except OSError:  # the parent stopped listening (after `ready`): say it on stderr
            os.write(2, f"skiff-runtime: {message}\n".encode())
    finally:
        os._exit(1)
