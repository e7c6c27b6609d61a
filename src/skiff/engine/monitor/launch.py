"""The engine's side of a monitor: start one, and read the files it leaves.

`start_monitor` spawns the monitor for one container and returns its init's pid once the
program runs, or raises `ContainerStartError` with Docker's text and exit code (126, 127,
125). The monitor runs as ``python -S -I -c <boot> <src> --id ID ...``: the boot line
registers the `skiff` and `skiff.engine` packages by path without running their
``__init__`` (which load `os` and more), so the monitor process holds only what it uses
(``python -m skiff.engine.monitor`` runs the same code, at ~1 MB more). `read_pid_file`,
`read_exit_file` and `monitor_alive` are what reconciling after a restart needs.
"""

from __future__ import annotations

import os
import select
import sys

from skiff import jsonfast
from skiff.errors import ContainerStartError
from skiff.record import Record

# argv: [python, -S, -I, -c, BOOT, <src dir>, --id, ...]; `-I` ignores PYTHON* variables and
# keeps the working folder off sys.path, so the src dir comes as an argument
BOOT = ("import sys;src=sys.argv.pop(1);M=type(sys)\n"
        "for name in ('skiff','skiff.engine'):\n"
        " m=M(name);m.__path__=[src+'/'+name.replace('.','/')];sys.modules[name]=m\n"
        "from skiff.engine.monitor.main import main;main(sys.argv[1:])")
MARK = "skiff.engine.monitor"  # in the boot line, so /proc/PID/cmdline tells a monitor


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


def monitor_command(container_id: str, *, bundle: str, runtime_root: str, log_path: str,
                    exit_file: str, pid_file: str, status_fd: int, log_max_size: int = -1,
                    log_max_file: int = 1, monitor_log: str | None = None,
                    stdio: Stdio | None = None) -> list[str]:
    argv = [sys.executable, "-S", "-I", "-c", BOOT, src_dir(),
            "--id", container_id, "--bundle", bundle, "--runtime-root", runtime_root,
            "--log", log_path, "--exit-file", exit_file, "--pid-file", pid_file,
            "--status-fd", str(status_fd)]
    if log_max_size > 0:
        argv += ["--log-max-size", str(log_max_size), "--log-max-file", str(max(1, log_max_file))]
    if monitor_log:
        argv += ["--monitor-log", monitor_log]
    if stdio is not None and (stdio.terminal or stdio.open_stdin):
        argv += ["--terminal", str(int(stdio.terminal)), "--open-stdin",
                 str(int(stdio.open_stdin)), "--attach-socket", stdio.attach_socket]
    return argv


def start_monitor(container_id: str, *, bundle: str, runtime_root: str, log_path: str,
                  exit_file: str, pid_file: str, log_max_size: int = -1, log_max_file: int = 1,
                  monitor_log: str | None = None, timeout: float = 60.0,
                  stdio: Stdio | None = None) -> int:
    """Start the container of `bundle` under a new monitor; init's pid once it runs.

    The monitor outlives the caller (it is not the caller's child: the process spawned
    here forks it and exits, and is reaped here). `log_max_size` > 0 turns on rotation
    (`log_max_file` files kept, as ``--log-opt max-size/max-file``). `monitor_log`: where
    the monitor's own complaints go (default: nowhere). `stdio`: a TTY, an open stdin and
    where the monitor serves attachers (default: neither, stdin /dev/null). Raises `ContainerStartError` —
    the container did not start, and nothing of it is left — with Docker's message and
    the exit code `docker run` gives (126, 127; 125 for the rest, the monitor's own
    failures included).
    """
    import subprocess
    r, w = os.pipe()
    try:
        argv = monitor_command(container_id, bundle=bundle, runtime_root=runtime_root,
                               log_path=log_path, exit_file=exit_file, pid_file=pid_file,
                               status_fd=w, log_max_size=log_max_size,
                               log_max_file=log_max_file, monitor_log=monitor_log,
                               stdio=stdio)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, pass_fds=(w,), cwd="/",
                                    start_new_session=True)
        except OSError as e:
            raise ContainerStartError(f"start the monitor: {e.strerror}", 125) from None
        finally:
            os.close(w)
        line = _read_line(r, timeout)
    finally:
        os.close(r)
    try:
        _, err = proc.communicate(timeout=10)  # it forked the monitor and exited at once
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    if line is None:
        raise ContainerStartError(f"the monitor of {container_id} did not report within "
                                  f"{timeout:g} s", 125)
    if not line:
        why = err.decode("utf-8", "replace").strip() or f"exit status {proc.returncode}"
        raise ContainerStartError(f"the monitor of {container_id} failed: {why}", 125)
    try:
        doc = jsonfast.loads(line)
        if "pid" in doc:
            return int(doc["pid"])
        message, code = str(doc["error"]), int(doc.get("exit_code", 125))
    except (ValueError, KeyError, TypeError):
        raise ContainerStartError(f"the monitor of {container_id} said {line!r}", 125) from None
    raise ContainerStartError(message, code)


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
    pid later): its command line is a monitor's, for that id."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    if state in (b"Z", b"X"):
        return False
    boot = any(MARK.encode() in a for a in argv[:6])
    try:
        return boot and argv[argv.index(b"--id") + 1] == container_id.encode()
    except (ValueError, IndexError):
        return False
