"""`skiff capsule attach|detach` and `skiff run --capsule` against a real skiffd, and the
routes behind them (``POST /containers/{id}/capsules``, ``DELETE …/capsules/{name}``): the
files seen inside the container (its init's root), inspect's ``Capsules``, the events, and
the daemon's errors as the CLI prints them. The capsules are made in the daemon's store by
`CapsuleService` in the test's process (the store takes a second process on its root)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from fixtures_daemon import Skiffd, run_client

from skiff.engine.capsules import CapsuleService
from skiff.engine.events import EventLog

pytestmark = pytest.mark.root
SKIFF = str(Path(sys.executable).parent / "skiff")


@pytest.fixture(scope="module")
def stocked(module_skiffd: Skiffd, tmp_root: Path) -> Skiffd:
    service = CapsuleService(str(module_skiffd.root), EventLog())
    for version, text in (("1.0.0", "one\n"), ("2.0.0", "two\n")):
        folder = tmp_root / f"cli-capsule-{module_skiffd.pid}-{version}"
        folder.mkdir()
        (folder / "hello.txt").write_text(text)
        service.create("conf", version, from_dir=str(folder))
    return module_skiffd


def skiff(d: Skiffd, *argv: str, check: bool = True):
    return run_client(d, [SKIFF, *argv], check=check)


def seen(d: Skiffd, cid: str, path: str) -> str | None:
    pid = d.json("GET", f"/containers/{cid}/json")[1]["State"]["Pid"]
    try:
        return Path(f"/proc/{pid}/root{path}").read_text()
    except OSError:
        return None


def test_run_capsule_then_live_attach_and_detach(stocked: Skiffd, daemon: Skiffd) -> None:
    d = daemon
    cid = skiff(d, "run", "-d", "--network", "none", "--capsule", "conf:1.0.0:/etc/conf",
                "busybox", "sleep", "1000").stdout.strip()
    assert seen(d, cid, "/etc/conf/hello.txt") == "one\n"
    other = skiff(d, "run", "-d", "--network", "none", "busybox", "sleep", "1000").stdout.strip()
    out = skiff(d, "capsule", "attach", "--target", "/opt/conf", other, "conf:2.0.0").stdout
    assert out == "conf:2.0.0\t/opt/conf\n"
    assert seen(d, other, "/opt/conf/hello.txt") == "two\n"
    assert seen(d, cid, "/opt/conf/hello.txt") is None  # not the other container's
    status, doc = d.json("GET", f"/containers/{other}/json")
    assert [(c["Name"], c["Version"], c["Target"]) for c in doc["Capsules"]] == [
        ("conf", "2.0.0", "/opt/conf")]
    assert skiff(d, "capsule", "detach", other, "conf").stdout == "conf\n"
    assert seen(d, other, "/opt/conf/hello.txt") is None
    now = int(time.time()) + 1
    status, _, body = d.request("GET", f"/events?since=0&until={now}&"
                                       'filters={"type":["capsule"]}')
    seen_events = [json.loads(line) for line in body.splitlines()]
    mine = [(e["Action"], e["Actor"]["ID"]) for e in seen_events
            if e["Actor"]["Attributes"].get("container") == other]
    assert status == 200 and mine == [("attach", "conf:2.0.0"), ("detach", "conf:2.0.0")]

def test_the_routes_and_their_errors(stocked: Skiffd, daemon: Skiffd) -> None:
    d = daemon
    cid = skiff(d, "run", "-d", "--network", "none", "busybox", "sleep", "1000").stdout.strip()
    status, answer = d.json("POST", f"/containers/{cid}/capsules", {"Capsule": "conf:1.0.0"})
    assert status == 200 and answer["Live"] is True
    assert seen(d, cid, "/capsules/conf/1.0.0/hello.txt") == "one\n"
    status, err = d.json("POST", f"/containers/{cid}/capsules", {"Capsule": "conf:2.0.0"})
    assert status == 409 and "conf:1.0.0 is attached" in err["message"]
    assert d.json("POST", f"/containers/{cid}/capsules", {"Capsule": "nope:1.0.0"})[0] == 404
    assert d.json("POST", f"/containers/{cid}/capsules",
                  {"Capsule": "conf:2.0.0", "Target": "/a/../../b"})[0] == 400
    assert d.json("POST", "/containers/no-such/capsules", {"Capsule": "conf:1.0.0"})[0] == 404
    # the DELETE route is the capsule's, not the container's removal
    status, _, _ = d.request("DELETE", f"/containers/{cid}/capsules/conf")
    assert status == 204
    assert d.json("GET", f"/containers/{cid}/json")[1]["State"]["Running"] is True
    assert seen(d, cid, "/capsules/conf/1.0.0/hello.txt") is None
    p = skiff(d, "capsule", "detach", cid, "conf", check=False)
    assert p.returncode == 1
    assert p.stderr.startswith("Error response from daemon: capsule conf is not attached")
