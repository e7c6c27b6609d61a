"""Capsule packs: a capsule's files as one canonical tar, zstd-compressed, kept as a blob.

A capsule's identity is the digest of its pack, so the pack must depend on the files alone:
the same files give the same bytes whoever packs them, from wherever. Entries are therefore
sorted by path, owned by 0:0 with no names, dated 0, and their modes reduced to what a
read-only capsule can have — directories 0555, files 0555 when any execute bit was set and
0444 otherwise, symlinks as they are — and the tar (PAX, so long names need no tricks) goes
through one zstd compressor at a fixed level, with no threads and no content size, so the
frame is the same every time. Parent directories are implied, and hard links are written as
the files they name. Three sources give the entries: host paths (`entries_from_paths`: each
kept at its basename or at the target given; a path given on its own is followed if it is a
symlink, as ``cp`` follows its arguments; a directory is taken whole), a folder
(`entries_from_dir`: its contents at the capsule's top, symlinks kept as symlinks) and a
tar archive (`entries_from_tar`, read from a seekable file). What cannot be a capsule's
content is refused with the path that is at fault: devices, fifos, sockets, names with
``..`` or an overlay whiteout's ``.wh.`` prefix, two entries for one path, a file where a
folder is needed. `check_pack` reads a pack that came from elsewhere (a registry) and
refuses one with such entries before it is stored.
"""

from __future__ import annotations

import os
import stat
import tarfile

from skiff.errors import InvalidArgument
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import IO, Any

    from skiff.store.blobs import BlobStore

MEDIA_TYPE = "application/vnd.skiff.capsule.pack.v1.tar+zstd"
ZSTD_LEVEL = 10  # packs are made once and read often: a smaller pack is worth the time
_CHUNK = 1 << 20
_WHITEOUT = ".wh."
DIR, FILE, SYMLINK = "dir", "file", "symlink"


class PackEntry:
    """One entry of a capsule: its path inside the capsule, its kind, whether it is
    executable, its size and link target, and how to read its bytes."""

    __slots__ = ("path", "kind", "executable", "size", "link", "source", "opener")

    def __init__(self, path: str, kind: str, *, executable: bool = False, size: int = 0,
                 link: str = "", source: str = "",
                 opener: Callable[[], IO[bytes]] | None = None) -> None:
        self.path = path
        self.kind = kind
        self.executable = executable
        self.size = size
        self.link = link
        self.source = source or path  # what to name in an error
        self.opener = opener

    def __repr__(self) -> str:
        return f"PackEntry({self.path!r}, {self.kind})"


class Packed(Record):
    """A pack as stored: its blob digest and size, the files' bytes and the number of
    entries, and whether the blob is new (no capsule had this content before)."""

    digest: str
    size: int
    content_size: int
    entries: int
    new: bool


def _bad(source: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f"capsule content `{source}`: {problem}")


def clean_path(path: str, source: str) -> str:
    """A capsule path made relative and normal (``a/b``), or refused saying why."""
    if "\0" in path:
        raise _bad(source, "the name holds a NUL byte")
    parts = [p for p in path.replace("\\", "/").split("/") if p and p != "."]
    if ".." in parts:
        raise _bad(source, f"the path `{path}` has a `..` component")
    if not parts:
        raise _bad(source, f"the path `{path}` names the capsule's top folder itself")
    if any(p.startswith(_WHITEOUT) for p in parts):
        raise _bad(source, f"the path `{path}` starts a name with `{_WHITEOUT}` (an overlay "
                           f"whiteout's mark)")
    return "/".join(parts)


def _open_file(path: str) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        try:
            return open(path, "rb")
        except OSError as e:
            raise _bad(path, f"cannot read it: {e.strerror}") from e
    return opener


