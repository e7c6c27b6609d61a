"""Capsules on the engine's containers, for real: `Engine` with its `CapsuleService`, real
monitors and the runtime's live mounts, checked from inside the containers (exec-free: the
init's root, /proc/PID/root, is what the container sees).

Attach to a running container shows the files at once and records them (inspect's
``Capsules``); detach takes them; ``HostConfig.Capsules`` (``run --capsule``) and an attach to
a stopped container are mounted at start, and kept over a restart of the container (by the
engine, and by the monitor's restart policy alone, from the bundle) and of the engine; two
containers at two versions of one capsule, a third seeing none; dependencies come and go with
their dependant; bad input changes nothing and leaves no mount.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from integration.test_engine_containers import Env, clean, env  # noqa: F401 - the fixtures
from skiff.errors import (
    CapsuleConflict,
    ContainerConflict,
    InvalidArgument,
    NoSuchCapsule,
    NoSuchContainer,
)

pytestmark = pytest.mark.root


def make_capsule(e: Env, tmp_path: Path, name: str, version: str, text: str,
                 requires: list[str] | None = None) -> None:
    folder = tmp_path / f"{name}-{version}"
    folder.mkdir()
    (folder / "hello.txt").write_text(text)
    e.engine.capsules.create(name, version, from_dir=str(folder), requires=requires or [])


def pid_of(e: Env, cid: str) -> int:
    return int(e.containers.inspect(cid)["State"]["Pid"])


def seen(e: Env, cid: str, path: str) -> str | None:
    try:
        return Path(f"/proc/{pid_of(e, cid)}/root{path}").read_text()
    except OSError:
        return None


def mountinfo(e: Env, cid: str) -> list[str]:
    return [line.split()[4] for line in
            Path(f"/proc/{pid_of(e, cid)}/mountinfo").read_text().splitlines()]


def events(e: Env, cid: str) -> list[tuple[str, str, dict[str, str]]]:
    """The capsule attach and detach events about container `cid`."""
    return [(ev.action, ev.actor_id, ev.attributes) for ev in e.engine.events.since()
            if ev.type == "capsule" and ev.action in ("attach", "detach")
            and ev.attributes.get("container") == cid]


@pytest.fixture
def caps(clean: Env, tmp_path: Path) -> Any:  # noqa: F811 - the imported fixture
    for name, version, text in (("site", "1.0.0", "one\n"), ("site", "2.0.0", "two\n"),
                                ("libcrypto", "1.1.0", "crypto\n")):
        make_capsule(clean, tmp_path, name, version, text)
    make_capsule(clean, tmp_path, "libssl", "1.1.1", "ssl\n", ["libcrypto@^1.1"])
    yield clean
    for row in clean.containers.db.all():
        clean.containers.remove(row.id, force=True)
    clean.engine.capsules.prune()


def test_live_attach_and_detach_on_a_running_container(caps: Env) -> None:
    c = caps.containers
    cid = caps.run(["sleep", "1000"])
    before = mountinfo(caps, cid)
    answer = c.attach_capsule(cid, "site:1.0.0")
    assert answer["Live"] is True
    assert seen(caps, cid, "/capsules/site/1.0.0/hello.txt") == "one\n"
    [view] = c.inspect(cid)["Capsules"]
    assert view["Name"] == "site" and view["Version"] == "1.0.0"
    assert view["Target"] == "/capsules/site/1.0.0" and view["Digest"].startswith("sha256:")
    c.attach_capsule(cid, "libssl:1.1.1", "/opt/ssl")
    assert seen(caps, cid, "/opt/ssl/hello.txt") == "ssl\n"
    assert seen(caps, cid, "/capsules/libcrypto/1.1.0/hello.txt") == "crypto\n"  # its dep
    with pytest.raises(CapsuleConflict, match="only as a dependency of libssl"):
        c.detach_capsule(cid, "libcrypto")
    c.detach_capsule(cid, "libssl")  # and the dependency that came only with it
    assert seen(caps, cid, "/capsules/libcrypto/1.1.0/hello.txt") is None
    c.detach_capsule(cid, "site")
    assert c.inspect(cid).get("Capsules", []) == []
    assert mountinfo(caps, cid) == before
    assert [(a, actor) for a, actor, _ in events(caps, cid)] == [
        ("attach", "site:1.0.0"), ("attach", "libcrypto:1.1.0"), ("attach", "libssl:1.1.1"),
        ("detach", "libssl:1.1.1"), ("detach", "libcrypto:1.1.0"), ("detach", "site:1.0.0")]
    assert events(caps, cid)[0][2]["target"] == "/capsules/site/1.0.0"


def test_two_containers_two_versions_and_a_third_sees_none(caps: Env) -> None:
    c = caps.containers
    one = caps.run(["sleep", "1000"], HostConfig={"Capsules": ["site:1.0.0:/etc/site"]})
    two = caps.run(["sleep", "1000"])
    third = caps.run(["sleep", "1000"])
    c.attach_capsule(two, "site:2.0.0", "/etc/site")
    assert seen(caps, one, "/etc/site/hello.txt") == "one\n"
    assert seen(caps, two, "/etc/site/hello.txt") == "two\n"
    assert seen(caps, third, "/etc/site/hello.txt") is None
    with pytest.raises(CapsuleConflict):
        c.attach_capsule(one, "site:2.0.0", "/elsewhere")  # one version a container
    with pytest.raises(CapsuleConflict):
        caps.engine.capsules.remove("site:1.0.0")  # in use


def test_attach_to_a_stopped_container_is_mounted_at_its_start_and_kept(caps: Env) -> None:
    c = caps.containers
    cid = c.create({"Image": "busybox", "Cmd": ["sleep", "1000"],
                    "HostConfig": {"NetworkMode": "none"}})["Id"]
    assert c.attach_capsule(cid, "site:1.0.0")["Live"] is False
    c.start(cid)
    assert seen(caps, cid, "/capsules/site/1.0.0/hello.txt") == "one\n"
    c.restart(cid, timeout=0)
    assert seen(caps, cid, "/capsules/site/1.0.0/hello.txt") == "one\n"
    caps.stop()
    caps.start()  # a restarted skiffd: the row keeps them, the container still has them
    c = caps.containers
    assert [v["Name"] for v in c.inspect(cid)["Capsules"]] == ["site"]
    assert seen(caps, cid, "/capsules/site/1.0.0/hello.txt") == "one\n"
    c.detach_capsule(cid, "site")
    assert seen(caps, cid, "/capsules/site/1.0.0/hello.txt") is None


def test_a_restart_by_the_monitor_alone_keeps_a_live_attach(caps: Env) -> None:
    c = caps.containers
    cid = caps.run(["sh", "-c", "sleep 0.5; exit 1"],
                   HostConfig={"RestartPolicy": {"Name": "always"}})
    c.attach_capsule(cid, "site:2.0.0", "/srv/site")
    first = pid_of(caps, cid)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = c.inspect(cid)["State"]
        if state["Pid"] not in (0, first) and state["Running"]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the monitor did not restart the container")
    assert seen(caps, cid, "/srv/site/hello.txt") == "two\n"
    c.detach_capsule(cid, "site")
    c.stop(cid, timeout=0)


@pytest.mark.parametrize("request_, target, error", [
    ("nosuch:1.0.0", None, NoSuchCapsule),
    ("site:9.9.9", None, NoSuchCapsule),
    ("site", None, InvalidArgument),
    ("site:1.0.0", "/../../etc", InvalidArgument),
    ("site:1.0.0", "relative", InvalidArgument),
])
def test_bad_input_changes_nothing(caps: Env, request_: str, target: str | None,
                                   error: type) -> None:
    c = caps.containers
    cid = caps.run(["sleep", "1000"])
    before = mountinfo(caps, cid)
    with pytest.raises(error):
        c.attach_capsule(cid, request_, target)
    assert c.inspect(cid).get("Capsules", []) == []
    assert mountinfo(caps, cid) == before
    assert events(caps, cid) == []


def test_a_symlink_target_out_of_the_root_leaves_nothing(caps: Env, tmp_path: Path) -> None:
    c = caps.containers
    cid = caps.run(["sh", "-c", "ln -s ../../../../../tmp /evil && sleep 1000"])
    deadline = time.monotonic() + 5
    while not os.path.islink(f"/proc/{pid_of(caps, cid)}/root/evil") and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    before = mountinfo(caps, cid)
    with pytest.raises(InvalidArgument, match="leaves the container's root"):
        c.attach_capsule(cid, "libssl:1.1.1", "/evil/x")
    assert mountinfo(caps, cid) == before and c.inspect(cid).get("Capsules", []) == []
    assert events(caps, cid) == []


def test_a_start_whose_capsule_target_a_symlink_leads_out_is_refused(caps: Env) -> None:
    """Attached to a stopped container, then its files gain a link out of the root on the
    target's way: the start is refused as a live attach would be, and mounts nothing."""
    c = caps.containers
    cid = c.create({"Image": "busybox", "Cmd": ["sleep", "1000"],
                    "HostConfig": {"NetworkMode": "none"}})["Id"]
    c.attach_capsule(cid, "site:1.0.0", "/evil/x")
    os.symlink("../../../../../tmp", os.path.join(c.snapshots.rootfs(cid), "evil"))
    with pytest.raises(InvalidArgument, match="leaves the container's root"):
        c.start(cid)
    assert not c.inspect(cid)["State"]["Running"]
    assert not [line for line in Path("/proc/self/mounts").read_text().splitlines()
                if "/tmp/x " in line]


