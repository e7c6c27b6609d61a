"""A container's mounts as Docker reads them from a create request, and as they go into the
OCI spec and ``docker inspect``.

`mount_points(host, config)` is moby's registerMountPoints: ``HostConfig.Binds``
(``src:dst[:mode]``, by linuxParser.ParseMountRaw), ``HostConfig.Mounts`` (the API's Mount
objects, by ParseMountSpec, which — unlike ``-v`` — wants a bind's source to exist),
``HostConfig.Tmpfs`` and, last, an anonymous volume for each ``Config.Volumes`` path no
other mount covers, with moby's words for each mistake (``invalid volume specification``,
``invalid mount config for type "bind": …``, ``Duplicate mount point: …``). A mount point is
a plain dict with Docker's inspect fields (Type, Name, Source, Destination, Driver, Mode,
RW, Propagation) and what the engine needs besides (CopyData, NonRecursive, the tmpfs data,
the volume's labels and driver options, whether the volume is anonymous); it is stored in
the container's document as Docker keeps MountPoints in config.v2.json. `view` gives the
inspect shape, `oci_mount` the spec's mount (rbind, ro, propagation; tmpfs with Docker's
nosuid, nodev, noexec defaults merged under the user's words), and `by_depth` Docker's order
(a parent before what is mounted inside it).
"""

from __future__ import annotations

import os
import posixpath

from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    MountPoint = dict[str, Any]

LOCAL = "local"
PROPAGATIONS = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
DEFAULT_PROPAGATION = "rprivate"
_RW_MODES = frozenset({"rw", "ro"})
_LABEL_MODES = frozenset({"z", "Z"})
_CONSISTENCY_MODES = frozenset({"consistent", "cached", "delegated"})
_COPY_MODES = frozenset({"nocopy"})
_TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")
_MOUNT_TYPES = ("bind", "volume", "tmpfs")


# -- moby's texts ---------------------------------------------------------------------------
def _config_error(kind: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f'invalid mount config for type "{kind}": {problem}')


