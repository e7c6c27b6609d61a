"""The container engine for real, in-process: `Engine` over a temporary root and run folder,
the built-in busybox image, real monitors, the runtime, overlay snapshots and cgroups.

Each test removes the containers it made (a module fixture checks that nothing is left of
them: rows, snapshots, folders, runtime state, cgroups). The containers' cgroups go below
the suite's own prefix, and the monitors carry the suite's SKIFF_TEST_RUN mark, so the
session's leftover check sees anything that escaped.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import CGROUP_PREFIX, TMP_MARK
from fixtures_daemon import bridge_for, check_api_shape, subnet_for
from unit.test_engine_containers_views import check_inspect_shape

from skiff.engine import Engine, EngineOptions
from skiff.kernel import syscall
from skiff.errors import (ContainerConflict, ContainerStartError, ImageConflict, ImageNotFound,
                          InvalidArgument, NoSuchContainer, StoreError)

pytestmark = pytest.mark.root
CGROUP_PARENT = f"/skiff/{CGROUP_PREFIX}"


def engine_options(path: Path, cgroup_parent: str = CGROUP_PARENT) -> EngineOptions:
    """The engine's settings for a test's folders: a default bridge of their own."""
    kept = path / "bridge-subnet"
    if not kept.exists():
        path.mkdir(parents=True, exist_ok=True)
        kept.write_text(subnet_for(str(path)))
    return EngineOptions(cgroup_parent=cgroup_parent, bridge_name=bridge_for(str(path)),
                         bridge_subnet=kept.read_text())


class Env:
    """One engine over one root/run pair, and what a test needs of it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.engine = self.start()

    def start(self) -> Engine:
        """A fresh Engine object over the same folders (what a restarted skiffd is)."""
        self.engine = Engine(self.path / "root", self.path / "run", engine_options(self.path))
        self.engine.start()
        return self.engine

    def stop(self) -> None:
        """What skiffd's going away is to the engine (its containers go on)."""
        self.engine.close()

    @property
    def containers(self) -> Any:
        return self.engine.containers

    def run(self, cmd: list[str], **body: Any) -> str:
        """Create and start a container (network none); its ID."""
        host = body.pop("HostConfig", {})
        cid = self.containers.create({"Image": "busybox", "Cmd": cmd,
                                      "HostConfig": {"NetworkMode": "none", **host}, **body},
                                     body.pop("name", None))["Id"]
        self.containers.start(cid)
        return cid

    def output(self, cid: str) -> bytes:
        return b"".join(data for _, data in self.containers.logs(cid))

    def leftovers(self) -> list[str]:
        c = self.containers
        found = [f"row {r.id}" for r in c.db.all()]
        found += [f"snapshot {k}" for k in c.snapshots.list()]
        for folder in (c.containers_dir, c.bundles_dir, c.runtime_root, c.netns_dir):
            if os.path.isdir(folder):
                # (a dot entry is the runtime's own, not a container's: its seccomp cache)
                found += [f"{folder}/{n}" for n in os.listdir(folder) if not n.startswith(".")]
        # (the engine's parent stays while it runs: what must go is a container's, below it)
        found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}/*/")]
        return found


@pytest.fixture(scope="module")
def env(tmp_root: Path) -> Iterator[Env]:
    path = tmp_root / f"engine-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SKIFF_TEST_RUN", TMP_MARK)  # the monitors inherit it: strays get seen
        e = Env(path)
        try:
            yield e
        finally:
            for row in e.containers.db.all():
                e.containers.remove(row.id, force=True)
            e.stop()
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clean(env: Env) -> Iterator[Env]:
    """The engine, checked to have nothing left of the test's containers afterwards."""
    yield env
    for row in env.containers.db.all():
        env.containers.remove(row.id, force=True)
    assert env.leftovers() == []


def cgroup_dirs(cid: str) -> list[Path]:
    return list(Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}/{cid}"))


def gone_soon(check: Any, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# -- run to the end -------------------------------------------------------------------------
def test_echo_hi_and_exit_codes(clean: Env) -> None:
    c = clean.containers
    hi = clean.run(["echo", "hi"], name="hello")
    assert c.wait(hi) == {"StatusCode": 0, "Error": None}
    assert list(c.logs("hello")) == [(1, b"hi\n")]
    three = clean.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert c.wait(three, "not-running")["StatusCode"] == 3
    assert list(c.logs(three, stdout=False)) == [(2, b"err\n")]
    stamped = list(c.logs(three, timestamps=True, tail="1"))
    assert len(stamped) == 1 and stamped[0][1].endswith(b"Z err\n")
    doc = c.inspect(three, size=True)
    check_inspect_shape(doc)
    state = doc["State"]
    assert (state["Status"], state["ExitCode"], state["Running"], state["Pid"]) == \
        ("exited", 3, False, 0)
    assert state["StartedAt"] <= state["FinishedAt"]
    assert doc["LogPath"].endswith(f"{three}-json.log") and os.path.exists(doc["LogPath"])
    rows = {r["Id"]: r for r in c.list(all=True)}
    for row in rows.values():
        check_api_shape(row, "ContainerSummary")
    assert rows[three]["Status"].startswith("Exited (3) ")
    assert rows[hi]["Names"] == ["/hello"] and rows[hi]["Image"] == "busybox"
    assert c.list() == []  # none runs
    assert [r["Id"] for r in c.list(all=True, filters={"exited": ["3"]})] == [three]
    c.remove(hi)
    c.remove(three)


def test_auto_remove(clean: Env) -> None:
    c = clean.containers
    cid = clean.run(["sh", "-c", "exit 7"], HostConfig={"AutoRemove": True})
    assert c.wait(cid, "removed")["StatusCode"] == 7
    with pytest.raises(NoSuchContainer, match="No such container"):
        c.inspect(cid)


def test_start_failures_keep_dockers_codes(clean: Env) -> None:
    c = clean.containers
    cid = c.create({"Image": "busybox", "Cmd": ["no-such-program"],
                    "HostConfig": {"NetworkMode": "none"}})["Id"]
    with pytest.raises(ContainerStartError) as info:
        c.start(cid)
    assert info.value.exit_code == 127
    state = c.inspect(cid)["State"]
    assert (state["Status"], state["ExitCode"]) == ("created", 127) and state["Error"]
    assert c.wait(cid)["StatusCode"] == 127
    with pytest.raises(InvalidArgument, match="unable to find user ghost"):
        c.start(c.create({"Image": "busybox", "Cmd": ["true"], "User": "ghost"},
                         "ghostly")["Id"])
    c.remove(cid)
    c.remove("ghostly")


# -- stop, kill, restart, remove ------------------------------------------------------------
def test_stop_kills_after_the_timeout(clean: Env) -> None:
    c = clean.containers
    # sleep as PID 1 ignores SIGTERM (no handler, and init's default-action signals are
    # ignored), so the stop has to come to SIGKILL
    cid = clean.run(["sleep", "100"], StopTimeout=30)
    assert c.start(cid) is False
    [row] = c.list()
    assert row["Id"] == cid and row["State"] == "running" and row["Status"].startswith("Up ")
    began = time.monotonic()
    assert c.stop(cid, timeout=1) is True
    took = time.monotonic() - began
    assert 0.9 < took < 5, took
    assert c.wait(cid) == {"StatusCode": 137, "Error": None}
    assert c.stop(cid) is False  # stopped already: Docker's 304
    assert gone_soon(lambda: not cgroup_dirs(cid))  # the monitor tidies up after telling
    # an exited container starts again; kill -s TERM is ignored, KILL is not
    assert c.start(cid) is True
    pid = c.inspect(cid)["State"]["Pid"]
    c.kill(cid, "TERM")
    assert c.inspect(cid)["State"]["Running"]
    c.kill(cid)
    assert c.inspect(cid)["State"]["ExitCode"] == 137 and not alive(pid)
    with pytest.raises(ContainerConflict, match=f"Container {cid} is not running"):
        c.kill(cid)
    c.remove(cid)


def test_stop_signal_of_the_container(clean: Env) -> None:
    c = clean.containers
    script = "trap 'echo bye; exit 0' USR1; echo up; while :; do sleep 0.1; done"
    cid = clean.run(["sh", "-c", script], StopSignal="USR1")
    deadline = time.monotonic() + 5
    while b"up" not in clean.output(cid) and time.monotonic() < deadline:
        time.sleep(0.02)
    c.stop(cid, timeout=10)
    assert c.wait(cid)["StatusCode"] == 0
    assert clean.output(cid) == b"up\nbye\n"
    c.remove(cid)


def test_restart(clean: Env) -> None:
    c = clean.containers
    cid = clean.run(["sleep", "100"])
    first = c.inspect(cid)["State"]["Pid"]
    c.restart(cid, timeout=0)
    state = c.inspect(cid)["State"]
    assert state["Running"] and state["Pid"] != first and not alive(first)
    c.remove(cid, force=True)


def test_remove_running_needs_force(clean: Env) -> None:
    c = clean.containers
    cid = clean.run(["sleep", "100"])
    doc = c.inspect(cid)
    pid = doc["State"]["Pid"]
    assert doc["NetworkSettings"]["SandboxKey"] == c.netns_path(cid)
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(c.netns_path(cid)).st_ino
    rootfs = c.snapshots.rootfs(cid)
    assert cgroup_dirs(cid) and c.snapshots.mounted(cid)
    with pytest.raises(ContainerConflict) as info:
        c.remove(cid)
    assert str(info.value) == (f"You cannot remove a running container {cid}. Stop the "
                               f"container before attempting removal or force remove")
    c.remove(cid, force=True)
    assert not alive(pid) and cgroup_dirs(cid) == []
    assert rootfs not in Path("/proc/self/mounts").read_text()
    with pytest.raises(NoSuchContainer):
        c.remove(cid)


def test_image_in_use_cannot_go(clean: Env) -> None:
    c, images = clean.containers, clean.engine.images
    cid = clean.run(["sleep", "100"])
    image_id = c.inspect(cid)["Image"]
    assert [u.container_id for u in images.in_use(image_id)] == [cid]
    with pytest.raises(ImageConflict, match="must force"):
        images.remove("busybox:latest")
    with pytest.raises(ImageConflict, match="running container"):
        images.remove(image_id, force=True)
    assert clean.engine.system.info()["ContainersRunning"] == 1
    c.remove(cid, force=True)
    assert images.in_use(image_id) == []


def _busybox_rootfs_tar() -> io.BytesIO:
    """A rootfs tar of the host's static busybox and its `sh`: an image of its own."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.add("/bin/busybox", "bin/busybox")
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    out.seek(0)
    return out


def test_a_forced_rmi_leaves_a_stopped_containers_layers(clean: Env) -> None:
    # Docker deletes the image but its layer store keeps what a container stands on
    c, images, store = clean.containers, clean.engine.images, clean.engine.store
    image_id = images.import_(_busybox_rootfs_tar(), repo="forgettable", tag="1")
    chains = list(store.get(image_id).chain_ids)
    cid = c.create({"Image": "forgettable:1", "Cmd": ["sh", "-c", "echo ran"],
                    "HostConfig": {"NetworkMode": "none"}})["Id"]
    report = images.remove("forgettable:1", force=True)
    assert {"Deleted": image_id} in report
    assert all(store.layers.exists(chain) for chain in chains)
    syscall.umount(c.snapshots.rootfs(cid))  # and it mounts again without its image
    c.start(cid)
    assert c.wait(cid)["StatusCode"] == 0
    assert clean.output(cid) == b"ran\n"
    c.remove(cid)
    assert not any(store.layers.exists(chain) for chain in chains)  # the last holder went


# -- what the container sees ----------------------------------------------------------------
def test_the_options_reach_the_container(clean: Env) -> None:
    c = clean.containers
    script = ("id -u; id -g; pwd; hostname; echo $HOSTNAME $FOO; "
              "grep CapEff /proc/self/status; head -1 /etc/hosts; "
              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
              "cat /sys/fs/cgroup/memory.max; "
              "touch /written 2>/dev/null && echo rw || echo ro; "
              "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '")
    cid = clean.run(["sh", "-c", script], User="nobody", WorkingDir="/work", Hostname="box",
                    Env=["FOO=bar"], Labels={"suite": "engine"},
                    HostConfig={"Memory": 64 << 20, "ReadonlyRootfs": True,
                                "CapDrop": ["ALL"], "CapAdd": ["CHOWN"]})
    assert c.wait(cid)["StatusCode"] == 0
    lines = clean.output(cid).decode().splitlines()
    assert lines[:5] == ["65534", "65534", "/work", "box", "box bar"]
    assert lines[5].split()[1] == "0000000000000000"  # a non-root user starts with none
    assert lines[6] == "127.0.0.1\tlocalhost"
    assert lines[7] == str(64 << 20)
    assert lines[8] == "ro"
    assert lines[9:] == ["lo"]  # --network none: only loopback
    assert [r["Id"] for r in c.list(all=True, filters={"label": ["suite=engine"]})] == [cid]
    c.remove(cid)


def test_loopback_is_up_without_a_network(clean: Env) -> None:
    c = clean.containers
    cid = clean.run(["sh", "-c", "ping -c1 -W2 127.0.0.1 >/dev/null && echo pong; "
                                 "ip -o link show lo | grep -o ,UP"])
    assert c.wait(cid)["StatusCode"] == 0
    assert clean.output(cid) == b"pong\n,UP\n"
    c.remove(cid)


def test_root_gets_dockers_capabilities_and_host_networking(clean: Env) -> None:
    c = clean.containers
    cid = clean.run(["sh", "-c", "grep CapEff /proc/self/status; hostname; "
                                 "cat /etc/hosts"], HostConfig={"NetworkMode": "host"})
    assert c.wait(cid)["StatusCode"] == 0
    out = clean.output(cid).decode()
    assert out.splitlines()[0].split()[1] == "00000000a80425fb"  # Docker's 14
    assert out.splitlines()[1] == os.uname().nodename
    assert out.split("\n", 2)[2] == Path("/etc/hosts").read_text()
    assert c.inspect(cid)["NetworkSettings"]["Networks"].keys() == {"host"}
    c.remove(cid)


# -- logs -----------------------------------------------------------------------------------
def test_follow_ends_with_the_container(clean: Env) -> None:
    c = clean.containers
    cid = c.create({"Image": "busybox", "Cmd": ["sh", "-c", "echo a; sleep 0.3; echo b >&2"],
                    "HostConfig": {"NetworkMode": "none"}})["Id"]
    got: list[tuple[int, bytes]] = []
    # followed from before the start (what docker run's attach does): the whole first run
    reader = threading.Thread(target=lambda: got.extend(c.logs(cid, follow=True)))
    reader.start()
    time.sleep(0.1)
    c.start(cid)
    reader.join(10)
    assert not reader.is_alive()
    assert got == [(1, b"a\n"), (2, b"b\n")]
    assert list(c.logs(cid, follow=True)) == got  # an exited container: no following
    c.remove(cid)


# -- failures leave nothing -----------------------------------------------------------------
def test_failed_creates_leave_nothing(clean: Env) -> None:
    c = clean.containers
    c.create({"Image": "busybox", "Cmd": ["true"]}, "taken")
    before = clean.leftovers()
    with pytest.raises(ImageNotFound, match="No such image"):
        c.create({"Image": "no-such-image", "Cmd": ["true"]})
    with pytest.raises(InvalidArgument, match=r"Invalid container name \(b a d\)"):
        c.create({"Image": "busybox", "Cmd": ["true"]}, "b a d")
    with pytest.raises(ContainerConflict, match='The container name "/taken" is already in use'):
        c.create({"Image": "busybox", "Cmd": ["true"]}, "/taken")
    with pytest.raises(InvalidArgument, match="network nosuchnet not found"):
        c.create({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "nosuchnet"}})
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        c.create({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Mounts": [
            {"Type": "bind", "Source": "/no/such/folder", "Target": "/x"}]}})
    assert clean.leftovers() == before
    c.remove("taken")


def test_concurrent_creates_and_starts(clean: Env) -> None:
    c = clean.containers
    made: list[str] = []
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            made.append(c.create({"Image": "busybox", "Cmd": ["echo", str(i)],
                                  "HostConfig": {"NetworkMode": "none"}})["Id"])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(made)) == 50
    names = {r["Names"][0] for r in c.list(all=True)}
    assert len(names) == 50

    def run(cid: str) -> None:
        try:
            c.start(cid)
            assert c.wait(cid)["StatusCode"] == 0
            c.remove(cid)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(cid,)) for cid in made[:10]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    pruned = c.prune()
    assert sorted(pruned["ContainersDeleted"]) == sorted(made[10:])


# -- skiffd goes away, monitors die ---------------------------------------------------------
def test_containers_outlive_the_engine(clean: Env) -> None:
    cid = clean.run(["sleep", "100"])
    pid = clean.containers.inspect(cid)["State"]["Pid"]
    clean.stop()  # skiffd goes; the container does not
    assert alive(pid)
    c = clean.start().containers
    state = c.inspect(cid)["State"]
    assert (state["Status"], state["Running"], state["Pid"]) == ("running", True, pid)
    assert c.stop(cid, timeout=0)  # the new engine hears of the exit
    assert c.inspect(cid)["State"]["ExitCode"] == 137
    c.remove(cid)


def _monitor_pid(env: Env, cid: str) -> int:
    with open(os.path.join(env.containers.bundle_dir(cid), "monitor.pid")) as f:
        return int(f.read().split()[0])


def test_a_killed_monitor_is_reported_and_cleaned(clean: Env) -> None:
    c = clean.containers
    cid = clean.run(["sleep", "100"])
    pid = c.inspect(cid)["State"]["Pid"]
    os.kill(_monitor_pid(clean, cid), signal.SIGKILL)
    assert c.wait(cid) == {"StatusCode": 137, "Error": {"Message": "monitor gone"}}
    state = c.inspect(cid)["State"]
    assert (state["Status"], state["Error"]) == ("exited", "monitor gone")
    assert not alive(pid) and cgroup_dirs(cid) == []
    c.remove(cid, force=True)


def test_a_monitor_killed_while_the_engine_was_away(clean: Env) -> None:
    cid = clean.run(["sleep", "100"])
    pid = clean.containers.inspect(cid)["State"]["Pid"]
    clean.stop()
    os.kill(_monitor_pid(clean, cid), signal.SIGKILL)
    c = clean.start().containers
    state = c.inspect(cid)["State"]
    assert (state["Status"], state["ExitCode"], state["Error"]) == ("exited", 137,
                                                                    "monitor gone")
    assert not alive(pid) and cgroup_dirs(cid) == []
    c.remove(cid, force=True)


def test_the_engine_keeps_its_cgroup_parent_until_it_closes(tmp_root: Path) -> None:
    """A removal takes the container's own cgroup, not the engine's --cgroup-parent (the
    next start need not make it again, in every hierarchy); a closing engine takes it."""
    parent = f"{CGROUP_PARENT}-keep"
    path = tmp_root / f"engine-keep-{uuid.uuid4().hex[:8]}"
    engine = Engine(path / "root", path / "run", engine_options(path, cgroup_parent=parent))
    try:
        engine.start()
        c = engine.containers
        cid = c.create({"Image": "busybox", "Cmd": ["true"],
                        "HostConfig": {"NetworkMode": "none"}})["Id"]
        c.start(cid)
        assert c.wait(cid)["StatusCode"] == 0
        c.remove(cid)
        kept = list(Path("/sys/fs/cgroup").glob(f"*{parent}"))
        assert len(kept) >= 2 and not list(Path("/sys/fs/cgroup").glob(f"*{parent}/*/"))
    finally:
        engine.close()
        shutil.rmtree(path, ignore_errors=True)
    assert list(Path("/sys/fs/cgroup").glob(f"*{parent}")) == []


