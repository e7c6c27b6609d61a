"""The cgroup v1 driver: one directory per hierarchy, resources written as runc's fs driver
writes them.

`V1Cgroup` is given its hierarchies explicitly, as a map from mountpoint to mount data
("memory", "cpu,cpuacct", "name=systemd"), so that unit tests can point it at a fake tree.
Which hierarchy holds which controller is read from that data and never assumed: cpu and
cpuacct are separate mounts on some hosts and co-mounted on others. On a hybrid host the
driver also keeps a `V2Cgroup` in the unified hierarchy. Every process joins it too, which
gives a race-free cgroup.kill and a freezer fallback. Hugepage limits also go there when
hugetlb is offered only on v2, as on these machines.
"""

from __future__ import annotations

import errno
import os
import time

from skiff.errors import CgroupError, SpecError
from skiff.kernel import signals

from . import _cgroupfs as fs
from ._cgroupfs import SKIFF_PARENT, CgroupMount
from .v2 import V2Cgroup, signal_all

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from skiff.oci.runtime_spec import BlockIO, Cpu, DeviceRule, HugepageLimit, Memory, Resources
    from collections.abc import Mapping

log = fs.log

FREEZE_TIMEOUT = 10.0
_MEMSW = "memory.memsw.limit_in_bytes"


def device_rule_line(rule: DeviceRule) -> str:
    """The devices.allow/devices.deny line for one OCI rule: absent parts mean "all"."""
    major = "*" if rule.major is None or rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor is None or rule.minor < 0 else str(rule.minor)
    return f"{rule.type or 'a'} {major}:{minor} {rule.access or 'rwm'}"


