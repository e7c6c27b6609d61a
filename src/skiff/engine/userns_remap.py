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
root — no copy, and no per-remapping store. A skiff root the remapped root cannot reach (a
folder above it without search permission for it, as ``mktemp -d`` makes) is refused at
skiffd's start with the folder named, as dockerd refuses such a graph root
(`check_reachable`).
"""

from __future__ import annotations

import os
import stat
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
# what a container's runtime reaches below the skiff root as the remapped root: its rootfs,
# its /etc/hosts and resolv.conf, its volumes
_CONTAINER_FOLDERS = ("snapshots", "containers", "volumes")
# each folder given, in order; the first the shell cannot enter is printed
_BARRED = 3
_CD_EACH = f'for d do cd "$d" 2>/dev/null || {{ printf %s "$d"; exit {_BARRED}; }}; done'


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


def check_reachable(root: str, remap: Remap) -> None:
    """Refuse (SkiffError) a skiff root the remapped root could not reach, as dockerd
    refuses a graph root with a folder above it that bars the remapped root (moby
    daemon/daemon_unix.go setupDaemonRoot): a container's runtime reaches its rootfs,
    /etc/hosts and volumes as that user, and every start would fail on the way. skiff
    changes no folder it did not make; the message names the one to open. The kernel
    itself decides (ACLs included): a shell with the remapped root's ids, no
    supplementary groups and no capabilities changes into each folder from / down to the
    root and the folders below it that containers use; a folder not made yet is skiff's
    to make, and skiffd's umask (022, as dockerd's) leaves it open."""
    uid, gid = remap.maps.host_ids()
    real = os.path.realpath(root)  # the runtime's rootfs path is a real one too
    folders = [real, *(os.path.join(real, name) for name in _CONTAINER_FOLDERS)]
    way: list[str] = []
    for folder in folders:
        for step in _ancestry(folder):
            if step not in way and os.path.isdir(step):
                way.append(step)
    try:
        probe = subprocess.run(["/bin/sh", "-c", _CD_EACH, "sh", *way], user=uid, group=gid,
                               extra_groups=[], env={"PATH": "/usr/bin:/bin"}, cwd="/",
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        _log.warning("--userns-remap: could not check that uid %d reaches %s: %s", uid, root, e)
        return
    if probe.returncode == 0:
        return
    blocker = probe.stdout
    if probe.returncode != _BARRED or blocker not in way:
        _log.warning("--userns-remap: could not check that uid %d reaches %s: sh exited %d: "
                     "%s", uid, root, probe.returncode, probe.stderr.strip())
        return
    st = os.stat(blocker)
    raise SkiffError(
        f"--userns-remap: the remapped root (uid {uid}, gid {gid}) cannot traverse "
        f"{blocker} (mode {stat.filemode(st.st_mode)}, owner {st.st_uid}:{st.st_gid}), which "
        f"the containers of the skiff root {root} pass to reach their rootfs. Allow it "
        f"with `chmod o+x {blocker}` (or `setfacl -m u:{uid}:x {blocker}`), or give skiffd "
        f"a --root (SKIFF_ROOT) every user can traverse to")


def _ancestry(path: str) -> list[str]:
    """/, then each folder down to `path` (absolute, normalised)."""
    parts = [p for p in os.path.normpath(path).split("/") if p]
    return ["/", *("/" + "/".join(parts[:i + 1]) for i in range(len(parts)))]


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
