"""Image archives checked against a tool skiff did not write: skopeo.

skopeo copies OCI layouts made here by hand into a docker-archive, an oci-archive and an
OCI layout directory, and skiff loads each with the image ID (config digest) and diff IDs
the layout has; an archive ``skiff save`` writes is read by ``skopeo inspect`` both as a
docker-archive and as an oci-archive, with the same config digest and layer diff IDs; an
OCI directory skiff writes keeps the stored manifest's digest for skopeo; and an image
goes skiff → skopeo → skiff unchanged. Root: the store unpacks layers with their owners.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fixtures_registry import oci_layout, skopeo_copy

from skiff.store.archive import load, load_oci_dir, save, save_oci_dir
from skiff.store.builtin import ensure_busybox
from skiff.store.images import ImageStore
from skiff.store.oci_layout import host_platform

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.path.exists("/usr/bin/skopeo"), reason="no skopeo")]


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


def skopeo_inspect(ref: str, *flags: str) -> Any:
    p = subprocess.run(["skopeo", "inspect", *flags, ref], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return json.loads(p.stdout)


def load_file(store: ImageStore, path: Path) -> list[str]:
    with open(path, "rb") as f:
        return load(store, f)


LAYERS = [{"etc/hostname": b"skopeo\n"}, {"app/data.bin": os.urandom(3000)}]


def test_skopeo_docker_archives_load_with_the_same_image(store: ImageStore, tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "layout", LAYERS)
    archive = tmp_path / "docker.tar"
    skopeo_copy(layout.source(), f"docker-archive:{archive}:example.com/team/app:v1")
    assert load_file(store, archive) == ["Loaded image: example.com/team/app:v1"]
    image = store.get("example.com/team/app:v1")
    assert image.id == layout.image.config_digest
    assert list(image.config.rootfs.diff_ids) == layout.image.diff_ids


def test_skopeo_oci_archives_and_dirs_load_with_the_same_image(store: ImageStore,
                                                               tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "layout", LAYERS, compress=False)
    archive = tmp_path / "oci.tar"
    skopeo_copy(layout.source(), f"oci-archive:{archive}:app:v2")
    assert load_file(store, archive) == ["Loaded image: app:v2"]
    image = store.get("app:v2")
    assert image.id == layout.image.config_digest
    assert list(image.config.rootfs.diff_ids) == layout.image.diff_ids
    # skopeo gzips uncompressed layers for an OCI destination: a new manifest, same image
    assert [d.media_type for d in image.manifest.layers] == \
        ["application/vnd.oci.image.layer.v1.tar+gzip"] * 2
    # an OCI layout directory, found by its ref name, as `oci:DIR:REF` names it
    directory = tmp_path / "oci-dir"
    skopeo_copy(layout.source(), f"oci:{directory}:other/app:v3")
    other = ImageStore(tmp_path / "other")
    assert load_oci_dir(other, directory, ref="other/app:v3") == ["Loaded image: other/app:v3"]
    assert other.get("other/app:v3").id == layout.image.config_digest


def test_a_multi_platform_oci_archive_loads_the_hosts_image(store: ImageStore,
                                                            tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "layout", LAYERS[:1],
                        platforms=("linux/amd64", "linux/arm64", "linux/s390x"))
    archive = tmp_path / "multi.tar"
    skopeo_copy(layout.source(), f"oci-archive:{archive}:multi:1", all=True)
    assert load_file(store, archive) == ["Loaded image: multi:1"]
    host = host_platform()
    [wanted] = [i for i in layout.images if i.platform == f"linux/{host.architecture}"]
    assert store.get("multi:1").id == wanted.config_digest


def test_skiff_archives_read_in_skopeo_as_both_formats(store: ImageStore, tmp_path: Path) -> None:
    if not os.path.exists("/bin/busybox"):
        pytest.skip("no busybox-static")
    busybox = ensure_busybox(store)
    layout = oci_layout(tmp_path / "layout", LAYERS)
    skopeo_copy(layout.source(), f"docker-archive:{tmp_path / 'in.tar'}:app:v1")
    load_file(store, tmp_path / "in.tar")
    app = store.get("app:v1")
    archive = tmp_path / "saved.tar"
    with open(archive, "wb") as f:
        save(store, ["busybox:latest", "app:v1"], f)
    for image, name in ((busybox, "busybox:latest"), (app, "app:v1")):
        want_layers = list(image.config.rootfs.diff_ids)
        raw = skopeo_inspect(f"docker-archive:{archive}:{name}", "--raw")
        assert raw["config"]["digest"] == image.id
        assert skopeo_inspect(f"docker-archive:{archive}:{name}")["Layers"] == want_layers
        # docker save's index names each manifest by the tag alone (ref.name "latest", "v1")
        ref_name = name.rpartition(":")[2]
        raw = skopeo_inspect(f"oci-archive:{archive}:{ref_name}", "--raw")
        assert raw["config"]["digest"] == image.id
        assert [l["digest"] for l in raw["layers"]] == want_layers
        assert skopeo_inspect(f"oci-archive:{archive}:{ref_name}")["Layers"] == want_layers
    # and skopeo's copy of it into an OCI layout comes back to skiff with the same layers
    # (skopeo rewrites a Docker config as an OCI one on the way, so the ID is its own)
    skopeo_copy(f"docker-archive:{archive}:app:v1", f"oci:{tmp_path / 'back'}:back")
    again = ImageStore(tmp_path / "again")
    [line] = load_oci_dir(again, tmp_path / "back", ref="back")
    assert line.startswith("Loaded image ID: sha256:")  # a bare ref name: no repository
    back = again.get(line.rpartition(" ")[2])
    assert back.config.rootfs.diff_ids == app.config.rootfs.diff_ids
    assert back.config.config == app.config.config


def test_skiff_oci_dirs_keep_the_manifest_digest_for_skopeo(store: ImageStore,
                                                            tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "layout", LAYERS)
    skopeo_copy(layout.source(), f"oci-archive:{tmp_path / 'in.tar'}:app:v1")
    load_file(store, tmp_path / "in.tar")
    image = store.get("app:v1")
    save_oci_dir(store, ["app:v1"], tmp_path / "out")
    got = skopeo_inspect(f"oci:{tmp_path / 'out'}:v1")
    assert got["Digest"] == image.manifest_digest == layout.image.manifest_digest
    assert got["Layers"] == layout.image.layer_digests  # the gzip'd blobs, as stored
