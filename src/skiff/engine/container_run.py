"""``docker start`` and the end of each run, over the `ContainerService` that holds the
container.

`start` composes the OCI spec (`oci_spec`, with the user resolved in the container's own
/etc/passwd, the mounts the `VolumeService` makes ready and the attached capsules'), makes the container's network
namespace and wires it into the container's networks (`network_endpoints.attach_all`, with
its /etc/hosts and resolv.conf written for them) — or joins another's (``container:<id>``),
or, for a userns-remapped container, lets its runtime make it and wires it when the
runtime's hook asks (`wire_runtime_netns`, through `netns_wiring`) —, writes the bundle
under ``$SKIFF_RUN/containers/<id>`` and hands it to a monitor (the service's
`start_monitor`), which runs the container and outlives skiffd; a start that fails leaves the container as it was, with the error and exit code in its state (and an
AutoRemove container removed). `monitor_ended` is told when a run is over — by the
`ExitWatcher` when the monitor's exit file arrives or the monitor itself ends, and by
whoever finds a run's monitor gone: the exit file becomes the container's state (exit code,
time, OOM kill) once, with the ``die`` event, and wakes the waiters; a monitor that died
without writing one (killed) leaves a container nobody supervises, which is taken down and
reported as exited with ``monitor gone`` — never silently lost. What the run leaves (its
runtime container, its endpoints and network namespace, the volumes' mounts) is tidied on
another thread.
"""

from __future__ import annotations

import os
import threading
import time

from skiff import jsonfast
from skiff.engine.attach import stdio_of
from skiff.engine.container_capsules import start_mounts
from skiff.engine.container_config import log_limits
from skiff.engine.container_files import files_in, write_network_files
from skiff.engine.container_removal import remove_quietly
from skiff.engine.containers import MonitorRun, _now
from skiff.engine.oci_spec import compose_spec_json, resolve_user
from skiff.engine.userns_remap import maps_of
from skiff.errors import (ContainerConflict, InvalidArgument, KernelError, NoSuchContainer,
                          SkiffError)
from skiff.log import logger
from skiff.record import Record
from skiff.runtime import cgroup_warmup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.engine.containers import ContainerService, _Live
    from skiff.engine.oci_spec import ContainerFiles
    from skiff.engine.state_db import ContainerRow

_log = logger("skiff.engine.containers")
MONITOR_GONE = "monitor gone"
EXIT_UNKNOWN = 128  # moby's exit code for a start that failed for another reason
KILLED = 137  # what a container taken down with SIGKILL exits with


def start(svc: ContainerService, ref: str) -> bool:
    """``POST /containers/{id}/start``; False when it runs already (Docker's 304).
    A failed start raises the monitor's ContainerStartError (exit code 125, 126, 127)
    and leaves the container as it was, with the error in its state."""
    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    with live.lock:
        row = svc._row(cid)
        if svc._running(row):
            return False
        if live.removing or row.state.get("Status") in ("removing", "dead"):
            raise ContainerConflict("container is marked for removal and cannot be started")
        _launch(svc, row, live)
    return True


