"""`pause` and `resume`: freeze and thaw every process of a container (the freezer of
cgroup v1, or cgroup.freeze of v2)."""

from __future__ import annotations

from skiff.runtime.container import open_container
from skiff.runtime.state import StateStore


def pause(store: StateStore, container_id: str) -> None:
    with store.locked(container_id):
        c = open_container(store, container_id)
        c.require("pause")
        c.cgroup.freeze()


def resume(store: StateStore, container_id: str) -> None:
    with store.locked(container_id):
        c = open_container(store, container_id)
        c.require("resume")
        c.cgroup.thaw()
