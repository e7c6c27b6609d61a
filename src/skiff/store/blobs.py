"""The content-addressed blob store: every layer, manifest and config kept by its digest.

Blobs live at ``<root>/blobs/sha256/<hex>``, as containerd and Docker keep them, and are
written only through a `BlobWriter`: bytes go to a temporary file in ``<root>/blobs/tmp/``
(the same filesystem, so publishing is one atomic link), hashed as they come; `commit`
checks the digest and size, fsyncs, and hard-links the file into place. A blob under
``sha256/`` is therefore always whole and always what its name says — a crash or a
mismatch leaves at most a temporary file, never a half blob — and an existing blob is
never replaced, so two writers of the same content both succeed with one blob between them.
"""

from __future__ import annotations

import errno as _errno
import os

from skiff.errors import BlobNotFound, DigestMismatch, InvalidDigest, KernelError
from skiff.store.durable import fsync_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator

Digest = str  # "sha256:<64 lowercase hex>"; a plain string, checked by `parse_digest`

ALGORITHM = "sha256"
_HEX_LENGTH = 64
_HEX = frozenset("0123456789abcdef")
# algorithms Docker knows; named so that a sha512 digest gets "unsupported", not "invalid"
_KNOWN_ELSEWHERE = frozenset(("sha384", "sha512", "blake3"))
# filesystems without hard links (some FUSE and network ones) fall back to rename
_NO_LINK = frozenset((_errno.EPERM, _errno.ENOTSUP, _errno.EOPNOTSUPP, _errno.EMLINK))


def parse_digest(digest: str) -> tuple[str, str]:
    """Split ``sha256:<hex>`` into its algorithm and hex, or raise InvalidDigest saying why."""
    if not isinstance(digest, str):
        raise InvalidDigest(repr(digest), f"invalid digest {digest!r}: not a string")
    algorithm, colon, encoded = digest.partition(":")
    if not colon or not algorithm or not encoded:
        raise InvalidDigest(digest, f"invalid digest {digest!r}: expected sha256:<64 lowercase hex>")
    if algorithm != ALGORITHM:
        if algorithm in _KNOWN_ELSEWHERE or (algorithm.isascii() and algorithm.isalnum()):
            raise InvalidDigest(digest, f"unsupported digest algorithm {algorithm!r} in "
                                        f"{digest!r}: only sha256 is supported")
        raise InvalidDigest(digest, f"invalid digest {digest!r}: expected sha256:<64 lowercase hex>")
    if len(encoded) != _HEX_LENGTH:
        raise InvalidDigest(digest, f"invalid digest {digest!r}: sha256 needs 64 hex digits, "
                                    f"got {len(encoded)}")
    if not _HEX.issuperset(encoded):
        raise InvalidDigest(digest, f"invalid digest {digest!r}: the hex must be lowercase 0-9a-f")
    return algorithm, encoded


def digest_of(data: bytes) -> Digest:
    """The digest `put_bytes` would store `data` under."""
    import hashlib  # 10 ms of OpenSSL at import: paid only by a process that hashes

    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


