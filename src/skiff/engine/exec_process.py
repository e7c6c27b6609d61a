"""The processes behind an exec: a parent forked from skiffd per exec, and one thread that
reaps them all.

An exec'd process must have a parent that collects its exit code. skiffd cannot be that
parent itself without becoming a child subreaper (the runtime forks twice to enter the
container's pid namespace, so the process is an orphan by birth), and a subreaper skiffd
would also inherit every monitor, which must stay nobody's child. So `launch_exec` forks an
*exec parent*: a copy of skiffd that drops everything of the daemon's (its other fds, its
signal wake-up fd), sets the exec's stdio, starts the process with the runtime library
(`runtime.exec.start_in`) — becoming the subreaper — reports the process's pid (or the
runtime's error) on a pipe, waits for it and exits with its exit code, the shell way. No
interpreter starts (a fork, not an exec: ~1 ms, nothing to import), and the parent is
skiffd's own child, so the daemon reaps it. `ExitReaper` does that for every exec from one
thread polling one pidfd each: nothing blocks per exec. When skiffd dies, the parents go
on and the execs with them, as exec'd processes outlive dockerd under containerd's shim.
"""

from __future__ import annotations

import os
import select
import threading

from skiff.errors import RuntimeError_, SkiffError
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import NoReturn

    from skiff.oci.runtime_spec import Process
    from skiff.runtime.container import Container

_log = logger("skiff.engine.exec_process")
START_TIMEOUT = 30.0  # seconds an exec parent may take to report its process started


class Launched:
    """A started exec: its parent's pid (our child) and the process's host pid."""

    __slots__ = ("parent", "pid")

    def __init__(self, parent: int, pid: int) -> None:
        self.parent = parent
        self.pid = pid


def warm_up() -> None:
    """Load what an exec parent runs, once, in skiffd: a fork inherits it, where each
    parent would otherwise import it anew (~15 ms an exec)."""
    import skiff.kernel.seccomp  # noqa: F401 - loaded for the forks
    import skiff.runtime.cgroups  # noqa: F401
    import skiff.runtime.console  # noqa: F401
    import skiff.runtime.exec  # noqa: F401
    import skiff.runtime.foreground  # noqa: F401


def launch_exec(container: Container, process: Process, stdio: tuple[int, int, int],
                terminal: socket.socket | None) -> Launched:
    """Start `process` in `container` under a new exec parent, with `stdio` as its fds
    0-2 (with a terminal they are the parent's only; the process's go to the pty whose
    master is sent on `terminal`). Raises RuntimeError_ with the runtime's words when it
    could not start (the parent is reaped then)."""
    status_r, status_w = os.pipe()
    keep = {status_w} | ({terminal.fileno()} if terminal is not None else set())
    try:
        parent = os.fork()
        if parent == 0:  # pragma: no cover - the child ends in os._exit
            os.close(status_r)
            _parent_main(container, process, stdio, terminal, status_w, keep)
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)
    try:
        answer = _read_answer(status_r)
    finally:
        os.close(status_r)
    if not answer.startswith("pid "):
        _reap_now(parent)
        raise RuntimeError_(answer.removeprefix("err ") or "the exec parent died before "
                                                          "the process started")
    return Launched(parent, int(answer[4:]))


def _read_answer(fd: int) -> str:
    data = b""
    while not data.endswith(b"\n"):
        if not select.select([fd], [], [], START_TIMEOUT)[0]:
            return f"err the exec did not start within {START_TIMEOUT:g} s"
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").rstrip("\n")


def _reap_now(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _parent_main(container: Container, process: Process, stdio: tuple[int, int, int],
                 terminal: socket.socket | None, status_w: int, keep: set[int]) -> NoReturn:
    """The exec parent, in the forked copy of skiffd: nothing of the daemon's may stay
    (its sockets would keep clients' connections open), nothing may log (a lock another
    thread held at the fork is held forever here)."""
    code = 255
    try:
        import gc
        import signal

        # a collection would walk every object of skiffd's heap, copying each page it
        # touches: the forked parent lives on what it inherited, collected by nobody
        gc.disable()

        signal.set_wakeup_fd(-1)  # the daemon's event loop must not hear our signals
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()  # a signal to skiffd's process group is not for the execs
        for fd, target in zip(stdio, (0, 1, 2)):
            if fd != target:
                os.dup2(fd, target)
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2 and fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass  # the listing's own fd
        from skiff.runtime.exec import start_in
        from skiff.runtime.foreground import wait_for
        pid = start_in(container, process, terminal)
        os.write(status_w, f"pid {pid}\n".encode())
        os.close(status_w)
        code = wait_for(pid)
    except SkiffError as e:
        _say(status_w, f"err {e}")
    except OSError as e:
        _say(status_w, f"err {e.strerror}: {e.filename}" if e.filename else f"err {e}")
    except BaseException as e:  # noqa: BLE001 - a bug: its words go to the daemon
        _say(status_w, f"err {type(e).__name__}: {e}")
    finally:
        os._exit(code)


def _say(fd: int, line: str) -> None:
    try:
        os.write(fd, (line.replace("\n", " ") + "\n").encode())
    except OSError:
        pass


class ExitReaper:
    """Reaps exec parents (skiffd's children) from one thread and calls
    `on_exit(parent_pid, exit_code)` for each; exit codes the shell way."""

    def __init__(self, on_exit: Callable[[int, int], None]) -> None:
        self.on_exit = on_exit
        self._lock = threading.Lock()
        self._poll = select.poll()
        self._fds: dict[int, int] = {}  # pidfd → parent pid
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._poll.register(self._wake_r, select.POLLIN)
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, pid: int) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError_("the engine is closing")
            fd = os.pidfd_open(pid)
            self._fds[fd] = pid
            self._poll.register(fd, select.POLLIN)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="skiffd-exec-reaper",
                                                daemon=True)
                self._thread.start()
        os.write(self._wake_w, b"x")  # poll again, with the new fd

    def _run(self) -> None:
        while True:
            try:
                events = self._poll.poll()
            except InterruptedError:
                continue
            ended: list[int] = []
            with self._lock:
                if self._closed:
                    return
                for fd, _ in events:
                    if fd == self._wake_r:
                        try:
                            os.read(self._wake_r, 4096)
                        except BlockingIOError:
                            pass
                        continue
                    pid = self._fds.pop(fd, None)
                    if pid is None:
                        continue
                    self._poll.unregister(fd)
                    os.close(fd)
                    ended.append(pid)
            for pid in ended:
                self._report(pid)

    def _report(self, pid: int) -> None:
        from skiff.runtime.foreground import exit_code

        try:
            _, status = os.waitpid(pid, 0)
            code = exit_code(status)
        except ChildProcessError:
            code = 255  # reaped by someone else: its code is lost
        try:
            self.on_exit(pid, code)
        except Exception as e:  # noqa: BLE001 - the reaper must go on for the others
            _log.error("exec parent %d: reporting its exit: %s", pid, e)

    def close(self) -> None:
        """Stop reaping (the execs go on; skiffd is going away)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in self._fds:
                os.close(fd)
            self._fds.clear()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        os.close(self._wake_r)
        os.close(self._wake_w)
