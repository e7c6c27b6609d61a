"""``docker save`` and ``docker load`` for the image store, and OCI image layouts on disk.

`save` writes the one tar stream ``docker save`` 25+ writes, which is two archives sharing
their blobs: an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256/…``) and a
docker-archive (``manifest.json``, ``repositories``). Layers go in as uncompressed tars, as
Docker saves them — each decompressed from the store's blob while it streams out and checked
against its diff ID on the way — so the manifest written names uncompressed layers while the
image ID (the config's digest) stays the same; a blob two images share is written once.
Names resolve as Docker resolves them (a repository without a tag means all its tags, a
digest or an ID means the image untagged) and an unknown one fails before a byte is written.

`load` reads what any ``docker save`` wrote (the legacy ``<id>/layer.tar`` layout and the
25+ one), a plain OCI layout tar (skopeo's ``oci-archive:``), compressed or not, from a
stream that need not seek: it is spooled under the store's root first. It works in three
steps so that a failed load leaves the store as it was: first everything that can be
checked without storing is (documents, config digests, member sizes, the diff IDs of
uncompressed layers, tags); then each image not already stored is added, unnamed, through
`ImageStore.add` (which checks every blob's digest and every layer's diff ID as it stores
and unpacks); then the images are named. A failure in the last two steps removes the
images this load added. The result is Docker's lines: ``Loaded image: busybox:latest`` per
tag, ``Loaded image ID: sha256:…`` for an image without one.
"""

from __future__ import annotations

import os

from skiff.errors import ArchiveError, DigestMismatch, ImageNotFound, LayerError, \
    ReferenceError_, SpecError, StoreError
