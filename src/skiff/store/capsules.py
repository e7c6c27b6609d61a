"""The capsule store: each capsule's pack kept once by digest, its metadata in a small index,
its files unpacked once, read-only, for use.

A capsule ``name:version`` is a record in ``<root>/capsules/index.json`` (name, version,
digest, sizes, requirements, labels, creation time) pointing at its pack, a blob in the
store's ``blobs/sha256/`` like any layer (`capsule_pack` makes it). Records never change:
adding a name:version that is there with the same digest is a no-op, with another digest a
`CapsuleConflict` that leaves everything as it was (a pack written for it and used by nothing
else is dropped again); two names with the same content share one blob and one unpacked
tree. The index is small (a record a capsule) and read whole; every change is a rewrite by
`write_atomic` under a lock (a thread lock and an flock on ``index.lock``, so that a second
process on the same root — a test, a bench — cannot interleave). `unpack` gives the folder
a container mounts, ``<root>/capsules/unpacked/<hex>/``, made on first use: the pack is
unpacked with the layer code (which refuses hostile names and writes nothing through a
symlink) into a staging folder while its bytes are hashed, and the folder is renamed into
place only when the bytes prove to be the digest's — so a tree under ``unpacked/`` is always
a verified one. Its files are root's, with no write, setuid or setgid bits (the pack's
modes are already so; the pass makes sure of a pulled one's too); nothing in skiff writes
there again, and the read-only mount a container gets (the runtime's) keeps the container
from it. A pack and its tree go when the last record naming their digest is removed; a
removal renames the tree out of the way before deleting it, and `sweep` clears what a crash
left of stagings and removals.
"""

from __future__ import annotations

import os
import shutil
import threading

from skiff import jsonfast
from skiff.errors import BlobNotFound, CapsuleConflict, DigestMismatch, StoreError
from skiff.record import Record
from skiff.store.blobs import BlobStore, parse_digest
from skiff.store.durable import write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from collections.abc import Iterable, Iterator
    from contextlib import AbstractContextManager
    from typing import IO, Any

    from skiff.store.capsule_pack import Packed, PackEntry

INDEX = "index.json"
_STAGING = ".staging"
_TRASH = ".trash-"
_CHUNK = 1 << 20


class CapsuleRecord(Record):
    """One capsule as the index keeps it. `size` is the pack's bytes (compressed),
    `content_size` the files' bytes, `entries` how many files, folders and links it has;
    `requires` maps a capsule name to the range of it this one needs."""

    name: str
    version: str
    digest: str
    size: int
    content_size: int = 0
    entries: int = 0
    requires: dict[str, str] = {}
    labels: dict[str, str] = {}
    created: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def doc(self) -> dict[str, Any]:
        return {"Name": self.name, "Version": self.version, "Digest": self.digest,
                "Size": self.size, "ContentSize": self.content_size, "Entries": self.entries,
                "Requires": dict(sorted(self.requires.items())),
                "Labels": dict(sorted(self.labels.items())), "Created": self.created}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> CapsuleRecord:
        return cls(name=str(doc["Name"]), version=str(doc["Version"]),
                   digest=str(doc["Digest"]), size=int(doc.get("Size") or 0),
                   content_size=int(doc.get("ContentSize") or 0),
                   entries=int(doc.get("Entries") or 0),
                   requires={str(k): str(v) for k, v in (doc.get("Requires") or {}).items()},
                   labels={str(k): str(v) for k, v in (doc.get("Labels") or {}).items()},
                   created=str(doc.get("Created") or ""))


class _HashingReader:
    """A blob file read through, hashed as it goes, so an unpack can prove the digest."""

    def __init__(self, raw: IO[bytes]) -> None:
        import hashlib

        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        return data

    def drain(self) -> str:
        while self.read(_CHUNK):
            pass
        return "sha256:" + self.hash.hexdigest()


def remove_tree(path: str) -> None:
    """Delete a capsule tree: its folders have no write bits, which stop anyone but root,
    so they get their owner's write bit back first."""
    for top, dirs, _files in os.walk(path):
        for name in dirs:
            try:
                os.chmod(os.path.join(top, name), 0o700)
            except OSError:
                pass
    try:
        os.chmod(path, 0o700)
    except OSError:
        pass
    shutil.rmtree(path, ignore_errors=True)


