"""The real docker CLI (/usr/local/bin/docker, 28.x) against skiffd: it negotiates the API
version from /_ping, so everything it prints here came through Docker's own client code
reading skiffd's answers."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures_daemon import Skiffd, docker_py_client, run_client

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin") or "docker"

pytestmark = pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI")


def docker(d: Skiffd, *args: str, check: bool = True, input: bytes | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_client(d, [DOCKER, *args], input=input, check=check, timeout=timeout)


def busybox_id(d: Skiffd) -> str:
    status, doc = d.json("GET", "/images/busybox/json")
    assert status == 200
    return str(doc["Id"])


def test_docker_version_negotiates_1_41(skiffd: Skiffd) -> None:
    out = docker(skiffd, "version", "--format", "{{json .}}").stdout
    doc = json.loads(out)
    assert doc["Client"]["ApiVersion"] == "1.41"  # downgraded to what skiffd serves
    assert doc["Server"]["ApiVersion"] == "1.41"
    assert doc["Server"]["MinAPIVersion"] == "1.12"
    assert doc["Server"]["Platform"]["Name"] == "skiff"
    assert doc["Server"]["Components"][0]["Name"] == "Engine"


def test_docker_info(skiffd: Skiffd) -> None:
    doc = json.loads(docker(skiffd, "info", "--format", "{{json .}}").stdout)
    assert doc["DockerRootDir"] == str(skiffd.root)
    assert doc["Images"] >= 1
    assert doc["Driver"] == "overlay2"
    assert doc["CgroupDriver"] == "cgroupfs"
    assert doc["CgroupVersion"] in ("1", "2")
    text = docker(skiffd, "info").stdout
    assert "Server Version: 0.1.0" in text
    assert "127.0.0.0/8" in text


def test_docker_images_plain_quiet_and_format(skiffd: Skiffd) -> None:
    image_id = busybox_id(skiffd)
    table = docker(skiffd, "images").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.split()[:3] == ["busybox", "latest", image_id[7:19]] for line in table[1:])
    assert docker(skiffd, "images", "-q").stdout.split() == [image_id[7:19]]
    assert docker(skiffd, "images", "-q", "--no-trunc").stdout.split() == [image_id]
    out = docker(skiffd, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert out.split("\n")[0] == f"busybox:latest {image_id[7:19]}"
    assert docker(skiffd, "images", "busy*", "-q").stdout.split() == [image_id[7:19]]
    assert docker(skiffd, "images", "nothing*", "-q").stdout.split() == []
    assert docker(skiffd, "images", "-f", "dangling=true", "-q").stdout.split() == []


def test_docker_image_inspect_busybox(skiffd: Skiffd) -> None:
    doc = json.loads(docker(skiffd, "image", "inspect", "busybox").stdout)
    assert len(doc) == 1
    assert doc[0]["Id"] == busybox_id(skiffd)
    assert doc[0]["RepoTags"] == ["busybox:latest"]
    assert doc[0]["Config"]["Cmd"] == ["sh"]
    assert doc[0]["Os"] == "linux"
    assert docker(skiffd, "image", "inspect", "-f", "{{.RootFS.Type}}", "busybox").stdout \
        .strip() == "layers"
    missing = docker(skiffd, "image", "inspect", "nothing:here", check=False)
    assert missing.returncode != 0
    assert "No such image: nothing:here" in missing.stderr


def test_docker_tag_and_rmi(skiffd: Skiffd) -> None:
    image_id = busybox_id(skiffd)
    docker(skiffd, "tag", "busybox", "127.0.0.1:5000/some/thing:v1")
    doc = json.loads(docker(skiffd, "image", "inspect", "127.0.0.1:5000/some/thing:v1").stdout)
    assert doc[0]["Id"] == image_id
    assert doc[0]["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    # by ID, with two repositories naming it: Docker's conflict, exit code 1
    refused = docker(skiffd, "rmi", image_id[7:19], check=False)
    assert refused.returncode == 1
    assert "must be forced" in refused.stderr and "multiple repositories" in refused.stderr
    out = docker(skiffd, "rmi", "127.0.0.1:5000/some/thing:v1").stdout
    assert out.strip() == "Untagged: 127.0.0.1:5000/some/thing:v1"
    docker(skiffd, "tag", "busybox", "other:1")
    out = docker(skiffd, "rmi", "-f", image_id[7:19]).stdout.splitlines()
    assert "Untagged: busybox:latest" in out and "Untagged: other:1" in out
    assert f"Deleted: {image_id}" in out
    assert docker(skiffd, "images", "-q").stdout.split() == []
    gone = docker(skiffd, "rmi", "busybox", check=False)
    assert gone.returncode == 1 and "No such image: busybox:latest" in gone.stderr


def test_docker_history(skiffd: Skiffd) -> None:
    lines = docker(skiffd, "history", "busybox").stdout.splitlines()
    assert lines[0].split()[:3] == ["IMAGE", "CREATED", "CREATED"]
    assert lines[1].startswith(busybox_id(skiffd)[7:19])
    out = docker(skiffd, "history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}",
                 "busybox").stdout.strip()
    assert out.startswith("skiff: built-in busybox")


def test_docker_image_prune_keeps_tagged_images(skiffd: Skiffd) -> None:
    out = docker(skiffd, "image", "prune", "-f").stdout
    assert "Total reclaimed space: 0B" in out
    assert docker(skiffd, "images", "-q").stdout.split() == [busybox_id(skiffd)[7:19]]
    out = docker(skiffd, "image", "prune", "-a", "-f").stdout
    assert "untagged: busybox:latest" in out and "Total reclaimed space: 2.13MB" in out
    assert docker(skiffd, "images", "-q").stdout.split() == []


def test_docker_save_then_load(skiffd: Skiffd, tmp_path: Path) -> None:
    image_id = busybox_id(skiffd)
    archive = tmp_path / "busybox.tar"
    docker(skiffd, "save", "-o", str(archive), "busybox")
    assert archive.stat().st_size > 100_000
    docker(skiffd, "rmi", "busybox")
    assert docker(skiffd, "images", "-q").stdout.split() == []
    out = docker(skiffd, "load", "-i", str(archive)).stdout
    assert "Loaded image: busybox:latest" in out
    assert busybox_id(skiffd) == image_id


def test_docker_search_says_it_is_not_supported(skiffd: Skiffd) -> None:
    p = docker(skiffd, "search", "busybox", check=False)
    assert p.returncode != 0
    assert "not supported" in p.stderr


def test_docker_inspect_without_type_finds_the_image(skiffd: Skiffd) -> None:
    # the CLI asks for a container first: a 404 there must read as "not a container"
    out = docker(skiffd, "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    assert out == busybox_id(skiffd)


def test_docker_import_with_changes(skiffd: Skiffd, tmp_path: Path) -> None:
    import io
    import tarfile

    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        data = b"hello from an imported rootfs\n"
        info = tarfile.TarInfo("etc/motd")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    out = docker(skiffd, "import", "-c", "CMD [\"/bin/sh\"]", "-c", "ENV COLOUR=blue",
                 "-m", "made by a test", str(rootfs), "imported:v1").stdout.strip()
    assert out.startswith("sha256:")
    doc = json.loads(docker(skiffd, "image", "inspect", "imported:v1").stdout)[0]
    assert doc["Id"] == out
    assert doc["Config"]["Cmd"] == ["/bin/sh"] and "COLOUR=blue" in doc["Config"]["Env"]
    assert doc["Comment"] == "made by a test"
    piped = docker(skiffd, "import", "-", "piped:1", input=rootfs.read_bytes()).stdout
    assert piped.strip().startswith("sha256:")


def test_docker_save_to_stdout_and_load_from_stdin(skiffd: Skiffd) -> None:
    docker(skiffd, "tag", "busybox", "second:1")
    p = subprocess.run([DOCKER, "save", "busybox", "second:1"], env=skiffd.env,
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    docker(skiffd, "rmi", "-f", busybox_id(skiffd))
    out = docker(skiffd, "load", input=p.stdout).stdout
    assert "Loaded image: busybox:latest" in out and "Loaded image: second:1" in out


def test_docker_py_lists_and_gets(skiffd: Skiffd) -> None:
    import docker as docker_py
    with docker_py_client(skiffd.url, version="auto") as client:
        assert client.version()["ApiVersion"] == "1.41"
        assert client.ping() is True
        images = client.images.list()
        assert [i.tags for i in images] == [["busybox:latest"]]
        image = client.images.get("busybox")
        assert image.id == busybox_id(skiffd)
        assert image.attrs["Config"]["Cmd"] == ["sh"]
        image.tag("pyclient/thing", "7")
        assert sorted(client.images.get("pyclient/thing:7").tags) == [
            "busybox:latest", "pyclient/thing:7"]
        with pytest.raises(docker_py.errors.ImageNotFound):
            client.images.get("nothing:here")
        client.images.remove("pyclient/thing:7")
        assert client.info()["Images"] == 1


def test_docker_system_df(skiffd: Skiffd) -> None:
    out = docker(skiffd, "system", "df").stdout.splitlines()
    assert out[0].split()[:2] == ["TYPE", "TOTAL"]
    assert out[1].split()[:3] == ["Images", "1", "0"]
    assert "2.13MB" in out[1]
