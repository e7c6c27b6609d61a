"""A container's files as tar streams: ``docker cp`` both ways, ``docker export`` and
``docker diff``, over the container's overlay snapshot.

A cp sees the container's root as the container does (`engine.container_view`): a running
container's through its init, with its volumes, binds and tmpfs mounts; a stopped one's
snapshot (mounted again when a reboot took it down) with its volumes and binds mounted
for the copy, as moby mounts them. Reads run chrooted there; an upload is not (the rooted
untar resolves each path in the root itself) and is refused, in moby's words, under a
read-only mount or, outside any mount, on a read-only rootfs. ``docker export`` is the bare
snapshot, without volumes, as moby's. What leaves is written without name lookups, its
owners mapped back to a remapped container's own ids (`_TreeWriter`). Paths resolve as moby's
``ResolvePath`` does: every component but the last is followed *within* the rootfs
(`runtime.secure_path.secure_join` clamps ``..`` and absolute links at the root), the last
is followed only for a path ending in ``/`` or ``/.`` — so a stat of a symlink describes the
link, with its target resolved in the container as ``linkTarget``. The stat is Docker's
ContainerPathStat with the mode in Go's ``os.FileMode`` bits (`go_file_mode`), sent base64
JSON in ``X-Docker-Container-Path-Stat``. An archive is the resolved path's tree, its top
entry renamed to the base name the caller asked for (moby's TarResourceRebase); an upload
is unpacked as moby's chrooted Untar unpacks it (`store.rooted_untar`: ``.wh.`` names are
plain files, never overlay whiteouts; links on the way are followed inside the rootfs, never
out of it) into a directory that must exist, after the whole tar was checked for moby's
breakouts (``..`` out of the target, relative symlinks and hard links that lead out of it)
and against ``noOverwriteDirNonDir`` — so a refused upload changes nothing. `changes` is moby's
overlay diff of the upper dir against the image's layers: a 0/0 character device is a
deletion, an opaque directory that the layers have is one too, an entry the layers have a
modification, anything else an addition, each parent of an addition or deletion reported
modified; what Docker keeps in its init layer (/etc/hostname, /etc/hosts, /proc…) is not
shown, since skiff makes those mount targets in the upper dir itself.
"""

from __future__ import annotations

import os
import stat
import tarfile

from skiff.errors import InvalidArgument, PathNotFound, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import IO, Any, TypeVar

    from skiff.engine.containers import ContainerService
    from skiff.engine.mounts import MountPoint
    from skiff.engine.state_db import ContainerRow
    from skiff.kernel.idmap import IdMaps

    T = TypeVar("T")

# moby's initlayer: what every container's init layer holds, hidden from diff and commit
INIT_PATHS = frozenset({"/dev/pts", "/dev/shm", "/proc", "/sys", "/.dockerenv",
                        "/etc/resolv.conf", "/etc/hosts", "/etc/hostname", "/dev/console",
                        "/etc/mtab"})
# their parents, whose times change when skiff makes the mount targets in them
_INIT_PARENTS = frozenset({"/", "/dev", "/etc"})
CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2
OPAQUE_XATTR = "trusted.overlay.opaque"

# Go's os.FileMode bits
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20
MODE_IRREGULAR = 1 << 19


