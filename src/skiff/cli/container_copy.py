"""`skiff cp`: files between a container and the local machine, with the docker CLI's
semantics (cli/command/container/cp.go over moby's pkg/archive copy rules).

One side is ``CONTAINER:PATH``, the other a local path or ``-`` (a tar on stdin or stdout).
The daemon is asked for the container side's stat (``HEAD …/archive``, its ``linkTarget``
followed with ``-L``); then `prepare_copy` decides, as PrepareArchiveCopy does, where the
archive is unpacked and which name its top entry takes: into an existing directory as it
is, else into the destination's parent renamed to the destination's base name — a
directory cannot replace a file, and a path ending in ``/`` must be an existing directory.
To a container, the local tree is tarred with its top entry already named so and sent with
``noOverwriteDirNonDir`` (``-a``: ``copyUIDGID``); from a container, the archive's entries
are renamed as they are unpacked (owners not kept: the CLI's NoLchown). With a terminal on
stdout, "Successfully copied 2.05kB to …" on stderr tells the size of the tar that went
over, as docker's does.
"""

from __future__ import annotations

import os
import stat as stat_module
import tarfile

from skiff.cli.flags import Command, flag
from skiff.errors import NotFound, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from skiff.cli.main import Context

_GO_MODE_DIR = 1 << 31
_GO_MODE_SYMLINK = 1 << 27
_CHUNK = 1 << 20


def split_cp_arg(arg: str) -> tuple[str, str]:
    """(container, path) of a cp argument; container "" for a local path (docker's
    splitCpArg: an absolute or ``.``-relative path is local, as is anything whose part
    before ``:`` holds a ``/``)."""
    if arg.startswith(".") or os.path.isabs(arg):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or "/" in container:
        return "", arg
    return container, path


def split_dir_entry(path: str) -> tuple[str, str]:
    """pkg/archive's SplitPathDirEntry: (dir, base), ``/.`` kept as base ``.``."""
    cleaned = os.path.normpath(path) if path else "."
    if path.endswith("/.") or path == ".":
        cleaned = cleaned.rstrip("/") + "/." if cleaned != "." else "."
    return os.path.dirname(cleaned) or ".", os.path.basename(cleaned)


def asserts_directory(path: str) -> bool:
    return path.endswith("/") or path.endswith("/.") or path == "."


def prepare_copy(src_path: str, src_is_dir: bool, dst_path: str, dst_exists: bool,
                 dst_is_dir: bool, rebase_name: str = "") -> tuple[str, str, str]:
    """PrepareArchiveCopy: (the directory to unpack into, the archive's top name, the name
    it takes there — the same when nothing is renamed)."""
    _, src_base = split_dir_entry(src_path)
    if rebase_name:
        src_base = rebase_name
    dst_dir, dst_base = split_dir_entry(dst_path)
    if dst_exists and dst_is_dir:
        return dst_path, src_base, src_base
    if dst_exists and src_is_dir:
        raise SkiffError("cannot copy directory")
    if not dst_exists and not src_is_dir and asserts_directory(dst_path):
        raise SkiffError("no such directory")
    return dst_dir, src_base, dst_base


def _rename(name: str, old: str, new: str) -> str:
    if old == new:
        return name
    if name == old:
        return new
    if name.startswith(old + "/"):
        return new + name[len(old):]
    return name


def _decode_stat(header: str | None) -> dict[str, Any]:
    import base64

    from skiff import jsonfast

    if not header:
        return {}
    try:
        value = jsonfast.loads(base64.b64decode(header))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _stat(ctx: Context, container: str, path: str) -> dict[str, Any]:
    resp = ctx.client.open("HEAD", f"/containers/{container}/archive", {"path": path})
    resp.read()
    return _decode_stat(resp.headers.get("x-docker-container-path-stat"))


class _Body:
    """A response body as a file to read."""

    def __init__(self, resp: Any) -> None:
        self.chunks = iter(resp.iter_raw())
        self.pending = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.pending) < n:
            chunk = next(self.chunks, b"")
            if not chunk:
                break
            self.pending += chunk
        if n < 0:
            data, self.pending = self.pending, b""
        else:
            data, self.pending = self.pending[:n], self.pending[n:]
        return data


def _report(ctx: Context, quiet: bool, size: int, where: str) -> None:
    from skiff.cli.streams import isatty
    from skiff.units import human_size

    if not quiet and isatty(ctx.out):  # docker's rule: told when stdout is a terminal
        ctx.err.write(f"Successfully copied {human_size(size, 3)} to {where}\n")


# -- from a container ----------------------------------------------------------------------
def _copy_from(ctx: Context, container: str, src: str, dst: str, follow: bool,
               quiet: bool) -> int:
    rebase = ""
    if follow:
        try:
            info = _stat(ctx, container, src)
        except NotFound:
            raise SkiffError(f"Error: No such container:path: {container}:{src}") from None
        if int(info.get("mode") or 0) & _GO_MODE_SYMLINK and info.get("linkTarget"):
            rebase = split_dir_entry(src)[1]
            src = str(info["linkTarget"])
    resp = ctx.client.open("GET", f"/containers/{container}/archive", {"path": src})
    info = _decode_stat(resp.headers.get("x-docker-container-path-stat"))
    body = _Body(resp)
    if dst == "-":
        from skiff.cli.streams import binary

        out = binary(ctx.out)
        ctx.out.flush()
        while data := body.read(_CHUNK):
            out.write(data)
        out.flush()
        return 0
    src_is_dir = bool(int(info.get("mode") or 0) & _GO_MODE_DIR)
    exists, is_dir = _local_dest(dst)
    dst_dir, old, new = prepare_copy(src, src_is_dir, dst, exists, is_dir, rebase)
    if rebase:
        old = split_dir_entry(src)[1]  # the archive's entries still carry the target's name
    size = _unpack(body, dst_dir, old, new)
    _report(ctx, quiet, size, dst)
    return 0


