"""`delete`: remove a stopped (or, with `--force`, any) container and all it holds.

A running container is killed first only with `--force`; a created one, whose program
never started, is always killed, as runc does. Then the cgroup and the state folder go,
and the poststop hooks run last ("after the container is deleted"; a failing one is a
warning). `--force` on a container that does not exist succeeds
quietly, as with runc: podman and containerd clean up that way after a failed create.
"""

from __future__ import annotations

import os

from skiff.errors import ContainerNotFound, RuntimeError_
from skiff.runtime.container import Container, open_container, wait_gone
from skiff.runtime.state import StateStore, Status, check_move
from skiff.kernel import signals


def _half_made(store: StateStore, container_id: str, force: bool) -> None:
    """No saved state: the container does not exist — or a create is under way, or one
    died before it saved (its folder would block the id for good). runc's rules: without
    --force an error; with it, success, removing what a dead create left."""
    if not os.path.isdir(store.dir(container_id)):
        if force:
            return
        raise ContainerNotFound(container_id)
    lock = store.locked(container_id)
    try:
        free = lock.acquire(wait=False)
    except ContainerNotFound:
        free = True  # gone meanwhile
    if not free:
        raise RuntimeError_(f"container `{container_id}` is being created")
    try:
        if not force:
            raise ContainerNotFound(container_id)
        store.remove_dir(container_id)
    finally:
        lock.__exit__()


def delete(store: StateStore, container_id: str, force: bool = False) -> None:
    if not os.path.exists(os.path.join(store.dir(container_id), "state.json")):
        _half_made(store, container_id, force)
        return
    with store.locked(container_id):
        c = open_container(store, container_id)
        status = c.status()
        if not force:
            check_move(container_id, "delete", status)
        destroy(c, status)


def destroy(c: Container, status: str) -> None:
    """Undo what create made, then the poststop hooks (runtime.md, lifecycle steps 12 and
    13); the caller holds the container's lock. Also how a failed start ends a container."""
    container_id = c.id
    if status != Status.STOPPED:
        if c.cgroup.exists():
            c.cgroup.kill_all(signals.SIGKILL)
            if status == Status.PAUSED:
                c.cgroup.thaw()
        try:
            os.kill(c.state.pid, signals.SIGKILL)
        except ProcessLookupError:
            pass
        if not wait_gone(c.state.pid, c.state.pid_start, 10.0):
            raise RuntimeError_(f"container `{container_id}`: init {c.state.pid} did not die")
    if c.cgroup.exists():
        c.cgroup.kill_all(signals.SIGKILL)  # anything that escaped init's death
        c.cgroup.destroy()
    c.store.remove_dir(container_id)
    if c.has_hooks("poststop"):  # "after the container is deleted" (config.md)
        hooks = c.spec.hooks
        assert hooks is not None
        from skiff.runtime.hooks import run_hooks_warning  # (subprocess: only when used)
        run_hooks_warning("poststop", hooks.poststop, c.state.oci(Status.STOPPED))