class V1Cgroup:
    """A container's cgroup in every v1 hierarchy (+ the unified one on a hybrid host)."""

    def __init__(self, path: str, hierarchies: Mapping[str, str], *,
                 unified: str | None = None,
                 owned_prefix: str | None = SKIFF_PARENT) -> None:
        if not hierarchies:
            raise CgroupError("no cgroup v1 hierarchy given")
        self.path = fs.normalise_path(path)
        self.version = "hybrid" if unified else "v1"
        self._hierarchies = {mp.rstrip("/"): data for mp, data in hierarchies.items()}
        self._controller_mount: dict[str, str] = {}
        for mp, data in self._hierarchies.items():
            for option in data.split(","):
                self._controller_mount.setdefault(option, mp)
        self._owned_prefix = owned_prefix
        self._made: set[str] = set()
        # Only membership is wanted in the unified hierarchy; no controller is delegated
        # unless a resource needs one that v1 lacks (hugetlb here).
        self.unified = (V2Cgroup(self.path, unified, controllers=(), owned_prefix=owned_prefix)
                        if unified else None)

    def __repr__(self) -> str:
        return f"V1Cgroup({self.path!r}, {sorted(self._hierarchies)!r})"

    def dir(self, controller: str) -> str | None:
        """Our directory in the hierarchy holding `controller` (or "name=systemd")."""
        mp = self._controller_mount.get(controller)
        return fs.join(mp, self.path) if mp else None

    def _need(self, controller: str, filename: str) -> str:
        d = self.dir(controller)
        if d is None:
            raise CgroupError(f"{filename}: controller {controller} is not mounted "
                              f"(no cgroup v1 hierarchy has it)")
        return d

    # -- lifecycle -------------------------------------------------------------------

    def create(self) -> None:
        made_now: list[str] = []
        try:
            for mp, data in self._hierarchies.items():
                prepare = _copy_cpuset_from_parent if "cpuset" in data.split(",") else None
                made_now += fs.make_dirs(mp, self.path, self._made, prepare)
            if self.unified is not None:
                self.unified.create()
        except BaseException:
            fs.undo_dirs(made_now, self._made)
            raise

    def add(self, pid: int) -> None:
        for path in self.procs_files():
            fs.write(path, str(pid), append=True)

    def procs_files(self) -> list[str]:
        files = [os.path.join(fs.join(mp, self.path), "cgroup.procs") for mp in self._hierarchies]
        return files + (self.unified.procs_files() if self.unified is not None else [])

    def pids(self) -> list[int]:
        # The union over hierarchies: a process somebody added to only some of them is
        # still the container's.
        seen: dict[int, None] = {}
        for mp in self._hierarchies:
            for pid in fs.read_pids(os.path.join(fs.join(mp, self.path), "cgroup.procs")):
                seen[pid] = None
        return list(seen)

    def exists(self) -> bool:
        return any(os.path.isdir(fs.join(mp, self.path)) for mp in self._hierarchies)

    def destroy(self) -> None:
        errors: list[CgroupError] = []
        # Go on through every hierarchy even when one fails, then report the first failure,
        # so that one stuck directory does not leave all the others behind.
        for mp in self._hierarchies:
            try:
                fs.remove_dir(fs.join(mp, self.path))
                fs.prune_ancestors(mp, self.path, self._made, self._owned_prefix)
            except CgroupError as e:
                errors.append(e)
        if self.unified is not None:
            try:
                self.unified.destroy()
            except CgroupError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def mounts(self) -> list[CgroupMount]:
        out = []
        for mp, data in self._hierarchies.items():
            name = os.path.basename(mp)
            aliases = tuple(p for p in name.split(",") if p != name and not p.startswith("name="))
            out.append(CgroupMount(name=name, fstype="cgroup", data=data,
                                   host_path=fs.join(mp, self.path), aliases=aliases))
        if self.unified is not None:
            out.append(CgroupMount(name=os.path.basename(self.unified.mountpoint),
                                   fstype="cgroup2", data="", host_path=self.unified.dir))
        return out

    # -- freezing and signals ----------------------------------------------------------

    def can_freeze(self) -> bool:
        return self.dir("freezer") is not None or (
            self.unified is not None and self.unified.can_freeze())

    def freezer_probe(self) -> tuple[str, str] | None:
        d = self.dir("freezer")
        if d is None:
            return self.unified.freezer_probe() if self.unified is not None else None
        return (os.path.join(d, "freezer.state"), "FROZEN")

    def frozen(self) -> bool:
        d = self.dir("freezer")
        if d is None:
            return self.unified is not None and self.unified.frozen()
        return (fs.read_optional(os.path.join(d, "freezer.state")) or "").strip() == "FROZEN"

    def freeze(self) -> None:
        d = self.dir("freezer")
        if d is None:
            if self.unified is not None and self.unified.can_freeze():
                return self.unified.freeze()
            raise CgroupError("freezer.state: controller freezer is not mounted")
        state = os.path.join(d, "freezer.state")
        # As runc: a freeze can stay stuck in FREEZING while tasks race it (fork, vfork,
        # a task in uninterruptible sleep). Writing FROZEN again nudges it, and an
        # occasional thaw-and-retry unsticks the rest.
        deadline = time.monotonic() + FREEZE_TIMEOUT
        attempt = 0
        while True:
            if attempt and attempt % 50 == 0:
                fs.write(state, "THAWED")
                time.sleep(0.01)
            fs.write(state, "FROZEN")
            current = fs.read(state).strip()
            if current == "FROZEN":
                return
            if time.monotonic() >= deadline:
                fs.write(state, "THAWED")
                raise CgroupError(f"freezer.state: {d} stayed {current} for "
                                  f"{FREEZE_TIMEOUT:g}s; thawed it again")
            attempt += 1
            time.sleep(0.001 if attempt < 25 else 0.01)

    def thaw(self) -> None:
        d = self.dir("freezer")
        if d is None:
            if self.unified is not None and self.unified.can_freeze():
                return self.unified.thaw()
            raise CgroupError("freezer.state: controller freezer is not mounted")
        state = os.path.join(d, "freezer.state")
        fs.write(state, "THAWED")
        fs.wait_for(lambda: fs.read(state).strip() == "THAWED", FREEZE_TIMEOUT)

    def kill_all(self, sig: int) -> None:
        if sig == signals.SIGKILL and self.unified is not None and self.unified.can_kill():
            # cgroup.kill in the unified hierarchy kills everything at once, forks included.
            # The v1 pass below catches any process that joined only the v1 hierarchies.
            self.unified.kill_all(sig)
            # The kill is asynchronous: give the dying a moment to leave before deciding
            # that someone escaped it.
            if fs.wait_for(lambda: not self.pids(), 0.2):
                return
        signal_all(self, sig)

    # -- resources -------------------------------------------------------------------

    def set(self, resources: Resources) -> None:
        r = resources
        # Check everything first, so that a refusal leaves the cgroup as it was.
        self._check(r)
        if r.cpu is not None and (r.cpu.cpus or r.cpu.mems):
            d = self._need("cpuset", "cpuset.cpus")
            if r.cpu.cpus:
                fs.write(os.path.join(d, "cpuset.cpus"), r.cpu.cpus)
            if r.cpu.mems:
                fs.write(os.path.join(d, "cpuset.mems"), r.cpu.mems)
        if r.devices:
            d = self._need("devices", "devices.allow")
            # In order: the kernel keeps one list and each line edits it, so a later
            # "allow c 1:3" after "deny a" re-opens that one device.
            for rule in r.devices:
                target = "devices.allow" if rule.allow else "devices.deny"
                fs.write(os.path.join(d, target), device_rule_line(rule), append=True)
        if r.memory is not None:
            self._set_memory(r.memory)
        if r.cpu is not None:
            self._set_cpu(r.cpu)
        if r.pids is not None:
            d = self._need("pids", "pids.max")
            limit = r.pids.limit
            fs.write(os.path.join(d, "pids.max"), str(limit) if limit > 0 else "max")
        if r.block_io is not None:
            self._set_blkio(r.block_io)
        if r.hugepage_limits:
            self._set_hugetlb(r.hugepage_limits)

    def _check(self, r: Resources) -> None:
        if r.unified:
            raise CgroupError("linux.resources.unified needs cgroup v2 "
                              f"(this host's controllers are on cgroup {self.version})")
        m = r.memory
        if m is not None:
            if m.swappiness is not None and m.swappiness != -1 and not 0 <= m.swappiness <= 100:
                raise SpecError("linux.resources.memory.swappiness",
                                f"must be 0..100, got {m.swappiness}")
            wants = (m.limit or m.reservation or m.swap or m.swappiness is not None
                     or m.disable_oom_killer)
            if wants:
                d = self._need("memory", "memory.limit_in_bytes")
                if m.swap and m.swap != -1 and not os.path.exists(os.path.join(d, _MEMSW)):
                    raise CgroupError(
                        f"{_MEMSW}: swap accounting is not available in {d}, so "
                        "linux.resources.memory.swap cannot be applied (boot the kernel with "
                        "swapaccount=1, or leave swap unset)")
        c = r.cpu
        if c is not None:
            if (c.shares or c.quota or c.period or c.burst is not None or c.idle is not None
                    or c.realtime_period or c.realtime_runtime):
                self._need("cpu", "cpu.shares" if c.shares else "cpu.cfs_quota_us")
            if c.cpus or c.mems:
                self._need("cpuset", "cpuset.cpus")
        if r.devices:
            self._need("devices", "devices.allow")
        if r.pids is not None:
            self._need("pids", "pids.max")
        b = r.block_io
        if b is not None and (b.weight or b.leaf_weight or b.weight_device
                              or b.throttle_read_bps_device or b.throttle_write_bps_device
                              or b.throttle_read_iops_device or b.throttle_write_iops_device):
            d = self._need("blkio", "blkio.weight")
            if b.weight and self._blkio_weight_file(d) is None:
                raise CgroupError(f"blkio.weight: neither blkio.weight nor blkio.bfq.weight "
                                  f"exists in {d} (is the CFQ or BFQ I/O scheduler in use?)")
        if r.hugepage_limits and self.dir("hugetlb") is None:
            if self.unified is None or not self.unified.available("hugetlb"):
                size = r.hugepage_limits[0].page_size
                raise CgroupError(f"hugetlb.{size}.limit_in_bytes: controller hugetlb is not "
                                  "mounted (no cgroup v1 hierarchy or unified hierarchy has it)")

    def _set_memory(self, m: Memory) -> None:
        for name, value in (("kernel", m.kernel), ("kernelTCP", m.kernel_tcp)):
            if value is not None:
                # Kernel memory limits are deprecated (and a no-op since Linux 5.16); modern
                # runc ignores them as well.
                log.debug("linux.resources.memory.%s ignored, as runc ignores it", name)
        if not (m.limit or m.reservation or m.swap or m.swappiness is not None
                or m.disable_oom_killer):
            return
        d = self._need("memory", "memory.limit_in_bytes")
        limit_file = os.path.join(d, "memory.limit_in_bytes")
        memsw_file = os.path.join(d, _MEMSW)
        has_memsw = os.path.exists(memsw_file)
        limit, swap = m.limit or 0, m.swap or 0
        if limit == -1 and swap == 0 and has_memsw:
            swap = -1  # "unlimited memory" means unlimited memory+swap too, as in runc
        if swap == -1 and not has_memsw:
            swap = 0  # nothing to lift without swap accounting
        # The kernel keeps limit <= memsw at every moment: raise memsw first, lower the
        # limit first.
        if limit and swap:
            current = fs.read_int(limit_file) or 0
            if swap == -1 or current < swap:
                fs.write(memsw_file, str(swap))
                self._write_limit(limit_file, limit)
            else:
                self._write_limit(limit_file, limit)
                fs.write(memsw_file, str(swap))
        elif limit:
            self._write_limit(limit_file, limit)
        elif swap:
            fs.write(memsw_file, str(swap))
        if m.reservation:
            fs.write(os.path.join(d, "memory.soft_limit_in_bytes"), str(m.reservation))
        if m.swappiness is not None and m.swappiness != -1:
            fs.write(os.path.join(d, "memory.swappiness"), str(m.swappiness))
        if m.disable_oom_killer:
            fs.write(os.path.join(d, "memory.oom_control"), "1")

    def _write_limit(self, path: str, limit: int) -> None:
        try:
            fs.write(path, str(limit))
        except CgroupError as e:
            if getattr(e, "errno", None) != errno.EBUSY:
                raise
            # EBUSY means the kernel could not reclaim below the new limit, so say how much
            # is in use.
            d = os.path.dirname(path)
            usage = fs.read_int(os.path.join(d, "memory.usage_in_bytes"))
            peak = fs.read_int(os.path.join(d, "memory.max_usage_in_bytes"))
            raise CgroupError(f"{e} (cannot set the memory limit to {limit}: current usage "
                              f"{usage}, peak usage {peak})") from e

    def _set_cpu(self, c: Cpu) -> None:
        if not (c.shares or c.quota or c.period or c.burst is not None or c.idle is not None
                or c.realtime_period or c.realtime_runtime):
            return
        d = self._need("cpu", "cpu.shares")
        if c.shares:
            shares_file = os.path.join(d, "cpu.shares")
            fs.write(shares_file, str(c.shares))
            # The kernel clamps out-of-range shares silently; say so, as runc does.
            got = fs.read_int(shares_file)
            if got is not None and got != c.shares:
                raise CgroupError(f"cpu.shares: asked for {c.shares}, the kernel set {got} "
                                  "(the allowed range is 2..262144)")
        period_pending = ""
        if c.period:
            try:
                fs.write(os.path.join(d, "cpu.cfs_period_us"), str(c.period))
            except CgroupError as e:
                # A shorter period can make old_quota/new_period exceed the parent's quota,
                # and the kernel refuses it with EINVAL. With a new quota coming, retry the
                # period after writing the quota, as runc does.
                if getattr(e, "errno", None) != errno.EINVAL or not c.quota:
                    raise
                period_pending = str(c.period)
        if c.quota:
            fs.write(os.path.join(d, "cpu.cfs_quota_us"), str(c.quota))
            if period_pending:
                fs.write(os.path.join(d, "cpu.cfs_period_us"), period_pending)
        if c.burst is not None:
            fs.write(os.path.join(d, "cpu.cfs_burst_us"), str(c.burst))
        # The period first: the kernel checks runtime against the period in force.
        if c.realtime_period:
            fs.write(os.path.join(d, "cpu.rt_period_us"), str(c.realtime_period))
        if c.realtime_runtime:
            fs.write(os.path.join(d, "cpu.rt_runtime_us"), str(c.realtime_runtime))
        if c.idle is not None:
            fs.write(os.path.join(d, "cpu.idle"), str(c.idle))

    @staticmethod
    def _blkio_weight_file(d: str) -> str | None:
        # CFQ (gone since Linux 5.0) offered blkio.weight; BFQ offers blkio.bfq.weight.
        for name in ("blkio.weight", "blkio.bfq.weight"):
            if os.path.exists(os.path.join(d, name)):
                return name
        return None

    def _set_blkio(self, b: BlockIO) -> None:
        d = self.dir("blkio")
        if d is None:
            return  # _check saw nothing to set
        weight_file = self._blkio_weight_file(d)
        if b.weight:
            fs.write(os.path.join(d, weight_file or "blkio.weight"), str(b.weight))
        if b.leaf_weight:
            fs.write(os.path.join(d, "blkio.leaf_weight"), str(b.leaf_weight))
        device_file = ("blkio.bfq.weight_device" if weight_file == "blkio.bfq.weight"
                       else "blkio.weight_device")
        for wd in b.weight_device:
            if wd.weight:
                fs.write(os.path.join(d, device_file), f"{wd.major}:{wd.minor} {wd.weight}",
                         append=True)
            if wd.leaf_weight:
                fs.write(os.path.join(d, "blkio.leaf_weight_device"),
                         f"{wd.major}:{wd.minor} {wd.leaf_weight}", append=True)
        for name, devices in (("read_bps_device", b.throttle_read_bps_device),
                              ("write_bps_device", b.throttle_write_bps_device),
                              ("read_iops_device", b.throttle_read_iops_device),
                              ("write_iops_device", b.throttle_write_iops_device)):
            for td in devices:
                fs.write(os.path.join(d, f"blkio.throttle.{name}"),
                         f"{td.major}:{td.minor} {td.rate}", append=True)

    def _set_hugetlb(self, limits: tuple[HugepageLimit, ...]) -> None:
        d = self.dir("hugetlb")
        if d is None and self.unified is not None:
            from skiff.oci.runtime_spec import Resources  # (the spec types: only when used)
            self.unified.set(Resources(hugepage_limits=limits))
            return
        d = self._need("hugetlb", f"hugetlb.{limits[0].page_size}.limit_in_bytes")
        for h in limits:
            fs.write(os.path.join(d, f"hugetlb.{h.page_size}.limit_in_bytes"), str(h.limit))

    # -- reading -----------------------------------------------------------------------

    def oom_kills(self) -> int:
        d = self.dir("memory")
        if d is None:
            return self.unified.oom_kills() if self.unified is not None else 0
        return (fs.read_keyed(os.path.join(d, "memory.oom_control")) or {}).get("oom_kill", 0)

    def stats(self) -> dict:
        out: dict = {}
        cpu = self._cpu_stats()
        if cpu:
            out["cpu"] = cpu
        memory = self._memory_stats()
        if memory:
            out["memory"] = memory
        if (d := self.dir("pids")) is not None:
            pids: dict[str, int] = {}
            if (current := fs.read_int(os.path.join(d, "pids.current"))) is not None:
                pids["current"] = current
            if (limit := fs.read_int(os.path.join(d, "pids.max"))) is not None:
                pids["limit"] = limit  # runc reports "max" as 0
            if pids:
                out["pids"] = pids
        blkio = self._blkio_stats()
        if blkio:
            out["blkio"] = blkio
        hugetlb = self._hugetlb_stats()
        if hugetlb:
            out["hugetlb"] = hugetlb
        return out

    def _cpu_stats(self) -> dict:
        usage: dict = {}
        if (d := self.dir("cpuacct")) is not None:
            if (total := fs.read_int(os.path.join(d, "cpuacct.usage"))) is not None:
                usage["total"] = total
            percpu = fs.read_optional(os.path.join(d, "cpuacct.usage_percpu"))
            if percpu is not None:
                usage["percpu"] = [int(v) for v in percpu.split()]
            # "cpu user system", then a line per CPU in nanoseconds (Linux 4.7+), as runc reads it
            per_mode = fs.read_optional(os.path.join(d, "cpuacct.usage_all"))
            rows = [line.split() for line in (per_mode or "").splitlines()[1:]]
            if rows and all(len(r) == 3 for r in rows):
                usage["percpu_user"] = [int(r[1]) for r in rows]
                usage["percpu_kernel"] = [int(r[2]) for r in rows]
            ticks = fs.read_keyed(os.path.join(d, "cpuacct.stat"))
            if ticks is not None:
                # cpuacct.stat counts USER_HZ ticks, and runc reports nanoseconds.
                hz = os.sysconf("SC_CLK_TCK")
                usage["user"] = ticks.get("user", 0) * 1_000_000_000 // hz
                usage["kernel"] = ticks.get("system", 0) * 1_000_000_000 // hz
        throttling: dict[str, int] = {}
        if (d := self.dir("cpu")) is not None:
            stat = fs.read_keyed(os.path.join(d, "cpu.stat")) or {}
            for key, name in (("periods", "nr_periods"), ("throttledPeriods", "nr_throttled"),
                              ("throttledTime", "throttled_time")):
                if name in stat:
                    throttling[key] = stat[name]
        if not usage and not throttling:
            return {}
        return {"usage": usage, "throttling": throttling}

    def _memory_stats(self) -> dict:
        d = self.dir("memory")
        if d is None:
            return {}
        out: dict = {}
        for key, prefix in (("usage", "memory."), ("swap", "memory.memsw."),
                            ("kernel", "memory.kmem."), ("kernelTCP", "memory.kmem.tcp.")):
            entry: dict[str, int] = {}
            for field, name in (("limit", "limit_in_bytes"), ("usage", "usage_in_bytes"),
                                ("max", "max_usage_in_bytes"), ("failcnt", "failcnt")):
                value = fs.read_int(os.path.join(d, prefix + name))
                if value is not None:
                    entry[field] = value
            if entry:
                out[key] = entry
        raw = fs.read_keyed(os.path.join(d, "memory.stat"))
        if raw is not None:
            out["raw"] = raw
            if "cache" in raw:
                out["cache"] = raw["cache"]
        return out

    def _blkio_stats(self) -> dict:
        d = self.dir("blkio")
        if d is None:
            return {}
        # runc's choice: CFQ's files when they have entries, then BFQ's, then throttle's
        # (which always count, whatever the scheduler).
        keys = (("ioServiceBytesRecursive", "io_service_bytes_recursive"),
                ("ioServicedRecursive", "io_serviced_recursive"),
                ("ioQueueRecursive", "io_queued_recursive"),
                ("ioServiceTimeRecursive", "io_service_time_recursive"),
                ("ioWaitTimeRecursive", "io_wait_time_recursive"),
                ("ioMergedRecursive", "io_merged_recursive"),
                ("ioTimeRecursive", "time_recursive"),
                ("sectorsRecursive", "sectors_recursive"))
        chosen = "blkio.throttle."
        for prefix in ("blkio.", "blkio.bfq."):
            text = fs.read_optional(os.path.join(d, prefix + "io_serviced_recursive"))
            if fs.parse_device_lines(text):
                chosen = prefix
                break
        out: dict[str, list[dict]] = {}
        for key, name in keys:
            text = fs.read_optional(os.path.join(d, chosen + name))
            if text is None:
                continue
            entries = []
            for major, minor, rest in fs.parse_device_lines(text):
                parts = rest.split()
                if len(parts) == 2:
                    entries.append({"major": major, "minor": minor, "op": parts[0],
                                    "value": int(parts[1])})
                elif len(parts) == 1:  # time_recursive, sectors_recursive: no op column
                    entries.append({"major": major, "minor": minor, "op": "",
                                    "value": int(parts[0])})
            out[key] = entries
        return out

    def _hugetlb_stats(self) -> dict:
        d = self.dir("hugetlb")
        if d is None:
            if self.unified is not None:
                return self.unified.stats().get("hugetlb", {})
            return {}
        out: dict[str, dict[str, int]] = {}
        try:
            names = sorted(os.listdir(d))
        except OSError:
            return {}
        for name in names:
            if name.startswith("hugetlb.") and name.endswith(".limit_in_bytes") \
                    and ".rsvd." not in name:
                size = name[len("hugetlb."):-len(".limit_in_bytes")]
                base = os.path.join(d, f"hugetlb.{size}.")
                out[size] = {"usage": fs.read_int(base + "usage_in_bytes") or 0,
                             "max": fs.read_int(base + "max_usage_in_bytes") or 0,
                             "failcnt": fs.read_int(base + "failcnt") or 0}
        return out


def _copy_cpuset_from_parent(d: str) -> None:
    """A new v1 cpuset starts with empty cpus and mems, and a task cannot join it until
    both are set. Copy them down from the parent. create() calls this top-down, so the
    parent has already been filled (the root is always full)."""
    parent = os.path.dirname(d)
    for name in ("cpuset.cpus", "cpuset.mems"):
        mine = fs.read_optional(os.path.join(d, name))
        if mine is None or mine.strip():
            continue  # a fake tree without the file, or already set
        inherited = (fs.read_optional(os.path.join(parent, name)) or "").strip()
        if inherited:
            fs.write(os.path.join(d, name), inherited)
