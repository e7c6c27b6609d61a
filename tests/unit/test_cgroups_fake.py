"""The cgroup drivers' logic on fake trees: plain directories and files in tmp_path.

A fake tree has no kernel behind it. Files exist only if the test makes them, and nothing
is enforced. So these tests check what is written where, the conversions, the checks done
before writing, which directories are made and removed, and how the host layout is
detected. tests/integration/test_cgroups_real.py covers the real kernel.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
from pathlib import Path

import pytest

from skiff.errors import CgroupError, SpecError
from skiff.oci.runtime_spec import (BlockIO, Cpu, DeviceRule, HugepageLimit, Memory, Pids,
                                    Resources, ThrottleDevice, WeightDevice)
from skiff.runtime.cgroups import (Cgroup, CgroupMount, V1Cgroup, V2Cgroup, _cgroupfs,
                                   detect_hierarchies, normalise_path, open_cgroup, prune_parent,
                                   v2)
from skiff.runtime.cgroups.v1 import device_rule_line

MiB = 1024 * 1024
UNLIMITED_V1 = "9223372036854771712"


def touch(d: Path, files: dict[str, str]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (d / name).write_text(content)


def text(p: Path) -> str:
    return p.read_text()


# -- a fake v1 host ---------------------------------------------------------------------

V1_LAYOUT = {"memory": "memory", "cpu,cpuacct": "cpu,cpuacct", "cpuset": "cpuset",
             "devices": "devices", "freezer": "freezer", "blkio": "blkio", "pids": "pids",
             "hugetlb": "hugetlb", "systemd": "name=systemd"}

# The control files a real kernel would put in a new cgroup, per hierarchy.
V1_FILES = {
    "memory": {"memory.limit_in_bytes": UNLIMITED_V1, "memory.soft_limit_in_bytes": UNLIMITED_V1,
               "memory.memsw.limit_in_bytes": UNLIMITED_V1, "memory.swappiness": "60",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
               "memory.usage_in_bytes": "0"},
    "cpu,cpuacct": {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1",
                    "cpu.cfs_period_us": "100000", "cpu.cfs_burst_us": "0",
                    "cpu.rt_runtime_us": "0", "cpu.rt_period_us": "1000000", "cpu.idle": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "devices": {"devices.allow": "", "devices.deny": ""},
    "freezer": {"freezer.state": "THAWED"},
    "blkio": {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": "",
              "blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "",
              "blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": ""},
    "pids": {"pids.max": "max"},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": UNLIMITED_V1,
                "hugetlb.1GB.limit_in_bytes": UNLIMITED_V1},
    "systemd": {},
}


def fake_v1(tmp_path: Path, layout: dict[str, str] | None = None) -> dict[str, str]:
    """Make the v1 mountpoints; return mountpoint → mount data for V1Cgroup."""
    layout = V1_LAYOUT if layout is None else layout
    root = tmp_path / "cg"
    hierarchies = {}
    for name, data in layout.items():
        (root / name).mkdir(parents=True)
        hierarchies[str(root / name)] = data
    if "cpuset" in layout:
        touch(root / "cpuset", {"cpuset.cpus": "0-3", "cpuset.mems": "0"})
    return hierarchies


def populate_v1(tmp_path: Path, cg: V1Cgroup, skip: tuple[str, ...] = ()) -> None:
    """Do what the kernel does after mkdir: fill the leaf with control files."""
    for name in os.listdir(tmp_path / "cg"):
        if name == "unified":
            continue
        files = {"cgroup.procs": ""} | V1_FILES.get(name, {})
        touch(tmp_path / "cg" / name / cg.path.lstrip("/"),
              {k: v for k, v in files.items() if k not in skip})


def leaf(tmp_path: Path, hierarchy: str, cg: Cgroup) -> Path:
    return tmp_path / "cg" / hierarchy / cg.path.lstrip("/")


FULL = Resources(
    devices=(DeviceRule(allow=False, access="rwm"),
             DeviceRule(allow=True, type="c", major=1, minor=3, access="rwm"),
             DeviceRule(allow=True, type="c", major=136, access="rwm"),
             DeviceRule(allow=True, type="b", minor=0, access="r"),
             DeviceRule(allow=False, type="c", major=5, minor=1)),
    memory=Memory(limit=256 * MiB, reservation=128 * MiB, swap=512 * MiB, swappiness=10,
                  disable_oom_killer=True, kernel=64 * MiB, kernel_tcp=16 * MiB),
    cpu=Cpu(shares=512, quota=50000, period=100000, burst=1000, realtime_runtime=950,
            realtime_period=1000, cpus="0-1", mems="0", idle=0),
    pids=Pids(limit=100),
    block_io=BlockIO(weight=300,
                     weight_device=(WeightDevice(8, 0, weight=500),),
                     throttle_read_bps_device=(ThrottleDevice(8, 0, 1048576),),
                     throttle_write_bps_device=(ThrottleDevice(8, 0, 2097152),),
                     throttle_read_iops_device=(ThrottleDevice(8, 16, 100),),
                     throttle_write_iops_device=(ThrottleDevice(8, 16, 50),)),
    hugepage_limits=(HugepageLimit("2MB", 20 * MiB), HugepageLimit("1GB", 0)),
)


@pytest.fixture
def v1(tmp_path: Path) -> V1Cgroup:
    cg = V1Cgroup("/skiff/c1", fake_v1(tmp_path))
    cg.create()
    populate_v1(tmp_path, cg)
    return cg


def test_v1_full_resources_land_in_the_right_files(tmp_path: Path, v1: V1Cgroup,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "skiff.cgroups")
    v1.set(FULL)
    mem, cpu = leaf(tmp_path, "memory", v1), leaf(tmp_path, "cpu,cpuacct", v1)
    assert text(mem / "memory.limit_in_bytes") == str(256 * MiB)
    assert text(mem / "memory.memsw.limit_in_bytes") == str(512 * MiB)
    assert text(mem / "memory.soft_limit_in_bytes") == str(128 * MiB)
    assert text(mem / "memory.swappiness") == "10"
    assert text(mem / "memory.oom_control") == "1"
    assert "memory.kernel ignored" in caplog.text and "memory.kernelTCP ignored" in caplog.text
    assert text(cpu / "cpu.shares") == "512"
    assert text(cpu / "cpu.cfs_quota_us") == "50000"
    assert text(cpu / "cpu.cfs_period_us") == "100000"
    assert text(cpu / "cpu.cfs_burst_us") == "1000"
    assert text(cpu / "cpu.rt_runtime_us") == "950"
    assert text(cpu / "cpu.rt_period_us") == "1000"
    assert text(cpu / "cpu.idle") == "0"
    cpuset = leaf(tmp_path, "cpuset", v1)
    assert (text(cpuset / "cpuset.cpus"), text(cpuset / "cpuset.mems")) == ("0-1", "0")
    dev = leaf(tmp_path, "devices", v1)
    assert text(dev / "devices.deny") == "a *:* rwm\nc 5:1 rwm\n"
    assert text(dev / "devices.allow") == "c 1:3 rwm\nc 136:* rwm\nb *:0 r\n"
    assert text(leaf(tmp_path, "pids", v1) / "pids.max") == "100"
    blk = leaf(tmp_path, "blkio", v1)
    assert text(blk / "blkio.bfq.weight") == "300"
    assert text(blk / "blkio.bfq.weight_device") == "8:0 500\n"
    assert text(blk / "blkio.throttle.read_bps_device") == "8:0 1048576\n"
    assert text(blk / "blkio.throttle.write_bps_device") == "8:0 2097152\n"
    assert text(blk / "blkio.throttle.read_iops_device") == "8:16 100\n"
    assert text(blk / "blkio.throttle.write_iops_device") == "8:16 50\n"
    huge = leaf(tmp_path, "hugetlb", v1)
    assert text(huge / "hugetlb.2MB.limit_in_bytes") == str(20 * MiB)
    assert text(huge / "hugetlb.1GB.limit_in_bytes") == "0"


def test_v1_devices_are_written_in_rule_order(tmp_path: Path, v1: V1Cgroup,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_writes(monkeypatch)
    v1.set(Resources(devices=FULL.devices))
    assert [(os.path.basename(p), v) for p, v in calls] == [
        ("devices.deny", "a *:* rwm"), ("devices.allow", "c 1:3 rwm"),
        ("devices.allow", "c 136:* rwm"), ("devices.allow", "b *:0 r"),
        ("devices.deny", "c 5:1 rwm")]


@pytest.mark.parametrize("rule, line", [
    (DeviceRule(allow=True), "a *:* rwm"),
    (DeviceRule(allow=True, type="c", major=1, minor=3, access="rwm"), "c 1:3 rwm"),
    (DeviceRule(allow=True, type="c", major=136, access="rwm"), "c 136:* rwm"),
    (DeviceRule(allow=False, type="b", major=-1, minor=-1, access="m"), "b *:* m"),
])
def test_device_rule_lines(rule: DeviceRule, line: str) -> None:
    assert device_rule_line(rule) == line


def record_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    real = _cgroupfs.write

    def write(path: str, value: str, *, append: bool = False) -> None:
        calls.append((path, value))
        real(path, value, append=append)

    monkeypatch.setattr(_cgroupfs, "write", write)
    return calls


def test_v1_memory_and_memsw_order(tmp_path: Path, v1: V1Cgroup,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mem = leaf(tmp_path, "memory", v1)
    (mem / "memory.limit_in_bytes").write_text(str(100 * MiB))
    calls = record_writes(monkeypatch)

    def order() -> list[str]:
        names = [os.path.basename(p) for p, _ in calls]
        calls.clear()
        return names

    # Raising: memsw first, so that limit <= memsw holds at every step.
    v1.set(Resources(memory=Memory(limit=300 * MiB, swap=400 * MiB)))
    assert order() == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    # Lowering: the limit first.
    v1.set(Resources(memory=Memory(limit=50 * MiB, swap=60 * MiB)))
    assert order() == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    # Unlimited memory with swap unset: both unlimited, memsw first.
    v1.set(Resources(memory=Memory(limit=-1)))
    assert calls == [(str(mem / "memory.memsw.limit_in_bytes"), "-1"),
                     (str(mem / "memory.limit_in_bytes"), "-1")]


def test_v1_swap_without_swap_accounting(tmp_path: Path) -> None:
    cg = V1Cgroup("/skiff/c1", fake_v1(tmp_path))
    cg.create()
    populate_v1(tmp_path, cg, skip=("memory.memsw.limit_in_bytes",))
    mem = leaf(tmp_path, "memory", cg)
    with pytest.raises(CgroupError, match="memory.memsw.limit_in_bytes: swap accounting is "
                                          "not available"):
        cg.set(Resources(memory=Memory(limit=64 * MiB, swap=128 * MiB), pids=Pids(5)))
    # Refused before anything was written.
    assert text(mem / "memory.limit_in_bytes") == UNLIMITED_V1
    assert text(leaf(tmp_path, "pids", cg) / "pids.max") == "max"
    # Unlimited swap needs no accounting.
    cg.set(Resources(memory=Memory(limit=64 * MiB, swap=-1)))
    assert text(mem / "memory.limit_in_bytes") == str(64 * MiB)


def test_a_failed_write_names_the_file_and_errno(tmp_path: Path) -> None:
    cg = V1Cgroup("/c1", fake_v1(tmp_path, {"pids": "pids"}))
    cg.create()  # no pids.max in the fake leaf: as if the kernel lacked it
    target = leaf(tmp_path, "pids", cg) / "pids.max"
    with pytest.raises(CgroupError) as info:
        cg.set(Resources(pids=Pids(10)))
    assert str(info.value) == f"write `10` to `{target}`: ENOENT (No such file or directory)"
    assert info.value.errno == errno.ENOENT  # type: ignore[attr-defined]


def test_v1_memory_limit_below_usage_says_how_much_is_used(
        tmp_path: Path, v1: V1Cgroup, monkeypatch: pytest.MonkeyPatch) -> None:
    mem = leaf(tmp_path, "memory", v1)
    touch(mem, {"memory.usage_in_bytes": "5000000", "memory.max_usage_in_bytes": "6000000"})

    def busy(path: str, value: str, *, append: bool = False) -> None:
        raise _cgroupfs.failure(f"write `{value}` to", path, OSError(errno.EBUSY, "busy"))

    monkeypatch.setattr(_cgroupfs, "write", busy)
    with pytest.raises(CgroupError, match="EBUSY .*current usage 5000000, peak usage 6000000"):
        v1.set(Resources(memory=Memory(limit=MiB)))


def test_v1_bad_swappiness_is_a_spec_error(v1: V1Cgroup) -> None:
    with pytest.raises(SpecError, match="swappiness: must be 0..100"):
        v1.set(Resources(memory=Memory(swappiness=101)))


@pytest.mark.parametrize("limit, written", [(100, "100"), (-1, "max"), (0, "max")])
def test_v1_pids_limit(tmp_path: Path, v1: V1Cgroup, limit: int, written: str) -> None:
    (leaf(tmp_path, "pids", v1) / "pids.max").write_text("7")
    v1.set(Resources(pids=Pids(limit)))
    assert text(leaf(tmp_path, "pids", v1) / "pids.max") == written


def test_v1_unified_needs_v2(v1: V1Cgroup) -> None:
    with pytest.raises(CgroupError, match=r"^linux.resources.unified needs cgroup v2"):
        v1.set(Resources(unified={"memory.high": "1G"}))


def test_v1_missing_controller(tmp_path: Path) -> None:
    layout = {k: v for k, v in V1_LAYOUT.items() if k not in ("pids", "hugetlb")}
    cg = V1Cgroup("/c1", fake_v1(tmp_path, layout))
    cg.create()
    populate_v1(tmp_path, cg)
    with pytest.raises(CgroupError, match="^pids.max: controller pids is not mounted"):
        cg.set(Resources(pids=Pids(10)))
    with pytest.raises(CgroupError, match="hugetlb.2MB.limit_in_bytes: controller hugetlb"):
        cg.set(Resources(hugepage_limits=(HugepageLimit("2MB", MiB),)))


def test_v1_blkio_weight_file_cfq_or_bfq(tmp_path: Path) -> None:
    cg = V1Cgroup("/c1", fake_v1(tmp_path))
    cg.create()
    populate_v1(tmp_path, cg, skip=("blkio.bfq.weight", "blkio.bfq.weight_device"))
    blk = leaf(tmp_path, "blkio", cg)
    with pytest.raises(CgroupError, match="neither blkio.weight nor blkio.bfq.weight"):
        cg.set(Resources(block_io=BlockIO(weight=200)))
    touch(blk, {"blkio.weight": "500", "blkio.weight_device": ""})
    cg.set(Resources(block_io=BlockIO(weight=200, weight_device=(WeightDevice(8, 0, 300),))))
    assert text(blk / "blkio.weight") == "200"
    assert text(blk / "blkio.weight_device") == "8:0 300\n"


def test_v1_cpu_shares_clamped_by_the_kernel_is_reported(tmp_path: Path, v1: V1Cgroup,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    real = _cgroupfs.write

    def clamping_write(path: str, value: str, *, append: bool = False) -> None:
        real(path, "262144" if path.endswith("cpu.shares") else value, append=append)

    monkeypatch.setattr(_cgroupfs, "write", clamping_write)
    with pytest.raises(CgroupError, match="asked for 999999, the kernel set 262144"):
        v1.set(Resources(cpu=Cpu(shares=999999)))


def test_v1_cpuset_is_copied_down_from_the_parent(tmp_path: Path) -> None:
    hierarchies = fake_v1(tmp_path)
    # An existing, still empty ancestor: it gets the root's values before the leaf is made.
    touch(tmp_path / "cg/cpuset/skiff", {"cpuset.cpus": "", "cpuset.mems": "\n"})
    cg = V1Cgroup("/skiff/c1", hierarchies)
    cg.create()
    assert text(tmp_path / "cg/cpuset/skiff/cpuset.cpus") == "0-3"
    assert text(tmp_path / "cg/cpuset/skiff/cpuset.mems") == "0"


def test_v1_add_pids_freeze_and_kill(tmp_path: Path) -> None:
    unified = tmp_path / "cg/unified"
    cg = V1Cgroup("/skiff/c1", fake_v1(tmp_path / "h"), unified=str(unified))
    touch(unified, {"cgroup.controllers": ""})
    cg.create()
    touch(unified / "skiff/c1", {"cgroup.procs": "", "cgroup.kill": "", "cgroup.freeze": "0"})
    populate_v1(tmp_path / "h", cg)
    cg.add(4242)
    for name in V1_LAYOUT:
        assert text(tmp_path / "h/cg" / name / "skiff/c1/cgroup.procs") == "4242\n"
    assert text(unified / "skiff/c1/cgroup.procs") == "4242\n"
    # what create keeps for exec: every file add wrote, unified last
    assert cg.procs_files() == [str(tmp_path / "h/cg" / name / "skiff/c1/cgroup.procs")
                                for name in V1_LAYOUT] + [str(unified / "skiff/c1/cgroup.procs")]
    assert cg.pids() == [4242]
    # (no process 4242 is ever signalled: the fake's cgroup.procs is emptied first)
    for name in V1_LAYOUT:
        (tmp_path / "h/cg" / name / "skiff/c1/cgroup.procs").write_text("")
    cg.kill_all(signal.SIGKILL)
    assert text(unified / "skiff/c1/cgroup.kill") == "1"

    freezer = tmp_path / "h/cg/freezer/skiff/c1/freezer.state"
    cg.freeze()
    assert text(freezer) == "FROZEN" and cg.frozen()
    cg.thaw()
    assert text(freezer) == "THAWED" and not cg.frozen()


def test_v1_hugetlb_only_on_unified_goes_there(tmp_path: Path) -> None:
    layout = {k: v for k, v in V1_LAYOUT.items() if k != "hugetlb"}
    unified = tmp_path / "cg/unified"
    cg = V1Cgroup("/c1", fake_v1(tmp_path / "h", layout), unified=str(unified))
    touch(unified, {"cgroup.controllers": "hugetlb", "cgroup.subtree_control": ""})
    cg.create()
    # create() delegates nothing in hybrid mode: membership is all it needs there.
    assert text(unified / "cgroup.subtree_control") == ""
    touch(unified / "c1", {"cgroup.controllers": "hugetlb", "hugetlb.2MB.max": "max"})
    cg.set(Resources(hugepage_limits=(HugepageLimit("2MB", 4 * MiB),)))
    assert text(unified / "c1/hugetlb.2MB.max") == str(4 * MiB)


def test_v1_hugetlb_on_unified_is_enabled_when_needed(tmp_path: Path) -> None:
    layout = {k: v for k, v in V1_LAYOUT.items() if k != "hugetlb"}
    unified = tmp_path / "cg/unified"
    cg = V1Cgroup("/c1", fake_v1(tmp_path / "h", layout), unified=str(unified))
    touch(unified, {"cgroup.controllers": "hugetlb", "cgroup.subtree_control": ""})
    cg.create()
    touch(unified / "c1", {"cgroup.controllers": ""})
    # The fake kernel does not propagate subtree_control, so the controller stays missing
    # in the leaf, but the enabling write must have been made.
    with pytest.raises(CgroupError, match="could not be enabled"):
        cg.set(Resources(hugepage_limits=(HugepageLimit("2MB", 4 * MiB),)))
    assert text(unified / "cgroup.subtree_control") == "+hugetlb\n"


def test_v1_stats_and_oom_kills(tmp_path: Path, v1: V1Cgroup) -> None:
    mem, cpu = leaf(tmp_path, "memory", v1), leaf(tmp_path, "cpu,cpuacct", v1)
    touch(mem, {"memory.usage_in_bytes": "4096", "memory.max_usage_in_bytes": "8192",
                "memory.failcnt": "2", "memory.memsw.usage_in_bytes": "4096",
                "memory.stat": "cache 100\nrss 200\n",
                "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"})
    hz = os.sysconf("SC_CLK_TCK")
    touch(cpu, {"cpuacct.usage": "123456", "cpuacct.usage_percpu": "100000 23456 \n",
                "cpuacct.stat": f"user {hz}\nsystem {2 * hz}\n",
                "cpuacct.usage_all": "cpu user system\n0 90000 10000\n1 20000 3456\n",
                "cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n"})
    touch(leaf(tmp_path, "pids", v1), {"pids.current": "3", "pids.max": "max"})
    touch(leaf(tmp_path, "blkio", v1), {
        "blkio.throttle.io_service_bytes_recursive": "8:0 Read 512\n8:0 Write 1024\nTotal 1536\n",
        "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 2\nTotal 3\n"})
    s = v1.stats()
    assert s["cpu"] == {"usage": {"total": 123456, "percpu": [100000, 23456],
                                  "percpu_user": [90000, 20000], "percpu_kernel": [10000, 3456],
                                  "user": 10**9, "kernel": 2 * 10**9},
                        "throttling": {"periods": 10, "throttledPeriods": 2,
                                       "throttledTime": 5000}}
    assert s["memory"]["usage"] == {"limit": int(UNLIMITED_V1), "usage": 4096, "max": 8192,
                                    "failcnt": 2}
    assert s["memory"]["swap"] == {"limit": int(UNLIMITED_V1), "usage": 4096}
    assert s["memory"]["raw"] == {"cache": 100, "rss": 200} and s["memory"]["cache"] == 100
    assert s["pids"] == {"current": 3, "limit": 0}
    assert s["blkio"]["ioServiceBytesRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 512},
        {"major": 8, "minor": 0, "op": "Write", "value": 1024}]
    assert s["hugetlb"]["2MB"] == {"usage": 0, "max": 0, "failcnt": 0}
    assert v1.oom_kills() == 3


def test_v1_mounts(tmp_path: Path) -> None:
    unified = tmp_path / "cg/unified"
    cg = V1Cgroup("/skiff/c1", fake_v1(tmp_path), unified=str(unified))
    by_name = {m.name: m for m in cg.mounts()}
    assert by_name["cpu,cpuacct"] == CgroupMount(
        "cpu,cpuacct", "cgroup", "cpu,cpuacct", str(tmp_path / "cg/cpu,cpuacct/skiff/c1"),
        aliases=("cpu", "cpuacct"))
    assert by_name["systemd"].data == "name=systemd"
    assert by_name["unified"] == CgroupMount("unified", "cgroup2", "",
                                             str(unified / "skiff/c1"))
    assert cg.version == "hybrid"


# -- directories made and removed ---------------------------------------------------------

def dirs_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}


def test_destroy_removes_dirs_and_empty_ancestors_but_not_a_siblings(tmp_path: Path) -> None:
    hierarchies = fake_v1(tmp_path)
    a, b = V1Cgroup("/skiff/a", hierarchies), V1Cgroup("/skiff/b", hierarchies)
    a.create()
    b.create()
    assert a.exists() and b.exists()
    a.destroy()
    assert not a.exists() and b.exists()
    for name in V1_LAYOUT:
        assert dirs_under(tmp_path / "cg" / name) == {"skiff", "skiff/b"}
    # /skiff is skiff's (SKIFF_PARENT), so the last container removes it though `a` made it.
    b.destroy()
    for name in V1_LAYOUT:
        assert dirs_under(tmp_path / "cg" / name) == set()
        assert (tmp_path / "cg" / name).is_dir()  # never the hierarchy root
    a.destroy()  # idempotent


def test_destroy_keeps_ancestors_skiff_did_not_make(tmp_path: Path) -> None:
    hierarchies = fake_v1(tmp_path, {"memory": "memory", "pids": "pids"})
    (tmp_path / "cg/memory/theirs").mkdir()
    cg = V1Cgroup("/theirs/mine/c1", hierarchies)
    cg.create()
    cg.destroy()
    # "mine" was made by this create() and goes; "theirs" pre-existed and stays in memory;
    # in pids, create() made "theirs" too, so it goes there.
    assert dirs_under(tmp_path / "cg/memory") == {"theirs"}
    assert dirs_under(tmp_path / "cg/pids") == set()
    # Without a record of who made them, only ancestors below owned_prefix go.
    other = V1Cgroup("/theirs/x/c1", hierarchies)
    other.create()
    V1Cgroup("/theirs/x/c1", hierarchies, owned_prefix="/theirs/x").destroy()
    assert dirs_under(tmp_path / "cg/memory") == {"theirs"}


def test_destroy_removes_nested_child_cgroups(tmp_path: Path) -> None:
    cg = V2Cgroup("/skiff/c1", str(tmp_path))
    cg.create()
    (tmp_path / "skiff/c1/sub/deeper").mkdir(parents=True)  # made inside a cgroupns
    cg.destroy()
    assert dirs_under(tmp_path) == set()


def test_create_retries_when_an_ancestor_vanishes(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    hierarchies = fake_v1(tmp_path, {"memory": "memory"})
    real_mkdir = os.mkdir
    raced: list[str] = []

    def mkdir(path: str, mode: int = 0o777) -> None:
        if path.endswith("/c1") and not raced:
            # A concurrent destroy() of the last sibling prunes /skiff just now.
            raced.append(path)
            os.rmdir(os.path.dirname(path))
        real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", mkdir)
    cg = V1Cgroup("/skiff/c1", hierarchies)
    cg.create()
    assert raced and cg.exists()


def test_a_failed_create_leaves_nothing(tmp_path: Path) -> None:
    hierarchies = fake_v1(tmp_path, {"memory": "memory", "pids": "pids"})
    hierarchies[str(tmp_path / "cg/gone")] = "freezer"  # a mountpoint that is not there
    cg = V1Cgroup("/skiff/c1", hierarchies)
    with pytest.raises(CgroupError, match="mkdir"):
        cg.create()
    assert dirs_under(tmp_path / "cg/memory") == set()
    assert dirs_under(tmp_path / "cg/pids") == set()


# -- a fake v2 host -------------------------------------------------------------------------

V2_CONTROLLERS = "cpuset cpu io memory hugetlb pids"
V2_FILES = {"cgroup.controllers": V2_CONTROLLERS, "cgroup.procs": "", "memory.max": "max",
            "memory.low": "0", "memory.swap.max": "max", "cpu.weight": "100",
            "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0",
            "cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max", "io.weight": "default 100",
            "io.max": "", "hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max",
            "hugetlb.1GB.max": "max", "memory.high": "max", "cgroup.freeze": "0",
            "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.kill": ""}


@pytest.fixture
def v2cg(tmp_path: Path) -> V2Cgroup:
    root = tmp_path / "unified"
    touch(root, {"cgroup.controllers": V2_CONTROLLERS, "cgroup.subtree_control": ""})
    cg = V2Cgroup("/c1", str(root))
    cg.create()
    touch(root / "c1", V2_FILES)
    return cg


def test_v2_create_delegates_every_controller_in_ancestors(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    touch(root, {"cgroup.controllers": V2_CONTROLLERS, "cgroup.subtree_control": "cpu\n"})
    touch(root / "skiff", {"cgroup.controllers": V2_CONTROLLERS, "cgroup.subtree_control": ""})
    V2Cgroup("/skiff/c1", str(root)).create()
    # Only what is not enabled yet; cpu already was at the root.
    assert text(root / "cgroup.subtree_control") == "cpu\n+cpuset +io +memory +hugetlb +pids\n"
    assert text(root / "skiff/cgroup.subtree_control") == \
        "+cpuset +cpu +io +memory +hugetlb +pids\n"
    assert not (root / "skiff/c1/cgroup.subtree_control").exists()  # never the leaf


def test_v2_create_with_no_controllers_touches_no_subtree_control(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    touch(root, {"cgroup.controllers": V2_CONTROLLERS, "cgroup.subtree_control": ""})
    V2Cgroup("/c1", str(root), controllers=()).create()
    assert text(root / "cgroup.subtree_control") == ""


def test_v2_full_resources(tmp_path: Path, v2cg: V2Cgroup,
                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "skiff.cgroups")
    d = Path(v2cg.dir)
    full = Resources(devices=FULL.devices, memory=Memory(limit=256 * MiB,
                                                         reservation=128 * MiB,
                                                         swap=512 * MiB, swappiness=10),
                     cpu=Cpu(shares=1024, quota=50000, period=100000, burst=1000, cpus="0-1",
                             mems="0", idle=0),
                     pids=Pids(100), block_io=FULL.block_io,
                     hugepage_limits=(HugepageLimit("2MB", 20 * MiB),),
                     unified={"memory.high": "200M"})
    v2cg.set(full)
    assert text(d / "memory.max") == str(256 * MiB)
    assert text(d / "memory.swap.max") == str(256 * MiB)  # 512M memory+swap - 256M memory
    assert text(d / "memory.low") == str(128 * MiB)
    assert text(d / "cpu.weight") == "39"  # 1 + (1024-2)*9999/262142
    assert text(d / "cpu.max") == "50000 100000"
    assert text(d / "cpu.max.burst") == "1000"
    assert text(d / "cpu.idle") == "0"
    assert (text(d / "cpuset.cpus"), text(d / "cpuset.mems")) == ("0-1", "0")
    assert text(d / "pids.max") == "100"
    assert text(d / "io.max") == "8:0 rbps=1048576 wbps=2097152\n8:16 riops=100 wiops=50\n"
    assert text(d / "hugetlb.2MB.max") == str(20 * MiB)
    assert text(d / "hugetlb.2MB.rsvd.max") == str(20 * MiB)
    assert text(d / "memory.high") == "200M"
    assert "device rule(s) NOT enforced" in caplog.text
    assert not (d / "devices.allow").exists()


def test_v2_io_weight_conversion_and_bfq(tmp_path: Path, v2cg: V2Cgroup,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    d = Path(v2cg.dir)
    calls = record_writes(monkeypatch)
    v2cg.set(Resources(block_io=BlockIO(weight=300, weight_device=(WeightDevice(8, 0, 500),))))
    # 1 + (w - 10) * 9999 / 990: the default weight, then the per-device one
    assert calls == [(str(d / "io.weight"), "2930"), (str(d / "io.weight"), "8:0 4950")]
    calls.clear()
    touch(d, {"io.bfq.weight": ""})
    v2cg.set(Resources(block_io=BlockIO(weight=300, weight_device=(WeightDevice(8, 0, 500),))))
    # BFQ takes the v1 range unconverted
    assert calls == [(str(d / "io.bfq.weight"), "300"), (str(d / "io.bfq.weight"), "8:0 500")]


@pytest.mark.parametrize("shares, weight", [(2, 1), (512, 20), (1024, 39), (262144, 10000),
                                            (1, 1), (10**7, 10000), (0, 0)])
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert v2.shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio, io", [(10, 1), (500, 4950), (1000, 10000), (0, 0)])
def test_blkio_weight_to_io_weight(blkio: int, io: int) -> None:
    assert v2.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize("memory, swap, files", [
    (Memory(limit=100, swap=300), None, {"memory.max": "100", "memory.swap.max": "200"}),
    (Memory(limit=100, swap=100), None, {"memory.max": "100", "memory.swap.max": "0"}),
    (Memory(limit=100, swap=-1), None, {"memory.max": "100", "memory.swap.max": "max"}),
    (Memory(limit=-1), None, {"memory.max": "max", "memory.swap.max": "max"}),
    (Memory(limit=100), None, {"memory.max": "100", "memory.swap.max": "keep"}),
    (Memory(limit=100, swap=50), "must be >= the memory limit", {}),
    (Memory(swap=500), "without a memory limit", {}),
])
def test_v2_swap_conversion(tmp_path: Path, v2cg: V2Cgroup, memory: Memory, swap: str | None,
                            files: dict[str, str]) -> None:
    d = Path(v2cg.dir)
    (d / "memory.swap.max").write_text("keep")
    if swap is not None:
        with pytest.raises(SpecError, match=swap):
            v2cg.set(Resources(memory=memory))
        return
    v2cg.set(Resources(memory=memory))
    assert {name: text(d / name) for name in files} == files


def test_v2_swap_limit_without_swap_accounting(tmp_path: Path, v2cg: V2Cgroup) -> None:
    d = Path(v2cg.dir)
    (d / "memory.swap.max").unlink()
    v2cg.set(Resources(memory=Memory(limit=100, swap=-1)))  # nothing to lift: fine
    with pytest.raises(CgroupError, match="memory.swap.max: swap accounting is not available"):
        v2cg.set(Resources(memory=Memory(limit=100, swap=300)))


@pytest.mark.parametrize("cpu, written", [(Cpu(quota=-1, period=100000), "max 100000"),
                                          (Cpu(quota=20000), "20000"),
                                          (Cpu(period=50000), "max 50000")])
def test_v2_cpu_max(tmp_path: Path, v2cg: V2Cgroup, cpu: Cpu, written: str) -> None:
    v2cg.set(Resources(cpu=cpu))
    assert text(Path(v2cg.dir) / "cpu.max") == written


@pytest.mark.parametrize("limit, written", [(100, "100"), (-1, "max"), (0, "max")])
def test_v2_pids_limit(tmp_path: Path, v2cg: V2Cgroup, limit: int, written: str) -> None:
    (Path(v2cg.dir) / "pids.max").write_text("7")
    v2cg.set(Resources(pids=Pids(limit)))
    assert text(Path(v2cg.dir) / "pids.max") == written


def test_v2_missing_controller(tmp_path: Path) -> None:
    root = tmp_path / "unified"
    touch(root, {"cgroup.controllers": "hugetlb", "cgroup.subtree_control": ""})
    cg = V2Cgroup("/c1", str(root), controllers=())
    cg.create()
    touch(root / "c1", {"cgroup.controllers": "", "memory.max": "max"})
    with pytest.raises(CgroupError) as info:
        cg.set(Resources(memory=Memory(limit=MiB)))
    assert str(info.value) == f"memory.max: controller memory not available in {root}"
    assert text(root / "c1/memory.max") == "max"
    with pytest.raises(CgroupError, match="^pids.max: controller pids not available"):
        cg.set(Resources(pids=Pids(3)))
    with pytest.raises(CgroupError, match="^memory.high: controller memory not available"):
        cg.set(Resources(unified={"memory.high": "1G"}))


def test_v2_refusals(v2cg: V2Cgroup) -> None:
    with pytest.raises(CgroupError, match="realtime .* need cgroup v1"):
        v2cg.set(Resources(cpu=Cpu(realtime_runtime=1000)))
    with pytest.raises(SpecError, match=r"unified\.\.\./etc/passwd"):
        v2cg.set(Resources(unified={"../etc/passwd": "x"}))


def test_v2_freeze_kill_and_timeout(tmp_path: Path, v2cg: V2Cgroup,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    d = Path(v2cg.dir)
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    v2cg.freeze()
    assert text(d / "cgroup.freeze") == "1" and v2cg.frozen()
    (d / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    v2cg.thaw()
    assert text(d / "cgroup.freeze") == "0" and not v2cg.frozen()
    # A cgroup that never reports frozen: an error, and it is thawed again.
    monkeypatch.setattr(v2, "FREEZE_TIMEOUT", 0.05)
    with pytest.raises(CgroupError, match="did not report `frozen 1`"):
        v2cg.freeze()
    assert text(d / "cgroup.freeze") == "0"
    v2cg.kill_all(signal.SIGKILL)
    assert text(d / "cgroup.kill") == "1"


def test_v2_stats_and_oom_kills(tmp_path: Path, v2cg: V2Cgroup) -> None:
    touch(Path(v2cg.dir), {
        "cpu.stat": "usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 5\n"
                    "nr_throttled 1\nthrottled_usec 20\n",
        "memory.current": "4096", "memory.max": "max", "memory.peak": "8192",
        "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n",
        "memory.swap.current": "1024", "memory.swap.max": "max",
        "memory.stat": "anon 100\nfile 300\n",
        "pids.current": "2", "pids.max": "50",
        "io.stat": "8:0 rbytes=512 wbytes=1024 rios=1 wios=2 dbytes=0 dios=0\n",
        "hugetlb.2MB.current": "0", "hugetlb.2MB.events": "max 0\n"})
    s = v2cg.stats()
    assert s["cpu"] == {"usage": {"total": 10**6, "user": 600000, "kernel": 400000},
                        "throttling": {"periods": 5, "throttledPeriods": 1,
                                       "throttledTime": 20000}}
    assert s["memory"]["usage"] == {"usage": 4096, "limit": 2**64 - 1, "max": 8192,
                                    "failcnt": 4}
    assert s["memory"]["swap"] == {"usage": 5120, "limit": 2**64 - 1, "failcnt": 0}
    assert s["memory"]["cache"] == 300
    assert s["pids"] == {"current": 2, "limit": 50}
    assert s["blkio"]["ioServicedRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 1},
        {"major": 8, "minor": 0, "op": "Write", "value": 2}]
    assert s["hugetlb"] == {"2MB": {"usage": 0, "failcnt": 0}}
    assert v2cg.oom_kills() == 2


def test_v2_mounts(v2cg: V2Cgroup) -> None:
    assert v2cg.mounts() == [CgroupMount("", "cgroup2", "", v2cg.dir)]
    assert v2cg.version == "v2"


# -- detection ---------------------------------------------------------------------------------

PURE_V2 = """\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

