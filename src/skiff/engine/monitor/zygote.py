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
status pipe as SCM_RIGHTS. The zygote forks a child that runs the monitor's `main` with
``--status-fd`` that fd (main forks again and that child exits, so the monitor is nobody's
child here either), waits for that child and answers with its wait status in decimal, or
``bad request``. At EOF on the socket (the engine closed its end, or died) the zygote
exits; the monitors it forked go on. Only built-in modules load here beyond skiff's own.
"""

from __future__ import annotations

import gc
import posix
import sys

import _socket

# what a monitor and its helper run; the runtime's modules that a create loads only when a
# container asks (hooks, terminals) stay out, as they would in a fresh process
PRELOAD = (
    "skiff.engine.monitor.main", "skiff.engine.monitor.restart", "skiff.engine.monitor.health",
    "skiff.engine.monitor.attach_server", "skiff.engine.monitor.startup",
    "skiff.runtime.cgroup_warmup", "skiff.runtime.container", "skiff.runtime.create",
    "skiff.runtime.start", "skiff.runtime.state", "skiff.runtime.delete",
    "skiff.runtime.cgroups", "skiff.runtime.cgroups.v1", "skiff.runtime.cgroups.v2",
    "skiff.runtime.seccomp_cache",
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


def fork_monitor(args: list[str], status_fd: int, sock_fd: int) -> int:
    """Fork the child that becomes the monitor; its wait status once it has forked it."""
    from skiff.engine.monitor.main import main
    pid = posix.fork()
    if pid == 0:
        posix.close(sock_fd)  # the engine's EOF must not wait for a monitor
        main(args + ["--status-fd", str(status_fd)])
    posix.close(status_fd)
    return posix.waitpid(pid, 0)[1]


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
    gc.freeze()
    while True:
        message, ancillary, _, _ = sock.recvmsg(_MAX_REQUEST, _socket.CMSG_SPACE(_FD_SIZE * 4))
        fds = received_fds(ancillary)
        if not message and not fds:
            break  # EOF
        if len(fds) != 1:
            for extra in fds:
                posix.close(extra)
            sock.send(b"bad request")
            continue
        status = fork_monitor(message.decode("utf-8", "surrogateescape").split("\0"), fds[0], fd)
        sock.send(str(status).encode())
    posix._exit(0)
