"""Compiled seccomp filters kept as BPF under the runtime root, one file per filter.

libseccomp takes tens of milliseconds to add a few hundred rules for three architectures
and as long again to generate the BPF when the child loads it; every container of one
profile and one capability set gets the same program. So the first start compiles with
libseccomp, exports the BPF and writes it to ``<root>/.seccomp/<sha256 of the spec's
seccomp>.bpf`` (atomically, root-only); later starts read it and load it with one prctl,
without opening libseccomp at all. A filter with flags (which need seccomp(2)) is not
cached. The key is the spec's seccomp document itself, so a changed profile is a new file.
"""

from __future__ import annotations

import hashlib
import os

from skiff import jsonfast
from skiff.kernel.seccomp import Filter, Program
from skiff.oci.codec import encode
from skiff.oci.runtime_spec import Seccomp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_FORMAT = "skiff-seccomp-bpf-1"


def _key(seccomp: Seccomp) -> str:
    # (jsonfast and uname, not json and platform: those bring `re`, ~8 ms of a start)
    doc = jsonfast.dumps([_FORMAT, os.uname().machine, encode(seccomp)], sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None  # only a file this runtime wrote, that nobody else could change
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write(folder: str, path: str, bpf: bytes) -> None:
    try:
        os.makedirs(folder, 0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, bpf)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache: the next start compiles again


def cached_program(seccomp: Seccomp, folder: str,
                   build: Callable[[Seccomp], Filter]) -> Filter | Program:
    """The cached program of `seccomp`, or `build(seccomp)`'s filter, exported and kept."""
    if seccomp.flags:
        return build(seccomp)
    path = os.path.join(folder, _key(seccomp) + ".bpf")
    bpf = _read(path)
    if bpf:
        try:
            return Program(bpf)
        except ValueError:
            pass
    filt = build(seccomp)
    _write(folder, path, filt.export_bpf())
    return filt
