"""`kill`: send a signal to a container's init, or with `--all` to all its processes."""

from __future__ import annotations

import os

from skiff.errors import RuntimeError_
from skiff.kernel import signals
from skiff.runtime.container import open_container
from skiff.runtime.state import StateStore, Status


def parse_signal(text: str) -> int:
    """A signal given as runc takes it: a number, `KILL`, or `SIGKILL`."""
    try:
        return signals.parse(text)
    except ValueError as e:
        raise RuntimeError_(str(e)) from None


def kill(store: StateStore, container_id: str, sig: int, all_processes: bool = False) -> None:
    c = open_container(store, container_id)
    status = c.require("kill")
    if all_processes:
        c.cgroup.kill_all(sig)
        if status == Status.PAUSED and sig == signals.SIGKILL:
            c.cgroup.thaw()  # frozen tasks only die once thawed (cgroup v1)
        return
    try:
        os.kill(c.state.pid, sig)
    except ProcessLookupError:
        raise RuntimeError_(f"container `{container_id}` is not running") from None
