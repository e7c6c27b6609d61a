"""The `tmpcopyup` mount option: what the image has at a tmpfs's mount point, copied into it.

crun's and podman's option (the runtime spec lists it as a MAY): the directory a tmpfs is
mounted over is opened first, and once the tmpfs is there its tree is copied in below the
new mount — files, folders, links, device nodes and fifos, with their modes and owners.
Everything is reached from directory fds, never through a path, so a link in the image
cannot lead the copy out of the container's root.
"""

from __future__ import annotations

import os
import stat

from skiff.errors import KernelError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir(path: str) -> int:
    try:
        return os.open(path, _DIR)
    except OSError as e:
        raise KernelError.from_os("open tmpcopyup source", e, path) from None


def copy_tree(src: int, dst: int, where: str) -> None:
    """Copy the entries of directory `src` into directory `dst` (both fds), and the folder's
    own mode and owner onto `dst`; `where` names it in errors."""
    try:
        st = os.fstat(src)
        _copy_entries(src, dst)
        os.fchown(dst, st.st_uid, st.st_gid)
        os.fchmod(dst, stat.S_IMODE(st.st_mode))
    except OSError as e:
        raise KernelError.from_os("tmpcopyup", e, where) from None


def _copy_entries(src: int, dst: int) -> None:
    for entry in os.scandir(src):
        name = entry.name
        st = entry.stat(follow_symlinks=False)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            sub_src = os.open(name, _DIR, dir_fd=src)
            try:
                sub_dst = os.open(name, _DIR, dir_fd=dst)
                try:
                    _copy_entries(sub_src, sub_dst)
                    os.fchmod(sub_dst, mode)
                finally:
                    os.close(sub_dst)
            finally:
                os.close(sub_src)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(src, dst, name, mode, st.st_size)
        else:  # a device node, fifo or socket: made again, as cp -a does
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            os.chmod(name, mode, dir_fd=dst)  # after chown, which clears set-id bits


def _copy_file(src: int, dst: int, name: str, mode: int, size: int) -> None:
    fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode & 0o777,
                       dir_fd=dst)
        try:
            done = 0
            while done < size:
                sent = os.sendfile(fout, fin, done, size - done)
                if sent == 0:
                    break
                done += sent
        finally:
            os.close(fout)
    finally:
        os.close(fin)
