"""The network namespace of a userns-remapped container: its runtime makes it, skiffd wires it.

A remapped container's root must own its network namespace (its sysctls, a sysfs mount, its
own interfaces), so the runtime makes the namespace inside the container's user namespace
and the engine wires it from the host, as dockerd does through libnetwork's setkey hook:
the spec's createRuntime hook (`engine.netns.loopback_hook`, with the OCI state on stdin)
brings the namespace's loopback up and then calls `ask_wiring`, which sends skiffd one line
on ``$SKIFF_RUN/netns.sock`` — the container's ID and its namespace as
``/proc/<init pid>/ns/net`` (libnetwork's ContainerID and Key) — and waits for the answer
before the runtime goes on to the container's program. skiffd's `NetnsWiring` serves that
socket and hands each request to its `wire` callable (`container_run.wire_runtime_netns`:
the namespace bound where the engine keeps every container's, then wired as a namespace the
engine made), answering ``ok`` or ``error: <text>``; an error, or a skiffd that does not
answer, fails the hook and so the container's start, with that text. The runtime sees a hook
and its arguments, nothing of networks.
"""

from __future__ import annotations

import os
import socket

from skiff.errors import KernelError, SkiffError
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

_log = logger("skiff.engine.networks")
SOCKET_NAME = "netns.sock"  # under SKIFF_RUN
_REQUEST_TIMEOUT = 10.0  # for the hook's one line, once connected
_MAX_REQUEST = 4096


class NetnsWiring:
    """skiffd's side: the socket at `path`, served on a thread of its own from the first
    `ensure` to `close`, one thread per request (starts run side by side). `wire(cid, key)`
    wires the namespace at `key` for the container `cid`, or raises SkiffError."""

    def __init__(self, path: str, wire: Callable[[str, str], None]) -> None:
        import threading  # (here: the hook, which imports this module, needs no threads)

        self.path = path
        self._wire = wire
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def ensure(self) -> str:
        """The socket's path, served from now on (bound here the first time: a socket a
        skiffd before left is replaced)."""
        with self._lock:
            if self._listener is not None:
                return self.path
            os.makedirs(os.path.dirname(self.path), 0o711, exist_ok=True)
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                old = os.umask(0o177)  # root's only: whoever may ask may rewire containers
                try:
                    listener.bind(self.path)
                finally:
                    os.umask(old)
                listener.listen(64)
            except OSError as e:
                listener.close()
                raise KernelError.from_os("bind", e, self.path) from None
            self._listener = listener
            import threading

            self._thread = threading.Thread(target=self._serve, args=(listener,), daemon=True,
                                            name="skiffd-netns-wiring")
            self._thread.start()
            return self.path

    def close(self) -> None:
        """Stop serving: the socket goes (a hook asking later fails its start)."""
        with self._lock:
            listener, self._listener = self._listener, None
            thread, self._thread = self._thread, None
        if listener is None:
            return
        try:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        except OSError:
            pass
        if thread is not None:
            thread.join(timeout=5)
        listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _serve(self, listener: socket.socket) -> None:
        import threading

        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._answer, args=(conn,), daemon=True,
                             name="skiffd-netns-wire").start()

    def _answer(self, conn: socket.socket) -> None:
        line = b""
        with conn:
            try:
                conn.settimeout(_REQUEST_TIMEOUT)
                line = _read_line(conn)
                cid, key = _parse(line)
                conn.settimeout(None)  # the wiring takes what it takes; the hook waits
                self._wire(cid, key)
                answer = "ok\n"
            except (SkiffError, ValueError) as e:
                answer = f"error: {e}\n"
            except OSError as e:
                _log.warning("netns wiring: %s", e)
                return
            except Exception as e:  # noqa: BLE001 - the hook must get an answer
                _log.error("netns wiring of %s: %s: %s", line[:80], type(e).__name__, e)
                answer = f"error: {type(e).__name__}: {e}\n"
            try:
                conn.sendall(answer.encode("utf-8", "replace"))
            except OSError as e:
                _log.warning("netns wiring: the hook went before its answer: %s", e)


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(_MAX_REQUEST)
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_REQUEST:
            raise ValueError("netns wiring: request too long")
    return data.split(b"\n", 1)[0]


def _parse(line: bytes) -> tuple[str, str]:
    """``<container ID> /proc/<pid>/ns/net`` (ValueError for anything else)."""
    words = line.decode("ascii", "replace").split()
    if len(words) != 2 or not words[1].startswith("/proc/") or \
            not words[1].endswith("/ns/net") or not words[1][6:-7].isdigit():
        raise ValueError(f"netns wiring: bad request {line[:200]!r}")
    return words[0], words[1]


def ask_wiring(path: str, container_id: str, pid: int) -> None:
    """The hook's side: ask the skiffd at `path` to wire the namespace of init `pid` of
    `container_id`, and wait for it; SystemExit with the reason when it could not."""
    import sys

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(f"{container_id} /proc/{pid}/ns/net\n".encode())
            answer = _read_line(s).decode("utf-8", "replace")
    except OSError as e:
        sys.stderr.write(f"skiffd cannot wire the container's network ({path}: "
                         f"{e.strerror or e})\n")
        raise SystemExit(1) from None
    if answer != "ok":
        sys.stderr.write((answer.removeprefix("error: ") or "skiffd gave no answer") + "\n")
        raise SystemExit(1)
