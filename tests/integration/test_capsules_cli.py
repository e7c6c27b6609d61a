"""Capsules through the real skiffd and the `skiff capsule` command: create from paths (at
their basename or a target), from a folder and from a tar on stdin (one digest for the same
files), ls / inspect / rm / prune with their output, the ``/capsules`` routes' answers and
Docker-style errors (400 bad input, 404 unknown capsule or version, 409 same name:version
with other content or a cycle), and the capsule events in ``GET /events``. One skiffd
serves the module; each test removes its capsules."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures_daemon import Skiffd, run_client

pytestmark = pytest.mark.root
SKIFF = str(Path(sys.executable).parent / "skiff")


def skiff(d: Skiffd, *args: str, input: bytes = b"", check: bool = True):
    return run_client(d, [SKIFF, *args], input=input, check=check)


def capsules(d: Skiffd) -> list[dict]:
    status, found = d.json("GET", "/capsules/json")
    assert status == 200, found
    return found


@pytest.fixture
def daemon(module_skiffd: Skiffd) -> Iterator[Skiffd]:
    yield module_skiffd
    status, _, body = module_skiffd.request("POST", "/capsules/prune")
    assert status == 200, body
    assert capsules(module_skiffd) == []
    unpacked = module_skiffd.root / "capsules" / "unpacked"
    assert not unpacked.exists() or os.listdir(unpacked) == []


@pytest.fixture
def files(tmp_path: Path) -> Path:
    src = tmp_path / "conf"
    (src / "sub").mkdir(parents=True)
    (src / "app.ini").write_text("a=1\n")
    (src / "sub" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "sub" / "run.sh").chmod(0o755)
    return src


def test_create_three_ways_ls_inspect_rm(daemon, files):
    out = skiff(daemon, "capsule", "create", "--name", "site-config", "--version", "2.0.0",
                "--from-dir", str(files), "--label", "tier=web").stdout
    assert out == "site-config:2.0.0\n"
    skiff(daemon, "capsule", "create", "--name", "by-paths", "--version", "1.0.0",
          "--path", str(files / "app.ini"), "--path", str(files / "sub"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(files, arcname=".")
    skiff(daemon, "capsule", "create", "--name", "from-tar", "--version", "1.0.0-rc.1",
          "--requires", "site-config@^2", "-", input=buf.getvalue())
    found = {c["Name"]: c for c in capsules(daemon)}
    assert sorted(found) == ["by-paths", "from-tar", "site-config"]
    # the same files: one digest, one blob, however they came
    assert len({c["Digest"] for c in found.values()}) == 1
    assert found["from-tar"]["Requires"] == {"site-config": "^2"}
    assert found["site-config"]["Labels"] == {"tier": "web"}

    table = skiff(daemon, "capsule", "ls").stdout.splitlines()
    assert table[0].split() == ["NAME", "VERSION", "DIGEST", "SIZE", "REQUIRES", "CREATED"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["by-paths", "1.0.0"], ["from-tar", "1.0.0-rc.1"], ["site-config", "2.0.0"]]
    assert "site-config@^2" in table[2]
    assert skiff(daemon, "capsule", "ls", "-q").stdout.split() == [
        "by-paths:1.0.0", "from-tar:1.0.0-rc.1", "site-config:2.0.0"]
    assert skiff(daemon, "capsule", "ls", "--filter", "label=tier=web", "--format",
                 "{{.Name}} {{.Labels}}").stdout == "site-config tier=web\n"

    (doc,) = json.loads(skiff(daemon, "capsule", "inspect", "site-config:2.0.0").stdout)
    assert doc["Digest"] == found["site-config"]["Digest"] and doc["Entries"] == 3
    assert doc["UsedBy"] == [] and doc["Created"].endswith("Z")
    assert skiff(daemon, "capsule", "inspect", "-f", "{{.Version}}", "site-config").stdout \
        == "2.0.0\n"

    refused = skiff(daemon, "capsule", "rm", "site-config:2.0.0", check=False)
    assert refused.returncode == 1
    assert "required by from-tar:1.0.0-rc.1 (requires site-config@^2)" in refused.stderr
    assert skiff(daemon, "capsule", "rm", "from-tar:1.0.0-rc.1", "site-config:2.0.0",
                 "by-paths").stdout.split() == ["from-tar:1.0.0-rc.1", "site-config:2.0.0",
                                                "by-paths"]
    assert capsules(daemon) == []
    assert list((daemon.root / "blobs" / "sha256").iterdir()) == [] or all(
        not p.name.startswith(found["by-paths"]["Digest"][7:])
        for p in (daemon.root / "blobs" / "sha256").iterdir())


def test_paths_at_targets_and_what_is_unpacked(daemon, files):
    skiff(daemon, "capsule", "create", "--name", "libx", "--version", "1.1.1",
          "--path", f"{files / 'app.ini'}:etc/x/app.ini")
    (doc,) = json.loads(skiff(daemon, "capsule", "inspect", "libx:1.1.1").stdout)
    assert doc["Entries"] == 3 and doc["ContentSize"] == 4 and doc["Path"] == ""


def test_bad_input_is_refused_and_changes_nothing(daemon, files, tmp_path):
    skiff(daemon, "capsule", "create", "--name", "a", "--version", "1.0.0",
          "--from-dir", str(files), "--requires", "b@^1")
    before = capsules(daemon)
    blobs_before = sorted(os.listdir(daemon.root / "blobs" / "sha256"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").write_text("other content")
    cases = [
        (["--name", "a", "--version", "1.0.0", "--from-dir", str(other)],
         "capsule a:1.0.0 exists with other content"),
        (["--name", "a", "--version", "1.0.1", "--path", "/nonexistent/x"],
         "capsule content `/nonexistent/x`: cannot read it: No such file or directory"),
        (["--name", "b", "--version", "1.0.0", "--path", str(other / "f"),
          "--requires", "a@^1"], "capsule dependency cycle: b:1.0.0 -> a:1.0.0 -> b:1.0.0"),
        (["--name", "c", "--version", "1.0.0", "--path", str(other / "f"),
          "--requires", "a@^one"], "invalid version range"),
        (["--name", "c", "--version", "1.0", "--path", str(other / "f")],
         "invalid version '1.0'"),
        (["--name", "C", "--version", "1.0.0", "--path", str(other / "f")],
         "invalid capsule name"),
        (["--name", "c", "--version", "1.0.0"], "give the capsule's content one way"),
    ]
    for args, words in cases:
        p = skiff(daemon, "capsule", "create", *args, check=False)
        assert p.returncode == 1, (args, p.stdout, p.stderr)
        assert words in p.stderr, (args, p.stderr)
    for ref, words in (("nothing:1.0.0", "no such capsule: nothing:1.0.0"),
                       ("a:9.0.0", "no such capsule: a:9.0.0 (there are versions 1.0.0)")):
        p = skiff(daemon, "capsule", "inspect", ref, check=False)
        assert p.returncode == 1 and f"Error response from daemon: {words}" in p.stderr
        p = skiff(daemon, "capsule", "rm", ref, check=False)
        assert p.returncode == 1 and words in p.stderr
    assert capsules(daemon) == before
    assert sorted(os.listdir(daemon.root / "blobs" / "sha256")) == blobs_before


def test_routes_status_codes_and_json_errors(daemon, files):
    body = json.dumps({"Name": "api", "Version": "1.0.0",
                       "Paths": [f"{files / 'app.ini'}:cfg/app.ini"],
                       "Requires": {"dep": "~1.2"}, "Labels": {"k": "v"}}).encode()
    headers = {"Content-Type": "application/json"}
    status, _, answer = daemon.request("POST", "/v1.41/capsules/create", body, headers)
    assert status == 201, answer
    doc = json.loads(answer)
    assert doc["Requires"] == {"dep": "~1.2"} and doc["Labels"] == {"k": "v"}
    status, _, again = daemon.request("POST", "/capsules/create", body, headers)
    assert status == 200 and json.loads(again)["Digest"] == doc["Digest"]
    status, found = daemon.json("GET", "/capsules/api:1.0.0/json")
    assert status == 200 and found["Name"] == "api"
    for method, path, payload, code, words in [
        ("GET", "/capsules/api:2.0.0/json", None, 404, "no such capsule: api:2.0.0"),
        ("GET", "/capsules/api:x/json", None, 400, "invalid version 'x'"),
        ("DELETE", "/capsules/none:1.0.0", None, 404, "no such capsule"),
        ("POST", "/capsules/create", {"Name": "api", "Version": "1.0.0",
                                      "FromDir": str(files)}, 409, "exists with other content"),
        ("POST", "/capsules/create", {"Name": "x", "Version": "1.0.0",
                                      "Paths": ["/nonexistent"]}, 400, "cannot read it"),
        ("POST", "/capsules/create", {"Name": "x"}, 400, "needs a Name and a Version"),
        ("GET", "/capsules/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", None, 400,
         "invalid filter"),
    ]:
        data = json.dumps(payload).encode() if payload is not None else None
        status, _, answer = daemon.request(method, path, data, headers if data else None)
        assert status == code, (path, answer)
        assert words in json.loads(answer)["message"], (path, answer)
    # the tar way, with a broken tar
    status, _, answer = daemon.request("POST", "/capsules/create?name=t&version=1.0.0",
                                       b"not a tar" * 200,
                                       {"Content-Type": "application/x-tar"})
    assert status == 400 and "not a tar archive" in json.loads(answer)["message"]
    status, _, _ = daemon.request("DELETE", "/capsules/api:1.0.0")
    assert status == 204


def test_events_and_prune(daemon, files):
    since = time.time()
    skiff(daemon, "capsule", "create", "--name", "ev", "--version", "1.0.0",
          "--from-dir", str(files), "--label", "team=x")
    skiff(daemon, "capsule", "create", "--name", "ev2", "--version", "0.1.0",
          "--path", str(files / "app.ini"))
    out = skiff(daemon, "capsule", "prune", "-f").stdout
    assert out.startswith("Deleted Capsules:\nev:1.0.0\nev2:0.1.0\n\nTotal reclaimed space: ")
    assert out.split(": ")[-1].strip() != "0B"
    until = time.time() + 1
    status, _, body = daemon.request(
        "GET", f"/events?since={since:.3f}&until={until:.3f}&filters="
               "%7B%22type%22%3A%5B%22capsule%22%5D%7D")
    assert status == 200
    events = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert [(e["Action"], e["Actor"]["ID"]) for e in events] == [
        ("create", "ev:1.0.0"), ("create", "ev2:0.1.0"), ("delete", "ev:1.0.0"),
        ("delete", "ev2:0.1.0"), ("prune", "")]
    assert events[0]["Type"] == "capsule"
    assert events[0]["Actor"]["Attributes"]["team"] == "x"
    assert skiff(daemon, "capsule", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
