"""``--device`` and ``--device-cgroup-rule``: host devices given to a container, as dockerd
gives them (moby daemon/oci_linux.go WithDevices and devicesFromPath).

A ``HostConfig.Devices`` entry names a host node (or a folder of nodes, taken whole, as
Docker walks it) and where it appears in the container, with the cgroup permissions
(``rwm`` by default); each becomes an OCI ``linux.devices`` node (same type, numbers, mode
and owner as on the host, so the runtime makes it with mknod) and an allow rule in the
device cgroup. ``HostConfig.DeviceCgroupRules`` are rules of the cgroup's own syntax,
``c 1:3 rwm`` or ``b *:* m``, allowed after Docker's default deny-all.
"""

from __future__ import annotations

import os
import re
import stat

from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def _mode_ok(perms: str) -> bool:
    return bool(perms) and len(perms) <= 3 and all(c in "rwm" for c in perms) \
        and len(set(perms)) == len(perms)


def cgroup_rule(text: str) -> dict[str, Any]:
    """A ``--device-cgroup-rule`` as an OCI device rule; Docker's 400 when malformed."""
    found = _RULE.match(text)
    if found is None:
        raise InvalidArgument(f"invalid device cgroup rule format: '{text}'")
    kind, major, minor, access = found.groups()
    rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
    if major != "*":
        rule["major"] = int(major)
    if minor != "*":
        rule["minor"] = int(minor)
    return rule


def _node(host_path: str, container_path: str, st: os.stat_result) -> dict[str, Any] | None:
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {"path": container_path, "type": kind, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid}


def check_mapping(mapping: Any) -> dict[str, str]:
    """A DeviceMapping with its defaults (the container path is the host's, ``rwm``)."""
    if not isinstance(mapping, dict) or not isinstance(mapping.get("PathOnHost"), str) \
            or not mapping["PathOnHost"]:
        raise InvalidArgument("invalid device mapping: PathOnHost is empty")
    host = mapping["PathOnHost"]
    inside = mapping.get("PathInContainer") or host
    perms = mapping.get("CgroupPermissions") or "rwm"
    if not isinstance(inside, str) or not inside.startswith("/"):
        raise InvalidArgument(f"invalid device mapping: {inside!r} is not an absolute path")
    if not isinstance(perms, str) or not _mode_ok(perms):
        raise InvalidArgument(f"invalid device mode: {perms}")
    return {"PathOnHost": host, "PathInContainer": inside, "CgroupPermissions": perms}


def devices_from_path(mapping: dict[str, str]) -> tuple[list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
    """The spec's device nodes and cgroup rules for one mapping (Docker's devicesFromPath:
    a folder gives every node under it, at the same place under the container path)."""
    host, inside, perms = (mapping["PathOnHost"], mapping["PathInContainer"],
                           mapping["CgroupPermissions"])
    try:
        st = os.stat(host)
    except OSError as e:
        raise InvalidArgument(f"error gathering device information while adding custom "
                              f'device "{host}": '
                              f"{(e.strerror or str(e)).lower()}") from None
    found: list[dict[str, Any]] = []
    if stat.S_ISDIR(st.st_mode):
        for folder, _, names in os.walk(host):
            for name in sorted(names):
                path = os.path.join(folder, name)
                try:
                    node = _node(path, inside + path[len(host):], os.stat(path))
                except OSError:
                    continue
                if node is not None:
                    found.append(node)
    else:
        node = _node(host, inside, st)
        if node is None:
            raise InvalidArgument(f"error gathering device information while adding custom "
                                  f'device "{host}": not a device node')
        found.append(node)
    rules = [{"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"],
              "access": perms} for d in found]
    return found, rules


def spec_devices(host_config: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                       list[dict[str, Any]]]:
    """Every device node and extra cgroup rule a container's HostConfig asks for."""
    nodes: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for mapping in host_config.get("Devices") or []:
        more_nodes, more_rules = devices_from_path(check_mapping(mapping))
        nodes += more_nodes
        rules += more_rules
    rules += [cgroup_rule(r) for r in host_config.get("DeviceCgroupRules") or []]
    return nodes, rules
