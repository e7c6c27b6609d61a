"""`skiff.registry.pull` against Debian's docker-registry, with images put there by skopeo.

What skiff pulls must be what skopeo put in (the same manifest, config and layer digests,
the layer's files on disk); by tag and by digest; from an index, the platform asked for;
what is already stored is not fetched again; and a transfer that breaks for good, or a
blob that does not match its digest, leaves the store exactly as it was.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fixtures_registry import (
    CuttingProxy,
    Registry,
    oci_layout,
    put_image,
    skopeo_copy,
    skopeo_inspect,
)

from skiff.errors import ManifestUnknown, RegistryError
from skiff.registry import transport
from skiff.registry.progress import Progress
from skiff.registry.pull import pull
from skiff.store.images import ImageStore

pytestmark = pytest.mark.registry


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "RETRY_DELAYS", (0.01, 0.01, 0.01))


@pytest.fixture
def store(image_store: ImageStore) -> ImageStore:
    return image_store


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


def test_pull_by_digest(registry: Registry, store: ImageStore, work: Path) -> None:
    made = put_image(registry, "pull/bydigest:v1", work)
    ref = f"{registry.host}/pull/bydigest@{made.digest}"
    result = pull(store, ref)
    assert (result.reference, result.digest) == (ref, made.digest)
    assert store.get(ref).id == made.image.config_digest
    assert store.references(ref) == [ref]  # a digest pull names no tag


def test_index_gives_the_platform_asked_for(registry: Registry, store: ImageStore,
                                            work: Path) -> None:
    made = put_image(registry, "pull/multi:v1", work,
                     platforms=("linux/amd64", "linux/arm64/v8", "linux/arm/v7"))
    assert made.index_digest is not None
    info = skopeo_inspect(registry.ref("pull/multi:v1"), raw=True)
    assert info == made.index
    arm = pull(store, registry.ref("pull/multi:v1"), platform="linux/arm64")
    assert arm.digest == made.index_digest
    assert arm.image.config.architecture == "arm64"
    assert arm.image.manifest_digest == made.images[1].manifest_digest
    assert store.blobs.read_bytes(made.index_digest) == made.index
    # as Docker: the digest reference is the index's, and it finds the platform's image
    by_index = f"{registry.ref('pull/multi')}@{made.index_digest}"
    assert store.get(by_index).id == arm.image.id
    assert by_index in store.references(by_index)
    amd = pull(store, registry.ref("pull/multi:v1"), platform="linux/amd64")
    assert amd.fresh and amd.image.id == made.images[0].config_digest
    # the platforms share the first layer: stored once
    assert amd.image.chain_ids[0] == arm.image.chain_ids[0]
    # pulled by the index digest: the same image, up to date
    again = pull(store, by_index, platform="linux/amd64")
    assert (again.image.id, again.fresh) == (amd.image.id, False)
    # the index goes with the last image that came through it
    for image in (arm.image, amd.image):
        store.remove(image.id, force=True)
    assert not store.blobs.exists(made.index_digest)
    with pytest.raises(ManifestUnknown, match="no matching manifest for linux/s390x in the "
                                              "manifest list entries"):
        pull(store, registry.ref("pull/multi:v1"), platform="linux/s390x")
    with pytest.raises(ManifestUnknown, match="does not match the specified platform: "
                                              "wanted linux/arm64, actual: linux/amd64"):
        pull(store, _single(registry, work), platform="linux/arm64")


def _single(registry: Registry, work: Path) -> str:
    put_image(registry, "pull/single:v1", work)
    return registry.ref("pull/single:v1")


def test_shared_layers_already_exist(registry: Registry, store: ImageStore, work: Path) -> None:
    base = {"base.bin": os.urandom(64 << 10)}
    put_image(registry, "pull/base:v1", work, layers=[base])
    made = put_image(registry, "pull/derived:v1", work, layers=[base, {"top": b"top\n"}])
    pull(store, registry.ref("pull/base:v1"))
    seen: list[Progress] = []
    pull(store, registry.ref("pull/derived:v1"), progress=seen.append)
    base_id, top_id = (d[7:19] for d in made.image.layer_digests)
    assert [p.status for p in seen if p.id == base_id] == ["Already exists"]
    top = [p.status for p in seen if p.id == top_id]
    assert top[0] == "Pulling fs layer" and top[-1] == "Pull complete"
    assert "Download complete" in top and "Extracting" in top


def test_unknown_tag_and_repository(registry: Registry, store: ImageStore, work: Path) -> None:
    put_image(registry, "pull/known:v1", work)
    with pytest.raises(ManifestUnknown) as tag:
        pull(store, registry.ref("pull/known:nope"))
    assert str(tag.value) == (f"manifest for {registry.host}/pull/known:nope not found: "
                              f"manifest unknown: manifest unknown")
    with pytest.raises(ManifestUnknown) as repo:
        pull(store, registry.ref("pull/never-pushed"))
    assert f"{registry.host}/pull/never-pushed" in str(repo.value)


def test_a_refused_connection_is_a_transfer_error(store: ImageStore) -> None:
    from fixtures_registry import free_port

    from skiff.errors import TransferError

    with pytest.raises(TransferError, match="connection refused"):
        pull(store, f"127.0.0.1:{free_port()}/nothing:here")


# -- transfers that go wrong ---------------------------------------------------------------
def test_a_broken_transfer_resumes_with_range(registry: Registry, store: ImageStore,
                                               work: Path, cutting_proxy: CuttingProxy) -> None:
    made = put_image(registry, "pull/resume:v1", work,
                     layers=[{"one.bin": os.urandom(300 << 10)},
                             {"two.bin": os.urandom(300 << 10)}])
    for digest in made.image.layer_digests:
        cutting_proxy.cut[digest] = 100_000
        cutting_proxy.cut_times[digest] = 1
    seen: list[Progress] = []
    result = pull(store, f"{cutting_proxy.host}/pull/resume:v1", progress=seen.append)
    assert result.digest == made.digest
    assert sorted(cutting_proxy.ranges) == ["bytes=100000-", "bytes=100000-"]
    assert any(p.status.startswith("Retrying in ") for p in seen)


@pytest.mark.parametrize("which", [0, 1], ids=["streamed-layer", "parallel-layer"])
def test_a_transfer_cut_for_good_leaves_the_store_as_it_was(
        which: int, registry: Registry, store: ImageStore, work: Path,
        cutting_proxy: CuttingProxy) -> None:
    from skiff.errors import TransferError

    put_image(registry, "pull/before:v1", work)
    pull(store, registry.ref("pull/before:v1"))  # the store is not empty before
    before = snapshot(Path(store.root))
    made = put_image(registry, f"pull/cut-{which}:v1", work,
                     layers=[{"one.bin": os.urandom(300 << 10)},
                             {"two.bin": os.urandom(300 << 10)}])
    cutting_proxy.cut[made.image.layer_digests[which]] = 150_000
    with pytest.raises(TransferError):
        pull(store, f"{cutting_proxy.host}/pull/cut-{which}:v1")
    assert snapshot(Path(store.root)) == before


@pytest.mark.parametrize("which", [0, 1], ids=["streamed-layer", "parallel-layer"])
def test_a_blob_that_is_not_its_digest_is_refused(
        which: int, registry: Registry, store: ImageStore, work: Path,
        cutting_proxy: CuttingProxy) -> None:
    before = snapshot(Path(store.root))
    made = put_image(registry, f"pull/liar-{which}:v1", work,
                     layers=[{"one.bin": os.urandom(200 << 10)},
                             {"two.bin": os.urandom(200 << 10)}])
    digest = made.image.layer_digests[which]
    cutting_proxy.replace[digest] = os.urandom(made.image.layer_sizes[which])
    with pytest.raises(RegistryError, match=f"verification failed for digest {digest}"):
        pull(store, f"{cutting_proxy.host}/pull/liar-{which}:v1")
    assert snapshot(Path(store.root)) == before
    assert store.list() == []


def test_a_corrupt_blob_in_the_registry_is_refused(registry: Registry, store: ImageStore,
                                                    work: Path) -> None:
    made = put_image(registry, "pull/corrupt:v1", work)
    path = registry.blob_path(made.image.layer_digests[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="verification failed"):
        pull(store, registry.ref("pull/corrupt:v1"))
    assert store.list() == [] and list(store.blobs.digests()) == []


def test_redirects_chunked_bodies_and_server_errors(registry: Registry, store: ImageStore,
                                                     work: Path,
                                                     cutting_proxy: CuttingProxy) -> None:
    made = put_image(registry, "pull/detours:v1", work,
                     layers=[{"one.bin": os.urandom(200 << 10)}, {"two": b"2"}])
    cutting_proxy.redirect = True
    result = pull(store, f"{cutting_proxy.host}/pull/detours:v1")
    assert result.digest == made.digest
    assert cutting_proxy.redirected == 3  # the config and two layers, fetched from "storage"

    other = ImageStore(work / "other")
    cutting_proxy.redirect = False
    cutting_proxy.chunked = True
    for d in made.image.layer_digests:
        cutting_proxy.fail[d] = 2
    assert pull(other, f"{cutting_proxy.host}/pull/detours:v1").digest == made.digest
    assert all(cutting_proxy.fail[d] == 0 for d in made.image.layer_digests)


def test_zstd_layers(registry: Registry, store: ImageStore, work: Path) -> None:
    # skopeo compresses the uncompressed layer as OCI's +zstd on its way to the registry
    data = os.urandom(1 << 16)
    made = oci_layout(work / "plain", [{"z.bin": data}], compress=False)
    skopeo_copy(made.source(), f"docker://{registry.ref('pull/zstd:v1')}",
                extra=("--dest-compress-format", "zstd"))
    layers = json.loads(skopeo_inspect(registry.ref("pull/zstd:v1"), raw=True))["layers"]
    assert [layer["mediaType"] for layer in layers] == ["application/vnd.oci.image.layer.v1.tar+zstd"]
    image = pull(store, registry.ref("pull/zstd:v1")).image
    assert list(image.config.rootfs.diff_ids) == made.image.diff_ids
    top = Path(store.layers.diff_dir(image.chain_ids[-1]))
    assert (top / "z.bin").read_bytes() == data
