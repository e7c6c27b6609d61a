"""Unpack one image layer — a tar stream, plain or compressed — into a directory.

A layer is applied the way Docker's and containerd's overlay snapshotters apply it, so the
directory can serve as an overlayfs lower layer: files, directories, symlinks, hard links,
devices and fifos keep their mode (setuid and sticky bits too), numeric owner, mtime and the
xattrs of their PAX headers; an `.wh.name` entry becomes the overlay whiteout (a 0:0
character device `name`) and `.wh..wh..opq` marks its directory opaque
(`trusted.overlay.opaque=y`). The archive is not trusted. Absolute entry names are made
relative, as Docker and GNU tar do; a `..` component anywhere refuses the entry; a symlink
is data and is created whatever it points at, but no entry is ever written *through* one:
each component of an entry's path is checked with lstat and opened with O_NOFOLLOW relative
to its parent's fd, so nothing lands outside the layer's own folder. Directories get their
mode and mtime last, so a read-only directory can still be filled. The diff ID (sha256 of
the uncompressed stream) is computed while reading, for the caller to check against the
image config's `rootfs.diff_ids`. `apply_layer` fills an existing directory and leaves a
partial tree on failure; `unpack_layer` unpacks into a temporary sibling and renames it into
place, so a failed unpack leaves nothing.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile

from skiff.errors import LayerError
from skiff.log import logger
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs milliseconds at import; annotations need it only here
    from typing import IO, Any

_WHITEOUT = ".wh."
_WHITEOUT_META = ".wh..wh."
_OPAQUE = ".wh..wh..opq"
_XATTR_PAX = "SCHILY.xattr."
# xattr namespaces an unprivileged store or a file system may refuse; Docker skips them too.
_OPTIONAL_XATTRS = ("security.", "trusted.")
_CHUNK = 1 << 20
# How much of the decompressed stream is kept to check what follows the last entry;
# tarfile's stream mode reads at most one record (10 KiB) ahead of the entry it parses.
_TAIL = 1 << 16

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LayerDiff(Record):
    """What was unpacked: the diff ID ("sha256:<hex>" of the uncompressed tar), its size
    in bytes, and the compression found ("gzip", "zstd", "xz", "bzip2" or "none")."""

    diff_id: str
    size: int
    compression: str


def unpack_layer(stream: IO[bytes], dest: str | os.PathLike[str], *,
                 diff_id: str | None = None) -> LayerDiff:
    """Unpack the layer in `stream` to the new directory `dest`, all or nothing.

    The layer is written to `dest.tmp-XXXXXXXX` beside it and renamed to `dest` once
    complete (and, when `diff_id` is given, once the stream proved to have that diff ID);
    on any failure the temporary tree is removed and `dest` never appears."""
    dest = os.fspath(dest)
    if os.path.lexists(dest):
        raise LayerError(f"unpack layer into `{dest}`: it already exists")
    tmp = f"{dest}.tmp-{os.urandom(4).hex()}"
    try:
        os.mkdir(tmp, 0o700)
        os.chmod(tmp, 0o755)  # a layer root is 0755 unless its "./" entry says otherwise
    except OSError as e:
        raise LayerError(f"unpack layer: mkdir `{tmp}`: {_why(e)}") from e
    try:
        diff = apply_layer(stream, tmp)
        if diff_id is not None and diff.diff_id != diff_id:
            raise LayerError(f"unpack layer into `{dest}`: diff ID is {diff.diff_id}, "
                             f"the image config says {diff_id}")
        try:
            os.rename(tmp, dest)
        except OSError as e:
            raise LayerError(f"unpack layer: rename `{tmp}` to `{dest}`: {_why(e)}") from e
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return diff


def apply_layer(stream: IO[bytes], directory: str | os.PathLike[str]) -> LayerDiff:
    """Unpack the layer in `stream` into the existing `directory`.

    On failure the directory holds whatever was written so far; removing it is the
    caller's job (or use `unpack_layer`, which does)."""
    directory = os.fspath(directory)
    reader = _open_stream(stream)
    try:
        root_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise LayerError(f"apply layer: open `{directory}`: {_why(e)}") from e
    try:
        _Applier(root_fd, reader).run()
    finally:
        os.close(root_fd)
    return LayerDiff(diff_id="sha256:" + reader.hash.hexdigest(), size=reader.size,
                     compression=reader.compression)


