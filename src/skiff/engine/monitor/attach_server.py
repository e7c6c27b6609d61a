"""The monitor's side of attach: the unix socket skiffd's attachers connect to, the
container's stdin fed from them, the pty's size, and the pty master received at start.

Only a container with a TTY or an open stdin (``-t``, ``-i``) has one, so only its monitor
loads `_socket` (the C module alone, not the `socket` package, which would load `os`,
`enum` and `selectors`). `AttachServer` listens on ``<bundle>/attach.sock`` (0600: root's
skiffd only) and takes any number of connections, each speaking `control`'s frames: stdin
bytes go to the container's stdin (a pipe the monitor holds the writing end of, or the
pty's master) in the order they came; a resize sets the pty's size; a close ends a pipe
stdin. Writes never block the monitor: what the container has not read yet is held, and
while it is, the connections are not read (their bytes wait in the kernel, and skiffd's
writer with them). `receive_master` takes the pty master the container's init sends on
the console socket (runc's protocol, `runtime.console`).
"""

from __future__ import annotations

import posix
import select

import _socket

from skiff.engine.monitor import control

_READ = 65536


SUN_PATH_MAX = 100  # sun_path holds 108 bytes; a longer path is reached through its folder


def short_name(path: str) -> tuple[str, int]:
    """A name of `path` that fits a unix socket address, and the fd it needs open (-1 for
    none): the path itself, or ``/proc/self/fd/<its folder>/<name>`` (a child forked
    meanwhile may use it too: it has the same fd)."""
    if len(path.encode()) < SUN_PATH_MAX:
        return path, -1
    folder, _, name = path.rpartition("/")
    fd = posix.open(folder or "/", posix.O_PATH | posix.O_DIRECTORY | posix.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}", fd


def listen(path: str) -> _socket.socket:
    """A listening unix socket at `path` (a stale one there is replaced), mode 0600."""
    try:
        posix.unlink(path)
    except FileNotFoundError:
        pass
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    name, folder = short_name(path)
    old = posix.umask(0o177)
    try:
        sock.bind(name)
    finally:
        posix.umask(old)
        if folder >= 0:
            posix.close(folder)
    sock.listen(16)
    return sock


def receive_master(listener: _socket.socket, timeout: float) -> int:
    """The pty master fd sent on the console socket (one connection, one fd)."""
    listener.settimeout(timeout)
    fd, _ = listener._accept()  # type: ignore[attr-defined]  # _socket's accept: an fd
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
    try:
        conn.settimeout(timeout)
        _, ancillary, _, _ = conn.recvmsg(4096, _socket.CMSG_LEN(4))
    finally:
        conn.close()
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
            master = int.from_bytes(data[:4], "little")
            posix.set_inheritable(master, False)
            return master
    raise OSError(5, "the console socket sent no pty master")


class AttachServer:
    """The attach socket and the stdin it feeds; the monitor's poll loop hands it the
    events of the fds it `owns`."""

    def __init__(self, path: str, poller: select.poll, stdin_fd: int, master: int) -> None:
        self.path = path
        self.poller = poller
        self.stdin_fd = stdin_fd  # where stdin bytes go (-1: the container has none)
        self.master = master  # the pty's master, for resizes (-1: no TTY)
        self.listener = listen(path)
        self.listener.setblocking(False)
        self.conns: dict[int, tuple[_socket.socket, control.Decoder]] = {}
        self.pending = bytearray()  # stdin the container has not taken yet
        self.close_after = False  # a close came while stdin was pending
        self.blocked = False  # polling stdin for room (and not the connections)
        if stdin_fd >= 0:
            posix.set_blocking(stdin_fd, False)
        poller.register(self.listener.fileno(), select.POLLIN)

    def owns(self, fd: int) -> bool:
        return fd == self.listener.fileno() or fd in self.conns or fd == self.stdin_fd

    def handle(self, fd: int) -> None:
        if fd == self.listener.fileno():
            self._accept()
        elif fd == self.stdin_fd:
            self._flush()
        else:
            self._read(fd)

    def _accept(self) -> None:
        try:
            fd, _ = self.listener._accept()  # type: ignore[attr-defined]
        except OSError:
            return  # (EAGAIN: another event took it; EMFILE: the peer will retry)
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, fd)
        conn.setblocking(False)
        self.conns[fd] = (conn, control.Decoder())
        self.poller.register(fd, 0 if self.blocked else select.POLLIN)

    def _drop(self, fd: int) -> None:
        conn, _ = self.conns.pop(fd)
        self.poller.unregister(fd)
        conn.close()

    def _read(self, fd: int) -> None:
        conn, decoder = self.conns[fd]
        try:
            data = conn.recv(_READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(fd)
            return
        try:
            frames = decoder.feed(data)
        except ValueError:
            self._drop(fd)  # not one of skiffd's: nothing it sent is trusted
            return
        for kind, payload in frames:
            if kind == control.STDIN:
                if self.stdin_fd >= 0 and not self.close_after:
                    self.pending += payload
            elif kind == control.RESIZE:
                self._resize(payload)
            elif kind == control.CLOSE and self.master < 0:
                self.close_after = True  # (a TTY's stdin is never closed, as Docker's)
        self._flush()

    def _resize(self, payload: bytes) -> None:
        if self.master < 0:
            return  # no TTY: nothing to resize (Docker answers a resize of it all the same)
        try:
            rows, cols = control.size_of(payload)
            from skiff.kernel.winsize import set_window_size
            set_window_size(self.master, rows, cols)
        except (ValueError, OSError):
            pass

    def _flush(self) -> None:
        """Write what is pending; poll the stdin for room while some is left, and not the
        connections (their bytes wait in the kernel meanwhile)."""
        if self.stdin_fd < 0:
            self.pending.clear()
            return
        while self.pending:
            try:
                n = posix.write(self.stdin_fd, self.pending[:_READ])
            except BlockingIOError:
                break
            except OSError:  # the container closed its stdin, or is gone: nobody reads
                self.pending.clear()
                self.close_after = True
                break
            del self.pending[:n]
        if bool(self.pending) != self.blocked:
            self.blocked = bool(self.pending)
            if self.blocked:
                self.poller.register(self.stdin_fd, select.POLLOUT)
            else:
                self.poller.unregister(self.stdin_fd)
            for fd in self.conns:
                self.poller.modify(fd, 0 if self.blocked else select.POLLIN)
        if self.close_after and not self.pending:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self.stdin_fd >= 0:
            posix.close(self.stdin_fd)
            self.stdin_fd = -1

    def close(self) -> None:
        """The container is gone: no more attachers, the socket file goes."""
        for fd in list(self.conns):
            self._drop(fd)
        if self.blocked:
            self.poller.unregister(self.stdin_fd)
        self.pending.clear()
        self.blocked = False
        self._close_stdin()
        self.poller.unregister(self.listener.fileno())
        self.listener.close()
        try:
            posix.unlink(self.path)
        except OSError:
            pass
