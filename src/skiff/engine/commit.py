"""``docker commit``: a container's writable layer made into a new image on top of its own.

The layer is the snapshot's upper dir as a layer tar (`write_layer`): overlay whiteouts
(0/0 character devices) become ``.wh.<name>`` entries, an opaque directory gets its
``.wh..wh..opq``, and what Docker keeps in a container's init layer (/etc/hostname, /proc…,
`container_archive.INIT_PATHS`) is left out, as it is from Docker's commits. Extended
attributes go in PAX ``SCHILY.xattr.*`` records (`layer_xattrs`): ``security.capability`` as
moby's tar writer keeps it (a namespaced v3 one made v2, whose root means the same in any
namespace), and the ``user.*`` ones as containers/storage's writer keeps them too (moby
drops those); overlayfs's own ``trusted.*`` and SELinux labels stay out, as in both. A
remapped container's files go in with the owners its root sees (moby's ToContainer). The tar is
compressed by the importer's `compress_layer` (the diff ID and blob digest come with it) and
stored with `ImageStore.add` — the one way images enter the store — over the base image's
layers. The config is moby's NewChildImage: the base image's config with the container's
config (or the one the request body gives, completed from the container's), the
``changes`` Dockerfile instructions applied (`store.changes`), the author and comment, the
new layer's diff ID (none when nothing changed: an empty layer is not added, its history
entry says ``empty_layer``) and a history entry whose ``created_by`` is the container's
command. A running container is paused for the copy unless ``pause=0``.
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile

from skiff import jsonfast
from skiff.engine.container_archive import OPAQUE_XATTR, _tar_filter, changes, walk_upper
from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

    from skiff.engine.containers import ContainerService
    from skiff.engine.images import ImageService
    from skiff.kernel.idmap import IdMaps

_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_XATTR_PAX = "SCHILY.xattr."
_CAPABILITY = "security.capability"
_CAPS_V2_SIZE, _CAPS_VERSION_BYTE, _CAPS_V2, _CAPS_V3 = 20, 3, 2, 3


def layer_xattrs(path: str) -> dict[str, str]:
    """The PAX records of the xattrs of `path` (not followed) that a layer carries."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}  # a filesystem without xattrs: none to carry
    records: dict[str, str] = {}
    for attr in sorted(names):
        if attr != _CAPABILITY and not attr.startswith("user."):
            continue
        try:
            value = os.getxattr(path, attr, follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        if attr == _CAPABILITY and len(value) > _CAPS_VERSION_BYTE and \
                value[_CAPS_VERSION_BYTE] == _CAPS_V3:
            value = bytes(value[:_CAPS_VERSION_BYTE]) + bytes([_CAPS_V2]) + \
                value[_CAPS_VERSION_BYTE + 1:_CAPS_V2_SIZE]
        records[_XATTR_PAX + attr] = value.decode("utf-8", "surrogateescape")
    return records



def _kept(upper: str, lowers: list[str]) -> set[str]:
    """The upper dir's paths that belong in the layer: what `changes` reports (a directory
    copied up only because skiff made a mount target in it is not) and their parents."""
    kept: set[str] = set()
    for change in changes(upper, lowers):
        path = change["Path"]
        while path not in kept and path != "/":
            kept.add(path)
            path = os.path.dirname(path)
    return kept


def write_layer(upper: str, lowers: list[str], out: IO[bytes],
                idmaps: IdMaps | None = None) -> int:
    """The layer tar of the overlay upper dir `upper` over the layer trees `lowers`; the
    number of entries written. `idmaps`: a remapped container's, its owners mapped back."""
    count = 0
    kept = _kept(upper, lowers)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, st in walk_upper(upper):
            if path not in kept:
                continue
            host = os.path.join(upper, path.lstrip("/"))
            name = path.lstrip("/")
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                info = tarfile.TarInfo(os.path.join(os.path.dirname(name),
                                                    _WHITEOUT + os.path.basename(name)))
                info.mtime, info.mode = int(st.st_mtime), 0o644
                tar.addfile(info)
                count += 1
                continue
            info = _tar_filter(tar.gettarinfo(host, arcname=name))
            info.pax_headers = {**info.pax_headers, **layer_xattrs(host)}
            if idmaps is not None:
                info.uid, info.gid = idmaps.container_ids(info.uid, info.gid)
            if info.isreg():
                with open(host, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            count += 1
            if stat.S_ISDIR(st.st_mode) and _is_opaque(host):
                marker = tarfile.TarInfo(os.path.join(name, _OPAQUE))
                marker.mtime, marker.mode = int(st.st_mtime), 0o644
                tar.addfile(marker)
                count += 1
    return count


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _target(repo: str, tag: str) -> tuple[str, str] | None:
    """(repo, tag) to name the image by, checked now (Docker's 400 for a bad one)."""
    if not repo:
        return None
    from skiff.engine.images import _parse, _with_tag

    ref = _parse(repo)
    if ref.digest is not None:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    if tag:
        _with_tag(ref, tag)
    return repo, tag


def _merge_config(given: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """moby's merge(userConf, imageConf): what the given config leaves empty comes from
    the container's."""
    out = dict(given)
    for key, value in container.items():
        if out.get(key) in (None, "", [], {}):
            out[key] = value
    return out


def commit(containers: ContainerService, images: ImageService, ref: str, *, repo: str = "",
           tag: str = "", comment: str = "", author: str = "", pause: bool = True,
           changes: list[str] | None = None, config: Any = None) -> dict[str, str]:
    """``POST /commit?container=…``: ``{"Id": "sha256:…"}``."""
    from skiff.engine.container_control import _emit, pause as pause_container, unpause
    from skiff.engine.times import rfc3339_nano
    from skiff.store.changes import apply_changes

    if config is not None and not isinstance(config, dict):
        raise InvalidArgument("invalid JSON: the request body must be a container config")
    target = _target(repo, tag)
    cid = containers.resolve(ref)
    row = containers._row(cid)
    base = containers.store.get(row.image_id)
    base_doc = containers._image_config(base.id)
    container_config = dict(row.doc.get("Config") or {})
    new_config = apply_changes(_merge_config(config or {}, container_config)
                               if config else container_config, list(changes or ()),
                               base.config.os)
    paused_here = False
    if pause and containers._running(row) and not row.state.get("Paused"):
        pause_container(containers, cid)
        paused_here = True
    try:
        image = _store(containers, base, base_doc, row.id, new_config, container_config,
                       comment=comment, author=author, created=rfc3339_nano(_now()))
    finally:
        if paused_here:
            unpause(containers, cid)
    image_ref = ""
    if target is not None:
        image_ref = images.tag(image.id, target[0], target[1])
    _emit(containers, cid, "commit", {"comment": comment, "imageID": image.id,
                                      "imageRef": image_ref})
    return {"Id": image.id}


def _now() -> float:
    import time

    return time.time()


def _store(containers: ContainerService, base: Any, base_doc: dict[str, Any], cid: str,
           new_config: dict[str, Any], container_config: dict[str, Any], *, comment: str,
           author: str, created: str) -> Any:
    from skiff.oci.image_spec import (DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
                                      OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST)
    from skiff.store.blobs import digest_of
    from skiff.store.importer import compress_layer
    from skiff.store.oci_layout import compact_json

    store = containers.store
    tmp_dir = os.path.join(store.root, "tmp")
    os.makedirs(tmp_dir, exist_ok=True)
    docker_types = base.manifest.media_type == DOCKER_MANIFEST
    with tempfile.TemporaryFile(dir=tmp_dir) as raw:
        from skiff.engine.userns_remap import maps_of

        row = containers._row(cid)
        entries = write_layer(containers.snapshots.upper(cid), store.rootfs_layers(base), raw,
                              maps_of(row.doc))
        raw.seek(0)
        blob = compress_layer(raw, tmp_dir) if entries else None
    try:
        doc = {k: v for k, v in base_doc.items() if k not in ("history", "rootfs", "config",
                                                              "container_config")}
        doc.update(created=created, config={k: v for k, v in new_config.items()
                                            if v is not None},
                   container_config=container_config, container=cid)
        if author:
            doc["author"] = author
        else:
            doc.pop("author", None)
        if comment:
            doc["comment"] = comment
        else:
            doc.pop("comment", None)
        diff_ids = list((base_doc.get("rootfs") or {}).get("diff_ids") or [])
        history = list(base_doc.get("history") or [])
        entry: dict[str, Any] = {"created": created,
                                 "created_by": " ".join(container_config.get("Cmd") or [])}
        if author:
            entry["author"] = author
        if comment:
            entry["comment"] = comment
        layers = [{"mediaType": d.media_type, "digest": d.digest, "size": d.size}
                  for d in base.manifest.layers]
        blobs: list[tuple[str, Callable[[], IO[bytes]]]] = []
        if blob is not None:
            path, diff_id, blob_digest, blob_size = blob
            diff_ids.append(diff_id)
            layers.append({"mediaType": DOCKER_LAYER_GZIP if docker_types else OCI_LAYER_GZIP,
                           "digest": blob_digest, "size": blob_size})
            blobs.append((blob_digest, lambda: open(path, "rb")))
        else:
            entry["empty_layer"] = True
        history.append(entry)
        doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        doc["history"] = history
        config_bytes = compact_json(doc)
        manifest = compact_json({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST if docker_types else OCI_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG if docker_types else OCI_CONFIG,
                       "digest": digest_of(config_bytes), "size": len(config_bytes)},
            "layers": layers})
        return store.add(manifest, config_bytes, blobs)
    finally:
        if blob is not None:
            os.unlink(blob[0])


def config_body(data: bytes) -> Any:
    """The optional ContainerConfig body of ``POST /commit`` (``null`` or empty: none)."""
    if not data.strip():
        return None
    try:
        return jsonfast.loads(data)
    except ValueError as e:
        raise InvalidArgument(f"invalid JSON in the request body: {e}") from e
