"""The real docker CLI pushing to, pulling from and logging in to Debian's docker-registry
through skiffd (docker treats 127.0.0.0/8 as insecure, and so does skiffd), with skopeo —
a client skiff did not write — as the witness of what reached the registry."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
from fixtures_daemon import Skiffd, docker_py_client
from fixtures_registry import Registry, put_image, skopeo_inspect
from test_docker_cli import busybox_id, docker


def _name(reg: Registry, tag: str = "v1") -> str:
    return reg.ref(f"skiff-cli/{uuid.uuid4().hex[:8]}:{tag}")


def test_docker_push_then_pull_round_trip(skiffd: Skiffd, registry: Registry) -> None:
    image_id = busybox_id(skiffd)
    name = _name(registry)
    repo = name.rpartition(":")[0]
    docker(skiffd, "tag", "busybox", name)
    out = docker(skiffd, "push", name).stdout
    assert f"The push refers to repository [{repo}]" in out
    digest_line = [line for line in out.splitlines() if line.startswith("v1: digest: sha256:")]
    assert digest_line, out
    digest = digest_line[0].split()[2]
    assert skopeo_inspect(name)["Digest"] == digest  # what the registry has, by another tool
    inspect = json.loads(docker(skiffd, "image", "inspect", name).stdout)[0]
    assert f"{repo}@{digest}" in inspect["RepoDigests"]  # as dockerd records a push
    again = docker(skiffd, "push", name).stdout
    assert "Layer already exists" in again

    docker(skiffd, "rmi", name)
    docker(skiffd, "rmi", "busybox")
    out = docker(skiffd, "pull", name).stdout
    assert f"v1: Pulling from {repo.partition('/')[2]}" in out
    assert f"Digest: {digest}" in out
    assert f"Status: Downloaded newer image for {name}" in out
    assert busybox_id_of(skiffd, name) == image_id
    out = docker(skiffd, "pull", name).stdout
    assert f"Status: Image is up to date for {name}" in out


def busybox_id_of(d: Skiffd, name: str) -> str:
    return str(json.loads(docker(d, "image", "inspect", "-f", "{{json .Id}}", name).stdout))


def test_docker_pulls_what_skopeo_put(skiffd: Skiffd, registry: Registry,
                                      tmp_path: Path) -> None:
    name = _name(registry, "from-skopeo")
    layout = put_image(registry, name.partition("/")[2], tmp_path)
    out = docker(skiffd, "pull", name).stdout
    assert "Pull complete" in out
    assert busybox_id_of(skiffd, name) == layout.image.config_digest
    lines = docker(skiffd, "history", "-q", name).stdout.split()
    assert lines[0] == layout.image.config_digest[7:19]


def test_pull_progress_is_dockers_json_stream(skiffd: Skiffd, registry: Registry,
                                              tmp_path: Path) -> None:
    name = _name(registry, "stream")
    repo, _, tag = name.rpartition(":")
    put_image(registry, name.partition("/")[2], tmp_path)
    status, headers, body = skiffd.request(
        "POST", f"/v1.41/images/create?fromImage={repo}&tag={tag}")
    assert status == 200
    assert headers["content-type"] == "application/json"
    messages = [json.loads(line) for line in body.decode().split("\r\n") if line]
    assert messages[0] == {"status": f"Pulling from {repo.partition('/')[2]}", "id": tag}
    layer_lines = [m for m in messages if m.get("id") and m["id"] != tag]
    assert all("progressDetail" in m for m in layer_lines)
    assert any(m["status"] == "Pull complete" for m in layer_lines)
    downloading = [m for m in layer_lines if m["status"] == "Downloading"]
    for m in downloading:
        assert m["progress"].startswith("[")
        assert set(m["progressDetail"]) <= {"current", "total"}
    assert messages[-2]["status"].startswith("Digest: sha256:")
    assert messages[-1] == {"status": f"Status: Downloaded newer image for {name}"}


def test_pull_of_a_missing_tag_is_dockers_error(skiffd: Skiffd, registry: Registry) -> None:
    name = _name(registry, "nope")
    p = docker(skiffd, "pull", name, check=False)
    assert p.returncode == 1
    assert "Error response from daemon:" in p.stderr
    assert "not found" in p.stderr


def test_docker_login_push_and_pull_with_credentials(skiffd: Skiffd,
                                                     secure_registry: Registry) -> None:
    reg = secure_registry
    assert reg.username and reg.password
    wrong = docker(skiffd, "login", "-u", reg.username, "--password-stdin", reg.host,
                   input=b"not-the-password\n", check=False)
    assert wrong.returncode != 0
    out = docker(skiffd, "login", "-u", reg.username, "--password-stdin", reg.host,
                 input=reg.password.encode() + b"\n")
    assert "Login Succeeded" in out.stdout
    config = json.loads((Path(skiffd.env["DOCKER_CONFIG"]) / "config.json").read_text())
    stored = base64.b64decode(config["auths"][reg.host]["auth"]).decode()
    assert stored == f"{reg.username}:{reg.password}"
    name = _name(reg, "secret")
    docker(skiffd, "tag", "busybox", name)
    docker(skiffd, "push", name)
    docker(skiffd, "rmi", name)
    out = docker(skiffd, "pull", name).stdout
    assert f"Status: Downloaded newer image for {name}" in out
    docker(skiffd, "logout", reg.host)
    docker(skiffd, "rmi", name)
    denied = docker(skiffd, "pull", name, check=False)
    assert denied.returncode != 0


def test_docker_py_pulls(skiffd: Skiffd, registry: Registry, tmp_path: Path) -> None:
    import docker as docker_py
    name = _name(registry, "py")
    layout = put_image(registry, name.partition("/")[2], tmp_path)
    with docker_py_client(skiffd.url, version="auto") as client:
        repo, _, tag = name.rpartition(":")
        image = client.images.pull(repo, tag=tag)
        assert image.id == layout.image.config_digest
        assert name in image.tags
        assert f"{repo}@{layout.digest}" in image.attrs["RepoDigests"]
        with pytest.raises(docker_py.errors.NotFound):
            client.images.pull(repo, tag="missing")
