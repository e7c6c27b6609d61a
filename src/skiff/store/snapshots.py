"""The overlay snapshotter: a container's writable rootfs over its image's read-only layers.

A snapshot is ``<root>/snapshots/<key>/`` holding ``upper/`` (what the container writes),
``work/`` (overlayfs's scratch space, on the same filesystem as upper) and ``rootfs/``, where
the overlay of the lower dirs (topmost first, as `LayerStore.lower_dirs` gives them) under
``upper`` is mounted. An image with no layers gets an empty ``lower/`` of its own, since
overlayfs needs at least one lower dir. Everything `prepare` makes is undone if a later step
fails, so a failed prepare leaves neither a mount nor a folder. A snapshot with an id
mapping (a ``--userns-remap`` container) mounts each lower dir through an idmapped bind at
``idmapped-<n>/`` and lets the mapped root own ``upper/``; `remove` unmounts them all.

overlayfs splits its mount data on `,` and its lowerdir list on `:`, and reads `\\` as an
escape; a path holding any of them is refused with a StoreError rather than built into an
option string that would mean something else. The mount data is one page (4096 bytes here)
at most: a stack too deep for that is refused with a clear error too. containerd works
around the limit by mounting with lower dirs relative to a common parent after a chdir in a
forked helper; skiff does not (yet), as a forking mount helper costs more than it saves for
the image depths seen in practice (some 40 layers of ~90 bytes each).
"""

from __future__ import annotations

import errno as _errno
import os

from skiff.errors import KernelError, StoreError
from skiff.kernel import syscall
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from contextlib import ExitStack

    from skiff.kernel.idmap import IdMaps

_log = logger("skiff.store.snapshots")
_UNSAFE = (",", ":", "\\")
LOWERS = "lowers"  # the snapshot's lower dirs, one per line, topmost first
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4096


def _check_key(key: str) -> None:
    if (not key or len(key) > 128 or key.startswith(".") or not set(key) <= _KEY_CHARS):
        raise StoreError(f"snapshot key `{key}` is invalid: use 1 to 128 of [A-Za-z0-9_.-], "
                         f"not starting with `.`")


def _check_path(path: str, what: str) -> None:
    bad = [c for c in _UNSAFE if c in path]
    if bad:
        raise StoreError(f"overlay {what} `{path}` holds {' and '.join(repr(c) for c in bad)}, "
                         f"which overlayfs mount options cannot carry; move it to a plain path")


def overlay_options(lower_dirs: list[str], upper: str, work: str) -> str:
    """The overlayfs mount data for these dirs, refusing paths it cannot express and
    option strings longer than the kernel takes (one page, with its NUL)."""
    if not lower_dirs:
        raise StoreError("an overlay needs at least one lower dir")
    for d in lower_dirs:
        _check_path(d, "lower dir")
    _check_path(upper, "upper dir")
    _check_path(work, "work dir")
    data = f"lowerdir={':'.join(lower_dirs)},upperdir={upper},workdir={work}"
    if _index_on():
        # Lower dirs are shared by many snapshots; the index would tie each to one upper.
        data += ",index=off"
    limit = _page_size() - 1
    if len(data) > limit:
        raise StoreError(f"overlay mount options for {len(lower_dirs)} lower dirs are "
                         f"{len(data)} bytes, over the kernel's limit of {limit} (one page); "
                         f"use fewer layers or a shorter store root")
    return data


