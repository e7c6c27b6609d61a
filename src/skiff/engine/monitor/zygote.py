"""The monitors' zygote: one process per engine that has loaded the monitor's and the
runtime's code once, and forks a monitor for each container start.

Started as a new ``python``, a monitor pays the interpreter's start-up and the imports of
the monitor and of the runtime library its helper creates the container with (about a
third of a container's start here), and holds its own copy of all those pages. Forked from
the zygote it starts at once, and the code and the heap loaded here (frozen: `gc.freeze`,
so no collection in a monitor walks and dirties them) stay shared copy-on-write between the
zygote and every monitor: a monitor's PSS is what it wrote since, plus its share.

The engine (`launch.MonitorLauncher`) starts ``python -S -I -c BOOT <src> --socket-fd N``
with N one end of a SOCK_SEQPACKET socketpair. A request is one message: the monitor's
arguments (`launch.monitor_args`), NUL-separated, with the write end of the monitor's
status pipe as SCM_RIGHTS. The zygote checks the arguments (with ``--status-fd`` that fd),
forks the monitor (`main.monitor_main`) and answers ``pid N``, or ``bad request: why``
with nothing forked. The monitors are the zygote's children while it lives (it ignores
SIGCHLD, so the kernel reaps them) and init's after it; never skiffd's. At EOF on the
socket (the engine closed its end, or died) the zygote exits; the monitors it forked go
on. Only built-in modules load here beyond skiff's own.
"""

from __future__ import annotations

import gc
import posix
import sys

import _signal
import _socket

# what a monitor and its helper run; the runtime's modules that a create loads only when a
# container asks (hooks, terminals) stay out, as they would in a fresh process
PRELOAD = (
    "skiff.engine.monitor.main", "skiff.engine.monitor.restart", "skiff.engine.monitor.health",
    "skiff.engine.monitor.attach_server", "skiff.engine.monitor.startup",
    "skiff.runtime.cgroup_warmup", "skiff.runtime.container", "skiff.runtime.create",
    "skiff.runtime.start", "skiff.runtime.state", "skiff.runtime.delete",
    "skiff.runtime.cgroups", "skiff.runtime.cgroups.v1", "skiff.runtime.cgroups.v2",
    "skiff.runtime.seccomp_cache", "skiff.semver",  # (semver: a whole spec's ociVersion check)
)
NAME = "skmon-zygote"  # its comm; a monitor's is `main.comm_name(id)`
_MAX_REQUEST = 1 << 16
_FD_SIZE = 4


def received_fds(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    """The descriptors an SCM_RIGHTS message carried."""
    fds = []
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(data) - len(data) % _FD_SIZE
            fds += [int.from_bytes(data[i:i + _FD_SIZE], sys.byteorder)
                    for i in range(0, usable, _FD_SIZE)]
    return fds


def fork_monitor(args: list[str], status_fd: int, sock_fd: int) -> bytes:
    """Fork the monitor for `args` (and `status_fd`); the answer to the engine."""
    from skiff.engine.monitor.main import checked_args, monitor_main
    try:
        opts = checked_args(args + ["--status-fd", str(status_fd)])
    except ValueError as e:
        posix.close(status_fd)
        return f"bad request: {e}".encode("utf-8", "replace")
    pid = posix.fork()
    if pid == 0:
        try:
            posix.close(sock_fd)  # the engine's EOF must not wait for a monitor
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)  # its helper and init: its own
            monitor_main(opts)
        finally:
            posix._exit(1)  # (monitor_main ends the process itself: never back in the loop)
    posix.close(status_fd)
    return f"pid {pid}".encode()


def serve(argv: list[str]) -> None:
    """Load, then fork a monitor per request until the engine goes (see the module)."""
    if len(argv) != 2 or argv[0] != "--socket-fd" or not argv[1].isdigit():
        posix.write(2, b"usage: zygote --socket-fd N\n")
        posix._exit(2)
    fd = int(argv[1])
    for name in PRELOAD:
        __import__(name)
    from skiff.engine.monitor.main import set_comm
    set_comm(NAME)
    sock = _socket.socket(fileno=fd)
    # the monitors are our children until we go: the kernel reaps them, not we
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)
    gc.freeze()
    while True:
        message, ancillary, _, _ = sock.recvmsg(_MAX_REQUEST, _socket.CMSG_SPACE(_FD_SIZE * 4))
        fds = received_fds(ancillary)
        if not message and not fds:
            break  # EOF
        if len(fds) != 1:
            for extra in fds:
                posix.close(extra)
            sock.send(b"bad request: one status fd, please")
            continue
        sock.send(fork_monitor(message.decode("utf-8", "surrogateescape").split("\0"), fds[0],
                               fd))
    posix._exit(0)
