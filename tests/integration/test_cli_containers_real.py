"""The real `skiff` command (.venv/bin/skiff, the `python -S` launcher) running containers
through a real skiffd, with the docker CLI against the same daemon as the witness of what
the output should be: run (attached, --rm, -d, the exit codes), ps, logs, stop, kill, wait,
start -a, restart, inspect, rm, container prune. One skiffd serves the module; every test
removes its containers before the daemon stops."""

from __future__ import annotations

import json
import time

import pytest
from fixtures_daemon import Skiffd
from test_cli_images import docker, skiff
from test_docker_cli_containers import check_logs_follow

pytestmark = pytest.mark.root


def test_run_rm_echo_and_exit_codes(daemon: Skiffd) -> None:  # noqa: F811
    p = skiff(daemon, "run", "--rm", "busybox", "echo", "hi")
    assert (p.returncode, p.stdout, p.stderr) == (0, "hi\n", "")
    p = skiff(daemon, "run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
              check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    p = skiff(daemon, "run", "--rm", "busybox", "nope", check=False)
    assert p.returncode == 127 and p.stdout == ""
    assert p.stderr.startswith("skiff: Error response from daemon: ")
    assert "executable file not found" in p.stderr
    assert p.stderr.endswith("\n\nRun 'skiff run --help' for more information\n")
    p = skiff(daemon, "run", "--pull", "never", "nothing/here", check=False)
    assert p.returncode == 125 and "No such image: nothing/here:latest" in p.stderr
    p = skiff(daemon, "run", "--rm", "--network", "nosuchnet", "busybox", "true", check=False)
    assert p.returncode == 125 and "network nosuchnet not found" in p.stderr
    # only the exited `sh -c` is left (the others were --rm or never made)
    assert len(skiff(daemon, "ps", "-a", "-q").stdout.split()) == 1


def test_run_options_reach_the_process(daemon: Skiffd) -> None:  # noqa: F811
    p = skiff(daemon, "run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "1000:1000", "-h",
              "myhost", "--memory", "64m", "--pids-limit", "50", "busybox", "sh", "-c",
              'echo "$FOO $(pwd) $(id -u):$(id -g) $(hostname)"')
    assert p.stdout == "bar /tmp 1000:1000 myhost\n"
    cid = skiff(daemon, "create", "--name", "flags", "--label", "tier=web", "--cpus", "0.5",
                "--stop-signal", "SIGINT", "--stop-timeout", "4", "--read-only", "--cap-add",
                "net_admin", "--cap-drop", "chown", "busybox", "true").stdout.strip()
    doc = json.loads(docker(daemon, "inspect", cid).stdout)[0]
    assert doc["Config"]["Labels"] == {"tier": "web"}
    assert (doc["Config"]["StopSignal"], doc["Config"]["StopTimeout"]) == ("SIGINT", 4)
    host = doc["HostConfig"]
    assert host["NanoCpus"] == 500_000_000 and host["ReadonlyRootfs"] is True
    assert host["CapAdd"] == ["CAP_NET_ADMIN"] and host["CapDrop"] == ["CAP_CHOWN"]


def test_detached_lifecycle_beside_docker(daemon: Skiffd) -> None:  # noqa: F811
    cid = skiff(daemon, "run", "-d", "--name", "web", "busybox", "sh", "-c",
                "echo start; echo oops >&2; exec sleep 100").stdout.strip()
    assert len(cid) == 64
    skiff(daemon, "run", "--name", "done", "busybox", "true")
    fields = "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.Names}}\\t{{.State}}\\t{{.Ports}}"
    for args in (["ps"], ["ps", "-a", "--format", fields], ["ps", "-q"], ["ps", "-a", "-q"],
                 ["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}} {{.Labels}}"],
                 ["ps", "-a", "-n", "1", "--format", "{{.Names}}"],
                 ["ps", "-a", "--format", "{{json .}}"]):
        mine, theirs = skiff(daemon, *args).stdout, docker(daemon, *args).stdout
        if args == ["ps"] or "json" in args[-1]:
            # the CREATED and STATUS columns tick between the two runs
            mine, theirs = _without_times(mine), _without_times(theirs)
        assert mine == theirs, args
    deadline = time.monotonic() + 5
    while (p := skiff(daemon, "logs", "web")).stdout != "start\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (p.stdout, p.stderr) == ("start\n", "oops\n")
    assert skiff(daemon, "logs", "-t", "web").stdout == docker(daemon, "logs", "-t", "web").stdout
    for args in (["inspect", "web"], ["container", "inspect", "-f", "{{.State.Status}}", "web"],
                 ["inspect", "-f", "{{.Id}} {{json .Config.Cmd}}", "web", "busybox"]):
        assert skiff(daemon, *args).stdout == docker(daemon, *args).stdout, args
    started = time.monotonic()
    assert skiff(daemon, "stop", "-t", "1", "web").stdout == "web\n"
    assert 0.9 < time.monotonic() - started < 5
    assert skiff(daemon, "wait", "web").stdout == "137\n"
    assert skiff(daemon, "rm", "web", "done").stdout == "web\ndone\n"
    assert skiff(daemon, "ps", "-a", "-q").stdout == ""
    p = skiff(daemon, "rm", "web", check=False)
    assert (p.returncode, p.stderr) == (1, "Error response from daemon: No such container: web\n")


def _without_times(text: str) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            for key in ("RunningFor", "Status", "CreatedAt"):
                doc.pop(key, None)
            out.append(json.dumps(doc, sort_keys=True))
        else:
            out.append(" ".join(line.split()[:1]))  # the ID column (or the header's first word)
    return "\n".join(out)


def test_start_attached_restart_kill_prune(daemon: Skiffd) -> None:  # noqa: F811
    skiff(daemon, "create", "--name", "again", "busybox", "sh", "-c", "echo ran; exit 4")
    for _ in range(2):  # created, then exited
        p = skiff(daemon, "start", "-a", "again", check=False)
        assert (p.returncode, p.stdout) == (4, "ran\n")
    skiff(daemon, "run", "-d", "--name", "loop", "busybox", "sleep", "100")
    pid = skiff(daemon, "inspect", "-f", "{{.State.Pid}}", "loop").stdout
    assert skiff(daemon, "restart", "-t", "0", "loop").stdout == "loop\n"
    assert skiff(daemon, "inspect", "-f", "{{.State.Pid}}", "loop").stdout != pid
    assert skiff(daemon, "kill", "-s", "KILL", "loop").stdout == "loop\n"
    assert skiff(daemon, "wait", "loop").stdout == "137\n"
    p = skiff(daemon, "kill", "loop", check=False)
    assert p.returncode == 1 and "is not running" in p.stderr
    out = skiff(daemon, "container", "prune", "-f").stdout
    assert out.startswith("Deleted Containers:\n") and out.endswith("Total reclaimed space: 0B\n") \
        or "Total reclaimed space:" in out
    assert skiff(daemon, "ps", "-a", "-q").stdout == ""


def test_logs_follow(daemon: Skiffd) -> None:  # noqa: F811
    check_logs_follow(daemon, skiff)
