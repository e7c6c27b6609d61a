"""The client's side of an attach with stdin or a TTY (``skiff run -i/-t``): this process's
stdin sent on the hijacked connection, the terminal in raw mode while attached (restored
after, whatever happens), and the terminal's size sent to the daemon after the start and at
each SIGWINCH, as the docker CLI does.

`Session` is a context manager around the copy of the output: it starts a thread that
reads stdin (fd 0) and sends it, half-closing the connection at EOF (the daemon then ends
the container's stdin if it was StdinOnce). Imported only by an attached ``run`` with
``-i`` or ``-t``: termios and threads cost the CLI's start-up nothing otherwise.
"""

from __future__ import annotations

import os
import signal
import struct
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

    from skiff.client.api import EngineClient
    from skiff.client.transport import Response


class Session:
    def __init__(self, client: EngineClient, cid: str, stream: Response, *, stdin: bool,
                 tty: bool) -> None:
        self.client, self.cid, self.stream = client, cid, stream
        self.stdin, self.tty = stdin, tty
        self.saved: list[Any] | None = None
        self.old_winch: Any = None

    def __enter__(self) -> Session:
        if self.tty and os.isatty(0):
            import termios
            import tty
            self.saved = termios.tcgetattr(0)
            tty.setraw(0)
        if self.tty and os.isatty(1):
            self.old_winch = signal.signal(signal.SIGWINCH, lambda *_: self.resize())
            self.resize()
        if self.stdin:
            threading.Thread(target=self._send_stdin, name="skiff-stdin", daemon=True).start()
        return self

    def resize(self) -> None:
        """The terminal's size to the daemon (moby's resizeTty); a failure is no matter."""
        try:
            import fcntl
            import termios
            rows, cols = struct.unpack("HHHH", fcntl.ioctl(1, termios.TIOCGWINSZ,
                                                           b"\0" * 8))[:2]
            if rows and cols:
                self.client.open("POST", f"/containers/{self.cid}/resize",
                                 {"h": rows, "w": cols}).read()
        except Exception:  # noqa: BLE001 - the container may be gone already
            pass

    def _send_stdin(self) -> None:
        try:
            while data := os.read(0, 65536):
                self.stream.send(data)
        except OSError:
            return  # the connection ended (the container exited, or we detached)
        self.stream.close_write()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.saved is not None:
            import termios
            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
        if self.old_winch is not None:
            signal.signal(signal.SIGWINCH, self.old_winch)
