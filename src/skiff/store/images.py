"""Images: a manifest, its config and its unpacked layers, and the names they go by.

An `ImageStore` keeps, under one root, a `BlobStore` (manifests, configs and layer tars by
digest), a `LayerStore` (the unpacked layers by chain ID) and two small JSON files.
``repositories.json`` is Docker's own name for its reference file and maps each full,
normalised reference (``docker.io/library/busybox:latest``, ``name@sha256:…``) to the digest
of a manifest; ``images.json`` maps every stored image ID — the config digest, as Docker's
image ID is — to the manifests that describe it, so an image stays known by its ID when it
has no name left (Docker's ``<none>:<none>``). Both are replaced whole by `write_atomic`,
so a reader never sees half a file, and every change is a read-modify-write under an
``fcntl.lockf`` lock on ``repositories.lock`` (plus a thread lock, since POSIX record locks
do not exclude threads of one process). `add` holds the lock while it stores and unpacks,
so `remove` can never collect a layer an `add` is stacking on; an `add` that fails takes
back the blobs and layers it made before anything names them. `remove` is ``docker rmi``:
it untags, and once no reference is left deletes the image's manifests and config and,
top-down, the layers and layer blobs no other image uses.
"""

from __future__ import annotations

import os
import threading

from skiff import jsonfast
from skiff.errors import BlobNotFound, ImageConflict, ImageNotFound, ReferenceError_, StoreError
from skiff.log import logger
from skiff.oci.image_spec import (
    ImageConfig,
    Manifest,
    chain_ids,
    parse_config,
    parse_manifest,
)
from skiff.record import Record
from skiff.reference import Reference, parse_reference
from skiff.store.blobs import BlobStore, digest_of
from skiff.store.durable import write_atomic
from skiff.store.layer_store import LayerStore, chain_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable
    from typing import IO, Any

    LayerBlobs = builtins.list[tuple[str, Callable[[], IO[bytes]]]]

_log = logger("skiff.store.images")
_HEX = frozenset("0123456789abcdef")
_MIN_PREFIX = 12  # the short ID Docker prints; shorter prefixes are too easily ambiguous
_CHUNK = 1 << 20
# POSIX record locks belong to the process: threads (and two stores on one root) need this
_THREAD_LOCK = threading.Lock()


class Image(Record):
    """A stored image: `id` is the config digest (Docker's image ID), `manifest_digest` the
    manifest it was found through, `chain_ids` its layers bottom to top, `size` the bytes of
    its uncompressed layers."""

    id: str
    manifest_digest: str
    manifest: Manifest
    config: ImageConfig
    chain_ids: tuple[str, ...]
    size: int

    @property
    def short_id(self) -> str:
        """The 12 hex digits Docker shows."""
        return self.id.partition(":")[2][:_MIN_PREFIX]


class _State:
    """The two files, as read under the lock (or, for a query, without it)."""

    def __init__(self, refs: dict[str, str], images: dict[str, list[str]]) -> None:
        self.refs = refs
        self.images = images


