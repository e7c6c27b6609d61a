"""A container's cgroup, driven through cgroupfs on v1, v2 or a hybrid host, chosen at run time.

`Cgroup` is the interface the runtime uses: make the cgroup, put processes in it, apply
`linux.resources`, freeze, signal, read statistics, remove it. `open_cgroup` reads
/proc/self/mountinfo to see how the host mounts its hierarchies and builds the driver that
fits. A cgroup2 mounted at the root means `V2Cgroup`. v1 hierarchies mean `V1Cgroup`, which
also joins a cgroup2 at root/unified when there is one (hybrid). Both drivers take their
mountpoints in their constructors, so unit tests drive them on a temporary tree of fake files.
Container cgroups always sit at the same absolute path inside every hierarchy, never
relative to the caller's own cgroup.
"""

from __future__ import annotations

import os
from skiff.record import Record, field

from skiff.errors import CgroupError

from ._cgroupfs import KEEP_PARENTS, SKIFF_PARENT, CgroupMount, normalise_path, prune_ancestors
from .v1 import V1Cgroup
from .v2 import V2Cgroup

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from skiff.oci.runtime_spec import Resources
    from typing import Protocol as _Interface
else:
    _Interface = object

__all__ = ["Cgroup", "CgroupMount", "Hierarchies", "KEEP_PARENTS", "SKIFF_PARENT", "V1Cgroup",
           "V2Cgroup", "detect_hierarchies", "normalise_path", "open_cgroup", "prune_parent"]


class Cgroup(_Interface):
    """One container's cgroup, in every hierarchy the host has."""

    path: str
    """The cgroupsPath, normalised to start with "/"; the same inside every hierarchy."""
    version: str
    """"v1", "v2" or "hybrid"."""

    def create(self) -> None:
        """mkdir in every hierarchy (idempotent), ready for tasks to join."""

    def add(self, pid: int) -> None:
        """Move the process into the cgroup in every hierarchy."""

    def procs_files(self) -> list[str]:
        """The cgroup.procs file of the cgroup in every hierarchy, in the order `add`
        writes them: what `create` keeps in the state, so that `exec` can move a process
        in without loading the drivers (`runtime.cgroup_files.join`)."""

    def set(self, resources: Resources) -> None:
        """Apply linux.resources (at create and at `update`)."""

    def pids(self) -> list[int]:
        """The processes directly in the cgroup."""

    def freeze(self) -> None:
        """Stop every process, returning once the kernel reports the cgroup frozen."""

    def thaw(self) -> None: ...

    def frozen(self) -> bool: ...

    def freezer_probe(self) -> tuple[str, str] | None:
        """(file, line): the file whose `line` says the cgroup is frozen — so that a status
        check can read one file instead of loading the drivers; None without a freezer."""

    def kill_all(self, sig: int) -> None:
        """Send `sig` to every process in the cgroup."""

    def stats(self) -> dict:
        """Statistics shaped as runc's `events --stats` data, as far as the files exist."""

    def oom_kills(self) -> int:
        """How many processes the OOM killer took in this cgroup; 0 if unknown."""

    def exists(self) -> bool: ...

    def destroy(self) -> None:
        """rmdir in every hierarchy, then any ancestors skiff made that are now empty."""

    def mounts(self) -> list[CgroupMount]:
        """What the container's `cgroup` mount must show, hierarchy by hierarchy."""


# Mount options of a v1 cgroup mount that name a controller; every other option ("rw",
# "clone_children", "release_agent=…") is about the mount. Named hierarchies are "name=…".
_V1_CONTROLLERS = frozenset({"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer",
                             "net_cls", "net_prio", "blkio", "perf_event", "hugetlb", "pids",
                             "rdma", "misc", "debug"})


