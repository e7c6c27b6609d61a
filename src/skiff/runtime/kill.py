"""`kill`: send a signal to a container's init, or with `--all` to all its processes."""

from __future__ import annotations

import os
import signal

from skiff.errors import RuntimeError_
from skiff.runtime.container import open_container
from skiff.runtime.state import StateStore, Status


def parse_signal(text: str) -> int:
    """A signal given as runc takes it: a number, `KILL`, or `SIGKILL`."""
    if text.isdigit():
        num = int(text)
        if 0 < num < signal.NSIG:
            return num
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise RuntimeError_(f"unknown signal {text!r}")


def kill(store: StateStore, container_id: str, sig: int, all_processes: bool = False) -> None:
    c = open_container(store, container_id)
    status = c.require("kill")
    if all_processes:
        c.cgroup.kill_all(sig)
        if status == Status.PAUSED and sig == signal.SIGKILL:
            c.cgroup.thaw()  # frozen tasks only die once thawed (cgroup v1)
        return
    try:
        os.kill(c.state.pid, sig)
    except ProcessLookupError:
        raise RuntimeError_(f"container `{container_id}` is not running") from None