class BlobStore:
    """Blobs under ``<root>/blobs``; the folders are made by the first write, not before."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.blob_dir = os.path.join(root, "blobs", ALGORITHM)
        self.tmp_dir = os.path.join(root, "blobs", "tmp")

    def __repr__(self) -> str:
        return f"BlobStore({self.root!r})"

    def path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, parse_digest(digest)[1])

    def exists(self, digest: str) -> bool:
        return os.path.isfile(self.path(digest))

    def size(self, digest: str) -> int:
        path = self.path(digest)
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def open(self, digest: str) -> BinaryIO:
        path = self.path(digest)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def delete(self, digest: str) -> None:
        path = self.path(digest)
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def digests(self) -> Iterator[Digest]:
        """The stored digests, sorted; names that are not a digest (strays) are skipped."""
        try:
            names = os.listdir(self.blob_dir)
        except FileNotFoundError:
            return iter(())
        return iter([f"{ALGORITHM}:{n}" for n in sorted(names)
                     if len(n) == _HEX_LENGTH and _HEX.issuperset(n)])

    def put_bytes(self, data: bytes, expected: str | None = None) -> Digest:
        with self.writer(expected) as w:
            w.write(data)
            return w.commit()

    def writer(self, expected: str | None = None,
               expected_size: int | None = None) -> BlobWriter:
        """A streaming writer; use it as a context manager so a failure removes its temp file."""
        return BlobWriter(self, expected, expected_size)


class BlobWriter:
    """One blob being written: `write` chunks, then `commit` (or `abort`, which `with` does
    on any way out that did not commit)."""

    def __init__(self, store: BlobStore, expected: str | None, expected_size: int | None) -> None:
        import hashlib

        if expected is not None:
            parse_digest(expected)  # a bad expectation fails before a byte is written
        if expected_size is not None and expected_size < 0:
            raise ValueError(f"expected_size must be >= 0, got {expected_size}")
        self.store = store
        self.expected = expected
        self.expected_size = expected_size
        self.written = 0
        self.digest: Digest | None = None  # set by a successful commit
        self.existed = False  # set by a commit that found the blob already stored
        self._hash = hashlib.sha256()
        os.makedirs(store.tmp_dir, exist_ok=True)
        # pid + random: unique across threads and processes without importing tempfile
        self.tmp_path = os.path.join(store.tmp_dir, f"{os.getpid()}-{os.urandom(8).hex()}")
        try:
            self._fd: int | None = os.open(
                self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise KernelError.from_os("open", exc, self.tmp_path) from exc

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.digest is None:
            self.abort()

    def write(self, chunk: bytes) -> int:
        if self._fd is None:
            raise ValueError("write to a blob writer that is committed or aborted")
        if self.expected_size is not None and self.written + len(chunk) > self.expected_size:
            # stop at the first byte too many rather than store a stream that cannot match
            self.abort()
            raise DigestMismatch("size", self.expected_size, self.written + len(chunk),
                                 self.expected)
        self._hash.update(chunk)
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self.abort()
            raise KernelError.from_os("write", exc, self.tmp_path) from exc
        self.written += len(chunk)
        return len(chunk)

    def commit(self) -> Digest:
        """Check, fsync and publish; return the digest. On a mismatch nothing is left."""
        if self._fd is None:
            raise ValueError("commit of a blob writer that is committed or aborted")
        actual = f"{ALGORITHM}:{self._hash.hexdigest()}"
        if self.expected_size is not None and self.written != self.expected_size:
            self.abort()
            raise DigestMismatch("size", self.expected_size, self.written, self.expected)
        if self.expected is not None and actual != self.expected:
            self.abort()
            raise DigestMismatch("digest", self.expected, actual)
        fd, self._fd = self._fd, None
        target = os.path.join(self.store.blob_dir, actual.partition(":")[2])
        try:
            # read-only, as containerd leaves its blobs; durable before it gets its name
            os.fchmod(fd, 0o444)
            os.fsync(fd)
        except OSError as exc:
            self._discard(fd)
            raise KernelError.from_os("fsync", exc, self.tmp_path) from exc
        os.close(fd)
        try:
            os.makedirs(self.store.blob_dir, exist_ok=True)
            self._publish(target)
            fsync_dir(self.store.blob_dir)
        except OSError as exc:
            _unlink_quietly(self.tmp_path)
            raise KernelError.from_os("publish blob", exc, target) from exc
        self.digest = actual
        return actual

    def _publish(self, target: str) -> None:
        try:
            # link, not rename: an existing blob (same bytes, by its name) is left as it is
            os.link(self.tmp_path, target)
        except FileExistsError:
            self.existed = True
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            self.existed = os.path.exists(target)
            os.rename(self.tmp_path, target)
            return
        os.unlink(self.tmp_path)

    def abort(self) -> None:
        """Drop what was written; harmless to call twice or after a failure."""
        fd, self._fd = self._fd, None
        if fd is not None:
            self._discard(fd)

    def _discard(self, fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass
        _unlink_quietly(self.tmp_path)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