def _index_on() -> bool:
    try:
        with open("/sys/module/overlay/parameters/index") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def _unescape(field: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as \ooo
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _escape(path: str) -> str:
    """`path` as /proc/self/mountinfo writes it (`_unescape`'s inverse)."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in path)


def mount_points() -> set[str]:
    """Every mount point of this mount namespace."""
    points = set()
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.split(" ", 5)
            if len(parts) > 4:
                points.add(_unescape(parts[4]))
    return points


def mounts_below(path: str) -> builtins.list[str]:
    """The mount points at `path` or below it, each as often as something is mounted
    there. The table holds every container's snapshot, so lines that do not name `path`
    are passed over unparsed."""
    wanted = _escape(path)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            if wanted not in line:
                continue
            parts = line.split(" ", 5)
            if len(parts) > 4:
                point = _unescape(parts[4])
                if point == path or point.startswith(path + "/"):
                    found.append(point)
    return found


class Snapshotter:
    """The overlay snapshots below ``<root>/snapshots``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # Real path: mountinfo names mount points by it, and `mounted` compares with it.
        self.root = os.path.realpath(os.fspath(root))
        self.snapshots = os.path.join(self.root, "snapshots")

    def path(self, key: str) -> str:
        _check_key(key)
        return os.path.join(self.snapshots, key)

    def rootfs(self, key: str) -> str:
        return os.path.join(self.path(key), "rootfs")

    def upper(self, key: str) -> str:
        return os.path.join(self.path(key), "upper")

    def exists(self, key: str) -> bool:
        return os.path.isdir(self.path(key))

    def mounted(self, key: str) -> bool:
        rootfs = self.rootfs(key)
        return rootfs in mounts_below(rootfs)

    def list(self) -> builtins.list[str]:
        """The keys of every snapshot, sorted."""
        try:
            names = os.listdir(self.snapshots)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith(".")
                      and os.path.isdir(os.path.join(self.snapshots, n)))

    def prepare(self, key: str, lower_dirs: builtins.list[str],
                idmap: IdMaps | None = None) -> str:
        """Make the snapshot `key` over `lower_dirs` (topmost first) and mount its rootfs;
        return the rootfs path. All or nothing. With `idmap` (a user-namespace-remapped
        container), the lower dirs are seen through idmapped binds and upper belongs to the
        mapped root, so the container's root owns its files as it would its own."""
        from contextlib import ExitStack

        snap = self.path(key)
        lowers = [os.path.abspath(d) for d in lower_dirs]
        for d in lowers:
            _check_path(d, "lower dir")
            if not os.path.isdir(d):
                raise StoreError(f"prepare snapshot `{key}`: lower dir `{d}` is not a directory")
        upper, work, rootfs = (os.path.join(snap, n) for n in ("upper", "work", "rootfs"))
        _check_path(snap, "snapshot dir")
        try:
            os.makedirs(self.snapshots, exist_ok=True)
        except OSError as e:
            raise StoreError(f"prepare snapshot `{key}`: mkdir `{self.snapshots}`: "
                             f"{_why(e)}") from e
        with ExitStack() as undo:
            try:
                os.mkdir(snap, 0o711)
            except FileExistsError:
                raise StoreError(f"prepare snapshot `{key}`: it already exists") from None
            except OSError as e:
                raise StoreError(f"prepare snapshot `{key}`: mkdir `{snap}`: {_why(e)}") from e
            undo.callback(_rmtree, snap)
            try:
                for d in (upper, work, rootfs):
                    os.mkdir(d, 0o755)
                    os.chmod(d, 0o755)  # whatever the umask: upper's mode is the root's
                if not lowers:
                    empty = os.path.join(snap, "lower")
                    os.mkdir(empty, 0o755)
                    os.chmod(empty, 0o755)
                    lowers = [empty]
            except OSError as e:
                raise StoreError(f"prepare snapshot `{key}`: {_why(e)}: "
                                 f"`{e.filename}`") from e
            if idmap is not None:
                os.chown(upper, *idmap.host_ids())
            data = overlay_options(self._idmapped(key, lowers, idmap, undo), upper, work)
            try:
                # the stack is the snapshot's own from now on: remounting it never needs the
                # image again, and the image store keeps the layers it names
                # (not fsynced: nor is the new folder it is in; a snapshot that a crash cut
                # short records nothing, and its container falls back on its image)
                with open(os.path.join(snap, LOWERS), "x") as f:
                    f.write("".join(d + "\n" for d in lowers))
                syscall.mount("overlay", rootfs, "overlay", 0, data)
            except OSError as e:
                raise StoreError(f"prepare snapshot `{key}`: {_why(e)}: "
                                 f"`{e.filename}`") from e
            except KernelError as e:
                raise StoreError(f"prepare snapshot `{key}`: {e}") from e
            undo.callback(_umount, rootfs)
            _log.debug("snapshot %s mounted at %s over %d lower dirs", key, rootfs, len(lowers))
            undo.pop_all()
        return rootfs

    def lower_dirs(self, key: str) -> builtins.list[str]:
        """The lower dirs `key` was prepared over, topmost first (what `prepare` recorded)."""
        try:
            with open(os.path.join(self.path(key), LOWERS)) as f:
                found = f.read().splitlines()
        except FileNotFoundError:
            found = []
        if not found:
            raise StoreError(f"snapshot `{key}`: it does not exist or records no lower "
                             f"dirs")
        return found

    def held_dirs(self) -> set[str]:
        """Every lower dir some snapshot stands on."""
        held: set[str] = set()
        for key in self.list():
            try:
                held.update(self.lower_dirs(key))
            except StoreError:
                continue  # removed meanwhile
        return held

    def mount(self, key: str, lower_dirs: builtins.list[str] | None = None,
              idmap: IdMaps | None = None) -> str:
        """Mount the rootfs of `key` again over its recorded stack (after a reboot, or once
        something unmounted it); return the rootfs path. A snapshot that records no stack
        (an older skiff's, or one a crash cut short) is mounted over `lower_dirs`, which it
        records from then on. `idmap`: as the snapshot was prepared."""
        from contextlib import ExitStack

        snap = self.path(key)
        upper, work, rootfs = (os.path.join(snap, n) for n in ("upper", "work", "rootfs"))
        try:
            lowers = self.lower_dirs(key)
        except StoreError:
            if lower_dirs is None:
                raise
            lowers = [os.path.abspath(d) for d in lower_dirs] or [os.path.join(snap, "lower")]
            os.makedirs(lowers[-1], exist_ok=True)
            with open(os.path.join(snap, LOWERS), "w") as f:
                f.write("".join(d + "\n" for d in lowers))
        with ExitStack() as undo:
            data = overlay_options(self._idmapped(key, lowers, idmap, undo), upper, work)
            try:
                syscall.mount("overlay", rootfs, "overlay", 0, data)
            except KernelError as e:
                raise StoreError(f"snapshot `{key}`: mount its rootfs again: {e}") from e
            undo.pop_all()
        return rootfs

    def _idmapped(self, key: str, lowers: builtins.list[str], idmap: IdMaps | None,
                  undo: ExitStack) -> builtins.list[str]:
        """The lower dirs to mount the overlay over: `lowers` themselves, or with `idmap`
        idmapped binds of them at ``idmapped-<n>/`` (unmounted by `undo` on failure)."""
        if idmap is None:
            return lowers
        from skiff.kernel.idmap import idmapped_bind, userns_fd

        try:
            fd = userns_fd(idmap.uids, idmap.gids)
        except KernelError as e:
            raise StoreError(f"snapshot `{key}`: {e}") from e
        out = []
        try:
            for i, lower in enumerate(lowers):
                target = os.path.join(self.path(key), f"idmapped-{i}")
                os.makedirs(target, 0o755, exist_ok=True)
                try:
                    idmapped_bind(lower, target, fd)
                except KernelError as e:
                    raise StoreError(f"snapshot `{key}`: idmapped lower dir: {e} (the "
                                     f"filesystem of the store must support idmapped "
                                     f"mounts for --userns-remap)") from e
                undo.callback(_umount, target)
                out.append(target)
        finally:
            os.close(fd)
        return out

    def remove(self, key: str, later: builtins.list[str] | None = None) -> None:
        """Unmount the snapshot `key` (lazily when busy) and delete its folder — or, with
        `later`, only take it out of the store (renamed to a hidden name, which a start's
        sweep also deletes) and add it there, for the caller to delete when it likes."""
        snap = self.path(key)
        if not os.path.lexists(snap):
            raise StoreError(f"remove snapshot `{key}`: it does not exist")
        rootfs = os.path.join(snap, "rootfs")
        try:
            # the common case, the rootfs's one overlay, comes off without a look at the
            # mount table first: a plain umount, which anything else there makes fail
            _umount_if_alone(rootfs)
            # Never delete through a mount (that would delete the container's files via
            # it): what is left comes off one by one — whatever is on or in the rootfs,
            # then the idmapped lower dirs it stood on, deepest first — until none is
            while below := mounts_below(snap):
                _umount(min(below, key=lambda point: _unmount_order(rootfs, point)))
        except KernelError as e:
            raise StoreError(f"remove snapshot `{key}`: {e}") from e
        doomed = os.path.join(self.snapshots, f".rm-{key}-{os.urandom(4).hex()}")
        try:
            os.rename(snap, doomed)
        except OSError as e:
            raise StoreError(f"remove snapshot `{key}`: rename `{snap}`: {_why(e)}") from e
        if later is not None:
            later.append(doomed)
        else:
            _rmtree(doomed)


def _unmount_order(rootfs: str, point: str) -> tuple[bool, int]:
    """Sorts the mounts of a snapshot into the order they can come off in: the rootfs and
    what is in it before what it stands on, each deepest first."""
    return not (point == rootfs or point.startswith(rootfs + "/")), -len(point)


def _umount_if_alone(target: str) -> None:
    """Unmount `target` if it is a mount point with nothing mounted below it and nobody
    in it; otherwise (or if it is not a mount point at all) leave it as it is."""
    try:
        syscall.umount(target)
    except KernelError as e:
        if e.errno not in (_errno.EINVAL, _errno.ENOENT, _errno.EBUSY):
            raise


def _umount(target: str) -> None:
    try:
        syscall.umount(target)
    except KernelError as e:
        if e.errno != _errno.EBUSY:
            raise
        _log.warning("umount %s: busy, detaching it lazily", target)
        syscall.umount(target, syscall.MNT_DETACH)


def _why(e: OSError) -> str:
    code = e.errno or _errno.EIO
    return f"{_errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
