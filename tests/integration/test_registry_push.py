"""`skiff.registry.push` against Debian's docker-registry, checked with skopeo.

An image skiff pushes must be what skopeo reads back (the same manifest digest and layer
digests, and blobs that verify when skopeo copies them out); a second push finds every
layer there; a push to another repository of the same registry mounts the layers from
where skiff saw them instead of sending them again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures_registry import (
    Registry,
    add_to_store,
    oci_layout,
    put_image,
    skopeo_copy,
    skopeo_inspect,
)

from skiff.registry.progress import Progress
from skiff.registry.pull import pull
from skiff.registry.push import push
from skiff.store.images import ImageStore

pytestmark = pytest.mark.registry


@pytest.fixture
def store(image_store: ImageStore) -> ImageStore:
    return image_store


def statuses(seen: list[Progress]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in seen:
        if p.id is not None:
            out.setdefault(p.id, []).append(p.status)
    return out


def test_push_is_read_back_by_skopeo(registry: Registry, store: ImageStore, work: Path) -> None:
    layout = oci_layout(work / "layout", layers=[{"a": os.urandom(3 << 20)}, {"b": b"b\n"}])
    image = add_to_store(store, layout, registry.ref("push/first:v1"))
    seen: list[Progress] = []
    result = push(store, registry.ref("push/first:v1"), progress=seen.append)
    assert (result.tag, result.digest) == ("v1", image.manifest_digest)
    assert result.size == len(layout.image.manifest)
    info = skopeo_inspect(registry.ref("push/first:v1"))
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == layout.image.layer_digests
    # skopeo verifies every blob it copies out
    skopeo_copy(f"docker://{registry.ref('push/first:v1')}", f"oci:{work / 'out'}:v1")
    by_layer = statuses(seen)
    for diff_id in layout.image.diff_ids:
        assert by_layer[diff_id[7:19]][0] == "Preparing"
        assert by_layer[diff_id[7:19]][-1] == "Pushed"
    assert any(p.status == "Pushing" and p.current == p.total == layout.image.layer_sizes[0]
               for p in seen)

    seen.clear()
    again = push(store, registry.ref("push/first:v1"), progress=seen.append)
    assert again.digest == result.digest
    assert {s[-1] for s in statuses(seen).values()} == {"Layer already exists"}

    store.tag(registry.ref("push/first:v1"), registry.ref("push/second:v2"))
    seen.clear()
    other = push(store, registry.ref("push/second:v2"), progress=seen.append)
    assert other.digest == result.digest
    assert {s[-1] for s in statuses(seen).values()} == {"Mounted from push/first"}
    assert skopeo_inspect(registry.ref("push/second:v2"))["Layers"] == layout.image.layer_digests


def test_a_pulled_image_pushed_elsewhere_is_mounted_from_its_source(
        registry: Registry, store: ImageStore, work: Path) -> None:
    made = put_image(registry, "push/source:v1", work)
    pull(store, registry.ref("push/source:v1"))
    store.tag(registry.ref("push/source:v1"), registry.ref("push/copy:v1"))
    seen: list[Progress] = []
    result = push(store, registry.ref("push/copy:v1"), progress=seen.append)
    assert result.digest == made.digest
    assert {s[-1] for s in statuses(seen).values()} == {"Mounted from push/source"}
