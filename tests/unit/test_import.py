"""`import_rootfs` (``docker import``) on temporary stores: a rootfs tarball, plain or
gzip'd, from a file or a pipe, becomes one gzip'd OCI layer whose diff ID is the tar's
digest, with the config moby writes (platform, created, the message as comment and
history, ``--change`` applied); a bad change, platform, reference or tarball stores
nothing. Root: layers keep numeric owners."""

from __future__ import annotations

import gzip
import io
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from conftest import digest, tar_of

from skiff.errors import InvalidArgument, LayerError, ReferenceError_
from skiff.oci.image_spec import OCI_LAYER_GZIP
from skiff.store.images import ImageStore
from skiff.store.importer import import_rootfs
from skiff.store.oci_layout import host_platform

pytestmark = pytest.mark.root

ROOTFS = {"bin/hello": b"#!/bin/sh\necho hello\n", "etc/motd": b"imported\n"}


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


class Pipe(io.RawIOBase):
    """stdin: readable once, no seeking; `read_from` says whether anything was read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.read_from = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        self.read_from = True
        chunk = self._data.read(min(len(b), 65536))
        b[:len(chunk)] = chunk
        return len(chunk)


def config_of(store: ImageStore, image_id: str) -> dict[str, Any]:
    return json.loads(store.blobs.read_bytes(image_id))


def files_of(store: ImageStore) -> set[str]:
    root = Path(store.root)
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and p.name != "repositories.lock"} if root.exists() else set()


def test_a_tarball_becomes_one_gzip_layer(store: ImageStore) -> None:
    plain = tar_of(ROOTFS)
    before = time.time()
    image = import_rootfs(store, io.BytesIO(plain), ref="imported:1")
    assert store.get("imported:1").id == image.id
    assert image.config.rootfs.diff_ids == (digest(plain),)
    [layer] = image.manifest.layers
    assert layer.media_type == OCI_LAYER_GZIP
    blob = store.blobs.read_bytes(layer.digest)
    assert gzip.decompress(blob) == plain
    assert (Path(store.layers.diff_dir(image.chain_ids[0])) / "etc/motd").read_bytes() == b"imported\n"
    config = config_of(store, image.id)
    host = host_platform()
    assert (config["architecture"], config["os"]) == (host.architecture, "linux")
    assert config["comment"] == "Imported from -"
    assert config["history"] == [{"created": config["created"], "comment": "Imported from -"}]
    created = config["created"]
    assert created.endswith("Z")
    stamp = datetime.strptime(created[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    assert before - 1 <= stamp.timestamp() <= time.time() + 1
    assert "created_by" not in config["history"][0]


def test_gzip_pipes_messages_platforms_and_no_name(store: ImageStore) -> None:
    plain = tar_of(ROOTFS)
    pipe = Pipe(gzip.compress(plain))
    image = import_rootfs(store, pipe, message="from a pipe", platform="linux/arm64")  # type: ignore[arg-type]
    assert image.config.rootfs.diff_ids == (digest(plain),)  # of the uncompressed tar
    config = config_of(store, image.id)
    assert config["comment"] == config["history"][0]["comment"] == "from a pipe"
    assert config["architecture"] == "arm64"
    assert store.references(image.id) == []
    arm = import_rootfs(store, io.BytesIO(plain), platform="linux/arm/v7", source="http://x/r.tar")
    config = config_of(store, arm.id)
    assert (config["architecture"], config["variant"]) == ("arm", "v7")
    assert config["comment"] == "Imported from http://x/r.tar"
    # the same tarball twice: two images (created differs), one layer blob and one layer
    assert arm.id != image.id
    assert arm.manifest.layers[0].digest == image.manifest.layers[0].digest
    assert arm.chain_ids == image.chain_ids


def test_changes_build_the_container_config(store: ImageStore) -> None:
    image = import_rootfs(store, io.BytesIO(tar_of(ROOTFS)), ref="app:1", changes=[
        'CMD ["/bin/hello"]', "ENV GREETING=hi PATH=/bin", "WORKDIR /srv", "EXPOSE 8080",
        'ENTRYPOINT ["/bin/sh", "-c"]', "LABEL made=import", "USER nobody"])
    config = config_of(store, image.id)["config"]
    assert config == {"Cmd": ["/bin/hello"], "Env": ["GREETING=hi", "PATH=/bin"],
                      "WorkingDir": "/srv", "ExposedPorts": {"8080/tcp": {}},
                      "Entrypoint": ["/bin/sh", "-c"], "Labels": {"made": "import"},
                      "User": "nobody"}
    assert image.config.config is not None and image.config.config.cmd == ("/bin/hello",)
    # an ENTRYPOINT without a CMD leaves no Cmd at all (not a null one)
    bare = import_rootfs(store, io.BytesIO(tar_of(ROOTFS)), changes=["ENTRYPOINT top"])
    assert config_of(store, bare.id)["config"] == {"Entrypoint": ["/bin/sh", "-c", "top"]}


@pytest.mark.parametrize("kwargs, error, text", [
    ({"changes": ["RUN rm -rf /"]}, InvalidArgument, "run is not a valid change command"),
    ({"changes": ["CMD ok", "FOO"]}, InvalidArgument, "foo is not a valid change command"),
    ({"changes": ["ENV"]}, InvalidArgument, "ENV requires at least one argument"),
    ({"platform": "windows/amd64"}, InvalidArgument, "operating system is not supported"),
    ({"platform": "amd64"}, InvalidArgument, "invalid platform 'amd64'"),
    ({"ref": "app@sha256:" + "a" * 64}, InvalidArgument, "cannot import digest reference"),
    ({"ref": "Bad:Name"}, ReferenceError_, "invalid reference format"),
])
def test_bad_arguments_store_nothing_and_read_nothing(store: ImageStore, kwargs: dict[str, Any],
                                                      error: type[Exception], text: str) -> None:
    pipe = Pipe(tar_of(ROOTFS))
    with pytest.raises(error, match=text):
        import_rootfs(store, pipe, **kwargs)  # type: ignore[arg-type]
    assert not pipe.read_from
    assert files_of(store) == set()


@pytest.mark.parametrize("data, text", [
    (b"", "the input is empty"),
    (b"not a tar at all " * 64, "truncated or corrupt"),
    (gzip.compress(tar_of(ROOTFS))[:-40], "corrupt or truncated"),
])
def test_bad_tarballs_store_nothing(store: ImageStore, data: bytes, text: str) -> None:
    import_rootfs(store, io.BytesIO(tar_of({"keep": b"me"})), ref="kept:1")
    before = files_of(store)
    with pytest.raises(LayerError, match=text):
        import_rootfs(store, io.BytesIO(data), ref="broken:1")
    assert files_of(store) == before
    assert not store.exists("broken:1")


def test_hostile_tarballs_are_contained(store: ImageStore, tmp_path: Path) -> None:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../escaped")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    before = files_of(store)
    with pytest.raises(LayerError, match="`..`"):
        import_rootfs(store, io.BytesIO(buf.getvalue()), ref="evil:1")
    assert files_of(store) == before
    assert not list(tmp_path.rglob("escaped"))
