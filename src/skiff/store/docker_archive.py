"""The docker-archive format — what ``docker save`` writes — read and written.

What makes it is ``manifest.json``: ``[{"Config": …, "RepoTags": […], "Layers": […]}]``,
one entry per image, naming its config and its layer tars by their paths in the archive.
Docker 1.10 to 24 keep each layer in ``<v1 id>/layer.tar`` (beside ``json`` and
``VERSION``, which nothing reads any more; a layer two images share is a symlink to the
first copy) and the config in ``<id>.json``; Docker 25 keeps everything in the OCI
layout's ``blobs/sha256/``, so that its one tar is both formats. ``repositories``
(``{"busybox": {"latest": "<top layer>"}}``) is for Docker before 1.10: written, not read.
An entry becomes an image with the OCI manifest the archive's index holds for its config
when there is one, so that its manifest digest survives the trip; else with a Docker
schema 2 manifest made here, each layer described as it is (an uncompressed or gzip tar,
told by its magic; OCI media types when one is zstd) and its digest taken from its
``blobs/sha256/<hex>`` name or computed from the archive. A config named by its digest
(``<hex>.json``, ``blobs/sha256/<hex>``) must hash to it.
"""

from __future__ import annotations

from skiff.errors import ArchiveError, DigestMismatch, ReferenceError_
from skiff.oci.image_spec import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
)
from skiff.reference import Reference, parse_reference
from skiff.store.archive_files import ArchivedImage, ArchivedLayer, Members
from skiff.store.blobs import digest_of
from skiff.store.oci_layout import compact_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
_HEX = frozenset("0123456789abcdef")
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ\x00", "xz"),
          (b"BZh", "bzip2"))
_DOCKER_TYPES = {"": DOCKER_LAYER, "gzip": DOCKER_LAYER_GZIP}
_OCI_TYPES = {"": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


def read_images(members: Members, indexed: list[ArchivedImage]) -> list[ArchivedImage]:
    """The images ``manifest.json`` lists, in its order; `indexed` are the images of the
    archive's OCI index, whose manifests are used for the configs they describe."""
    from skiff import jsonfast

    try:
        entries = jsonfast.loads(members.read(MANIFEST_FILE))
    except ValueError as e:
        raise ArchiveError(f"is not valid JSON: {e}", MANIFEST_FILE) from None
    if entries is None:
        raise ArchiveError("invalid manifest, manifest cannot be null (but can be [])",
                           MANIFEST_FILE)
    if not isinstance(entries, list):
        raise ArchiveError("must be a JSON array of images", MANIFEST_FILE)
    by_config = {image.image_id: image for image in indexed}
    return [_image(members, i, entry, by_config) for i, entry in enumerate(entries)]


def _image(members: Members, i: int, entry: Any,
           by_config: dict[str, ArchivedImage]) -> ArchivedImage:
    where = f"{MANIFEST_FILE}[{i}]"
    if not isinstance(entry, dict):
        raise ArchiveError("an entry must be an object", where)
    config_path = entry.get("Config")
    layer_paths = entry.get("Layers")
    repo_tags = entry.get("RepoTags") or []
    if not isinstance(config_path, str) or not config_path:
        raise ArchiveError("has no Config (the path of the image config)", where)
    if not isinstance(layer_paths, list) or not all(isinstance(p, str) for p in layer_paths):
        raise ArchiveError("Layers must be a list of paths", where)
    if not isinstance(repo_tags, list) or not all(isinstance(t, str) for t in repo_tags):
        raise ArchiveError("RepoTags must be a list of references", where)
    tags = tuple(dict.fromkeys(_tag(t, where) for t in repo_tags))
    config_member = members.resolve(config_path)
    config = members.read(config_path)
    image_id = digest_of(config)
    named = _digest_in_name(config_member)
    if named is not None and named != image_id:
        raise DigestMismatch("digest", named, image_id)
    indexed = by_config.get(image_id)
    if indexed is not None:
        return ArchivedImage(image_id, indexed.manifest, config, config_member,
                             indexed.layers, tags)
    layers = []
    for path in layer_paths:
        member = members.resolve(path)
        digest = _digest_in_name(member) or members.digest(path)
        head = members.head(path)
        compression = next((kind for magic, kind in _MAGIC if head.startswith(magic)), "")
        if compression not in _OCI_TYPES:
            raise ArchiveError(f"the layer is {compression}-compressed: no image media type "
                               f"describes that (skiff loads plain, gzip and zstd layers)", path)
        layers.append((member, digest, members.size(path), compression))
    oci = any(c not in _DOCKER_TYPES for *_, c in layers)
    types = _OCI_TYPES if oci else _DOCKER_TYPES
    described = tuple(ArchivedLayer(m, d, n, types[c]) for m, d, n, c in layers)
    manifest = _manifest(config, image_id, described, oci)
    return ArchivedImage(image_id, manifest, config, config_member, described, tags)


def _tag(text: str, where: str) -> str:
    try:
        ref = parse_reference(text)
    except ReferenceError_ as e:
        raise ArchiveError(f"invalid tag {text!r}: {e}", where) from None
    if ref.tag is None or ref.digest is not None:
        raise ArchiveError(f'invalid tag "{text}"', where)
    return str(ref)


def _digest_in_name(member: str) -> str | None:
    """The digest a member's name claims: ``blobs/sha256/<hex>`` or ``<hex>.json``."""
    base = member.rpartition("/")[2].removesuffix(".json")
    if len(base) == 64 and _HEX.issuperset(base) and (
            member.startswith("blobs/sha256/") or member.endswith(".json")):
        return "sha256:" + base
    return None


def _manifest(config: bytes, image_id: str, layers: tuple[ArchivedLayer, ...],
              oci: bool) -> bytes:
    if oci:
        return compact_json({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": image_id, "size": len(config)},
            "layers": [{"mediaType": l.media_type, "digest": l.digest, "size": l.size}
                       for l in layers]})
    # the field order of distribution's schema2 Descriptor (mediaType, size, digest)
    return compact_json({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": image_id},
        "layers": [{"mediaType": l.media_type, "size": l.size, "digest": l.digest}
                   for l in layers]})


# -- writing ------------------------------------------------------------------------------
def manifest_json(images: list[tuple[str, list[Reference], list[str]]]) -> bytes:
    """``manifest.json`` for (image ID, tags, diff IDs) per image, as Docker 25 writes it:
    every path under ``blobs/sha256/``, no tags as null, a newline at the end."""
    doc = [{"Config": f"blobs/sha256/{image_id[7:]}",
            "RepoTags": [ref.familiar() for ref in tags] or None,
            "Layers": [f"blobs/sha256/{d[7:]}" for d in diff_ids]}
           for image_id, tags, diff_ids in images]
    return compact_json(doc) + b"\n"


def repositories_json(images: list[tuple[str, list[Reference], list[str]]]) -> bytes | None:
    """``repositories``: familiar name → tag → the hex of the image's top layer; None when
    no image has a tag (Docker then writes no such file)."""
    repos: dict[str, dict[str, str]] = {}
    for _, tags, diff_ids in images:
        for ref in tags:
            if diff_ids and ref.tag is not None:
                repos.setdefault(ref.familiar_name, {})[ref.tag] = diff_ids[-1][7:]
    return compact_json(repos) + b"\n" if repos else None
