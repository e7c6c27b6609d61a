"""The files of an image archive: read by name from a tar or a directory, or written as a tar
stream — nothing outside the archive ever reachable through a name or a link.

Both archive formats need random access (a docker-archive's ``manifest.json`` comes after
the layers it names), so `spool` first copies the incoming stream — stdin or an HTTP body,
plain or gzip/bzip2/xz/zstd-compressed — to a temporary file under the store's root.
`TarMembers` then indexes that tar once; `DirMembers` serves an OCI image layout on disk.
Names are normalised (``./`` and a leading ``/`` dropped, as Docker's untar does); a member
whose name climbs out with ``..`` refuses the whole archive, as Docker's untar refuses it.
Symlinks and hard links are followed inside the archive — the legacy docker-archive links a
layer two images share — and a link that leads out is an ArchiveError, never a file of the
host. A member opens as a stream bounded to its own bytes; JSON members are read whole, up
to a cap. `TarWriter` writes a tar stream member by member (headers, data, padding), so a
50 MB layer streams through without being held in memory; every entry gets mtime 0 and
owner 0:0, as ``docker save`` makes them, so one image always saves to the same bytes.
"""

from __future__ import annotations

import os
import stat
import tarfile

from skiff.errors import ArchiveError, DigestMismatch, LayerError
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Callable, Protocol

    class _Source(Protocol):
        def read(self, n: int = -1, /) -> bytes: ...
        def close(self) -> None: ...

JSON_LIMIT = 32 << 20  # manifests, configs and indexes are KiB; a bigger one is not one
_CHUNK = 1 << 20
_MAX_LINKS = 40  # as the kernel's (and Go's FollowSymlinkInScope's) limit on link hops
_BLOCK = 512


class ArchivedLayer(Record):
    """A layer blob in an archive: the member holding it, its digest (checked when it is
    stored), size and media type."""

    member: str
    digest: str
    size: int
    media_type: str


class ArchivedImage(Record):
    """An image as an archive holds it: manifest and config bytes (the config's digest is
    `image_id`), its layers in manifest order and the references (full, normalised) to
    give it."""

    image_id: str
    manifest: bytes
    config: bytes
    config_member: str
    layers: tuple[ArchivedLayer, ...]
    tags: tuple[str, ...]


def split_name(name: str, member: str | None = None) -> list[str]:
    """The components of an archive path (``./`` and a leading ``/`` dropped); ``..``
    that climbs above the archive's top refuses it."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ArchiveError(f"the name `{name}` leads outside the archive",
                                   member or name)
            parts.pop()
        else:
            parts.append(part)
    return parts


class Members:
    """An archive's files by name; `where` says which archive, for messages."""

    where = "archive"

    def exists(self, name: str) -> bool:
        try:
            self.resolve(name)
        except ArchiveError:
            return False
        return True

    def resolve(self, name: str) -> str:
        """The normalised name of the regular file `name` leads to, links followed."""
        raise NotImplementedError

    def size(self, name: str) -> int:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def read(self, name: str, limit: int = JSON_LIMIT) -> bytes:
        """The whole member `name`, refused when it is larger than `limit` bytes."""
        size = self.size(name)
        if size > limit:
            raise ArchiveError(f"is {size} bytes, more than the {limit} a document may have",
                               name)
        with self.open(name) as f:
            return f.read()

    def read_verified(self, name: str, digest: str, size: int | None = None) -> bytes:
        """The member `name`, which must be `size` bytes (when given) hashing to `digest`."""
        from skiff.store.blobs import digest_of

        data = self.read(name)
        if size is not None and len(data) != size:
            raise DigestMismatch("size", size, len(data), digest)
        actual = digest_of(data)
        if actual != digest:
            raise DigestMismatch("digest", digest, actual)
        return data

    def digest(self, name: str) -> str:
        """The sha256 digest of the member `name`, read through once."""
        import hashlib

        h = hashlib.sha256()
        with self.open(name) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return "sha256:" + h.hexdigest()

    def head(self, name: str, n: int = 6) -> bytes:
        """The first `n` bytes of the member `name` (to tell its compression)."""
        with self.open(name) as f:
            return f.read(n)

    def close(self) -> None:
        pass


class _Slice:
    """`size` bytes of a file from `start`, as a read-only stream of their own."""

    def __init__(self, path: str, start: int, size: int) -> None:
        self._file = open(path, "rb")
        self._file.seek(start)
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._file.read(n)
        self._left -= len(data)
        if len(data) < n:
            raise ArchiveError("the archive file was truncated while it was read")
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _Slice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TarMembers(Members):
    """The members of the (uncompressed, seekable) tar file at `path`, indexed once."""

    def __init__(self, path: str, where: str = "archive") -> None:
        self.path = path
        self.where = where
        self._index: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(path, mode="r:") as tar:
                for info in tar:
                    name = "/".join(split_name(info.name))
                    _check_link(name, info)
                    if name:
                        self._index[name] = info  # a later entry of a name replaces it
        except tarfile.TarError as e:
            raise ArchiveError(f"the {where} is not a readable tar archive: {e}") from e
        except OSError as e:
            raise ArchiveError(f"read the {where}: {e.strerror or e}") from e

    def _entry(self, name: str) -> tarfile.TarInfo:
        resolved = self.resolve(name)
        return self._index[resolved]

    def resolve(self, name: str) -> str:
        todo = split_name(name)
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if not done:
                    raise ArchiveError(f"a link in `{name}` leads outside the archive", name)
                done.pop()
                continue
            here = "/".join(done + [part])
            info = self._index.get(here)
            if info is not None and (info.issym() or (info.islnk() and todo == [])):
                hops += 1
                if hops > _MAX_LINKS:
                    raise ArchiveError("too many levels of links", name)
                if info.issym():
                    target = info.linkname
                    if target.startswith("/"):
                        done = []  # absolute: from the archive's top, as in Docker's scope
                else:
                    target, done = info.linkname, []  # hard links name from the top
                todo = [p for p in target.split("/") if p not in ("", ".")] + todo
                continue
            done.append(part)
        resolved = "/".join(done)
        info = self._index.get(resolved)
        if info is None or not info.isreg():
            what = "is not a regular file" if info is not None else "is missing"
            raise ArchiveError(f"{what} in the {self.where}", name)
        if info.sparse is not None:
            raise ArchiveError(f"is a sparse file, which an image archive never holds", name)
        return resolved

    def size(self, name: str) -> int:
        return int(self._entry(name).size)

    def open(self, name: str) -> IO[bytes]:
        info = self._entry(name)
        return _Slice(self.path, info.offset_data, info.size)  # type: ignore[return-value]


