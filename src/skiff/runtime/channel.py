"""The messages between the runtime and the processes it forks, over a SEQPACKET pair.

One message is one JSON object with a `type`. A child that fails sends `error` with the
message of the exception and dies; the parent turns that into the same exception text, so
a failure deep inside the container's init reads as if it happened in the command.
Closing without a word (the child crashed) is an error too.
"""

from __future__ import annotations

import json
import os
import socket
import traceback
from typing import Any, NoReturn

from skiff.errors import RuntimeError_, SkiffError


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple["Channel", "Channel"]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, kind: str, **data: Any) -> None:
        self.sock.send(json.dumps({"type": kind, **data}).encode())

    def recv(self, expect: str) -> dict[str, Any]:
        raw = self.sock.recv(1 << 20)
        if not raw:
            raise RuntimeError_(f"container process died before `{expect}`")
        msg = json.loads(raw)
        if msg["type"] == "error":
            raise RuntimeError_(msg["message"])
        if msg["type"] != expect:
            raise RuntimeError_(f"protocol: expected `{expect}`, got `{msg['type']}`")
        return msg

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def child_failed(chan: Channel, exc: BaseException) -> NoReturn:
    """Report an exception from a forked child to its parent, then die at once."""
    if isinstance(exc, SkiffError):
        message = str(exc)
    elif isinstance(exc, OSError):
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
    else:
        message = "".join(traceback.format_exception(exc)).strip()
    try:
        chan.send("error", message=message)
    except OSError:  # the parent stopped listening (after `ready`): say it on stderr
        os.write(2, f"skiff-runtime: {message}\n".encode())
    finally:
        os._exit(1)
