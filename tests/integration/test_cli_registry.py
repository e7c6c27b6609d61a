"""`skiff pull`, `push`, `login` and `logout` against Debian's docker-registry (plain HTTP, and
htpasswd over TLS), through a real skiffd; skopeo says what reached the registry, and the
docker CLI pulling the same image says what the output should look like."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from pathlib import Path

from fixtures_daemon import Skiffd
from fixtures_registry import Registry, put_image, skopeo_inspect
from test_cli_images import SKIFF, docker, skiff


def _name(reg: Registry, tag: str = "v1") -> str:
    return reg.ref(f"skiff-cli/{uuid.uuid4().hex[:8]}:{tag}")


def test_push_then_pull(skiffd: Skiffd, registry: Registry) -> None:
    name = _name(registry)
    repo = name.rpartition(":")[0]
    skiff(skiffd, "tag", "busybox", name)
    out = skiff(skiffd, "push", name).stdout.splitlines()
    assert out[0] == f"The push refers to repository [{repo}]"
    assert any(line.endswith(": Pushed") for line in out)
    digest = out[-1].split()[2]
    assert out[-1].startswith("v1: digest: sha256:") and out[-1].split()[3:4] == ["size:"]
    assert skopeo_inspect(name)["Digest"] == digest
    assert any(line.endswith(": Layer already exists") for line in
               skiff(skiffd, "push", name).stdout.splitlines())
    assert skiff(skiffd, "push", "-q", name).stdout == f"{name}\n"

    skiff(skiffd, "rmi", name)
    out = skiff(skiffd, "pull", name).stdout.splitlines()
    assert out[0] == f"v1: Pulling from {repo.partition('/')[2]}"
    assert f"Digest: {digest}" in out
    assert out[-2:] == [f"Status: Downloaded newer image for {name}", name]
    assert skiff(skiffd, "pull", name).stdout.splitlines()[-2] == \
        f"Status: Image is up to date for {name}"
    assert skiff(skiffd, "pull", "-q", name).stdout == f"{name}\n"
    missing = skiff(skiffd, "pull", repo, check=False)  # no tag: latest, which is not there
    assert (missing.returncode, missing.stdout) == (1, "Using default tag: latest\n")
    assert missing.stderr == (f"Error response from daemon: manifest for {repo}:latest not found: "
                              "manifest unknown: manifest unknown\n")


def test_pull_prints_what_docker_prints(skiffd: Skiffd, registry: Registry, tmp_path: Path) -> None:
    name = _name(registry, "same")
    put_image(registry, name.partition("/")[2], tmp_path)
    mine = skiff(skiffd, "pull", name).stdout
    skiff(skiffd, "rmi", name)
    theirs = docker(skiffd, "pull", name).stdout
    assert mine == theirs
    p = skiff(skiffd, "pull", _name(registry, "missing"), check=False)
    q = docker(skiffd, "pull", _name(registry, "missing"), check=False)
    assert p.returncode == q.returncode == 1
    assert p.stderr.replace(p.args[-1], "X") == q.stderr.replace(q.args[-1], "X")


def test_progress_bars_on_a_terminal(skiffd: Skiffd, registry: Registry, tmp_path: Path) -> None:
    if shutil.which("script") is None:
        return
    name = _name(registry, "tty")
    put_image(registry, name.partition("/")[2], tmp_path, layers=[{"big": bytes(3_000_000)}])
    typescript = tmp_path / "typescript"
    p = subprocess.run(["script", "-qec", f"stty cols 120; {SKIFF} pull {name}", str(typescript)],
                       env=skiffd.env, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout
    text = typescript.read_bytes().decode(errors="replace")
    assert "\x1b[1A\x1b[2K\r" in text  # a layer's line redrawn in place
    assert ": Pull complete" in text and f"Status: Downloaded newer image for {name}" in text


def test_login_push_pull_logout(skiffd: Skiffd, secure_registry: Registry) -> None:
    reg = secure_registry
    assert reg.username and reg.password
    config_path = Path(skiffd.env["DOCKER_CONFIG"]) / "config.json"
    wrong = skiff(skiffd, "login", "-u", reg.username, "--password-stdin", reg.host,
                  input=b"wrong\n", check=False)
    assert wrong.returncode == 1 and wrong.stderr.startswith("Error response from daemon:")
    assert not config_path.exists()
    p = skiff(skiffd, "login", "-u", reg.username, "--password-stdin", reg.host,
              input=reg.password.encode() + b"\n")
    assert p.stdout == "Login Succeeded\n"
    assert f"stored unencrypted in '{config_path}'" in p.stderr
    stored = json.loads(config_path.read_text())["auths"][reg.host]
    assert base64.b64decode(stored["auth"]).decode() == f"{reg.username}:{reg.password}"
    assert oct(config_path.stat().st_mode & 0o777) == "0o600"
    again = skiff(skiffd, "login", reg.host)  # the stored credentials, checked again
    assert again.stdout == "Login Succeeded\n" and "existing credentials" in again.stderr

    name = _name(reg, "secret")
    skiff(skiffd, "tag", "busybox", name)
    skiff(skiffd, "push", name)
    skiff(skiffd, "rmi", name)
    assert skiff(skiffd, "pull", name).stdout.splitlines()[-1] == name
    assert skiff(skiffd, "logout", reg.host).stdout == f"Removing login credentials for {reg.host}\n"
    assert reg.host not in json.loads(config_path.read_text())["auths"]
    skiff(skiffd, "rmi", name)
    denied = skiff(skiffd, "pull", name, check=False)
    assert denied.returncode == 1 and denied.stderr
