"""Reading, writing, making and removing cgroupfs files and directories, shared by both drivers.

cgroupfs is not an ordinary filesystem. Each write(2) is one command that the kernel either
accepts or refuses with an errno (the write itself and its error are `runtime.cgroup_files`',
shared with `exec`). Directories are made with mkdir and can be removed only once no process
is left in them, and their files appear on their own. Every failure becomes a `CgroupError`
that names the file and the errno. The same code also drives the plain directories of a fake
tree in unit tests.
"""

from __future__ import annotations

import errno
import os
import time
from skiff.record import Record

from skiff.errors import CgroupError, SpecError
from skiff.kernel import signals
from skiff.log import logger
from skiff.runtime.cgroup_files import failure, write  # noqa: F401  (the drivers' fs.write)

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

log = logger("skiff.cgroups")

#: skiff's own directory in every hierarchy. Ancestors at or below it belong to skiff, so
#: `destroy` removes them once they are empty, whichever process made them.
SKIFF_PARENT = "/skiff"
#: a spec annotation ("true"): the parents of the container's cgroup are its engine's to
#: keep (skiffd's --cgroup-parent, as dockerd keeps /docker), so the container's removal
#: takes its own cgroup only and the next container need not make them again
KEEP_PARENTS = "org.skiff.cgroups.keep-parents"

# How long destroy() waits for the processes of a killed cgroup to finish exiting (rmdir
# answers EBUSY until they have). runc waits ~300 ms; exit of a big process can take longer.
RMDIR_WAIT = 2.0
# How often create() starts over when a concurrent destroy() removes an ancestor under it.
CREATE_RETRIES = 5


class CgroupMount(Record):
    """One hierarchy as a container's `cgroup` mount must show it.

    `name` is the directory below /sys/fs/cgroup inside the container ("memory",
    "cpu,cpuacct", "systemd", "unified"; "" when the hierarchy *is* /sys/fs/cgroup, as on
    pure v2). `data` is the mount data: v1 subsystem options such as "memory" or
    "name=systemd", "" for cgroup2. `host_path` is this container's cgroup on the host,
    to bind-mount when the container has no cgroup namespace. `aliases` are the symlinks
    runc makes for co-mounted controllers ("cpu" and "cpuacct" → "cpu,cpuacct").
    """

    name: str
    fstype: str
    data: str
    host_path: str
    aliases: tuple[str, ...] = ()


def normalise_path(path: str) -> str:
    """The cgroupsPath as an absolute path inside each hierarchy.

    A relative path is taken relative to the hierarchy root too. A container that chose its
    place relative to the caller's own cgroup would follow that caller around, and here it
    would land inside whatever cgroup the caller happens to be in.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SpecError("linux.cgroupsPath", f"must not contain '..', got {path!r}")
    if not parts:
        raise SpecError("linux.cgroupsPath",
                        f"must name a cgroup below the hierarchy root, got {path!r}")
    return "/" + "/".join(parts)


def join(mountpoint: str, path: str) -> str:
    return os.path.join(mountpoint, path.lstrip("/")) if path.strip("/") else mountpoint


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise failure("read", path, e) from e


def read_optional(path: str) -> str | None:
    """The file's text, or None when it does not exist (an absent controller or feature)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise failure("read", path, e) from e


def read_int(path: str, *, max_value: int = 0) -> int | None:
    """A single number; "max" reads as `max_value` (each driver says what unlimited means)."""
    text = read_optional(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return max_value
    try:
        return int(text)
    except ValueError:
        return None


def read_keyed(path: str) -> dict[str, int] | None:
    """A flat-keyed file ("key value" per line), as memory.stat, cpu.stat, memory.events."""
    text = read_optional(path)
    if text is None:
        return None
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value.strip())
        except ValueError:
            continue
    return out


def read_pids(path: str) -> list[int]:
    text = read_optional(path)
    if text is None:
        return []
    return [int(line) for line in text.split() if line.isdigit()]


