"""The cgroup drivers on the real kernel of this hybrid host.

The V1 driver (through open_cgroup) is tested against the v1 hierarchies plus the cgroup2
at /sys/fs/cgroup/unified. The V2 driver is tested against that same cgroup2, which has
no controllers, so only membership, freezing and killing can be exercised there. Every
test uses a unique top directory. Its fixture kills the processes the test started (by
pid), thaws, destroys, and finally removes by hand any directory left behind, so even a
failing test leaves nothing on the host.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from skiff.errors import CgroupError
from skiff.oci.runtime_spec import DeviceRule, Memory, Pids, Resources
from skiff.runtime.cgroups import Cgroup, V2Cgroup, detect_hierarchies, open_cgroup

CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"
MiB = 1024 * 1024


def _hierarchies():
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return detect_hierarchies(f.read(), CGROUP_ROOT)


_HOST = _hierarchies()

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not _HOST.v1 or _HOST.unified is None,
                       reason="needs a hybrid host (v1 controllers + cgroup2 at unified)"),
]


def _all_mountpoints() -> list[str]:
    return list(_HOST.v1) + ([_HOST.unified] if _HOST.unified else [])


class Sandbox:
    """The processes and cgroup paths one test makes, and their removal."""

    def __init__(self) -> None:
        self.top = f"/skiff-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.cgroups: list[Cgroup] = []

    def spawn(self) -> subprocess.Popen[bytes]:
        # The shell waits for a line before exec'ing sleep, so the test can move it into the
        # cgroup first. The memory sleep then maps is charged to the new cgroup.
        p = subprocess.Popen(["/bin/sh", "-c", "read _; exec sleep 600"],
                             stdin=subprocess.PIPE)
        self.procs.append(p)
        return p

    @staticmethod
    def release(p: subprocess.Popen[bytes]) -> None:
        """Let the shell exec sleep, and wait until it has."""
        assert p.stdin is not None
        p.stdin.write(b"\n")
        p.stdin.close()
        for _ in range(500):
            with open(f"/proc/{p.pid}/comm") as f:
                if f.read().strip() == "sleep":
                    return
            time.sleep(0.01)
        raise AssertionError("sleep did not start")

    def cleanup(self) -> None:
        # Thaw first: a task frozen by the v1 freezer cannot die until it runs again.
        for mp in _all_mountpoints():
            for dirpath, _dirs, files in os.walk(os.path.join(mp, self.top.lstrip("/"))):
                for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
                    if name in files:
                        try:
                            with open(os.path.join(dirpath, name), "w") as f:
                                f.write(value)
                        except OSError:
                            pass
        for p in self.procs:
            if p.stdin is not None and not p.stdin.closed:
                p.stdin.close()
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)  # only ever a process this test started
            p.wait(timeout=10)
        for cg in self.cgroups:
            try:
                cg.destroy()
            except CgroupError:
                pass
        # Whatever is still there (a destroy that failed) goes by hand, deepest first.
        for mp in _all_mountpoints():
            top = os.path.join(mp, self.top.lstrip("/"))
            for dirpath, _dirs, _files in sorted(os.walk(top, topdown=False),
                                                 key=lambda t: -len(t[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass

    def leftovers(self) -> list[str]:
        return [os.path.join(mp, self.top.lstrip("/")) for mp in _all_mountpoints()
                if os.path.exists(os.path.join(mp, self.top.lstrip("/")))]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    try:
        yield box
    finally:
        box.cleanup()
    assert not box.leftovers(), f"left behind: {box.leftovers()}"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _v1(box: Sandbox, name: str = "c1", **kw) -> Cgroup:
    cg = open_cgroup(f"{box.top}/{name}", **kw)
    box.cgroups.append(cg)
    return cg


# -- the V1 driver (hybrid) -----------------------------------------------------------

def test_v1_lifecycle(sandbox: Sandbox) -> None:
    cg = _v1(sandbox)
    assert cg.version == "hybrid"
    cg.create()
    cg.create()  # idempotent
    assert cg.exists()
    mounts = cg.mounts()
    assert {m.name for m in mounts} >= {"memory", "pids", "freezer", "unified"}
    for m in mounts:
        assert os.path.isdir(m.host_path), m
    cpuset = next(m.host_path for m in mounts if "cpuset" in m.data.split(","))
    assert _read(f"{cpuset}/cpuset.cpus") and _read(f"{cpuset}/cpuset.mems")

    p = sandbox.spawn()
    cg.add(p.pid)
    sandbox.release(p)
    assert cg.pids() == [p.pid]
    with open(f"/proc/{p.pid}/cgroup") as f:
        lines = f.read().splitlines()
    assert f"0::{cg.path}" in lines  # joined the unified hierarchy as well
    assert any(line.endswith(f":memory:{cg.path}") for line in lines)

    cg.freeze()
    freezer = next(m.host_path for m in mounts if m.data == "freezer")
    assert _read(f"{freezer}/freezer.state") == "FROZEN"
    assert cg.frozen()
    cg.thaw()
    assert _read(f"{freezer}/freezer.state") == "THAWED"
    assert not cg.frozen()

    stats = cg.stats()
    assert stats["memory"]["usage"]["usage"] > 0
    assert stats["memory"]["usage"]["limit"] > 0
    assert "raw" in stats["memory"]
    assert stats["pids"]["current"] == 1
    assert "total" in stats["cpu"]["usage"]
    assert cg.oom_kills() == 0

    cg.kill_all(signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL
    assert cg.pids() == []
    cg.destroy()
    assert not cg.exists()
    assert sandbox.leftovers() == []


def test_v1_set_resources_reads_back(sandbox: Sandbox) -> None:
    cg = _v1(sandbox)
    cg.create()
    p = sandbox.spawn()
    cg.add(p.pid)
    sandbox.release(p)
    dirs = {m.data: m.host_path for m in cg.mounts()}
    mem, pids, devices = dirs["memory"], dirs["pids"], dirs["devices"]
    swap_accounting = os.path.exists(f"{mem}/memory.memsw.limit_in_bytes")

    cg.set(Resources(memory=Memory(limit=64 * MiB, swap=128 * MiB if swap_accounting else None,
                                   reservation=32 * MiB),
                     pids=Pids(limit=32)))
    assert int(_read(f"{mem}/memory.limit_in_bytes")) == 64 * MiB
    assert int(_read(f"{mem}/memory.soft_limit_in_bytes")) == 32 * MiB
    if swap_accounting:
        assert int(_read(f"{mem}/memory.memsw.limit_in_bytes")) == 128 * MiB
    assert _read(f"{pids}/pids.max") == "32"
    assert cg.stats()["pids"] == {"current": 1, "limit": 32}

    # Raising and then lowering both limits only works if memsw and limit are written in
    # the right order each way; the kernel refuses limit > memsw with EINVAL.
    if swap_accounting:
        cg.set(Resources(memory=Memory(limit=512 * MiB, swap=1024 * MiB)))
        assert int(_read(f"{mem}/memory.limit_in_bytes")) == 512 * MiB
        cg.set(Resources(memory=Memory(limit=48 * MiB, swap=64 * MiB)))
        assert int(_read(f"{mem}/memory.limit_in_bytes")) == 48 * MiB
        assert int(_read(f"{mem}/memory.memsw.limit_in_bytes")) == 64 * MiB

    cg.set(Resources(pids=Pids(limit=-1)))
    assert _read(f"{pids}/pids.max") == "max"

    cg.set(Resources(devices=(DeviceRule(allow=False, access="rwm"),
                              DeviceRule(allow=True, type="c", major=1, minor=3, access="rwm"),
                              DeviceRule(allow=True, type="c", major=136, access="rw"))))
    assert _read(f"{devices}/devices.list").splitlines() == ["c 1:3 rwm", "c 136:* rw"]

    with pytest.raises(CgroupError, match="needs cgroup v2"):
        cg.set(Resources(unified={"memory.high": "1G"}))

    cg.kill_all(signal.SIGKILL)
    p.wait(timeout=10)
    cg.destroy()


def test_v1_kill_all_with_a_catchable_signal(sandbox: Sandbox) -> None:
    cg = _v1(sandbox)
    cg.create()
    p = sandbox.spawn()
    cg.add(p.pid)
    sandbox.release(p)
    cg.kill_all(signal.SIGTERM)  # not SIGKILL: freeze, signal each pid, thaw
    assert p.wait(timeout=10) == -signal.SIGTERM
    assert not cg.frozen()
    cg.destroy()


def test_v1_destroy_keeps_a_live_sibling_and_then_prunes(sandbox: Sandbox) -> None:
    # owned_prefix says the top dir is skiff's, as /skiff is in production, so whichever
    # container goes last removes it although another one made it.
    c1 = _v1(sandbox, "c1", owned_prefix=sandbox.top)
    c2 = _v1(sandbox, "c2", owned_prefix=sandbox.top)
    c1.create()
    c2.create()
    c1.destroy()
    assert not c1.exists() and c2.exists()
    for mp in _all_mountpoints():
        assert os.path.isdir(os.path.join(mp, sandbox.top.lstrip("/"))), mp
    c2.destroy()
    assert sandbox.leftovers() == []


def test_v1_destroy_waits_for_exiting_processes(sandbox: Sandbox) -> None:
    cg = _v1(sandbox)
    cg.create()
    p = sandbox.spawn()
    cg.add(p.pid)
    sandbox.release(p)
    cg.kill_all(signal.SIGKILL)
    cg.destroy()  # right away, while the killed process may still be exiting
    p.wait(timeout=10)
    assert sandbox.leftovers() == []


# -- the V2 driver against the real (controller-less) cgroup2 ---------------------------

def _v2(box: Sandbox) -> V2Cgroup:
    # No controllers delegated: the root's subtree_control stays as the host has it.
    cg = V2Cgroup(f"{box.top}/c1", UNIFIED, controllers=())
    box.cgroups.append(cg)
    return cg


def test_v2_lifecycle_on_the_unified_hierarchy(sandbox: Sandbox) -> None:
    cg = _v2(sandbox)
    assert cg.version == "v2"
    cg.create()
    cg.create()
    assert os.path.isdir(f"{UNIFIED}{sandbox.top}/c1")
    p = sandbox.spawn()
    cg.add(p.pid)
    sandbox.release(p)
    assert cg.pids() == [p.pid]

    cg.freeze()
    assert "frozen 1" in _read(f"{cg.dir}/cgroup.events").splitlines()
    assert cg.frozen()
    cg.thaw()
    assert "frozen 0" in _read(f"{cg.dir}/cgroup.events").splitlines()
    assert not cg.frozen()

    stats = cg.stats()  # no controllers here, but cpu.stat is core
    assert "total" in stats["cpu"]["usage"]

    cg.kill_all(signal.SIGKILL)  # through cgroup.kill
    assert p.wait(timeout=10) == -signal.SIGKILL
    cg.destroy()
    assert not cg.exists()
    assert sandbox.leftovers() == []


def test_v2_kill_all_with_a_catchable_signal(sandbox: Sandbox) -> None:
    cg = _v2(sandbox)
    cg.create()
    p = sandbox.spawn()
    cg.add(p.pid)
    sandbox.release(p)
    cg.kill_all(signal.SIGTERM)
    assert p.wait(timeout=10) == -signal.SIGTERM
    assert not cg.frozen()
    cg.destroy()


def test_v2_missing_controller_is_named(sandbox: Sandbox) -> None:
    cg = _v2(sandbox)
    cg.create()
    with pytest.raises(CgroupError,
                       match=f"^pids.max: controller pids not available in {UNIFIED}$"):
        cg.set(Resources(pids=Pids(limit=10)))
    with pytest.raises(CgroupError, match="memory.max: controller memory not available"):
        cg.set(Resources(memory=Memory(limit=64 * MiB)))
    cg.set(Resources(devices=(DeviceRule(allow=False, access="rwm"),)))  # logged, not raised
    cg.destroy()
