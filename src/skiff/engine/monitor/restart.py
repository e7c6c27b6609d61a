"""The monitor's restart policy: whether a run that ended is followed by another, and after
how long — moby's restartmanager, applied in the monitor so it holds while skiffd is away.

The engine writes the policy to the bundle's ``restart`` file (``NAME MAX CANCELLED
STOPPED``, see `engine.supervision`) and rewrites it when a user stops or kills the
container or updates its policy; `Policy.read` reads it fresh at every exit. `Backoff` is
restartmanager.ShouldRestart: the delay starts at 100 ms and doubles up to a minute, back
to 100 ms after a run of 10 s or more; ``always`` restarts on any exit, ``unless-stopped``
too unless the user stopped the container, ``on-failure[:N]`` on a non-zero exit while
fewer than N restarts were made (N 0: no limit); a cancelled policy (moby's ExitOnNext,
after a stop) never restarts. The monitor waits out the delay on a pipe that SIGUSR1
writes to (`Wakeup`), so the engine can end a back-off at once by rewriting the file and
poking the monitor. Built-in modules only, as the rest of the monitor.
"""

from __future__ import annotations

import posix
import time

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from skiff.engine.monitor.health import Prober
    from skiff.engine.monitor.main import Monitor

DEFAULT_DELAY_NS = 100_000_000  # moby's defaultTimeout
MAX_DELAY_NS = 60_000_000_000  # maxRestartTimeout
RESET_AFTER_NS = 10_000_000_000  # a run this long resets the back-off
_SIGUSR1 = 10


class Policy:
    """One reading of the policy file."""

    def __init__(self, name: str = "no", maximum: int = 0, cancelled: bool = False,
                 stopped: bool = False) -> None:
        self.name = name
        self.maximum = maximum
        self.cancelled = cancelled
        self.stopped = stopped

    @classmethod
    def read(cls, path: str) -> Policy:
        """The file's policy; ``no`` when there is none or it cannot be read."""
        if not path:
            return cls()
        try:
            fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
        except OSError:
            return cls()
        try:
            words = posix.read(fd, 512).decode("ascii", "replace").split()
        finally:
            posix.close(fd)
        try:
            return cls(words[0], int(words[1]), words[2] == "1", words[3] == "1")
        except (IndexError, ValueError):
            return cls()


class Backoff:
    """restartmanager.RestartManager: the restart count and the delay before the next."""

    def __init__(self) -> None:
        self.count = 0  # restarts made (the container's RestartCount)
        self.delay_ns = 0

    def should_restart(self, policy: Policy, exit_code: int, ran_ns: int) -> bool:
        """After a run of `ran_ns` that exited `exit_code`: restart? (then `delay_ns` is
        how long to wait first, and `count` is already the new RestartCount)."""
        if policy.cancelled or policy.name not in ("always", "unless-stopped", "on-failure"):
            return False
        if ran_ns >= RESET_AFTER_NS:
            self.delay_ns = 0
        if self.delay_ns == 0:
            self.delay_ns = DEFAULT_DELAY_NS
        elif self.delay_ns < MAX_DELAY_NS:
            self.delay_ns *= 2
        self.delay_ns = min(self.delay_ns, MAX_DELAY_NS)
        if policy.name == "always":
            restart = True
        elif policy.name == "unless-stopped":
            restart = not policy.stopped
        else:
            restart = exit_code != 0 and (policy.maximum == 0 or self.count < policy.maximum)
        if restart:
            self.count += 1
        return restart


