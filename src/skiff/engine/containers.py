"""The container half of the engine: Docker's container lifecycle over skiff's runtime.

`ContainerService` answers the container endpoints in Docker's terms. `create` checks the
request (`container_config`), takes a name (the user's, or a Docker-like random one), makes
the container's rootfs snapshot over its image's layers, gets its volumes from the
`VolumeService` (made, copied up), writes its /etc/hostname, hosts and resolv.conf and stores
its row; if any step fails, what the earlier ones made is undone.
`start` composes the OCI spec (`oci_spec`, with the user resolved in the container's own
/etc/passwd), writes the bundle under ``$SKIFF_RUN/containers/<id>`` and hands it to a
monitor (`monitor.launch.MonitorLauncher`), which runs the container and outlives skiffd.
The volume service mounts what a start needs and is told of each run's end and of ``rm -v``.
`stop`, `kill` and `restart` signal the container through the runtime library on
``$SKIFF_RUN/runtime``; `wait` blocks until Docker's conditions hold; `remove` takes the
container down (killing it first when forced) with its snapshot, bundle, logs and row;
`inspect`, `list`, `logs` and `prune` read it back in Docker's shapes (`container_views`).
Each step tells dockerd's event to `events` (`_event`: the labels, image and name), ``die``
once per run, where the exit is recorded.

The `ExitWatcher` tells of a run's end when the monitor's exit file arrives (and of a
monitor's own end): the file becomes the container's state (exit code, time, OOM kill) and
wakes the waiters; a monitor that died without writing one (killed) leaves a container
nobody supervises, which is taken down and reported as exited with ``monitor gone`` —
never silently lost. `reconcile`, at engine
start, does the same for everything that happened while skiffd was away: running
containers whose monitor lives are watched again (live restore), the others get their exit,
and what a create or remove cut short is finished or cleared.

Threads: the API calls in from many worker threads. Each container has an operation lock
(start, stop's signal, kill and remove of one container never interleave); state changes go
through one condition, which `wait` sleeps on; the database serialises itself.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from contextlib import ExitStack, contextmanager

from skiff.engine.attach import stdio_of
from skiff.engine.container_config import log_limits, parse_create, parse_signal
from skiff.engine.container_files import files_in, make_working_dir, write_files
from skiff.engine.container_supervision import Supervisor
from skiff.engine.container_views import ListFilter, inspect_doc, summary
from skiff.engine.events import EventLog, actor_attributes
from skiff.engine.monitor.launch import MonitorLauncher, Stdio
from skiff.engine.exit_watch import ExitWatcher
from skiff.engine.filters import Filters, until_timestamp
from skiff.engine.names import check_name, free_name, is_full_id, new_id
from skiff.engine.oci_spec import compose_spec, compose_spec_json, resolve_user
from skiff.engine.userns_remap import Remap, container_maps, maps_doc, maps_of
from skiff.engine.state_db import ContainerRow, NameTaken, StateDB
from skiff.engine.times import parse_time, rfc3339_nano
from skiff.engine.volumes import VolumeService
from skiff.errors import (
    ContainerConflict,
    ImageNotFound,
    InvalidArgument,
    NoSuchContainer,
    RuntimeError_,
    SkiffError,
    StoreError,
)
from skiff import jsonfast
from skiff.log import logger
from skiff.record import Record
from skiff.store.volumes import tree_size as _tree_size  # Docker's SizeRw of an upper dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Iterator
    from typing import Any

    from skiff.engine.images import ImageUser
    from skiff.engine.system import ContainerCounts
    from skiff.kernel.idmap import IdMaps
    from skiff.store.images import ImageStore

_log = logger("skiff.engine.containers")
MONITOR_GONE = "monitor gone"
EXIT_UNKNOWN = 128  # moby's exit code for a start that failed for another reason
KILLED = 137  # what a container taken down with SIGKILL exits with
KILL_WAIT = 10.0  # seconds a SIGKILLed container may take to be reported gone
RECHECK = 0.5  # seconds between checks, while waiting, that a run is still supervised
DEFAULT_STOP_TIMEOUT = 10
PRUNE_FILTERS = ("label", "label!", "until")
_SIGKILL = 9
_SIGTERM = 15


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


def _created_state() -> dict[str, Any]:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": "", "FinishedAt": "", "MonitorPid": 0, "RestartCount": 0}


def _now() -> str:
    return rfc3339_nano(time.time())


def _swap_limit() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers") or os.path.exists(
        "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _listing(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def _reap(pid: int) -> None:
    # a monitor is not skiffd's child, but a test's fake may be: never leave a zombie
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


class ContainerService:
    """Docker's container operations over `store` (the image store), with the containers'
    state under `root` (SKIFF_ROOT) and their run-time files under `run` (SKIFF_RUN).
    `cgroup_parent` holds every container's cgroup (``<parent>/<id>``); `start_monitor`
    starts a monitor for a run and gives its init's pid (a seam for tests)."""

    def __init__(self, store: ImageStore, root: str, run: str, *, cgroup_parent: str = "/skiff",
                 start_monitor: Callable[[MonitorRun], int] | None = None,
                 events: EventLog | None = None, remap: Remap | None = None) -> None:
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
        self._cond = threading.Condition()
        self._live: dict[str, _Live] = {}
        self._reserved: dict[str, str] = {}  # name → ID, while its create is under way
        self._creating: dict[str, str] = {}  # ID → image ID, while its create is under way
        self._image_configs: dict[str, dict[str, Any]] = {}
        self._prune_lock = threading.Lock()
        self.supervisor = Supervisor(self)
        self._watcher = ExitWatcher(self._monitor_ended, self.supervisor.on_file)
        self._root_lock = -1

    def close(self) -> None:
        """Stop watching (the containers go on running) and close the database."""
        self._watcher.close()
        self.monitors.close()
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

    def _release_netns(self, cid: str) -> None:
        from skiff.engine.netns import release_netns

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

    # -- create -----------------------------------------------------------------------------
    def create(self, body: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        """``POST /containers/create``: ``{"Id", "Warnings"}``. Nothing is left of a create
        that fails."""
        wanted = check_name(name) if name else None
        ref = body.get("Image") if isinstance(body, dict) else None
        image = self.store.get(ref) if isinstance(ref, str) and ref else None
        image_config = self._image_config(image.id).get("config") if image else None
        request = parse_create(body, image_config if isinstance(image_config, dict) else None,
                               swap_limit=_swap_limit(), mounts_of=self._mounts_of)
        assert image is not None  # parse_create refuses a body without an image
        cid = new_id()
        config = dict(request.config)
        config.setdefault("Hostname", "")
        if not config["Hostname"]:
            config["Hostname"] = cid[:12]
        host = request.host_config
        folder = self.container_dir(cid)
        idmaps = container_maps(self.remap, host)
        # the whole spec, once, so that what the runtime would refuse is refused now
        compose_spec(cid, config, host, rootfs="/", files=files_in(folder),
                     cgroup_parent=self.cgroup_parent, devices=list, idmaps=idmaps)
        with self._reservation(wanted, cid, image.id) as chosen:
            row = ContainerRow(id=cid, name=chosen, image_id=image.id, created=_now(),
                               doc={"Config": config, "HostConfig": host, "Path": request.path,
                                    "Args": list(request.args), "Platform": "linux",
                                    **({"IdMaps": maps_doc(idmaps)} if idmaps else {})},
                               state=_created_state())
            with ExitStack() as undo:
                rootfs = self.snapshots.prepare(cid, self.store.rootfs_layers(image), idmaps)
                undo.callback(self._drop_snapshot, cid)
                points = self.volumes.attach(cid, request.mounts, rootfs)
                undo.callback(self.volumes.drop_anonymous, points)
                undo.callback(self.volumes.settle, cid)  # first: its claim goes before them
                row.doc["MountPoints"] = points
                os.makedirs(self.containers_dir, exist_ok=True)
                os.mkdir(folder, 0o710)
                undo.callback(_rmtree, folder)
                if idmaps is not None:  # as Docker: its root may reach the files bound in
                    os.chown(folder, 0, idmaps.host_ids()[1])
                write_files(files_in(folder), config, host)
                if idmaps is not None:  # root's inside, as Docker chowns them
                    bound = files_in(folder)
                    for path in (bound.hostname, bound.hosts, bound.resolv_conf):
                        os.chown(path, *idmaps.host_ids())
                if config.get("WorkingDir"):
                    made = make_working_dir(rootfs, config["WorkingDir"])
                    if idmaps is not None:  # the container's root owns what it did not have
                        os.chown(made, *idmaps.host_ids())
                try:
                    self.db.insert(row)
                except NameTaken as e:
                    raise self._name_conflict(e.name, e.holder) from None
                undo.pop_all()
                self.volumes.settle(cid)
            with self._cond:
                self._live[cid] = _Live(row.state)
            self._event(row, "create")
        _log.debug("container %s (%s) created from %s", cid[:12], chosen, image.id[:19])
        return {"Id": cid, "Warnings": list(request.warnings)}

    def _mounts_of(self, ref: str) -> builtins.list[dict[str, Any]]:
        """The mount points of the container `ref` (what --volumes-from takes)."""
        return list(self._find(ref).doc.get("MountPoints") or [])

    @staticmethod
    def _name_conflict(name: str, holder: str) -> ContainerConflict:
        return ContainerConflict(
            f'Conflict. The container name "/{name}" is already in use by container '
            f'"{holder}". You have to remove (or rename) that container to be able to '
            f'reuse that name.')

    @contextmanager
    def _reservation(self, name: str | None, cid: str, image_id: str) -> Iterator[str]:
        """Hold `name` (or a free random one) for the create of `cid` while it runs."""
        with self._cond:
            if name is None:
                held = self.db.names()
                name = free_name(lambda n: n in held or n in self._reserved)
            else:
                row = self.db.by_name(name)
                holder = self._reserved.get(name) or (row.id if row is not None else None)
                if holder is not None:
                    raise self._name_conflict(name, holder)
            self._reserved[name] = cid
            self._creating[cid] = image_id
        try:
            yield name
        finally:
            with self._cond:
                self._reserved.pop(name, None)
                self._creating.pop(cid, None)

    def _image_config(self, image_id: str) -> dict[str, Any]:
        found = self._image_configs.get(image_id)
        if found is None:
            doc = jsonfast.loads(self.store.blobs.read_bytes(image_id))
            found = self._image_configs[image_id] = doc if isinstance(doc, dict) else {}
        return found

    def _drop_snapshot(self, cid: str) -> None:
        try:
            if self.snapshots.exists(cid):
                self.snapshots.remove(cid)
        except StoreError as e:
            _log.warning("container %s: %s", cid[:12], e)

    # -- start ------------------------------------------------------------------------------
    def start(self, ref: str) -> bool:
        """``POST /containers/{id}/start``; False when it runs already (Docker's 304).
        A failed start raises the monitor's ContainerStartError (exit code 125, 126, 127)
        and leaves the container as it was, with the error in its state."""
        cid = self.resolve(ref)
        live = self._live_of(cid)
        with live.lock:
            row = self._row(cid)
            if self._running(row):
                return False
            if live.removing or row.state.get("Status") in ("removing", "dead"):
                raise ContainerConflict("container is marked for removal and cannot be started")
            self._launch(row, live)
        return True

    def _launch(self, row: ContainerRow, live: _Live) -> None:
        cid = row.id
        config, host = row.doc["Config"], row.doc["HostConfig"]
        bundle = self.bundle_dir(cid)
        try:
            idmaps = maps_of(row.doc)
            rootfs = self._mounted_rootfs(cid, row.image_id, idmaps)
            user = resolve_user(rootfs, config.get("User") or "", host.get("GroupAdd") or ())
            self._runtime_delete(cid)  # what the last run left, if its tidying is under way
            netns = None
            if host["NetworkMode"] != "host" and idmaps is None:
                from skiff.engine.netns import make_netns

                netns = self.netns_path(cid)
                self._release_netns(cid)  # a run's that ended while skiffd was away
                make_netns(netns)
            spec = compose_spec_json(cid, config, host, rootfs=rootfs, user=user,
                                     files=files_in(self.container_dir(cid)),
                                     cgroup_parent=self.cgroup_parent, netns=netns,
                                     idmaps=idmaps,
                                     mounts=self.volumes.start_mounts(
                                         cid, row.doc.get("MountPoints") or ()))
            os.makedirs(bundle, 0o711, exist_ok=True)
            for stale in (self._exit_file(cid), self._pid_file(cid)):
                try:
                    os.unlink(stale)
                except FileNotFoundError:
                    pass
            tmp = os.path.join(bundle, "config.json.tmp")
            with open(tmp, "w") as f:
                f.write(jsonfast.dumps(spec))
            os.replace(tmp, os.path.join(bundle, "config.json"))
            fresh = self.supervisor.prepare(row, bundle)
            max_size, max_file = log_limits(host)
            started = _now()  # before: a quick program may be done before the call returns
            pid = self.start_monitor(MonitorRun(
                container_id=cid, bundle=bundle, runtime_root=self.runtime_root,
                log=self.log_path(cid), exit_file=self._exit_file(cid),
                pid_file=self._pid_file(cid), log_max_size=max_size, log_max_file=max_file,
                monitor_log=os.path.join(bundle, "monitor.log"),
                stdio=stdio_of(config, bundle)))
        except SkiffError as e:
            code = getattr(e, "exit_code", None) or EXIT_UNKNOWN
            self._start_failed(cid, str(e), int(code))
            if host.get("AutoRemove"):
                self._remove_quietly(cid)
            raise
        pids = self._read_pid_file(cid)
        monitor_pid = pids[0] if pids else 0
        with self._cond:
            state = self._row(cid).state
            state.update(Status="running", Running=True, Paused=False, Restarting=False,
                         OOMKilled=False, Dead=False, Pid=pid, ExitCode=0, Error="",
                         StartedAt=started, MonitorPid=monitor_pid, **fresh)
            self.db.set_state(cid, state)
            live.run, live.started = monitor_pid or -1, True
            self._event(row, "start")  # under the condition: before any die of this run
            self._cond.notify_all()
        _log.debug("container %s started: init %d, monitor %d", cid[:12], pid, monitor_pid)
        if monitor_pid:
            self._watcher.watch(cid, monitor_pid, bundle)
        else:
            self._monitor_ended(cid, 0)  # no monitor to watch: it cannot be running

    def _start_failed(self, cid: str, message: str, code: int) -> None:
        """Docker's start failure: the state keeps its status, with the error and code."""
        self._runtime_delete(cid)
        self._release_netns(cid)
        with self._cond:
            row = self.db.get(cid)
            if row is None:
                return
            row.state.update(Error=message, ExitCode=code)
            self.db.set_state(cid, row.state)
            live = self._live.get(cid)
            if live is not None:
                live.exits += 1  # a waiter for the next exit has nothing more to wait for
                live.exit_code, live.error = code, message
            self._cond.notify_all()

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

    # -- exits ------------------------------------------------------------------------------
    def _monitor_ended(self, cid: str, monitor_pid: int) -> None:
        """The run of `cid` under `monitor_pid` is over — its exit file came, or its monitor
        is gone: record how it ended (once), then tidy up after it."""
        if monitor_pid > 0:
            _reap(monitor_pid)
        from skiff.engine.monitor.launch import monitor_alive, read_exit_file

        row = self.db.get(cid)
        if row is None or not row.state.get("Running") or \
                int(row.state.get("MonitorPid") or 0) != monitor_pid:
            return
        status = read_exit_file(self._exit_file(cid))
        if status is None:
            if monitor_pid > 0 and monitor_alive(monitor_pid, cid):
                return  # not over: an exit file being written, not yet whole
            # a monitor gone without an exit record leaves a container nobody reads or
            # watches: it is taken down before its end is told
            _log.warning("container %s: its monitor is gone without an exit record; "
                         "the container was taken down", cid[:12])
            self._runtime_delete(cid)
            self._release_netns(cid)
            ended = {"ExitCode": KILLED, "FinishedAt": _now(), "OOMKilled": False,
                     "Error": MONITOR_GONE}
        else:
            self.supervisor.catch_up(cid, monitor_pid)  # the restarts before this end
            ended = {"ExitCode": status.exit_code, "FinishedAt": status.finished_at,
                     "OOMKilled": status.oom_killed, "Error": status.error,
                     "RestartCount": status.restart_count}
        if self._record_exit(cid, monitor_pid, ended):
            # told at once; what the run leaves (the runtime container, which its monitor
            # may still be deleting, and the network namespace) goes on another thread
            threading.Thread(target=self._after_exit,
                             args=(cid, bool(row.doc["HostConfig"].get("AutoRemove")),
                                   row.doc.get("MountPoints") or []),
                             daemon=True, name="skiffd-after-exit").start()

    def _after_exit(self, cid: str, auto_remove: bool,
                    points: builtins.list[dict[str, Any]]) -> None:
        self.volumes.stopped(cid, points)  # told even when a removal took the row already
        if auto_remove:
            self._remove_quietly(cid, volumes=True)  # which takes everything down
            return
        try:
            live = self._live_of(cid)
        except NoSuchContainer:
            return
        with live.lock:
            if not live.running:  # a new run has tidied up before starting
                self._runtime_delete(cid)
                self._release_netns(cid)

    def _record_exit(self, cid: str, monitor_pid: int, ended: dict[str, Any]) -> bool:
        with self._cond:
            row = self.db.get(cid)
            if row is None or not row.state.get("Running") or \
                    int(row.state.get("MonitorPid") or 0) != monitor_pid:
                return False  # told already
            state = row.state
            state.update(Status="exited", Running=False, Paused=False, Restarting=False,
                         Pid=0, MonitorPid=0, **ended)
            self.db.set_state(cid, state)
            live = self._live.get(cid)
            if live is not None:
                live.run = 0
                live.exits += 1
                live.exit_code, live.error = int(ended["ExitCode"]), str(ended["Error"])
            if ended["OOMKilled"]:
                self._event(row, "oom")
            self._event(row, "die", {"exitCode": str(ended["ExitCode"])})
            self._cond.notify_all()
        _log.debug("container %s exited %d", cid[:12], ended["ExitCode"])
        return True

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

    def _await(self, cid: str, live: _Live, done: Callable[[], bool],
               timeout: float | None) -> bool:
        """Wait until `done()` (checked under the condition); False on timeout. Every
        RECHECK seconds the run under way is checked to still have its monitor, so that an
        exit the watcher missed is found all the same."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                left = None if deadline is None else deadline - time.monotonic()
                step = RECHECK if left is None else max(0.0, min(RECHECK, left))
                if self._cond.wait_for(done, step):
                    return True
                if left is not None and left <= step:
                    return done()
                run = live.run
            if run > 0:
                from skiff.engine.monitor.launch import monitor_alive

                if not monitor_alive(run, cid):
                    self._monitor_ended(cid, run)

    def _wait_run_over(self, cid: str, run: int, timeout: float | None) -> bool:
        """Wait until the run `run` of `cid` has ended; False on timeout."""
        live = self._live_of(cid)
        return self._await(cid, live, lambda: live.run != run or live.removed, timeout)

    # -- signals ----------------------------------------------------------------------------
    def _signal(self, cid: str, sig: int) -> None:
        from skiff.runtime.kill import kill
        from skiff.runtime.state import StateStore

        row = self.db.get(cid)
        if row is not None:
            # told whether or not the signal lands, as dockerd does; before it is sent, so
            # that the die it may cause (told by the exit watcher's thread) comes after
            self._event(row, "kill", {"signal": str(sig)})
        try:
            kill(StateStore(self.runtime_root), cid, sig)
        except RuntimeError_ as e:
            # it is exiting (or just exited) meanwhile: its monitor will tell
            _log.debug("container %s: signal %d: %s", cid[:12], sig, e)
        from skiff.engine.container_control import thaw_for_signal

        thaw_for_signal(self, cid)  # a frozen container gets the signal once thawed

    def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> bool:
        """``POST /containers/{id}/stop``: the stop signal, then SIGKILL after `timeout`
        seconds (the container's StopTimeout, else 10; -1 waits for ever). False when it
        was not running (Docker's 304)."""
        cid = self.resolve(ref)
        live = self._live_of(cid)
        with live.lock:
            row = self._row(cid)
            if not self._running(row):
                return False
            config = row.doc["Config"]
            sig = parse_signal(signal or config.get("StopSignal") or "SIGTERM")
            if timeout is None:
                given = config.get("StopTimeout")
                timeout = DEFAULT_STOP_TIMEOUT if given is None else int(given)
            run = live.run
            self.supervisor.cancel(row)
            self._signal(cid, sig)
        if not self._wait_run_over(cid, run, None if timeout < 0 else float(timeout)):
            _log.debug("container %s: no exit %ds after signal %d; killing it", cid[:12],
                       timeout, sig)
            self._kill_run(cid, live, run)
        self._event(row, "stop")
        return True

    def _kill_run(self, cid: str, live: _Live, run: int) -> None:
        """SIGKILL the run `run` and wait for its end; a monitor that does not report it in
        time is killed too, and the container reported gone."""
        with live.lock:
            if live.run != run:
                return
            row = self.db.get(cid)
            if row is not None:
                self.supervisor.cancel(row, _SIGKILL)
            self._signal(cid, _SIGKILL)
        if self._wait_run_over(cid, run, KILL_WAIT):
            return
        from skiff.engine.monitor.launch import monitor_alive

        if run > 0 and monitor_alive(run, cid):
            try:
                os.kill(run, _SIGKILL)
            except ProcessLookupError:
                pass
        self._wait_run_over(cid, run, KILL_WAIT)
        if live.run == run:
            raise RuntimeError_(f"container {cid}: did not exit after SIGKILL")

    def kill(self, ref: str, signal: str = "KILL") -> None:
        """``POST /containers/{id}/kill``: send `signal` (a name or number); for SIGKILL,
        return once the container is reported gone."""
        sig = parse_signal(signal)
        cid = self.resolve(ref)
        live = self._live_of(cid)
        with live.lock:
            row = self._row(cid)
            if not self._running(row):
                raise ContainerConflict(f"Container {cid} is not running")
            run = live.run
            if sig != _SIGKILL:
                self.supervisor.cancel(row, sig)
                self._signal(cid, sig)
                return
        self._kill_run(cid, live, run)

    def restart(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        """``POST /containers/{id}/restart``: stop (if running), then start."""
        row = self._find(ref)
        self.stop(row.id, timeout, signal)
        self.start(row.id)
        self._event(row, "restart")

    # -- wait -------------------------------------------------------------------------------
    def wait(self, ref: str, condition: str = "not-running",
             ready: Callable[[], None] | None = None,
             cancelled: Callable[[], bool] = _never) -> dict[str, Any]:
        """``POST /containers/{id}/wait``: block until `condition` holds — ``not-running``
        (at once for a container that does not run), ``next-exit`` (its next exit, or failed
        start), ``removed`` — and give its exit code. `ready` is called once the waiter is
        in place (the API sends its head then). `cancelled` (asked every RECHECK seconds)
        ends the wait early, its answer then meaningless: the waiter went away."""
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f'invalid condition: "{condition}"')
        cid = self.resolve(ref)
        live = self._live_of(cid)
        with self._cond:
            seen = live.exits
            if ready is not None:
                ready()
        if condition == "not-running":
            # a restart's exit ends it too: moby's waitStop closes at SetRestarting
            self._await(cid, live, lambda: not live.running or live.exits > seen or
                        live.removed or cancelled(), None)
        elif condition == "next-exit":
            self._await(cid, live, lambda: live.exits > seen or live.removed or cancelled(),
                        None)
        else:
            self._await(cid, live, lambda: live.removed or cancelled(), None)
        with self._cond:
            code, error = live.exit_code, live.error
        return {"StatusCode": code, "Error": {"Message": error} if error else None}

    # -- remove -----------------------------------------------------------------------------
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """``DELETE /containers/{id}``: refused for a running container unless `force`
        (which kills it first); the snapshot, bundle, logs and row go; with `volumes`, its
        anonymous volumes too (named ones stay, as Docker's ``rm -v``)."""
        cid = self.resolve(ref)
        live = self._live_of(cid)
        with live.lock:
            row = self._row(cid)
            if live.removing:
                raise ContainerConflict(f"removal of container {cid} is already in progress")
            if self._running(row):
                if not force:
                    raise ContainerConflict(
                        f"You cannot remove a running container {cid}. Stop the container "
                        f"before attempting removal or force remove")
                self._kill_run(cid, live, live.run)
            live.removing = True
            self._set_status(cid, "removing")
            try:
                self._destroy(cid)
            except SkiffError as e:
                live.removing = False
                self._set_status(cid, "dead", Dead=True, Error=str(e))
                raise
            except OSError as e:
                live.removing = False
                self._set_status(cid, "dead", Dead=True, Error=str(e))
                raise StoreError(f"remove container {cid}: {e}") from e
            with self._cond:
                live.removed = True
                live.error = ""  # moby's SetRemoved clears it: a removal waiter sees no error
                self._live.pop(cid, None)
                self._cond.notify_all()
            self._event(row, "destroy")
        if volumes:  # after the destroy event, as moby's ContainerRm removes them
            self.volumes.drop_anonymous(row.doc.get("MountPoints") or ())
        _log.debug("container %s removed", cid[:12])

    def _remove_quietly(self, cid: str, volumes: bool = False) -> None:
        """AutoRemove: remove `cid`, reporting (not raising) what goes wrong."""
        try:
            self.remove(cid, force=True, volumes=volumes)
        except NoSuchContainer:
            pass
        except (SkiffError, OSError) as e:
            _log.warning("container %s: auto-remove: %s", cid[:12], e)

    def _event(self, row: ContainerRow, action: str, more: dict[str, str] | None = None) -> None:
        """Docker's container event: the labels, ``image`` (as the user named it) and
        ``name`` of the container, over the event's own attributes. The other container
        modules (container_control) tell theirs through it too."""
        config = row.doc["Config"]
        named = {"name": row.name}
        if config.get("Image"):
            named["image"] = str(config["Image"])
        self.events.emit("container", action, row.id,
                         actor_attributes(config.get("Labels"), more, **named))

    def _set_status(self, cid: str, status: str, **more: Any) -> None:
        with self._cond:
            row = self.db.get(cid)
            if row is not None:
                row.state.update(Status=status, **more)
                self.db.set_state(cid, row.state)
            self._cond.notify_all()

    def _destroy(self, cid: str) -> None:
        """Everything of a stopped container: the runtime's leftovers (its cgroup), the
        snapshot (unmounted), the bundle, the logs and other files, the row."""
        self._runtime_delete(cid)
        self._release_netns(cid)
        if self.snapshots.exists(cid):
            try:
                lowers = self.snapshots.lower_dirs(cid)
            except StoreError:
                lowers = []
            self.snapshots.remove(cid)
            self.store.release_layers(lowers)  # those only this container still held
        _rmtree(self.bundle_dir(cid))
        _rmtree(self.container_dir(cid))
        self.db.delete(cid)

    # -- looking ----------------------------------------------------------------------------
    def _paths(self, cid: str) -> dict[str, str]:
        files = files_in(self.container_dir(cid))
        netns = self.netns_path(cid)
        return {"ResolvConfPath": files.resolv_conf, "HostnamePath": files.hostname,
                "HostsPath": files.hosts, "LogPath": self.log_path(cid),
                "SandboxKey": netns if os.path.exists(netns) else ""}

    def _graph(self, row: ContainerRow) -> dict[str, str]:
        snap = self.snapshots.path(row.id)
        try:
            lowers = self.snapshots.lower_dirs(row.id)
        except StoreError:
            lowers = []
        data = {"LowerDir": ":".join(lowers) or os.path.join(snap, "lower"),
                "MergedDir": os.path.join(snap, "rootfs"),
                "UpperDir": os.path.join(snap, "upper"), "WorkDir": os.path.join(snap, "work")}
        return data

    def _sizes(self, row: ContainerRow) -> tuple[int, int]:
        rw = _tree_size(self.snapshots.upper(row.id))
        try:
            image_size = self.store.get(row.image_id).size
        except ImageNotFound:
            image_size = 0
        return rw, rw + image_size

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        """``GET /containers/{id}/json``: Docker's ContainerInspect."""
        row = self._find(ref)
        if row.state.get("Running") and not self._running(row):
            row = self._row(row.id)  # its monitor was gone: the exit is recorded now
        doc = inspect_doc(row, self._paths(row.id), self._graph(row))
        health = self.supervisor.health(row)
        if health is not None:
            doc["State"]["Health"] = health
        if size:
            doc["SizeRw"], doc["SizeRootFs"] = self._sizes(row)
        return doc

    def list(self, all: bool = False, limit: int = -1, filters: Any = None,
             size: bool = False) -> builtins.list[dict[str, Any]]:
        """``GET /containers/json``: ContainerSummary objects, newest first; running ones
        only unless `all` (or a status filter, or a `limit`)."""
        chosen = ListFilter(Filters.parse(filters), self._find, self._image_ids)
        show_all = all or chosen.wants_all or limit > 0
        now = time.time()
        names: dict[str, str] = {}
        out: builtins.list[dict[str, Any]] = []
        for row in reversed(self.db.all()):
            if not show_all and not row.state.get("Running"):
                continue
            if not chosen.match(row):
                continue
            item = summary(row, self._image_column(row, names), now)
            if size:
                item["SizeRw"], item["SizeRootFs"] = self._sizes(row)
            out.append(item)
            if 0 < limit <= len(out):
                break
        return out

    def _image_column(self, row: ContainerRow, cache: dict[str, str]) -> str:
        """The image as the user named it while that name still means the container's
        image; its ID otherwise (Docker's rule)."""
        given = str(row.doc["Config"].get("Image") or "")
        if given not in cache:
            try:
                cache[given] = self.store.get(given).id
            except (ImageNotFound, StoreError):
                cache[given] = ""
        return given if cache[given] == row.image_id else row.image_id

    def _image_ids(self, refs: builtins.list[str]) -> set[str]:
        found = set()
        for ref in refs:
            try:
                found.add(self.store.get(ref).id)
            except (ImageNotFound, StoreError):
                continue
        return found

    # -- logs -------------------------------------------------------------------------------
    def logs(self, ref: str, stdout: bool = True, stderr: bool = True, follow: bool = False,
             since: str = "", until: str = "", timestamps: bool = False,
             tail: str = "all", cancelled: Callable[[], bool] = _never
             ) -> Iterator[tuple[int, bytes]]:
        """``GET /containers/{id}/logs``: (stream 1 or 2, bytes) per log entry. `follow`
        goes on while the container runs — from a created container, until its coming run
        ends — and ends with it; `since`/`until` take Docker's forms (Unix time, RFC 3339,
        a duration before now); `tail` a count or ``all``; `timestamps` puts each entry's
        time before it, as ``docker logs -t`` shows. `cancelled` ends a follow early (the
        reader went away), checked as often as the log is."""
        from skiff.engine.monitor.logread import read_log

        if not (stdout or stderr):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        cid = self.resolve(ref)
        since_s = until_timestamp(since) if since and since != "0" else None
        until_s = until_timestamp(until) if until and until != "0" else None
        count: int | None
        try:
            count = int(tail) if tail not in ("", "all") else None
        except ValueError:
            count = None  # as Docker: a tail that is not a number means all
        if count is not None and count < 0:
            count = None
        follow_until = self._follow_until(cid, cancelled) if follow else None
        path = self.log_path(cid)
        return self._log_items(read_log(path, follow_until=follow_until, since=since_s,
                                        until=until_s, tail=count), stdout, stderr, timestamps)

    @staticmethod
    def _log_items(entries: Iterator[Any], stdout: bool, stderr: bool,
                   timestamps: bool) -> Iterator[tuple[int, bytes]]:
        for entry in entries:
            stream = 2 if entry.stream == "stderr" else 1
            if (stream == 1 and not stdout) or (stream == 2 and not stderr):
                continue
            yield stream, (entry.time.encode() + b" " + entry.data if timestamps
                           else entry.data)

    def _follow_until(self, cid: str, cancelled: Callable[[], bool]) -> Callable[[], bool]:
        """When a followed log is over: the run going on now (or, for a container not
        started yet, its first run) has ended, or the container is gone, or the reader."""
        live = self._live_of(cid)
        with self._cond:
            seen = live.exits
            waits = live.running or not live.started
        if not waits:
            return lambda: True

        def over() -> bool:
            with self._cond:
                return live.removed or live.exits > seen or cancelled()
        return over

    # -- prune ------------------------------------------------------------------------------
    def prune(self, filters: Any = None) -> dict[str, Any]:
        """``POST /containers/prune``: remove every stopped container (``until``,
        ``label``, ``label!`` filters as Docker's)."""
        if not self._prune_lock.acquire(blocking=False):
            raise ContainerConflict("a prune operation is already running")
        try:
            f = Filters.parse(filters)
            f.validate(PRUNE_FILTERS)
            untils = f.get("until")
            if len(untils) > 1:
                raise InvalidArgument("more than one until filter specified")
            until = until_timestamp(untils[0]) if untils else None
            deleted: builtins.list[str] = []
            reclaimed = 0
            for row in self.db.all():
                if row.state.get("Running"):
                    continue
                if until is not None and (parse_time(row.created) or 0) >= until:
                    continue
                labels = row.doc["Config"].get("Labels") or {}
                if not f.match_kv_list("label", labels):
                    continue
                if f.contains("label!") and f.match_kv_list("label!", labels):
                    continue
                size = _tree_size(self.snapshots.upper(row.id))
                try:
                    self.remove(row.id)
                except (NoSuchContainer, ContainerConflict):
                    continue
                deleted.append(row.id)
                reclaimed += size
            self.events.emit("container", "prune", "", {"reclaimed": str(reclaimed)})
            return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}
        finally:
            self._prune_lock.release()

    # -- hooks of the other services --------------------------------------------------------
    def image_users(self, image_id: str) -> builtins.list[ImageUser]:
        """The containers that use `image_id` (ImageService.in_use), creates under way too."""
        from skiff.engine.images import ImageUser

        users = [ImageUser(row.id, bool(row.state.get("Running")))
                 for row in self.db.all() if row.image_id == image_id]
        with self._cond:
            users += [ImageUser(cid, False) for cid, image in self._creating.items()
                      if image == image_id]
        return users

    def volume_users(self) -> builtins.list[tuple[str, bool, builtins.list[str]]]:
        """(ID, running, the volumes its mounts name) of every container
        (VolumeService.users)."""
        from skiff.engine.mounts import volume_names

        return [(row.id, bool(row.state.get("Running")),
                 volume_names(row.doc.get("MountPoints") or ())) for row in self.db.all()]

    def counts(self) -> ContainerCounts:
        """What /info says of containers (SystemService.containers)."""
        from skiff.engine.system import ContainerCounts

        running = paused = stopped = 0
        for row in self.db.all():
            if row.state.get("Running") and row.state.get("Paused"):
                paused += 1
            elif row.state.get("Running"):
                running += 1
            else:
                stopped += 1
        return ContainerCounts(running=running, paused=paused, stopped=stopped)

    # -- reconcile --------------------------------------------------------------------------
    def reconcile(self) -> None:
        """At engine start: watch the monitors that still run (their containers went on
        while skiffd was away), record the exits of those that ended, finish removals and
        clear what creates cut short left behind. Only one engine may do this per root."""
        if self._root_lock < 0:
            self._lock_root()
        rows = self.db.all()
        with self._cond:
            for row in rows:
                self._live.setdefault(row.id, _Live(row.state))
        from skiff.engine.monitor.launch import monitor_alive

        for row in rows:
            cid = row.id
            status = row.state.get("Status")
            if status == "removing":
                _log.info("container %s: finishing its removal", cid[:12])
                self._remove_quietly(cid)
            elif row.state.get("Running"):
                monitor_pid = int(row.state.get("MonitorPid") or 0)
                if monitor_alive(monitor_pid, cid):
                    self._watcher.watch(cid, monitor_pid, self.bundle_dir(cid))
                    self.supervisor.catch_up(cid, monitor_pid)
                    self.supervisor.health_changed(cid)
                else:
                    self._monitor_ended(cid, monitor_pid)
            elif status in ("created", "exited"):
                self._adopt(row)
        self._sweep({row.id for row in rows})
        self.volumes.store.sweep()
        self.volumes.unmount_idle()  # device volumes of runs that ended meanwhile
        self.supervisor.restart_on_start(rows)

    def _adopt(self, row: ContainerRow) -> None:
        """A run skiffd did not get to record (it died while starting the container): its
        monitor runs — it is running — or it left an exit the state does not have yet."""
        from skiff.engine.monitor.launch import monitor_alive, read_exit_file

        cid = row.id
        pids = self._read_pid_file(cid)
        status = read_exit_file(self._exit_file(cid))
        alive = pids is not None and monitor_alive(pids[0], cid)
        if not alive and (status is None or status.finished_at == row.state.get("FinishedAt")):
            return  # nothing unrecorded
        try:
            started = rfc3339_nano(os.stat(self._pid_file(cid)).st_mtime)
        except OSError:
            started = _now()
        monitor_pid = pids[0] if pids is not None else 0
        with self._cond:
            state = row.state
            state.update(Status="running", Running=True, Pid=pids[1] if pids else 0,
                         MonitorPid=monitor_pid, ExitCode=0, Error="", StartedAt=started)
            self.db.set_state(cid, state)
            live = self._live[cid] = _Live(state)
            live.run = monitor_pid or -1
        _log.info("container %s: a run skiffd did not record (monitor %d)", cid[:12],
                  monitor_pid)
        if alive:
            self._watcher.watch(cid, monitor_pid, self.bundle_dir(cid))
        else:
            self._monitor_ended(cid, monitor_pid)

    def _sweep(self, known: set[str]) -> None:
        """Remove the snapshots, folders and runtime containers of IDs with no row (a
        create or remove cut short by a crash)."""
        with self._cond:
            busy = set(self._creating)
        keep = known | busy
        for key in self.snapshots.list():
            if is_full_id(key) and key not in keep:
                _log.info("removing the leftover snapshot %s", key[:12])
                self._drop_snapshot(key)
        for folder in (self.containers_dir, self.bundles_dir, self.runtime_root):
            for name in _listing(folder):
                if is_full_id(name) and name not in keep:
                    if folder == self.runtime_root:
                        self._runtime_delete(name)
                    else:
                        _rmtree(os.path.join(folder, name))
        running = {r.id for r in self.db.all() if r.state.get("Running")} | busy
        for name in _listing(self.netns_dir):
            if name not in running:
                self._release_netns(name)  # its run ended while skiffd was away
