"""skiffd under stress and abuse, through its socket: `kill -9` of skiffd while containers
run and others start (the running ones go on and keep logging; a new skiffd shows every
container with its true state and exit code, and keeps no half-made one); `kill -9` of a
monitor (its container is reported exited with "monitor gone", and `rm -f` leaves nothing);
`kill -9` of the monitors' zygote (the next start forks from a new one, the monitors go on);
50 containers created and started at once through the API (all run, no log line lost);
malformed, unknown and wrong input answered with Docker's 400/404/409 and nothing changed;
a create that fails half-way (after its snapshot was made) leaves no rootfs, mount, folder
or row.

What a container leaves is looked for where skiffd keeps it: $SKIFF_ROOT/containers and
/snapshots, $SKIFF_RUN/containers, /runtime and /netns, the mount table, and its cgroup
(/sys/fs/cgroup/*/skiff/<id>, made at start)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from fixtures_daemon import Skiffd, remove_all, start_skiffd, stop_skiffd
from test_engine_containers import alive

pytestmark = pytest.mark.root
NONE = {"NetworkMode": "none"}




# -- what skiffd holds ---------------------------------------------------------------------
def footprint(d: Skiffd) -> dict[str, set[str]]:
    """Every trace of a container in `d`'s folders and the mount table (names: ids)."""
    found: dict[str, set[str]] = {}
    for kind, folder in (("rows' folders", d.root / "containers"),
                         ("snapshots", d.root / "snapshots"),
                         ("bundles", d.run / "containers"), ("runtime", d.run / "runtime"),
                         ("netns", d.run / "netns")):
        # (not a removal's renamed folders, whose trees a thread is deleting)
        found[kind] = ({n for n in os.listdir(folder) if not n.startswith(".rm-")}
                       if folder.is_dir() else set())
    found["mounts"] = {line.split()[1] for line in Path("/proc/self/mounts").read_text()
                       .splitlines() if str(d.workdir) in line.split()[1]}
    return found


def traces_of(d: Skiffd, cid: str) -> list[str]:
    left = [f"{kind} {cid[:12]}" for kind, names in footprint(d).items()
            if kind != "mounts" and cid in names]
    left += [m for m in footprint(d)["mounts"] if cid in m]
    left += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/skiff/{cid}")]
    return left


def run(d: Skiffd, cmd: list[str], name: str | None = None) -> str:
    query = f"?name={name}" if name else ""
    status, made = d.json("POST", f"/containers/create{query}",
                          {"Image": "busybox", "Cmd": cmd, "HostConfig": NONE})
    assert status == 201, made
    status, _, body = d.request("POST", f"/containers/{made['Id']}/start")
    assert status == 204, body
    return str(made["Id"])


def state(d: Skiffd, ref: str) -> dict[str, Any]:
    status, found = d.json("GET", f"/containers/{ref}/json")
    assert status == 200, found
    return dict(found["State"])


def log_lines(d: Skiffd, ref: str) -> list[str]:
    """stdout of `ref` through the API (Docker's 8-byte framed stream, no TTY)."""
    status, _, raw = d.request("GET", f"/containers/{ref}/logs?stdout=1&stderr=1")
    assert status == 200, raw
    out, i = bytearray(), 0
    while i + 8 <= len(raw):
        size = int.from_bytes(raw[i + 4:i + 8], "big")
        out += raw[i + 8:i + 8 + size]
        i += 8 + size
    return out.decode().splitlines()


