"""The monitor: one lean process per running container, from its start to its exit record.

Forked by the zygote (`zygote`, for `launch.MonitorLauncher`) or started as
``python -m skiff.engine.monitor``, with
``--id ID --bundle DIR --runtime-root DIR --log FILE [--log-max-size BYTES]
[--log-max-file N] --exit-file FILE --pid-file FILE --status-fd FD [--monitor-log FILE]
[--terminal 1] [--open-stdin 1] [--attach-socket FILE]``.
The monitor is never skiffd's child and outlives it (the zygote forks it, or `main` forks
it and exits); it names itself (`comm_name`: how the
engine knows it), makes a session of its own, sets its stdio to
/dev/null (stderr to ``--monitor-log`` if given), and becomes a child subreaper. It forks a
helper that creates and starts the container with the runtime library (`startup`), its
stdin /dev/null and its stdout and stderr two pipes, and then exits — so the container's
init becomes the monitor's own child while the runtime's modules never load into the
monitor (they would triple its memory). The monitor writes ``--pid-file`` (its pid, then
init's), then one JSON line on ``--status-fd``: ``{"pid": N}``, or ``{"error": text,
"exit_code": 126|127|125}`` when the container could not start (and then it exits). From
then on it copies the pipes into the json-file log (`logfile`) and waits for init through a
pidfd. When init has exited and the pipes are drained, it writes ``--exit-file`` whole
(``{"ExitCode": n, "FinishedAt": rfc3339nano, "OOMKilled": bool, "Signal": n|null}``,
ExitCode 128+N for death by signal N, OOMKilled from the cgroup's oom_kill count), closes
the log (a follower reading it is woken by that), deletes the runtime container and exits.
It relays no signals: the engine signals the container through the runtime.

With ``--terminal 1`` the container gets a pty (``-t``): the monitor listens on a console
socket in the bundle, the helper's runtime create connects to it and init sends the pty's
master there; the monitor copies the master's output into the log as stdout (with a TTY
Docker has no stderr). Attachers follow the log, so the output of an interactive container
(``-t`` or ``-i``) is logged as it comes, a line's start without its end too (a prompt).
With ``--open-stdin 1`` (``-i``) the container's stdin is a pipe
(or the pty) fed by the monitor. Either serves ``--attach-socket`` (`attach_server`:
stdin, resize, close stdin, in `control`'s frames) while the container runs.

With a restart policy (the bundle's ``restart`` file) the run is followed by others
(`restart.supervise`): each exit then is a line of ``runs.jsonl``, the back-off is waited
out, the runtime container made again and the pid file rewritten, until a run is not
restarted; its exit is the exit file. A health check (the bundle's ``healthcheck``) is
probed from here too (`health`). SIGUSR1 is the engine's word that the policy changed.

Only built-in modules load here (posix, select, time, _ctypes through `kernel.prctl`):
no `os`, no `json`, no `typing`.
"""

from __future__ import annotations

import posix
import select
import time

from skiff.engine.monitor.logfile import LogWriter, go_time, json_string

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import NoReturn

    from skiff.engine.monitor.attach_server import AttachServer

USAGE = ("usage: python -m skiff.engine.monitor --id ID --bundle DIR --runtime-root DIR "
         "--log FILE [--log-max-size BYTES] [--log-max-file N] --exit-file FILE "
         "--pid-file FILE --status-fd FD [--monitor-log FILE] [--terminal 1] "
         "[--open-stdin 1] [--attach-socket FILE]")
_CONSOLE_TIMEOUT = 10.0  # how long init may take to send its pty master
_DRAIN_MS = 1000  # after init's exit: how long the pipes may stay silent before we stop
_DRAIN_MAX_NS = 5_000_000_000  # ... and how long draining may go on at most


