"""`skiff.registry.pull` against Debian's docker-registry, with images put there by skopeo.

What skiff pulls must be what skopeo put in (the same manifest, config and layer digests,
the layer's files on disk); by tag and by digest; from an index, the platform asked for;
what is already stored is not fetched again; and a transfer that breaks for good, or a
blob that does not match its digest, leaves the store exactly as it was.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from fixtures_registry import CuttingProxy, Registry, put_image, skopeo_inspect
from skiff.errors import AuthenticationFailed, ManifestUnknown, RegistryError
from skiff.registry import transport
from skiff.registry.progress import Progress
from skiff.registry.pull import pull
from skiff.store.images import ImageStore

pytestmark = pytest.mark.registry


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "RETRY_DELAYS", (0.01, 0.01, 0.01))


@pytest.fixture
def store(work: Path) -> ImageStore:
    return ImageStore(work / "root")


def snapshot(root: Path) -> dict[str, int]:
    """Every file below the store's root with its size: what 'as it was' means."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = path.lstat().st_size
    return out


def test_pull_gets_what_skopeo_put(registry: Registry, store: ImageStore, work: Path) -> None:
    payload = os.urandom(256 << 10)
    made = put_image(registry, "pull/basic:v1", work, layers=[{"a.txt": b"hello\n"},
                                                             {"data/random.bin": payload}])
    info = skopeo_inspect(registry.ref("pull/basic:v1"))
    seen: list[Progress] = []
    result = pull(store, registry.ref("pull/basic:v1"), progress=seen.append)
    assert result.fresh
    assert result.digest == info["Digest"] == made.digest
    assert result.reference == registry.ref("pull/basic:v1")
    image = result.image
    assert image.id == made.image.config_digest
    assert [d.digest for d in image.manifest.layers] == info["Layers"]
    assert image.chain_ids[0] == made.image.diff_ids[0]
    top = Path(store.layers.diff_dir(image.chain_ids[-1]))
    assert (top / "data/random.bin").read_bytes() == payload
    assert store.get(registry.ref("pull/basic:v1")).id == image.id
    assert store.get(f"{registry.host}/pull/basic@{made.digest}").id == image.id
    statuses = {(p.id, p.status) for p in seen}
    for digest in made.image.layer_digests:
        assert (digest[7:19], "Pull complete") in statuses
    again = pull(store, registry.ref("pull/basic:v1"))
    assert not again.fresh and again.image == image
