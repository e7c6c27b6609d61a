"""The container half of the engine: Docker's container lifecycle over skiff's runtime.

`ContainerService` answers the container endpoints in Docker's terms. This module holds what
every part of it shares — the containers' places under SKIFF_ROOT and SKIFF_RUN, how a
reference finds a row, what is kept in memory of each container (`_Live`), whether a run is
really going on, Docker's container event — and the endpoints, each a call of the module
that does it, over the service:

- `container_create`: ``create`` — the row, the rootfs snapshot, the volumes and the
  container's files, made together or not at all;
- `container_run`: ``start``, a run handed to its monitor (a `MonitorRun`, which
  `launch_monitor` here gives the service's `monitor.launch.MonitorLauncher`),
  and the end of each run made the container's state (`monitor_ended`, which the
  `ExitWatcher` tells);
- `container_stop`: ``stop``, ``kill``, ``restart`` and ``wait``;
- `container_removal`: ``rm`` and ``prune``;
- `container_reconcile`: at engine start, the state made true again after skiffd was away;
- `container_queries`: ``inspect``, ``ps``, ``logs`` and the hooks of the image, volume and
  system services.

The container's other verbs take the service too: `container_control` (pause, unpause,
rename, update), `container_stats` (top, stats), `container_archive` (cp, export, diff),
`container_capsules` (capsule attach and detach, over the engine's `CapsuleService`, which
the engine gives the service as `capsules`) and `commit`; restart policies and health checks are the `Supervisor`'s
(`container_supervision`). Its networks are the `NetworkService` it holds as `networks`
(`network_endpoints`: a container's endpoints, recorded at create, wired at each start and
taken down when the run ends — with its network namespace, in `_release_netns`); a remapped
container's runtime asks for its own namespace to be wired through `netns_wiring`.

Threads: the API calls in from many worker threads. Each container has an operation lock
(start, stop's signal, kill and remove of one container never interleave); state changes go
through one condition, which `wait` sleeps on; the database serialises itself.
"""

from __future__ import annotations

import functools
import os
import threading
import time

from skiff.engine.container_supervision import Supervisor
from skiff.engine.events import EventLog, actor_attributes
from skiff.engine.monitor.launch import MonitorLauncher, Stdio
from skiff.engine.exit_watch import ExitWatcher
from skiff.engine.names import is_full_id
from skiff.engine.userns_remap import Remap
from skiff.engine.state_db import ContainerRow, StateDB
from skiff.engine.times import rfc3339_nano
from skiff.engine.volumes import VolumeService
from skiff.errors import (
    ContainerConflict,
    InvalidArgument,
    NoSuchContainer,
    SkiffError,
    StoreError,
)
from skiff import jsonfast
from skiff.log import logger
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Iterator
    from typing import Any

    from skiff.engine.capsules import CapsuleService
    from skiff.engine.images import ImageUser
    from skiff.engine.system import ContainerCounts
    from skiff.kernel.idmap import IdMaps
    from skiff.store.images import ImageStore

_log = logger("skiff.engine.containers")


class MonitorRun(Record):
    """What a start hands the monitor: the container and where its files go."""

    container_id: str
    bundle: str
    runtime_root: str
    log: str
    exit_file: str
    pid_file: str
    log_max_size: int = -1
    log_max_file: int = 1
    monitor_log: str | None = None
    stdio: Stdio | None = None  # -t, -i and the attach socket


def launch_monitor(launcher: MonitorLauncher, run: MonitorRun) -> int:
    """Start a real monitor (`monitor.launch`); the container's init pid."""
    return launcher.start(run.container_id, bundle=run.bundle, runtime_root=run.runtime_root,
                          log_path=run.log, exit_file=run.exit_file, pid_file=run.pid_file,
                          log_max_size=run.log_max_size, log_max_file=run.log_max_file,
                          monitor_log=run.monitor_log, stdio=run.stdio)


class _Live:
    """What the service keeps in memory of one container: its operation lock and what
    `wait` and `logs` watch (the run under way, the exits seen, the last exit)."""

    __slots__ = ("lock", "run", "exits", "exit_code", "error", "removing", "removed",
                 "started")

    def __init__(self, state: dict[str, Any]) -> None:
        self.lock = threading.RLock()
        self.run = int(state.get("MonitorPid") or 0) if state.get("Running") else 0
        self.exits = 0  # exits (and failed starts) seen since skiffd started
        self.exit_code = int(state.get("ExitCode") or 0)
        self.error = str(state.get("Error") or "")
        self.removing = False
        self.removed = False
        self.started = self.run != 0 or bool(state.get("StartedAt"))  # it has run, or runs

    @property
    def running(self) -> bool:
        return self.run != 0


def _never() -> bool:
    return False


def _now() -> str:
    return rfc3339_nano(time.time())


