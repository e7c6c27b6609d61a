"""`pull` against a fake registry client: the order of Docker's progress statuses, the
platform chosen from an index, digests checked, what is stored skipped, and `BlobStream`
resuming a broken transfer with Range (or skipping what a registry without Range support
sends again). Root: the store unpacks layers with their owners."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import pytest
from conftest import digest, tar_of

from skiff.errors import ManifestUnknown, RegistryError, TransferError
from skiff.oci.image_spec import (
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)
from skiff.registry import pull as pull_module
from skiff.registry import transport
from skiff.registry.download import BlobStream
from skiff.registry.progress import Progress
from skiff.registry.pull import host_platform, pull
from skiff.store.images import ImageStore

pytestmark = pytest.mark.root


class FakeResponse:
    def __init__(self, data: bytes, status: int = 200, headers: dict[str, str] | None = None,
                 break_after: int | None = None) -> None:
        self.data = data
        self.status = status
        self.headers = headers or {}
        self.break_after = break_after
        self.pos = 0

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def read(self, n: int = 1 << 20) -> bytes:
        if self.break_after is not None and self.pos >= self.break_after:
            raise TransferError("connection reset by peer")
        end = self.pos + n
        if self.break_after is not None:
            end = min(end, self.break_after)
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return chunk

    def close(self) -> None:
        pass


class FakeRegistry:
    """Manifests by reference and blobs by digest; `breaks[digest]` makes the first GET
    of that blob break after so many bytes; `ranges` False ignores Range (answers 200)."""

    def __init__(self) -> None:
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.breaks: dict[str, int] = {}
        self.ranges = True
        self.gets: list[tuple[str, int]] = []

    def client(self, domain: str, auth: Any = None, options: Any = None) -> FakeClient:
        return FakeClient(self, domain)


class FakeClient:
    def __init__(self, registry: FakeRegistry, domain: str) -> None:
        self.registry = registry
        self.domain = domain

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def ping(self) -> None:
        pass

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        if reference not in self.registry.manifests:
            raise ManifestUnknown("manifest unknown: manifest unknown", 404, "MANIFEST_UNKNOWN")
        data, media_type = self.registry.manifests[reference]
        return data, media_type, digest(data)

    def get_blob(self, repo: str, d: str, offset: int = 0) -> FakeResponse:
        self.registry.gets.append((d, offset))
        data = self.registry.blobs[d]
        cut = self.registry.breaks.pop(d, None)
        if offset and self.registry.ranges:
            return FakeResponse(data[offset:], 206, {"Content-Range": f"bytes {offset}-"},
                                break_after=cut)
        return FakeResponse(data, break_after=cut)


class Image:
    def __init__(self, registry: FakeRegistry, layers: list[dict[str, bytes]],
                 arch: str = "amd64", tag: str | None = "v1") -> None:
        self.layer_digests = []
        descs, diff_ids = [], []
        for files in layers:
            tar = tar_of(files)
            blob = gzip.compress(tar, mtime=0)
            registry.blobs[digest(blob)] = blob
            self.layer_digests.append(digest(blob))
            descs.append({"mediaType": OCI_LAYER_GZIP, "digest": digest(blob),
                          "size": len(blob)})
            diff_ids.append(digest(tar))
        self.config = json.dumps({"architecture": arch, "os": "linux",
                                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        registry.blobs[digest(self.config)] = self.config
        self.manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                    "config": {"mediaType": OCI_CONFIG,
                                               "digest": digest(self.config),
                                               "size": len(self.config)},
                                    "layers": descs}).encode()
        self.digest = digest(self.manifest)
        registry.manifests[self.digest] = (self.manifest, OCI_MANIFEST)
        if tag:
            registry.manifests[tag] = (self.manifest, OCI_MANIFEST)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    reg = FakeRegistry()
    monkeypatch.setattr(pull_module, "RegistryClient", reg.client)
    monkeypatch.setattr(transport, "RETRY_DELAYS", (0.0, 0.0))
    return reg


@pytest.fixture
def store(tmp_path: Any) -> ImageStore:
    return ImageStore(tmp_path / "store")


def by_layer(seen: list[Progress]) -> dict[str | None, list[str]]:
    out: dict[str | None, list[str]] = {}
    for p in seen:
        statuses = out.setdefault(p.id, [])
        if not statuses or statuses[-1] != p.status:  # byte counts repeat their status
            statuses.append(p.status)
    return out


def test_progress_follows_dockers_statuses(registry: FakeRegistry, store: ImageStore) -> None:
    image = Image(registry, [{"a": b"a" * 5000}, {"b": b"b" * 5000}])
    seen: list[Progress] = []
    result = pull(store, "reg.example/app:v1", progress=seen.append)
    assert result.fresh and result.reference == "reg.example/app:v1"
    first, second = (d[7:19] for d in image.layer_digests)
    expected = ["Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete",
                "Extracting", "Pull complete"]
    assert by_layer(seen) == {first: expected, second: expected}
    assert seen[0].status == seen[1].status == "Pulling fs layer"
    downloads = [p for p in seen if p.status == "Downloading" and p.id == second]
    assert downloads[-1].current == downloads[-1].total == len(registry.blobs[image.layer_digests[1]])

    seen.clear()
    again = pull(store, "reg.example/app:v1", progress=seen.append)
    assert not again.fresh and seen == []

    Image(registry, [{"a": b"a" * 5000}, {"c": b"c"}], tag="v2")
    pull(store, "reg.example/app:v2", progress=seen.append)
    assert by_layer(seen)[first] == ["Already exists"]


def test_index_platform_choice(registry: FakeRegistry, store: ImageStore,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    amd = Image(registry, [{"amd": b"1"}], "amd64", tag=None)
    arm = Image(registry, [{"arm": b"2"}], "arm64", tag=None)
    index = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd.digest, "size": len(amd.manifest),
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": arm.digest, "size": len(arm.manifest),
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}).encode()
    registry.manifests["multi"] = (index, DOCKER_MANIFEST_LIST)
    got = pull(store, "reg.example/app:multi", platform="linux/aarch64")
    assert got.digest == digest(index) and got.image.manifest_digest == arm.digest
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert str(host_platform()) == "linux/amd64"
    got = pull(store, "reg.example/app:multi")
    assert got.image.manifest_digest == amd.digest
    monkeypatch.setattr("platform.machine", lambda: "armv7l")
    assert str(host_platform()) == "linux/arm/v7"
    with pytest.raises(ManifestUnknown, match="no matching manifest for linux/arm/v7"):
        pull(store, "reg.example/app:multi")


def test_a_manifest_that_is_not_its_digest_is_refused(registry: FakeRegistry,
                                                      store: ImageStore) -> None:
    image = Image(registry, [{"a": b"1"}])
    registry.manifests[image.digest] = (image.manifest.replace(b'"layers"', b' "layers"'),
                                        OCI_MANIFEST)
    with pytest.raises(RegistryError, match=f"manifest verification failed for digest "
                                            f"{image.digest}"):
        pull(store, f"reg.example/app@{image.digest}")
    assert store.list() == []


def test_unknown_tag_in_dockers_words(registry: FakeRegistry, store: ImageStore) -> None:
    with pytest.raises(ManifestUnknown) as e:
        pull(store, "reg.example/app")
    assert str(e.value) == ("manifest for reg.example/app:latest not found: manifest "
                            "unknown: manifest unknown")


def test_a_broken_layer_download_resumes(registry: FakeRegistry, store: ImageStore) -> None:
    image = Image(registry, [{"a": os.urandom(20000)}, {"b": os.urandom(30000)}])
    for d in image.layer_digests:
        registry.breaks[d] = 1000
    seen: list[Progress] = []
    pull(store, "reg.example/app:v1", progress=seen.append)
    assert sorted(g for g in registry.gets if g[1]) == sorted((d, 1000)
                                                             for d in image.layer_digests)
    assert sum(p.status == "Retrying in 1 second" for p in seen) == 2


def test_blob_stream_without_range_support_skips_what_it_had(registry: FakeRegistry) -> None:
    data = bytes(range(256)) * 100
    registry.blobs["sha256:" + "a" * 64] = data
    registry.breaks["sha256:" + "a" * 64] = 3000
    registry.ranges = False
    stream = BlobStream(registry.client("r"), "app", "sha256:" + "a" * 64,  # type: ignore[arg-type]
                        len(data))
    got = b"".join(iter(lambda: stream.read(1024), b""))
    assert got == data
    assert registry.gets == [("sha256:" + "a" * 64, 0), ("sha256:" + "a" * 64, 3000)]


def test_blob_stream_gives_up_after_the_retries(registry: FakeRegistry) -> None:
    d = "sha256:" + "b" * 64
    registry.blobs[d] = b"x" * 100

    class AlwaysBreaking(FakeClient):
        def get_blob(self, repo: str, d: str, offset: int = 0) -> FakeResponse:
            self.registry.gets.append((d, offset))
            return FakeResponse(self.registry.blobs[d][offset:], 206,
                                {"Content-Range": f"bytes {offset}-"}, break_after=10)

    stream = BlobStream(AlwaysBreaking(registry, "r"), "app", d, 200)  # type: ignore[arg-type]
    with pytest.raises(TransferError):
        while stream.read(50):
            pass
    assert len(registry.gets) == len(transport.RETRY_DELAYS) + 1