# -- the stream ---------------------------------------------------------------------------
class _Prefixed:
    """A raw stream with the bytes already read to sniff its magic put back in front."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self.head, self.raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                data, self.head = self.head + self.raw.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.raw.read(n)


class _Reader:
    """The decompressed tar stream, hashed and counted as tarfile reads it.

    Any failure of the decompressor (a truncated gzip member, a bad CRC, zstd garbage)
    becomes a LayerError here, so tarfile never mistakes it for the end of the archive."""

    def __init__(self, source: Any, compression: str) -> None:
        import hashlib

        self.source = source
        self.compression = compression
        self.hash = hashlib.sha256()
        self.size = 0
        self.tail = bytearray()
        self.tail_start = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.source.read(n)
        except LayerError:
            raise
        except Exception as e:  # noqa: BLE001 - each decompressor raises its own types
            raise LayerError(f"layer stream ({self.compression}) is corrupt or truncated "
                             f"after {self.size} bytes: {e or type(e).__name__}") from e
        self.hash.update(data)
        self.size += len(data)
        self.tail += data
        if len(self.tail) > 2 * _TAIL:
            cut = len(self.tail) - _TAIL
            del self.tail[:cut]
            self.tail_start += cut
        return data

    def check_end(self, offset: int) -> None:
        """Everything from `offset`, where tarfile stopped, to the end must be NULs.

        tarfile's stream mode ends quietly at an invalid header, which is what an entry
        with more data than its declared size, or a truncated header, looks like."""
        start = offset - self.tail_start
        if start < 0:  # cannot happen with tarfile's read-ahead; be loud if it does
            raise LayerError(f"layer stream: lost track of the end of the archive at {offset}")
        if self.size < offset:
            raise LayerError(f"layer stream is truncated: {self.size} bytes, "
                             f"the archive needs {offset}")
        if self.tail[start:].strip(b"\0"):
            raise _bad_header(offset)
        while chunk := self.read(_CHUNK):
            if chunk.strip(b"\0"):
                raise _bad_header(offset)


def _bad_header(offset: int) -> LayerError:
    return LayerError(f"layer stream: invalid tar header at offset {offset} (an entry longer "
                      f"than its declared size, a truncated header, or not a tar stream)")


def _open_stream(stream: IO[bytes]) -> _Reader:
    head = b""
    while len(head) < 6:
        more = stream.read(6 - len(head))
        if not more:
            break
        head += more
    raw: Any = _Prefixed(head, stream)  # file-like enough for every decompressor
    if head.startswith(b"\x1f\x8b"):
        import gzip

        return _Reader(gzip.GzipFile(fileobj=raw, mode="rb"), "gzip")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            raise LayerError("layer stream is zstd-compressed; reading it needs the "
                             "zstandard module (pip install zstandard)") from None
        source = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return _Reader(source, "zstd")
    if head.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return _Reader(lzma.LZMAFile(raw), "xz")
    if head.startswith(b"BZh"):
        import bz2

        return _Reader(bz2.BZ2File(raw), "bzip2")
    return _Reader(raw, "none")


# -- the tree -----------------------------------------------------------------------------
def _why(e: OSError) -> str:
    code = e.errno or errno.EIO
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def _split(name: str, entry: str, what: str = "path") -> tuple[str, ...]:
    """The components of an archive name, made relative; `..` anywhere is refused."""
    parts = tuple(p for p in name.split("/") if p and p != ".")
    if ".." in parts:
        raise LayerError(f"{what} `{name}` has a `..` component", entry)
    return parts


def _ns(member: tarfile.TarInfo, key: str) -> int:
    """A PAX time (exact, to the nanosecond) or the header's whole-second mtime."""
    text = member.pax_headers.get(key)
    if text is None:
        return int(member.mtime) * 1_000_000_000
    whole, _, frac = text.partition(".")
    sign = -1 if whole.startswith("-") else 1
    return int(whole or "0") * 1_000_000_000 + sign * int((frac + "000000000")[:9])