def test_unknown_container_and_duplicates(caps: Env) -> None:
    c = caps.containers
    with pytest.raises(NoSuchContainer):
        c.attach_capsule("no-such-container", "site:1.0.0")
    cid = caps.run(["sleep", "1000"], HostConfig={"Binds": ["/tmp:/data:ro"]})
    c.attach_capsule(cid, "site:1.0.0")
    with pytest.raises(ContainerConflict, match="already"):
        c.attach_capsule(cid, "site:1.0.0")
    with pytest.raises(ContainerConflict, match="taken by mount /data"):
        c.attach_capsule(cid, "libcrypto:1.1.0", "/data")
    with pytest.raises(NoSuchCapsule, match="not attached"):
        c.detach_capsule(cid, "libssl")


def test_a_forced_capsule_rm_detaches_it_live(caps: Env) -> None:
    c = caps.containers
    cid = caps.run(["sleep", "1000"])
    c.attach_capsule(cid, "libssl:1.1.1")
    before = [v["Name"] for v in c.inspect(cid)["Capsules"]]
    assert before == ["libcrypto", "libssl"]
    caps.engine.capsules.remove("libcrypto:1.1.0", force=True)  # needed by libssl: forced
    assert [v["Name"] for v in c.inspect(cid)["Capsules"]] == ["libssl"]
    assert seen(caps, cid, "/capsules/libcrypto/1.1.0/hello.txt") is None
    assert seen(caps, cid, "/capsules/libssl/1.1.1/hello.txt") == "ssl\n"