class ImageStore:
    """Images under `root`: blobs in ``blobs/``, layers in ``layers/``, names in
    ``repositories.json``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.blobs = BlobStore(self.root)
        self.layers = LayerStore(self.root)
        self.refs_path = os.path.join(self.root, "repositories.json")
        self.images_path = os.path.join(self.root, "images.json")
        self.lock_path = os.path.join(self.root, "repositories.lock")
        self._parsed: dict[str, tuple[Manifest, ImageConfig]] = {}  # blobs never change

    def __repr__(self) -> str:
        return f"ImageStore({self.root!r})"

    # -- queries ----------------------------------------------------------------------------
    def get(self, ref_or_id: str) -> Image:
        """The image named `ref_or_id`: a reference (``busybox``, ``busybox:latest``,
        ``docker.io/library/busybox:latest``, ``name@sha256:…``), an image ID
        (``sha256:<config hex>`` or the bare hex) or a unique ID prefix of at least 12 hex
        digits. ImageNotFound (Docker's text) when none is."""
        state = self._load()
        image_id, manifest, _ = self._resolve(state, ref_or_id)
        return self._image(image_id, manifest)

    def exists(self, ref_or_id: str) -> bool:
        try:
            self.get(ref_or_id)
        except ImageNotFound:
            return False
        return True

    def list(self) -> builtins.list[tuple[Image, builtins.list[str]]]:
        """Every image with its references (full strings, sorted), by image ID."""
        state = self._load()
        out = []
        for image_id in sorted(state.images):
            refs = self._refs_of(state, image_id)
            manifest = state.refs[refs[0]] if refs else state.images[image_id][0]
            out.append((self._image(image_id, manifest), refs))
        return out

    def references(self, ref_or_id: str) -> builtins.list[str]:
        """The references (full strings, sorted) of the image `ref_or_id`."""
        state = self._load()
        return self._refs_of(state, self._resolve(state, ref_or_id)[0])

    def rootfs_layers(self, image: Image) -> builtins.list[str]:
        """The image's layer trees in overlayfs ``lowerdir`` order (topmost first)."""
        return self.layers.lower_dirs(list(image.chain_ids))

    # -- changes ----------------------------------------------------------------------------
    def add(self, manifest_bytes: bytes, config_bytes: bytes,
            layer_blobs: LayerBlobs | None = None, ref: str | None = None,
            index_bytes: bytes | None = None) -> Image:
        """Store an image and (when `ref` is given) name it; return it.

        `manifest_bytes` must be an image manifest (OCI or Docker schema 2, not an index) whose
        config is `config_bytes`. `layer_blobs` gives, per layer digest, a callable opening
        its (compressed) tar; a layer not given must already be a stored blob. Each blob is
        checked against its digest and size, each layer unpacked on the ones below it and
        checked against the config's ``rootfs.diff_ids``. `index_bytes` is the index (or
        manifest list) the manifest was chosen from, when there was one: it is kept with the
        image (and deleted with it), and `ref` may then name the index's digest, as Docker's
        ``name@sha256:<index>`` does. On any failure the blobs and layers this call made are
        removed and no reference changes."""
        target = _tag_ref(ref) if ref is not None else None
        doc = parse_manifest(manifest_bytes)
        if not isinstance(doc, Manifest):
            raise StoreError("add image: the document is an index, not an image manifest "
                             "(select a platform's manifest first)")
        manifest_digest = digest_of(manifest_bytes)
        index_digest = self._check_index(index_bytes, manifest_digest)
        image_id = digest_of(config_bytes)
        if image_id != doc.config.digest:
            raise StoreError(f"add image: the config is {image_id}, but manifest "
                             f"{manifest_digest} names {doc.config.digest}")
        config = parse_config(config_bytes)
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(doc.layers):
            raise StoreError(f"add image {image_id}: the manifest has {len(doc.layers)} "
                             f"layers but the config's rootfs has {len(diff_ids)} diff IDs")
        if target is not None and target.digest not in (None, manifest_digest, index_digest):
            raise StoreError(f"add image: reference {target.familiar()} names a digest other "
                             f"than the manifest's ({manifest_digest})")
        openers = dict(layer_blobs or ())
        with self._locked():
            made_blobs: list[str] = []
            made_layers: list[str] = []
            recorded = False
            try:
                parent: str | None = None
                for i, (desc, diff_id) in enumerate(zip(doc.layers, diff_ids)):
                    if not self.blobs.exists(desc.digest):
                        opener = openers.get(desc.digest)
                        if opener is None:
                            raise BlobNotFound(desc.digest)
                        self._copy_blob(opener, desc.digest, desc.size)
                        made_blobs.append(desc.digest)
                    chain = chain_id(parent, diff_id)
                    new = not self.layers.exists(chain)
                    self.layers.ensure(parent, diff_id,
                                       lambda d=desc.digest: self.blobs.open(d))  # type: ignore[misc]
                    if new:
                        made_layers.append(chain)
                    parent = chain
                documents = [(config_bytes, image_id), (manifest_bytes, manifest_digest)]
                if index_bytes is not None and index_digest is not None:
                    documents.append((index_bytes, index_digest))
                for data, digest in documents:
                    if not self.blobs.exists(digest):
                        self.blobs.put_bytes(data, digest)
                        made_blobs.append(digest)
                state = self._load()
                # the image's manifests, then the indexes it came through: an ID resolves to
                # the first entry, which is so always a manifest
                kept = state.images.setdefault(image_id, [])
                if manifest_digest not in kept:
                    kept.insert(sum(1 for m in kept if self._is_manifest(m)), manifest_digest)
                if index_digest is not None and index_digest not in kept:
                    kept.append(index_digest)
                self._save_images(state)
                recorded = True  # from here the image is known, if only as <none>:<none>
                if target is not None:
                    state.refs[str(target)] = manifest_digest
                    self._save_refs(state)
            except BaseException:
                if not recorded:
                    self._take_back(made_layers, made_blobs)
                raise
        return self._image(image_id, manifest_digest)

    def tag(self, source: str, target: str) -> None:
        """Name the image `source` also `target` (moving `target` off any other image)."""
        new = _tag_ref(target)
        if new.digest is not None:
            raise StoreError("refusing to create a tag with a digest reference")
        with self._locked():
            state = self._load()
            _, manifest, _ = self._resolve(state, source)
            state.refs[str(new)] = manifest
            self._save_refs(state)

    def untag(self, ref: str) -> None:
        """Drop the reference `ref`; the image stays, by its ID, even with no name left."""
        key = _tag_ref(ref)
        with self._locked():
            state = self._load()
            if state.refs.pop(str(key), None) is None:
                raise ImageNotFound(key.familiar())
            self._save_refs(state)

    def remove(self, ref_or_id: str, force: bool = False) -> builtins.list[dict[str, str]]:
        """``docker rmi``: untag `ref_or_id`, and when the image has no reference left delete
        its manifests, config and the layers (and layer blobs) no other image uses. By ID, an
        image named in several repositories needs `force`. Returns Docker's report:
        ``[{"Untagged": "busybox:latest"}, {"Deleted": "sha256:…"}, …]``."""
        with self._locked():
            state = self._load()
            image_id, _, matched = self._resolve(state, ref_or_id)
            refs = self._refs_of(state, image_id)
            if matched is not None:
                doomed = [matched]
                rest = [r for r in refs if r != matched]
                name = parse_reference(matched).name
                # a tag's removal takes the digest references of its repository along, when
                # they are all that is left (Docker's rule), so the image is not kept by them
                if "@" not in matched and rest and all(
                        "@" in r and parse_reference(r).name == name for r in rest):
                    doomed += rest
            else:
                if len(refs) > 1 and not force and not _single_reference(refs):
                    raise ImageConflict(f"conflict: unable to delete {image_id[7:19]} (must be "
                                     f"forced) - image is referenced in multiple repositories")
                doomed = refs
            report = []
            manifests = set(state.images.get(image_id, ()))
            for r in doomed:
                manifests.add(state.refs.pop(r))
                report.append({"Untagged": parse_reference(r).familiar()})
            if doomed:
                self._save_refs(state)
            if any(r not in doomed for r in refs):
                return report
            state.images.pop(image_id, None)
            self._save_images(state)
            report.append({"Deleted": image_id})
            report += ({"Deleted": chain} for chain in self._collect(state, image_id, manifests))
            return report

    # -- inside -----------------------------------------------------------------------------
    def release_layers(self, lower_dirs: builtins.list[str]) -> builtins.list[str]:
        """A container's snapshot stood on `lower_dirs` (topmost first) and is gone: delete
        those of its layers that no image and no other snapshot uses any more (their images
        were removed while it held them); return their chain IDs, top-down."""
        chains = [c for c in map(self.layers.chain_of, reversed(lower_dirs)) if c is not None]
        if not chains:
            return []
        with self._locked():
            _, kept_chains = self._kept_by_images(self._load())
            if chains[-1] in kept_chains:
                # the usual case, its image still there: nothing of the stack goes, and the
                # other snapshots (every container's) need not be read
                return []
            kept_chains |= self._held_by_snapshots()
            return self._drop_layers(chains, kept_chains, "release layers")

    def _kept(self, state: _State) -> tuple[set[str], set[str]]:
        """The blobs and the layers (chain IDs) still in use: by the images in `state`, and
        (layers only) by the snapshots of containers, which keep their stack whatever
        happens to the image they were made from, as Docker's layer store does."""
        kept_blobs, kept_chains = self._kept_by_images(state)
        return kept_blobs, kept_chains | self._held_by_snapshots()

    def _kept_by_images(self, state: _State) -> tuple[set[str], set[str]]:
        """The blobs and the layers the images in `state` use."""
        kept_blobs: set[str] = set()
        kept_chains: set[str] = set()
        for other in state.images.values():
            for m in other:
                kept_blobs.add(m)
                try:
                    doc, cfg = self._parts(m)
                except StoreError:  # gone, or an index (a blob with no layers of its own)
                    continue
                kept_blobs.add(doc.config.digest)
                kept_blobs.update(d.digest for d in doc.layers)
                kept_chains.update(chain_ids(cfg.rootfs.diff_ids))
        return kept_blobs, kept_chains

    def _held_by_snapshots(self) -> set[str]:
        """The layers some container's snapshot stands on."""
        from skiff.store.snapshots import Snapshotter

        held = map(self.layers.chain_of, Snapshotter(self.root).held_dirs())
        return {chain for chain in held if chain is not None}

    def _drop_layers(self, chains: builtins.list[str], kept_chains: set[str],
                     why: str) -> builtins.list[str]:
        """Delete the layers of the stack `chains` (bottom to top) from the top down to the
        first one kept; return what went."""
        deleted = []
        for chain in reversed(chains):
            if chain in kept_chains or not self.layers.exists(chain):
                break  # chains share their bottoms: everything below is kept too
            if self.layers.children(chain):
                _log.warning("%s: layer %s still has layers on it; kept", why, chain)
                break
            self.layers.remove(chain)
            deleted.append(chain)
        return deleted

    def _resolve(self, state: _State, text: str) -> tuple[str, str, str | None]:
        """(image ID, manifest digest, the reference key matched or None for an ID)."""
        if not isinstance(text, str) or not text:
            raise ImageNotFound(repr(text))
        hexpart = text.removeprefix("sha256:")
        is_hex = _HEX.issuperset(hexpart) and len(hexpart) <= 64
        if is_hex and len(hexpart) == 64:
            image_id = "sha256:" + hexpart
            if image_id in state.images:
                return image_id, state.images[image_id][0], None
            raise ImageNotFound(text)
        ref: Reference | None = None
        if not text.startswith("sha256:"):
            try:
                ref = parse_reference(text).with_default_tag()
            except ReferenceError_:
                if not is_hex:
                    raise
        if ref is not None and str(ref) in state.refs:
            manifest = state.refs[str(ref)]
            return self._parts(manifest)[0].config.digest, manifest, str(ref)
        if is_hex and len(hexpart) >= _MIN_PREFIX:
            found = [i for i in state.images if i[7:].startswith(hexpart)]
            if len(found) == 1:
                return found[0], state.images[found[0]][0], None
            if len(found) > 1:
                raise StoreError(f"image ID prefix {hexpart} is ambiguous: it matches "
                                 f"{len(found)} images")
        raise ImageNotFound(ref.familiar() if ref is not None else text)

    def _refs_of(self, state: _State, image_id: str) -> builtins.list[str]:
        return sorted(r for r, m in state.refs.items()
                      if self._config_digest(m) == image_id)

    def _check_index(self, index_bytes: bytes | None, manifest_digest: str) -> str | None:
        """The digest of `index_bytes` (None for none), once it is shown to be an index that
        lists `manifest_digest`."""
        if index_bytes is None:
            return None
        index = parse_manifest(index_bytes)
        digest = digest_of(index_bytes)
        if isinstance(index, Manifest):
            raise StoreError(f"add image: {digest} is an image manifest, not an index")
        if all(d.digest != manifest_digest for d in index.manifests):
            raise StoreError(f"add image: index {digest} does not list manifest "
                             f"{manifest_digest}")
        return digest

    def _is_manifest(self, digest: str) -> bool:
        """Whether the stored document `digest` is an image manifest (not an index, and
        there)."""
        try:
            self._parts(digest)
        except StoreError:  # BlobNotFound, or an index
            return False
        return True

    def _config_digest(self, manifest_digest: str) -> str | None:
        try:
            return self._parts(manifest_digest)[0].config.digest
        except BlobNotFound:
            return None

    def _parts(self, manifest_digest: str) -> tuple[Manifest, ImageConfig]:
        parts = self._parsed.get(manifest_digest)
        if parts is None:
            doc = parse_manifest(self.blobs.read_bytes(manifest_digest))
            if not isinstance(doc, Manifest):
                raise StoreError(f"stored manifest {manifest_digest} is an index")
            parts = doc, parse_config(self.blobs.read_bytes(doc.config.digest))
            self._parsed[manifest_digest] = parts
        return parts

    def _image(self, image_id: str, manifest_digest: str) -> Image:
        manifest, config = self._parts(manifest_digest)
        chains = tuple(chain_ids(config.rootfs.diff_ids))
        size = sum(self.layers.info(c).size for c in chains)
        return Image(image_id, manifest_digest, manifest, config, chains, size)

    def _copy_blob(self, opener: Callable[[], IO[bytes]], digest: str, size: int) -> None:
        stream = opener()
        try:
            with self.blobs.writer(digest, size) as w:
                while chunk := stream.read(_CHUNK):
                    w.write(chunk)
                w.commit()
        finally:
            stream.close()

    def _take_back(self, made_layers: builtins.list[str], made_blobs: builtins.list[str]) -> None:
        # the lock is held and nothing names these yet: they are this call's alone
        for chain in reversed(made_layers):
            try:
                self.layers.remove(chain)
            except StoreError as e:
                _log.warning("add image: could not take back layer %s: %s", chain, e)
        for digest in made_blobs:
            try:
                self.blobs.delete(digest)
            except StoreError:
                pass

    def _collect(self, state: _State, image_id: str, manifests: set[str]) -> builtins.list[str]:
        """Delete what only the image `image_id` (already out of `state`) used; return the
        chain IDs of the layers deleted, top-down."""
        kept_blobs, kept_chains = self._kept(state)
        layer_blobs: set[str] = set()
        chains: list[str] = []
        for m in manifests:
            try:
                doc, cfg = self._parts(m)
            except StoreError:
                continue
            layer_blobs.update(d.digest for d in doc.layers)
            chains = chain_ids(cfg.rootfs.diff_ids)
        deleted = self._drop_layers(chains, kept_chains, f"remove image {image_id}")
        for digest in sorted(manifests | {image_id} | layer_blobs):
            if digest in kept_blobs:
                continue
            try:
                self.blobs.delete(digest)
            except BlobNotFound:
                pass
            self._parsed.pop(digest, None)
        return deleted

    # -- the two files ----------------------------------------------------------------------
    def _locked(self) -> _Lock:
        return _Lock(self.root, self.lock_path)

    def _load(self) -> _State:
        refs = _read_json(self.refs_path)
        images = _read_json(self.images_path)
        return _State({str(k): str(v) for k, v in refs.items()},
                      {str(k): [str(m) for m in v] for k, v in images.items()})

    def _save_refs(self, state: _State) -> None:
        write_atomic(self.refs_path, jsonfast.dumps(state.refs, indent=2, sort_keys=True) + "\n")

    def _save_images(self, state: _State) -> None:
        write_atomic(self.images_path,
                     jsonfast.dumps(state.images, indent=2, sort_keys=True) + "\n")


class _Lock:
    """The store's one writer lock: a thread lock, then ``lockf`` on the lock file."""

    def __init__(self, root: str, path: str) -> None:
        self.root = root
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> None:
        import fcntl

        _THREAD_LOCK.acquire()
        try:
            os.makedirs(self.root, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.lockf(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._release()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lockf lock
            self._fd = None
        _THREAD_LOCK.release()


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = jsonfast.loads(f.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise StoreError(f"image store: read `{path}`: {e}") from e
    if not isinstance(data, dict):
        raise StoreError(f"image store: `{path}` is not a JSON object")
    return data


def _tag_ref(text: str) -> Reference:
    return parse_reference(text).with_default_tag()


def _single_reference(refs: builtins.list[str]) -> bool:
    """Docker's `isSingleReference`: every reference is of one repository, with at most one
    tag (digest references of that repository alongside are fine)."""
    tagged = [r for r in refs if "@" not in r]
    if len(tagged) > 1:
        return False
    names = {parse_reference(r).name for r in refs}
    return len(names) == 1
