"""Terminals for container processes: the pty made inside, its master handed out.

With `process.terminal` the container's process gets a pty from the container's own
devpts as its controlling terminal and stdio. The master goes to whoever listens on the
console socket, as runc does for containerd and conmon: one message whose payload is the
pty's name with the master fd in SCM_RIGHTS. When `run`/`exec` stay in the foreground
without a console socket, the runtime listens itself and relays the caller's terminal.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import termios
import tty

from skiff.errors import KernelError
from skiff.kernel import syscall as sc
from skiff.kernel import signals

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from skiff.oci.runtime_spec import ConsoleSize
    from typing import Callable


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise KernelError.from_os("connect console socket", e, path) from None
    return sock


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def take_terminal(sock: socket.socket, size: ConsoleSize | None, console: bool) -> None:
    """In the container process: open a pty, send its master, make the slave our terminal
    and stdio, and show it at /dev/console when `console`."""
    master, slave = os.openpty()
    name = os.ttyname(slave)
    if size is not None:
        set_size(slave, size.height, size.width)
    socket.send_fds(sock, [name.encode()], [master])
    os.close(master)
    sock.close()
    if console and os.path.exists("/dev"):
        if not os.path.exists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        sc.mount(name, "/dev/console", None, sc.MS_BIND)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def receive_master(sock: socket.socket) -> int:
    """The master fd sent by `take_terminal` (the listener's side of a console socket)."""
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise KernelError("recvmsg console master", 5, detail="(no fd received)")
    return fds[0]


def relay(master: int, child_done: Callable[[], bool]) -> None:
    """Copy the caller's stdin to the pty and the pty to stdout until it closes."""
    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None

    def resize(*_: object) -> None:
        try:
            rows, cols = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
            set_size(master, rows, cols)
        except OSError:
            pass

    if stdin_tty:
        tty.setraw(0)
        resize()
        signals.set_handler(signals.SIGWINCH, resize)
    sources = [master, 0]
    try:
        while True:
            try:
                ready, _, _ = select.select(sources, [], [], 0.2)
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    sources.remove(0)
            if not ready and child_done():
                break
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
