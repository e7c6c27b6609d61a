"""The monitor's health checks: the probe exec'd into the container every interval, and
Docker's Health object kept in the bundle's ``health.json``.

`start_prober` reads the bundle's ``healthcheck`` file (``INTERVAL_NS TIMEOUT_NS RETRIES
START_PERIOD_NS``, a newline, the probe's argv NUL-separated:
`engine.supervision.write_healthcheck`) and schedules the probes (`Prober`) from the
monitor itself, by signals, so nothing runs between probes. Each probe is a forked helper
that forks once more to run the probe with the runtime library's exec (the runtime's
modules load only there) and reads the first 4096 bytes of its output. moby's rules
(daemon/health.go): status ``starting`` until the first success (``healthy``); a failure
adds to the failing streak — not while ``starting`` within the start period — and
``Retries`` of them in a row make it ``unhealthy``; a probe running past the timeout is
killed and is a failure with exit code -1 and ``Health check exceeded timeout (30s)``; the
log keeps the last 5 results; a paused container is not probed. `HealthState` is that state
machine, free of processes, for the helpers and for tests. Built-in modules only, but in the
helpers.
"""

from __future__ import annotations

import posix
import time

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_OUTPUT = 4096  # moby's maxOutputLen
MAX_LOG = 5  # maxLogEntries
_GRACE_S = 5  # past its timeout, a probe helper is taken for lost
_SIGKILL = 9
_SIGUSR2 = 12
_SIGALRM = 14


class Probe:
    """The healthcheck file: what to run and how often."""

    def __init__(self, interval_ns: int, timeout_ns: int, retries: int, start_period_ns: int,
                 argv: list[str]) -> None:
        self.interval_ns = interval_ns
        self.timeout_ns = timeout_ns
        self.retries = retries
        self.start_period_ns = start_period_ns
        self.argv = argv

    @classmethod
    def read(cls, path: str) -> Probe | None:
        data = _read_all(path)
        if data is None:
            return None
        head, _, tail = data.partition(b"\n")
        try:
            interval, timeout, retries, start = (int(w) for w in head.split())
        except ValueError:
            return None
        argv = tail.decode("utf-8", "surrogateescape").split("\0")
        return cls(interval, timeout, retries, start, argv) if tail else None


def go_duration(ns: int) -> str:
    """Go's time.Duration.String for the durations a healthcheck has: 30s, 1.5s, 500ms,
    1m0s."""
    if ns < 1_000_000_000:
        if ns % 1_000_000 == 0:
            return f"{ns // 1_000_000}ms"
        return f"{ns / 1_000_000:g}ms"
    minutes, rest = divmod(ns, 60_000_000_000)
    hours, minutes = divmod(minutes, 60)
    seconds = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    return f"{minutes}m{seconds}" if minutes else seconds


class HealthState:
    """Docker's Health: Status, FailingStreak, Log (moby's handleProbeResult)."""

    def __init__(self, retries: int, start_period_ns: int, started_ns: int) -> None:
        self.status = "starting"
        self.streak = 0
        self.log: list[tuple[str, str, int, bytes]] = []  # start, end, exit code, output
        self.retries = retries
        self.start_period_ns = start_period_ns
        self.started_ns = started_ns

    def record(self, start_ns: int, end_ns: int, exit_code: int, output: bytes) -> bool:
        """One probe's result; True when the status changed."""
        from skiff.engine.monitor.logfile import go_time
        old = self.status
        entry = (go_time(start_ns), go_time(end_ns), exit_code, output[:MAX_OUTPUT])
        self.log = (self.log + [entry])[-MAX_LOG:]
        if exit_code == 0:
            self.streak = 0
            self.status = "healthy"
        elif not (self.status == "starting"
                  and start_ns - self.started_ns < self.start_period_ns):
            self.streak += 1
            if self.streak >= self.retries:
                self.status = "unhealthy"
        return self.status != old

    def load(self, path: str) -> None:
        """(In a probe helper, which may load anything) the state as the last probe left
        it in `path`."""
        import json
        try:
            with open(path, "rb") as f:
                doc = json.load(f)
            self.status = str(doc["Status"])
            self.streak = int(doc["FailingStreak"])
            self.log = [(str(e["Start"]), str(e["End"]), int(e["ExitCode"]),
                         str(e["Output"]).encode()) for e in doc.get("Log") or []]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # as it is in memory: the state at the run's start

    def json(self, log: bytes = b"") -> bytes:
        """Docker's Health object; `log`: its Log as JSON text already (a previous run's,
        which a restart keeps, as moby's)."""
        from skiff.engine.monitor.logfile import json_string
        entries = ", ".join(
            f'{{"Start": "{s}", "End": "{e}", "ExitCode": {c}, '
            f'"Output": {json_string(o)}}}' for s, e, c, o in self.log)
        head = f'{{"Status": "{self.status}", "FailingStreak": {self.streak}, "Log": '.encode()
        return head + (log or f"[{entries}]".encode()) + b"}\n"