def go_file_mode(st_mode: int) -> int:
    """Go's os.FileMode of a stat's st_mode (fillFileStatFromSys)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    if kind == stat.S_IFDIR:
        mode |= MODE_DIR
    elif kind == stat.S_IFLNK:
        mode |= MODE_SYMLINK
    elif kind == stat.S_IFBLK:
        mode |= MODE_DEVICE
    elif kind == stat.S_IFCHR:
        mode |= MODE_DEVICE | MODE_CHAR_DEVICE
    elif kind == stat.S_IFIFO:
        mode |= MODE_NAMED_PIPE
    elif kind == stat.S_IFSOCK:
        mode |= MODE_SOCKET
    if st_mode & stat.S_ISUID:
        mode |= MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= MODE_STICKY
    return mode


def _trailing(path: str) -> bool:
    """Whether the path says "the directory itself" (moby's PreserveTrailingDotOrSeparator)."""
    return path.endswith("/") or path.endswith("/.") or path == "."


def abs_path(path: str) -> str:
    """The path as an absolute one in the container, its trailing ``/`` or ``/.`` kept."""
    joined = os.path.normpath(os.path.join("/", path))
    if path.endswith("/."):
        return joined.rstrip("/") + "/."
    if _trailing(path) and joined != "/":
        return joined + "/"
    return joined


def resolve(rootfs: str, path: str) -> tuple[str, str]:
    """(host path, absolute container path) of `path`: the last component is followed
    only when the path ends with ``/`` or ``/.``."""
    from skiff.runtime.secure_path import secure_join

    absolute = abs_path(path)
    directory, base = os.path.split(absolute)
    try:
        resolved_dir = secure_join(rootfs, directory)
        if base in ("", "."):
            return secure_join(rootfs, absolute), absolute
    except SkiffError as e:
        raise PathNotFound(f"Could not find the file {path} in container: {e}") from None
    return os.path.join(resolved_dir, base), absolute


def path_stat(rootfs: str, path: str, container: str) -> dict[str, Any]:
    """Docker's ContainerPathStat of `path`; 404 (Docker's words) when it is missing."""
    from skiff.engine.times import rfc3339_nano
    from skiff.runtime.secure_path import secure_join

    host, absolute = resolve(rootfs, path)
    try:
        st = os.lstat(host)
    except (FileNotFoundError, NotADirectoryError):
        raise PathNotFound(f"Could not find the file {path} in container {container}"
                           ) from None
    link = ""
    if stat.S_ISLNK(st.st_mode):
        target = secure_join(rootfs, absolute)
        link = "/" + os.path.relpath(target, os.path.abspath(rootfs)).removeprefix(".")
        link = os.path.normpath(link)
    name = os.path.basename(absolute.rstrip("/")) if absolute != "/" else "/"
    if absolute.endswith("/."):
        name = "."
    return {"name": name, "size": st.st_size, "mode": go_file_mode(st.st_mode),
            "mtime": rfc3339_nano(st.st_mtime), "linkTarget": link}


def encode_stat(doc: dict[str, Any]) -> str:
    import base64

    from skiff import jsonfast

    return base64.b64encode(jsonfast.dumps(doc).encode()).decode()


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Numeric owners only (the host's user names mean nothing in the container) and whole
    seconds, as Go's tar writer rounds them: no PAX header where Docker writes none."""
    info.uname = info.gname = ""
    info.mtime = int(info.mtime)
    return info


_KINDS = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
          stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
          stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFREG: tarfile.REGTYPE}


class _TreeWriter:
    """tarfile's recursive `add` with `_tar_filter`'s entries, but no name looked up at all
    (no NSS in a container's root), owners mapped back to the container's ids for a
    remapped one (moby's IDMap.ToContainer), hard links as links to the first name of
    their inode, sockets left out (as tarfile leaves them)."""

    def __init__(self, tar: tarfile.TarFile, idmaps: IdMaps | None) -> None:
        self.tar, self.idmaps = tar, idmaps
        self.inodes: dict[tuple[int, int], str] = {}

    def add(self, path: str, arcname: str) -> None:
        st = os.lstat(path)
        kind = _KINDS.get(stat.S_IFMT(st.st_mode))
        if kind is None:
            return
        info = tarfile.TarInfo(arcname)
        info.mode, info.mtime, info.type = stat.S_IMODE(st.st_mode), int(st.st_mtime), kind
        info.uid, info.gid = st.st_uid, st.st_gid
        if self.idmaps is not None:
            info.uid, info.gid = self.idmaps.container_ids(st.st_uid, st.st_gid)
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif kind == tarfile.SYMTYPE:
            info.linkname = os.readlink(path)
        elif kind == tarfile.REGTYPE:
            first = self.inodes.setdefault((st.st_ino, st.st_dev), arcname)
            if st.st_nlink > 1 and first != arcname:
                info.type, info.linkname = tarfile.LNKTYPE, first
            else:
                self._add_file(path, info, st)
                return
        self.tar.addfile(info)
        if kind == tarfile.DIRTYPE:
            for name in sorted(os.listdir(path)):
                self.add(os.path.join(path, name), os.path.join(arcname, name))

    def _add_file(self, path: str, info: tarfile.TarInfo, st: os.stat_result) -> None:
        # O_NONBLOCK: a file swapped for a fifo meanwhile cannot hang the copy
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode) or now.st_ino != st.st_ino:
                raise SkiffError(f"{path} changed while it was being copied")
            info.size = now.st_size
            self.tar.addfile(info, f)


