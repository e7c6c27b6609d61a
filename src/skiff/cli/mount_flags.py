"""The mount flags of ``run`` and ``create`` as the docker CLI turns them into a request.

``-v`` entries with a source go to ``HostConfig.Binds`` (a ``./`` or ``.`` source made
absolute first), those without one to ``Config.Volumes`` (anonymous volumes); ``--tmpfs
/run:opts`` fills ``HostConfig.Tmpfs``; ``--mount`` is docker's opts.MountOpt: a CSV line of
``key=value`` fields (``type``, ``source``/``src``, ``target``/``dst``/``destination``,
``readonly``/``ro``, ``bind-propagation``, ``bind-nonrecursive``, ``volume-nocopy``,
``volume-label``, ``volume-driver``, ``volume-opt``, ``tmpfs-size``, ``tmpfs-mode``) read
into one API Mount object (a volume unless ``type`` says otherwise, as the CLI defaults it),
with the CLI's words for a malformed one.
"""

from __future__ import annotations

import os

from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


def split_volumes(values: list[str]) -> tuple[list[str] | None, dict[str, Any]]:
    """(Binds, Config.Volumes) of the ``-v`` values."""
    binds: list[str] = []
    volumes: dict[str, Any] = {}
    for value in values:
        source, sep, rest = value.partition(":")
        if not sep:
            volumes[value] = {}
            continue
        if source == "." or source.startswith("./"):
            source = os.path.abspath(source)
        binds.append(f"{source}:{rest}")
    return binds or None, volumes


def tmpfs_map(values: list[str]) -> dict[str, str] | None:
    """``HostConfig.Tmpfs`` of the ``--tmpfs`` values (``/run`` or ``/run:size=1m``)."""
    out: dict[str, str] = {}
    for value in values:
        destination, _, options = value.partition(":")
        out[destination] = options
    return out or None


def _bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidArgument(f"invalid value for {key}: {value}")


def parse_mount(value: str) -> dict[str, Any]:
    """One ``--mount`` value as the API's Mount object."""
    import csv

    from skiff.cli.run import ram_in_bytes

    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration) as e:
        raise InvalidArgument(str(e)) from None
    mount: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in fields:
        key, eq, val = field.partition("=")
        key = key.strip().lower()
        if not eq:
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = True
            elif key == "volume-nocopy":
                volume["NoCopy"] = True
            elif key == "bind-nonrecursive":
                bind["NonRecursive"] = True
            else:
                raise InvalidArgument(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "type":
            mount["Type"] = val
        elif key in ("source", "src"):
            mount["Source"] = val
        elif key in ("target", "dst", "destination"):
            mount["Target"] = val
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(key, val)
        elif key == "consistency":
            mount["Consistency"] = val
        elif key == "bind-propagation":
            bind["Propagation"] = val
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _bool(key, val)
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool(key, val)
        elif key == "volume-label":
            name, _, label = val.partition("=")
            volume.setdefault("Labels", {})[name] = label
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = val
        elif key == "volume-opt":
            name, sep, opt = val.partition("=")
            if not sep:
                raise InvalidArgument(f"invalid volume-opt '{val}'")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[name] = opt
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = ram_in_bytes(val)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(val, 8)
            except ValueError:
                raise InvalidArgument(f"invalid value for {key}: {val}") from None
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{field}'")
    kind = mount["Type"]
    if not mount.get("Target"):
        raise InvalidArgument("target is required")
    for options, prefix, wanted, api_key in ((bind, "bind", "bind", "BindOptions"),
                                             (volume, "volume", "volume", "VolumeOptions"),
                                             (tmpfs, "tmpfs", "tmpfs", "TmpfsOptions")):
        if options:
            if kind != wanted:
                raise InvalidArgument(f"cannot mix '{prefix}-*' options with mount type "
                                      f"'{kind}'")
            mount[api_key] = options
    return mount
