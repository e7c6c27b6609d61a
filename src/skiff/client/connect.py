"""Which engine the CLI talks to, and starting skiffd when it is skiff's own and not running.

The host is `-H/--host`, else ``DOCKER_HOST``, else skiff's own socket,
``unix://$SKIFF_RUN/skiff.sock`` (SKIFF_RUN defaults to /run/skiff). Only for that default
socket, when nothing answers, does the CLI start skiffd itself — the `skiffd` next to the
running interpreter (the venv's), else the first on PATH — as its own session (setsid),
stdin from /dev/null, output appended to ``$SKIFF_RUN/skiffd.log``, with the caller's
environment (so the same SKIFF_ROOT and SKIFF_RUN), and waits for `/_ping`. An explicit
host is never started: pointed at a real Docker Engine or another skiffd, the CLI says it
cannot connect, as docker does. Two CLIs starting at once take turns on a lock file, so
only one skiffd is started.
"""

from __future__ import annotations

import os
import sys
import time

from skiff.client.api import EngineClient
from skiff.errors import DaemonUnreachable, InvalidArgument

START_TIMEOUT = 10.0
POLL = 0.05


def run_dir() -> str:
    return os.environ.get("SKIFF_RUN") or "/run/skiff"


def default_host() -> str:
    return "unix://" + os.path.join(run_dir(), "skiff.sock")


def choose_host(flag_hosts: list[str] | None = None) -> tuple[str, bool]:
    """(host, is skiff's default socket): `-H`, else DOCKER_HOST, else the default."""
    if flag_hosts:
        if len(flag_hosts) > 1:
            raise InvalidArgument("Specify only one -H")
        return flag_hosts[0], False
    env = os.environ.get("DOCKER_HOST")
    if env:
        return env, False
    return default_host(), True


def connect(flag_hosts: list[str] | None = None) -> EngineClient:
    """A client for the chosen engine; skiff's default one is started if nothing answers."""
    host, is_default = choose_host(flag_hosts)
    client = EngineClient(host)
    if client.address.scheme == "tcp" and os.environ.get("DOCKER_TLS_VERIFY"):
        # better refused than sent in the clear to a daemon that expects TLS
        raise InvalidArgument(f"{host}: TLS (DOCKER_TLS_VERIFY) is not supported by skiff's "
                              "client; use a unix socket or a plain tcp:// host")
    if is_default:
        try:
            client.ping()
        except DaemonUnreachable as exc:
            if exc.detail:  # permission denied, say: starting another would not help
                raise
            start_daemon(client)
    return client


def find_skiffd() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "skiffd")
    if os.access(beside, os.X_OK):
        return beside
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", "skiffd")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise DaemonUnreachable("", "cannot start skiffd: no `skiffd` next to "
                            f"{sys.executable} nor on PATH")


def start_daemon(client: EngineClient, timeout: float = START_TIMEOUT) -> int:
    """Start skiffd for `client`'s (default) socket and wait until it answers; its pid, or
    0 if another CLI started it meanwhile."""
    import fcntl

    folder = run_dir()
    log = os.path.join(folder, "skiffd.log")
    try:
        os.makedirs(folder, mode=0o755, exist_ok=True)
        lock = os.open(os.path.join(folder, "skiffd.start.lock"),
                       os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DaemonUnreachable(client.host, f"cannot start skiffd in {folder}: "
                                f"{exc.strerror}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _answers(client):
            return 0
        exe = find_skiffd()
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        pid = os.posix_spawn(exe, [exe], dict(os.environ), file_actions=actions, setsid=True)
        deadline = time.monotonic() + timeout
        while True:
            if _answers(client):
                return pid
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                raise DaemonUnreachable(client.host, f"skiffd exited (status {code}) before it "
                                        f"answered on {client.host}; see {log}{_tail(log)}")
            if time.monotonic() > deadline:
                raise DaemonUnreachable(client.host, f"skiffd (pid {pid}) did not answer on "
                                        f"{client.host} within {timeout:g} s; see {log}"
                                        f"{_tail(log)}")
            time.sleep(POLL)
    finally:
        os.close(lock)


def _answers(client: EngineClient) -> bool:
    try:
        client.ping(timeout=2.0)
        return True
    except DaemonUnreachable:
        return False


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    last = [line for line in text.splitlines() if line.strip()][-lines:]
    return "".join(f"\n  {line}" for line in last)