def _launch(svc: ContainerService, row: ContainerRow, live: _Live) -> None:
    # the kernel's toll for the first cgroup migration after an idle while (an RCU grace
    # period, 10-20 ms here, with the cgroup mutex held): paid from here, while the bundle
    # is written and the monitor forked, not by the runtime's create with init waiting
    cgroup_warmup.start()
    cid = row.id
    config, host = row.doc["Config"], row.doc["HostConfig"]
    bundle = svc.bundle_dir(cid)
    try:
        idmaps = maps_of(row.doc)
        rootfs = svc._mounted_rootfs(cid, row.image_id, idmaps)
        user = resolve_user(rootfs, config.get("User") or "", host.get("GroupAdd") or ())
        svc._runtime_delete(cid)  # what the last run left, if its tidying is under way
        svc._wiring_failed.pop(cid, None)  # a restart's its monitor made, told nobody
        plan = _network_of(svc, row, idmaps is not None)
        spec = compose_spec_json(cid, config, host, rootfs=rootfs, user=user,
                                 files=plan.files, cgroup_parent=svc.cgroup_parent,
                                 netns=plan.netns, idmaps=idmaps, userns=plan.userns,
                                 wiring_socket=plan.wiring_socket,
                                 mounts=svc.volumes.start_mounts(
                                     cid, row.doc.get("MountPoints") or ())
                                 + start_mounts(svc, row, rootfs))
        os.makedirs(bundle, 0o711, exist_ok=True)
        for stale in (svc._exit_file(cid), svc._pid_file(cid)):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        tmp = os.path.join(bundle, "config.json.tmp")
        with open(tmp, "w") as f:
            f.write(jsonfast.dumps(spec))
        os.replace(tmp, os.path.join(bundle, "config.json"))
        fresh = svc.supervisor.prepare(row, bundle)
        max_size, max_file = log_limits(host)
        started = _now()  # before: a quick program may be done before the call returns
        pid = svc.start_monitor(MonitorRun(
            container_id=cid, bundle=bundle, runtime_root=svc.runtime_root,
            log=svc.log_path(cid), exit_file=svc._exit_file(cid),
            pid_file=svc._pid_file(cid), log_max_size=max_size, log_max_file=max_file,
            monitor_log=os.path.join(bundle, "monitor.log"),
            stdio=stdio_of(config, bundle)))
    except SkiffError as e:
        # the wiring's own error, as a namespace the engine made gives it (a 409 for an
        # address taken), rather than the runtime's words for the hook that failed
        e = svc._wiring_failed.pop(cid, e)
        code = getattr(e, "exit_code", None) or EXIT_UNKNOWN
        _start_failed(svc, cid, str(e), int(code))
        if host.get("AutoRemove"):
            remove_quietly(svc, cid)
        raise e from None
    pids = svc._read_pid_file(cid)
    monitor_pid = pids[0] if pids else 0
    with svc._cond:
        state = svc._row(cid).state
        state.update(Status="running", Running=True, Paused=False, Restarting=False,
                     OOMKilled=False, Dead=False, Pid=pid, ExitCode=0, Error="",
                     StartedAt=started, MonitorPid=monitor_pid, **fresh)
        svc.db.set_state(cid, state)
        live.run, live.started = monitor_pid or -1, True
        svc._event(row, "start")  # under the condition: before any die of this run
        svc._cond.notify_all()
    _log.debug("container %s started: init %d, monitor %d", cid[:12], pid, monitor_pid)
    if monitor_pid:
        svc._watcher.watch(cid, monitor_pid, bundle)
    else:
        monitor_ended(svc, cid, 0)  # no monitor to watch: it cannot be running


class _NetworkPlan(Record):
    """How a start gives the container its network: the namespace it joins (None: its
    runtime makes one, or ``host``), the files bound over its /etc/hosts, resolv.conf and
    hostname, the socket its runtime's hook asks to wire the namespace the runtime makes
    (""), and the user namespace it joins with another's network namespace (None)."""

    netns: str | None
    files: ContainerFiles
    wiring_socket: str = ""
    userns: str | None = None


