"""The messages between the runtime and the processes it forks, over a SEQPACKET pair.

One message is one JSON object with a `type`. A child that fails sends `error` with the
message of the exception and dies; the parent turns that into the same exception text, so
a failure deep inside the container's init reads as if it happened in the command.
Closing without a word (the child crashed) is an error too.
"""

from __future__ import annotations

import os
import socket

from skiff.errors import RuntimeError_, SkiffError
from skiff import jsonfast

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, kind: str, **data: Any) -> None:
        self.sock.send(jsonfast.dumps({"type": kind, **data}).encode())

    def recv(self, expect: str) -> dict[str, Any]:
        raw = self.sock.recv(1 << 20)
        if not raw:
            raise RuntimeError_(f"container process died before `{expect}`")
        msg = jsonfast.loads(raw)
        if msg["type"] == "error":
            raise RuntimeError_(msg["message"])
        if msg["type"] != expect:
            raise RuntimeError_(f"protocol: expected `{expect}`, got `{msg['type']}`")
        return msg

    def raise_pending(self, cause: BaseException) -> NoReturn:
        """Raise the child's own error if it sent one (it failed first, and says better
        what went wrong), else `cause`."""
        self.sock.settimeout(1.0)  # a dying child's last word is on its way or already here
        try:
            raw = self.sock.recv(1 << 20)
        except OSError:
            raw = b""
        finally:
            self.sock.settimeout(None)
        msg = jsonfast.loads(raw) if raw else {}
        if msg.get("type") == "error":
            raise RuntimeError_(msg["message"]) from None
        raise cause

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


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
    """Report an exception from a forked child to its parent, then die at once."""
    if isinstance(exc, SkiffError):
        message = str(exc)
    elif isinstance(exc, OSError):
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
    else:
        import traceback  # only for bugs: a clean failure is a SkiffError or an OSError
        message = "".join(traceback.format_exception(exc)).strip()
    try:
        chan.send("error", message=message)
    except OSError:  # the parent stopped listening (after `ready`): say it on stderr
        os.write(2, f"skiff-runtime: {message}\n".encode())
    finally:
        os._exit(1)
