"""The engine's volumes with real containers, in-process: moby's volume events around a run
(create, mount, unmount, destroy, with their attributes), a container's mounts surviving a
restart of the engine, a create that fails after its volumes were made leaving no
anonymous volume, and the rollback of `rm -v` sparing a volume another container uses."""

from __future__ import annotations

import time
from typing import Any

import pytest

from test_engine_containers import Env, clean, env  # noqa: F401 - fixtures

from skiff.errors import ContainerConflict

pytestmark = pytest.mark.root


def volume_events(e: Env, after: int) -> list[tuple[str, str, dict[str, str]]]:
    return [(ev.action, ev.actor_id, ev.attributes) for ev in e.engine.events.since(after)
            if ev.type == "volume"]


def finish(e: Env, cid: str) -> None:
    assert e.containers.wait(cid)["StatusCode"] == 0, e.output(cid)


def test_volume_events_of_a_run(clean: Env) -> None:  # noqa: F811
    seen = clean.engine.events.last_seq()
    cid = clean.run(["true"], HostConfig={"Binds": ["evs:/e:ro"]})
    finish(clean, cid)
    clean.containers.remove(cid)
    clean.engine.volumes.remove("evs")
    deadline = time.monotonic() + 5  # the unmount is told after the exit, on a thread
    while len(volume_events(clean, seen)) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert volume_events(clean, seen) == [
        ("create", "evs", {"driver": "local"}),
        ("mount", "evs", {"driver": "local", "container": cid, "destination": "/e",
                          "read/write": "false", "propagation": ""}),
        ("unmount", "evs", {"driver": "local", "container": cid}),
        ("destroy", "evs", {"driver": "local"}),
    ]


def test_mounts_survive_an_engine_restart(clean: Env) -> None:  # noqa: F811
    cid = clean.containers.create({"Image": "busybox", "Cmd": ["cat", "/d/f"],
                                   "HostConfig": {"NetworkMode": "none",
                                                  "Binds": ["kept:/d"]}})["Id"]
    data = clean.engine.volumes.inspect("kept")["Mountpoint"]
    with open(f"{data}/f", "w") as f:
        f.write("still here\n")
    clean.stop()
    clean.start()
    assert clean.containers.inspect(cid)["Mounts"][0]["Name"] == "kept"
    clean.containers.start(cid)
    finish(clean, cid)
    assert clean.output(cid) == b"still here\n"
    with pytest.raises(ContainerConflict):
        clean.engine.volumes.remove("kept")
    clean.containers.remove(cid, volumes=True)  # a named volume stays
    clean.engine.volumes.remove("kept")


def test_failed_create_leaves_no_anonymous_volume(clean: Env) -> None:  # noqa: F811
    body: dict[str, Any] = {"Image": "busybox", "Cmd": ["true"], "Volumes": {"/anon": {}},
                            "HostConfig": {"NetworkMode": "none"}}
    first = clean.containers.create(body, "taken")["Id"]
    (before,) = clean.engine.volumes.list()["Volumes"]
    with pytest.raises(ContainerConflict):
        clean.containers.create(body, "taken")
    assert clean.engine.volumes.list()["Volumes"] == [before]
    # --volumes-from shares the anonymous volume: rm -v of one spares it for the other
    second = clean.containers.create({**body, "HostConfig": {"NetworkMode": "none",
                                                            "VolumesFrom": [first]}})["Id"]
    clean.containers.remove(first, volumes=True)
    assert clean.engine.volumes.list()["Volumes"] == [before]
    clean.containers.remove(second, volumes=True)
    assert clean.engine.volumes.list()["Volumes"] == []