class Prober:
    """The run's probes, scheduled from the monitor itself by signals, so a health check
    costs no process between probes: a one-shot SIGALRM timer forks a probe helper; the
    helper runs the probe (`probe_once`), writes the new state, and tells the monitor with
    SIGUSR2 that it is done, whose handler reaps it and sets the timer for the next
    interval (moby waits the interval from one probe's end to the next one's start). A
    timer that fires while a helper still runs (past its timeout by `_GRACE_S`) ends it."""

    def __init__(self, container_id: str, bundle: str, runtime_root: str, probe: Probe,
                 started_ns: int, drain: Callable[[], None]) -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.runtime_root = runtime_root
        self.probe = probe
        self.state = HealthState(probe.retries, probe.start_period_ns, started_ns)
        self.drain = drain
        self.helper = 0

    def start(self) -> None:
        import _signal
        path = f"{self.bundle}/health.json"
        _write(path, self.state.json(_kept_log(path)))
        _signal.signal(_SIGALRM, self._tick)
        _signal.signal(_SIGUSR2, self._done)
        self._arm(self.probe.interval_ns)

    def stop(self) -> None:
        import _signal
        _signal.setitimer(_signal.ITIMER_REAL, 0)
        self._end_helper()

    def _arm(self, ns: int) -> None:
        import _signal
        _signal.setitimer(_signal.ITIMER_REAL, max(ns, 1000) / 1e9)

    def _end_helper(self) -> None:
        if self.helper:
            try:
                posix.kill(self.helper, _SIGKILL)
                posix.waitpid(self.helper, 0)
            except (OSError, ChildProcessError):
                pass  # gone, and reaped with the run's orphans
            self.helper = 0

    def _tick(self, signum: int, frame: object) -> None:
        self.drain()
        self._end_helper()  # still there: it overran its own timeout
        monitor = posix.getpid()
        try:
            pid = posix.fork()
        except OSError as e:  # a handler's exception would end the monitor's loop
            from skiff.engine.monitor.main import complain
            complain(f"health check: fork: {e.strerror}")
            self._arm(self.probe.interval_ns)
            return
        if pid == 0:
            code = 1
            try:
                self.probe_once()
                code = 0
            finally:
                try:
                    if posix.getppid() == monitor:  # (not whoever took us in)
                        posix.kill(monitor, _SIGUSR2)
                finally:
                    posix._exit(code)
        self.helper = pid
        self._arm(self.probe.timeout_ns + _GRACE_S * 1_000_000_000)

    def _done(self, signum: int, frame: object) -> None:
        self.drain()
        if not self.helper:
            return
        try:
            posix.waitpid(self.helper, 0)
        except ChildProcessError:
            pass
        self.helper = 0
        self._arm(self.probe.interval_ns)

    def probe_once(self) -> None:
        """(In the helper) one probe, its result added to the state in health.json."""
        path = f"{self.bundle}/health.json"
        self.state.load(path)
        start = time.time_ns()
        code, output = run_probe(self.container_id, self.bundle, self.runtime_root, self.probe)
        if code == _PAUSED:
            return  # moby probes only containers that run and are not paused
        self.state.record(start, time.time_ns(), code, output)
        _write(path, self.state.json())


def _read_all(path: str) -> bytes | None:
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = b""
        while True:
            chunk = posix.read(fd, 65536)
            if not chunk:
                return data
            data += chunk
    finally:
        posix.close(fd)