def _local_dest(dst: str) -> tuple[bool, bool]:
    """CopyInfoDestinationPath: whether `dst` exists and is a directory (symlinks
    followed); its parent must exist."""
    if os.path.lexists(dst):
        is_dir = os.path.isdir(dst)
        if asserts_directory(dst) and not is_dir:
            raise SkiffError("not a directory")
        return True, is_dir
    parent = os.path.dirname(os.path.normpath(dst)) or "."
    if not os.path.isdir(parent):
        raise SkiffError(f"lstat {parent}: no such file or directory")
    return False, False


def _unpack(stream: Any, dst_dir: str, old: str, new: str) -> int:
    """Unpack into `dst_dir` with the top name renamed; an entry that would land outside
    it (absolute, ``..``) is refused; owners are the caller's (docker's NoLchown). The
    archive's size up to its end marker (what docker counts) is returned."""
    uid, gid = os.getuid(), os.getgid()
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                name = _rename(member.name, old, new)
                parts = name.split("/")
                if name.startswith("/") or ".." in parts:
                    raise SkiffError(f"Error: refusing the archive entry {member.name!r}: "
                                     f"it leaves {dst_dir}")
                if member.islnk():
                    member.linkname = _rename(member.linkname, old, new)
                member.name, member.uid, member.gid = name, uid, gid
                member.uname = member.gname = ""
                tar.extract(member, dst_dir, numeric_owner=True)
            return tar.offset + 2 * tarfile.BLOCKSIZE
    except (tarfile.TarError, OSError) as e:
        raise SkiffError(f"Error: {e}") from None


# -- to a container ------------------------------------------------------------------------
def _copy_to(ctx: Context, src: str, container: str, dst: str, follow: bool,
             copy_uid_gid: bool, quiet: bool) -> int:
    import tempfile

    try:
        info = _stat(ctx, container, dst)
        exists = True
    except NotFound:
        info, exists = {}, False
    if exists and follow and int(info.get("mode") or 0) & _GO_MODE_SYMLINK \
            and info.get("linkTarget"):
        dst = str(info["linkTarget"])
        info = _stat(ctx, container, dst)
    dst_is_dir = bool(int(info.get("mode") or 0) & _GO_MODE_DIR)
    query = {"path": dst, "noOverwriteDirNonDir": True, "copyUIDGID": copy_uid_gid or None}
    headers = {"Content-Type": "application/x-tar"}
    if src == "-":
        if not dst_is_dir:
            raise SkiffError(f'destination "{container}:{dst}" must be a directory')
        ctx.client.open("PUT", f"/containers/{container}/archive", query,
                        body=_stdin(ctx), headers=headers).read()
        return 0
    host, rebase = _local_source(src, follow)
    src_is_dir = os.path.isdir(host) and not os.path.islink(host)
    dst_dir, _, new = prepare_copy(src, src_is_dir, dst, exists, dst_is_dir, rebase)
    query["path"] = dst_dir
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(host, arcname=new, recursive=True, filter=_numeric)
            end = tar.offset
        size = end + 2 * tarfile.BLOCKSIZE
        spool.truncate(size)  # no padding to tar's 10 KiB records: Go's writer has none
        spool.seek(0)
        ctx.client.open("PUT", f"/containers/{container}/archive", query, body=spool,
                        headers=headers).read()
    _report(ctx, quiet, size, f"{container}:{dst}")
    return 0


def _numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # numeric owners and whole seconds, as the docker CLI's tar (Go's writer) has them
    info.uname = info.gname = ""
    info.mtime = int(info.mtime)
    return info


def _stdin(ctx: Context) -> BinaryIO:
    from skiff.cli.streams import binary_input

    return binary_input(ctx.stdin)


def _local_source(src: str, follow: bool) -> tuple[str, str]:
    """(the local path to tar, the name its top entry takes or "") — CopyInfoSourcePath:
    with `follow`, a symlink's target under the link's own name."""
    try:
        st = os.lstat(src)
    except OSError as e:
        raise SkiffError(f"lstat {os.path.abspath(src)}: {e.strerror.lower() if e.strerror else e}"
                         ) from None
    if follow and stat_module.S_ISLNK(st.st_mode):
        return os.path.realpath(src), split_dir_entry(src)[1]
    if src.endswith("/.") or src == ".":
        return src, "."
    return src, ""


def cp(ctx: Context, path: str, argv: list[str]) -> int:
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\t"
                  f"{prog} cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
                  "Copy files/folders between a container and the local filesystem", [
                      flag("archive", "a", "Archive mode (copy all uid/gid information)"),
                      flag("follow-link", "L", "Always follow symbol link in SRC_PATH"),
                      flag("quiet", "q", "Suppress progress output during copy. Progress "
                           "output is automatically suppressed if no terminal is attached"),
                  ], (2, 2), aliases=f"{prog} container cp, {prog} cp")
    opts = cmd.parse(argv)
    src, dst = opts.args
    if not src:
        raise SkiffError("source can not be empty")
    if not dst:
        raise SkiffError("destination can not be empty")
    src_container, src_path = split_cp_arg(src)
    dst_container, dst_path = split_cp_arg(dst)
    if src_container and dst_container:
        raise SkiffError("copying between containers is not supported")
    if src_container:
        return _copy_from(ctx, src_container, src_path, dst_path, opts.follow_link, opts.quiet)
    if dst_container:
        return _copy_to(ctx, src_path, dst_container, dst_path, opts.follow_link,
                        opts.archive, opts.quiet)
    raise SkiffError("must specify at least one container source")