class Options:
    """The command line, checked."""

    STRINGS = ("id", "bundle", "runtime_root", "log", "exit_file", "pid_file", "monitor_log",
               "attach_socket")
    NUMBERS = ("log_max_size", "log_max_file", "status_fd", "terminal", "open_stdin")
    REQUIRED = ("id", "bundle", "runtime_root", "log", "exit_file", "pid_file", "status_fd")

    def __init__(self) -> None:
        self.id = ""
        self.bundle = ""
        self.runtime_root = ""
        self.log = ""
        self.exit_file = ""
        self.pid_file = ""
        self.monitor_log = ""
        self.log_max_size = -1
        self.log_max_file = 1
        self.status_fd = -1
        self.terminal = 0
        self.open_stdin = 0
        self.attach_socket = ""


def parse_args(argv: list[str]) -> Options:
    """`--name value` or `--name=value` for each option; ValueError names what is wrong."""
    opts = Options()
    seen = set()
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        key = name[2:].replace("-", "_")
        if not name.startswith("--") or key not in Options.STRINGS + Options.NUMBERS:
            raise ValueError(f"unknown argument {argv[i]!r}")
        if not eq:
            i += 1
            if i == len(argv):
                raise ValueError(f"{name} needs a value")
            value = argv[i]
        if key in Options.NUMBERS:
            try:
                setattr(opts, key, int(value))
            except ValueError:
                raise ValueError(f"{name}: not a number: {value!r}") from None
        else:
            setattr(opts, key, value)
        seen.add(key)
        i += 1
    missing = [f"--{k.replace('_', '-')}" for k in Options.REQUIRED if k not in seen]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if (opts.terminal or opts.open_stdin) and not opts.attach_socket:
        raise ValueError("--terminal and --open-stdin need --attach-socket")
    return opts


class StartFailed(Exception):
    """The container did not start: Docker's text, and the exit code `run` gives for it."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[posix.write(fd, view):]


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    """`data` as the whole of `path` or not at all: a new file renamed over the old."""
    tmp = f"{path}.{posix.getpid()}.tmp"
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_NOFOLLOW
                    | posix.O_CLOEXEC, mode)
    try:
        write_all(fd, data)
    finally:
        posix.close(fd)
    posix.rename(tmp, path)


def exit_record(status: int, finished_ns: int, oom_killed: bool, more: str = "") -> bytes:
    """The exit file's JSON for a wait status, with Docker's exit code rules; `more`:
    further members (``, "Key": value`` …)."""
    if posix.WIFSIGNALED(status):
        sig = posix.WTERMSIG(status)
        code, signal = 128 + sig, str(sig)
    else:
        code, signal = posix.WEXITSTATUS(status), "null"
    return (f'{{"ExitCode": {code}, "FinishedAt": "{go_time(finished_ns)}", '
            f'"OOMKilled": {"true" if oom_killed else "false"}, "Signal": {signal}{more}}}\n'
            ).encode()


def oom_kills(path: str) -> int:
    """The `oom_kill` count of a cgroup's memory.oom_control (v1) or memory.events (v2)."""
    if not path:
        return 0
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return 0
    try:
        text = posix.read(fd, 4096).decode("ascii", "replace")
    finally:
        posix.close(fd)
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def comm_name(container_id: str) -> str:
    """A monitor's process name (comm, 15 bytes at most): how the engine tells the monitor
    of a container from a process that got its pid later, whether it was forked from the
    zygote (whose command line every such monitor shares) or started on its own."""
    return f"skmon-{container_id[:9]}"


def set_comm(name: str) -> None:
    """Our process name, as ``ps`` and /proc/PID/stat show it (no capability needed)."""
    try:
        fd = posix.open("/proc/self/comm", posix.O_WRONLY | posix.O_CLOEXEC)
    except OSError:
        return
    try:
        posix.write(fd, name.encode()[:15])
    except OSError:
        pass
    finally:
        posix.close(fd)


def complain(text: str) -> None:
    """A problem of the monitor's own, on its stderr (``--monitor-log``, or nowhere)."""
    try:
        write_all(2, f"skiff monitor: {text}\n".encode("utf-8", "replace"))
    except OSError:
        pass