def seal_tree(path: str) -> None:
    """Make the tree root's and read-only: no write, setuid, setgid or sticky bits."""
    for top, dirs, files in os.walk(path, topdown=False):
        for name in (*files, *dirs):
            full = os.path.join(top, name)
            st = os.lstat(full)
            if st.st_uid or st.st_gid:
                os.lchown(full, 0, 0)
            if not os.path.islink(full):
                os.chmod(full, st.st_mode & 0o555)
    if os.lstat(path).st_uid:
        os.lchown(path, 0, 0)
    os.chmod(path, 0o555)


class CapsuleStore:
    """The capsules under ``<root>/capsules`` and their packs in ``<root>/blobs``."""

    def __init__(self, root: str, blobs: BlobStore | None = None) -> None:
        self.root = root
        self.dir = os.path.join(root, "capsules")
        self.unpacked_dir = os.path.join(self.dir, "unpacked")
        self.blobs = blobs or BlobStore(root)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"CapsuleStore({self.root!r})"

    # -- the index --------------------------------------------------------------------------
    def _locked(self) -> AbstractContextManager[None]:
        from contextlib import contextmanager

        @contextmanager
        def hold() -> Iterator[None]:
            import fcntl

            with self._lock:
                os.makedirs(self.dir, 0o700, exist_ok=True)
                fd = os.open(os.path.join(self.dir, "index.lock"),
                             os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    yield
                finally:
                    os.close(fd)
        return hold()

    def _read(self) -> list[CapsuleRecord]:
        try:
            with open(os.path.join(self.dir, INDEX), "rb") as f:
                doc = jsonfast.loads(f.read())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as e:
            raise StoreError(f"capsule index {os.path.join(self.dir, INDEX)}: {e}") from e
        try:
            return [CapsuleRecord.from_doc(d) for d in doc.get("Capsules") or []]
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(f"capsule index {os.path.join(self.dir, INDEX)}: a record is "
                             f"malformed: {e}") from e

    def _write(self, records: Iterable[CapsuleRecord]) -> None:
        ordered = sorted(records, key=lambda r: (r.name, r.version))
        write_atomic(os.path.join(self.dir, INDEX),
                     jsonfast.dumps({"Capsules": [r.doc() for r in ordered]}))

    def all(self) -> list[CapsuleRecord]:
        """Every capsule, by name then version text (the service orders versions)."""
        return sorted(self._read(), key=lambda r: (r.name, r.version))

    def get(self, name: str, version: str) -> CapsuleRecord | None:
        return next((r for r in self._read() if r.name == name and r.version == version),
                    None)

    def versions(self, name: str) -> list[CapsuleRecord]:
        return [r for r in self.all() if r.name == name]

    # -- making and removing ----------------------------------------------------------------
    def create(self, name: str, version: str, entries: Iterable[PackEntry], *,
               requires: dict[str, str] | None = None, labels: dict[str, str] | None = None,
               created: str = "") -> tuple[CapsuleRecord, bool]:
        """Pack `entries` and record them as ``name:version``: (the record, True), or (the
        one stored, False) when it holds the same content already."""
        from skiff.store.capsule_pack import pack

        with self._locked():
            existing = self.get(name, version)
            packed = pack(entries, self.blobs)
            return self._add(name, version, packed, requires or {}, labels or {}, created,
                             existing)

    def put_pack(self, name: str, version: str, stream: IO[bytes], digest: str, size: int,
                 *, requires: dict[str, str] | None = None,
                 labels: dict[str, str] | None = None,
                 created: str = "") -> tuple[CapsuleRecord, bool]:
        """Store a pack that came from elsewhere (a pull): its bytes must be `digest` and
        `size` (checked as they are written) and a pack as `capsule_pack` makes them."""
        from skiff.store.capsule_pack import Packed, check_pack

        parse_digest(digest)
        with self._locked():
            existing = self.get(name, version)
            if existing is not None and existing.digest != digest:
                raise self._taken(existing, digest)
            had = self.blobs.exists(digest)
            with self.blobs.writer(digest, size) as writer:
                while chunk := stream.read(_CHUNK):
                    writer.write(chunk)
                writer.commit()
            try:
                with self.blobs.open(digest) as f:
                    entries = check_pack(f)
            except BaseException:
                if not had and not self._referenced(digest):
                    self.blobs.delete(digest)
                raise
            packed = Packed(digest=digest, size=size, content_size=0, entries=entries,
                            new=not had)
            return self._add(name, version, packed, requires or {}, labels or {}, created,
                             existing)

    @staticmethod
    def _taken(existing: CapsuleRecord, digest: str) -> CapsuleConflict:
        return CapsuleConflict(
            f"capsule {existing.ref} exists with other content ({existing.digest}; this is "
            f"{digest}): a capsule never changes, give the new content a new version",
            (existing.ref, digest))

    def _add(self, name: str, version: str, packed: Packed, requires: dict[str, str],
             labels: dict[str, str], created: str,
             existing: CapsuleRecord | None) -> tuple[CapsuleRecord, bool]:
        if existing is not None:
            if existing.digest == packed.digest:
                return existing, False
            if packed.new and not self._referenced(packed.digest):
                self.blobs.delete(packed.digest)  # nothing changed: not even a stray blob
            raise self._taken(existing, packed.digest)
        record = CapsuleRecord(name=name, version=version, digest=packed.digest,
                               size=packed.size, content_size=packed.content_size,
                               entries=packed.entries, requires=dict(requires),
                               labels=dict(labels), created=created)
        try:
            self._write([*self._read(), record])
        except BaseException:
            if packed.new and not self._referenced(packed.digest):
                self.blobs.delete(packed.digest)
            raise
        return record, True

    def _referenced(self, digest: str) -> bool:
        return any(r.digest == digest for r in self._read())

    def remove(self, name: str, version: str) -> int:
        """Take ``name:version`` out of the index; its pack and tree go too when no other
        capsule has the same content. The bytes freed (0 for a shared content)."""
        with self._locked():
            records = self._read()
            record = next((r for r in records if r.name == name and r.version == version),
                          None)
            if record is None:
                return 0
            rest = [r for r in records if r is not record]
            self._write(rest)
            if any(r.digest == record.digest for r in rest):
                return 0
            return self._drop_content(record.digest)

    def _drop_content(self, digest: str) -> int:
        freed = 0
        tree = self.unpacked_path(digest)
        if os.path.isdir(tree):
            from skiff.store.volumes import tree_size

            freed += tree_size(tree)
            trash = os.path.join(self.dir, f"{_TRASH}{parse_digest(digest)[1][:12]}-"
                                           f"{os.urandom(4).hex()}")
            os.rename(tree, trash)
            remove_tree(trash)
        try:
            freed += self.blobs.size(digest)
            self.blobs.delete(digest)
        except BlobNotFound:
            pass
        return freed

    def sweep(self) -> None:
        """Clear what a crash left: staging folders and trees being removed."""
        for folder in (os.path.join(self.dir, _STAGING), self.dir):
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for entry in names:
                if folder != self.dir or entry.startswith(_TRASH):
                    remove_tree(os.path.join(folder, entry))

    # -- the unpacked trees -----------------------------------------------------------------
    def unpacked_path(self, digest: str) -> str:
        return os.path.join(self.unpacked_dir, parse_digest(digest)[1])

    def unpack(self, digest: str) -> str:
        """The verified, read-only tree of the pack `digest`, unpacked now if it is not yet."""
        path = self.unpacked_path(digest)
        if os.path.isdir(path):
            return path
        from skiff.errors import LayerError
        from skiff.store.layers import unpack_layer

        staging = os.path.join(self.dir, _STAGING)
        os.makedirs(staging, 0o700, exist_ok=True)
        os.makedirs(self.unpacked_dir, 0o755, exist_ok=True)
        tmp = os.path.join(staging, f"{parse_digest(digest)[1][:12]}-{os.urandom(4).hex()}")
        try:
            with self.blobs.open(digest) as f:
                reader = _HashingReader(f)
                try:
                    unpack_layer(reader, tmp)  # type: ignore[arg-type]
                except LayerError as e:
                    # a pack that is not its digest says so first: that is the real fault
                    if reader.drain() != digest:
                        raise DigestMismatch("digest", digest, reader.drain()) from e
                    raise StoreError(f"capsule pack {digest}: {e}") from e
                actual = reader.drain()
            if actual != digest:
                raise DigestMismatch("digest", digest, actual)
            seal_tree(tmp)
            try:
                os.rename(tmp, path)
            except OSError:
                if not os.path.isdir(path):  # not another unpack that won the race
                    raise
        finally:
            if os.path.lexists(tmp):
                remove_tree(tmp)
        return path

    def content_of(self, records: builtins.list[CapsuleRecord]) -> dict[str, int]:
        """Each distinct digest of `records` and the bytes it holds (pack and tree)."""
        from skiff.store.volumes import tree_size

        out: dict[str, int] = {}
        for record in records:
            if record.digest in out:
                continue
            tree = self.unpacked_path(record.digest)
            out[record.digest] = record.size + (tree_size(tree) if os.path.isdir(tree) else 0)
        return out