from skiff.log import logger
from skiff.oci.image_spec import LAYER_COMPRESSION, OCI_MANIFEST, parse_config
from skiff.record import Record
from skiff.reference import Reference, parse_reference
from skiff.store import docker_archive, oci_layout
from skiff.store.archive_files import (
    ArchivedImage,
    DirMembers,
    Members,
    TarMembers,
    TarWriter,
    spool,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any, Callable, Iterable

    from skiff.store.images import Image, ImageStore

    ProgressFn = Callable[["ArchiveProgress"], None]

_log = logger("skiff.store.archive")
LOADING = "Loading layer"


class ArchiveProgress(Record):
    """How far a layer of a load is: the fields of the registry's `Progress` (`id` the
    layer's 12-hex short diff ID, `status` ``Loading layer``, bytes `current` of `total`),
    so one progress callback serves pulls and loads."""

    id: str | None
    status: str
    current: int | None = None
    total: int | None = None


# -- save ---------------------------------------------------------------------------------
class _Saved(Record):
    """One image as it goes into an archive."""

    image: Image
    tags: tuple[Reference, ...]
    config: bytes
    platform: dict[str, Any]
    layers: tuple[tuple[str, int, str], ...]  # (diff ID, uncompressed size, stored blob)
    manifest: bytes  # the manifest naming the uncompressed layers


def save(store: ImageStore, names: Iterable[str], out: IO[bytes]) -> None:
    """Write the images `names` (references or IDs) to `out` as ``docker save`` does."""
    saved = [_saved(store, image, tags) for image, tags in _select(store, names)]
    blobs: dict[str, bytes | tuple[str, int, str]] = {}
    for s in saved:
        blobs[_hex(s.image.id)] = s.config
        blobs[_hex(_digest(s.manifest))] = s.manifest
        for layer in s.layers:
            blobs.setdefault(_hex(layer[0]), layer)
    writer = TarWriter(out)
    writer.directory("blobs")
    writer.directory("blobs/sha256")
    for hexpart in sorted(blobs):  # the order of Docker's walk of its export folder
        item = blobs[hexpart]
        name = f"blobs/sha256/{hexpart}"
        if isinstance(item, bytes):
            writer.file(name, item)
        else:
            source = _Uncompressed(store, *item)
            writer.stream(name, item[1], source, source.check)
    entries = [(OCI_MANIFEST, _digest(s.manifest), len(s.manifest), s.platform, list(s.tags))
               for s in saved]
    writer.file(oci_layout.INDEX_FILE, oci_layout.index_json(entries))
    table = [(s.image.id, list(s.tags), [d for d, _, _ in s.layers]) for s in saved]
    writer.file(docker_archive.MANIFEST_FILE, docker_archive.manifest_json(table))
    writer.file(oci_layout.LAYOUT_FILE, oci_layout.LAYOUT_JSON)
    repositories = docker_archive.repositories_json(table)
    if repositories is not None:
        writer.file(docker_archive.REPOSITORIES_FILE, repositories)
    writer.close()


def save_oci_dir(store: ImageStore, names: Iterable[str], path: str | os.PathLike[str]) -> None:
    """Write the images `names` as an OCI image layout in the new (or empty) directory
    `path`, each with its stored manifest and blobs as they are (so its manifest digest is
    the one it was pulled with), named by Docker's annotations."""
    import shutil

    selected = _select(store, names)
    root = os.fspath(path)
    made = not os.path.exists(root)
    if not made and (not os.path.isdir(root) or os.listdir(root)):
        raise ArchiveError(f"`{root}` exists and is not an empty directory")
    try:
        blob_dir = os.path.join(root, "blobs", "sha256")
        os.makedirs(blob_dir, exist_ok=True)
        entries = []
        for image, tags in selected:
            manifest_bytes = store.blobs.read_bytes(image.manifest_digest)
            config = store.blobs.read_bytes(image.id)
            for digest in [image.manifest_digest, image.id,
                           *(d.digest for d in image.manifest.layers)]:
                target = os.path.join(blob_dir, _hex(digest))
                if not os.path.exists(target):
                    shutil.copyfile(store.blobs.path(digest), target)
            entries.append((image.manifest.media_type or OCI_MANIFEST, image.manifest_digest,
                            len(manifest_bytes), oci_layout.platform_of(_json(config)), tags))
        with open(os.path.join(root, oci_layout.INDEX_FILE), "wb") as f:
            f.write(oci_layout.index_json(entries))
        with open(os.path.join(root, oci_layout.LAYOUT_FILE), "wb") as f:
            f.write(oci_layout.LAYOUT_JSON)
    except BaseException:
        if made:
            shutil.rmtree(root, ignore_errors=True)
        raise


def _select(store: ImageStore, names: Iterable[str]) -> list[tuple[Image, list[Reference]]]:
    """The images `names` give with the tags to save them under, as moby's `parseNames`
    finds them; ImageNotFound (or Docker's reference error) for a name that gives none."""
    chosen: dict[str, tuple[Image, list[Reference]]] = {}
    listing: list[tuple[Image, list[str]]] | None = None

    def take(image: Image, ref: Reference | None) -> None:
        tags = chosen.setdefault(image.id, (image, []))[1]
        if ref is not None and ref not in tags:
            tags.append(ref)

    for name in names:
        ref = _as_reference(name)
        if ref is None or ref.digest is not None:
            take(store.get(name), None)
        elif ref.tag is not None:
            take(store.get(name), ref)
        else:  # a repository alone: all its tags, or else an image ID prefix
            if listing is None:
                listing = store.list()
            tagged = [(image, parse_reference(r)) for image, refs in listing for r in refs
                      if "@" not in r and parse_reference(r).name == ref.name]
            for image, tag in tagged:
                take(image, tag)
            if not tagged:
                take(store.get(name), None)
    return list(chosen.values())


def _as_reference(name: str) -> Reference | None:
    """`name` as a reference, or None when it is an image ID (or not a reference at all,
    for `ImageStore.get` to judge)."""
    if name.startswith("sha256:"):
        return None
    try:
        return parse_reference(name)
    except ReferenceError_:
        return None


def _saved(store: ImageStore, image: Image, tags: list[Reference]) -> _Saved:
    config = store.blobs.read_bytes(image.id)
    platform = oci_layout.platform_of(_json(config))
    layers = []
    for desc, diff_id, chain in zip(image.manifest.layers, image.config.rootfs.diff_ids,
                                    image.chain_ids):
        if not store.blobs.exists(desc.digest):
            raise ArchiveError(f"save {image.short_id}: its layer blob {desc.digest} is not "
                               f"in the store")
        layers.append((diff_id, store.layers.info(chain).size, desc.digest))
    manifest = oci_layout.saved_manifest(config, platform, [(d, n) for d, n, _ in layers])
    return _Saved(image, tuple(tags), config, platform, tuple(layers), manifest)


class _Uncompressed:
    """A stored layer blob, decompressed as it is read; `check` (at the end) says whether
    it had the diff ID it must have."""

    def __init__(self, store: ImageStore, diff_id: str, size: int, blob: str) -> None:
        from skiff.store.layers import _open_stream  # the layer reader's decompression

        self.diff_id = diff_id
        self._raw = store.blobs.open(blob)
        self._reader = _open_stream(self._raw)

    def read(self, n: int = -1) -> bytes:
        return self._reader.read(n)

    def close(self) -> None:
        self._raw.close()

    def check(self) -> None:
        actual = "sha256:" + self._reader.hash.hexdigest()
        if actual != self.diff_id:
            raise LayerError(f"the stored layer {self.diff_id} reads as {actual}: the store "
                             f"is damaged")


# -- load ---------------------------------------------------------------------------------
def load(store: ImageStore, src: IO[bytes], progress: ProgressFn | None = None) -> list[str]:
    """Load the images of the archive `src` (``docker load``); Docker's lines."""
    path = spool(src, os.path.join(store.root, "tmp"))
    try:
        members = TarMembers(path)
        if members.exists(docker_archive.MANIFEST_FILE):
            indexed = (oci_layout.read_images(members)
                       if members.exists(oci_layout.INDEX_FILE) else [])
            images = docker_archive.read_images(members, indexed)
        elif members.exists(oci_layout.INDEX_FILE):
            images = oci_layout.read_images(members)
        else:
            raise ArchiveError("this is not an image archive: it holds neither manifest.json "
                               "(docker save) nor index.json (an OCI image layout)")
        return _store(store, members, images, progress)
    finally:
        os.unlink(path)


def load_oci_dir(store: ImageStore, path: str | os.PathLike[str], ref: str | None = None,
                 progress: ProgressFn | None = None) -> list[str]:
    """Load the images of the OCI image layout directory `path` (what ``skopeo copy …
    oci:DIR:REF`` writes); with `ref`, only the image whose ref-name annotation is `ref`."""
    members = DirMembers(os.fspath(path))
    if not members.exists(oci_layout.INDEX_FILE):
        raise ArchiveError(f"`{os.fspath(path)}` is not an OCI image layout: it has no "
                           f"index.json")
    return _store(store, members, oci_layout.read_images(members, select=ref), progress)


def _store(store: ImageStore, members: Members, images: list[ArchivedImage],
           progress: ProgressFn | None) -> list[str]:
    images = _merged(images)
    diff_ids = [_check(members, image) for image in images]
    added: list[str] = []
    try:
        for image, image_diff_ids in zip(images, diff_ids):
            if store.exists(image.image_id):
                continue  # the same config is the same image: only its names are new
            openers = [(l.digest, _opener(members, l.member, d, l.size, progress))
                       for l, d in zip(image.layers, image_diff_ids)]
            store.add(image.manifest, image.config, openers, None)
            added.append(image.image_id)
        return _name(store, images)
    except BaseException:
        for image_id in reversed(added):
            try:
                store.remove(image_id, force=True)
            except StoreError as e:
                _log.warning("load: could not take back image %s: %s", image_id, e)
        raise


def _merged(images: list[ArchivedImage]) -> list[ArchivedImage]:
    """One entry per image ID, with the tags of all its entries."""
    by_id: dict[str, ArchivedImage] = {}
    for image in images:
        seen = by_id.get(image.image_id)
        if seen is None:
            by_id[image.image_id] = image
        else:
            tags = seen.tags + tuple(t for t in image.tags if t not in seen.tags)
            by_id[image.image_id] = ArchivedImage(seen.image_id, seen.manifest, seen.config,
                                                  seen.config_member, seen.layers, tags)
    return list(by_id.values())


def _check(members: Members, image: ArchivedImage) -> tuple[str, ...]:
    """What can be checked before anything is stored; the image's diff IDs."""
    try:
        config = parse_config(image.config)
    except SpecError as e:
        raise ArchiveError(f"is not a valid image config: {e}", image.config_member) from None
    if config.os != "linux":
        raise ArchiveError(f"cannot load {config.os} image on linux", image.config_member)
    diff_ids = config.rootfs.diff_ids
    if len(image.layers) != len(diff_ids):
        raise ArchiveError(f"invalid manifest, layers length mismatch: expected "
                           f"{len(image.layers)}, got {len(diff_ids)}", image.config_member)
    for i, (layer, diff_id) in enumerate(zip(image.layers, diff_ids)):
        size = members.size(layer.member)
        if size != layer.size:
            raise DigestMismatch("size", layer.size, size, layer.digest)
        if LAYER_COMPRESSION.get(layer.media_type) == "" and layer.digest != diff_id:
            # an uncompressed layer's digest is its diff ID: a mismatch needs no unpacking
            raise LayerError(f"{layer.member}: invalid diffID for layer {i}: expected "
                             f'"{diff_id}", got "{layer.digest}"')
    return diff_ids


def _name(store: ImageStore, images: list[ArchivedImage]) -> list[str]:
    lines = []
    for image in images:
        if not image.tags:
            lines.append(f"Loaded image ID: {image.image_id}")
        for tag in image.tags:
            familiar = parse_reference(tag).familiar()
            try:
                before: str | None = store.get(tag).id
            except ImageNotFound:
                before = None
            if before is not None and before != image.image_id:
                lines.append(f"The image {familiar} already exists, renaming the old one "
                             f"with ID {before} to empty string")
            store.tag(image.image_id, tag)
            lines.append(f"Loaded image: {familiar}")
    return lines


def _opener(members: Members, member: str, diff_id: str, size: int,
            progress: ProgressFn | None) -> Callable[[], IO[bytes]]:
    def open_member() -> IO[bytes]:
        stream = members.open(member)
        if progress is None:
            return stream
        return _Reported(stream, progress, _hex(diff_id)[:12], size)  # type: ignore[return-value]
    return open_member


class _Reported:
    """A layer being read into the store, told to `progress` as it goes."""

    def __init__(self, stream: IO[bytes], progress: ProgressFn, short: str, total: int) -> None:
        self.stream, self.progress, self.short, self.total = stream, progress, short, total
        self.done = 0
        progress(ArchiveProgress(short, LOADING, 0, total))

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        if data:
            self.done += len(data)
            self.progress(ArchiveProgress(self.short, LOADING, self.done, self.total))
        return data

    def close(self) -> None:
        self.stream.close()


# -- small things -------------------------------------------------------------------------
def _digest(data: bytes) -> str:
    from skiff.store.blobs import digest_of

    return digest_of(data)


def _hex(digest: str) -> str:
    return digest.partition(":")[2]


def _json(data: bytes) -> dict[str, Any]:
    from skiff import jsonfast

    doc = jsonfast.loads(data)
    return doc if isinstance(doc, dict) else {}
