"""Reconcile, at engine start: the containers' state made true again after skiffd was away,
over the `ContainerService` that holds them.

Containers outlive skiffd. `reconcile` takes the root's lock (one engine per root: two
would each think they supervise the same containers), then for each container: a running
one whose monitor lives is watched again (live restore) and its restarts and health caught
up; one whose monitor is gone gets its exit (`container_run.monitor_ended`); a removal cut
short is finished; a run skiffd did not get to record (it died while starting it) is
adopted. Then what a create or remove cut short left with no row (snapshots, folders,
runtime containers) is swept, with the network namespaces and volume mounts of runs that
ended meanwhile, and Docker's restart-on-daemon-start rule is applied last.
"""

from __future__ import annotations

import os
import shutil

from skiff.engine.container_removal import TRASH, drop_snapshot, empty_trash, remove_quietly
from skiff.engine.container_run import monitor_ended
from skiff.engine.containers import _Live, _now
from skiff.engine.names import is_full_id
from skiff.engine.times import rfc3339_nano
from skiff.engine.userns_remap import maps_of
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.engine.containers import ContainerService
    from skiff.engine.state_db import ContainerRow

_log = logger("skiff.engine.containers")


def reconcile(svc: ContainerService) -> None:
    """At engine start: watch the monitors that still run (their containers went on
    while skiffd was away), record the exits of those that ended, finish removals and
    clear what creates cut short left behind. Only one engine may do this per root."""
    if svc._root_lock < 0:
        svc._lock_root()
    rows = svc.db.all()
    with svc._cond:
        for row in rows:
            svc._live.setdefault(row.id, _Live(row.state))
    from skiff.engine.monitor.launch import monitor_alive

    for row in rows:
        cid = row.id
        status = row.state.get("Status")
        if status == "removing":
            _log.info("container %s: finishing its removal", cid[:12])
            remove_quietly(svc, cid)
        elif row.state.get("Running"):
            monitor_pid = int(row.state.get("MonitorPid") or 0)
            if monitor_alive(monitor_pid, cid):
                if maps_of(row.doc) is not None:
                    svc.netns_wiring.ensure()  # for a restart its monitor makes

                svc._watcher.watch(cid, monitor_pid, svc.bundle_dir(cid))
                svc.supervisor.catch_up(cid, monitor_pid)
                svc.supervisor.health_changed(cid)
            else:
                monitor_ended(svc, cid, monitor_pid)
        elif status in ("created", "exited"):
            _adopt(svc, row)
    _sweep(svc, {row.id for row in rows})
    svc.volumes.store.sweep()
    svc.volumes.unmount_idle()  # device volumes of runs that ended meanwhile
    svc.supervisor.restart_on_start(rows)


def _adopt(svc: ContainerService, row: ContainerRow) -> None:
    """A run skiffd did not get to record (it died while starting the container): its
    monitor runs — it is running — or it left an exit the state does not have yet."""
    from skiff.engine.monitor.launch import monitor_alive, read_exit_file

    cid = row.id
    pids = svc._read_pid_file(cid)
    status = read_exit_file(svc._exit_file(cid))
    alive = pids is not None and monitor_alive(pids[0], cid)
    if not alive and (status is None or status.finished_at == row.state.get("FinishedAt")):
        return  # nothing unrecorded
    try:
        started = rfc3339_nano(os.stat(svc._pid_file(cid)).st_mtime)
    except OSError:
        started = _now()
    monitor_pid = pids[0] if pids is not None else 0
    with svc._cond:
        state = row.state
        state.update(Status="running", Running=True, Pid=pids[1] if pids else 0,
                     MonitorPid=monitor_pid, ExitCode=0, Error="", StartedAt=started)
        svc.db.set_state(cid, state)
        live = svc._live[cid] = _Live(state)
        live.run = monitor_pid or -1
    _log.info("container %s: a run skiffd did not record (monitor %d)", cid[:12],
              monitor_pid)
    if alive:
        svc._watcher.watch(cid, monitor_pid, svc.bundle_dir(cid))
    else:
        monitor_ended(svc, cid, monitor_pid)


def _sweep(svc: ContainerService, known: set[str]) -> None:
    """Remove the snapshots, folders and runtime containers of IDs with no row (a
    create or remove cut short by a crash)."""
    with svc._cond:
        busy = set(svc._creating)
    keep = known | busy
    for key in svc.snapshots.list():
        if is_full_id(key) and key not in keep:
            _log.info("removing the leftover snapshot %s", key[:12])
            drop_snapshot(svc, key)
    for folder in (svc.containers_dir, svc.bundles_dir, svc.snapshots.snapshots):
        trash = [os.path.join(folder, n) for n in _listing(folder) if n.startswith(TRASH)]
        empty_trash(trash)  # a removal's, cut short
    for folder in (svc.containers_dir, svc.bundles_dir, svc.runtime_root):
        for name in _listing(folder):
            if is_full_id(name) and name not in keep:
                if folder == svc.runtime_root:
                    svc._runtime_delete(name)
                else:
                    shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    running = {r.id for r in svc.db.all() if r.state.get("Running")} | busy
    for name in _listing(svc.netns_dir):
        if name not in running:
            svc._release_netns(name)  # its run ended while skiffd was away


def _listing(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []
