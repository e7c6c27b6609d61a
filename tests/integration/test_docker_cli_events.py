"""Events end to end through skiffd, with the real docker CLI, docker-py and skiff: a run's
create, start, die (exitCode) and destroy replayed in order between --since and --until in
the spec's EventMessage shape; a followed stream that sees a start made while it runs;
filters by container, label, type, image and event; stop, kill, restart and image events;
docker's 400s; an exit found by reconcile after a skiffd restart told once; a stream that
ends when skiffd stops; attach, detach and the exec events as dockerd tells them. And `system df` / `system prune` from both CLIs against skiffd."""

from __future__ import annotations

import json
import select
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from fixtures_daemon import Skiffd, check_api_shape, docker_py_client, remove_all, run_client
from fixtures_registry import Registry
from test_docker_cli import DOCKER, docker
from test_docker_cli_interactive import CTRL_P, CTRL_Q, Terminal, at_terminal, terminals  # noqa: F401

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI")]
SKIFF = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "skiff")
LEGACY = ("status", "id", "from")


def skiff(d: Skiffd, *args: str, check: bool = True,
          input: bytes | None = b"") -> subprocess.CompletedProcess[str]:
    return run_client(d, [SKIFF, *args], check=check, input=input)


def now() -> str:
    return f"{time.time():.9f}"


def replay(d: Skiffd, since: str, *filters: str) -> list[dict[str, Any]]:
    """The events from `since` until now, through the docker CLI, as JSON."""
    args = ["events", "--since", since, "--until", now(), "--format", "{{json .}}"]
    for f in filters:
        args += ["--filter", f]
    return [json.loads(line) for line in docker(d, *args).stdout.splitlines()]


def actions(events: list[dict[str, Any]]) -> list[str]:
    return [e["Action"] for e in events]


def shape(event: dict[str, Any]) -> None:
    check_api_shape({k: v for k, v in event.items() if k not in LEGACY}, "EventMessage")


def test_a_runs_events_in_order_with_dockers_fields(daemon: Skiffd) -> None:  # noqa: F811
    since = now()
    p = docker(daemon, "run", "--rm", "--name", "ev-run", "--label", "team=a", "busybox",
               "sh", "-c", "exit 3", check=False)
    assert p.returncode == 3, p.stderr
    found = replay(daemon, since, "container=ev-run", "event=create", "event=start",
                   "event=die", "event=destroy")
    assert actions(found) == ["create", "start", "die", "destroy"]
    cid = found[0]["Actor"]["ID"]
    for event in found:
        shape(event)
        assert event["Type"] == "container" and event["scope"] == "local"
        assert event["Actor"]["ID"] == event["id"] == cid and len(cid) == 64
        assert event["from"] == "busybox" and event["status"] == event["Action"]
        attributes = event["Actor"]["Attributes"]
        assert {k: attributes[k] for k in ("image", "name", "team")} == {
            "image": "busybox", "name": "ev-run", "team": "a"}
        assert event["time"] == event["timeNano"] // 1_000_000_000
    assert found[2]["Actor"]["Attributes"]["exitCode"] == "3"
    assert [e["timeNano"] for e in found] == sorted(e["timeNano"] for e in found)
    # the default line: time, type, action, ID and the sorted attributes
    line = docker(daemon, "events", "--since", since, "--until", now(), "--filter",
                  "event=die").stdout.splitlines()[-1]
    assert line.endswith(f" container die {cid} (exitCode=3, image=busybox, name=ev-run, "
                         f"team=a)"), line


def wait_for_listeners(d: Skiffd, count: int) -> None:
    deadline = time.monotonic() + 10
    while d.json("GET", "/info")[1]["NEventsListener"] < count:
        assert time.monotonic() < deadline, "the events stream never subscribed"
        time.sleep(0.02)


def read_line(p: subprocess.Popen[bytes], timeout: float = 10) -> str:
    assert p.stdout is not None
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    assert ready, "no event line in time"
    return p.stdout.readline().decode()


