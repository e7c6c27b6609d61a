"""The real `skiff` command (.venv/bin/skiff, the `python -S` launcher) against a real skiffd:
every image command, with the real docker CLI against the same daemon as the witness of
what the output should look like."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from fixtures_daemon import Skiffd, run_client
from test_docker_cli import docker as docker_cli

SKIFF = str(Path(sys.executable).parent / "skiff")
DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")


def skiff(d: Skiffd, *args: str, input: bytes | None = None, check: bool = True,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_client(d, [SKIFF, *args], input=input if input is not None else b"",
                      check=check, env=env)


def docker(d: Skiffd, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if DOCKER is None:
        pytest.skip("no docker CLI")
    return docker_cli(d, *args, check=check, input=b"")


def _rootfs_tar(path: Path) -> Path:
    src = path / "rootfs"
    (src / "bin").mkdir(parents=True)
    (src / "hello").write_text("hello\n")
    with tarfile.open(path / "rootfs.tar", "w") as tar:
        tar.add(src, arcname=".")
    return path / "rootfs.tar"


def _rows(text: str) -> list[str]:
    return sorted(text.splitlines())


def test_listings_print_what_docker_prints(skiffd: Skiffd) -> None:
    skiff(skiffd, "tag", "busybox", "localhost:5000/team/tool:v1")
    for args in (["images"], ["images", "--digests"], ["images", "-a", "--no-trunc"],
                 ["images", "-q"], ["images", "--format", "{{json .}}"],
                 ["image", "ls", "--format", "table {{.ID}}\\t{{.Repository}}:{{.Tag}}"],
                 ["images", "busybox"], ["images", "-f", "reference=localhost:5000/*/*"],
                 ["history", "busybox"], ["history", "--no-trunc", "-H=false", "busybox"],
                 ["image", "inspect", "busybox"], ["inspect", "-f", "{{.Id}} {{json .RepoTags}}",
                                                   "busybox"],
                 ["info", "--format", "{{.Driver}} {{.Images}} {{json .Plugins}}"]):
        mine, theirs = skiff(skiffd, *args).stdout, docker(skiffd, *args).stdout
        if args[0] in ("images", "image"):
            # docker walks an image's names in Go's random map order; skiff in the daemon's
            mine, theirs = _rows(mine), _rows(theirs)
        assert mine == theirs, args
    lines = skiff(skiffd, "images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.startswith("localhost:5000/team/tool   v1") for line in lines)


def test_info_and_version(skiffd: Skiffd) -> None:
    def server_part(text: str) -> list[str]:
        # the daemon's clock ticks between the two calls, and its open files and threads
        # come and go (threads warming imports at start: the monitors' zygote, netlink; a
        # finished run's veth deleted on a thread of its own)
        return [line for line in text[text.index("Server:"):].splitlines()
                if not line.startswith(("  System Time:", "  File Descriptors:",
                                        "  Goroutines:"))]

    out = skiff(skiffd, "info").stdout
    assert f" Docker Root Dir: {skiffd.root}" in out.splitlines()
    assert server_part(out) == server_part(docker(skiffd, "info").stdout)
    version = skiff(skiffd, "version").stdout
    assert "Server: skiff\n Engine:\n  Version:          0.1.0" in version
    assert " API version:       1.41\n" in version
    assert skiff(skiffd, "version", "-f", "{{.Server.ApiVersion}}").stdout == "1.41\n"
    assert skiff(skiffd, "system", "info", "-f", "{{.DockerRootDir}}").stdout == f"{skiffd.root}\n"


def test_tag_inspect_and_rmi(skiffd: Skiffd) -> None:
    assert skiff(skiffd, "tag", "busybox", "mine/bb:1").stdout == ""
    inspect = json.loads(skiff(skiffd, "image", "inspect", "mine/bb:1").stdout)
    assert "mine/bb:1" in inspect[0]["RepoTags"]
    out = skiff(skiffd, "rmi", "mine/bb:1").stdout
    assert out == "Untagged: mine/bb:1\n"
    p = skiff(skiffd, "rmi", "mine/bb:1", check=False)
    assert (p.returncode, p.stderr) == (1, "Error response from daemon: No such image: mine/bb:1\n")
    p = skiff(skiffd, "image", "inspect", "nope", check=False)
    assert (p.returncode, p.stdout) == (1, "[]\n")
    assert p.stderr == "Error response from daemon: No such image: nope:latest\n"
    p = skiff(skiffd, "tag", "busybox", "Upper/Case", check=False)
    assert p.returncode == 1 and "must be lowercase" in p.stderr
    p = skiff(skiffd, "images", "--bogus", check=False)
    assert p.returncode == 125 and p.stderr.startswith("unknown flag: --bogus")


def test_save_load_round_trip(skiffd: Skiffd, tmp_path: Path) -> None:
    image_id = json.loads(skiff(skiffd, "image", "inspect", "busybox").stdout)[0]["Id"]
    archive = tmp_path / "busybox.tar"
    assert skiff(skiffd, "save", "-o", str(archive), "busybox").returncode == 0
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "manifest.json" in names and "index.json" in names
    p = subprocess.run([SKIFF, "save", "busybox"], env=skiffd.env, capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stdout == archive.read_bytes()
    skiff(skiffd, "rmi", "busybox")
    assert skiff(skiffd, "load", "-i", str(archive)).stdout == "Loaded image: busybox:latest\n"
    skiff(skiffd, "rmi", "busybox")
    assert skiff(skiffd, "load", input=archive.read_bytes()).stdout == "Loaded image: busybox:latest\n"
    assert json.loads(skiff(skiffd, "image", "inspect", "busybox").stdout)[0]["Id"] == image_id
    p = skiff(skiffd, "load", input=b"not a tar", check=False)
    assert p.returncode == 1 and "not a readable tar archive" in p.stderr  # as docker shows it


def test_import_with_changes(skiffd: Skiffd, tmp_path: Path) -> None:
    rootfs = _rootfs_tar(tmp_path)
    out = skiff(skiffd, "import", "-c", 'CMD ["/hello"]', "--change", "ENV A=b", "-m", "by skiff",
                str(rootfs), "imported:1").stdout
    image_id = out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    doc = json.loads(skiff(skiffd, "image", "inspect", "imported:1").stdout)[0]
    assert doc["Id"] == image_id and doc["Config"]["Cmd"] == ["/hello"]
    assert "A=b" in doc["Config"]["Env"] and doc["Comment"] == "by skiff"
    history = skiff(skiffd, "history", "imported:1").stdout.splitlines()
    assert history[1].startswith(image_id[7:19]) and history[1].endswith("by skiff")
    piped = skiff(skiffd, "image", "import", "-", "imported:2", input=rootfs.read_bytes()).stdout
    assert piped.startswith("sha256:")
    p = skiff(skiffd, "import", "-c", "BOGUS x", str(rootfs), check=False)
    assert p.returncode == 1 and p.stderr.startswith("Error response from daemon:")


def test_prune(skiffd: Skiffd, tmp_path: Path) -> None:
    rootfs = _rootfs_tar(tmp_path)
    dangling = skiff(skiffd, "import", str(rootfs)).stdout.strip()
    listed = skiff(skiffd, "images", "-q", "--no-trunc", "-f", "dangling=true").stdout.split()
    assert listed == [dangling]
    p = skiff(skiffd, "image", "prune", input=b"n\n")
    assert p.stdout == ("WARNING! This will remove all dangling images.\n"
                        "Are you sure you want to continue? [y/N] ")
    out = skiff(skiffd, "image", "prune", "-f").stdout
    assert out.startswith(f"Deleted Images:\ndeleted: {dangling}\n")
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert skiff(skiffd, "images", "-q", "-f", "dangling=true").stdout == ""
    assert skiff(skiffd, "image", "prune", "-f").stdout == "Total reclaimed space: 0B\n"


def test_the_launcher_imports_only_what_it_needs(skiffd: Skiffd) -> None:
    # `python -S`, src/ only: no aiohttp, no site-packages, and none of the heavy stdlib
    env = dict(skiffd.env, PYTHONPROFILEIMPORTTIME="1")
    for args in (["--version"], ["images"]):
        p = subprocess.run([SKIFF, *args], env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        imported = {line.split("|")[-1].strip() for line in p.stderr.splitlines()
                    if line.startswith("import time:")}
        for heavy in ("aiohttp", "http.client", "argparse", "re", "json", "typing", "socket",
                      "logging", "dataclasses", "urllib.parse", "email.parser", "ssl", "site"):
            assert heavy not in imported, (args, heavy)
    assert os.path.exists(SKIFF)
