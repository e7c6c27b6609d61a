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
    """Signal init (or, with `all_processes`, everything in the cgroup — what is left of a
    stopped container too, as runc does). "container not running" is runc's wording,
    which containerd's shim looks for."""
    c = open_container(store, container_id)
    status = c.status()
    if all_processes:
        if status == Status.STOPPED and not c.cgroup.exists():
            return
        c.cgroup.kill_all(sig)
        return
    if status == Status.STOPPED:
        raise RuntimeError_(f"container `{container_id}`: container not running")
    try:
        os.kill(c.state.pid, sig)
    except ProcessLookupError:
        raise RuntimeError_(f"container `{container_id}`: container not running") from None
    if status == Status.PAUSED and sig == signals.SIGKILL:
        c.cgroup.thaw()  # a frozen task dies only once it runs again (cgroup v1)