class DirMembers(Members):
    """The files under the directory `root` (an OCI image layout on disk)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.where = f"directory `{root}`"
        if not os.path.isdir(self.root):
            raise ArchiveError(f"`{root}` is not a directory")

    def _path(self, name: str) -> str:
        path = os.path.realpath(os.path.join(self.root, *split_name(name)))
        if os.path.commonpath([path, self.root]) != self.root:
            raise ArchiveError(f"a link in `{name}` leads outside {self.where}", name)
        try:
            mode = os.stat(path).st_mode
        except OSError:
            raise ArchiveError(f"is missing in the {self.where}", name) from None
        if not stat.S_ISREG(mode):
            raise ArchiveError(f"is not a regular file in the {self.where}", name)
        return path

    def resolve(self, name: str) -> str:
        return os.path.relpath(self._path(name), self.root)

    def size(self, name: str) -> int:
        return os.stat(self._path(name)).st_size

    def open(self, name: str) -> IO[bytes]:
        return open(self._path(name), "rb")


def _check_link(name: str, info: tarfile.TarInfo) -> None:
    """Refuse a link that points out of the archive, as Docker's untar refuses it (an
    absolute symlink counts from the archive's top)."""
    if info.issym() and not info.linkname.startswith("/"):
        target = f"{os.path.dirname(name)}/{info.linkname}"
    elif info.islnk():
        target = info.linkname
    else:
        return
    try:
        split_name(target)
    except ArchiveError:
        raise ArchiveError(f"links to `{info.linkname}`, outside the archive",
                           info.name) from None


def spool(src: IO[bytes], tmp_dir: str) -> str:
    """Copy the archive stream `src`, decompressed, to a new file in `tmp_dir`; its path.
    The caller removes it."""
    from skiff.store.layers import _open_stream  # the layer reader's sniffing, reused

    os.makedirs(tmp_dir, exist_ok=True)
    import tempfile

    fd, path = tempfile.mkstemp(prefix="archive-", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            reader = _open_stream(src)
            while chunk := reader.read(_CHUNK):
                out.write(chunk)
    except LayerError as e:
        _unlink(path)
        detail = e.__cause__ or e.problem
        raise ArchiveError(f"the archive stream is corrupt or truncated: {detail}") from e
    except BaseException:
        _unlink(path)
        raise
    return path


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class TarWriter:
    """A tar stream written to `out` entry by entry; `close` ends it as Go's archive/tar does
    (two zero blocks)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def _header(self, name: str, kind: bytes, size: int, mode: int) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mode, info.mtime = kind, size, mode, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict"))

    def directory(self, name: str) -> None:
        self._header(name.rstrip("/") + "/", tarfile.DIRTYPE, 0, 0o755)

    def file(self, name: str, data: bytes) -> None:
        self._header(name, tarfile.REGTYPE, len(data), 0o644)
        self._write(data)
        self._pad(len(data))

    def stream(self, name: str, size: int, source: _Source,
               check: Callable[[], None] | None = None) -> None:
        """An entry of `size` bytes read from `source` (closed here); a source that gives
        more or fewer bytes, or whose `check` fails at its end, raises: the stream is then
        broken (a reader sees a truncated archive), never silently wrong."""
        left = size
        try:
            self._header(name, tarfile.REGTYPE, size, 0o644)
            while left:
                chunk = source.read(min(_CHUNK, left))
                if not chunk:
                    raise ArchiveError(f"gave {size - left} bytes of the {size} expected", name)
                self._write(chunk)
                left -= len(chunk)
            if source.read(1):
                raise ArchiveError(f"has more than the {size} bytes expected", name)
            if check is not None:
                check()
        finally:
            source.close()
        self._pad(size)

    def close(self) -> None:
        self._write(b"\0" * (2 * _BLOCK))
        flush = getattr(self.out, "flush", None)
        if flush is not None:
            flush()

    def _pad(self, size: int) -> None:
        if size % _BLOCK:
            self._write(b"\0" * (_BLOCK - size % _BLOCK))

    def _write(self, data: bytes) -> None:
        while data:
            n = self.out.write(data)
            if n is None or n >= len(data):  # None: a writer that takes all and says nothing
                return
            data = data[n:]
