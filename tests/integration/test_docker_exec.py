"""`docker exec` through skiffd, with the real docker CLI, docker-py and skiff's own CLI:
output and exit codes (the process's own, 126 and 127 for one that cannot start, 1 for the
daemon's errors), -e/-u/-w/--privileged reaching the process, -d, -t through a pty, stdin
(-i, and -it with its detach keys), the
exec inspect shape, resize, removing the container under a running exec, many execs at
once. One skiffd and one long-running container serve the module."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_on_a_pty
from fixtures_daemon import (Skiffd, check_api_shape, docker_py_client, module_daemon,
                             run_client)
from test_docker_cli import DOCKER, docker

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI")]
SKIFF = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "skiff")
NOT_FOUND = ('OCI runtime exec failed: exec failed: unable to start container process: '
             'exec: "nope": executable file not found in $PATH: unknown')


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Skiffd]:
    with module_daemon(tmp_root, "exec") as d:
        docker(d, "run", "-d", "--name", "box", "--network", "none", "-e", "FROM_RUN=1",
               "busybox", "sleep", "3600")
        yield d


def skiff(d: Skiffd, *args: str, check: bool = True,
          input: bytes | None = b"") -> subprocess.CompletedProcess[str]:
    return run_client(d, [SKIFF, *args], check=check, input=input)


def test_output_and_exit_codes(daemon: Skiffd) -> None:
    p = docker(daemon, "exec", "box", "echo", "hi")
    assert (p.returncode, p.stdout, p.stderr) == (0, "hi\n", "")
    p = docker(daemon, "exec", "box", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (7, "out\n", "err\n")
    p = docker(daemon, "exec", "box", "sh", "-c", "kill -9 $$", check=False)
    assert p.returncode == 137
    # moby writes the start's error into the stream (as stdout) and sets the exec's code
    p = docker(daemon, "exec", "box", "nope", check=False)
    assert (p.returncode, p.stdout.strip()) == (127, NOT_FOUND)
    p = docker(daemon, "exec", "box", "/etc", check=False)
    assert p.returncode == 126 and '"/etc": permission denied' in p.stdout
    p = docker(daemon, "exec", "-u", "nosuch", "box", "true", check=False)
    assert (p.returncode, p.stdout.strip()) == (
        126, "unable to find user nosuch: no matching entries in passwd file")
    for client in (docker, skiff):
        p = client(daemon, "exec", "box", "sh", "-c", "exit 3", check=False)
        assert p.returncode == 3
        p = client(daemon, "exec", "box", "nope", check=False)
        assert (p.returncode, p.stdout.strip()) == (127, NOT_FOUND)


def test_env_user_workdir_privileged(daemon: Skiffd) -> None:
    for client in (docker, skiff):
        p = client(daemon, "exec", "-e", "X=1", "-e", "FROM_RUN=2", "-u", "nobody", "-w", "/tmp",
                   "box", "sh", "-c", "echo $X $FROM_RUN $HOSTNAME; id -un; pwd")
        lines = p.stdout.splitlines()
        assert lines[0].split()[:2] == ["1", "2"] and lines[1:] == ["nobody", "/tmp"]
        # the container's own env, user and folder when the exec names none
        p = client(daemon, "exec", "box", "sh", "-c", "echo $FROM_RUN; id -u; pwd; "
                   "grep CapEff /proc/self/status")
        run_env, uid, cwd, caps = p.stdout.splitlines()
        assert (run_env, uid, cwd) == ("1", "0", "/")
        privileged = client(daemon, "exec", "--privileged", "box", "grep", "CapEff",
                            "/proc/self/status").stdout
        assert int(privileged.split()[1], 16) > int(caps.split()[1], 16)
        unprivileged = client(daemon, "exec", "-u", "1000", "box", "grep", "CapEff",
                              "/proc/self/status").stdout
        assert int(unprivileged.split()[1], 16) == 0


def test_detached(daemon: Skiffd) -> None:
    for client, name in ((docker, "/tmp/d1"), (skiff, "/tmp/d2")):
        p = client(daemon, "exec", "-d", "box", "sh", "-c", f"sleep 0.2; echo done > {name}")
        assert (p.returncode, p.stdout) == (0, "")
        deadline = time.monotonic() + 10
        while docker(daemon, "exec", "box", "cat", name, check=False).stdout != "done\n":
            assert time.monotonic() < deadline, "the detached exec did not run"
            time.sleep(0.1)


def _on_a_pty(d: Skiffd, argv: list[str]) -> tuple[int, str]:
    code, out = run_on_a_pty(argv, d.env)
    return code, out.decode(errors="replace")


def test_tty_through_a_pty(daemon: Skiffd) -> None:
    for client in (DOCKER, SKIFF):
        code, out = _on_a_pty(daemon, [client, "exec", "-t", "box", "sh", "-c",
                                       "tty; stty size; echo $TERM; exit 4"])
        assert code == 4
        lines = out.replace("\r", "").splitlines()
        assert re.fullmatch(r"/dev/pts/\d+", lines[0]) and lines[1:] == ["33 99", "xterm"], out


def test_stdin(daemon: Skiffd) -> None:
    for client in (docker, skiff):
        p = client(daemon, "exec", "-i", "box", "sh", "-c", "cat; echo done", input=b"hello\n")
        assert (p.returncode, p.stdout) == (0, "hello\ndone\n")
        data = os.urandom(3 << 20)
        p = client(daemon, "exec", "-i", "box", "wc", "-c", input=data)
        assert p.stdout.strip() == str(len(data))
        # without -i the process reads an empty stdin, whatever the client sends
        p = client(daemon, "exec", "box", "cat", input=b"ignored\n")
        assert (p.returncode, p.stdout) == (0, "")


def _session(argv: list[str], env: dict[str, str], keys: list[bytes]) -> tuple[int, bytes]:
    """`argv` on a pty, typing each of `keys` once the output has been quiet a moment."""
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvpe(argv[0], argv, env)
    out = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.3)[0]:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
            elif keys:
                os.write(fd, keys.pop(0))
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def test_interactive_tty_and_detach_keys(daemon: Skiffd) -> None:
    for client in (DOCKER, SKIFF):
        code, out = _session([client, "exec", "-it", "box", "sh"], daemon.env,
                             [b"echo hi $((1+2))\r", b"exit 5\r"])
        assert code == 5 and b"hi 3\r\n" in out, out
        marker = f"sleep {900000 + int(uuid.uuid4().hex[:4], 16)}"
        code, out = _session([client, "exec", "-it", "--detach-keys", "ctrl-x", "box", "sh",
                              "-c", f"{marker} & sh"], daemon.env,
                             [b"echo before\r", b"\x18"])
        assert code == 1 and b"read escape sequence" in out, out
        # the process goes on after the detach (until the module's container goes)
        assert marker in docker(daemon, "exec", "box", "ps", "-o", "args").stdout


def test_a_stopped_paused_or_missing_container(daemon: Skiffd) -> None:
    docker(daemon, "run", "--name", "over", "--network", "none", "busybox", "true")
    cid = docker(daemon, "inspect", "-f", "{{.Id}}", "over").stdout.strip()
    for client in (docker, skiff):
        p = client(daemon, "exec", "over", "true", check=False)
        assert p.returncode == 1
        assert p.stderr.strip() == f"Error response from daemon: Container {cid} is not running"
        p = client(daemon, "exec", "nosuch", "true", check=False)
        assert p.returncode == 1
        assert p.stderr.strip() == "Error response from daemon: No such container: nosuch"
    docker(daemon, "rm", "over")
    docker(daemon, "pause", "box")
    try:
        p = docker(daemon, "exec", "box", "true", check=False)
        assert (p.returncode, p.stderr.strip()) == (
            1, "Error response from daemon: Container box is paused, unpause the container "
               "before exec")
    finally:
        docker(daemon, "unpause", "box")


def test_the_api_shapes_and_codes(daemon: Skiffd) -> None:
    status, answer = daemon.json("POST", "/containers/box/exec", {"Cmd": []})
    assert (status, answer) == (400, {"message": "No exec command specified"})
    status, answer = daemon.json("POST", "/containers/box/exec", {"Cmd": ["true"],
                                                                  "DetachKeys": "ctrl-1"})
    assert (status, answer) == (500, {"message": "Invalid escape keys (ctrl-1) provided"})
    status, answer = daemon.json("POST", "/containers/box/exec", {
        "Cmd": ["sh", "-c", "exit 2"], "User": "nobody", "DetachKeys": "ctrl-p,ctrl-q",
        "AttachStdout": True})
    assert status == 201 and len(answer["Id"]) == 64, answer
    eid = answer["Id"]
    status, doc = daemon.json("GET", f"/exec/{eid}/json")
    assert status == 200
    check_api_shape(doc, "ExecInspectResponse")
    assert (doc["Running"], doc["ExitCode"], doc["Pid"], doc["DetachKeys"]) == \
        (False, None, 0, "EBE=")
    assert doc["ProcessConfig"] == {"tty": False, "entrypoint": "sh",
                                    "arguments": ["-c", "exit 2"], "privileged": False,
                                    "user": "nobody"}
    status, _ = daemon.json("POST", f"/exec/{eid}/start", {"Detach": True})
    assert status == 200
    deadline = time.monotonic() + 10
    while (doc := daemon.json("GET", f"/exec/{eid}/json")[1])["ExitCode"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    check_api_shape(doc, "ExecInspectResponse")
    assert (doc["Running"], doc["ExitCode"]) == (False, 2) and doc["Pid"] > 0
    status, answer = daemon.json("POST", f"/exec/{eid}/start", {"Detach": True})
    assert (status, answer) == (409, {"message": f"Error: Exec command {eid} has already run"})
    status, answer = daemon.json("GET", "/exec/0123/json")
    assert (status, answer) == (404, {"message": "No such exec instance: 0123"})
    status, answer = daemon.json("POST", "/exec/0123/start", {})
    assert status == 404
    status, answer = daemon.json("POST", f"/exec/{eid}/resize?h=x&w=1")
    assert (status, answer) == (400, {"message": 'strconv.Atoi: parsing "x": invalid syntax'})
    status, answer = daemon.json("POST", f"/exec/{eid}/resize?h=10&w=10")
    assert status == 200


def test_docker_py_exec_run(daemon: Skiffd) -> None:
    with docker_py_client(daemon.url, timeout=60) as client:
        box = client.containers.get("box")
        result = box.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (result.exit_code, result.output) == (3, b"out\nerr\n")
        result = box.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
        assert (result.exit_code, result.output) == (0, (b"out\n", b"err\n"))
        result = box.exec_run(["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.05; done"],
                              stream=True)
        assert b"".join(result.output) == b"1\n2\n3\n"
        _collect_streams()
        result = box.exec_run(["sh", "-c", "echo a; echo b >&2"], stream=True, demux=True)
        got = list(result.output)
        _collect_streams()
        assert b"".join(o for o, _ in got if o) == b"a\n"
        assert b"".join(e for _, e in got if e) == b"b\n"
        result = box.exec_run("nope")
        assert result.exit_code == 127 and result.output.startswith(b"OCI runtime exec failed")
        result = box.exec_run("id -un", user="nobody", environment={"A": "1"}, workdir="/tmp")
        assert (result.exit_code, result.output) == (0, b"nobody\n")
        result = box.exec_run("tty", tty=True)
        assert result.exit_code == 0 and re.fullmatch(rb"/dev/pts/\d+\r\n", result.output)


def _collect_streams() -> None:
    """docker-py leaves a streamed exec's socket to the garbage collector: collect it now,
    not in whatever later moment the collector runs."""
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_removing_the_container_ends_its_running_exec(daemon: Skiffd) -> None:
    docker(daemon, "run", "-d", "--name", "doomed", "--network", "none", "busybox",
           "sleep", "3600")
    execing = subprocess.Popen([DOCKER, "exec", "doomed", "sh", "-c", "echo started; sleep 3600"],
                               env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert execing.stdout is not None
        assert execing.stdout.readline() == b"started\n"
        docker(daemon, "rm", "-f", "doomed")
        code = execing.wait(timeout=20)
    finally:
        if execing.poll() is None:
            execing.kill()
        _, err = execing.communicate()
    # The CLI asks for the exit code once its stream ends; that races with the removal, in
    # dockerd as here: 137 when it asks first, else moby's 404 for an exec whose container
    # is gone (getExecConfig's "No such container: <exec id>"), which the CLI exits 1 on.
    assert (code, b"") == (137, err) or (code == 1 and b"No such container: " in err), err
    assert docker(daemon, "ps", "-aq", "--filter", "name=doomed").stdout == ""


def test_many_execs_at_once(daemon: Skiffd) -> None:
    results: dict[int, tuple[int, str]] = {}

    def one(i: int) -> None:
        p = docker(daemon, "exec", "box", "sh", "-c", f"echo {i}; exit {i % 7}", check=False)
        results[i] = (p.returncode, p.stdout)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {i: (i % 7, f"{i}\n") for i in range(24)}
    # every exec parent was reaped: skiffd has no zombie children left
    pid = daemon.process.pid
    deadline = time.monotonic() + 5
    while _zombies_of(pid):
        assert time.monotonic() < deadline, _zombies_of(pid)
        time.sleep(0.05)


def _zombies_of(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            found.append(int(name))
    return found
