"""`events`: a container's resource use (cgroup stats) and OOM kills as JSON lines, in
runc's shape: {"type": "stats"|"oom", "id": ..., "data": {...}}."""

from __future__ import annotations

import sys
import time

from skiff.runtime.container import open_container
from skiff.runtime.state import StateStore, Status
from skiff import jsonfast

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Any, Iterator


def stats(store: StateStore, container_id: str) -> dict[str, Any]:
    c = open_container(store, container_id)
    return {"type": "stats", "id": container_id, "data": c.cgroup.stats()}


def stream(store: StateStore, container_id: str, interval: float) -> Iterator[dict[str, Any]]:
    c = open_container(store, container_id)
    ooms = c.cgroup.oom_kills()
    next_stats = 0.0
    while c.status() != Status.STOPPED:
        now = time.monotonic()
        if now >= next_stats:
            yield {"type": "stats", "id": container_id, "data": c.cgroup.stats()}
            next_stats = now + interval
        count = c.cgroup.oom_kills()
        if count > ooms:
            ooms = count
            yield {"type": "oom", "id": container_id}
        time.sleep(min(0.2, interval))


def print_events(events: Iterator[dict[str, Any]]) -> None:
    for ev in events:
        sys.stdout.write(jsonfast.dumps(ev) + "\n")
        sys.stdout.flush()