class Wakeup:
    """A pipe SIGUSR1 writes to: the engine's word that the policy file changed. Set up
    as the monitor starts, before the engine can know its pid (SIGUSR1's default action
    would end it)."""

    def __init__(self) -> None:
        import _signal
        self.r, w = posix.pipe()
        posix.set_blocking(self.r, False)
        posix.set_blocking(w, False)
        posix.set_inheritable(self.r, False)
        posix.set_inheritable(w, False)
        _signal.set_wakeup_fd(w)
        _signal.signal(_SIGUSR1, _ignore)

    def sleep(self, ns: int) -> bool:
        """Wait `ns`, or less when poked; True when poked."""
        import select
        self.drain()
        ready = select.poll()
        ready.register(self.r, select.POLLIN)
        poked = bool(ready.poll(max(0, ns // 1_000_000)))
        self.drain()
        return poked

    def drain(self) -> None:
        try:
            while posix.read(self.r, 512):
                pass
        except BlockingIOError:
            pass


def _ignore(signum: int, frame: object) -> None:
    """SIGUSR1's handler: the wakeup fd says it; nothing else to do."""


def _append(path: str, line: bytes) -> None:
    """One record at the end of the runs file (one write: a reader sees it whole or not
    at all, and a line without its newline is left for later)."""
    from skiff.engine.monitor.main import complain, write_all
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT
                        | posix.O_CLOEXEC, 0o644)
        try:
            write_all(fd, line)
        finally:
            posix.close(fd)
    except OSError as e:  # the engine misses a record; the container must not
        complain(f"write {path}: {e.strerror}")


def _start_prober(container_id: str, bundle: str, runtime_root: str, started: int,
                  wakeup: Wakeup) -> Prober | None:
    """The run's health probes (None without a health check: then `health` never loads)."""
    try:
        posix.stat(f"{bundle}/healthcheck")
    except OSError:
        return None
    from skiff.engine.monitor.health import start_prober
    return start_prober(container_id, bundle, runtime_root, started, wakeup.drain)


def supervise(monitor: Monitor, wakeup: Wakeup) -> None:
    """The monitor's life after the first start: each run to its end, then — as the policy
    file says — a back-off and a new run (the runtime container deleted and made again,
    the log kept), until one is not restarted; its exit goes to the exit file. Each exit
    followed by a restart, and each restart, is a line of the runs file (``Seq``, the
    ``Event`` die or start, and what the engine records of it)."""
    from skiff.engine.monitor.logfile import go_time, json_string
    from skiff.engine.monitor.main import (StartFailed, complain, exit_record, oom_kills,
                                           write_atomic)

    opts = monitor.opts
    policy_path = f"{opts.bundle}/restart"
    runs_path = f"{opts.bundle}/runs.jsonl"
    backoff = Backoff()
    seq = 0
    started = time.time_ns()
    while True:
        prober = _start_prober(opts.id, opts.bundle, opts.runtime_root, started, wakeup)
        status, finished = monitor.run()
        if prober is not None:
            prober.stop()
        oom = oom_kills(monitor.oom_file) > 0
        code = 128 + posix.WTERMSIG(status) if posix.WIFSIGNALED(status) \
            else posix.WEXITSTATUS(status)
        policy = Policy.read(policy_path)
        if not backoff.should_restart(policy, code, finished - started):
            monitor.finish(exit_record(status, finished, oom,
                                       f', "RestartCount": {backoff.count}, "Seq": {seq + 1}'))
            return
        seq += 1
        _append(runs_path, exit_record(status, finished, oom,
                                       f', "RestartCount": {backoff.count}, "Seq": {seq}, '
                                       f'"Event": "die", "Delay": {backoff.delay_ns}'))
        monitor.delete()  # the runtime container: the next run makes it again
        deadline = time.monotonic_ns() + backoff.delay_ns
        while time.monotonic_ns() < deadline:
            wakeup.sleep(deadline - time.monotonic_ns())
            policy = Policy.read(policy_path)
            if policy.cancelled or policy.name == "no":
                break
        if policy.cancelled or policy.name == "no":
            monitor.finish(exit_record(status, finished, oom,
                                       f', "RestartCount": {backoff.count}, "Seq": {seq + 1}'))
            return
        try:
            pid = monitor.start_run()
        except StartFailed as e:
            monitor.finish(
                f'{{"ExitCode": {e.exit_code}, "FinishedAt": "{go_time(time.time_ns())}", '
                f'"OOMKilled": false, "Signal": null, "Error": {json_string(e.message)}, '
                f'"RestartCount": {backoff.count}, "Seq": {seq + 1}}}\n'.encode())
            return
        started = time.time_ns()
        try:
            write_atomic(opts.pid_file, f"{posix.getpid()}\n{pid}\n".encode())
        except OSError as e:
            complain(f"write {opts.pid_file}: {e.strerror}")
        seq += 1
        _append(runs_path, f'{{"Seq": {seq}, "Event": "start", "Pid": {pid}, '
                           f'"StartedAt": "{go_time(started)}", '
                           f'"RestartCount": {backoff.count}}}\n'.encode())
        if Policy.read(policy_path).cancelled:  # a stop came while this run was made
            try:
                posix.kill(pid, 9)
            except OSError:
                pass