def _invalid_spec(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def _check_target(target: str) -> str | None:
    """linuxValidateNotRoot and linuxValidateAbsolute: the problem with `target`, if any."""
    if not target:
        return "field Target must not be empty"
    if posixpath.normpath(target) == "/" or target == "//":
        return "invalid specification: destination can't be '/'"
    if not target.startswith("/"):
        return f"invalid mount path: '{target}' mount path must be absolute"
    return None


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _valid_mode(mode: str) -> bool:
    """linuxValidMountMode: comma-separated words, at most one of each kind."""
    if not mode:
        return True
    counts: dict[str, int] = {}
    for word in mode.split(","):
        for kind, words in (("rw", _RW_MODES), ("label", _LABEL_MODES),
                            ("propagation", PROPAGATIONS), ("copy", _COPY_MODES),
                            ("consistency", _CONSISTENCY_MODES)):
            if word in words:
                counts[kind] = counts.get(kind, 0) + 1
                break
        else:
            return False
    return all(n <= 1 for n in counts.values())


def _check_driver(name: str) -> str:
    if name in ("", LOCAL):
        return LOCAL
    raise InvalidArgument(f'error looking up volume plugin {name}: plugin "{name}" not found')


def _point(kind: str, destination: str, **more: Any) -> MountPoint:
    point: MountPoint = {"Type": kind, "Name": "", "Source": "", "Destination": destination,
                         "Driver": "", "Mode": "", "RW": True, "Propagation": ""}
    point.update(more)
    return point


# -- the three forms ------------------------------------------------------------------------
def parse_bind(raw: str, volume_driver: str = "") -> MountPoint:
    """One ``HostConfig.Binds`` entry (``-v``): ``dst``, ``src:dst`` or ``src:dst:mode``.
    A source that is an absolute path is a bind (made at start when missing, as Docker
    does for ``-v``), anything else a volume's name."""
    parts = raw.split(":", 3)
    if not parts[0] or len(parts) > 3:
        raise InvalidArgument(_invalid_spec(raw))
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if _valid_mode(parts[1]):  # a destination and a mode: volumes cannot have one
            raise InvalidArgument(_invalid_spec(raw))
        source, target = parts
    else:
        source, target, mode = parts
    if not _valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    words = mode.split(",") if mode else []
    kind = "bind" if source.startswith("/") else "volume"
    problem = _check_target(target)
    if problem is not None:
        raise InvalidArgument(f"{_invalid_spec(raw)}: {_config_error(kind, problem)}")
    propagation = next((w for w in words if w in PROPAGATIONS), "")
    rw = "ro" not in words
    if kind == "bind":
        return _point("bind", _clean(target), Source=_clean(source), Mode=mode, RW=rw,
                      Propagation=propagation or DEFAULT_PROPAGATION, CreateSource=True)
    if not source and not rw:
        problem = "must not set ReadOnly mode when using anonymous volumes"
        raise InvalidArgument(f"{_invalid_spec(raw)}: {_config_error(kind, problem)}")
    # moby's setBindModeIfNull: a -v volume of the local driver without a mode shows "z"
    return _point("volume", _clean(target), Name=source, Driver=_check_driver(volume_driver),
                  Mode=mode or "z", RW=rw, CopyData="nocopy" not in words,
                  Anonymous=not source)


def _field(obj: Any, key: str, kinds: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is not None and (not isinstance(value, kinds) or
                              (isinstance(value, bool) and kinds is int)):
        raise InvalidArgument(f"json: cannot unmarshal {type(value).__name__} into Go struct "
                              f"field {where}.{key}")
    return value


def parse_mount(spec: Any, exists: Callable[[str], bool] = os.path.exists) -> MountPoint:
    """One ``HostConfig.Mounts`` object (``--mount``), checked as linuxParser's
    validateMountConfig (a bind's source must exist)."""
    if not isinstance(spec, dict):
        raise InvalidArgument("json: cannot unmarshal into Go struct field HostConfig.Mounts "
                              "of type mount.Mount")
    kind = _field(spec, "Type", str, "Mount") or ""
    source = _field(spec, "Source", str, "Mount") or ""
    target = _field(spec, "Target", str, "Mount") or ""
    readonly = bool(_field(spec, "ReadOnly", bool, "Mount"))
    bind = _field(spec, "BindOptions", dict, "Mount")
    volume = _field(spec, "VolumeOptions", dict, "Mount")
    tmpfs = _field(spec, "TmpfsOptions", dict, "Mount")
    problem = _check_target(target)
    if problem is not None:
        raise _config_error(kind, problem)
    if kind not in _MOUNT_TYPES:
        raise _config_error(kind, "mount type unknown")
    if kind == "bind":
        if not source:
            raise _config_error(kind, "field Source must not be empty")
        propagation = (_field(bind, "Propagation", str, "BindOptions") or "") if bind else ""
        if propagation and propagation not in PROPAGATIONS:
            raise _config_error(kind, f"invalid propagation mode: {propagation}")
        if volume is not None:
            raise _config_error(kind, "field VolumeOptions must not be specified")
        if not source.startswith("/"):
            raise _config_error(kind, f"invalid mount path: '{source}' mount path must be "
                                      f"absolute")
        create = bool(bind and _field(bind, "CreateMountpoint", bool, "BindOptions"))
        if not create and not exists(source):
            raise _config_error(kind, f"bind source path does not exist: {source}")
        return _point("bind", _clean(target), Source=_clean(source), RW=not readonly,
                      Propagation=propagation or DEFAULT_PROPAGATION, CreateSource=create,
                      NonRecursive=bool(bind and _field(bind, "NonRecursive", bool,
                                                        "BindOptions")))
    if bind is not None:
        raise _config_error(kind, "field BindOptions must not be specified")
    if kind == "tmpfs":
        if source:
            raise _config_error(kind, "field Source must not be specified")
        return _point("tmpfs", _clean(target), RW=not readonly,
                      Data=tmpfs_data(tmpfs, readonly))
    if readonly and not source:
        raise _config_error(kind, "must not set ReadOnly mode when using anonymous volumes")
    driver_config = _field(volume, "DriverConfig", dict, "VolumeOptions") if volume else None
    labels = _field(volume, "Labels", dict, "VolumeOptions") if volume else None
    driver_opts = _field(driver_config, "Options", dict, "Driver") if driver_config else None
    driver = _field(driver_config, "Name", str, "Driver") if driver_config else None
    return _point("volume", _clean(target), Name=source, Driver=_check_driver(driver or ""),
                  RW=not readonly,
                  CopyData=not (volume and _field(volume, "NoCopy", bool, "VolumeOptions")),
                  Labels=dict(labels or {}), DriverOpts=dict(driver_opts or {}),
                  Anonymous=not source)


def tmpfs_data(options: dict[str, Any] | None, readonly: bool) -> str:
    """linuxParser.ConvertTmpfsOptions: ``ro``, ``mode=<octal>``, ``size=<n>[gmk]``."""
    words = ["ro"] if readonly else []
    if options:
        mode = _field(options, "Mode", int, "TmpfsOptions")
        size = _field(options, "SizeBytes", int, "TmpfsOptions")
        if mode:
            words.append(f"mode={mode:o}")
        if size:
            if size < 0:
                raise _config_error("tmpfs", f"invalid tmpfs size: {size}")
            suffix = ""
            for unit, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
                if size % divisor == 0:
                    size, suffix = size // divisor, unit
                    break
            words.append(f"size={size}{suffix}")
    return ",".join(words)


def parse_tmpfs(destination: str, data: str) -> MountPoint:
    """One ``HostConfig.Tmpfs`` entry (``--tmpfs /run:size=1m``). Docker does not list
    these among a container's Mounts, so the point is `Hidden`."""
    problem = _check_target(destination)
    if problem is not None:
        raise InvalidArgument(problem)
    words = data.split(",") if data else []
    return _point("tmpfs", _clean(destination), RW="ro" not in words, Data=data, Hidden=True)


# -- all of a container's ---------------------------------------------------------------------
def parse_volumes_from(spec: str) -> tuple[str, str]:
    """linuxParser.ParseVolumesFrom: (container, mode) of ``c[:ro|rw]``."""
    if not spec:
        raise InvalidArgument("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if not mode:
        return ref, "rw"
    words = mode.split(",")
    if not _valid_mode(mode) or any(w in PROPAGATIONS or w in _COPY_MODES for w in words):
        raise InvalidArgument(f"invalid mode: {mode}")
    return ref, mode


def mount_points(host: dict[str, Any], config: dict[str, Any],
                 exists: Callable[[str], bool] = os.path.exists,
                 mounts_of: Callable[[str], list[MountPoint]] | None = None
                 ) -> list[MountPoint]:
    """Every mount a create asks for, in moby's order and with its duplicate checks.
    `mounts_of(ref)` gives the mount points of the container `ref` (for VolumesFrom)."""
    driver = host.get("VolumeDriver") or ""
    _check_driver(driver)
    points: list[MountPoint] = []
    taken: set[str] = set()

    def add(point: MountPoint) -> None:
        if point["Destination"] in taken:
            raise InvalidArgument(f"Duplicate mount point: {point['Destination']}")
        taken.add(point["Destination"])
        points.append(point)

    inherited: dict[str, MountPoint] = {}  # moby: what a bind or mount names again wins
    for spec in host.get("VolumesFrom") or []:
        ref, mode = parse_volumes_from(spec)
        if mounts_of is None:
            raise InvalidArgument("--volumes-from: no containers to take volumes from")
        for other in mounts_of(ref):
            if other["Type"] == "tmpfs":
                continue
            inherited[other["Destination"]] = dict(
                other, RW=bool(other["RW"]) and "ro" not in mode.split(","), CopyData=False,
                CreateSource=False)
    given = {p["Destination"] for p in (parse_bind(raw, driver)
                                        for raw in host.get("Binds") or [])}
    given |= {_clean(str(m.get("Target") or "")) for m in host.get("Mounts") or []
              if isinstance(m, dict)}
    for destination, point in inherited.items():
        if destination not in given:
            add(point)
    for raw in host.get("Binds") or []:
        add(parse_bind(raw, driver))
    for spec in host.get("Mounts") or []:
        add(parse_mount(spec, exists))
    for destination, data in (host.get("Tmpfs") or {}).items():
        add(parse_tmpfs(destination, data))
    for path in config.get("Volumes") or {}:
        problem = _check_target(path)
        if problem is not None:
            raise InvalidArgument(problem)
        if _clean(path) not in taken:  # a user's mount there wins over the image's volume
            add(_point("volume", _clean(path), Driver=LOCAL, CopyData=True, Anonymous=True))
    return points


def volume_names(points: Iterable[MountPoint]) -> list[str]:
    return [p["Name"] for p in points if p["Type"] == "volume" and p["Name"]]


# -- out ----------------------------------------------------------------------------------------
def view(point: MountPoint) -> dict[str, Any]:
    """Docker's MountPoint as ``docker inspect`` shows it."""
    out = {"Type": point["Type"]}
    if point["Type"] == "volume":
        out["Name"] = point["Name"]
    out.update(Source=point["Source"], Destination=point["Destination"])
    if point["Type"] == "volume":
        out["Driver"] = point["Driver"]
    out.update(Mode=point["Mode"], RW=point["RW"], Propagation=point["Propagation"])
    return out


def views(points: Iterable[MountPoint] | None) -> list[dict[str, Any]]:
    return [view(p) for p in points or () if not p.get("Hidden")]


def merge_tmpfs_options(words: Iterable[str]) -> list[str]:
    """moby's MergeTmpfsOptions: a later word wins over an earlier one for the same flag
    (``exec`` over ``noexec``) or the same ``key=``; order of first appearance is kept."""
    from skiff.runtime.mount_options import flag_of

    keyed: dict[str, str] = {}
    for word in words:
        if not word:
            continue
        bit = flag_of(word)
        key = f"flag:{bit}" if bit else word.partition("=")[0]
        keyed.pop(key, None)
        keyed[key] = word
    return list(keyed.values())


def oci_mount(point: MountPoint, source: str) -> dict[str, Any]:
    """The spec's mount for `point`, whose host side is `source` (a volume's _data)."""
    if point["Type"] == "tmpfs":
        words = [*_TMPFS_DEFAULTS, DEFAULT_PROPAGATION,
                 *(point.get("Data") or "").split(",")]
        return {"destination": point["Destination"], "type": "tmpfs", "source": "tmpfs",
                "options": merge_tmpfs_options(words)}
    options = ["bind" if point.get("NonRecursive") else "rbind"]
    if not point["RW"]:
        options.append("ro")
    options.append(point["Propagation"] or DEFAULT_PROPAGATION)
    return {"destination": point["Destination"], "type": "bind", "source": source,
            "options": options}


def depth(destination: str) -> int:
    return len([p for p in destination.split("/") if p])


def by_depth(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Docker's sortMounts: fewer path parts first (stable, so equal depths keep order)."""
    return sorted(mounts, key=lambda m: depth(m["destination"]))
