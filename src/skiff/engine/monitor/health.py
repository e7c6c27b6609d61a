"""The monitor's health checks: a prober process per run that execs the probe into the
container every interval and keeps Docker's Health object in the bundle's ``health.json``.

`start_prober` forks the prober from the monitor when the bundle has a ``healthcheck``
file (``INTERVAL_NS TIMEOUT_NS RETRIES START_PERIOD_NS``, a newline, the probe's argv
NUL-separated: `engine.supervision.write_healthcheck`); `stop_prober` ends it with the run.
The prober, a copy of the lean monitor that dies with it (PR_SET_PDEATHSIG), waits an
interval, then forks a helper that runs the probe with the runtime library's exec (so the
runtime's modules load only in that short-lived helper) and reads the first 4096 bytes of
its output. moby's rules (daemon/health.go): status ``starting`` until the first success
(``healthy``); a failure adds to the failing streak — not while ``starting`` within the
start period — and ``Retries`` of them in a row make it ``unhealthy``; a probe running
past the timeout is killed and is a failure with exit code -1 and ``Health check exceeded
timeout (30s)``; the log keeps the last 5 results. `HealthState` is that state machine,
free of processes, for the prober and for tests. Built-in modules only.
"""

from __future__ import annotations

import posix
import time

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time

MAX_OUTPUT = 4096  # moby's maxOutputLen
MAX_LOG = 5  # maxLogEntries
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9


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
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError:
            return None
        try:
            data = b""
            while True:
                chunk = posix.read(fd, 65536)
                if not chunk:
                    break
                data += chunk
        finally:
            posix.close(fd)
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
        self.log: list[tuple[int, int, int, bytes]] = []  # start, end, exit code, output
        self.retries = retries
        self.start_period_ns = start_period_ns
        self.started_ns = started_ns

    def record(self, start_ns: int, end_ns: int, exit_code: int, output: bytes) -> bool:
        """One probe's result; True when the status changed."""
        old = self.status
        self.log = (self.log + [(start_ns, end_ns, exit_code, output[:MAX_OUTPUT])])[-MAX_LOG:]
        if exit_code == 0:
            self.streak = 0
            self.status = "healthy"
        elif not (self.status == "starting"
                  and start_ns - self.started_ns < self.start_period_ns):
            self.streak += 1
            if self.streak >= self.retries:
                self.status = "unhealthy"
        return self.status != old

    def json(self) -> bytes:
        from skiff.engine.monitor.logfile import go_time, json_string
        entries = ", ".join(
            f'{{"Start": "{go_time(s)}", "End": "{go_time(e)}", "ExitCode": {c}, '
            f'"Output": {json_string(o)}}}' for s, e, c, o in self.log)
        return (f'{{"Status": "{self.status}", "FailingStreak": {self.streak}, '
                f'"Log": [{entries}]}}\n').encode()


def start_prober(container_id: str, bundle: str, runtime_root: str, started_ns: int) -> int:
    """Fork the prober of this run (0 when the container has no health check)."""
    probe = Probe.read(f"{bundle}/healthcheck")
    if probe is None:
        return 0
    state = HealthState(probe.retries, probe.start_period_ns, started_ns)
    _write(f"{bundle}/health.json", state.json())
    pid = posix.fork()
    if pid != 0:
        return pid
    try:
        from skiff.kernel.prctl import prctl
        prctl(_PR_SET_PDEATHSIG, _SIGKILL)
        _probe_forever(container_id, bundle, runtime_root, probe, state)
    finally:
        posix._exit(0)


def stop_prober(pid: int) -> None:
    if pid <= 0:
        return
    try:
        posix.kill(pid, _SIGKILL)
        posix.waitpid(pid, 0)
    except (OSError, ChildProcessError):
        pass  # reaped already with the run's orphans


def _write(path: str, data: bytes) -> None:
    from skiff.engine.monitor.main import complain, write_atomic
    try:
        write_atomic(path, data)
    except OSError as e:
        complain(f"write {path}: {e.strerror}")


def _probe_forever(container_id: str, bundle: str, runtime_root: str, probe: Probe,
                   state: HealthState) -> None:
    path = f"{bundle}/health.json"
    while True:
        time.sleep(probe.interval_ns / 1e9)
        start = time.time_ns()
        code, output = run_probe(container_id, bundle, runtime_root, probe)
        state.record(start, time.time_ns(), code, output)
        _write(path, state.json())


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
    return code, output


_HELPER_FAILED = 254  # the helper's own failure (the probe's 254 reads as a failure too)


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
        from skiff.runtime.exec import ExecOptions, exec_process
        from skiff.runtime.state import StateStore
        code = exec_process(StateStore(runtime_root), container_id,
                            ExecOptions(args=tuple(argv), pid_file=pid_file)) & 0xFF
        if code == _HELPER_FAILED:
            code = 1
    except BaseException as e:  # noqa: BLE001 - every failure is the probe's result
        try:
            posix.write(1, f"{e}".encode("utf-8", "replace"))
        except OSError:
            pass
    posix._exit(code)