def _swap_limit() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers") or os.path.exists(
        "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


class ContainerService:
    """Docker's container operations over `store` (the image store), with the containers'
    state under `root` (SKIFF_ROOT) and their run-time files under `run` (SKIFF_RUN).
    `cgroup_parent` holds every container's cgroup (``<parent>/<id>``); `start_monitor`
    starts a monitor for a run and gives its init's pid (a seam for tests)."""

    def __init__(self, store: ImageStore, root: str, run: str, *, cgroup_parent: str = "/skiff",
                 start_monitor: Callable[[MonitorRun], int] | None = None,
                 events: EventLog | None = None, remap: Remap | None = None,
                 bridge_name: str = "", bridge_subnet: str = "") -> None:
        from skiff.engine.networks import DEFAULT_BRIDGE, DEFAULT_SUBNET, NetworkService
        from skiff.store.snapshots import Snapshotter

        self.store = store
        self.root = root
        self.run = run
        self.cgroup_parent = cgroup_parent
        self.db = StateDB(os.path.join(root, "skiff.db"))
        self.snapshots = Snapshotter(root)
        self.containers_dir = os.path.join(root, "containers")
        self.bundles_dir = os.path.join(run, "containers")
        self.runtime_root = os.path.join(run, "runtime")
        self.netns_dir = os.path.join(run, "netns")
        self.monitors = MonitorLauncher()  # its zygote starts at the first container's start
        self.start_monitor = start_monitor or functools.partial(launch_monitor, self.monitors)
        self.events = events or EventLog()
        self.remap = remap  # skiffd --userns-remap
        self.volumes = VolumeService(root, self.events)
        self.volumes.users = self.volume_users
        self.networks = NetworkService(self.db, self.events,
                                       bridge_name=bridge_name or DEFAULT_BRIDGE,
                                       bridge_subnet=bridge_subnet or DEFAULT_SUBNET)
        self.networks.containers = self
        from skiff.engine.network_ports import NetworkPorts
        from skiff.net.firewall import table_for_run

        self.networks.ports = NetworkPorts(self.networks, table_for_run(run))
        from skiff.engine.netns_wiring import SOCKET_NAME, NetnsWiring

        # served from the first remapped container's start (or a reconcile that finds one)
        self.netns_wiring = NetnsWiring(os.path.join(run, SOCKET_NAME), self._wire_runtime_netns)
        self.capsules: CapsuleService | None = None  # the engine's, set with its hooks
        self._cond = threading.Condition()
        self._live: dict[str, _Live] = {}
        self._reserved: dict[str, str] = {}  # name → ID, while its create is under way
        self._creating: dict[str, str] = {}  # ID → image ID, while its create is under way
        self._image_configs: dict[str, dict[str, Any]] = {}
        self._prune_lock = threading.Lock()
        # cid → why its runtime's namespace could not be wired: its start's error, not the hook's
        self._wiring_failed: dict[str, SkiffError] = {}
        self.supervisor = Supervisor(self)
        self._watcher = ExitWatcher(self._monitor_ended, self.supervisor.on_file)
        self._root_lock = -1

    def close(self) -> None:
        """Stop watching (the containers go on running), end the monitors' zygote, close the
        database, and take the cgroup parent if no container is left below it."""
        self._watcher.close()
        self.monitors.close()
        self.netns_wiring.close()
        self.networks.close()
        from skiff.runtime.cgroups import prune_parent
        prune_parent(self.cgroup_parent)  # when no container's cgroup is left below it
        self.db.close()
        if self._root_lock >= 0:
            os.close(self._root_lock)  # the lock goes with the fd
            self._root_lock = -1

    def _lock_root(self) -> None:
        """One engine per root: two would each think they supervise the same containers."""
        import fcntl

        os.makedirs(self.root, exist_ok=True)
        path = os.path.join(self.root, "containers.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"another engine (skiffd) is using {self.root}: one root, one "
                             f"daemon") from None
        self._root_lock = fd

    # -- places -----------------------------------------------------------------------------
    def container_dir(self, cid: str) -> str:
        return os.path.join(self.containers_dir, cid)

    def log_path(self, cid: str) -> str:
        return os.path.join(self.container_dir(cid), f"{cid}-json.log")

    def bundle_dir(self, cid: str) -> str:
        return os.path.join(self.bundles_dir, cid)

    def _exit_file(self, cid: str) -> str:
        return os.path.join(self.bundle_dir(cid), "exit.json")

    def _pid_file(self, cid: str) -> str:
        return os.path.join(self.bundle_dir(cid), "monitor.pid")

    def netns_path(self, cid: str) -> str:
        """Where a running container's own network namespace is kept (its SandboxKey)."""
        return os.path.join(self.netns_dir, cid)

    def _wire_runtime_netns(self, cid: str, key: str) -> None:
        from skiff.engine.container_run import wire_runtime_netns

        wire_runtime_netns(self, cid, key)

    def _release_netns(self, cid: str) -> None:
        """What a run held of the network: its endpoints (veths, addresses), its namespace."""
        from skiff.engine.network_endpoints import detach_all
        from skiff.engine.netns import release_netns

        self.networks.dns.forget(cid)  # first: its sockets would keep the namespace alive
        began = time.perf_counter()
        try:
            detach_all(self.networks, cid)
            _log.debug("container %s: endpoints taken down in %.1f ms", cid[:12],
                       (time.perf_counter() - began) * 1e3)
        except SkiffError as e:
            _log.warning("container %s: %s", cid[:12], e)
        try:
            release_netns(self.netns_path(cid))
        except SkiffError as e:
            _log.warning("container %s: %s", cid[:12], e)

    # -- finding ----------------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """The full ID of the container `ref` names: its ID, a unique prefix of it, or its
        name (with or without the leading ``/``), as Docker looks them up."""
        return self._find(ref).id

    def _find(self, ref: str) -> ContainerRow:
        if not isinstance(ref, str) or not ref:
            raise NoSuchContainer(str(ref))
        if is_full_id(ref):
            row = self.db.get(ref)
            if row is not None:
                return row
        row = self.db.by_name(ref[1:] if ref.startswith("/") else ref)
        if row is not None:
            return row
        ids = self.db.ids_starting(ref)
        if len(ids) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        if ids:
            row = self.db.get(ids[0])
            if row is not None:
                return row
        raise NoSuchContainer(ref)

    def _row(self, cid: str) -> ContainerRow:
        row = self.db.get(cid)
        if row is None:
            raise NoSuchContainer(cid)
        return row

    def _live_of(self, cid: str) -> _Live:
        with self._cond:
            live = self._live.get(cid)
            if live is None:
                live = self._live[cid] = _Live(self._row(cid).state)
            return live

    # -- what the parts share ---------------------------------------------------------------
    def _image_config(self, image_id: str) -> dict[str, Any]:
        found = self._image_configs.get(image_id)
        if found is None:
            doc = jsonfast.loads(self.store.blobs.read_bytes(image_id))
            found = self._image_configs[image_id] = doc if isinstance(doc, dict) else {}
        return found

    @staticmethod
    def _name_conflict(name: str, holder: str) -> ContainerConflict:
        return ContainerConflict(
            f'Conflict. The container name "/{name}" is already in use by container '
            f'"{holder}". You have to remove (or rename) that container to be able to '
            f'reuse that name.')

    def _mounted_rootfs(self, cid: str, image_id: str, idmaps: IdMaps | None = None) -> str:
        """The rootfs of the snapshot, mounted again if it is not (after a host reboot)."""
        rootfs = self.snapshots.rootfs(cid)
        if self.snapshots.mounted(cid):
            return rootfs
        if not self.snapshots.exists(cid):
            raise StoreError(f"container {cid}: its rootfs snapshot is gone")
        try:
            return self.snapshots.mount(cid, idmap=idmaps)
        except StoreError:  # a snapshot that records no stack: its image's, if still there
            return self.snapshots.mount(cid, self.store.rootfs_layers(self.store.get(image_id)),
                                        idmaps)

    def _read_pid_file(self, cid: str) -> tuple[int, int] | None:
        from skiff.engine.monitor.launch import read_pid_file

        return read_pid_file(self._pid_file(cid))

    def _running(self, row: ContainerRow) -> bool:
        """Whether the row's run is really going on: a row that says running whose monitor
        is gone gets its exit recorded first."""
        if not row.state.get("Running"):
            return False
        from skiff.engine.monitor.launch import monitor_alive

        monitor_pid = int(row.state.get("MonitorPid") or 0)
        if monitor_alive(monitor_pid, row.id):
            return True
        self._monitor_ended(row.id, monitor_pid)
        return False

    def _runtime_delete(self, cid: str) -> None:
        from skiff.errors import ContainerNotFound
        from skiff.runtime.delete import delete
        from skiff.runtime.state import StateStore

        try:
            delete(StateStore(self.runtime_root), cid, force=True)
        except ContainerNotFound:
            pass  # its monitor deleted it meanwhile
        except SkiffError as e:
            _log.warning("container %s: delete its runtime container: %s", cid[:12], e)

    def _event(self, row: ContainerRow, action: str, more: dict[str, str] | None = None) -> None:
        """Docker's container event: the labels, ``image`` (as the user named it) and
        ``name`` of the container, over the event's own attributes. Every container module
        tells its events through it."""
        config = row.doc["Config"]
        named = {"name": row.name}
        if config.get("Image"):
            named["image"] = str(config["Image"])
        self.events.emit("container", action, row.id,
                         actor_attributes(config.get("Labels"), more, **named))

    # -- the endpoints, each in its module --------------------------------------------------
    def create(self, body: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        """``POST /containers/create`` (`container_create.create`)."""
        from skiff.engine.container_create import create

        return create(self, body, name)

    def start(self, ref: str) -> bool:
        """``POST /containers/{id}/start`` (`container_run.start`)."""
        from skiff.engine.container_run import start

        return start(self, ref)

    def _monitor_ended(self, cid: str, monitor_pid: int) -> None:
        """The run of `cid` under `monitor_pid` is over (`container_run.monitor_ended`)."""
        from skiff.engine.container_run import monitor_ended

        monitor_ended(self, cid, monitor_pid)

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> bool:
        """``POST /containers/{id}/stop`` (`container_stop.stop`)."""
        from skiff.engine.container_stop import stop

        return stop(self, ref, timeout, signal)

    def kill(self, ref: str, signal: str = "KILL") -> None:
        """``POST /containers/{id}/kill`` (`container_stop.kill`)."""
        from skiff.engine.container_stop import kill

        kill(self, ref, signal)

    def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        """``POST /containers/{id}/restart`` (`container_stop.restart`)."""
        from skiff.engine.container_stop import restart

        restart(self, ref, timeout, signal)

    def wait(self, ref: str, condition: str = "not-running",
             ready: Callable[[], None] | None = None,
             cancelled: Callable[[], bool] = _never) -> dict[str, Any]:
        """``POST /containers/{id}/wait`` (`container_stop.wait`)."""
        from skiff.engine.container_stop import wait

        return wait(self, ref, condition, ready, cancelled)

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """``DELETE /containers/{id}`` (`container_removal.remove`)."""
        from skiff.engine.container_removal import remove

        remove(self, ref, force, volumes)

    def prune(self, filters: Any = None) -> dict[str, Any]:
        """``POST /containers/prune`` (`container_removal.prune`)."""
        from skiff.engine.container_removal import prune

        return prune(self, filters)

    def reconcile(self) -> None:
        """At engine start (`container_reconcile.reconcile`)."""
        from skiff.engine.container_reconcile import reconcile

        reconcile(self)

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        """``GET /containers/{id}/json`` (`container_queries.inspect`)."""
        from skiff.engine.container_queries import inspect

        return inspect(self, ref, size)

    def list(self, all: bool = False, limit: int = -1, filters: Any = None,
             size: bool = False) -> builtins.list[dict[str, Any]]:
        """``GET /containers/json`` (`container_queries.list_containers`)."""
        from skiff.engine.container_queries import list_containers

        return list_containers(self, all, limit, filters, size)

    def logs(self, ref: str, stdout: bool = True, stderr: bool = True, follow: bool = False,
             since: str = "", until: str = "", timestamps: bool = False,
             tail: str = "all", cancelled: Callable[[], bool] = _never
             ) -> Iterator[tuple[int, bytes]]:
        """``GET /containers/{id}/logs`` (`container_queries.logs`)."""
        from skiff.engine.container_queries import logs

        return logs(self, ref, stdout, stderr, follow, since, until, timestamps, tail,
                    cancelled)

    def attach_capsule(self, ref: str, request: str,
                       target: str | None = None) -> dict[str, Any]:
        """``POST /containers/{id}/capsules`` (`container_capsules.attach`)."""
        from skiff.engine.container_capsules import attach

        return attach(self, ref, request, target)

    def detach_capsule(self, ref: str, name: str) -> None:
        """``DELETE /containers/{id}/capsules/{name}`` (`container_capsules.detach`)."""
        from skiff.engine.container_capsules import detach

        detach(self, ref, name)

    def capsule_users(self) -> builtins.list[tuple[str, builtins.list[str]]]:
        """CapsuleService.users (`container_capsules.users`)."""
        from skiff.engine.container_capsules import users

        return users(self)

    def detach_capsule_from(self, ref: str, container_ids: builtins.list[str]) -> None:
        """CapsuleService.detach: a forced capsule rm (`container_capsules.detach_from`)."""
        from skiff.engine.container_capsules import detach_from

        detach_from(self, ref, container_ids)

    def image_users(self, image_id: str) -> builtins.list[ImageUser]:
        """ImageService.in_use (`container_queries.image_users`)."""
        from skiff.engine.container_queries import image_users

        return image_users(self, image_id)

    def volume_users(self) -> builtins.list[tuple[str, bool, builtins.list[str]]]:
        """VolumeService.users (`container_queries.volume_users`)."""
        from skiff.engine.container_queries import volume_users

        return volume_users(self)

    def counts(self) -> ContainerCounts:
        """SystemService.containers (`container_queries.counts`)."""
        from skiff.engine.container_queries import counts

        return counts(self)