def _kept_log(path: str) -> bytes:
    """The Log array of the health file a previous run left (b"" when there is none): the
    file is ours, so its Log is what follows its ``"Log": `` up to the closing brace."""
    _, found, log = (_read_all(path) or b"").partition(b'"Log": ')
    log = log.rstrip().removesuffix(b"}")
    return log if found and log.startswith(b"[") and log.endswith(b"]") else b""


def start_prober(container_id: str, bundle: str, runtime_root: str, started_ns: int,
                 drain: Callable[[], None]) -> Prober | None:
    """The probes of this run (None when the container has no health check)."""
    probe = Probe.read(f"{bundle}/healthcheck")
    if probe is None:
        return None
    prober = Prober(container_id, bundle, runtime_root, probe, started_ns, drain)
    prober.start()
    return prober


def _write(path: str, data: bytes) -> None:
    from skiff.engine.monitor.main import complain, write_atomic
    try:
        write_atomic(path, data)
    except OSError as e:
        complain(f"write {path}: {e.strerror}")


def run_probe(container_id: str, bundle: str, runtime_root: str,
              probe: Probe) -> tuple[int, bytes]:
    """One probe: its exit code and the start of its output (-1 and moby's text when it
    ran past the timeout or could not be started)."""
    import select
    out_r, out_w = posix.pipe()
    pid_file = f"{bundle}/probe.pid"
    helper = posix.fork()
    if helper == 0:
        posix.close(out_r)
        _helper(container_id, runtime_root, probe.argv, out_w, pid_file)
    posix.close(out_w)
    deadline = time.monotonic_ns() + probe.timeout_ns
    output = b""
    poller = select.poll()
    poller.register(out_r, select.POLLIN)
    timed_out = False
    try:
        while True:
            left = deadline - time.monotonic_ns()
            if left <= 0:
                timed_out = True
                break
            if not poller.poll(max(1, left // 1_000_000)):
                continue
            chunk = posix.read(out_r, 65536)
            if not chunk:
                break
            if len(output) < MAX_OUTPUT + 64:
                output += chunk
    finally:
        posix.close(out_r)
    if timed_out:
        _kill_probe(pid_file)
        try:
            posix.kill(helper, _SIGKILL)
        except OSError:
            pass
        posix.waitpid(helper, 0)
        return -1, f"Health check exceeded timeout ({go_duration(probe.timeout_ns)})".encode()
    _, status = posix.waitpid(helper, 0)
    code = posix.WEXITSTATUS(status) if posix.WIFEXITED(status) else 1
    if code == _HELPER_FAILED:
        return -1, output  # the exec could not be made: its error is the output
    if code == _PAUSED_EXIT:
        return _PAUSED, b""
    return code, output


_HELPER_FAILED = 254  # the helper's own failure (a probe's own 254 reads as 1)
_PAUSED_EXIT = 253  # the container is paused: no probe (a probe's own 253 reads as 1)
_PAUSED = -2


def _kill_probe(pid_file: str) -> None:
    try:
        fd = posix.open(pid_file, posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            pid = int(posix.read(fd, 64).split()[0])
        finally:
            posix.close(fd)
        posix.kill(pid, _SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


def _helper(container_id: str, runtime_root: str, argv: list[str], out_w: int,
            pid_file: str) -> None:
    """The forked helper's life: the probe through the runtime's exec, its exit code ours."""
    code = _HELPER_FAILED
    try:
        null = posix.open("/dev/null", posix.O_RDWR)
        posix.dup2(null, 0)
        posix.dup2(out_w, 1)
        posix.dup2(out_w, 2)
        posix.close(null)
        posix.close(out_w)
        from skiff.runtime.container import open_container
        from skiff.runtime.exec import ExecOptions, exec_process
        from skiff.runtime.state import StateStore
        store = StateStore(runtime_root)
        if open_container(store, container_id).status() == "paused":
            posix._exit(_PAUSED_EXIT)
        code = exec_process(store, container_id,
                            ExecOptions(args=tuple(argv), pid_file=pid_file)) & 0xFF
        if code in (_HELPER_FAILED, _PAUSED_EXIT):
            code = 1
    except BaseException as e:  # noqa: BLE001 - every failure is the probe's result
        try:
            posix.write(1, f"{e}".encode("utf-8", "replace"))
        except OSError:
            pass
    posix._exit(code)