def _network_of(svc: ContainerService, row: ContainerRow, remapped: bool) -> _NetworkPlan:
    """Another container's namespace (``container:<id>``, which must be running; a remapped
    one joins its user namespace too, as moby: the namespace is that one's), none of its
    own (``host``; ``none`` under ``--userns-remap``, whose runtime makes one with only its
    loopback), one the runtime makes and the engine wires when the hook asks
    (`wire_runtime_netns`; a remapped container, whose root must own its namespace), or a
    new one wired into each of its networks now."""
    cid, host = row.id, row.doc["HostConfig"]
    mode = host["NetworkMode"]
    files = files_in(svc.container_dir(cid))
    if mode.startswith("container:"):
        other = svc._find(mode.partition(":")[2])
        if other.id == cid:
            raise InvalidArgument("cannot join own network namespace")
        if not svc._running(other):
            raise ContainerConflict(f"cannot join network namespace of a non running "
                                    f"container: {other.id}")
        pid = int(other.state.get("Pid") or 0)
        userns = f"/proc/{pid}/ns/user" if remapped and maps_of(other.doc) and pid else None
        return _NetworkPlan(svc.netns_path(other.id), files_in(svc.container_dir(other.id)),
                            userns=userns)
    if mode == "host" or (remapped and mode == "none"):
        return _NetworkPlan(None, files)
    from skiff.engine.netns import make_netns

    svc._release_netns(cid)  # a run's that ended while skiffd was away
    if remapped:
        return _NetworkPlan(None, files, svc.netns_wiring.ensure())
    netns = svc.netns_path(cid)
    make_netns(netns)
    _wire(svc, row, netns)
    return _NetworkPlan(netns, files)


def _wire(svc: ContainerService, row: ContainerRow, netns: str) -> None:
    """Wire the container's namespace at `netns` into each of its networks, publish its
    ports, write its /etc/hosts and resolv.conf for them and serve its DNS."""
    from skiff.engine.network_endpoints import attach_all, facts

    began = time.perf_counter()
    made = attach_all(svc.networks, row, netns)
    _log.debug("container %s: %d endpoint(s) in %.1f ms", row.id[:12], len(made),
               (time.perf_counter() - began) * 1e3)
    if svc.networks.ports is not None:
        svc.networks.ports.publish(row, made)
    files = files_in(svc.container_dir(row.id))
    try:
        write_network_files(files, row.doc["Config"], row.doc["HostConfig"],
                            facts(svc.networks, row))
    except OSError as e:
        raise KernelError.from_os("write", e, files.hosts) from None
    svc.networks.dns.refresh(row)  # 127.0.0.11 answers before the container's process runs


def wire_runtime_netns(svc: ContainerService, cid: str, key: str) -> None:
    """The hook of a remapped container's runtime asks (`netns_wiring`): keep the namespace
    its runtime made, at `key` (``/proc/<init pid>/ns/net``), where the engine keeps every
    container's (`netns_path`), and wire it as one the engine made; from then on its
    connect, disconnect, DNS, reconcile and end are those of any container. The live lock
    is not taken: the start that waits for this answer holds it. A namespace kept from the
    run before (a restart its monitor made) is let go first."""
    from skiff.engine.netns import bind_netns

    row = svc._row(cid)
    mode = row.doc["HostConfig"]["NetworkMode"]
    if maps_of(row.doc) is None or mode in ("host", "none") or mode.startswith("container:"):
        raise InvalidArgument(f"container {cid[:12]} has no network namespace of its "
                              f"runtime's for skiffd to wire")
    _check_init(cid, key)
    svc._release_netns(cid)
    netns = svc.netns_path(cid)
    began = time.perf_counter()
    try:
        bind_netns(key, netns)
        try:
            _wire(svc, row, netns)
        except BaseException:
            svc._release_netns(cid)
            raise
    except SkiffError as e:
        svc._wiring_failed[cid] = e
        raise
    _log.debug("container %s: its runtime's network namespace wired in %.1f ms", cid[:12],
               (time.perf_counter() - began) * 1e3)


def _check_init(cid: str, key: str) -> None:
    """`key` must be the namespace of a process of `cid` (in its cgroup, which the runtime
    joins before its hooks): a mistaken ask, of skiffd's own namespace say, is refused."""
    path = key.replace("/ns/net", "/cgroup")
    try:
        with open(path) as f:
            groups = f.read()
    except OSError as e:
        raise KernelError.from_os("open", e, path) from None
    if cid not in groups:
        raise InvalidArgument(f"{key} is not the network namespace of container {cid[:12]}")