def test_one_engine_per_root(clean: Env) -> None:
    other = Engine(clean.path / "root", clean.path / "run", engine_options(clean.path))
    try:
        with pytest.raises(StoreError, match="another engine"):
            other.start()
    finally:
        other.close()


def test_a_rootfs_unmounted_meanwhile_is_mounted_again(clean: Env) -> None:
    c = clean.containers
    cid = clean.run(["sh", "-c", "cat /file 2>/dev/null; echo kept > /file"])
    assert c.wait(cid)["StatusCode"] == 0
    syscall.umount(c.snapshots.rootfs(cid))  # what a reboot does to it
    c.start(cid)
    assert c.wait(cid)["StatusCode"] == 0
    assert clean.output(cid) == b"kept\n"  # the second run read what the first one wrote
    assert c.snapshots.mounted(cid)
    c.remove(cid)


def test_what_a_crash_left_is_swept_at_start(clean: Env) -> None:
    c = clean.containers
    orphan = "ab" * 32
    layers = c.store.rootfs_layers(c.store.get("busybox"))
    c.snapshots.prepare(orphan, layers)  # a create cut short before its row was written
    for folder in (c.container_dir(orphan), c.bundle_dir(orphan)):
        os.makedirs(folder)
    # a removal cut short after its folders were renamed out of the way, before their
    # trees were deleted
    trash = [os.path.join(folder, f".rm-{'cd' * 32}-0000") for folder in
             (c.containers_dir, c.bundles_dir, c.snapshots.snapshots)]
    for folder in trash:
        os.makedirs(os.path.join(folder, "deep"))
    clean.stop()
    c = clean.start().containers
    assert not c.snapshots.exists(orphan)
    assert not os.path.exists(c.container_dir(orphan))
    assert not os.path.exists(c.bundle_dir(orphan))
    assert not [folder for folder in trash if os.path.exists(folder)]


def test_a_start_the_engine_did_not_record(clean: Env) -> None:
    """skiffd killed between the monitor's start and the state's update: the next engine
    finds the run (still going, or over) all the same."""
    c = clean.containers
    created = dict(c.db.get(c.create({"Image": "busybox", "Cmd": ["true"]})["Id"]).state)
    c.remove(c.db.all()[0].id)
    going = clean.run(["sleep", "100"])
    over = clean.run(["sh", "-c", "exit 4"])
    assert c.wait(over)["StatusCode"] == 4
    pid = c.inspect(going)["State"]["Pid"]
    clean.stop()
    for cid in (going, over):
        c.db.set_state(cid, created)  # as if the starts had never been recorded
    c = clean.start().containers
    state = c.inspect(going)["State"]
    assert (state["Status"], state["Pid"]) == ("running", pid)
    state = c.inspect(over)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 4)
    c.remove(going, force=True)
    c.remove(over)
