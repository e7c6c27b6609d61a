"""`start`: let a created container's init go on to exec the user's program.

The init blocks opening the exec fifo for writing; opening it for reading and taking its
one byte releases it. The fifo is then removed, which is what makes the status `running`.
"""

from __future__ import annotations

import os
import select

from skiff.errors import HookFailed, RuntimeError_
from skiff.runtime.container import Container, open_container
from skiff.runtime.state import StateStore
from skiff.log import logger

log = logger("skiff.runtime")


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
        finally:
            os.close(fd)
        os.unlink(fifo)
        poststart(c)


def poststart(c: Container) -> None:
    """The poststart hooks, whose failure is only a warning (runc's rule)."""
    if c.has_hooks("poststart"):
        hooks = c.spec.hooks
        assert hooks is not None
        _await_exec(c)
        from skiff.runtime.hooks import run_hooks  # (subprocess: only when used)
        try:
            run_hooks("poststart", hooks.poststart, c.oci_state())
        except HookFailed as e:
            log.warning("%s", e)


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