V1_COMOUNTED = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,net_cls,net_prio
32 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
33 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpuset,clone_children
40 1 0:30 / /mnt/other\\040place rw,relatime - cgroup cgroup rw,cpuset
41 1 0:35 / /run/elsewhere rw,relatime - cgroup2 cgroup2 rw
"""


def test_detect_pure_v2() -> None:
    found = detect_hierarchies(PURE_V2)
    assert found.v2 == "/sys/fs/cgroup" and not found.v1 and found.unified is None


def test_detect_hybrid() -> None:
    found = detect_hierarchies(HYBRID)
    assert found.v2 is None and found.unified == "/sys/fs/cgroup/unified"
    assert found.v1 == {f"/sys/fs/cgroup/{n}": d for n, d in (
        ("cpu", "cpu"), ("cpuacct", "cpuacct"), ("cpuset", "cpuset"), ("memory", "memory"),
        ("devices", "devices"), ("freezer", "freezer"), ("blkio", "blkio"), ("pids", "pids"),
        ("systemd", "name=systemd"))}


def test_detect_v1_with_comounted_cpu_cpuacct() -> None:
    found = detect_hierarchies(V1_COMOUNTED)
    assert found.unified is None and found.v2 is None
    assert found.v1 == {"/sys/fs/cgroup/systemd": "name=systemd",
                        "/sys/fs/cgroup/cpu,cpuacct": "cpu,cpuacct",
                        "/sys/fs/cgroup/net_cls,net_prio": "net_cls,net_prio",
                        "/sys/fs/cgroup/memory": "memory",
                        "/sys/fs/cgroup/cpuset": "cpuset"}


def _write_mountinfo(tmp_path: Path, sample: str) -> tuple[str, str]:
    root = tmp_path / "sys fs"  # a space, as mountinfo escapes it
    text = sample.replace("/sys/fs/cgroup", str(root).replace(" ", "\\040"))
    (tmp_path / "mountinfo").write_text(text)
    return str(root), str(tmp_path / "mountinfo")


@pytest.mark.parametrize("sample, kind, version", [
    (PURE_V2, V2Cgroup, "v2"), (HYBRID, V1Cgroup, "hybrid"), (V1_COMOUNTED, V1Cgroup, "v1")])
def test_open_cgroup_builds_the_right_driver(tmp_path: Path, sample: str, kind: type,
                                            version: str) -> None:
    root, mountinfo = _write_mountinfo(tmp_path, sample)
    cg = open_cgroup("skiff/c1", root=root, mountinfo=mountinfo)
    assert isinstance(cg, kind) and cg.version == version and cg.path == "/skiff/c1"
    names = sorted(m.name for m in cg.mounts())
    assert all(m.host_path.startswith(root + "/") and m.host_path.endswith("/skiff/c1")
               for m in cg.mounts())
    if version == "hybrid":
        assert "unified" in names and cg.dir("cpuacct") == f"{root}/cpuacct/skiff/c1"
    if version == "v1":
        assert cg.dir("cpuacct") == cg.dir("cpu") == f"{root}/cpu,cpuacct/skiff/c1"
        assert cg.dir("name=systemd") == f"{root}/systemd/skiff/c1"


def test_prune_parent_takes_only_empty_parents_of_skiffs_own(tmp_path: Path) -> None:
    root, mountinfo = _write_mountinfo(tmp_path, HYBRID)
    hierarchies = [Path(mp) for mp in detect_hierarchies(Path(mountinfo).read_text(), root).v1]
    hierarchies.append(Path(root) / "unified")
    for h in hierarchies:
        (h / "skiff" / "engine").mkdir(parents=True)
        (h / "mine").mkdir()
    (hierarchies[0] / "skiff" / "engine" / "c1").mkdir()  # a container's, in one of them
    prune_parent("/skiff/engine", root=root, mountinfo=mountinfo)
    assert (hierarchies[0] / "skiff" / "engine" / "c1").is_dir()  # busy there: kept
    assert [h.name for h in hierarchies if (h / "skiff").exists()] == [hierarchies[0].name]
    prune_parent("/mine", root=root, mountinfo=mountinfo)  # not skiff's: the host's
    assert all((h / "mine").is_dir() for h in hierarchies)


def test_open_cgroup_with_no_cgroups(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(PURE_V2.splitlines()[0] + "\n")
    with pytest.raises(CgroupError, match="no cgroup hierarchy is mounted"):
        open_cgroup("/c1", mountinfo=str(tmp_path / "mountinfo"))


@pytest.mark.parametrize("raw, normal", [("skiff/c1", "/skiff/c1"), ("//a//b/", "/a/b"),
                                         ("/a/./b", "/a/b")])
def test_normalise_path(raw: str, normal: str) -> None:
    assert normalise_path(raw) == normal


@pytest.mark.parametrize("raw", ["/", "", "/a/../../etc"])
def test_normalise_path_refuses(raw: str) -> None:
    with pytest.raises(SpecError, match="linux.cgroupsPath"):
        normalise_path(raw)
