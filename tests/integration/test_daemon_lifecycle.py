"""skiffd as a process: where and how it listens, its pid file, one daemon per socket, a
stale socket replaced, a clean stop on SIGTERM and SIGINT, and Docker's ping and version
prefix over the real socket."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import uuid
from pathlib import Path
from typing import Callable

import pytest

from conftest import CGROUP_PREFIX
from fixtures_daemon import SKIFFD, Skiffd, start_skiffd, stop_skiffd
from fixtures_registry import free_port


def test_socket_is_0660_and_the_pid_file_names_the_daemon(skiffd: Skiffd) -> None:
    mode = os.stat(skiffd.socket).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660
    assert skiffd.pidfile.read_text().strip() == str(skiffd.pid)


def test_ping_get_and_head(skiffd: Skiffd) -> None:
    for method in ("GET", "HEAD"):
        status, headers, body = skiffd.request(method, "/_ping")
        assert status == 200
        assert headers["api-version"] == "1.41"
        assert headers["ostype"] == "linux"
        assert headers["docker-experimental"] == "false"
        assert "builder-version" in headers
        assert "no-cache" in headers["cache-control"]
        assert body == (b"OK" if method == "GET" else b"")


def test_version_prefix_over_the_socket(skiffd: Skiffd) -> None:
    assert skiffd.json("GET", "/v1.41/version")[1]["ApiVersion"] == "1.41"
    assert skiffd.json("GET", "/v1.24/images/json")[0] == 200
    status, doc = skiffd.json("GET", "/v1.42/version")
    assert status == 400
    assert doc == {"message": "client version 1.42 is too new. Maximum supported API "
                              "version is 1.41"}
    status, doc = skiffd.json("GET", "/v1.11/version")
    assert status == 400 and "too old. Minimum supported API version is 1.12" in doc["message"]


def test_busybox_is_there_with_no_registry(skiffd: Skiffd) -> None:
    status, images = skiffd.json("GET", "/images/json")
    assert status == 200
    assert ["busybox:latest"] in [i["RepoTags"] for i in images]


def test_a_second_daemon_on_the_same_socket_is_refused(skiffd: Skiffd) -> None:
    p = subprocess.run([SKIFFD], env=skiffd.env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "already serving" in p.stderr
    assert skiffd.request("GET", "/_ping")[0] == 200  # the first one is untouched
    assert skiffd.socket.exists()


def test_a_stale_socket_file_is_replaced(tmp_root: Path) -> None:
    workdir = tmp_root / f"skiffd-{uuid.uuid4().hex[:8]}"
    (workdir / "run").mkdir(parents=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(workdir / "run" / "skiff.sock"))
    dead.close()  # the file stays, nobody answers
    d = start_skiffd(workdir)
    try:
        assert d.request("GET", "/_ping")[0] == 200
    finally:
        stop_skiffd(d)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_and_removes_socket_and_pid_file(
        skiffd_factory: Callable[..., Skiffd], sig: signal.Signals) -> None:
    d = skiffd_factory()
    assert d.process is not None
    d.process.send_signal(sig)
    assert d.process.wait(15) == 0
    assert not d.socket.exists()
    assert not d.pidfile.exists()


def test_tcp_and_unix_listeners_together(skiffd_factory: Callable[..., Skiffd]) -> None:
    import http.client

    port = free_port()
    # -H replaces the default socket, so it is named again ({run} is the daemon's SKIFF_RUN)
    d = skiffd_factory("-H", f"tcp://127.0.0.1:{port}", "-H", "unix://{run}/skiff.sock")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/v1.41/_ping")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b"OK"
    finally:
        conn.close()
    assert d.request("GET", "/_ping")[0] == 200


@pytest.mark.root
def test_cgroup_parent_holds_the_containers_cgroups(
        skiffd_factory: Callable[..., Skiffd]) -> None:
    parent = f"skiff/{CGROUP_PREFIX}-parent"  # relative: still from the hierarchy's root
    d = skiffd_factory("--cgroup-parent", parent)
    body = {"Image": "busybox", "Cmd": ["sleep", "60"], "HostConfig": {"NetworkMode": "none"}}
    status, made = d.json("POST", "/containers/create", body)
    assert status == 201, made
    cid = made["Id"]
    try:
        assert d.request("POST", f"/containers/{cid}/start")[0] == 204
        folder = Path("/sys/fs/cgroup/pids", parent, cid)
        assert folder.is_dir()
        pid = d.json("GET", f"/containers/{cid}/json")[1]["State"]["Pid"]
        assert str(pid) in (folder / "cgroup.procs").read_text().split()
    finally:
        assert d.request("DELETE", f"/containers/{cid}?force=1")[0] == 204
    assert not Path("/sys/fs/cgroup/pids", parent, cid).exists()


def test_a_cgroup_parent_out_of_the_root_is_refused(tmp_root: Path) -> None:
    p = subprocess.run([SKIFFD, "--root", str(tmp_root / "cg-root"), "--exec-root",
                        str(tmp_root / "cg-run"), "--cgroup-parent", "/skiff/../up"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "invalid --cgroup-parent '/skiff/../up'" in p.stderr
    assert not (tmp_root / "cg-run" / "skiff.sock").exists()