def write_path(rootfs: str, path: str, stat_doc: dict[str, Any], out: IO[bytes],
               idmaps: IdMaps | None = None) -> None:
    """The tar of `path` (stat'ed as `stat_doc`), its top entry named as the path's base
    (``.`` for a ``/.`` path), as ``GET /containers/{id}/archive`` sends it; `idmaps`: a
    remapped container's, through which its owners are shown as the container's."""
    host, absolute = resolve(rootfs, path)
    rebase = os.path.basename(absolute.rstrip("/")) or "."
    if absolute.endswith("/.") or absolute == "/":
        rebase = "."
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _TreeWriter(tar, idmaps).add(host, rebase)


def write_rootfs(rootfs: str, out: IO[bytes], idmaps: IdMaps | None = None) -> None:
    """The tar of a whole rootfs (``docker export``), its entries relative to its root."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        writer = _TreeWriter(tar, idmaps)
        for name in sorted(os.listdir(rootfs)):
            writer.add(os.path.join(rootfs, name), name)


# -- upload --------------------------------------------------------------------------------
def check_upload(src: IO[bytes], dest: str, in_container: str,
                 no_overwrite_dir_non_dir: bool) -> None:
    """Read the whole upload (plain or compressed) before anything is written: a tar that
    is broken, that breaks out of the folder `in_container` (`dest` on the host), or that
    would replace a directory by a file (or the reverse) under ``noOverwriteDirNonDir``,
    is refused here."""
    from skiff.store.layers import _open_stream
    from skiff.store.rooted_untar import check_member

    reader = _open_stream(src)
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                check_member(member, in_container)
                if not no_overwrite_dir_non_dir:
                    continue
                parts = [p for p in os.path.normpath(member.name).split("/")
                         if p not in ("", ".")]
                if not parts:
                    continue
                target = os.path.join(dest, *parts)
                try:
                    st = os.lstat(target)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode) and not member.isdir():
                    raise SkiffError(f'cannot overwrite directory "{target[len(dest):] or "/"}"'
                                     f' with non-directory "{member.name}"')
                if not stat.S_ISDIR(st.st_mode) and member.isdir():
                    raise SkiffError(f'cannot overwrite non-directory "{target[len(dest):]}" '
                                     f'with directory "{member.name}"')
    except tarfile.TarError as e:
        raise InvalidArgument(f"the archive is not a valid tar: {e}") from None


def check_writable(in_container: str, points: Iterable[MountPoint],
                   readonly_rootfs: bool) -> None:
    """moby's checkIfPathIsInAVolume, then its read-only rootfs check: a copy to the
    resolved `in_container` goes into the mount holding it (the deepest of `points`),
    which must be writable, or else into the rootfs, which must be."""
    from skiff.engine.mounts import depth
    from skiff.store.rooted_untar import inside

    holding = [p for p in points if not p.get("Hidden")
               and inside(in_container, p["Destination"])]
    if holding:
        if not max(holding, key=lambda p: depth(p["Destination"]))["RW"]:
            raise SkiffError("mounted volume is marked read-only")
    elif readonly_rootfs:
        raise SkiffError("container rootfs is marked read-only")


def extract(rootfs: str, path: str, src: IO[bytes], container: str, *,
            no_overwrite_dir_non_dir: bool = False,
            owner: tuple[int, int] | None = None, idmaps: IdMaps | None = None,
            writable: Callable[[str], None] | None = None) -> None:
    """Unpack the tar `src` (a seekable spool) into the directory `path` of the
    container, its last component followed; `owner`: the host ids every entry gets
    (``copyUIDGID``); `idmaps`: a remapped container's, which the entries' owners go
    through; `writable(resolved path)` refuses a target that may not be written."""
    from skiff.runtime.secure_path import secure_join
    from skiff.store.rooted_untar import untar_in_root

    absolute = abs_path(path)
    dest = secure_join(rootfs, absolute)
    in_container = os.path.normpath(
        "/" + os.path.relpath(dest, os.path.abspath(rootfs)).removeprefix("."))
    try:
        st = os.lstat(dest)
    except (FileNotFoundError, NotADirectoryError):
        raise PathNotFound(f"Could not find the file {path} in container {container}"
                           ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument("extraction point is not a directory")
    if writable is not None:
        writable(in_container)
    check_upload(src, dest, in_container, no_overwrite_dir_non_dir)
    src.seek(0)
    untar_in_root(src, rootfs, in_container, owner=owner, idmaps=idmaps)


# -- diff ----------------------------------------------------------------------------------
def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _hidden(path: str) -> bool:
    return path in INIT_PATHS or any(path.startswith(p + "/") for p in INIT_PATHS)


def _walk_below(upper: str, rel: str) -> Iterator[tuple[str, os.stat_result]]:
    folder = os.path.join(upper, rel.lstrip("/"))
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        path = os.path.join(rel, name)
        try:
            st = os.lstat(os.path.join(upper, path.lstrip("/")))
        except OSError:
            continue
        yield path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_below(upper, path)


def walk_upper(upper: str) -> Iterator[tuple[str, os.stat_result]]:
    """(container path, lstat) of the upper dir's entries, in lexical walk order, without
    what the init layer would hold."""
    for path, st in _walk_below(upper, "/"):
        if not _hidden(path):
            yield path, st


def _in_layers(lowers: list[str], path: str) -> os.stat_result | None:
    for layer in lowers:
        try:
            return os.stat(os.path.join(layer, path.lstrip("/")))
        except OSError:
            continue
    return None


def changes(upper: str, lowers: list[str]) -> list[dict[str, Any]]:
    """moby's overlay changes of `upper` over `lowers`: ``[{"Path", "Kind"}]``."""
    out: list[dict[str, Any]] = []
    changed_dirs: set[str] = set()
    for path, st in walk_upper(upper):
        deleted = _is_whiteout(st) or (stat.S_ISDIR(st.st_mode)
                                       and _opaque(os.path.join(upper, path.lstrip("/")))
                                       and _in_layers(lowers, path) is not None)
        if deleted:
            kind = CHANGE_DELETE
        else:
            kind = CHANGE_ADD
            old = _in_layers(lowers, path)
            if old is not None:
                if stat.S_ISDIR(old.st_mode) and stat.S_ISDIR(st.st_mode):
                    same_time = int(old.st_mtime) == int(st.st_mtime) or path in _INIT_PARENTS
                    if old.st_size == st.st_size and old.st_mode == st.st_mode and same_time:
                        continue  # a parent copied up for a child: not itself changed
                kind = CHANGE_MODIFY
        if stat.S_ISDIR(st.st_mode):
            changed_dirs.add(path)
        if kind in (CHANGE_ADD, CHANGE_DELETE):
            parent = os.path.dirname(path)
            if parent not in changed_dirs and parent != "/":
                out.append({"Path": parent, "Kind": CHANGE_MODIFY})
                changed_dirs.add(parent)
        out.append({"Path": path, "Kind": kind})
    return out


