"""The volume half of the engine: Docker's volumes over the local driver's store.

`VolumeService` answers the volume endpoints — create (idempotent for a name, as Docker's),
list with Docker's filters (``dangling``, ``driver``, ``label``, ``name``), inspect, remove
(refused with Docker's 409 while any container, running or not, names the volume) and
prune (API 1.41's: every unused local volume) — and serves the container service at each
step of a container's life: `attach` at create (the named volumes made when missing, the
anonymous ones made with 64-hex names, the image's content at the target copied into an
empty volume unless ``nocopy``), `start_mounts` at start (a bind's missing ``-v`` source
made, a volume with driver options mounted as the local driver mounts it — ``-o type=tmpfs
-o device=tmpfs -o o=size=10m`` — the spec's mounts composed), `stopped` after a run (such
device mounts undone when no running container uses them) and `drop_anonymous` at ``rm -v``.
Which containers use a volume is not counted separately: it is read from the containers'
own mount points (`users`), so no count can drift from the truth; creates under way hold a
claim on their volumes meanwhile. Events are moby's: volume create, mount, unmount, destroy
and prune. Under ``skiffd --userns-remap`` a new volume's ``_data`` belongs to the remapped
root (`owner`), as dockerd's local driver chowns it to its root identity, so a container's
root writes there; skiff keeps one volumes folder where dockerd has one per remapped root
(``<root>/<uid>.<gid>/volumes``), as it keeps one layer store.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading

from skiff.engine.filters import Filters
from skiff.engine.mounts import LOCAL, oci_mount
from skiff.errors import ContainerConflict, InvalidArgument, KernelError, NoSuchVolume, StoreError
from skiff.log import logger
from skiff.store.volumes import (VolumeRecord, VolumeStore, check_name, created_now,
                                 is_mountpoint)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Iterable
    from typing import Any

    from skiff.engine.events import EventLog
    from skiff.engine.mounts import MountPoint

_log = logger("skiff.engine.volumes")
LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!", "all")
DRIVER_OPTIONS = ("type", "device", "o", "size")  # moby's local driver validOpts
_REQUIRED_OPTIONS = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # what newer dockerd marks them with


def _no_such(name: str, op: str = "get") -> NoSuchVolume:
    return NoSuchVolume(f"{op} {name}: no such volume")


class VolumeService:
    """Docker's volume operations on the volumes under `root`. `users(name)` gives the
    containers whose mounts name a volume (the container service fills it in)."""

    def __init__(self, root: str, events: EventLog | None = None) -> None:
        from skiff.engine.events import EventLog

        self.store = VolumeStore(root)
        self.events = events or EventLog()
        # (container ID, whether it runs, the volumes its mounts name) of every container
        self.users: Callable[[], builtins.list[tuple[str, bool, builtins.list[str]]]] = list
        self._lock = threading.RLock()
        self._claims: dict[str, set[str]] = {}  # container ID → the volumes its create holds
        # skiffd --userns-remap: the host uid and gid of the remapped root, whose a new
        # volume's _data is (dockerd's local driver chowns it to its root identity)
        self.owner: tuple[int, int] | None = None

    # -- the endpoints ----------------------------------------------------------------------
    def create(self, body: Any) -> dict[str, Any]:
        """``POST /volumes/create``: a new volume, or the one of that name already there."""
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON in the request body: expected an object")
        name = body.get("Name") or ""
        driver = body.get("Driver") or LOCAL
        options = body.get("DriverOpts") or {}
        labels = body.get("Labels") or {}
        for key, value, kind in (("Name", name, str), ("Driver", driver, str)):
            if not isinstance(value, kind):
                raise InvalidArgument(f"json: cannot unmarshal into Go struct field "
                                      f"VolumeCreateBody.{key} of type string")
        for key, mapping in (("DriverOpts", options), ("Labels", labels)):
            if not isinstance(mapping, dict) or not all(isinstance(v, str)
                                                        for v in mapping.values()):
                raise InvalidArgument(f"json: cannot unmarshal into Go struct field "
                                      f"VolumeCreateBody.{key} of type map[string]string")
        record = self._create(name, driver, dict(labels), dict(options), anonymous=False)
        return self._doc(record)

    def _create(self, name: str, driver: str, labels: dict[str, str],
                options: dict[str, str], anonymous: bool) -> VolumeRecord:
        if not name:
            name = os.urandom(32).hex()
        if driver != LOCAL:
            raise InvalidArgument(f"create {name}: error looking up volume plugin {driver}: "
                                  f'plugin "{driver}" not found')
        try:
            check_name(name)
            _check_options(options)
        except InvalidArgument as e:
            raise InvalidArgument(f"create {name}: {e}") from None
        if anonymous:
            labels = {ANONYMOUS_LABEL: "", **labels}
        with self._lock:
            record, made = self.store.create(VolumeRecord(
                name=name, created=created_now(), labels=labels, options=options,
                anonymous=anonymous), self.owner)
        if made:
            self.events.emit("volume", "create", name, {"driver": LOCAL})
        return record

    def get(self, name: str) -> VolumeRecord:
        record = self.store.get(name) if isinstance(name, str) else None
        if record is None:
            raise _no_such(str(name))
        return record

    def inspect(self, name: str) -> dict[str, Any]:
        """``GET /volumes/{name}``: Docker's Volume."""
        return self._doc(self.get(name))

    def _doc(self, record: VolumeRecord, usage: dict[str, int] | None = None) -> dict[str, Any]:
        # Go writes a map's keys sorted; an anonymous volume's empty maps are nil in moby
        doc: dict[str, Any] = {
            "CreatedAt": record.created, "Driver": record.driver,
            "Labels": dict(sorted(record.labels.items()))
            if record.labels or not record.anonymous else None,
            "Mountpoint": self.store.data_path(record.name), "Name": record.name,
            "Options": dict(sorted(record.options.items()))
            if record.options or not record.anonymous else None,
            "Scope": "local"}
        if usage is not None:
            doc["UsageData"] = usage
        return doc

    def list(self, filters: Any = None) -> dict[str, Any]:
        """``GET /volumes``: ``{"Volumes": [...], "Warnings": null}``."""
        f = Filters.parse(filters)
        f.validate(LIST_FILTERS)
        dangling = f.boolean("dangling", False) if f.contains("dangling") else None
        used = self._used()
        out = []
        for record in self.store.all():
            if dangling is not None and (record.name not in used) != dangling:
                continue
            if not f.exact_match("driver", record.driver):
                continue
            if not f.match_kv_list("label", record.labels):
                continue
            names = f.get("name")
            if names and not any(_search(n, record.name) for n in names):
                continue
            out.append(self._doc(record))
        return {"Volumes": out, "Warnings": None}

    def remove(self, name: str, force: bool = False) -> None:
        """``DELETE /volumes/{name}``: refused while a container names it (even forced, as
        Docker); `force` only makes a missing volume no error."""
        with self._lock:
            record = self.store.get(name) if isinstance(name, str) else None
            if record is None:
                if force:
                    return
                raise _no_such(str(name))
            users = self._used().get(name)
            if users:
                raise ContainerConflict(f"remove {name}: volume is in use - "
                                        f"[{', '.join(users)}]")
            self._unmount_device(record)
            self.store.remove(name)
        self.events.emit("volume", "destroy", name, {"driver": LOCAL})

    def prune(self, filters: Any = None) -> dict[str, Any]:
        """``POST /volumes/prune``: API 1.41 removes every local volume no container uses
        (``label``/``label!`` filters; ``all`` is taken, as newer daemons take it)."""
        f = Filters.parse(filters)
        f.validate(PRUNE_FILTERS)
        deleted: builtins.list[str] = []
        reclaimed = 0
        for record in self.store.all():
            if not f.match_kv_list("label", record.labels):
                continue
            if f.contains("label!") and f.match_kv_list("label!", record.labels):
                continue
            size = self.store.size(record.name)
            try:
                self.remove(record.name)
            except (ContainerConflict, NoSuchVolume):
                continue
            deleted.append(record.name)
            reclaimed += size
        self.events.emit("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def disk_usage(self) -> builtins.list[dict[str, Any]]:
        """``/system/df``'s Volumes: each with its size and how many containers use it."""
        used = self._used()
        return [self._doc(r, {"Size": self.store.size(r.name),
                              "RefCount": len(used.get(r.name, ()))})
                for r in self.store.all()]

    def _used(self) -> dict[str, builtins.list[str]]:
        """volume name → the IDs of the containers (and creates under way) naming it."""
        used: dict[str, builtins.list[str]] = {}
        for cid, _, names in self.users():
            for name in names:
                used.setdefault(name, []).append(cid)
        with self._lock:
            for cid, claimed in self._claims.items():
                for name in claimed:
                    used.setdefault(name, []).append(cid)
        return used

    # -- the container's life -----------------------------------------------------------------
    def attach(self, cid: str, points: Iterable[MountPoint],
               rootfs: str) -> builtins.list[MountPoint]:
        """At create: each volume point gets its volume (made if missing; anonymous ones
        named now) and its Source; empty volumes get the image's content at their target.
        The volumes are claimed for `cid` until `settle` (its row is stored by then)."""
        out: builtins.list[MountPoint] = []
        try:
            for point in points:
                point = dict(point)
                if point["Type"] == "volume":
                    with self._lock:
                        record = self._create(point["Name"], point["Driver"] or LOCAL,
                                              dict(point.get("Labels") or {}),
                                              dict(point.get("DriverOpts") or {}),
                                              anonymous=bool(point.get("Anonymous")))
                        self._claims.setdefault(cid, set()).add(record.name)
                    point["Name"] = record.name
                    point["Source"] = self.store.data_path(record.name)
                    if point.get("CopyData"):
                        self._copy_into(record, rootfs, point["Destination"])
                out.append(point)
        except BaseException:
            self.drop_anonymous(out)
            self.settle(cid)
            raise
        return out

    def settle(self, cid: str) -> None:
        """The create of `cid` is over (its row names the volumes now, or it failed)."""
        with self._lock:
            self._claims.pop(cid, None)

    def _copy_into(self, record: VolumeRecord, rootfs: str, destination: str) -> None:
        """The copy-up into `record`; a device volume is mounted for it and let go again
        unless a running container uses it, as the local driver's refcount does (so a
        tmpfs one keeps none of it, a bound folder all)."""
        data = self.store.data_path(record.name)
        if not record.options.get("device"):
            self.copy_up(rootfs, destination, data)
            return
        self._mount_device(record)
        try:
            self.copy_up(rootfs, destination, data)
        finally:
            self.unmount_idle([record.name])

    def unmount_idle(self, names: Iterable[str] | None = None) -> None:
        """Unmount the device volumes (of `names`, or all) no running container uses: after
        a copy-up, and at engine start for runs that ended while skiffd was away."""
        running = {name for _, run, used in self.users() if run for name in used}
        for name in self.store.names() if names is None else names:
            record = self.store.get(name)
            if record is not None and name not in running:
                self._unmount_device(record)

    @staticmethod
    def copy_up(rootfs: str, destination: str, data: str) -> None:
        """Docker's copyExistingContents: an empty volume gets what the image has at the
        target — owners, modes, times, xattrs, symlinks and hard links kept (``cp -a``)."""
        from skiff.runtime.secure_path import secure_join

        source = secure_join(rootfs, destination)
        if not os.path.isdir(source) or os.path.islink(source) or os.listdir(data):
            return
        done = subprocess.run(["cp", "-aT", "--", source, data], capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise StoreError(f"copy {destination} of the image into the volume: "
                             f"{done.stderr.strip()}")

    def start_mounts(self, cid: str,
                     points: Iterable[MountPoint]) -> builtins.list[dict[str, Any]]:
        """At start: the spec's mounts of `points`, with what they need on the host made
        (a ``-v`` bind's missing source folder, a device volume's mount), and a ``mount``
        event per volume."""
        mounts = []
        for point in points:
            source = point["Source"]
            if point["Type"] == "bind":
                if point.get("CreateSource") and not os.path.lexists(source):
                    os.makedirs(source, 0o755, exist_ok=True)
                check_propagation(source, point["Propagation"])
            elif point["Type"] == "volume":
                record = self.store.get(point["Name"])
                if record is None:
                    raise StoreError(f"container {cid}: its volume {point['Name']} is gone")
                if record.options.get("device"):
                    self._mount_device(record)
                self.events.emit("volume", "mount", record.name, {
                    "driver": LOCAL, "container": cid, "destination": point["Destination"],
                    "read/write": str(bool(point["RW"])).lower(),
                    "propagation": point["Propagation"]})
            mounts.append(oci_mount(point, source))
        return mounts

    def stopped(self, cid: str, points: Iterable[MountPoint]) -> None:
        """After a run of `cid`: an ``unmount`` event per volume; device volumes no running
        container uses any more are unmounted."""
        names = [p["Name"] for p in points if p["Type"] == "volume"]
        for name in names:
            self.events.emit("volume", "unmount", name, {"driver": LOCAL, "container": cid})
        self.unmount_idle(names)

    def drop_anonymous(self, points: Iterable[MountPoint]) -> None:
        """``rm -v``: the anonymous volumes among `points` that nothing else uses."""
        used = self._used()
        for point in points:
            if point["Type"] == "volume" and point.get("Anonymous") and point["Name"] \
                    and not used.get(point["Name"]):
                try:
                    self.remove(point["Name"])
                except (NoSuchVolume, ContainerConflict, StoreError) as e:
                    _log.warning("volume %s: %s", point["Name"], e)

    # -- the local driver's device mounts ---------------------------------------------------------
    def _mount_device(self, record: VolumeRecord) -> None:
        """moby's localVolume.mount: ``mount -t <type> -o <o> <device> _data``, once."""
        from skiff.kernel import syscall
        from skiff.runtime.mount_options import parse

        data = self.store.data_path(record.name)
        with self._lock:
            if is_mountpoint(data):
                return
            opts = parse((record.options.get("o") or "").split(","))
            kind = record.options.get("type") or ""
            try:
                syscall.mount(record.options["device"], data,
                              None if kind in ("", "none") else kind, opts.flags,
                              opts.data or None)
            except KernelError as e:
                raise StoreError(f"error while mounting volume '{data}': failed to mount "
                                 f"local volume: {e}") from e

    def _unmount_device(self, record: VolumeRecord) -> None:
        from skiff.kernel import syscall

        data = self.store.data_path(record.name)
        with self._lock:
            if record.options.get("device") and is_mountpoint(data):
                try:
                    syscall.umount(data, syscall.MNT_DETACH)
                except KernelError as e:
                    raise StoreError(f"unmount volume {record.name}: {e}") from e


def check_propagation(source: str, propagation: str) -> None:
    """moby's ensureShared / ensureSharedOrSlave: a shared bind needs its source on a shared
    mount (a slave one on a shared or slave mount), or the propagation asked for cannot
    happen."""
    if propagation not in ("shared", "rshared", "slave", "rslave"):
        return
    mountpoint, optional = _mount_of(os.path.realpath(source))
    if "shared:" in optional:
        return
    if propagation in ("slave", "rslave") and "master:" in optional:
        return
    kind = "shared" if propagation in ("shared", "rshared") else "shared or slave"
    raise InvalidArgument(f"path {source} is mounted on {mountpoint} but it is not a {kind} "
                          f"mount")


def _mount_of(path: str) -> tuple[str, str]:
    """(the mount point holding `path`, its optional fields) from /proc/self/mountinfo."""
    best, fields = "/", ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            point = parts[4].replace("\\040", " ")
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fields = point, " ".join(parts[6:parts.index("-")])
    return best, fields


def _check_options(options: dict[str, str]) -> None:
    """moby's local driver validateOpts."""
    for key in options:
        if key not in DRIVER_OPTIONS:
            raise InvalidArgument(f'invalid option: "{key}"')
    if "size" in options:
        raise InvalidArgument("quota size requested but no quota support")
    for key, required in _REQUIRED_OPTIONS.items():
        if key in options:
            for other in required:
                if other not in options:
                    raise InvalidArgument(f'missing required option: "{other}"')


def _search(pattern: str, text: str) -> bool:
    """Docker's filters.Match: the value as a regular expression found anywhere."""
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return pattern in text