class Hierarchies(Record):
    """How the host mounts cgroups below `root`, as read from mountinfo."""

    v2: str | None = None
    """A cgroup2 mounted at root itself: a pure v2 host."""
    v1: dict[str, str] = field(factory=dict)
    """v1 mountpoint → mount data ("memory", "cpu,cpuacct", "name=systemd"), in mount order."""
    unified: str | None = None
    """A cgroup2 at root/unified next to v1 hierarchies: a hybrid host."""


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as \040-style octal.
    out, i = [], 0
    while i < len(text):
        octal = text[i + 1:i + 4]
        if text[i] == "\\" and len(octal) == 3 and all(c in "01234567" for c in octal):
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def detect_hierarchies(mountinfo_text: str, root: str = "/sys/fs/cgroup") -> Hierarchies:
    """Read mountinfo text and find the cgroup mounts at `root` and directly below it."""
    root = os.path.normpath(root)
    v2: str | None = None
    unified: str | None = None
    v1: dict[str, str] = {}
    for line in mountinfo_text.splitlines():
        if " - cgroup" not in line:
            continue  # (most lines: every container's overlay is one; no cgroup mount)
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or not tail:
            continue
        mountpoint = os.path.normpath(_unescape(fields[4]))
        fstype = tail[0]
        options = tail[2].split(",") if len(tail) > 2 else []
        # A later line over-mounts an earlier one at the same place, hence "last one wins".
        if fstype == "cgroup2":
            if mountpoint == root:
                v2 = mountpoint
            elif mountpoint == os.path.join(root, "unified"):
                unified = mountpoint
        elif fstype == "cgroup" and os.path.dirname(mountpoint) == root:
            data = ",".join(o for o in options if o in _V1_CONTROLLERS or o.startswith("name="))
            if data:
                v1[mountpoint] = data
    if v2 is not None:
        return Hierarchies(v2=v2)
    if v1:
        return Hierarchies(v1=v1, unified=unified)
    return Hierarchies(unified=unified)


def open_cgroup(path: str, *, root: str = "/sys/fs/cgroup",
                mountinfo: str = "/proc/self/mountinfo",
                owned_prefix: str | None = SKIFF_PARENT) -> Cgroup:
    """The driver for the container cgroup `path`, chosen by how this host mounts cgroups.

    Nothing is made until `create()`. `owned_prefix` names skiff's own top directory, whose
    empty descendants `destroy()` may remove even when another process made them.
    """
    try:
        with open(mountinfo, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise CgroupError(f"read `{mountinfo}`: {e.strerror}") from e
    found = detect_hierarchies(text, root)
    if found.v2 is not None:
        return V2Cgroup(path, found.v2, owned_prefix=owned_prefix)
    if found.v1:
        return V1Cgroup(path, found.v1, unified=found.unified, owned_prefix=owned_prefix)
    if found.unified is not None:
        # Only a cgroup2 at root/unified and no v1 controller at all: use it as v2.
        return V2Cgroup(path, found.unified, owned_prefix=owned_prefix)
    raise CgroupError(f"no cgroup hierarchy is mounted at or below `{root}` "
                      f"(according to {mountinfo})")


def prune_parent(path: str, *, root: str = "/sys/fs/cgroup",
                 mountinfo: str = "/proc/self/mountinfo") -> None:
    """rmdir the cgroup parent `path` in every hierarchy where it is empty (no child
    cgroup, no process), and its empty ancestors within skiff's own; one still in use is
    left as it is (an engine letting go of its --cgroup-parent). One outside skiff's own
    (``/skiff``) is the host's, and stays."""
    from ._cgroupfs import owned_by_skiff
    path = normalise_path(path)
    if not owned_by_skiff(path, SKIFF_PARENT):
        return
    try:
        with open(mountinfo, encoding="utf-8") as f:
            found = detect_hierarchies(f.read(), root)
    except OSError:
        return
    mountpoints = ([found.v2] if found.v2 is not None else list(found.v1)) + (
        [found.unified] if found.unified is not None and found.v2 is None else [])
    for mp in mountpoints:
        try:
            os.rmdir(mp.rstrip("/") + path)
        except OSError:
            continue  # busy (a container's cgroup below it), or not there
        try:
            prune_ancestors(mp, path, set(), SKIFF_PARENT)
        except CgroupError:
            pass

