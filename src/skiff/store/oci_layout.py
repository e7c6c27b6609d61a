"""The OCI image layout (image-spec ``image-layout.md``), read from an archive and written.

Reading: ``oci-layout`` (version 1.0.0), ``index.json``, and the blobs
``blobs/sha256/<hex>`` it leads to, each checked against its descriptor's digest and size.
An index entry that is an image manifest is one image; one that is an index (a
multi-platform image) gives its image for the platform asked — the host's by default — by
containerd's matching; other entries (artifacts) are skipped. An image's names come from
its entries' annotations: ``io.containerd.image.name``, the full reference that
``docker save`` and containerd write, or else ``org.opencontainers.image.ref.name`` when it
holds a repository (skopeo's ``oci:dir:busybox:latest``); a bare tag there (``latest``, as
Docker writes it beside the full name) names no repository, so such an image is loaded by
ID. Writing: the image manifest ``docker save`` 25+ writes for an image whose layers it
saves as uncompressed tars, and the index with Docker's annotations, as compact JSON the
way Go's encoder writes it.
"""

from __future__ import annotations

import os

from skiff.errors import ArchiveError, InvalidDigest, ReferenceError_, SpecError
from skiff.oci.image_spec import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    parse_manifest,
    platform_from_text,
    select_platform,
)
from skiff.reference import Reference, parse_reference
from skiff.store.archive_files import ArchivedImage, ArchivedLayer, Members
from skiff.store.blobs import digest_of, parse_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LAYOUT_VERSION = "1.0.0"
# the bytes moby writes (ociLayoutContent), space and all
LAYOUT_JSON = b'{"imageLayoutVersion": "' + LAYOUT_VERSION.encode() + b'"}'
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
_MAX_DEPTH = 4  # an index of indexes of… deeper than any tool writes


def blob_name(digest: str, member: str | None = None) -> str:
    """Where the layout keeps the blob `digest`."""
    try:
        algorithm, hexpart = parse_digest(digest)
    except InvalidDigest as e:
        raise ArchiveError(str(e), member) from None
    return f"blobs/{algorithm}/{hexpart}"


def host_platform() -> Platform:
    return platform_from_text(f"linux/{os.uname().machine}")


def read_images(members: Members, *, platform: Platform | None = None,
                select: str | None = None) -> list[ArchivedImage]:
    """The images of the layout in `members`, in index order (one per manifest, however
    many entries name it). `select` keeps only the entries whose ref-name annotation is it
    (skopeo's ``oci:dir:REF``)."""
    if members.exists(LAYOUT_FILE):
        layout = _json(members.read(LAYOUT_FILE), LAYOUT_FILE)
        version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
        if version != LAYOUT_VERSION:
            raise ArchiveError(f"image layout version {version!r} is not supported "
                               f"(only {LAYOUT_VERSION})", LAYOUT_FILE)
    index = _document(members.read(INDEX_FILE), OCI_INDEX, INDEX_FILE)
    if not isinstance(index, Index):
        raise ArchiveError("is an image manifest, not an index", INDEX_FILE)
    wanted = platform or host_platform()
    found: dict[str, ArchivedImage] = {}
    for desc in index.manifests:
        annotations = desc.annotations or {}
        if select is not None and annotations.get(REF_ANNOTATION) != select:
            continue
        manifest_desc = _image_manifest(members, desc, wanted, 0)
        if manifest_desc is None:
            continue
        tags = _names(annotations)
        image = found.get(manifest_desc.digest)
        if image is None:
            found[manifest_desc.digest] = _image(members, manifest_desc, tags)
        else:
            merged = image.tags + tuple(t for t in tags if t not in image.tags)
            found[manifest_desc.digest] = ArchivedImage(
                image.image_id, image.manifest, image.config, image.config_member,
                image.layers, merged)
    if select is not None and not found:
        raise ArchiveError(f"holds no image named {select!r}", INDEX_FILE)
    return list(found.values())


