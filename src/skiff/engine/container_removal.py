"""``docker rm`` and ``docker container prune``: a container taken down with everything it
has, over the `ContainerService` that holds it.

`remove` refuses a running container unless forced (it is killed first,
`container_stop.kill_run`), marks it ``removing`` — a removal skiffd did not finish is
finished at `reconcile` — and takes its runtime leftovers (its cgroup), network namespace,
snapshot (with the layers only it still held), bundle, logs and other files, and row; a
step that fails leaves it ``dead`` with the error. With ``-v`` its anonymous volumes go
too, after the ``destroy`` event, as moby's ContainerRm removes them. `remove_quietly` is
AutoRemove's: what goes wrong is logged, not raised. `prune` removes every stopped
container its ``until``, ``label`` and ``label!`` filters choose, one prune at a time.
"""

from __future__ import annotations

import os
import shutil
import threading

from skiff.engine.container_stop import kill_run
from skiff.engine.filters import Filters, until_timestamp
from skiff.engine.times import parse_time
from skiff.errors import ContainerConflict, InvalidArgument, NoSuchContainer, SkiffError, StoreError
from skiff.log import logger
from skiff.store.volumes import tree_size as _tree_size  # Docker's SizeRw of an upper dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.engine.containers import ContainerService

_log = logger("skiff.engine.containers")
PRUNE_FILTERS = ("label", "label!", "until")
TRASH = ".rm-"  # a removed container's folders, renamed, until their trees are deleted


def remove(svc: ContainerService, ref: str, force: bool = False,
           volumes: bool = False) -> None:
    """``DELETE /containers/{id}``: refused for a running container unless `force`
    (which kills it first); the snapshot, bundle, logs and row go; with `volumes`, its
    anonymous volumes too (named ones stay, as Docker's ``rm -v``)."""
    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    with live.lock:
        row = svc._row(cid)
        if live.removing:
            raise ContainerConflict(f"removal of container {cid} is already in progress")
        if svc._running(row):
            if not force:
                raise ContainerConflict(
                    f"You cannot remove a running container {cid}. Stop the container "
                    f"before attempting removal or force remove")
            kill_run(svc, cid, live, live.run)
        live.removing = True
        _set_status(svc, cid, "removing")
        try:
            _destroy(svc, cid)
        except SkiffError as e:
            live.removing = False
            _set_status(svc, cid, "dead", Dead=True, Error=str(e))
            raise
        except OSError as e:
            live.removing = False
            _set_status(svc, cid, "dead", Dead=True, Error=str(e))
            raise StoreError(f"remove container {cid}: {e}") from e
        with svc._cond:
            live.removed = True
            live.error = ""  # moby's SetRemoved clears it: a removal waiter sees no error
            svc._live.pop(cid, None)
            svc._cond.notify_all()
        svc._event(row, "destroy")
    if volumes:  # after the destroy event, as moby's ContainerRm removes them
        svc.volumes.drop_anonymous(row.doc.get("MountPoints") or ())
    _log.debug("container %s removed", cid[:12])


def remove_quietly(svc: ContainerService, cid: str, volumes: bool = False) -> None:
    """AutoRemove: remove `cid`, reporting (not raising) what goes wrong."""
    try:
        remove(svc, cid, force=True, volumes=volumes)
    except NoSuchContainer:
        pass
    except (SkiffError, OSError) as e:
        _log.warning("container %s: auto-remove: %s", cid[:12], e)


def _set_status(svc: ContainerService, cid: str, status: str, **more: Any) -> None:
    with svc._cond:
        row = svc.db.get(cid)
        if row is not None:
            row.state.update(Status=status, **more)
            svc.db.set_state(cid, row.state)
        svc._cond.notify_all()


def _destroy(svc: ContainerService, cid: str) -> None:
    """Everything of a stopped container: the runtime's leftovers (its cgroup), the
    snapshot (unmounted), the bundle, the logs and other files, the row. The folders are
    only renamed out of the way here (hidden names, which a start's sweep also deletes):
    their trees are deleted on a thread of their own, after the removal is told."""
    svc._runtime_delete(cid)
    svc._release_netns(cid)
    trash: list[str] = []
    if svc.snapshots.exists(cid):
        try:
            lowers = svc.snapshots.lower_dirs(cid)
        except StoreError:
            lowers = []
        svc.snapshots.remove(cid, later=trash)
        svc.store.release_layers(lowers)  # those only this container still held
    for folder in (svc.bundle_dir(cid), svc.container_dir(cid)):
        doomed = os.path.join(os.path.dirname(folder), f"{TRASH}{cid}-{os.urandom(4).hex()}")
        try:
            os.rename(folder, doomed)
            trash.append(doomed)
        except FileNotFoundError:
            pass
    svc.db.delete(cid)
    svc.networks.db.forget(cid)  # its attachments, kept while it was stopped
    threading.Thread(target=empty_trash, args=(trash,), name="skiffd-trash",
                     daemon=True).start()


def empty_trash(folders: list[str]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def prune(svc: ContainerService, filters: Any = None) -> dict[str, Any]:
    """``POST /containers/prune``: remove every stopped container (``until``,
    ``label``, ``label!`` filters as Docker's)."""
    if not svc._prune_lock.acquire(blocking=False):
        raise ContainerConflict("a prune operation is already running")
    try:
        f = Filters.parse(filters)
        f.validate(PRUNE_FILTERS)
        untils = f.get("until")
        if len(untils) > 1:
            raise InvalidArgument("more than one until filter specified")
        until = until_timestamp(untils[0]) if untils else None
        deleted: list[str] = []
        reclaimed = 0
        for row in svc.db.all():
            if row.state.get("Running"):
                continue
            if until is not None and (parse_time(row.created) or 0) >= until:
                continue
            labels = row.doc["Config"].get("Labels") or {}
            if not f.match_kv_list("label", labels):
                continue
            if f.contains("label!") and f.match_kv_list("label!", labels):
                continue
            size = _tree_size(svc.snapshots.upper(row.id))
            try:
                remove(svc, row.id)
            except (NoSuchContainer, ContainerConflict):
                continue
            deleted.append(row.id)
            reclaimed += size
        svc.events.emit("container", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}
    finally:
        svc._prune_lock.release()


def drop_snapshot(svc: ContainerService, cid: str) -> None:
    """Remove the snapshot of `cid` if there is one, reporting (not raising) a failure."""
    try:
        if svc.snapshots.exists(cid):
            svc.snapshots.remove(cid)
    except StoreError as e:
        _log.warning("container %s: %s", cid[:12], e)
