"""``docker import``: a root filesystem tarball made into an image of one layer.

The changes (``--change``) and the platform are checked first, so a bad one stores
nothing and reads no input. The tarball — plain, gzip, bzip2, xz or zstd, from a file or
a stream that cannot seek — is read once: its uncompressed bytes are hashed (the layer's
diff ID) while they are gzip-compressed into a temporary file under the store's root,
which becomes the layer blob (OCI ``tar+gzip``, deterministic: no name, no time in the
gzip header). The config is what moby's `ImportImage` makes: the platform (the host's
unless given), ``created`` now, the message as ``comment`` and as the one history entry's
comment (``Imported from -`` when none is given, as Docker writes for a tarball sent to
it), and the container config the changes build from nothing. `ImageStore.add` then
stores, unpacks (refusing a hostile or broken tar) and names it, all or nothing.
"""

from __future__ import annotations

import os

from skiff.errors import InvalidArgument, LayerError, SpecError
from skiff.oci.image_spec import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, platform_from_text
from skiff.reference import parse_reference
from skiff.store.changes import apply_changes
from skiff.store.oci_layout import compact_json, host_platform

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import IO, Any

    from skiff.oci.image_spec import Platform
    from skiff.store.images import Image, ImageStore

_CHUNK = 1 << 20
_GZIP_LEVEL = 6  # Go's gzip.DefaultCompression, which Docker compresses layers with


def import_rootfs(store: ImageStore, src: IO[bytes], *, ref: str | None = None,
                  changes: Iterable[str] = (), message: str = "",
                  platform: str | None = None, source: str = "-") -> Image:
    """Import the root filesystem tarball `src` as a new image (named `ref` when given).
    `source` is what the tarball came from, for the default message (``-``: a stream)."""
    if ref is not None and parse_reference(ref).digest is not None:
        raise InvalidArgument("cannot import digest reference")
    target = _platform(platform)
    config = apply_changes({}, list(changes), target.os)
    tmp_dir = os.path.join(store.root, "tmp")
    path, diff_id, blob_digest, blob_size = compress_layer(src, tmp_dir)
    try:
        created = _now()
        comment = message or f"Imported from {source}"
        doc: dict[str, Any] = {
            "comment": comment, "created": created,
            "config": {k: v for k, v in config.items() if v is not None},
            "architecture": target.architecture,
        }
        if target.variant:
            doc["variant"] = target.variant
        doc["os"] = target.os
        doc["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
        doc["history"] = [{"created": created, "comment": comment}]
        config_bytes = compact_json(doc)
        from skiff.store.blobs import digest_of

        manifest = compact_json({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config_bytes),
                       "size": len(config_bytes)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": blob_digest, "size": blob_size}],
        })
        return store.add(manifest, config_bytes, [(blob_digest, lambda: open(path, "rb"))], ref)
    finally:
        os.unlink(path)


def _platform(text: str | None) -> Platform:
    if not text:
        return host_platform()
    try:
        target = platform_from_text(text)
    except SpecError as e:
        raise InvalidArgument(f"invalid platform {text!r}: {e.problem}") from None
    if target.os != "linux":
        raise InvalidArgument("operating system is not supported")
    return target


def compress_layer(src: IO[bytes], tmp_dir: str) -> tuple[str, str, str, int]:
    """The tarball `src` gzip'd into a new file in `tmp_dir`: (its path, the diff ID, the
    blob's digest and size). The caller removes the file. ``docker commit`` makes its
    layer with it too."""
    import hashlib
    import tempfile
    import zlib

    from skiff.store.layers import _open_stream  # the layer reader's decompression

    os.makedirs(tmp_dir, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="import-", dir=tmp_dir)
    try:
        blob_hash = hashlib.sha256()
        blob_size = 0
        with os.fdopen(fd, "wb") as out:
            reader = _open_stream(src)
            gz = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            while True:
                chunk = reader.read(_CHUNK)
                data = gz.compress(chunk) if chunk else gz.flush()
                blob_hash.update(data)
                blob_size += len(data)
                out.write(data)
                if not chunk:
                    break
        if reader.size == 0:
            raise LayerError("import: the input is empty; expected a tar archive of a root "
                             "filesystem")
    except BaseException:
        os.unlink(path)
        raise
    return path, "sha256:" + reader.hash.hexdigest(), "sha256:" + blob_hash.hexdigest(), blob_size


def _now() -> str:
    """Now in UTC as Go's RFC 3339 with nanoseconds (trailing zeros dropped)."""
    import time

    ns = time.time_ns()
    seconds, fraction = divmod(ns, 10**9)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"
