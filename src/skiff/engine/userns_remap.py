"""``skiffd --userns-remap``: containers whose root is an unprivileged host user, as dockerd's.

The setting is dockerd's: ``default`` (the user and group ``dockremap``, made with
``useradd -r -s /bin/false`` and given 65536 subordinate ids with ``usermod -v/-w`` when
they do not exist yet), ``user``, ``uid``, ``user:group`` or ``uid:gid`` (moby
daemon/daemon_unix.go parseRemappedRoot). The user's ranges in /etc/subuid and /etc/subgid
(by name or by uid, as shadow-utils writes them) become the container's uid and gid maps,
laid end to end from container id 0. Each container created while remapping is on keeps its
maps in its stored state, so a skiffd restarted with another setting still runs it as it was
made; ``--userns=host`` opts a container out. Docker's conflicts are refused at create:
``--privileged``, ``--network host`` and ``--pid host`` need ``--userns=host``.

The rootfs: Docker keeps a chowned copy of every layer per remapping; skiff leaves the
layers as they are and mounts each lower dir through an idmapped bind (`kernel.idmap`,
Linux 5.12+, on the store's filesystem), with the snapshot's upper dir owned by the mapped
root — no copy, and no per-remapping store.
"""

from __future__ import annotations

import subprocess

from skiff.errors import InvalidArgument, SkiffError
from skiff.kernel.idmap import IdMaps, IdRange
from skiff.log import logger
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_log = logger("skiff.engine.userns")
DEFAULT_SPEC = "default"
DEFAULT_USER = "dockremap"
RANGE_SIZE = 65536
FIRST_ID = 100000
_PASSWD, _GROUP, _SUBUID, _SUBGID = "/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid"


class Remap(Record):
    """The daemon's remapping: the user and group, and the maps they give."""

    user: str
    group: str
    maps: IdMaps


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f
                    if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        return []


def _lookup(path: str, key: str) -> tuple[str, int] | None:
    """(name, id) of a passwd or group entry, by name or by number."""
    for entry in _entries(path):
        if len(entry) > 2 and entry[2].isdigit() and key in (entry[0], entry[2]):
            return entry[0], int(entry[2])
    return None


def sub_ranges(path: str, name: str, number: int) -> list[IdRange]:
    """The subordinate ranges of a user in /etc/subuid or /etc/subgid, mapped end to end
    from container id 0, in the order of their starts."""
    found = sorted((int(e[1]), int(e[2])) for e in _entries(path)
                   if len(e) >= 3 and e[0] in (name, str(number))
                   and e[1].isdigit() and e[2].isdigit() and int(e[2]) > 0)
    out: list[IdRange] = []
    inside = 0
    for start, size in found:
        out.append((inside, start, size))
        inside += size
    return out


def _next_free(path: str) -> int:
    """Where a new range can start: past every range the file holds (moby's
    findNextUIDRange, simplified to after the last one)."""
    ends = [int(e[1]) + int(e[2]) for e in _entries(path)
            if len(e) >= 3 and e[1].isdigit() and e[2].isdigit()]
    return max([FIRST_ID, *ends])


def _run(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise SkiffError(f"--userns-remap: {argv[0]} is not installed") from None
    except subprocess.CalledProcessError as e:
        raise SkiffError(f"--userns-remap: {' '.join(argv)}: {e.stderr.strip()}") from None


def _create_default_user() -> None:
    """moby's AddNamespaceRangesUser: the system user, then its subordinate ranges."""
    if _lookup(_PASSWD, DEFAULT_USER) is None:
        _log.info("creating the user %s for --userns-remap", DEFAULT_USER)
        _run(["useradd", "-r", "-s", "/bin/false", "-U", DEFAULT_USER])
    uid = _lookup(_PASSWD, DEFAULT_USER)
    assert uid is not None
    for path, flag in ((_SUBUID, "-v"), (_SUBGID, "-w")):
        if not sub_ranges(path, DEFAULT_USER, uid[1]):
            start = _next_free(path)
            _run(["usermod", flag, f"{start}-{start + RANGE_SIZE - 1}", DEFAULT_USER])


def parse_remap(spec: str) -> tuple[str, str]:
    """moby's parseRemappedRoot: the user and group names of a ``--userns-remap`` value."""
    parts = spec.split(":")
    if len(parts) > 2 or not parts[0]:
        raise SkiffError(f"Invalid user/group specification in --userns-remap: {spec!r}")
    name = DEFAULT_USER if parts[0] == DEFAULT_SPEC else parts[0]
    if parts[0] == DEFAULT_SPEC and len(parts) == 1:
        _create_default_user()
    user = _lookup(_PASSWD, name)
    if user is None:
        what = f"Uid {name} has no entry in /etc/passwd" if name.isdigit() \
            else f"Error during uid lookup for {name!r}: user: unknown user {name}"
        raise SkiffError(what)
    group_key = parts[1] if len(parts) == 2 else (str(user[1]) if name.isdigit() else name)
    group = _lookup(_GROUP, group_key)
    if group is None:
        raise SkiffError(f"Error during gid lookup for {group_key!r}: group: unknown group "
                         f"{group_key}")
    return user[0], group[0]


def setup_remap(spec: str) -> Remap:
    """The daemon's remapping for a ``--userns-remap`` value; SkiffError (skiffd refuses
    to start) when the user has no subordinate ranges."""
    user, group = parse_remap(spec)
    found = _lookup(_PASSWD, user)
    assert found is not None
    uids = sub_ranges(_SUBUID, user, found[1])
    gids = sub_ranges(_SUBGID, user, found[1])
    if not uids:
        raise SkiffError(f"No subuid ranges found for user {user!r}")
    if not gids:
        raise SkiffError(f"No subgid ranges found for user {user!r}")
    return Remap(user=user, group=group, maps=IdMaps(uids=tuple(uids), gids=tuple(gids)))


def container_maps(remap: Remap | None, host: dict[str, Any]) -> IdMaps | None:
    """The maps a new container gets (None: the host's user namespace), with Docker's
    refusals of what a remapped container cannot share with the host."""
    if remap is None or host.get("UsernsMode") == "host":
        return None
    if host.get("Privileged"):
        raise InvalidArgument("privileged mode is incompatible with user namespaces.  You "
                              "must run the container in the host namespace when running "
                              "privileged mode")
    if host.get("NetworkMode") == "host":
        raise InvalidArgument("cannot share the host's network namespace when user "
                              "namespaces are enabled")
    if host.get("PidMode") == "host":
        raise InvalidArgument("cannot share the host PID namespace when user namespaces are "
                              "enabled")
    return remap.maps


def maps_doc(maps: IdMaps) -> dict[str, list[list[int]]]:
    """How a container's maps are stored in its row."""
    return {"Uids": [list(r) for r in maps.uids], "Gids": [list(r) for r in maps.gids]}


def maps_of(doc: dict[str, Any]) -> IdMaps | None:
    """A container's stored maps, None when it runs in the host's user namespace."""
    stored = doc.get("IdMaps")
    if not stored:
        return None
    return IdMaps(uids=tuple((a, b, c) for a, b, c in stored["Uids"]),
                  gids=tuple((a, b, c) for a, b, c in stored["Gids"]))


def spec_mappings(maps: IdMaps) -> dict[str, list[dict[str, int]]]:
    """The OCI ``linux.uidMappings`` and ``gidMappings``."""
    def entries(ranges: tuple[IdRange, ...]) -> list[dict[str, int]]:
        return [{"containerID": a, "hostID": b, "size": c} for a, b, c in ranges]

    return {"uidMappings": entries(maps.uids), "gidMappings": entries(maps.gids)}