class _ChildWatch:
    """An fd that turns readable when init exits: its pidfd, or (on kernels without
    pidfds) a pipe SIGCHLD writes to."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.wakeup = -1
        try:
            self.fd = posix.pidfd_open(pid)
        except OSError:
            import _signal
            r, w = posix.pipe()
            posix.set_blocking(w, False)
            _signal.set_wakeup_fd(w)
            _signal.signal(_signal.SIGCHLD, lambda *_: None)
            self.fd, self.wakeup = r, w

    def reap(self) -> int | None:
        """Reap what has exited (orphans passed to us too); init's wait status if it did."""
        if self.wakeup >= 0:
            posix.set_blocking(self.fd, False)
            try:
                posix.read(self.fd, 512)
            except BlockingIOError:
                pass
        found = None
        while True:
            try:
                pid, status = posix.waitpid(-1, posix.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == self.pid:
                found = status
        return found

    def close(self) -> None:
        for fd in (self.fd, self.wakeup):
            if fd >= 0:
                posix.close(fd)
        self.fd = self.wakeup = -1


class Monitor:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.log: LogWriter | None = None
        self.init_pid = 0
        self.oom_file = ""
        self.streams: dict[int, str] = {}
        self.poller = select.poll()
        self.attach: AttachServer | None = None

    def launch(self) -> int:
        """Detached and quiet, start the container; init's pid, or StartFailed."""
        opts = self.opts
        quiet_stdio(opts.monitor_log)
        posix.chdir("/")  # hold no folder of skiffd's busy
        from skiff.kernel.prctl import set_child_subreaper
        set_child_subreaper()  # before the helper forks: its orphans must come to us
        try:
            posix.unlink(opts.exit_file)  # a previous run's
        except FileNotFoundError:
            pass
        try:
            self.log = LogWriter(opts.log, opts.log_max_size, opts.log_max_file)
        except OSError as e:
            raise StartFailed(f"open the log file {opts.log}: {e.strerror}", 125) from None
        return self.start_run()

    def start_run(self) -> int:
        """Create and start the container (through the helper); init's pid, or
        StartFailed. Each run of a restarting container comes through here."""
        opts = self.opts
        assert self.log is not None
        # with a TTY, init's stdio is the pty: the pipes would only carry the runtime's
        # hooks' output into the log, so there are none
        out_r, out_w = posix.pipe() if not opts.terminal else (-1, -1)
        err_r, err_w = posix.pipe() if not opts.terminal else (-1, -1)
        in_r, in_w = posix.pipe() if opts.open_stdin and not opts.terminal else (-1, -1)
        res_r, res_w = posix.pipe()
        console = None
        console_path = console_name = ""
        console_folder = -1
        if opts.terminal:
            from skiff.engine.monitor.attach_server import listen, short_name
            console_path = opts.bundle.rstrip("/") + "/console.sock"
            console = listen(console_path)
            console_name, console_folder = short_name(console_path)  # for the helper
        helper = posix.fork()
        if helper == 0:
            from skiff.engine.monitor.startup import helper_main
            ours = (out_r, err_r, in_w, res_r, self.log.fd,
                    console.fileno() if console is not None else -1)
            helper_main(opts.id, opts.bundle, opts.runtime_root, ours, out_w, err_w, res_w,
                        stdin_r=in_r, console_socket=console_name)
        for fd in (out_w, err_w, in_r, res_w):
            if fd >= 0:
                posix.close(fd)
        try:
            answer = read_answer(res_r)
        finally:
            posix.close(res_r)
            posix.waitpid(helper, 0)  # once it is gone, init is our child
            if console_folder >= 0:
                posix.close(console_folder)
        if answer[0] != "ok":
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    posix.close(fd)
            if console is not None:
                console.close()
                posix.unlink(console_path)
            raise StartFailed(answer[2], int(answer[1]))
        self.init_pid = int(answer[1])
        self.oom_file = answer[2]
        self.streams = {fd: name for fd, name in ((out_r, "stdout"), (err_r, "stderr"))
                        if fd >= 0}
        master = -1
        if console is not None:
            try:
                from skiff.engine.monitor.attach_server import receive_master
                master = receive_master(console, _CONSOLE_TIMEOUT)
            except OSError as e:
                self.abort()
                raise StartFailed(f"receive the container's pty master: {e}", 125) from None
            finally:
                console.close()
                posix.unlink(console_path)
            self.streams[master] = "stdout"  # Docker's TTY output is all stdout
            if opts.open_stdin:
                in_w = posix.dup(master)  # its own fd: polled for room apart from output
                posix.set_inheritable(in_w, False)
        if opts.attach_socket:
            from skiff.engine.monitor.attach_server import AttachServer
            self.attach = AttachServer(opts.attach_socket, self.poller, in_w, master)
        return self.init_pid

    def run(self) -> tuple[int, int]:
        """Copy the output into the log until init has exited and the pipes are drained;
        init's wait status and when it ended (ns)."""
        log = self.log
        assert log is not None
        poller, attach = self.poller, self.attach
        for fd in self.streams:
            poller.register(fd, select.POLLIN)
        child = _ChildWatch(self.init_pid)
        poller.register(child.fd, select.POLLIN)
        status = child.reap() if child.wakeup >= 0 else None  # SIGCHLD may have come early
        finished = time.time_ns() if status is not None else 0
        while self.streams or status is None:
            if status is None:
                events = poller.poll()
            else:
                left = finished + _DRAIN_MAX_NS - time.time_ns()
                events = poller.poll(min(_DRAIN_MS, max(0, left // 1_000_000)))
                if not events:
                    break  # something outside init's namespace holds the pipes
            for fd, _ in events:
                if fd == child.fd:
                    status = child.reap()
                    if status is not None:
                        finished = time.time_ns()
                        poller.unregister(fd)
                    continue
                if attach is not None and attach.owns(fd):
                    attach.handle(fd)
                    continue
                stream = self.streams.get(fd)
                if stream is None:
                    # an fd an earlier event of this poll closed: the stdin, when an
                    # attacher's close frame came with the room to write the rest
                    continue
                try:
                    data = posix.read(fd, 65536)
                except OSError:
                    data = b""
                if data:
                    log.feed(stream, data)
                    if attach is not None:
                        # interactive: attachers read the log, and a prompt has no newline
                        log.flush(stream)
                else:
                    log.flush(self.streams.pop(fd))
                    poller.unregister(fd)
                    posix.close(fd)
        child.close()
        assert status is not None
        if attach is not None:
            attach.close()
        for fd, stream in self.streams.items():
            log.flush(stream)
            posix.close(fd)
        self.streams = {}
        if log.error is not None:
            complain(f"{log.dropped} log writes failed: {log.error}")
        return status, finished

    def finish(self, record: bytes) -> None:
        """The last run is over: the exit file, and the runtime container goes."""
        try:
            write_atomic(self.opts.exit_file, record)
        except OSError as e:
            complain(f"write {self.opts.exit_file}: {e.strerror}")
        if self.log is not None:
            self.log.close()  # after the exit file: a follower woken finds it stopped
        self.delete()

    def abort(self) -> None:
        """The container started but the monitor cannot go on: end it, leave nothing."""
        try:
            posix.kill(self.init_pid, 9)
            posix.waitpid(self.init_pid, 0)
        except OSError:
            pass
        self.delete()

    def delete(self) -> None:
        try:
            from skiff.runtime.delete import delete
            from skiff.runtime.state import StateStore
            delete(StateStore(self.opts.runtime_root), self.opts.id, force=True)
        except Exception as e:  # noqa: BLE001 - nobody is left to tell but our own log
            complain(f"delete the runtime container {self.opts.id}: {e}")


def quiet_stdio(monitor_log: str) -> None:
    null = posix.open("/dev/null", posix.O_RDWR)
    posix.dup2(null, 0)
    posix.dup2(null, 1)
    err = null
    if monitor_log:
        try:
            err = posix.open(monitor_log, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT
                             | posix.O_CLOEXEC, 0o600)
        except OSError:
            err = null
    posix.dup2(err, 2)
    posix.close(null)
    if err != null:
        posix.close(err)


def read_answer(fd: int) -> tuple[str, str, str]:
    """The helper's one answer: ``ok PID OOMFILE`` or ``err CODE LENGTH`` + the message."""
    data = b""
    while True:
        head, nl, rest = data.partition(b"\n")
        if nl:
            kind, _, tail = head.decode("utf-8", "replace").partition(" ")
            first, _, second = tail.partition(" ")
            if kind == "ok":
                return ("ok", first, second)
            if kind == "err" and len(rest) >= int(second):
                return ("err", first, rest[:int(second)].decode("utf-8", "replace"))
        chunk = posix.read(fd, 65536)
        if not chunk:
            return ("err", "125", "monitor: the container's start ended without an answer")
        data += chunk


def report(fd: int, line: str) -> None:
    """The one status line to whoever started us (they may be gone: no matter)."""
    try:
        write_all(fd, (line + "\n").encode())
    except OSError:
        pass
    try:
        posix.close(fd)
    except OSError:
        pass


def checked_args(argv: list[str]) -> Options:
    """`parse_args`, and the status fd made ours alone (a bad fd number fails here)."""
    opts = parse_args(argv)
    try:
        posix.set_inheritable(opts.status_fd, False)
    except OSError as e:
        raise ValueError(f"--status-fd {opts.status_fd}: {e.strerror}") from None
    return opts


def main(argv: list[str]) -> NoReturn:
    """``python -m skiff.engine.monitor``: the monitor in a child of its own, so that it
    is nobody's child in the process that started it."""
    try:
        opts = checked_args(argv)
    except ValueError as e:
        posix.write(2, f"skiff monitor: {e}\n{USAGE}\n".encode())
        posix._exit(2)
    if posix.fork() != 0:
        posix._exit(0)  # the caller waits for this one only; the monitor goes on in the child
    monitor_main(opts)


def monitor_main(opts: Options) -> NoReturn:
    """The monitor's whole life, in the process that is to be it (the zygote's child, or
    `main`'s): start the container, report on the status fd, supervise, exit."""
    posix.setsid()
    set_comm(comm_name(opts.id))
    from skiff.engine.monitor.restart import Wakeup, supervise
    wakeup = Wakeup()  # before anyone knows our pid: SIGUSR1 must never end us
    monitor = Monitor(opts)
    try:
        pid = monitor.launch()
    except StartFailed as e:
        report(opts.status_fd, f'{{"error": {json_string(e.message)}, "exit_code": {e.exit_code}}}')
        posix._exit(1)
    except BaseException as e:  # noqa: BLE001 - a bug of ours: say it to skiffd, and go
        report(opts.status_fd, f'{{"error": {json_string(f"monitor: {type(e).__name__}: {e}")}, '
                               f'"exit_code": 125}}')
        posix._exit(1)
    try:
        write_atomic(opts.pid_file, f"{posix.getpid()}\n{pid}\n".encode())
    except OSError as e:
        monitor.abort()
        report(opts.status_fd, f'{{"error": {json_string(f"write {opts.pid_file}: {e.strerror}")}, '
                               f'"exit_code": 125}}')
        posix._exit(1)
    report(opts.status_fd, f'{{"pid": {pid}}}')
    try:
        supervise(monitor, wakeup)
    except BaseException as e:  # noqa: BLE001
        complain(f"{type(e).__name__}: {e}")
        posix._exit(1)
    posix._exit(0)