def _host_entry(source: str, target: str, follow: bool) -> PackEntry:
    """The entry for the host path `source` at `target`; `follow`: a symlink's target."""
    try:
        st = os.stat(source) if follow else os.lstat(source)
        if follow and not os.access(source, os.R_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        raise _bad(source, f"cannot read it: {e.strerror}") from e
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return PackEntry(target, DIR, source=source)
    if stat.S_ISREG(mode):
        return PackEntry(target, FILE, executable=bool(mode & 0o111), size=st.st_size,
                         source=source, opener=_open_file(source))
    if stat.S_ISLNK(mode):
        return PackEntry(target, SYMLINK, link=os.readlink(source), source=source)
    raise _bad(source, "a capsule holds files, folders and symlinks only (this is a "
                       "device, fifo or socket)")


def _walk(top: str, prefix: str, out: list[PackEntry]) -> None:
    """Everything below the host folder `top`, at `prefix` in the capsule."""
    try:
        names = sorted(os.listdir(top))
    except OSError as e:
        raise _bad(top, f"cannot read the folder: {e.strerror}") from e
    for name in names:
        source = os.path.join(top, name)
        target = clean_path(f"{prefix}/{name}" if prefix else name, source)
        entry = _host_entry(source, target, follow=False)
        out.append(entry)
        if entry.kind == DIR:
            _walk(source, target, out)


def entries_from_paths(paths: Iterable[tuple[str, str | None]]) -> list[PackEntry]:
    """Host paths, each ``(source, target in the capsule or None for its basename)``."""
    out: list[PackEntry] = []
    for source, target in paths:
        if not source:
            raise InvalidArgument("capsule content: a path is empty")
        name = target if target else os.path.basename(os.path.normpath(source))
        # followed: the user named the file, not the link to it
        entry = _host_entry(source, clean_path(name, source), follow=True)
        out.append(entry)
        if entry.kind == DIR:
            _walk(source, entry.path, out)
    if not out:
        raise InvalidArgument("capsule content: no path given")
    return out


def entries_from_dir(directory: str) -> list[PackEntry]:
    """The contents of the host folder `directory`, at the capsule's top."""
    try:
        st = os.stat(directory)
    except OSError as e:
        raise _bad(directory, f"cannot read it: {e.strerror}") from e
    if not stat.S_ISDIR(st.st_mode):
        raise _bad(directory, "not a folder")
    out: list[PackEntry] = []
    _walk(directory, "", out)
    return out


def entries_from_tar(archive: IO[bytes]) -> list[PackEntry]:
    """The entries of the tar in `archive` (plain or compressed, seekable); their bytes are
    read from it when the pack is written, so it must stay open until then."""
    try:
        tar = tarfile.open(fileobj=archive, mode="r:*")
        members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise InvalidArgument(f"capsule content: not a tar archive: {e}") from e
    by_name = {m.name: m for m in members}
    out: list[PackEntry] = []
    for m in members:
        if m.isdir() and _below_top(m.name):
            out.append(PackEntry(clean_path(m.name, m.name), DIR, source=m.name))
            continue
        if m.isdir():
            continue  # "./" itself
        target: tarfile.TarInfo | None = m
        if m.islnk():  # a hard link: the file it names, written again
            target = by_name.get(m.linkname) or by_name.get("./" + m.linkname.lstrip("./"))
            if target is None or not target.isreg():
                raise _bad(m.name, f"a hard link to `{m.linkname}`, which the archive does "
                                   f"not hold as a file")
        path = clean_path(m.name, m.name)
        assert target is not None
        if target.isreg():
            out.append(PackEntry(path, FILE, executable=bool(target.mode & 0o111),
                                 size=target.size, source=m.name,
                                 opener=_member_opener(tar, target)))
        elif m.issym():
            out.append(PackEntry(path, SYMLINK, link=m.linkname, source=m.name))
        else:
            raise _bad(m.name, "a capsule holds files, folders and symlinks only (this is a "
                               "device or fifo)")
    return out


def _below_top(name: str) -> bool:
    """Whether an archive name names something below the top (not ``.`` or ``/``)."""
    return any(p and p != "." for p in name.split("/"))


def _member_opener(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        f = tar.extractfile(member)
        if f is None:
            raise _bad(member.name, "cannot read it from the archive")
        return f
    return opener


def canonical(entries: Iterable[PackEntry]) -> list[PackEntry]:
    """The entries sorted, their parents added, duplicates and clashes refused."""
    found: dict[str, PackEntry] = {}
    for entry in entries:
        parts = entry.path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            had = found.get(parent)
            if had is None:
                found[parent] = PackEntry(parent, DIR, source=entry.source)
            elif had.kind != DIR:
                raise _bad(entry.source, f"`{parent}` is a file of the capsule (from "
                                         f"`{had.source}`), so nothing can go below it")
        had = found.get(entry.path)
        if had is not None:
            if had.kind == DIR and entry.kind == DIR:
                continue
            raise _bad(entry.source, f"two entries for `{entry.path}` (the other from "
                                     f"`{had.source}`)")
        found[entry.path] = entry
    return [found[p] for p in sorted(found, key=lambda p: p.split("/"))]


def _tar_info(entry: PackEntry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    if entry.kind == DIR:
        info.type, info.mode = tarfile.DIRTYPE, 0o555
    elif entry.kind == SYMLINK:
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.link
    else:
        info.type, info.size = tarfile.REGTYPE, entry.size
        info.mode = 0o555 if entry.executable else 0o444
    return info


class _Sink:
    """The blob writer as the compressor's output file."""

    def __init__(self, write: Callable[[bytes], int]) -> None:
        self.write = write

    def flush(self) -> None:
        pass


def pack(entries: Iterable[PackEntry], blobs: BlobStore) -> Packed:
    """Write the capsule's pack into `blobs`; an error leaves no blob behind."""
    import zstandard

    ordered = canonical(entries)
    if not ordered:
        raise InvalidArgument("capsule content: it is empty")
    content = 0
    with blobs.writer() as writer:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=False,
                                              write_checksum=True)
        sink: Any = _Sink(writer.write)  # file-like enough for the compressor
        with compressor.stream_writer(sink, closefd=False) as zw:
            with tarfile.open(fileobj=zw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for entry in ordered:
                    info = _tar_info(entry)
                    if entry.kind != FILE:
                        tar.addfile(info)
                        continue
                    assert entry.opener is not None
                    with entry.opener() as f:
                        try:
                            tar.addfile(info, f)
                        except OSError as e:
                            raise _bad(entry.source, f"cannot read it: {e}") from e
                    content += entry.size
        digest = writer.commit()
    return Packed(digest=digest, size=writer.written, content_size=content,
                  entries=len(ordered), new=not writer.existed)


def check_pack(stream: IO[bytes]) -> int:
    """Read the pack in `stream` (zstd tar) through; refuse what `pack` never writes.
    Returns the number of entries."""
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    count = 0
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for m in tar:
                if not _below_top(m.name):
                    continue
                clean_path(m.name, m.name)
                if not (m.isreg() or m.isdir() or m.issym()):
                    raise _bad(m.name, "a capsule pack holds files, folders and symlinks "
                                       "only")
                if not m.issym() and m.mode & 0o7222:
                    raise _bad(m.name, f"mode {m.mode:o}: a capsule pack has no write, "
                                       f"setuid, setgid or sticky bits")
                count += 1
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as e:
        raise InvalidArgument(f"capsule pack: not a zstd-compressed tar: {e}") from e
    return count
