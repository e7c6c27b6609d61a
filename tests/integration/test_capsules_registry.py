"""Capsules pushed to and pulled from the tests' real docker-registry as OCI artifacts,
through skiffd and `skiff capsule push|pull`: the manifest's artifactType, media types and
annotations (version, requirements, labels) as the registry serves them, the pack's digest
kept, a pull into another daemon that gets the same capsule back (and its files unpacked
verified), what is not a capsule refused, and a pack whose bytes are not its digest
refused with nothing kept."""

from __future__ import annotations

import hashlib
import http.client
import json
import sys
import uuid
from pathlib import Path

import pytest

from fixtures_daemon import Skiffd, run_client

pytestmark = [pytest.mark.root, pytest.mark.registry]
SKIFF = str(Path(sys.executable).parent / "skiff")


def skiff(d: Skiffd, *args: str, check: bool = True):
    return run_client(d, [SKIFF, *args], check=check)


def registry_get(host: str, path: str, accept: str = "") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(host, timeout=10)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_push_and_pull_round_trip(skiffd_factory, registry, tmp_path):
    a, b = skiffd_factory(), skiffd_factory()
    (tmp_path / "lib.so").write_bytes(b"\x7fELF" + b"x" * 5000)
    repo = f"caps/libssl-{uuid.uuid4().hex[:6]}"
    skiff(a, "capsule", "create", "--name", "libcrypto", "--version", "1.1.1",
          "--path", str(tmp_path / "lib.so"))
    skiff(a, "capsule", "create", "--name", "libssl", "--version", "1.1.1",
          "--path", str(tmp_path / "lib.so"), "--requires", "libcrypto@^1.1",
          "--label", "origin=test")
    (local,) = json.loads(skiff(a, "capsule", "inspect", "libssl:1.1.1").stdout)
    remote = f"{registry.host}/{repo}:1.1.1"
    out = skiff(a, "capsule", "push", remote, "-c", "libssl:1.1.1").stdout
    assert out.startswith(f"libssl:1.1.1 -> {remote}: digest: sha256:")

    status, headers, body = registry_get(registry.host, f"/v2/{repo}/manifests/1.1.1",
                                         "application/vnd.oci.image.manifest.v1+json")
    assert status == 200, body
    manifest = json.loads(body)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["artifactType"] == "application/vnd.skiff.capsule.v1"
    assert manifest["config"]["mediaType"] == "application/vnd.skiff.capsule.config.v1+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.skiff.capsule.pack.v1.tar+zstd"
    assert layer["digest"] == local["Digest"] and layer["size"] == local["Size"]
    notes = manifest["annotations"]
    assert notes["dev.skiff.capsule.version"] == "1.1.1"
    assert json.loads(notes["dev.skiff.capsule.requires"]) == {"libcrypto": "^1.1"}
    assert json.loads(notes["dev.skiff.capsule.labels"]) == {"origin": "test"}
    assert out.split("digest: ")[1].split()[0] == "sha256:" + hashlib.sha256(body).hexdigest()

    # into another daemon: the same capsule, by its own name, whatever the repository
    out = skiff(b, "capsule", "pull", remote).stdout
    assert out == f"libssl:1.1.1 {local['Digest']}\n"
    (pulled,) = json.loads(skiff(b, "capsule", "inspect", "libssl:1.1.1").stdout)
    for key in ("Digest", "Size", "Requires", "Labels", "Entries", "ContentSize"):
        assert pulled[key] == local[key], key
    status, _, _ = b.request("POST", f"/capsules/pull?remote={remote}")
    assert status == 200  # again: nothing new
    # push by the default name: the repository's last part and the tag
    skiff(a, "capsule", "push", f"{registry.host}/caps/libcrypto:1.1.1")
    skiff(b, "capsule", "pull", f"{registry.host}/caps/libcrypto:1.1.1")
    status, found = b.json("GET", "/capsules/json")
    assert [c["Name"] for c in found] == ["libcrypto", "libssl"]
    # and by the manifest's digest
    manifest_digest = "sha256:" + hashlib.sha256(body).hexdigest()
    skiff(b, "capsule", "rm", "libssl:1.1.1")
    skiff(b, "capsule", "pull", f"{registry.host}/{repo}@{manifest_digest}")
    assert b.json("GET", "/capsules/libssl:1.1.1/json")[1]["Digest"] == local["Digest"]
    for d in (a, b):
        d.request("POST", "/capsules/prune")


def test_what_is_not_a_capsule_is_refused(skiffd_factory, registry, tmp_path):
    d = skiffd_factory()
    # busybox, the daemon's built-in image, pushed as an image
    image = f"{registry.host}/caps/not-a-capsule-{uuid.uuid4().hex[:6]}:1"
    skiff(d, "tag", "busybox", image)
    skiff(d, "push", image)
    p = skiff(d, "capsule", "pull", image, check=False)
    assert p.returncode == 1 and "not a capsule" in p.stderr
    p = skiff(d, "capsule", "pull", f"{registry.host}/caps/nothing-here:1.0.0", check=False)
    assert p.returncode == 1 and "Error response from daemon" in p.stderr
    p = skiff(d, "capsule", "push", f"{registry.host}/caps/none:1.0.0", check=False)
    assert p.returncode == 1 and "no such capsule: none:1.0.0" in p.stderr
    assert d.json("GET", "/capsules/json")[1] == []


def test_a_pack_that_is_not_its_digest_is_refused(registry, cutting_proxy, tmp_path):
    """Through the library, by a proxy that serves other bytes for the pack."""
    from skiff.engine.capsules import CapsuleService
    from skiff.errors import DigestMismatch, RegistryError

    src = CapsuleService(str(tmp_path / "a"))
    (tmp_path / "data").write_bytes(b"capsule content " * 300)
    doc, _ = src.create("tampered", "1.0.0", paths=[(str(tmp_path / "data"), None)])
    repo = f"caps/tampered-{uuid.uuid4().hex[:6]}"
    src.push("tampered:1.0.0", f"{registry.host}/{repo}:1.0.0")
    dst = CapsuleService(str(tmp_path / "b"))
    cutting_proxy.replace[doc["Digest"]] = b"\0" * doc["Size"]
    with pytest.raises((DigestMismatch, RegistryError), match="digest"):
        dst.pull(f"{cutting_proxy.host}/{repo}:1.0.0")
    assert dst.list() == [] and list(dst.store.blobs.digests()) == []
    del cutting_proxy.replace[doc["Digest"]]
    got, made = dst.pull(f"{cutting_proxy.host}/{repo}:1.0.0")
    assert made and got["Digest"] == doc["Digest"]
    (resolved,) = dst.resolve(["tampered:1.0.0"])
    assert (Path(resolved.path) / "data").read_bytes() == b"capsule content " * 300