def test_a_followed_stream_sees_a_start_made_while_it_runs(daemon: Skiffd) -> None:  # noqa: F811
    p = subprocess.Popen([DOCKER, "events", "--filter", "event=start", "--format",
                          "{{json .}}"], env=daemon.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        wait_for_listeners(daemon, 1)
        cid = docker(daemon, "run", "-d", "--name", "ev-follow", "busybox",
                     "true").stdout.strip()
        event = json.loads(read_line(p))
        shape(event)
        assert (event["Action"], event["Actor"]["ID"]) == ("start", cid)
        assert event["Actor"]["Attributes"]["name"] == "ev-follow"
        assert p.poll() is None  # it goes on following
    finally:
        p.terminate()
        p.communicate(timeout=10)


def test_filters_by_container_label_type_image_and_event(daemon: Skiffd) -> None:  # noqa: F811
    since = now()
    docker(daemon, "create", "--name", "ev-a", "--label", "k=1", "busybox", "true")
    docker(daemon, "create", "--name", "ev-b", "--label", "k=2", "busybox", "true")
    docker(daemon, "tag", "busybox", "ev-img:1")
    docker(daemon, "rmi", "ev-img:1")
    names = [e["Actor"]["Attributes"].get("name") for e in replay(daemon, since,
                                                                 "container=ev-a")]
    assert names == ["ev-a"]
    assert [e["Actor"]["Attributes"]["name"] for e in replay(daemon, since, "label=k=2")] \
        == ["ev-b"]
    images = replay(daemon, since, "type=image")
    assert actions(images) == ["tag", "untag"]
    assert images[0]["Actor"]["Attributes"]["name"] == "ev-img:1"
    assert images[1]["Actor"]["ID"] == images[1]["Actor"]["Attributes"]["name"]
    assert images[1]["Actor"]["ID"].startswith("sha256:")
    assert actions(replay(daemon, since, "image=ev-img")) == ["tag"]
    assert len(replay(daemon, since, "image=busybox", "type=container")) == 2
    assert replay(daemon, since, "event=start") == []
    assert replay(daemon, since, "type=volume") == []


def test_stop_kill_restart_prune_and_image_events(daemon: Skiffd) -> None:  # noqa: F811
    since = now()
    docker(daemon, "run", "-d", "--name", "ev-life", "busybox", "sleep", "100")
    docker(daemon, "stop", "-t", "1", "ev-life")
    docker(daemon, "start", "ev-life")
    docker(daemon, "kill", "-s", "USR1", "ev-life")
    docker(daemon, "restart", "-t", "0", "ev-life")
    docker(daemon, "rm", "-f", "ev-life")
    docker(daemon, "container", "prune", "-f")
    found = replay(daemon, since, "type=container")
    assert [a for a in actions(found) if a != "kill"] == [
        "create", "start", "die", "stop",  # stop -t 1
        "start",
        "die", "stop", "start", "restart",  # restart -t 0
        "die", "destroy", "prune"]  # rm -f, container prune
    # sleep as PID 1 ignores SIGTERM and USR1: each stop ends with SIGKILL, as rm -f does
    signals = [e["Actor"]["Attributes"]["signal"] for e in found if e["Action"] == "kill"]
    assert signals == ["15", "9", "10", "15", "9", "9"]
    assert actions(found).index("kill") == 2 and found[-4]["Action"] == "kill"
    assert [e["Actor"]["Attributes"]["exitCode"] for e in found if e["Action"] == "die"] \
        == ["137", "137", "137"]
    prune = found[-1]
    assert prune["Actor"] == {"ID": "", "Attributes": {"reclaimed": "0"}}
    shape(prune)


def test_attach_detach_and_exec_events(daemon: Skiffd,  # noqa: F811
                                      terminals: list[Terminal]) -> None:  # noqa: F811
    """What dockerd 20.10 was seen to tell, each with the container's name and image:
    ``attach`` when a client attaches; ``detach`` when the daemon reads the detach keys
    (a client that sends them, here docker-py's socket) — not when the docker CLI, which
    reads them itself, leaves; an exec's ``exec_create: CMD ARGS`` and ``exec_start``
    (moby's text: entrypoint, space, arguments), ``exec_die`` with its exit code, and
    ``exec_detach`` for a TTY exec whose client sent the keys."""
    since = now()
    cid = docker(daemon, "run", "-dit", "--name", "ev-attach", "busybox", "sh").stdout.strip()
    t = at_terminal(terminals, daemon, DOCKER, "attach", "ev-attach")
    t.wait_raw()
    t.send(b"echo one\r")
    t.expect(b"\none\r\n")
    t.send(CTRL_P + CTRL_Q)
    t.wait()
    with docker_py_client(daemon.url) as client:
        attached = client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1,
                                                         "stream": 1})
        try:
            attached._sock.sendall(CTRL_P + CTRL_Q)  # the daemon reads the keys
            attached._sock.settimeout(10)
            while attached._sock.recv(4096):  # until skiffd ends the stream
                pass
        finally:
            attached._sock.close()
            attached.close()
        assert docker(daemon, "exec", "ev-attach", "sh", "-c", "exit 7",
                      check=False).returncode == 7
        eid = client.api.exec_create(cid, ["sh"], stdin=True, tty=True)["Id"]
        sock = client.api.exec_start(eid, tty=True, socket=True)
        try:
            sock._sock.sendall(CTRL_P + CTRL_Q)
            sock._sock.settimeout(10)
            while sock._sock.recv(4096):
                pass
        finally:
            sock._sock.close()
            sock.close()
        assert client.api.exec_inspect(eid)["Running"]  # the exec goes on
    found = replay(daemon, since, "container=ev-attach", "event=attach", "event=detach",
                   "event=exec_die", "event=exec_detach")
    assert actions(found) == ["attach", "attach", "detach", "exec_die", "exec_detach"]
    for event in found:
        shape(event)
        assert event["Actor"]["ID"] == cid
        assert event["Actor"]["Attributes"]["name"] == "ev-attach"
        assert event["Actor"]["Attributes"]["image"] == "busybox"
    assert found[3]["Actor"]["Attributes"]["exitCode"] == "7"
    assert found[4]["Actor"]["Attributes"]["execID"] == eid
    execs = [a for a in actions(replay(daemon, since, "container=ev-attach"))
             if a.startswith("exec_")]
    assert execs == ["exec_create: sh -c exit 7", "exec_start: sh -c exit 7", "exec_die",
                     "exec_create: sh ", "exec_start: sh ", "exec_detach"]


def test_bad_times_and_filters_are_400(daemon: Skiffd) -> None:  # noqa: F811
    for query, words in [
        ("filters=" + quote("{nope"), "invalid filters"),
        ("filters=" + quote('{"evnt":{"start":true}}'), "invalid filter 'evnt'"),
        ("since=20&until=10", "`since` time (20) cannot be after `until` time (10)"),
        ("since=yesterday", "failed to parse value as time or duration"),
    ]:
        status, doc = daemon.json("GET", f"/events?{query}")
        assert status == 400 and words in doc["message"], (query, doc)
    p = docker(daemon, "events", "--since", "20", "--until", "10", check=False)
    assert p.returncode == 1 and "cannot be after `until` time" in p.stderr


def test_docker_py_reads_replayed_and_followed_events(daemon: Skiffd) -> None:  # noqa: F811
    since = time.time()
    docker(daemon, "create", "--name", "ev-py", "busybox", "true")
    with docker_py_client(daemon.url) as client:
        found = list(client.events(since=since, until=time.time() + 0.5, decode=True,
                                   filters={"container": "ev-py"}))
        assert actions(found) == ["create"]
        stream = client.events(decode=True, filters={"event": "start"})
        try:
            client.containers.get("ev-py").start()
            event = next(stream)
            assert (event["Action"], event["Actor"]["Attributes"]["name"]) == (
                "start", "ev-py")
        finally:
            stream.close()


def test_docker_system_df_and_prune(daemon: Skiffd) -> None:  # noqa: F811
    docker(daemon, "run", "-d", "--name", "ev-up", "busybox", "sh", "-c",
           "echo hello > /f; exec sleep 100")
    stopped = docker(daemon, "run", "--name", "ev-down", "busybox", "true").stdout
    assert stopped == ""
    status, usage = daemon.json("GET", "/system/df")
    assert status == 200 and usage["Volumes"] == [] and usage["BuildCache"] == []
    for image in usage["Images"]:
        check_api_shape(image, "ImageSummary")
    rows = {c["Names"][0]: c for c in usage["Containers"]}
    assert set(rows) == {"/ev-up", "/ev-down"}
    for c in rows.values():
        check_api_shape(c, "ContainerSummary")
        assert c["SizeRootFs"] > c["SizeRw"] >= 0
    assert rows["/ev-up"]["SizeRw"] >= len("hello\n")  # what it wrote, in its upper layer
    table = docker(daemon, "system", "df").stdout.splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert table[2].split()[:3] == ["Containers", "2", "1"]
    verbose = docker(daemon, "system", "df", "-v").stdout
    assert "Containers space usage:" in verbose and "ev-up" in verbose
    assert skiff(daemon, "system", "df").stdout == docker(daemon, "system", "df").stdout
    ours = skiff(daemon, "system", "df", "-v").stdout
    assert [line.split()[:1] for line in ours.splitlines()] == \
        [line.split()[:1] for line in verbose.splitlines()]
    def verbose_json(p: subprocess.CompletedProcess[str]) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(p.stdout)
        for rows in doc.values():
            for row in rows:  # ages move on between the two commands
                for age in ("RunningFor", "CreatedSince"):
                    row.pop(age, None)
        return doc

    theirs = verbose_json(docker(daemon, "system", "df", "-v", "--format", "{{json .}}"))
    assert verbose_json(skiff(daemon, "system", "df", "-v", "--format", "json")) == theirs
    assert {c["Names"] for c in theirs["Containers"]} == {"ev-up", "ev-down"}
    down = rows["/ev-down"]["Id"]
    out = docker(daemon, "system", "prune", "-f").stdout
    assert out.startswith(f"Deleted Containers:\n{down}\n\n")
    assert out.endswith("Total reclaimed space: 0B\n")
    assert docker(daemon, "ps", "-a", "--format", "{{.Names}}").stdout == "ev-up\n"
    docker(daemon, "create", "--name", "ev-again", "busybox", "true")
    p = skiff(daemon, "system", "prune", "-f", "--volumes")
    assert p.stdout.startswith("Deleted Containers:\n") and "Total reclaimed space:" in p.stdout
    if "404" in p.stderr:  # no volumes route until the volumes slice lands
        assert "volumes were not pruned" in p.stderr
    p = skiff(daemon, "system", "prune", input=b"n\n")
    assert p.stdout.startswith("WARNING! This will remove:\n  - all stopped containers\n")
    assert "Total reclaimed space" not in p.stdout
    assert docker(daemon, "ps", "-a", "--format", "{{.Names}}").stdout == "ev-up\n"


def test_skiffs_events_command(daemon: Skiffd) -> None:  # noqa: F811
    since = now()
    docker(daemon, "create", "--name", "ev-skiff", "--label", "z=1", "busybox", "true")
    until = now()
    ours = skiff(daemon, "events", "--since", since, "--until", until).stdout
    theirs = docker(daemon, "events", "--since", since, "--until", until).stdout
    assert ours == theirs and " container create " in ours and "(image=busybox, " in ours
    fmt = skiff(daemon, "system", "events", "--since", since, "--until", until, "--filter",
                "label=z=1", "--format", "{{json .}}").stdout
    assert json.loads(fmt)["Actor"]["Attributes"]["name"] == "ev-skiff"
    assert fmt == docker(daemon, "events", "--since", since, "--until", until, "--filter",
                         "label=z=1", "--format", "{{json .}}").stdout
    assert skiff(daemon, "events", "--since", "1m", "--until", "0s", "--format",
                 "{{.Action}}", "--filter", "container=nothing-here").stdout == ""


@pytest.fixture
def own_skiffd(skiffd_factory: Callable[..., Skiffd]) -> Iterator[Skiffd]:
    d = skiffd_factory()
    yield d
    remove_all(d)


@pytest.mark.slow
def test_an_exit_while_skiffd_was_away_is_told_once_and_streams_end_at_stop(
        own_skiffd: Skiffd, skiffd_factory: Callable[..., Skiffd]) -> None:
    from fixtures_daemon import start_skiffd, stop_skiffd

    d = own_skiffd
    docker(d, "run", "-d", "--name", "ev-away", "busybox", "sleep", "3")
    follower = subprocess.Popen([DOCKER, "events"], env=d.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    try:
        wait_for_listeners(d, 1)
        began = time.monotonic()
        stop_skiffd(d)
        out, err = follower.communicate(timeout=10)
        assert follower.returncode == 0, err
        assert time.monotonic() - began < 5
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    time.sleep(3.5)  # the container exits while no skiffd runs
    again = start_skiffd(d.workdir)
    d.process = again.process
    found = replay(d, "0", "container=ev-away")
    assert actions(found) == ["die"]  # told by reconcile; the old log went with skiffd
    assert found[0]["Actor"]["Attributes"]["exitCode"] == "0"
    time.sleep(0.6)  # a wait's recheck, an inspect: nothing tells it twice
    docker(d, "inspect", "ev-away")
    assert actions(replay(d, "0", "container=ev-away")) == ["die"]


def test_an_oom_kill_is_told_before_its_die(daemon: Skiffd) -> None:  # noqa: F811
    since = now()
    p = docker(daemon, "run", "--name", "ev-oom", "--memory", "16m", "--memory-swap", "16m",
               "busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1",
               check=False)
    assert p.returncode == 137, p.stderr
    assert docker(daemon, "inspect", "-f", "{{.State.OOMKilled}}", "ev-oom").stdout == "true\n"
    found = replay(daemon, since, "container=ev-oom", "event=oom", "event=die")
    assert actions(found) == ["oom", "die"]
    assert found[1]["Actor"]["Attributes"]["exitCode"] == "137"
    assert found[0]["Actor"]["Attributes"]["name"] == "ev-oom"


def test_save_load_import_delete_and_prune_tell_image_events(
        daemon: Skiffd, tmp_path: Path) -> None:  # noqa: F811
    image_id = json.loads(docker(daemon, "inspect", "busybox").stdout)[0]["Id"]
    since = now()
    archive = tmp_path / "busybox.tar"
    docker(daemon, "save", "-o", str(archive), "busybox")
    docker(daemon, "load", "-i", str(archive))
    docker(daemon, "create", "--name", "ev-export", "busybox", "true")
    rootfs = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", str(tmp_path), "-cf", str(rootfs), "busybox.tar"], check=True)
    new_id = docker(daemon, "import", str(rootfs), "ev-imported:1").stdout.strip()
    docker(daemon, "rmi", "ev-imported:1")
    docker(daemon, "image", "prune", "-f")
    found = replay(daemon, since, "type=image")
    # an import with a name tags it, as moby's TagImageWithReference tells
    assert actions(found) == ["save", "load", "tag", "import", "untag", "delete", "prune"]
    for event in found[:2]:
        assert event["Actor"] == {"ID": image_id, "Attributes": {"name": image_id}}
    assert found[2]["Actor"] == {"ID": new_id, "Attributes": {"name": "ev-imported:1"}}
    assert found[3]["Actor"]["ID"] == new_id == found[3]["Actor"]["Attributes"]["name"]
    assert [e["Actor"]["ID"] for e in found[4:6]] == [new_id, new_id]
    assert found[6]["Actor"]["Attributes"] == {"reclaimed": "0"}
    for event in found:
        shape(event)


def test_push_and_pull_tell_their_reference(daemon: Skiffd,  # noqa: F811
                                           registry: Registry) -> None:
    name = registry.ref(f"skiff-events/{uuid.uuid4().hex[:8]}:v1")
    repo = name.rpartition(":")[0]
    docker(daemon, "tag", "busybox", name)
    since = now()
    docker(daemon, "push", name)
    docker(daemon, "rmi", name)
    docker(daemon, "pull", name)
    found = replay(daemon, since, "type=image", "event=push", "event=pull")
    # dockerd's actor is the reference as the CLI prints it, its name the repository
    assert [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]["name"])
            for e in found] == [("push", name, repo), ("pull", name, repo)]
    assert actions(replay(daemon, since, f"image={repo}", "event=pull")) == ["pull"]
    docker(daemon, "rmi", name)


def test_concurrent_runs_each_tell_one_die_with_their_code(daemon: Skiffd) -> None:  # noqa: F811
    import threading

    since = now()
    codes = {f"ev-many-{n}": n for n in range(10)}
    failures: list[str] = []

    def run(name: str, code: int) -> None:
        p = docker(daemon, "run", "--rm", "--name", name, "busybox", "sh", "-c",
                   f"exit {code}", check=False)
        if p.returncode != code:
            failures.append(f"{name}: {p.returncode} {p.stderr}")

    threads = [threading.Thread(target=run, args=item) for item in codes.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    found = replay(daemon, since, "type=container")
    for name, code in codes.items():
        mine = [e for e in found if e["Actor"]["Attributes"].get("name") == name]
        assert [a for a in actions(mine) if a in ("create", "start", "die", "destroy")] == [
            "create", "start", "die", "destroy"], (name, actions(mine))
        assert [e["Actor"]["Attributes"]["exitCode"] for e in mine
                if e["Action"] == "die"] == [str(code)]


def test_a_killed_monitor_tells_one_die(daemon: Skiffd) -> None:  # noqa: F811
    import os
    import signal

    since = now()
    cid = docker(daemon, "run", "-d", "--name", "ev-orphan", "busybox", "sleep",
                 "100").stdout.strip()
    pid_file = daemon.run / "containers" / cid / "monitor.pid"
    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)  # the monitor skiffd made
    assert docker(daemon, "wait", "ev-orphan").stdout == "137\n"
    docker(daemon, "inspect", "ev-orphan")  # a second look finds it told already
    dies = replay(daemon, since, "container=ev-orphan", "event=die")
    assert [e["Actor"]["Attributes"]["exitCode"] for e in dies] == ["137"]