def _image_manifest(members: Members, desc: Descriptor, wanted: Platform,
                    depth: int) -> Descriptor | None:
    """The descriptor of the image manifest `desc` leads to for `wanted`, or None for an
    entry that is not an image."""
    if desc.media_type in MANIFEST_TYPES:
        return desc
    if desc.media_type not in INDEX_TYPES:
        return None
    if depth >= _MAX_DEPTH:
        raise ArchiveError(f"indexes nest deeper than {_MAX_DEPTH}", INDEX_FILE)
    name = blob_name(desc.digest, INDEX_FILE)
    nested = _document(members.read_verified(name, desc.digest, desc.size), desc.media_type,
                       name)
    if not isinstance(nested, Index):
        raise ArchiveError(f"is described as an index but is a manifest", name)
    try:
        chosen = select_platform(nested, wanted.os, wanted.architecture, wanted.variant)
    except SpecError as e:
        raise ArchiveError(e.problem, name) from None
    return _image_manifest(members, chosen, wanted, depth + 1)


def _image(members: Members, desc: Descriptor, tags: tuple[str, ...]) -> ArchivedImage:
    name = blob_name(desc.digest, INDEX_FILE)
    data = members.read_verified(name, desc.digest, desc.size)
    manifest = _document(data, desc.media_type, name)
    if not isinstance(manifest, Manifest):
        raise ArchiveError("is described as an image manifest but is an index", name)
    config_name = blob_name(manifest.config.digest, name)
    config = members.read_verified(config_name, manifest.config.digest, manifest.config.size)
    layers = tuple(ArchivedLayer(blob_name(d.digest, name), d.digest, d.size, d.media_type)
                   for d in manifest.layers)
    return ArchivedImage(manifest.config.digest, data, config, config_name, layers, tags)


def _names(annotations: dict[str, str]) -> tuple[str, ...]:
    """The full references an index entry's annotations give its image (at most one)."""
    full = annotations.get(NAME_ANNOTATION)
    text = full if full else annotations.get(REF_ANNOTATION, "")
    if not full and not (":" in text or "/" in text):
        return ()  # a bare tag: no repository to put it in
    try:
        ref = parse_reference(text).with_default_tag()
    except ReferenceError_ as e:
        raise ArchiveError(f"an image is named {text!r}: {e}", INDEX_FILE) from None
    return () if ref.tag is None else (str(Reference(ref.domain, ref.path, ref.tag)),)


def _json(data: bytes, member: str) -> Any:
    from skiff import jsonfast

    try:
        return jsonfast.loads(data)
    except ValueError as e:
        raise ArchiveError(f"is not valid JSON: {e}", member) from None


def _document(data: bytes, media_type: str | None, member: str) -> Manifest | Index:
    try:
        return parse_manifest(data, media_type)
    except SpecError as e:
        raise ArchiveError(str(e), member) from None


# -- writing ------------------------------------------------------------------------------
def compact_json(doc: Any) -> bytes:
    """JSON as Go's encoding/json writes it: no spaces, keys in the order given."""
    import json

    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def platform_of(config: dict[str, Any]) -> dict[str, Any]:
    """An image config's platform, as a descriptor's ``platform`` object."""
    out: dict[str, Any] = {"architecture": config.get("architecture", ""),
                           "os": config.get("os", "")}
    for key in ("os.version", "os.features", "variant"):
        if config.get(key):
            out[key] = config[key]
    return out


def saved_manifest(config: bytes, platform: dict[str, Any],
                   layers: list[tuple[str, int]]) -> bytes:
    """The OCI image manifest ``docker save`` 25+ writes: `config` and the layers as
    uncompressed tars, each (diff ID, size)."""
    return compact_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config),
                   "platform": platform},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": n} for d, n in layers],
    })


def index_json(entries: list[tuple[str, str, int, dict[str, Any], list[Reference]]]) -> bytes:
    """``index.json``: per (media type, manifest digest, size, platform, tags) one entry
    per tag with Docker's two annotations, or one bare entry for an untagged image."""
    manifests: list[dict[str, Any]] = []
    for media_type, digest, size, platform, tags in entries:
        base = {"mediaType": media_type, "digest": digest, "size": size}
        if not tags:
            manifests.append({**base, "platform": platform})
        for ref in tags:
            manifests.append({**base, "annotations": {NAME_ANNOTATION: str(ref),
                                                      REF_ANNOTATION: ref.tag or ""},
                              "platform": platform})
    return compact_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