def until(check: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- kill -9 -------------------------------------------------------------------------------
TICKER = ["sh", "-c", "i=0; while :; do echo $i; i=$((i+1)); sleep 0.02; done"]


def test_skiffd_killed_while_containers_run_and_start(tmp_root: Path) -> None:
    workdir = tmp_root / f"skiffd-kill9-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    d = start_skiffd(workdir)
    starters: list[threading.Thread] = []
    try:
        ticker = run(d, TICKER, "ticker")
        ender = run(d, ["sh", "-c", "sleep 1; exit 3"], "ender")
        over = run(d, ["sh", "-c", "exit 5"], "over")
        assert d.json("POST", f"/containers/{over}/wait")[1]["StatusCode"] == 5
        ticker_pid = state(d, "ticker")["Pid"]
        log_path = Path(d.json("GET", "/containers/ticker/json")[1]["LogPath"])

        def start_more(i: int) -> None:  # creates and starts in flight when skiffd dies
            for j in range(20):
                try:
                    run(d, ["sleep", "100"], f"late-{i}-{j}")
                except (OSError, http.client.HTTPException, AssertionError):
                    return

        starters = [threading.Thread(target=start_more, args=(i,)) for i in range(4)]
        for t in starters:
            t.start()
        time.sleep(0.3)
        assert d.process is not None
        d.process.kill()
        d.process.wait()
        for t in starters:
            t.join(30)
        at_kill = log_path.read_bytes().count(b"\n")
        time.sleep(1.5)  # ender exits while no skiffd runs
        assert alive(ticker_pid) and log_path.read_bytes().count(b"\n") > at_kill + 10

        d = start_skiffd(workdir)
        s = state(d, "ticker")
        assert (s["Status"], s["Running"], s["Pid"]) == ("running", True, ticker_pid)
        s = state(d, ender)
        assert (s["Status"], s["Running"], s["ExitCode"]) == ("exited", False, 3), s
        assert (state(d, over)["Status"], state(d, over)["ExitCode"]) == ("exited", 5)
        lines = log_lines(d, "ticker")
        assert lines == [str(i) for i in range(len(lines))]  # none lost, none twice
        assert len(lines) > at_kill + 10  # the outage's lines are among them
        status, rows = d.json("GET", "/containers/json?all=1")
        assert status == 200
        late = [r for r in rows if r["Names"][0].startswith("/late-")]
        assert late, "no start got through before the kill"
        for r in late:  # each start either happened or did not: never a ghost
            s = state(d, r["Id"])
            if s["Running"]:
                assert s["Status"] == "running" and alive(s["Pid"]), s
            else:
                assert (s["Status"], s["Pid"]) == ("created", 0), s
        # a create cut short leaves nothing the new skiffd does not know of
        ids = {r["Id"] for r in rows}
        fp = footprint(d)
        for kind in ("rows' folders", "snapshots", "bundles"):
            assert fp[kind] <= ids, (kind, fp[kind] - ids)
    finally:
        for t in starters:
            t.join(30)
        if d.process is None or d.process.poll() is not None:
            d = start_skiffd(workdir)
        try:
            remove_all(d)
        finally:
            stop_skiffd(d)
            shutil.rmtree(workdir, ignore_errors=True)


def test_a_killed_monitor_is_reported_and_rm_f_cleans_up(daemon: Skiffd) -> None:
    cid = run(daemon, ["sleep", "100"])
    pid = state(daemon, cid)["Pid"]
    monitor = int((daemon.run / "containers" / cid / "monitor.pid").read_text().split()[0])
    os.kill(monitor, signal.SIGKILL)
    status, waited = daemon.json("POST", f"/containers/{cid}/wait")
    assert (status, waited) == (200, {"StatusCode": 137, "Error": {"Message": "monitor gone"}})
    s = state(daemon, cid)
    assert (s["Status"], s["Running"], s["ExitCode"], s["Error"]) == ("exited", False, 137,
                                                                      "monitor gone")
    rows = daemon.json("GET", "/containers/json?all=1")[1]
    assert [(r["Id"], r["State"]) for r in rows] == [(cid, "exited")]  # listed, not lost
    until(lambda: not alive(pid))
    assert daemon.request("DELETE", f"/containers/{cid}?force=1")[0] == 204
    assert daemon.json("GET", f"/containers/{cid}/json")[0] == 404
    assert traces_of(daemon, cid) == []


def zygotes_of(d: Skiffd) -> list[int]:
    """The monitors' zygote among skiffd's children (one at most)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        comm = stat[stat.find(b"(") + 1:stat.rfind(b")")]
        fields = stat[stat.rfind(b")") + 2:].split()
        if comm == b"skmon-zygote" and int(fields[1]) == d.pid and fields[0] != b"Z":
            found.append(int(entry.name))
    return found


def test_a_killed_zygote_is_made_again_and_its_monitors_go_on(tmp_root: Path) -> None:
    workdir = tmp_root / f"skiffd-zygote-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    d = start_skiffd(workdir)
    try:
        first = run(d, ["sleep", "100"])
        zygote, = zygotes_of(d)
        os.kill(zygote, signal.SIGKILL)
        until(lambda: not alive(zygote))
        second = run(d, ["sh", "-c", "echo again"])  # forked from a new zygote
        assert d.json("POST", f"/containers/{second}/wait")[1]["StatusCode"] == 0
        assert log_lines(d, second) == ["again"]
        assert zygotes_of(d) != [zygote] and len(zygotes_of(d)) == 1
        s = state(d, first)  # the killed zygote's monitor went on
        assert (s["Status"], s["Running"]) == ("running", True) and alive(s["Pid"])
        remove_all(d)
        skiffd, zygote = d.pid, zygotes_of(d)[0]
    finally:
        stop_skiffd(d)
        shutil.rmtree(workdir, ignore_errors=True)
    assert not alive(skiffd) and not alive(zygote)  # it ended with skiffd


# -- 50 at once ----------------------------------------------------------------------------
def test_fifty_concurrent_runs_all_run_and_keep_every_line(daemon: Skiffd) -> None:
    lines = 100
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            run(daemon, ["sh", "-c", f"for j in $(seq 1 {lines}); do echo c{i}-$j; done"],
                f"many-{i}")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for i in range(50):
        status, waited = daemon.json("POST", f"/containers/many-{i}/wait")
        assert (status, waited["StatusCode"]) == (200, 0), waited
        assert log_lines(daemon, f"many-{i}") == [f"c{i}-{j}" for j in range(1, lines + 1)]


# -- bad input -----------------------------------------------------------------------------
def create_raw(d: Skiffd, body: bytes, query: str = "",
               content_type: str = "application/json") -> tuple[int, str]:
    status, _, raw = d.request("POST", f"/containers/create{query}", body,
                               {"Content-Type": content_type})
    return status, json.loads(raw)["message"] if raw.strip() else ""


def test_bad_requests_get_dockers_answers_and_change_nothing(daemon: Skiffd) -> None:
    taken = run(daemon, ["sleep", "100"], "taken")
    before = footprint(daemon)
    ok = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": NONE}).encode()
    cases: list[tuple[bytes, str, str, int, str]] = [
        (b'{"Image": "busybox",', "", "application/json", 400, "invalid JSON: "),
        (b"", "", "application/json", 400, "invalid JSON: got EOF while reading request body"),
        (b"[1, 2]", "", "application/json", 400, "invalid JSON"),
        (ok, "", "text/plain", 400, "unsupported Content-Type header (text/plain)"),
        (ok, "?name=b%20a%20d", "application/json", 400,
         "Invalid container name (b a d), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        (ok, "?name=taken", "application/json", 409,
         'The container name "/taken" is already in use'),
        (b'{"Image": "no-such-image", "Cmd": ["true"]}', "", "application/json", 404,
         "No such image: no-such-image"),
        (b'{"Image": "busybox", "HostConfig": {"Memory": 1}}', "", "application/json", 400,
         "Minimum memory limit allowed is 6MB"),
    ]
    for mounts in ({"Binds": ["/tmp:relative"]}, {"Binds": ["/tmp:/x:zz"]},
                   {"Mounts": [{"Type": "bind", "Source": "/no/such/dir", "Target": "/x"}]},
                   {"Mounts": [{"Type": "bogus", "Target": "/x"}]}):
        cases.append((json.dumps({"Image": "busybox", "HostConfig": {**NONE, **mounts}})
                      .encode(), "", "application/json", 400, ""))
    for body, query, ctype, want_status, want in cases:
        status, message = create_raw(daemon, body, query, ctype)
        assert (status, want in message) == (want_status, True), (body, status, message)
    for method, path, want_status, want in (
            ("POST", "/containers/nope/start", 404, "No such container: nope"),
            ("POST", "/containers/nope/stop", 404, "No such container: nope"),
            ("DELETE", "/containers/nope", 404, "No such container: nope"),
            ("DELETE", "/containers/taken", 409, "You cannot remove a running container"),
            ("POST", "/containers/taken/start", 304, "")):
        status, _, raw = daemon.request(method, path)
        message = json.loads(raw)["message"] if raw.strip() else ""
        assert (status, want in message) == (want_status, True), (path, status, message)
    assert footprint(daemon) == before
    rows = daemon.json("GET", "/containers/json?all=1")[1]
    assert [r["Id"] for r in rows] == [taken] and state(daemon, taken)["Running"]


def test_unknown_fields_are_ignored_as_docker_ignores_them(daemon: Skiffd) -> None:
    status, made = daemon.json("POST", "/containers/create", {
        "Image": "busybox", "Cmd": ["true"], "NoSuchField": 1,
        "HostConfig": {**NONE, "NoSuchHostField": {"a": 1}}})
    assert status == 201, made
    doc = daemon.json("GET", f"/containers/{made['Id']}/json")[1]
    assert "NoSuchField" not in doc["Config"] and "NoSuchHostField" not in doc["HostConfig"]


def test_a_create_that_fails_half_way_leaves_nothing(daemon: Skiffd) -> None:
    """The working directory is made in the new rootfs after its snapshot is mounted: a
    file in its place fails the create there, and what was made so far goes again."""
    before = footprint(daemon)
    for workdir, want in (("/bin/busybox", "Cannot mkdir: /bin/busybox is not a directory"),
                          ("/bin/busybox/sub", "Not a directory")):
        body = json.dumps({"Image": "busybox", "Cmd": ["true"], "WorkingDir": workdir,
                           "HostConfig": NONE}).encode()
        status, message = create_raw(daemon, body, "?name=halfway")
        assert (status, want in message) == (500, True), (status, message)
        assert footprint(daemon) == before
        assert daemon.json("GET", "/containers/halfway/json")[0] == 404
        assert daemon.json("GET", "/containers/json?all=1")[1] == []
