"""Where each stored blob was seen in a registry, so a push can mount it from there.

A registry can link a blob from another of its repositories instead of receiving it
again (``POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<other>``); for that the client
must name a repository that has it. Docker keeps this as "v2 metadata" per layer; skiff
keeps, per blob, one small file ``<store root>/registry/origins/<hex>`` of lines
``<domain>/<repository path>``, appended (one short O_APPEND write is atomic, so threads and
processes need no lock) when a pull fetches a blob or a push sends or finds one. A stale
line costs one mount attempt that falls back to an upload.
"""

from __future__ import annotations

import os

_MAX_LINES = 16  # the most recent repositories are the ones worth trying


def _path(root: str, digest: str) -> str:
    return os.path.join(root, "registry", "origins", digest.partition(":")[2])


def sources(root: str, digest: str) -> list[str]:
    """The ``domain/path`` repositories `digest` was seen in, most recent first."""
    try:
        with open(_path(root, digest), encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    out: list[str] = []
    for line in reversed(lines):
        if line not in out:
            out.append(line)
    return out[:_MAX_LINES]


def record(root: str, digest: str, domain: str, path: str) -> None:
    """Note that `digest` is in ``domain/path``; quietly skipped if the note cannot be
    written (it is an optimisation, never a reason to fail a pull)."""
    repo = f"{domain}/{path}"
    if repo in sources(root, digest)[:1]:
        return
    target = _path(root, digest)
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (repo + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass
