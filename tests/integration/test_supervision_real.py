"""Restart policies and health checks through skiffd with the real docker CLI: the monitor
restarts on-failure containers up to their count and always containers until a stop;
restarts go on while skiffd is away and a new skiffd finds them counted; a daemon start
restarts what Docker's rule says; health goes starting → unhealthy → healthy in inspect and
ps; bad values are Docker's 400s and make nothing; docker events tell each restart's die
and start and each health change."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures_daemon import Skiffd, remove_all, start_skiffd, stop_skiffd
from test_docker_cli import DOCKER, docker
from test_engine_containers import Env, clean, env  # noqa: F401
from unit.test_engine_containers_views import check_inspect_shape

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI")]


@pytest.fixture
def workdir(tmp_root: Path) -> Iterator[Path]:
    path = tmp_root / f"skiffd-supervision-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(workdir: Path) -> Iterator[list[Skiffd]]:
    """A skiffd in a list: a test may stop it and put the next one in its place."""
    held = [start_skiffd(workdir)]
    try:
        yield held
    finally:
        d = held[0]
        if d.process is None or d.process.poll() is not None:
            d = start_skiffd(workdir)
        try:
            remove_all(d)
        finally:
            stop_skiffd(d)


def inspect(d: Skiffd, ref: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(docker(d, "inspect", ref).stdout)[0]
    return doc


def until(what: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def run_d(d: Skiffd, *args: str) -> str:
    return docker(d, "run", "-d", "--network", "none", *args).stdout.strip()


def test_on_failure_restarts_up_to_its_count(daemon: list[Skiffd]) -> None:
    d = daemon[0]
    cid = run_d(d, "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 3")
    doc = until(lambda: (lambda c: c if c["State"]["Status"] == "exited" else None)(
        inspect(d, cid)))
    assert doc["RestartCount"] == 2 and doc["State"]["ExitCode"] == 3
    assert not doc["State"]["Restarting"] and not doc["State"]["Running"]
    assert doc["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert docker(d, "logs", cid).stdout == "run\n" * 3  # one log across the runs
    time.sleep(1)
    assert inspect(d, cid)["RestartCount"] == 2
    assert docker(d, "wait", cid).stdout.strip() == "3"


def test_always_restarts_until_stopped(daemon: list[Skiffd]) -> None:
    d = daemon[0]
    cid = run_d(d, "--restart", "always", "busybox", "sh", "-c", "sleep 0.2; exit 1")
    seen = set()

    def counted() -> bool:
        state = inspect(d, cid)
        seen.add((state["State"]["Status"], state["State"]["Restarting"]))
        return bool(state["RestartCount"] >= 3)
    until(counted)
    assert ("running", False) in seen
    ps = docker(d, "ps", "-a", "--format", "{{.Status}}", "-f", f"id={cid}").stdout
    assert ps.startswith(("Up ", "Restarting (1) "))
    started = time.monotonic()
    docker(d, "stop", cid)
    assert time.monotonic() - started < 5  # a back-off under way ends at once
    doc = inspect(d, cid)
    assert doc["State"]["Status"] == "exited" and not doc["State"]["Restarting"]
    count = doc["RestartCount"]
    time.sleep(1.5)
    doc = inspect(d, cid)
    assert doc["State"]["Status"] == "exited" and doc["RestartCount"] == count
    # a user's start begins the count again
    docker(d, "start", cid)
    assert inspect(d, cid)["RestartCount"] < count
    docker(d, "rm", "-f", cid)
    assert docker(d, "ps", "-aq").stdout == ""


def test_stop_and_rm_of_a_container_in_its_back_off(daemon: list[Skiffd]) -> None:
    d = daemon[0]
    cid = run_d(d, "--restart", "always", "busybox", "sh", "-c", "exit 2")
    # back-offs 0.1, 0.2, 0.4, 0.8, 1.6, 3.2 s: after 3 s it is mostly waiting
    until(lambda: inspect(d, cid)["RestartCount"] >= 5)
    doc = until(lambda: (lambda c: c if c["State"]["Status"] == "restarting" else None)(
        inspect(d, cid)))
    assert doc["State"]["Restarting"] and doc["State"]["Running"] and doc["State"]["Pid"] == 0
    assert docker(d, "ps", "--format", "{{.Status}}", "-f", f"id={cid}").stdout.startswith(
        "Restarting (2) ")
    started = time.monotonic()
    docker(d, "stop", cid)
    assert time.monotonic() - started < 3
    doc = inspect(d, cid)
    assert (doc["State"]["Status"], doc["State"]["ExitCode"]) == ("exited", 2)
    other = run_d(d, "--restart", "always", "busybox", "sh", "-c", "exit 2")
    until(lambda: inspect(d, other)["State"]["Status"] == "restarting")
    started = time.monotonic()
    docker(d, "rm", "-f", other)
    assert time.monotonic() - started < 3
    assert docker(d, "ps", "-aq", "--no-trunc").stdout.split() == [cid]


def test_restarts_go_on_while_skiffd_is_away(daemon: list[Skiffd], workdir: Path) -> None:
    d = daemon[0]
    done = run_d(d, "--restart", "on-failure:3", "busybox", "sh", "-c", "sleep 0.5; exit 7")
    going = run_d(d, "--restart", "always", "busybox", "sh", "-c", "sleep 0.5; exit 1")
    stop_skiffd(d)
    time.sleep(5)  # on-failure:3: four runs of 0.5 s and 0.7 s of back-off
    d = daemon[0] = start_skiffd(workdir)
    doc = inspect(d, done)
    assert doc["State"]["Status"] == "exited", doc["State"]
    assert (doc["RestartCount"], doc["State"]["ExitCode"]) == (3, 7)
    doc = inspect(d, going)
    assert doc["State"]["Running"] and doc["RestartCount"] >= 4
    count = doc["RestartCount"]
    until(lambda: inspect(d, going)["RestartCount"] > count)  # and goes on being counted


def test_daemon_start_restarts_always_but_not_stopped_unless_stopped(
        daemon: list[Skiffd], workdir: Path) -> None:
    d = daemon[0]
    always = run_d(d, "--restart", "always", "busybox", "sleep", "100")
    unless = run_d(d, "--restart", "unless-stopped", "busybox", "sleep", "100")
    plain = run_d(d, "busybox", "sleep", "100")
    docker(d, "stop", "-t", "0", always, unless, plain)
    stop_skiffd(d)
    d = daemon[0] = start_skiffd(workdir)
    states = {c: inspect(d, c)["State"]["Status"] for c in (always, unless, plain)}
    assert states == {always: "running", unless: "exited", plain: "exited"}


def test_health_goes_starting_unhealthy_healthy(daemon: list[Skiffd]) -> None:
    d = daemon[0]
    cid = run_d(d, "--health-cmd", "test -e /tmp/ok && echo fine", "--health-interval", "1s",
                "--health-retries", "2", "busybox", "sh", "-c",
                "sleep 4; touch /tmp/ok; sleep 100")
    doc = inspect(d, cid)
    assert doc["State"]["Health"]["Status"] == "starting"
    assert doc["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "test -e /tmp/ok && echo fine"]

    def ps() -> str:
        return str(docker(d, "ps", "--format", "{{.Status}}", "-f", f"id={cid}").stdout.strip())
    assert ps().endswith("(health: starting)")
    health = until(lambda: (lambda h: h if h["Status"] == "unhealthy" else None)(
        inspect(d, cid)["State"]["Health"]))
    assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
    assert ps().endswith("(unhealthy)")
    assert docker(d, "ps", "-q", "--no-trunc", "-f", "health=unhealthy").stdout.split() == [cid]
    health = until(lambda: (lambda h: h if h["Status"] == "healthy" else None)(
        inspect(d, cid)["State"]["Health"]))
    assert health["FailingStreak"] == 0
    last = health["Log"][-1]
    assert (last["ExitCode"], last["Output"]) == (0, "fine\n") and len(health["Log"]) <= 5
    assert ps().endswith("(healthy)")


def test_the_images_healthcheck_and_the_flags_over_it(daemon: list[Skiffd]) -> None:
    import io
    import subprocess
    import tarfile

    d = daemon[0]
    saved = subprocess.run([DOCKER, "save", "busybox"], env=d.env, capture_output=True,
                           check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = tar.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
    docker(d, "import", "-c", "HEALTHCHECK --interval=1s --retries=1 CMD test -e /tmp/ok",
           "-c", 'CMD ["sh", "-c", "sleep 2.5; touch /tmp/ok; sleep 100"]', "-", "probed:1",
           input=layer)
    try:
        cid = run_d(d, "probed:1")
        until(lambda: inspect(d, cid)["State"]["Health"]["Status"] == "unhealthy")
        until(lambda: inspect(d, cid)["State"]["Health"]["Status"] == "healthy")
        none = run_d(d, "--no-healthcheck", "probed:1")
        assert "Health" not in inspect(d, none)["State"]
        slower = run_d(d, "--health-interval", "1h", "probed:1")
        doc = inspect(d, slower)
        assert doc["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "test -e /tmp/ok"]
        assert doc["Config"]["Healthcheck"]["Interval"] == 3600 * 10**9
        time.sleep(1.5)
        assert inspect(d, slower)["State"]["Health"] == {"Status": "starting",
                                                         "FailingStreak": 0, "Log": []}
    finally:
        remove_all(d)
        docker(d, "rmi", "probed:1")


def test_health_probe_past_its_timeout_is_a_failure(daemon: list[Skiffd]) -> None:
    d = daemon[0]
    cid = run_d(d, "--health-cmd", "sleep 5", "--health-interval", "500ms",
                "--health-timeout", "300ms", "--health-retries", "1", "busybox",
                "sleep", "100")
    health = until(lambda: (lambda h: h if h["Status"] == "unhealthy" else None)(
        inspect(d, cid)["State"]["Health"]))
    assert health["Log"][-1]["ExitCode"] == -1
    assert health["Log"][-1]["Output"] == "Health check exceeded timeout (300ms)"
    plain = run_d(d, "--no-healthcheck", "busybox", "sleep", "100")
    assert "Health" not in inspect(d, plain)["State"]


def test_bad_values_are_dockers_errors_and_make_nothing(daemon: list[Skiffd]) -> None:
    d = daemon[0]
    for args, words in ((["--restart", "bogus"], "invalid restart policy: unknown policy "
                                                 "'bogus'"),
                        (["--restart", "on-failure:-1"],
                         "invalid restart policy: maximum retry count cannot be negative"),
                        (["--restart", "always:2"], "can only be used with 'on-failure'"),
                        (["--restart", "always", "--rm"],
                         "conflicting options: cannot specify both --restart and --rm"),
                        (["--health-interval", "-1s"], "--health-interval cannot be negative"),
                        (["--health-retries", "-2"], "--health-retries cannot be negative")):
        p = docker(d, "run", "-d", *args, "busybox", "true", check=False)
        assert p.returncode == 125 and words in p.stderr, (args, p.stderr)
    for body, words in (
            ({"HostConfig": {"RestartPolicy": {"Name": "always"}, "AutoRemove": True}},
             "can't create 'AutoRemove' container with restart policy"),
            ({"Healthcheck": {"Test": ["CMD", "true"], "Interval": -1}},
             "Interval in Healthcheck cannot be less than 1ms"),
            ({"Healthcheck": {"Test": ["CMD", "true"], "Retries": -1}},
             "Retries in Healthcheck cannot be negative")):
        status, doc = d.json("POST", "/containers/create",
                             {"Image": "busybox", "Cmd": ["true"], **body})
        assert status == 400 and words in doc["message"], (status, doc)
    assert docker(d, "ps", "-aq").stdout == ""


def test_the_engine_tells_each_restart_and_health_change(clean: Env) -> None:  # noqa: F811
    c = clean.containers
    seq = c.events.last_seq()
    cid = clean.run(["sh", "-c", "echo x; exit 5"], name="twice",
                    HostConfig={"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 1}})
    assert c.wait(cid)["StatusCode"] == 5  # the first exit ends a wait, as moby's waitStop
    until(lambda: c.inspect(cid)["State"]["Status"] == "exited")
    ours = [(e.action, e.attributes.get("exitCode")) for e in c.events.since(seq)
            if e.actor_id == cid and e.action in ("die", "start")]
    assert ("die", "5") in ours and ("start", None) in ours
    event = next(e for e in c.events.since(seq) if e.action == "die" and e.actor_id == cid)
    assert event.attributes["name"] == "twice" and event.attributes["image"] == "busybox"
    assert c.inspect(cid)["RestartCount"] == 1
    c.remove(cid)
    seq = c.events.last_seq()
    probed = clean.run(["sh", "-c", "sleep 1.5; touch /ok; sleep 60"],
                       Healthcheck={"Test": ["CMD", "test", "-e", "/ok"], "Interval": 500_000_000,
                                    "Retries": 1})
    until(lambda: c.inspect(probed)["State"]["Health"]["Status"] == "healthy")

    def actions_now() -> list[str]:
        return [e.action for e in c.events.since(seq) if e.actor_id == probed]
    # the event follows the state's change (as moby's SetStatus, then LogContainerEvent)
    until(lambda: "health_status: healthy" in actions_now())
    actions = actions_now()
    assert "health_status: unhealthy" in actions and "health_status: healthy" in actions
    assert actions.index("health_status: unhealthy") < actions.index("health_status: healthy")
    check_inspect_shape(c.inspect(probed))
    c.remove(probed, force=True)


def test_docker_events_tell_each_restart_and_health_change(daemon: list[Skiffd]) -> None:
    """Through ``docker events --since/--until --filter``, while skiffd watches the
    monitors: a policy restart is moby's ``die`` then ``start`` (no ``restart``, which is
    the user's ``docker restart``), each die with its exit code; a probe's results are
    ``health_status: unhealthy`` then ``health_status: healthy``."""
    d = daemon[0]
    since = f"{time.time():.9f}"
    cid = run_d(d, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
    until(lambda: inspect(d, cid)["State"]["Status"] == "exited")
    probed = run_d(d, "--health-cmd", "test -e /tmp/ok", "--health-interval", "300ms",
                   "--health-retries", "1", "busybox", "sh", "-c",
                   "sleep 1; touch /tmp/ok; sleep 60")
    until(lambda: inspect(d, probed)["State"]["Health"]["Status"] == "healthy")

    def replay(*filters: str) -> list[dict[str, Any]]:
        args = ["events", "--since", since, "--until", f"{time.time():.9f}", "--format",
                "{{json .}}"]
        for f in filters:
            args += ["--filter", f]
        return [json.loads(line) for line in docker(d, *args).stdout.splitlines()]

    runs = replay(f"container={cid}", "event=die", "event=start", "event=restart")
    assert [e["Action"] for e in runs] == ["start", "die"] * 3
    assert [e["Actor"]["Attributes"]["exitCode"] for e in runs if e["Action"] == "die"] \
        == ["3"] * 3
    health = replay(f"container={probed}", "event=health_status")
    assert [e["Action"] for e in health] == ["health_status: unhealthy",
                                             "health_status: healthy"]
    assert {e["Actor"]["Attributes"]["image"] for e in runs + health} == {"busybox"}
    docker(d, "rm", "-f", probed)


def test_kill_ends_restarts_as_moby_does(daemon: list[Skiffd]) -> None:
    d = daemon[0]
    cid = run_d(d, "--restart", "always", "busybox", "sleep", "100")
    docker(d, "kill", cid)  # SIGKILL: moby's ExitOnNext
    doc = inspect(d, cid)
    assert (doc["State"]["Status"], doc["State"]["ExitCode"]) == ("exited", 137)
    time.sleep(1)
    assert inspect(d, cid)["State"]["Status"] == "exited"
    # a signal that is not the container's stop signal leaves the policy on: the container
    # dies of it and is restarted
    other = run_d(d, "--restart", "always", "--stop-signal", "SIGUSR1", "busybox", "sh", "-c",
                  "trap 'exit 143' TERM; sleep 100 & wait")
    time.sleep(0.5)  # the trap in place
    docker(d, "kill", "-s", "TERM", other)
    doc = until(lambda: (lambda c: c if c["RestartCount"] == 1 and c["State"]["Status"] ==
                         "running" else None)(inspect(d, other)))
    assert doc["State"]["ExitCode"] == 143


def test_a_changed_policy_holds_from_the_next_exit(clean: Env) -> None:  # noqa: F811
    c = clean.containers
    cid = clean.run(["sh", "-c", "sleep 0.5; exit 4"],
                    HostConfig={"RestartPolicy": {"Name": "always"}})
    until(lambda: c.inspect(cid)["RestartCount"] >= 1)
    row = c.db.get(cid)
    assert row is not None
    row.doc["HostConfig"]["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
    c.supervisor.set_policy(row)  # what ``update --restart no`` does once it is stored
    doc = until(lambda: (lambda d: d if d["State"]["Status"] == "exited" else None)(
        c.inspect(cid)))
    count = doc["RestartCount"]
    assert doc["State"]["ExitCode"] == 4
    time.sleep(1)
    assert c.inspect(cid)["RestartCount"] == count
    c.remove(cid)


def test_docker_update_restart_reaches_the_running_monitor(daemon: list[Skiffd]) -> None:
    d = daemon[0]
    cid = run_d(d, "busybox", "sh", "-c", "sleep 1.5; exit 1")
    docker(d, "update", "--restart", "on-failure:1", cid)
    assert inspect(d, cid)["HostConfig"]["RestartPolicy"] == {"Name": "on-failure",
                                                              "MaximumRetryCount": 1}
    doc = until(lambda: (lambda c: c if c["State"]["Status"] == "exited" and
                         c["RestartCount"] == 1 else None)(inspect(d, cid)))
    assert doc["State"]["ExitCode"] == 1
    p = docker(d, "update", "--restart", "bogus", cid, check=False)
    assert p.returncode != 0 and "invalid restart policy: unknown policy 'bogus'" in p.stderr
