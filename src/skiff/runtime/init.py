"""The container's first process, from its fork to the execve of the user's program.

It runs inside the new namespaces (see `spawn`): builds the filesystem (`rootfs`), lets the
runtime run the createRuntime hooks, runs createContainer hooks itself, pivots, takes its
terminal, sets hostname and sysctls, becomes the spec's process (`process.become`), tells
the runtime it is ready, and then blocks opening the exec fifo for writing until `start`
opens it for reading (`run` has no fifo: its init goes straight on, and the runtime waits
for its execve, told by a close-on-exec pipe end closing). The startContainer hooks run
last, right before the execve; a failure of theirs is written back on that same way out (the
fifo, or run's pipe), for `start` or `run` to report. Everything it needs from the host is
imported or opened before the pivot: after it the filesystem is the image's, so imports are
sealed off (`process.seal_imports`) rather than let one load the image's code into a process
that is still root with every capability.
"""

from __future__ import annotations

import os
from skiff.record import Record

from skiff.errors import HookFailed
from skiff.kernel import syscall as sc
from skiff.oci.runtime_spec import Spec
from skiff.runtime import process
from skiff.runtime.channel import Channel, wait_cgroup
from skiff.runtime.rootfs import RootfsBuilder

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from skiff.kernel.seccomp import Filter, Program
    import socket
    from typing import Any, NoReturn


class InitJob(Record, mutable=True):
    spec: Spec
    builder: RootfsBuilder
    container_id: str
    fifo: str | None  # None: start at once (run)
    seccomp: Filter | Program | None
    console_sock: socket.socket | None = None  # where the pty master goes (when terminal)
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    uts: bool = False
    lsms: frozenset[str] = frozenset()  # process.host_lsms(), read before the fork
    new_cgroupns: bool = False  # made here, once in the cgroup, so it is rooted there


def needs_rendezvous(spec: Spec) -> bool:
    """Whether init must stop before pivot_root for the runtime's hooks (prestart,
    createRuntime) or needs the state for its own (createContainer, startContainer).
    Without hooks it runs straight through, while the runtime moves it into its cgroup."""
    h = spec.hooks
    return h is not None and bool(h.prestart or h.create_runtime or h.create_container
                                  or h.start_container)


def container_init(job: InitJob, chan: Channel) -> NoReturn:
    spec = job.spec
    proc = spec.process
    assert proc is not None and spec.linux is not None
    os.setsid()
    fifo_fd = os.open(job.fifo, os.O_PATH | os.O_CLOEXEC) if job.fifo else -1
    term_sock = job.console_sock
    if proc.terminal:
        from skiff.runtime import console  # termios and tty: only for terminals, before the pivot
    in_cgroup = [False]

    def cgroup_ready() -> None:
        if not in_cgroup[0]:
            wait_cgroup(chan)
            in_cgroup[0] = True

    if job.new_cgroupns:
        cgroup_ready()
        sc.unshare(sc.CLONE_NEWCGROUP)
    job.builder.prepare(cgroup_ready)
    hooks = spec.hooks
    state: dict[str, Any] = {}
    if needs_rendezvous(spec):
        from skiff.runtime.hooks import run_hooks  # before the pivot: it imports subprocess
        cgroup_ready()  # hooks are our children: they must start in the cgroup
        chan.send("prestart")
        state = chan.recv("hooks-done")["state"]
        if hooks and hooks.create_container:
            run_hooks("createContainer", hooks.create_container, state)
    job.builder.pivot(job.no_pivot)
    process.seal_imports()
    if proc.terminal and term_sock is not None:
        console.take_terminal(term_sock, proc.console_size, console=True)
    job.builder.finalize()
    if spec.hostname and job.uts:
        sc.sethostname(spec.hostname)
    if spec.domainname and job.uts:
        sc.setdomainname(spec.domainname)
    if not job.no_new_keyring:
        sc.join_session_keyring(f"_ses.{job.container_id}")
    env = process.environment(proc)
    path = process.find_executable(proc, env)
    process.become(proc, job.seccomp, job.lsms, process.persona_of(spec.linux))
    cgroup_ready()
    # fds 3..3+N-1 go to the program (LISTEN_FDS style); everything else of ours closes on exec
    process.preserve_fds(job.preserve_fds, (chan.rfd, chan.wfd))
    chan.send("ready")
    # started at once, the runtime waits for this pipe to lose its last writer: the copy
    # kept here closes on execve (or with our death), so `create` returns once the program
    # runs, not while this process is still the runtime (whose cmdline, exe and Python
    # signal handlers a `kill` or `top` right after the start would meet)
    exec_latch = os.dup(chan.wfd) if fifo_fd < 0 else -1  # (dup: close-on-exec)
    chan.close()
    start_hooks = hooks.start_container if hooks else ()
    report = exec_latch  # where a startContainer failure is told (see start.py, create.py)
    if fifo_fd >= 0:
        report = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(report, b"0")
        os.close(fifo_fd)
        if not start_hooks:
            os.close(report)
    if start_hooks:
        state["status"] = "running"  # run_hooks was imported above, before the pivot
        try:
            run_hooks("startContainer", start_hooks, state)
        except HookFailed as e:
            os.write(report, str(e).encode())
            os._exit(1)
    process.execute(proc, job.seccomp, path, env)
    raise AssertionError("unreachable")
