"""The real docker CLI (28.x) and docker-py running containers through skiffd: `docker run`
attached (create, the hijacked attach, wait, start, the exit code), detached, the 125/126/127
codes, ps, logs (and -f), stop (the signal, then SIGKILL after -t), kill, wait, start,
restart, inspect, rm, prune, image removal refused while a container uses the image, the
flags of the slice reaching the container's process. One skiffd serves the module (a fresh
one per test would cost a second each); every test removes its containers — through the API,
before the daemon stops, since containers outlive skiffd."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures_daemon import Skiffd, docker_py_client, remove_all, start_skiffd, stop_skiffd
from test_docker_cli import DOCKER, docker

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI")]




def ids(d: Skiffd) -> list[str]:
    return docker(d, "ps", "-a", "-q", "--no-trunc").stdout.split()


# -- run ------------------------------------------------------------------------------------------
def test_run_rm_echo_prints_and_leaves_nothing(daemon: Skiffd) -> None:
    p = docker(daemon, "run", "--rm", "busybox", "echo", "hi")
    assert (p.returncode, p.stdout, p.stderr) == (0, "hi\n", "")
    assert ids(daemon) == []  # --rm: removed once it exited


def test_run_exits_with_the_containers_code(daemon: Skiffd) -> None:
    p = docker(daemon, "run", "--name", "three", "busybox", "sh", "-c",
               "echo out; echo err >&2; exit 3", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    line = docker(daemon, "ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    assert line.startswith("three Exited (3) ")


def test_run_missing_command_exits_127_and_bad_options_125(daemon: Skiffd) -> None:
    p = docker(daemon, "run", "--rm", "busybox", "nope", check=False)
    assert p.returncode == 127 and p.stdout == ""
    # docker 28's words, and nothing else (a removal waiter gets no error, as moby's)
    assert p.stderr.startswith("docker: Error response from daemon: ")
    assert p.stderr.endswith("\n\nRun 'docker run --help' for more information\n")
    assert "executable file not found" in p.stderr and p.stderr.count("\n") == 3
    assert ids(daemon) == []
    p = docker(daemon, "run", "--rm", "busybox", "/etc", check=False)
    assert p.returncode == 126, p.stderr
    p = docker(daemon, "run", "--pull", "never", "nothing/here", check=False)
    assert p.returncode == 125
    assert "No such image: nothing/here:latest" in p.stderr
    p = docker(daemon, "run", "--rm", "--network", "nosuchnet", "busybox", "true", check=False)
    assert p.returncode == 125 and "network nosuchnet not found" in p.stderr
    assert ids(daemon) == []


def test_run_options_reach_the_process(daemon: Skiffd) -> None:
    p = docker(daemon, "run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000:1000", "-h",
               "myhost", "--label", "a=b", "--network", "none", "busybox", "sh", "-c",
               'echo "$FOO $(pwd) $(id -u):$(id -g) $(hostname)"')
    assert p.stdout == "bar /tmp 1000:1000 myhost\n"
    p = docker(daemon, "run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint")
    assert p.stdout == "from entrypoint\n"
    p = docker(daemon, "run", "--rm", "--read-only", "busybox", "touch", "/x", check=False)
    assert p.returncode == 1 and "Read-only file system" in p.stderr
    p = docker(daemon, "run", "--rm", "--cap-drop", "ALL", "busybox", "sh", "-c",
               "grep CapEff /proc/self/status")
    assert p.stdout.split() == ["CapEff:", "0000000000000000"]


# -- detached ---------------------------------------------------------------------------------------
def test_detached_ps_logs_stop_inspect_rm(daemon: Skiffd) -> None:
    cid = docker(daemon, "run", "-d", "--name", "web", "busybox", "sh", "-c",
                 "echo start; echo oops >&2; exec sleep 100").stdout.strip()
    assert len(cid) == 64
    table = docker(daemon, "ps").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES"]
    assert table[1].startswith(cid[:12] + "   busybox   \"sh -c 'echo start; …\"")
    assert table[1].endswith("   web") and " Up " in table[1]
    deadline = time.monotonic() + 5
    while (p := docker(daemon, "logs", "web")).stdout != "start\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (p.stdout, p.stderr) == ("start\n", "oops\n")
    stamped = docker(daemon, "logs", "-t", "web").stdout
    assert stamped.endswith("Z start\n") and stamped[:4].isdigit()
    doc = json.loads(docker(daemon, "inspect", "web").stdout)[0]
    assert doc["Id"] == cid and doc["Name"] == "/web" and doc["State"]["Running"] is True
    assert doc["Config"]["Image"] == "busybox" and doc["State"]["Pid"] > 0
    # sleep as PID 1 ignores SIGTERM: stop sends it, waits -t 1, then SIGKILL
    started = time.monotonic()
    assert docker(daemon, "stop", "-t", "1", "web").stdout == "web\n"
    took = time.monotonic() - started
    assert 0.9 < took < 5, took
    assert docker(daemon, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                  "web").stdout == "exited 137\n"
    assert docker(daemon, "ps", "-q").stdout == ""
    assert docker(daemon, "rm", "web").stdout == "web\n"
    assert ids(daemon) == []
    gone = docker(daemon, "inspect", "web", check=False)
    assert gone.returncode == 1 and "No such object: web" in gone.stderr


def test_kill_wait_start_restart_prune(daemon: Skiffd) -> None:
    docker(daemon, "run", "-d", "--name", "loop", "busybox", "sleep", "100")
    assert docker(daemon, "kill", "loop").stdout == "loop\n"
    assert docker(daemon, "wait", "loop").stdout == "137\n"
    refused = docker(daemon, "kill", "loop", check=False)
    assert refused.returncode == 1 and "is not running" in refused.stderr
    assert docker(daemon, "start", "loop").stdout == "loop\n"
    assert docker(daemon, "inspect", "-f", "{{.State.Running}}", "loop").stdout == "true\n"
    assert docker(daemon, "start", "loop").stdout == "loop\n"  # running already: 304, fine
    pid = docker(daemon, "inspect", "-f", "{{.State.Pid}}", "loop").stdout
    assert docker(daemon, "restart", "-t", "0", "loop").stdout == "loop\n"
    assert docker(daemon, "inspect", "-f", "{{.State.Pid}}", "loop").stdout != pid
    running = docker(daemon, "rm", "loop", check=False)
    assert running.returncode == 1 and "stop the container before" in running.stderr.lower()
    docker(daemon, "create", "--name", "idle", "busybox", "true")
    docker(daemon, "run", "--name", "done", "busybox", "true")
    out = docker(daemon, "container", "prune", "-f").stdout
    assert out.startswith("Deleted Containers:\n") and "Total reclaimed space:" in out
    assert docker(daemon, "ps", "-a", "--format", "{{.Names}}").stdout == "loop\n"
    assert docker(daemon, "rm", "-f", "loop").stdout == "loop\n"


def test_start_attached_runs_a_created_or_stopped_container_again(daemon: Skiffd) -> None:
    docker(daemon, "create", "--name", "again", "busybox", "sh", "-c", "echo ran; exit 4")
    for _ in range(2):  # created, then exited: each start -a shows that run's output
        p = docker(daemon, "start", "-a", "again", check=False)
        assert (p.returncode, p.stdout, p.stderr) == (4, "ran\n", "")
    assert docker(daemon, "logs", "again").stdout == "ran\nran\n"


def check_logs_follow(d: Skiffd, cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """`logs -f` of a container still running: its output as it comes, stdout and stderr
    apart, ending when the container does (run with `cli`: docker's or skiff's)."""
    cli(d, "run", "-d", "--name", "talker", "busybox", "sh", "-c",
        "echo a; sleep 0.5; echo b >&2; sleep 0.3; echo c")
    started = time.monotonic()
    p = cli(d, "logs", "-f", "talker")
    assert (p.stdout, p.stderr) == ("a\nc\n", "b\n")
    assert time.monotonic() - started > 0.4
    assert cli(d, "logs", "--tail", "1", "talker").stdout == "c\n"
    assert cli(d, "logs", "--since", "1m", "talker").stdout == "a\nc\n"
    assert cli(d, "logs", "--until", "1m", "talker").stdout == ""


def test_logs_follow_ends_with_the_container(daemon: Skiffd) -> None:
    check_logs_follow(daemon, docker)


def test_image_removal_refused_while_a_container_uses_it(daemon: Skiffd) -> None:
    cid = docker(daemon, "create", "--name", "holder", "busybox", "true").stdout.strip()
    p = docker(daemon, "rmi", "busybox", check=False)
    assert p.returncode == 1
    assert f"container {cid[:12]} is using its referenced image" in p.stderr
    docker(daemon, "rm", "holder")
    assert docker(daemon, "images", "-q").stdout.strip()  # still there


def test_the_api_answers_with_dockers_codes_and_shapes(daemon: Skiffd) -> None:
    from fixtures_daemon import check_api_shape

    body = {"Image": "busybox", "Cmd": ["sh", "-c", "echo out; echo err >&2; sleep 100"],
            "HostConfig": {"NetworkMode": "none"}}
    status, created = daemon.json("POST", "/v1.41/containers/create?name=api", body)
    assert status == 201 and set(created) == {"Id", "Warnings"}, created
    cid = created["Id"]
    status, again = daemon.json("POST", "/containers/create?name=api", body)
    assert status == 409 and 'The container name "/api" is already in use' in again["message"]
    assert daemon.request("POST", f"/containers/{cid}/start")[0] == 204
    assert daemon.request("POST", f"/containers/{cid[:12]}/start")[0] == 304
    status, rows = daemon.json("GET", "/containers/json")
    assert status == 200 and [r["Id"] for r in rows] == [cid]
    check_api_shape(rows[0], "ContainerSummary")
    deadline = time.monotonic() + 5
    while True:
        status, headers, data = daemon.request(
            "GET", "/v1.41/containers/api/logs?stdout=1&stderr=1")
        if data.count(b"\n") >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200 and headers["content-type"] == "application/vnd.docker.raw-stream"
    assert sorted([data[:8], data[12:20]]) == [b"\x01\x00\x00\x00\x00\x00\x00\x04",
                                               b"\x02\x00\x00\x00\x00\x00\x00\x04"]
    assert daemon.request("POST", "/containers/api/stop?t=0")[0] == 204
    assert daemon.request("POST", "/containers/api/stop")[0] == 304
    status, waited = daemon.json("POST", "/containers/api/wait")
    assert status == 200 and waited == {"StatusCode": 137, "Error": None}
    check_api_shape(waited, "ContainerWaitResponse")
    assert daemon.request("DELETE", "/containers/api")[0] == 204
    assert daemon.json("DELETE", "/containers/api") == (404, {"message": "No such container: api"})


def test_a_stopping_skiffd_lets_go_of_its_clients_and_the_containers_go_on(
        tmp_root: Path) -> None:
    workdir = tmp_root / f"skiffd-stopping-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    d = start_skiffd(workdir)
    clients: list[subprocess.Popen[bytes]] = []
    try:
        docker(d, "run", "-d", "--name", "quiet", "busybox", "sleep", "100")
        for args in (["logs", "-f", "quiet"], ["wait", "quiet"],
                     ["run", "--name", "attached", "busybox", "sleep", "100"]):
            clients.append(subprocess.Popen([DOCKER, *args], env=d.env,
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while d.json("GET", "/containers/attached/json")[1].get("State", {}).get(
                "Running") is not True:
            assert time.monotonic() < deadline, "the attached run never started"
            time.sleep(0.05)
        time.sleep(0.2)  # the three streams are open
        started = time.monotonic()
        stop_skiffd(d)  # and it stops cleanly: socket and pid file gone, exit 0
        assert time.monotonic() - started < 5
        # each saw its stream end: logs -f as at the end of the log; wait and run without
        # the exit they waited for (docker says "unexpected EOF")
        codes = [client.wait(10) for client in clients]
        assert codes[0] == 0 and codes[1] != 0 and codes[2] == 125, codes
        d = start_skiffd(workdir)
        names = docker(d, "ps", "--format", "{{.Names}} {{.State}}").stdout.splitlines()
        assert sorted(names) == ["attached running", "quiet running"]
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
        if d.process is None or d.process.poll() is not None:
            d = start_skiffd(workdir)
        try:
            remove_all(d)
        finally:
            stop_skiffd(d)
            shutil.rmtree(workdir, ignore_errors=True)


# -- docker-py ---------------------------------------------------------------------------------------
def test_docker_py_runs_streams_waits_and_removes(daemon: Skiffd) -> None:
    import docker as docker_py

    with docker_py_client(daemon.url, timeout=60) as client:
        assert client.containers.run("busybox", ["echo", "from py"], remove=True) == b"from py\n"
        c = client.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2; sleep 0.2; "
                                              "echo three; exit 5"], detach=True, name="py")
        streamed = b"".join(c.logs(stream=True, follow=True))
        assert streamed == b"one\ntwo\nthree\n"
        assert c.wait() == {"StatusCode": 5, "Error": None}
        assert c.logs(stdout=True, stderr=False) == b"one\nthree\n"
        c.reload()
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 5
        assert [x.name for x in client.containers.list(all=True)] == ["py"]
        c.remove()
        # attach before the start (docker-py's hijack of POST /attach), then the replay
        c = client.containers.create("busybox", ["sh", "-c", "echo one; echo two >&2"])
        attached = c.attach(stdout=True, stderr=True, stream=True, logs=True)
        c.start()
        assert b"".join(attached) == b"one\ntwo\n"
        attached.close()  # docker-py leaves the hijacked socket to its caller
        assert c.attach(stdout=True, stderr=False, logs=True) == b"one\n"
        c.remove(force=True)
        with pytest.raises(docker_py.errors.ContainerError) as failed:
            client.containers.run("busybox", ["sh", "-c", "exit 2"], remove=True)
        assert failed.value.exit_status == 2


def _threads(d: Skiffd) -> int:
    return len(os.listdir(f"/proc/{d.pid}/task"))


def test_clients_that_leave_a_wait_or_a_followed_log_free_its_thread(daemon: Skiffd) -> None:
    docker(daemon, "run", "-d", "--name", "forever", "busybox", "sleep", "100")
    clients = []
    for path in ("/containers/forever/wait", "/containers/forever/logs?stdout=1&follow=1") * 3:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(daemon.socket))
        method = "POST" if path.endswith("wait") else "GET"
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: d\r\n\r\n".encode())
        assert s.recv(4096).startswith(b"HTTP/1.1 200")  # the head: the engine call is on
        clients.append(s)
    time.sleep(0.3)
    held = _threads(daemon)  # a thread each, blocked for the container (and pool workers)
    for s in clients:
        s.close()
    deadline = time.monotonic() + 5
    while _threads(daemon) > held - 6:
        assert time.monotonic() < deadline, f"{_threads(daemon) - held + 6} threads linger"
        time.sleep(0.1)