class _Applier:
    # whether `.wh.` names are overlay whiteouts (a layer) or plain names (a copy into a
    # container, as moby's Untar outside a layer takes them)
    whiteouts = True

    def __init__(self, root_fd: int, reader: _Reader) -> None:
        self.root_fd = root_fd
        self.reader = reader
        self.made: set[tuple[str, ...]] = set()  # non-directories of this layer, for hard links
        # Directory metadata, applied after their contents: parts -> (mode, atime, mtime).
        self.dirs: dict[tuple[str, ...], tuple[int, int, int]] = {}

    def run(self) -> None:
        name = None
        try:
            with tarfile.open(fileobj=self.reader, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    name = member.name
                    self.entry(tar, member)
                name = None
                self.reader.check_end(tar.offset)
        except tarfile.TarError as e:
            raise LayerError(f"layer stream is truncated or corrupt: {e}", name) from e
        self.finish_dirs()

    # -- walking --------------------------------------------------------------------------
    def open_dir(self, parts: tuple[str, ...], entry: str, create: bool = True) -> int | None:
        """An fd on the directory `parts` below the root, every component checked to be a
        real directory (never a symlink) and made 0755 when missing. Without `create`,
        None when the path is not such a directory any more."""
        fd = os.dup(self.root_fd)
        try:
            for i, part in enumerate(parts):
                try:
                    st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    os.mkdir(part, 0o755, dir_fd=fd)
                    os.chmod(part, 0o755, dir_fd=fd)  # whatever the umask
                else:
                    if not stat.S_ISDIR(st.st_mode):
                        if not create:
                            os.close(fd)
                            return None
                        where = "/".join(parts[:i + 1])
                        if stat.S_ISLNK(st.st_mode):
                            raise LayerError(f"`{where}` is a symlink in this layer; "
                                             f"refusing to write through it", entry)
                        raise LayerError(f"`{where}` is not a directory", entry)
                # O_NOFOLLOW: should the component have become a link since lstat, fail.
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = sub
            return fd
        except BaseException:
            os.close(fd)
            raise

    def clear(self, pfd: int, name: str, keep_dir: bool) -> None:
        """Make room for a new entry, as tar does: unlink what is there (a directory's whole
        tree unless the new entry is a directory too)."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            import shutil

            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)

    # -- one entry ------------------------------------------------------------------------
    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _split(m.name, m.name)
        base = parts[-1] if parts else ""
        if not self.whiteouts:
            base = ""  # nothing below is a whiteout
        if base.startswith(_WHITEOUT_META):
            if base == _OPAQUE:
                self.opaque(parts[:-1], m)
            return  # other `.wh..wh.` entries (aufs link dirs) mean nothing to overlayfs
        if base.startswith(_WHITEOUT):
            real = base[len(_WHITEOUT):]
            if not real:
                raise LayerError("whiteout names no file", m.name)
            parts = parts[:-1] + (real,)
        if not parts:
            if not m.isdir():
                raise LayerError("the layer root can only be a directory", m.name)
            self.dirs[()] = (m.mode & 0o7777, _ns(m, "atime"), _ns(m, "mtime"))
            self.set_owner_xattrs(self.root_fd, None, m)
            return
        pfd = self.open_dir(parts[:-1], m.name)
        assert pfd is not None
        try:
            self.write(tar, m, pfd, parts, whiteout=base.startswith(_WHITEOUT))
        except OSError as e:
            raise LayerError(f"create `{'/'.join(parts)}`: {_why(e)}", m.name) from e
        finally:
            os.close(pfd)

    def write(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int,
              parts: tuple[str, ...], whiteout: bool) -> None:
        name = parts[-1]
        mode = m.mode & 0o7777
        times = (_ns(m, "atime") if "atime" in m.pax_headers else _ns(m, "mtime"), _ns(m, "mtime"))
        self.clear(pfd, name, keep_dir=m.isdir() and not whiteout)
        self.made.discard(parts)
        if whiteout:
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
            os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            self.made.add(parts)
        elif m.isreg():
            self.regular(tar, m, pfd, name, mode, times)
            self.made.add(parts)
        elif m.isdir():
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)  # writable while filled; real mode at the end
            except FileExistsError:
                pass
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
            try:
                self.set_owner_xattrs(fd, None, m)
            finally:
                os.close(fd)
            self.dirs[parts] = (mode, times[0], times[1])
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=pfd)  # data: created wherever it points
            self.set_owner_xattrs(pfd, name, m)
            os.utime(name, ns=times, dir_fd=pfd, follow_symlinks=False)
            self.made.add(parts)
        elif m.islnk():
            self.hard_link(m, pfd, name)
            self.made.add(parts)
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            dev = 0 if m.isfifo() else os.makedev(m.devmajor, m.devminor)
            os.mknod(name, kind | mode, dev, dir_fd=pfd)
            self.set_owner_xattrs(pfd, name, m)
            os.chmod(name, mode, dir_fd=pfd)  # the node was made just now: no link to follow
            os.utime(name, ns=times, dir_fd=pfd, follow_symlinks=False)
            self.made.add(parts)
        else:
            raise LayerError(f"unsupported tar entry type {m.type!r}", m.name)

    def regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, name: str,
                mode: int, times: tuple[int, int]) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            src = tar.extractfile(m)
            if src is not None:
                while chunk := src.read(_CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
            # chown clears setuid and file capabilities, so owner first, then xattrs and mode.
            self.set_owner_xattrs(fd, None, m)
            os.fchmod(fd, mode)
            os.utime(fd, ns=times)
        finally:
            os.close(fd)

    def link_target(self, m: tarfile.TarInfo) -> tuple[str, ...]:
        """The path a hard link entry links to: an earlier entry of this layer."""
        target = _split(m.linkname, m.name, "hard link target")
        if not target or target not in self.made:
            raise LayerError(f"hard link target `{m.linkname}` is not an earlier entry of "
                             f"this layer", m.name)
        return target

    def hard_link(self, m: tarfile.TarInfo, pfd: int, name: str) -> None:
        target = self.link_target(m)
        tfd = self.open_dir(target[:-1], m.name, create=False)
        if tfd is None:
            raise LayerError(f"hard link target `{m.linkname}` is not inside the layer", m.name)
        try:
            os.link(target[-1], name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)

    def opaque(self, parts: tuple[str, ...], m: tarfile.TarInfo) -> None:
        fd = self.open_dir(parts, m.name)
        assert fd is not None
        try:
            os.setxattr(f"/proc/self/fd/{fd}", "trusted.overlay.opaque", b"y")
        except OSError as e:
            raise LayerError(f"mark `{'/'.join(parts) or '.'}` opaque (trusted.overlay.opaque "
                             f"needs CAP_SYS_ADMIN and trusted xattrs): {_why(e)}", m.name) from e
        finally:
            os.close(fd)

    # -- metadata -------------------------------------------------------------------------
    def set_owner_xattrs(self, fd: int, name: str | None, m: tarfile.TarInfo) -> None:
        """Numeric owner (no name lookup, as Docker), then the PAX xattrs, on the object
        `fd` itself (name None) or on `name` in directory `fd`, never following a link."""
        if name is None:
            os.chown(fd, m.uid, m.gid)
            target: int | str = fd
        else:
            os.chown(name, m.uid, m.gid, dir_fd=fd, follow_symlinks=False)
            target = f"/proc/self/fd/{fd}/{name}"
        for key, value in m.pax_headers.items():
            if not key.startswith(_XATTR_PAX):
                continue
            attr = key[len(_XATTR_PAX):]
            try:
                os.setxattr(target, attr, value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=isinstance(target, int))
            except OSError as e:
                if e.errno in (errno.EPERM, errno.ENOTSUP) and attr.startswith(_OPTIONAL_XATTRS):
                    logger("skiff.store").debug(
                        "layer entry `%s`: xattr %s skipped: %s", m.name, attr, _why(e))
                    continue
                raise LayerError(f"set xattr {attr}: {_why(e)}", m.name) from e

    def finish_dirs(self) -> None:
        # Deepest first, so a parent made read-only (or 0000) is still open to its children's
        # turn. Each directory is opened with O_NOFOLLOW: if a later entry replaced it with a
        # symlink, the metadata is dropped rather than applied to whatever the link names.
        for parts in sorted(self.dirs, key=len, reverse=True):
            mode, atime, mtime = self.dirs[parts]
            if parts:
                pfd = self.open_dir(parts[:-1], "/".join(parts), create=False)
                if pfd is None:
                    continue
                try:
                    fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=pfd)
                except OSError:
                    continue
                finally:
                    os.close(pfd)
            else:
                fd = os.dup(self.root_fd)
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(atime, mtime))
            except OSError as e:
                raise LayerError(f"set mode and mtime of `{'/'.join(parts) or '.'}`: {_why(e)}",
                                 "/".join(parts) or ".") from e
            finally:
                os.close(fd)
