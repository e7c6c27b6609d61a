"""Writes that survive a crash whole or not at all: the store's two primitives.

`write_atomic` puts a file's new content in place by writing a temporary file beside it,
fsyncing it and renaming it over the old one; `fsync_dir` makes a rename itself durable
(a new name lives in its directory, not in the file). Blobs, layer metadata and, later,
image records all go through these.
"""

from __future__ import annotations

import os


def fsync_dir(path: str) -> None:
    # the new name itself must survive a crash, not only the bytes it names
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.urandom(4).hex()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