# -- the service's side --------------------------------------------------------------------
class ContainerFiles:
    """The archive operations of one engine's containers."""

    def __init__(self, svc: ContainerService) -> None:
        self.svc = svc

    def _emit(self, cid: str, action: str) -> None:
        from skiff.engine.container_control import _emit

        _emit(self.svc, cid, action)

    def rootfs(self, ref: str) -> tuple[str, str]:
        """(container ID, its mounted rootfs): a snapshot a reboot unmounted is mounted
        again (and stays so, as a start leaves it)."""
        from skiff.engine.userns_remap import maps_of

        svc = self.svc
        cid = svc.resolve(ref)
        live = svc._live_of(cid)
        with live.lock:
            row = svc._row(cid)
            if live.removing or row.state.get("Status") in ("removing", "dead"):
                raise SkiffError(f"container {cid} is marked for removal")
            return cid, svc._mounted_rootfs(cid, row.image_id, maps_of(row.doc))

    def _in_root(self, ref: str, work: Callable[[ContainerRow, str], T], *,
                 mounts: bool = True, chroot: bool = True) -> tuple[str, T]:
        """(container ID, `work(row, root)` done in the container's root as it sees it
        (`container_view.run_in_root`): a running one's through its init, a stopped one's
        snapshot with its volumes and binds mounted, as moby mounts them — with their
        volume mount and unmount events); without `mounts`, the bare rootfs."""
        from skiff.engine.container_view import init_root, run_in_root

        cid, rootfs = self.rootfs(ref)
        row = self.svc._row(cid)
        if not mounts:
            return cid, run_in_root(lambda root: work(row, root), rootfs=rootfs)
        points = row.doc.get("MountPoints") or []
        pid = int(row.state.get("Pid") or 0) if row.state.get("Running") else 0
        root_fd = init_root(pid, rootfs, cid) if pid else None
        try:
            specs = self.svc.volumes.start_mounts(cid, points)
        except BaseException:
            if root_fd is not None:
                os.close(root_fd)
            raise
        try:
            if root_fd is not None:
                return cid, run_in_root(lambda root: work(row, root), root_fd=root_fd,
                                        chroot=chroot)
            return cid, run_in_root(lambda root: work(row, root), rootfs=rootfs,
                                    mounts=specs, chroot=chroot)
        finally:
            self.svc.volumes.stopped(cid, points)

    def stat(self, ref: str, path: str) -> dict[str, Any]:
        """``HEAD /containers/{id}/archive?path=``."""
        if not path:
            raise InvalidArgument("path is required")  # moby's "not enough args"
        return self._in_root(ref, lambda row, root: path_stat(root, path, ref))[1]

    def archive(self, ref: str, path: str, out: IO[bytes]) -> None:
        """The tar of ``GET /containers/{id}/archive?path=`` (after `stat`)."""
        from skiff.engine.userns_remap import maps_of

        def work(row: ContainerRow, root: str) -> None:
            write_path(root, path, path_stat(root, path, ref), out, maps_of(row.doc))

        cid, _ = self._in_root(ref, work)
        self._emit(cid, "archive-path")

    def export(self, ref: str, out: IO[bytes]) -> None:
        """``GET /containers/{id}/export``: the rootfs without the container's volumes (as
        moby's), owners as the container sees them."""
        from skiff.engine.userns_remap import maps_of

        cid, _ = self._in_root(ref, lambda row, root: write_rootfs(root, out,
                                                                   maps_of(row.doc)),
                               mounts=False)
        self._emit(cid, "export")

    def put(self, ref: str, path: str, src: IO[bytes], *, no_overwrite_dir_non_dir: bool,
            copy_uid_gid: bool) -> None:
        """``PUT /containers/{id}/archive?path=``."""
        if not path:
            raise InvalidArgument("path is required")
        from skiff.engine.oci_spec import resolve_user
        from skiff.engine.userns_remap import maps_of

        def work(row: ContainerRow, root: str) -> None:
            idmaps = maps_of(row.doc)
            owner = None
            if copy_uid_gid and row.doc["Config"].get("User"):
                user = resolve_user(root, row.doc["Config"]["User"])
                owner = (user.uid, user.gid) if idmaps is None else \
                    idmaps.host_ids(user.uid, user.gid)
            readonly = bool(row.doc["HostConfig"].get("ReadonlyRootfs"))
            points = row.doc.get("MountPoints") or ()
            extract(root, path, src, ref, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                    owner=owner, idmaps=idmaps,
                    writable=lambda at: check_writable(at, points, readonly))

        # not chrooted: the rooted untar resolves every path in the root with openat2, and
        # needs the host's /proc for what it sets on names (glibc's fchmodat, xattrs)
        cid, _ = self._in_root(ref, work, chroot=False)
        self._emit(cid, "extract-to-dir")

    def changes(self, ref: str) -> list[dict[str, Any]] | None:
        """``GET /containers/{id}/changes``: None (Docker's null) when nothing changed."""
        svc = self.svc
        row = svc._row(svc.resolve(ref))
        try:
            lowers = svc.store.rootfs_layers(svc.store.get(row.image_id))
        except SkiffError:
            lowers = []
        found = changes(svc.snapshots.upper(row.id), lowers)
        return found or None
