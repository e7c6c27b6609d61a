"""Unpack a tar into a folder of a container's rootfs as moby's chrooted Untar does
(``docker cp`` into a container: ``PUT /containers/{id}/archive``).

This is not a layer: a ``.wh.`` name is a plain file of that name, as moby's Untar writes it
outside a layer (only its overlay whiteout converter, which a copy does not use, reads them
as deletions), so nothing an upload holds becomes an overlay whiteout. Paths resolve as in
moby's chroot into the rootfs: every symlink on the way — the container's own or one the
tar just made — is followed, absolute ones and ``..`` from the rootfs's top, by the kernel
itself (openat2 with RESOLVE_IN_ROOT), so a write may go through a link but never out of
the rootfs; the entry itself is replaced, never followed. What moby calls a breakout is
refused before anything is written (`check_member`): a name that climbs out of the target
folder with ``..``, a relative symlink whose target does, a hard link to a file outside it
(moby's Unpack and createTarFile checks, in their words); an absolute symlink is data,
resolved in the container when it is used, as there. A 0/0 character device would be an
overlay whiteout, which overlayfs refuses to make through a merged dir: it is refused up
front too, so a refused upload changes nothing.
"""

from __future__ import annotations

import errno
import os
import posixpath
import tarfile

from skiff.errors import KernelError, LayerError, SkiffError
from skiff.store.layers import _Applier, _open_stream, _why

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

    from skiff.kernel.idmap import IdMaps

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def inside(path: str, top: str) -> bool:
    """Whether the clean absolute `path` is `top` or below it."""
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


def check_member(member: tarfile.TarInfo, dest: str) -> None:
    """Refuse what moby's Untar calls a breakout of the folder `dest` (a clean absolute
    path in the container), or a whiteout device; SkiffError in moby's words."""
    name = posixpath.normpath(member.name)
    if name == ".." or name.startswith("../"):
        raise SkiffError(f'"{name}" is outside of "{dest}"')
    path = posixpath.normpath(f"{dest}/{name}")
    if member.issym() and not member.linkname.startswith("/"):
        target = posixpath.normpath(f"{posixpath.dirname(path)}/{member.linkname}")
        if not inside(target, dest):
            raise SkiffError(f'invalid symlink "{path}" -> "{member.linkname}"')
    elif member.islnk():
        target = posixpath.normpath(f"{dest}/{member.linkname}")
        if not inside(target, dest):
            raise SkiffError(f'invalid hardlink "{target}" -> "{member.linkname}"')
    elif member.ischr() and member.devmajor == 0 and member.devminor == 0:
        raise SkiffError(f'mknod "{path}": a 0/0 character device is an overlay whiteout; '
                         f'operation not permitted')


def untar_in_root(src: IO[bytes], root: str, dest: str, *,
                  owner: tuple[int, int] | None = None, idmaps: IdMaps | None = None) -> None:
    """Unpack the tar `src` (plain or compressed, checked with `check_member` already)
    into the folder `dest` (a resolved path in the container) of the rootfs `root`.
    `owner`: the host uid and gid every entry gets (moby's ChownOpts); else, with `idmaps`
    (a remapped container's), the entries' owners are mapped to the host's ids."""
    reader = _open_stream(src)
    rel = dest.strip("/")
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dest_fd = _Rooted.resolve(root_fd, rel)
        try:
            applier = _Rooted(root_fd, tuple(p for p in rel.split("/") if p), dest_fd, reader)
            applier.owner, applier.idmaps = owner, idmaps
            applier.run()
        finally:
            os.close(dest_fd)
    finally:
        os.close(root_fd)


class _Rooted(_Applier):
    """The layer applier with moby's Untar's two differences: names are plain, and the
    folders on an entry's way are found as inside a chroot into the rootfs."""

    whiteouts = False
    owner: tuple[int, int] | None = None
    idmaps: IdMaps | None = None

    def __init__(self, top_fd: int, base: tuple[str, ...], dest_fd: int,
                 reader: object) -> None:
        super().__init__(dest_fd, reader)  # type: ignore[arg-type]
        self.top_fd = top_fd  # the rootfs: where absolute links and `..` stop
        self.base = base  # the target folder's path in it

    @staticmethod
    def resolve(top_fd: int, path: str) -> int:
        from skiff.kernel.syscall import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

        return openat2(top_fd, path or ".", _DIR_FLAGS & ~os.O_NOFOLLOW,
                       RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        m.name = posixpath.normpath(m.name).lstrip("/")  # no `..` left: check_member saw
        if m.name in ("", ".") and m.isdir():
            return  # moby's Unpack leaves the target folder as it is
        if self.owner is not None:
            m.uid, m.gid = self.owner
        elif self.idmaps is not None:
            uid, gid = self.idmaps.host_ids(m.uid, m.gid)
            if uid < 0 or gid < 0:
                raise LayerError(f"Container ID {m.uid if uid < 0 else m.gid} cannot be "
                                 f"mapped to a host ID", m.name)
            m.uid, m.gid = uid, gid
        super().entry(tar, m)

    def open_dir(self, parts: tuple[str, ...], entry: str, create: bool = True) -> int | None:
        """An fd on the folder `parts` below the target, links followed in the rootfs;
        missing folders made 0755 (moby's implied directories). Without `create`, None
        when there is no such folder."""
        full = self.base + parts
        try:
            return self.resolve(self.top_fd, "/".join(full))
        except KernelError as e:
            if not create:
                return None
            if e.errno not in (errno.ENOENT, errno.ENOTDIR) or not parts:
                raise LayerError(f"open `/{'/'.join(full)}` in the container: {e}",
                                 entry) from None
        for depth in range(len(full) - len(parts) + 1, len(full) + 1):
            path = "/".join(full[:depth])
            try:
                fd = self.resolve(self.top_fd, path)
            except KernelError as e:
                if e.errno != errno.ENOENT:
                    raise LayerError(f"open `/{path}` in the container: {e}", entry) from None
                parent = self.resolve(self.top_fd, "/".join(full[:depth - 1]))
                try:  # (a dangling link there: mkdir fails, as Go's MkdirAll does)
                    os.mkdir(full[depth - 1], 0o755, dir_fd=parent)
                    os.chmod(full[depth - 1], 0o755, dir_fd=parent, follow_symlinks=False)
                except OSError as e:
                    raise LayerError(f"mkdir `/{path}` in the container: {_why(e)}",
                                     entry) from None
                finally:
                    os.close(parent)
                fd = self.resolve(self.top_fd, path)
            if depth < len(full):
                os.close(fd)
        return fd

    def link_target(self, m: tarfile.TarInfo) -> tuple[str, ...]:
        """Any file below the target (moby's: not only one of this tar's own)."""
        target = tuple(p for p in posixpath.normpath("/" + m.linkname).split("/") if p)
        if not target:
            raise LayerError(f"hard link target `{m.linkname}` is not a file", m.name)
        return target
