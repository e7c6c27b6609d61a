"""`start`: let a created container's init go on to exec the user's program.

The init blocks opening the exec fifo for writing; opening it for reading and taking its
one byte releases it. The fifo is then removed, which is what makes the status `running`.
With startContainer hooks, the init keeps its end open while they run and writes their
failure into it; its end closes on the program's execve. A failure there stops and
destroys the container (runtime.md: "generate an error, stop the container, and continue
the lifecycle at step 12") and `start` fails with the hook's message.
"""

from __future__ import annotations

import os
import select

from skiff.errors import HookFailed, RuntimeError_
from skiff.runtime.container import Container, open_container
from skiff.runtime.state import StateStore


def start(store: StateStore, container_id: str) -> None:
    with store.locked(container_id):
        c = open_container(store, container_id)
        c.require("start")
        fifo = store.fifo(container_id)
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready and os.read(fd, 1):
                    break
                if not c.state.alive():
                    raise RuntimeError_(f"container `{container_id}` init died before it started")
            failure = _rest(fd) if c.has_hooks("startContainer") else b""
        finally:
            os.close(fd)
        os.unlink(fifo)
        if failure:
            from skiff.runtime.delete import destroy
            destroy(c, c.status())
            raise HookFailed(failure.decode(errors="replace"))
        poststart(c)


def _rest(fd: int) -> bytes:
    """What init writes after its byte, until its end closes (at the execve, or its death)."""
    out = b""
    while True:
        select.select([fd], [], [])
        chunk = os.read(fd, 4096)
        if not chunk:
            return out
        out += chunk


def poststart(c: Container) -> None:
    """The poststart hooks, whose failure is only a warning (runc's rule)."""
    if c.has_hooks("poststart"):
        hooks = c.spec.hooks
        assert hooks is not None
        _await_exec(c)
        from skiff.runtime.hooks import run_hooks_warning  # (subprocess: only when used)
        run_hooks_warning("poststart", hooks.poststart, c.oci_state())


def _await_exec(c: Container) -> None:
    """Wait until init has replaced itself with the user's program (or died): the spec has
    poststart hooks run *after* the program is executed, and the fifo's byte only says that
    init went on — its startContainer hooks and the execve are still ahead of it. Init runs
    this runtime's interpreter until then; the program never is that (it is refused)."""
    import time

    mine = os.readlink("/proc/self/exe")
    path = f"/proc/{c.state.pid}/exe"
    while c.state.alive():
        try:
            if os.readlink(path) != mine:
                return
        except OSError:
            return  # gone meanwhile
        time.sleep(0.001)
