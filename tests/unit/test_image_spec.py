"""Image manifests, indexes and configs in and out, in the shapes registries really serve.

The documents are written out literally, as Docker Hub and ghcr.io serve them (Docker v2
schema 2 manifest and manifest list, OCI manifest and index, a Docker image config with its
PascalCase keys and history). Malformed documents must be refused with a `SpecError` naming
the field; chain IDs are checked against hashlib computed here, by the spec's formula.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from skiff.errors import SpecError
from skiff.oci.image_spec import (DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
                                  DOCKER_MANIFEST_LIST, FOREIGN_LAYER_TYPES, LAYER_COMPRESSION,
                                  OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, ImageConfig,
                                  Index, Manifest, Platform, PlatformNotFound, chain_ids,
                                  parse_config, parse_manifest, platform_from_text,
                                  select_platform, to_json)

DOCKER_V2 = b"""{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1472,
      "digest": "sha256:9c7a54a9a43cca047013b82af109fe963fde787f63f9e016fdc3384500c2823d"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 3397879,
         "digest": "sha256:4abcf20661432fb2d719aaf90656f55c287f8ca915dc1c92ec14ff61e67fbaf8"
      },
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 1260,
         "digest": "sha256:c6a83fedfae6ed8a4f5f7cbb6a7b6f1c1ec3d86fea8cb9e5ba2e5e6673d3c4a2"
      }
   ]
}"""

OCI_MANIFEST_DOC = b"""{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
    "size": 7023
  },
  "layers": [
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
      "digest": "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0",
      "size": 32654
    },
    {
      "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
      "digest": "sha256:3c3a4604a545cdc127456d94e421cd355bca5b528f4a9c1905b15da2eb4a4c6b",
      "size": 16724
    },
    {
      "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      "digest": "sha256:ec4b8955958665577945c89419d1af06b5f7636b4ac3da7f12184802ad867736",
      "size": 73109,
      "urls": ["https://mcr.microsoft.com/v2/windows/servercore/blobs/sha256:ec4b8955958665577945c89419d1af06b5f7636b4ac3da7f12184802ad867736"]
    }
  ],
  "subject": {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
    "size": 7682
  },
  "annotations": {
    "com.example.key1": "value1",
    "org.opencontainers.image.created": "2024-01-31T12:00:00Z"
  }
}"""

OCI_INDEX_DOC = b"""{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f",
      "size": 7143,
      "platform": {"architecture": "ppc64le", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270",
      "size": 7682,
      "platform": {"architecture": "amd64", "os": "linux"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:3fa9e5b1f3b7f8f0ee4a4e4b1c04e1d1d3d5c1f1b2a3e4d5c6b7a8f9e0d1c2b3",
      "size": 1024,
      "platform": {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5329",
                   "os.features": ["win32k"]},
      "annotations": {"org.opencontainers.image.ref.name": "ltsc2019"}
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:1f8bd6ad4d0d5fc5e5a5e6a1f9f0b7a8c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6",
      "size": 566,
      "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                      "vnd.docker.reference.digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"},
      "platform": {"architecture": "unknown", "os": "unknown"}
    }
  ],
  "annotations": {"com.example.key1": "value1"}
}"""

DOCKER_LIST = b"""{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
   "manifests": [
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 528,
         "digest": "sha256:1304f174557314a7ed9eddb4eab12fed12cb0cd9809e4c28f29af86979a3c870",
         "platform": {"architecture": "amd64", "os": "linux"}
      },
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 528,
         "digest": "sha256:b7a7ec4f8c5d2fd1bc4ab2e0e02ba4c2f3f1f0e3b2a1c0d9e8f7a6b5c4d3e2f1",
         "platform": {"architecture": "arm", "os": "linux", "variant": "v6"}
      },
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 528,
         "digest": "sha256:a4d3e2f1b7a7ec4f8c5d2fd1bc4ab2e0e02ba4c2f3f1f0e3b2a1c0d9e8f7a6b5",
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}
      },
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 528,
         "digest": "sha256:c4ab2e0e02ba4c2f3f1f0e3b2a1c0d9e8f7a6b5a4d3e2f1b7a7ec4f8c5d2fd1b",
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}
      },
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 528,
         "digest": "sha256:0e02ba4c2f3f1f0e3b2a1c0d9e8f7a6b5a4d3e2f1b7a7ec4f8c5d2fd1bc4ab2e",
         "platform": {"architecture": "s390x", "os": "linux"}
      }
   ]
}"""

DOCKER_IMAGE_CONFIG = b"""{
  "architecture": "amd64",
  "config": {
    "Hostname": "",
    "User": "nginx",
    "ExposedPorts": {"80/tcp": {}},
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "NGINX_VERSION=1.25.3"],
    "Entrypoint": ["/docker-entrypoint.sh"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Volumes": {"/var/cache/nginx": {}},
    "WorkingDir": "/",
    "Labels": {"maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>"},
    "StopSignal": "SIGQUIT",
    "Healthcheck": {"Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
                    "Interval": 30000000000},
    "ArgsEscaped": true,
    "OnBuild": null
  },
  "container": "3b9a5a3d8e0f",
  "created": "2023-12-19T03:12:31.513286934Z",
  "docker_version": "20.10.23",
  "history": [
    {"created": "2023-12-19T01:20:28.398000000Z",
     "created_by": "/bin/sh -c #(nop) ADD file:8a7ea1d8fd5bd3ec1e4c7e7b0c8c3d0d8c7f9e3a in / "},
    {"created": "2023-12-19T01:20:28.767000000Z",
     "created_by": "/bin/sh -c #(nop)  CMD [\\"bash\\"]", "empty_layer": true},
    {"created": "2023-12-19T03:12:31.513286934Z",
     "created_by": "RUN /bin/sh -c set -x && apt-get update # buildkit",
     "comment": "buildkit.dockerfile.v0", "author": "NGINX Docker Maintainers"}
  ],
  "os": "linux",
  "rootfs": {
    "type": "layers",
    "diff_ids": [
      "sha256:7292cf786aa89399bca4e2edb4e5fac8a4a7bb28ea5e2a2a8d5e1e0f2b0c0d37",
      "sha256:a5c3ec3e9e8d0e21b3bb5cd1e6d9e0b1b3a4f8c2a7d6e5f4c3b2a1f0e9d8c7b6"
    ]
  }
}"""


def _doc(raw: bytes) -> Any:
    return json.loads(raw)


def _bytes(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _fails(raw: bytes, media_type: str | None = None) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_manifest(raw, media_type)
    return caught.value


# --- manifests ---------------------------------------------------------------------------

def test_docker_v2_manifest() -> None:
    m = parse_manifest(DOCKER_V2, DOCKER_MANIFEST)
    assert isinstance(m, Manifest)
    assert m.schema_version == 2 and m.media_type == DOCKER_MANIFEST
    assert m.config.media_type == DOCKER_CONFIG and m.config.size == 1472
    assert [layer.size for layer in m.layers] == [3397879, 1260]
    assert all(LAYER_COMPRESSION[layer.media_type] == "gzip" for layer in m.layers)
    assert m.layers[0].digest.startswith("sha256:4abcf206")
    assert m.subject is None and m.annotations is None


def test_docker_v2_manifest_decided_by_its_own_media_type() -> None:
    assert isinstance(parse_manifest(DOCKER_V2, None), Manifest)
    assert isinstance(parse_manifest(DOCKER_V2, "application/json"), Manifest)


def test_oci_manifest() -> None:
    m = parse_manifest(OCI_MANIFEST_DOC, f"{OCI_MANIFEST}; charset=utf-8")
    assert isinstance(m, Manifest)
    assert m.layers[0].media_type == OCI_LAYER_GZIP
    assert LAYER_COMPRESSION[m.layers[1].media_type] == "zstd"
    foreign = m.layers[2]
    assert foreign.media_type in FOREIGN_LAYER_TYPES
    assert foreign.urls is not None and foreign.urls[0].startswith("https://mcr.microsoft.com/")
    assert m.subject is not None and m.subject.size == 7682
    assert m.annotations == {"com.example.key1": "value1",
                             "org.opencontainers.image.created": "2024-01-31T12:00:00Z"}


def test_oci_manifest_without_media_type_is_told_by_its_layers() -> None:
    doc = _doc(OCI_MANIFEST_DOC)
    del doc["mediaType"]
    m = parse_manifest(_bytes(doc), None)
    assert isinstance(m, Manifest) and m.media_type is None and len(m.layers) == 3


def test_oci_index() -> None:
    idx = parse_manifest(OCI_INDEX_DOC, OCI_INDEX)
    assert isinstance(idx, Index)
    assert idx.media_type == OCI_INDEX and len(idx.manifests) == 4
    windows = idx.manifests[2].platform
    assert windows == Platform(architecture="amd64", os="windows",
                               os_version="10.0.17763.5329", os_features=("win32k",))
    assert idx.annotations == {"com.example.key1": "value1"}


def test_oci_index_without_media_type_is_told_by_its_manifests() -> None:
    doc = _doc(OCI_INDEX_DOC)
    del doc["mediaType"]
    assert isinstance(parse_manifest(_bytes(doc), None), Index)


def test_docker_manifest_list() -> None:
    idx = parse_manifest(DOCKER_LIST, None)
    assert isinstance(idx, Index) and idx.media_type == DOCKER_MANIFEST_LIST
    assert [str(d.platform) for d in idx.manifests] == [
        "linux/amd64", "linux/arm/v6", "linux/arm/v7", "linux/arm64/v8", "linux/s390x"]
    assert all(d.media_type == DOCKER_MANIFEST for d in idx.manifests)


@pytest.mark.parametrize("raw, media_type", [
    (DOCKER_V2, DOCKER_MANIFEST), (OCI_MANIFEST_DOC, OCI_MANIFEST),
    (OCI_INDEX_DOC, OCI_INDEX), (DOCKER_LIST, DOCKER_MANIFEST_LIST)])
def test_round_trip(raw: bytes, media_type: str) -> None:
    first = parse_manifest(raw, media_type)
    out = to_json(first)
    assert isinstance(out, bytes) and b"\n" not in out
    assert parse_manifest(out, media_type) == first
    assert json.loads(out) == json.loads(raw)  # nothing lost, nothing invented


# --- manifest errors ---------------------------------------------------------------------

def test_missing_layer_digest_is_named() -> None:
    doc = _doc(DOCKER_V2)
    del doc["layers"][1]["digest"]
    err = _fails(_bytes(doc))
    assert err.field == "layers[1].digest"
    assert str(err) == "layers[1].digest: is required"


def test_malformed_digest_is_named() -> None:
    doc = _doc(DOCKER_V2)
    doc["config"]["digest"] = "sha256:1234"
    err = _fails(_bytes(doc))
    assert err.field == "config.digest" and "64 lowercase hex" in err.problem


def test_negative_size_is_named() -> None:
    doc = _doc(OCI_INDEX_DOC)
    doc["manifests"][0]["size"] = -1
    assert _fails(_bytes(doc)).field == "manifests[0].size"


def test_wrong_type_is_named() -> None:
    doc = _doc(OCI_INDEX_DOC)
    doc["manifests"][1]["platform"]["architecture"] = 64
    err = _fails(_bytes(doc))
    assert err.field == "manifests[1].platform.architecture" and "expected a string" in err.problem


def test_docker_schema1_is_refused() -> None:
    schema1 = _bytes({"schemaVersion": 1, "name": "library/busybox", "tag": "latest",
                      "architecture": "amd64", "fsLayers": [], "history": [], "signatures": []})
    err = _fails(schema1)
    assert err.field == "schemaVersion"
    assert "Docker schema 1 manifests are not supported" in str(err)
    served = _fails(schema1, "application/vnd.docker.distribution.manifest.v1+prettyjws")
    assert "schema 1" in str(served)


def test_other_schema_versions_are_refused() -> None:
    doc = _doc(OCI_MANIFEST_DOC)
    doc["schemaVersion"] = 3
    err = _fails(_bytes(doc))
    assert err.field == "schemaVersion" and "must be 2" in err.problem
    del doc["schemaVersion"]
    assert str(_fails(_bytes(doc))) == "schemaVersion: is required"


def test_served_type_and_own_type_must_agree() -> None:
    err = _fails(DOCKER_V2, OCI_MANIFEST)
    assert err.field == "mediaType" and "served as" in err.problem


def test_unknown_media_types_are_refused() -> None:
    assert _fails(DOCKER_V2, DOCKER_LAYER_GZIP).field == "mediaType"
    doc = _doc(DOCKER_V2)
    doc["mediaType"] = "application/vnd.example.thing+json"
    assert _fails(_bytes(doc)).field == "mediaType"


def test_a_document_that_is_both_is_refused() -> None:
    doc = _doc(OCI_MANIFEST_DOC)
    doc["manifests"] = []
    assert _fails(_bytes(doc)).field == "manifests"
    doc = _doc(OCI_INDEX_DOC)
    doc["layers"] = []
    assert _fails(_bytes(doc), OCI_INDEX).field == "layers"


def test_shapeless_and_broken_documents() -> None:
    assert _fails(b'{"schemaVersion": 2}').field == "mediaType"
    assert "not valid JSON" in str(_fails(b'{"schemaVersion": 2,'))
    assert "JSON object" in str(_fails(b"[]"))


# --- image config ------------------------------------------------------------------------

def test_docker_image_config() -> None:
    c = parse_config(DOCKER_IMAGE_CONFIG)
    assert isinstance(c, ImageConfig)
    assert (c.architecture, c.os, c.variant) == ("amd64", "linux", None)
    assert c.created == "2023-12-19T03:12:31.513286934Z"
    cc = c.config
    assert cc is not None
    assert cc.user == "nginx" and cc.working_dir == "/" and cc.stop_signal == "SIGQUIT"
    assert cc.exposed_ports == {"80/tcp": {}} and cc.volumes == {"/var/cache/nginx": {}}
    assert cc.env is not None and cc.env[1] == "NGINX_VERSION=1.25.3"
    assert cc.entrypoint == ("/docker-entrypoint.sh",)
    assert cc.cmd == ("nginx", "-g", "daemon off;")
    assert cc.labels == {"maintainer": "NGINX Docker Maintainers <docker-maint@nginx.com>"}
    assert cc.healthcheck["Test"][0] == "CMD-SHELL"
    assert c.rootfs.type == "layers" and len(c.rootfs.diff_ids) == 2
    assert c.history is not None and len(c.history) == 3
    assert c.history[1].empty_layer is True and c.history[0].empty_layer is None
    assert c.history[2].comment == "buildkit.dockerfile.v0"
    assert c.history[2].author == "NGINX Docker Maintainers"
    assert c.history[1].created_by == '/bin/sh -c #(nop)  CMD ["bash"]'


def test_image_config_round_trip() -> None:
    c = parse_config(DOCKER_IMAGE_CONFIG)
    out = json.loads(to_json(c))
    assert parse_config(to_json(c)) == c
    assert out["config"]["WorkingDir"] == "/" and out["rootfs"]["diff_ids"] == list(c.rootfs.diff_ids)
    assert out["history"][1] == {"created": "2023-12-19T01:20:28.767000000Z",
                                 "created_by": '/bin/sh -c #(nop)  CMD ["bash"]',
                                 "empty_layer": True}


def test_minimal_config_from_scratch() -> None:
    c = parse_config(b'{"architecture": "arm64", "variant": "v8", "os": "linux", "config": null,'
                     b' "rootfs": {"type": "layers", "diff_ids": []}}')
    assert c.config is None and c.history is None and c.rootfs.diff_ids == ()


def test_config_errors_are_named() -> None:
    doc = _doc(DOCKER_IMAGE_CONFIG)
    doc["rootfs"]["type"] = "tarball"
    with pytest.raises(SpecError) as caught:
        parse_config(_bytes(doc))
    assert caught.value.field == "rootfs.type" and "layers" in caught.value.problem
    doc["rootfs"] = {"type": "layers", "diff_ids": ["sha256:7292", ]}
    with pytest.raises(SpecError, match=r"^rootfs\.diff_ids\[0\]: "):
        parse_config(_bytes(doc))
    doc = _doc(DOCKER_IMAGE_CONFIG)
    doc["config"]["Env"] = "PATH=/bin"
    with pytest.raises(SpecError, match=r"^config\.Env: expected a list"):
        parse_config(_bytes(doc))
    del doc["os"]
    with pytest.raises(SpecError, match=r"^os: is required$"):
        parse_config(_bytes(doc))


# --- platforms ---------------------------------------------------------------------------

def _list() -> Index:
    idx = parse_manifest(DOCKER_LIST, DOCKER_MANIFEST_LIST)
    assert isinstance(idx, Index)
    return idx


def _oci_index() -> Index:
    idx = parse_manifest(OCI_INDEX_DOC, OCI_INDEX)
    assert isinstance(idx, Index)
    return idx


def test_select_default_is_linux_amd64() -> None:
    assert str(select_platform(_list()).platform) == "linux/amd64"
    assert select_platform(_oci_index()).digest.startswith("sha256:5b0bcabd")


@pytest.mark.parametrize("os, arch, variant, chosen", [
    ("linux", "arm64", None, "linux/arm64/v8"),
    ("linux", "arm64", "v8", "linux/arm64/v8"),
    ("linux", "aarch64", "8", "linux/arm64/v8"),
    ("linux", "arm", None, "linux/arm/v7"),
    ("linux", "arm", "v7", "linux/arm/v7"),
    ("linux", "arm", "v6", "linux/arm/v6"),
    ("linux", "x86_64", None, "linux/amd64"),
    ("linux", "amd64", "v3", "linux/amd64"),  # amd64 ignores the variant
    ("Linux", "s390x", None, "linux/s390x"),
])
def test_select_platform(os: str, arch: str, variant: str | None, chosen: str) -> None:
    assert str(select_platform(_list(), os, arch, variant).platform) == chosen


def test_arm64_without_variant_in_the_index_is_v8() -> None:
    idx = Index(schema_version=2, manifests=(
        Descriptor(DOCKER_MANIFEST, "sha256:" + "a" * 64, 528, platform=Platform("arm64", "linux")),))
    assert select_platform(idx, "linux", "arm64", "v8") is idx.manifests[0]
    assert select_platform(idx, "linux", "arm64") is idx.manifests[0]


def test_older_arm_variants_run_on_newer_cpus() -> None:
    idx = Index(schema_version=2, manifests=(
        Descriptor(DOCKER_MANIFEST, "sha256:" + "b" * 64, 528,
                   platform=Platform("arm", "linux", variant="v6")),))
    assert select_platform(idx, "linux", "arm", "v7") is idx.manifests[0]
    with pytest.raises(PlatformNotFound):
        select_platform(idx, "linux", "arm", "v5")


def test_windows_is_chosen_only_when_asked() -> None:
    chosen = select_platform(_oci_index(), "windows", "amd64")
    assert chosen.platform is not None and chosen.platform.os_version == "10.0.17763.5329"


def test_no_match_lists_what_the_index_offers() -> None:
    with pytest.raises(PlatformNotFound) as caught:
        select_platform(_list(), "linux", "riscv64")
    err = caught.value
    assert isinstance(err, SpecError) and err.field == "manifests"
    assert str(err) == ("manifests: no image for linux/riscv64; the index offers linux/amd64, "
                        "linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/s390x")
    with pytest.raises(PlatformNotFound, match="no image for linux/arm64/v9"):
        select_platform(_list(), "linux", "arm64", "v9")
    with pytest.raises(PlatformNotFound, match="offers no platforms"):
        select_platform(Index(schema_version=2, manifests=()))


def test_attestations_are_not_images() -> None:
    with pytest.raises(PlatformNotFound, match="unknown/unknown"):
        select_platform(_oci_index(), "linux", "arm64")


def test_an_entry_without_platform_is_the_last_resort() -> None:
    bare = Descriptor(OCI_MANIFEST, "sha256:" + "c" * 64, 100)
    s390x = Descriptor(OCI_MANIFEST, "sha256:" + "d" * 64, 100, platform=Platform("s390x", "linux"))
    idx = Index(schema_version=2, manifests=(bare, s390x))
    assert select_platform(idx, "linux", "s390x") is s390x
    assert select_platform(idx) is bare


@pytest.mark.parametrize("text, platform", [
    ("linux/arm64/v8", Platform("arm64", "linux", variant="v8")),
    ("linux/amd64", Platform("amd64", "linux")),
    ("linux/x86_64", Platform("amd64", "linux")),
    ("linux/aarch64", Platform("arm64", "linux")),
    ("linux/arm/7", Platform("arm", "linux", variant="v7")),
    ("Windows/AMD64", Platform("amd64", "windows")),
])
def test_platform_from_text(text: str, platform: Platform) -> None:
    assert platform_from_text(text) == platform


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "linux/arm64/v8/extra", ""])
def test_platform_from_text_refuses(text: str) -> None:
    with pytest.raises(SpecError, match=r"is not os/arch\[/variant\]") as caught:
        platform_from_text(text)
    assert caught.value.field == "platform"


# --- chain IDs ---------------------------------------------------------------------------

def test_chain_ids() -> None:
    diff_ids = [f"sha256:{hashlib.sha256(name).hexdigest()}" for name in (b"base", b"app", b"cfg")]
    c1 = "sha256:" + hashlib.sha256(f"{diff_ids[0]} {diff_ids[1]}".encode()).hexdigest()
    c2 = "sha256:" + hashlib.sha256(f"{c1} {diff_ids[2]}".encode()).hexdigest()
    assert chain_ids(diff_ids) == [diff_ids[0], c1, c2]
    assert chain_ids(diff_ids[:1]) == diff_ids[:1]
    assert chain_ids([]) == []


def test_chain_ids_of_a_real_config() -> None:
    c = parse_config(DOCKER_IMAGE_CONFIG)
    first, second = c.rootfs.diff_ids
    expected = "sha256:" + hashlib.sha256(f"{first} {second}".encode()).hexdigest()
    assert chain_ids(c.rootfs.diff_ids) == [first, expected]