def make_dirs(mountpoint: str, path: str, made: set[str],
              prepare: Callable[[str], None] | None = None) -> list[str]:
    """mkdir each component of `path` below `mountpoint`, top-down; return the dirs made now.

    Every dir this call makes is also added to `made`, so that destroy() knows it was
    skiff's. `prepare(dir)` runs on each component once it exists (v1 cpuset must fill
    cpus/mems before a child can be made usable). A concurrent destroy() can remove an
    empty ancestor between our mkdirs. mkdir then fails with ENOENT, and we start over.
    """
    made_now: list[str] = []
    parts = path.strip("/").split("/")
    for attempt in range(CREATE_RETRIES):
        current = mountpoint
        try:
            for part in parts:
                current = os.path.join(current, part)
                try:
                    os.mkdir(current, 0o755)
                    made_now.append(current)
                    made.add(current)
                except FileExistsError:
                    pass
                if prepare is not None:
                    prepare(current)
            return made_now
        except FileNotFoundError as e:
            last: Exception = failure("mkdir", current, e)
        except CgroupError as e:
            if getattr(e, "errno", None) != errno.ENOENT:
                raise
            last = e
        except OSError as e:
            raise failure("mkdir", current, e) from e
        log.debug("an ancestor of %s vanished during create (attempt %d), retrying",
                  current, attempt + 1)
    raise last


def undo_dirs(made_now: Iterable[str], made: set[str]) -> None:
    """Best-effort removal of the dirs one failed create() made, deepest first."""
    for d in reversed(list(made_now)):
        try:
            os.rmdir(d)
        except OSError:
            pass
        made.discard(d)


def remove_dir(path: str) -> None:
    """rmdir a cgroup and any child cgroups made inside it (e.g. by a container with its
    own cgroup namespace), deepest first. Retries briefly on EBUSY, because rmdir fails
    while killed processes are still exiting."""
    try:
        children = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as e:
        raise failure("scan", path, e) from e
    for child in children:
        remove_dir(child)
    delay = 0.005
    deadline = time.monotonic() + RMDIR_WAIT
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno in (errno.EBUSY, errno.ENOTEMPTY) and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            raise failure("rmdir", path, e) from e


def owned_by_skiff(relpath: str, prefix: str | None) -> bool:
    return prefix is not None and (relpath == prefix or relpath.startswith(prefix.rstrip("/") + "/"))


def prune_ancestors(mountpoint: str, path: str, made: set[str], prefix: str | None) -> None:
    """rmdir the empty ancestors of `path` that skiff made, up to but not including the
    hierarchy root. An ancestor is skiff's if this object made it or it lies at or below
    `prefix` (SKIFF_PARENT). A sibling that is still alive makes rmdir fail with
    ENOTEMPTY/EBUSY. That is expected, and pruning simply stops there.
    """
    parent = os.path.dirname(path)
    while parent not in ("/", ""):
        full = join(mountpoint, parent)
        if full not in made and not owned_by_skiff(parent, prefix):
            return
        try:
            os.rmdir(full)
        except FileNotFoundError:
            pass  # a concurrent destroy took it; its parent may still be ours to prune
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EBUSY, errno.EEXIST):
                return
            raise failure("rmdir", full, e) from e
        made.discard(full)
        parent = os.path.dirname(parent)


def signal_pids(pids: Iterable[int], sig: int) -> None:
    # These pids were read from the cgroup's own cgroup.procs, so every one of them is one
    # of the container's processes, and a pid that has exited meanwhile is simply skipped.
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as e:
            raise CgroupError(f"kill {pid} with {signals.name(sig)}: "
                              f"EPERM ({os.strerror(e.errno or errno.EPERM)})") from e


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    """Poll `check` with a short, growing sleep until true or `timeout` seconds pass."""
    delay = 0.0005
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def parse_device_lines(text: str | None) -> list[tuple[int, int, str]]:
    """Lines starting "major:minor rest" (blkio v1 stats, io.stat), others skipped."""
    out: list[tuple[int, int, str]] = []
    for line in (text or "").splitlines():
        dev, _, rest = line.strip().partition(" ")
        major, colon, minor = dev.partition(":")
        if colon and major.isdigit() and minor.isdigit():
            out.append((int(major), int(minor), rest.strip()))
    return out