def _start_failed(svc: ContainerService, cid: str, message: str, code: int) -> None:
    """Docker's start failure: the state keeps its status, with the error and code."""
    svc._runtime_delete(cid)
    svc._release_netns(cid)
    with svc._cond:
        row = svc.db.get(cid)
        if row is None:
            return
        row.state.update(Error=message, ExitCode=code)
        svc.db.set_state(cid, row.state)
        live = svc._live.get(cid)
        if live is not None:
            live.exits += 1  # a waiter for the next exit has nothing more to wait for
            live.exit_code, live.error = code, message
        svc._cond.notify_all()


def monitor_ended(svc: ContainerService, cid: str, monitor_pid: int) -> None:
    """The run of `cid` under `monitor_pid` is over — its exit file came, or its monitor
    is gone: record how it ended (once), then tidy up after it."""
    if monitor_pid > 0:
        _reap(monitor_pid)
    from skiff.engine.monitor.launch import monitor_alive, read_exit_file

    row = svc.db.get(cid)
    if row is None or not row.state.get("Running") or \
            int(row.state.get("MonitorPid") or 0) != monitor_pid:
        return
    status = read_exit_file(svc._exit_file(cid))
    if status is None:
        if monitor_pid > 0 and monitor_alive(monitor_pid, cid):
            return  # not over: an exit file being written, not yet whole
        # a monitor gone without an exit record leaves a container nobody reads or
        # watches: it is taken down before its end is told
        _log.warning("container %s: its monitor is gone without an exit record; "
                     "the container was taken down", cid[:12])
        svc._runtime_delete(cid)
        svc._release_netns(cid)
        ended = {"ExitCode": KILLED, "FinishedAt": _now(), "OOMKilled": False,
                 "Error": MONITOR_GONE}
    else:
        svc.supervisor.catch_up(cid, monitor_pid)  # the restarts before this end
        ended = {"ExitCode": status.exit_code, "FinishedAt": status.finished_at,
                 "OOMKilled": status.oom_killed, "Error": status.error,
                 "RestartCount": status.restart_count}
    if svc.networks.ports is not None:
        svc.networks.ports.run_ended(cid)  # its ports free when its end is told, as dockerd's
    if _record_exit(svc, cid, monitor_pid, ended):
        # told at once; what the run leaves (the runtime container, which its monitor
        # may still be deleting, and the network namespace) goes on another thread
        threading.Thread(target=_after_exit,
                         args=(svc, cid, bool(row.doc["HostConfig"].get("AutoRemove")),
                               row.doc.get("MountPoints") or []),
                         daemon=True, name="skiffd-after-exit").start()


def _after_exit(svc: ContainerService, cid: str, auto_remove: bool,
                points: list[dict[str, Any]]) -> None:
    svc.volumes.stopped(cid, points)  # told even when a removal took the row already
    if auto_remove:
        remove_quietly(svc, cid, volumes=True)  # which takes everything down
        return
    try:
        live = svc._live_of(cid)
    except NoSuchContainer:
        return
    with live.lock:
        if not live.running:  # a new run has tidied up before starting
            svc._runtime_delete(cid)
            svc._release_netns(cid)


def _record_exit(svc: ContainerService, cid: str, monitor_pid: int,
                 ended: dict[str, Any]) -> bool:
    with svc._cond:
        row = svc.db.get(cid)
        if row is None or not row.state.get("Running") or \
                int(row.state.get("MonitorPid") or 0) != monitor_pid:
            return False  # told already
        state = row.state
        state.update(Status="exited", Running=False, Paused=False, Restarting=False,
                     Pid=0, MonitorPid=0, **ended)
        svc.db.set_state(cid, state)
        live = svc._live.get(cid)
        if live is not None:
            live.run = 0
            live.exits += 1
            live.exit_code, live.error = int(ended["ExitCode"]), str(ended["Error"])
        if ended["OOMKilled"]:
            svc._event(row, "oom")
        svc._event(row, "die", {"exitCode": str(ended["ExitCode"])})
        svc._cond.notify_all()
    _log.debug("container %s exited %d", cid[:12], ended["ExitCode"])
    return True


def _reap(pid: int) -> None:
    # a monitor is not skiffd's child, but a test's fake may be: never leave a zombie
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass
