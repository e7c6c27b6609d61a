"""The engine's side of a monitor: start one, and read the files it leaves.

`MonitorLauncher.start` starts the monitor for one container and returns its init's pid
once the program runs, or raises `ContainerStartError` with Docker's text and exit code
(126, 127, 125). Monitors are forked from a zygote the launcher keeps (`zygote`: the
monitor's and the runtime's code loaded once, shared by every monitor), started as
``python -S -I -c <boot> <src> --socket-fd N``: the boot line registers the `skiff` and
`skiff.engine` packages by path without running their ``__init__`` (which load `os` and
more), so the zygote holds only what monitors use (``python -m skiff.engine.monitor``
runs one monitor on its own, by hand). `read_pid_file`, `read_exit_file` and
`monitor_alive` are what reconciling after a restart needs.
"""

from __future__ import annotations

import os
import select
import sys
import threading

from skiff import jsonfast
from skiff.engine.monitor.main import comm_name
from skiff.errors import ContainerStartError
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    import subprocess

# argv: [python, -S, -I, -c, BOOT, <src dir>, --socket-fd, N]; `-I` ignores PYTHON* variables
# and keeps the working folder off sys.path, so the src dir comes as an argument
BOOT = ("import sys;src=sys.argv.pop(1);M=type(sys)\n"
        "for name in ('skiff','skiff.engine'):\n"
        " m=M(name);m.__path__=[src+'/'+name.replace('.','/')];sys.modules[name]=m\n"
        "from skiff.engine.monitor.zygote import serve;serve(sys.argv[1:])")
_ZYGOTE_TIMEOUT = 30.0  # for its answer to one request: a fork and a child's exit


class ExitStatus(Record):
    """A container run's end, as the monitor recorded it in the exit file."""

    exit_code: int
    finished_at: str  # RFC 3339 with nanoseconds, Go's RFC3339Nano
    oom_killed: bool
    signal: int | None  # the signal that killed init (then exit_code is 128 + signal)
    restart_count: int = 0  # the restarts the monitor made before this end
    error: str = ""  # why a restart could not start the container


def src_dir() -> str:
    """The folder that holds the `skiff` package (src/ of a checkout, or site-packages)."""
    import skiff
    return os.path.dirname(os.path.dirname(os.path.abspath(skiff.__file__)))


class Stdio(Record):
    """A container's terminal and stdin (``-t``, ``-i``); with either, the monitor serves
    `attach_socket` (`monitor.control`'s frames)."""

    terminal: bool = False
    open_stdin: bool = False
    attach_socket: str = ""


def monitor_args(container_id: str, *, bundle: str, runtime_root: str, log_path: str,
                 exit_file: str, pid_file: str, log_max_size: int = -1, log_max_file: int = 1,
                 monitor_log: str | None = None, stdio: Stdio | None = None) -> list[str]:
    """The monitor's arguments (`main`), all but ``--status-fd``."""
    argv = ["--id", container_id, "--bundle", bundle, "--runtime-root", runtime_root,
            "--log", log_path, "--exit-file", exit_file, "--pid-file", pid_file]
    if log_max_size > 0:
        argv += ["--log-max-size", str(log_max_size), "--log-max-file", str(max(1, log_max_file))]
    if monitor_log:
        argv += ["--monitor-log", monitor_log]
    if stdio is not None and (stdio.terminal or stdio.open_stdin):
        argv += ["--terminal", str(int(stdio.terminal)), "--open-stdin",
                 str(int(stdio.open_stdin)), "--attach-socket", stdio.attach_socket]
    return argv


def zygote_command(socket_fd: int) -> list[str]:
    return [sys.executable, "-S", "-I", "-c", BOOT, src_dir(), "--socket-fd", str(socket_fd)]


class MonitorLauncher:
    """Starts monitors, each forked from the zygote this launcher keeps: started at the
    first need (or by `warm`), started again when it is found dead, ended by `close`
    (the monitors go on). Safe for several threads: the zygote serves one at a time, and a
    request costs it one fork."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def warm(self) -> None:
        """Start the zygote now, so that the first container does not wait for it."""
        with self._lock:
            self._zygote()

    def close(self) -> None:
        with self._lock:
            self._drop(wait=True)

    def start(self, container_id: str, *, bundle: str, runtime_root: str, log_path: str,
              exit_file: str, pid_file: str, log_max_size: int = -1, log_max_file: int = 1,
              monitor_log: str | None = None, timeout: float = 60.0,
              stdio: Stdio | None = None) -> int:
        """Start the container of `bundle` under a new monitor; init's pid once it runs.

        The monitor outlives the caller (the zygote's child, never skiffd's). `log_max_size` > 0 turns on rotation (`log_max_file` files kept, as
        ``--log-opt max-size/max-file``). `monitor_log`: where the monitor's own complaints
        go (default: nowhere). `stdio`: a TTY, an open stdin and where the monitor serves
        attachers (default: neither, stdin /dev/null). Raises `ContainerStartError` — the
        container did not start, and nothing of it is left — with Docker's message and
        the exit code `docker run` gives (126, 127; 125 for the rest, the monitor's own
        failures included).
        """
        args = monitor_args(container_id, bundle=bundle, runtime_root=runtime_root,
                            log_path=log_path, exit_file=exit_file, pid_file=pid_file,
                            log_max_size=log_max_size, log_max_file=log_max_file,
                            monitor_log=monitor_log, stdio=stdio)
        r, w = os.pipe()
        try:
            try:
                monitor = self._fork(args, w)
            finally:
                os.close(w)
            line = _read_line(r, timeout)
        finally:
            os.close(r)
        if line is None:
            raise ContainerStartError(f"the monitor of {container_id} did not report within "
                                      f"{timeout:g} s", 125)
        if not line:
            raise ContainerStartError(f"the monitor of {container_id} (pid {monitor}) ended "
                                      f"without a word", 125)
        try:
            doc = jsonfast.loads(line)
            if "pid" in doc:
                return int(doc["pid"])
            message, code = str(doc["error"]), int(doc.get("exit_code", 125))
        except (ValueError, KeyError, TypeError):
            raise ContainerStartError(f"the monitor of {container_id} said {line!r}",
                                      125) from None
        raise ContainerStartError(message, code)

    def _fork(self, args: list[str], status_w: int) -> int:
        """Have the zygote fork a monitor with `args` and `status_w` as its status fd; the
        monitor's pid."""
        import socket
        payload = "\0".join(args).encode("utf-8", "surrogateescape")
        with self._lock:
            for attempt in (1, 2):
                sock = self._zygote()
                try:
                    socket.send_fds(sock, [payload], [status_w])
                except OSError:
                    # it was gone before it got the request (killed, or ended with a skiffd
                    # it outlived): a new one, once; a failure later might have forked
                    self._drop(wait=False)
                    if attempt == 2:
                        raise ContainerStartError("the monitors' zygote cannot be reached",
                                                  125) from None
                    continue
                try:
                    answer = sock.recv(4096)
                except OSError:
                    answer = b""
                kind, _, rest = answer.decode("utf-8", "replace").partition(" ")
                if kind == "pid" and rest.isdigit():
                    return int(rest)
                if answer.startswith(b"bad request: "):
                    raise ContainerStartError(f"the monitors' zygote refused: {rest[9:]}", 125)
                self._drop(wait=False)
                raise ContainerStartError(f"the monitors' zygote failed ({answer!r})", 125)
        raise AssertionError("unreachable")

    def _zygote(self) -> socket.socket:
        """The zygote's socket; a zygote started if there is none (the lock is held)."""
        if self._sock is not None:
            return self._sock
        import socket
        import subprocess
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(zygote_command(theirs.fileno()),
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          pass_fds=(theirs.fileno(),), cwd="/",
                                          start_new_session=True)
        except OSError as e:
            ours.close()
            raise ContainerStartError(f"start the monitors' zygote: {e.strerror}", 125) from None
        finally:
            theirs.close()
        ours.settimeout(_ZYGOTE_TIMEOUT)
        self._sock = ours
        return ours

    def _drop(self, wait: bool) -> None:
        """Let the zygote go: at EOF it exits (`wait`); a broken one is killed."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        import subprocess
        if not wait:
            proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_line(fd: int, timeout: float) -> bytes | None:
    """One line from `fd` (b"" at EOF without one; None when `timeout` passes first)."""
    data = b""
    import time
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return b""
        data += chunk
    return data.split(b"\n", 1)[0]


def read_pid_file(path: str) -> tuple[int, int] | None:
    """(monitor pid, init pid) from a monitor's pid file; None if it has none (yet)."""
    try:
        with open(path) as f:
            first, second = f.read().split()[:2]
        return int(first), int(second)
    except (OSError, ValueError):
        return None


def read_exit_file(path: str) -> ExitStatus | None:
    """The exit file of a finished run; None while there is none (or it is unreadable)."""
    try:
        with open(path, "rb") as f:
            doc = jsonfast.loads(f.read())
        signal = doc.get("Signal")
        return ExitStatus(exit_code=int(doc["ExitCode"]), finished_at=str(doc["FinishedAt"]),
                          oom_killed=bool(doc.get("OOMKilled", False)),
                          signal=int(signal) if signal is not None else None,
                          restart_count=int(doc.get("RestartCount") or 0),
                          error=str(doc.get("Error") or ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def monitor_alive(pid: int, container_id: str) -> bool:
    """Whether `pid` is a living monitor of `container_id` (not a process that got its
    pid later): its process name is that container's monitor's (`main.comm_name`)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    comm = stat[stat.find(b"(") + 1:stat.rfind(b")")]
    state = stat[stat.rfind(b")") + 1:].split()[:1]
    return state not in ([b"Z"], [b"X"]) and comm == comm_name(container_id).encode()
