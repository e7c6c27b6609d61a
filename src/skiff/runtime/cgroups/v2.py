"""The cgroup v2 driver: one unified hierarchy, resources written as runc's fs2 writes them.

`V2Cgroup` is given its mountpoint explicitly, so unit tests can point it at a fake tree.
On a pure-v2 host it is the whole driver. On a hybrid host the v1 driver also keeps one,
with no controllers delegated, so that the container's processes join the unified
hierarchy too, where cgroup.kill and cgroup.freeze work. OCI values written for cgroup v1
are converted as runc converts them: cpu shares become cpu.weight, blkio weight becomes
io.weight, and OCI swap (which counts memory+swap) becomes memory.swap.max. Device rules are *not*
enforced: runc attaches an eBPF program to the cgroup, skiff does not, and the runtime
relies on creating only the allowed device nodes. That is logged at debug level and not
raised, so the same spec runs on v1 and v2.
"""

from __future__ import annotations

import errno
import os

from skiff.errors import CgroupError, SpecError
from skiff.kernel import signals

from . import _cgroupfs as fs
from ._cgroupfs import SKIFF_PARENT, CgroupMount

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from skiff.oci.runtime_spec import BlockIO, Cpu, Memory, Resources
    from collections.abc import Iterable
    from typing import Protocol as _Interface
else:
    _Interface = object

log = fs.log

# v2 files read "max" for unlimited; runc reports that as the largest uint64.
UNLIMITED = 2**64 - 1
FREEZE_TIMEOUT = 10.0


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) → cpu.weight (1..10000), runc's linear mapping."""
    if shares == 0:
        return 0
    shares = min(max(shares, 2), 262144)  # runc's uint64 maths would wrap below 2
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) → io.weight (1..10000), as runc converts it."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int, limit: int) -> int:
    """OCI swap is memory+swap (v1's memsw); memory.swap.max counts swap alone.

    0 means unset and -1 unlimited, as in runc's ConvertMemorySwapToCgroupV2Value.
    """
    if limit == -1 and swap == 0:
        # v1 compatibility: "memory unlimited" with no swap given means both unlimited
        return -1
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise SpecError("linux.resources.memory.swap", "cannot limit swap without a memory limit")
    if limit < 0:
        raise SpecError("linux.resources.memory.limit", f"invalid value {limit}")
    if swap < limit:
        raise SpecError("linux.resources.memory.swap",
                        f"memory+swap limit {swap} must be >= the memory limit {limit}")
    return swap - limit


def _num(value: int | None) -> str:
    """runc's numToStr: unset (None or 0) → "", -1 → "max"."""
    if not value:
        return ""
    return "max" if value == -1 else str(value)


class V2Cgroup:
    """A container's cgroup in one cgroup2 hierarchy mounted at `mountpoint`.

    `controllers` are the controllers create() enables in the ancestors' subtree_control.
    None, the default, means every controller the hierarchy offers, which is what runc
    does. The hybrid driver passes () because it only needs membership. A controller that
    set() needs but that is not yet enabled is enabled then, if the root offers it.
    `owned_prefix` says which ancestors destroy() may remove when they are empty
    (see `prune_ancestors`).
    """

    version = "v2"

    def __init__(self, path: str, mountpoint: str, *, controllers: Iterable[str] | None = None,
                 owned_prefix: str | None = SKIFF_PARENT) -> None:
        self.path = fs.normalise_path(path)
        self.mountpoint = mountpoint.rstrip("/") or "/"
        self.dir = fs.join(self.mountpoint, self.path)
        self._delegate = None if controllers is None else tuple(controllers)
        self._owned_prefix = owned_prefix
        self._made: set[str] = set()

    def __repr__(self) -> str:
        return f"V2Cgroup({self.path!r}, {self.mountpoint!r})"

    def _file(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # -- lifecycle -------------------------------------------------------------------

    def create(self) -> None:
        made_now = fs.make_dirs(self.mountpoint, self.path, self._made)
        try:
            if self._delegate is None or self._delegate:
                self._delegate_controllers(self._delegate)
        except BaseException:
            fs.undo_dirs(made_now, self._made)
            raise

    def _ancestors(self) -> list[str]:
        """The hierarchy root and every ancestor of our cgroup, top-down (not the leaf)."""
        dirs = [self.mountpoint]
        parts = self.path.strip("/").split("/")
        for i in range(1, len(parts)):
            dirs.append(fs.join(self.mountpoint, "/".join(parts[:i])))
        return dirs

    def _delegate_controllers(self, wanted: Iterable[str] | None) -> None:
        # Enable top-down: a controller can be enabled in a cgroup's subtree_control only
        # once its parent has enabled it. Failures are tolerated here, as runc tolerates
        # them (an ancestor holding processes answers EBUSY). set() then reports clearly
        # any controller it needs that is still missing.
        want = None if wanted is None else list(wanted)
        for d in self._ancestors():
            available = (fs.read_optional(os.path.join(d, "cgroup.controllers")) or "").split()
            enabled = set((fs.read_optional(os.path.join(d, "cgroup.subtree_control"))
                           or "").split())
            missing = [c for c in (available if want is None else want)
                       if c in available and c not in enabled]
            if not missing:
                continue
            target = os.path.join(d, "cgroup.subtree_control")
            try:
                fs.write(target, " ".join("+" + c for c in missing), append=True)
            except CgroupError:
                for c in missing:
                    try:
                        fs.write(target, "+" + c, append=True)
                    except CgroupError as e:
                        log.debug("cannot delegate %s: %s", c, e)

    def add(self, pid: int) -> None:
        fs.write(self._file("cgroup.procs"), str(pid), append=True)

    def procs_files(self) -> list[str]:
        return [self._file("cgroup.procs")]

    def pids(self) -> list[int]:
        return fs.read_pids(self._file("cgroup.procs"))

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def destroy(self) -> None:
        fs.remove_dir(self.dir)
        fs.prune_ancestors(self.mountpoint, self.path, self._made, self._owned_prefix)

    def mounts(self) -> list[CgroupMount]:
        # The hierarchy *is* the container's /sys/fs/cgroup, hence no sub-directory name.
        return [CgroupMount(name="", fstype="cgroup2", data="", host_path=self.dir)]

    # -- freezing and signals ----------------------------------------------------------

    def can_freeze(self) -> bool:
        return os.path.exists(self._file("cgroup.freeze"))

    def can_kill(self) -> bool:
        return os.path.exists(self._file("cgroup.kill"))

    def _events(self) -> dict[str, int]:
        return fs.read_keyed(self._file("cgroup.events")) or {}

    def freezer_probe(self) -> tuple[str, str] | None:
        return (self._file("cgroup.events"), "frozen 1") if self.can_freeze() else None

    def frozen(self) -> bool:
        return self._events().get("frozen") == 1

    def freeze(self) -> None:
        if not self.can_freeze():
            raise CgroupError(f"cgroup.freeze: not present in {self.dir} "
                              "(the cgroup v2 freezer needs Linux 5.2)")
        fs.write(self._file("cgroup.freeze"), "1")
        # Writing only asks the kernel to freeze. A task in an uninterruptible sleep gets
        # there later, and cgroup.events says "frozen 1" once every task has stopped.
        if not fs.wait_for(self.frozen, FREEZE_TIMEOUT):
            fs.write(self._file("cgroup.freeze"), "0")
            raise CgroupError(f"cgroup.freeze: {self.dir} did not report `frozen 1` in "
                              f"cgroup.events within {FREEZE_TIMEOUT:g}s; thawed it again")

    def thaw(self) -> None:
        if not self.can_freeze():
            raise CgroupError(f"cgroup.freeze: not present in {self.dir} "
                              "(the cgroup v2 freezer needs Linux 5.2)")
        fs.write(self._file("cgroup.freeze"), "0")
        fs.wait_for(lambda: not self.frozen(), FREEZE_TIMEOUT)

    def kill_all(self, sig: int) -> None:
        if sig == signals.SIGKILL and self.can_kill():
            # One write kills every process, and no fork can escape it.
            fs.write(self._file("cgroup.kill"), "1")
            return
        signal_all(self, sig)

    # -- resources -------------------------------------------------------------------

    def available(self, controller: str) -> bool:
        """Whether the controller is enabled for our cgroup, or could be (offered at root)."""
        mine = (fs.read_optional(self._file("cgroup.controllers")) or "").split()
        if controller in mine:
            return True
        root = (fs.read_optional(os.path.join(self.mountpoint, "cgroup.controllers")) or "")
        return controller in root.split()

    def _need(self, controller: str, filename: str) -> None:
        """Make sure `controller` is enabled for our cgroup, or say clearly why it is not."""
        mine = (fs.read_optional(self._file("cgroup.controllers")) or "").split()
        if controller in mine:
            return
        root = (fs.read_optional(os.path.join(self.mountpoint, "cgroup.controllers")) or "")
        if controller in root.split():
            self._delegate_controllers([controller])
            mine = (fs.read_optional(self._file("cgroup.controllers")) or "").split()
            if controller in mine:
                return
            raise CgroupError(f"{filename}: controller {controller} is available in "
                              f"{self.mountpoint} but could not be enabled for {self.dir} "
                              "(does an ancestor hold processes?)")
        raise CgroupError(f"{filename}: controller {controller} not available in "
                          f"{self.mountpoint}")

    def set(self, resources: Resources) -> None:
        r = resources
        # Check everything first, so that a refusal leaves the cgroup as it was.
        swap = self._check(r)
        if r.cpu is not None:
            self._set_cpuset(r.cpu)
        if r.memory is not None:
            self._set_memory(r.memory, swap)
        if r.cpu is not None:
            self._set_cpu(r.cpu)
        if r.pids is not None:
            limit = r.pids.limit
            fs.write(self._file("pids.max"), str(limit) if limit > 0 else "max")
        if r.block_io is not None:
            self._set_io(r.block_io)
        for h in r.hugepage_limits:
            fs.write(self._file(f"hugetlb.{h.page_size}.max"), str(h.limit))
            # Reservations count too on kernels that have them; runc sets both alike.
            rsvd = self._file(f"hugetlb.{h.page_size}.rsvd.max")
            if os.path.exists(rsvd):
                fs.write(rsvd, str(h.limit))
        if any(not rule.allow for rule in r.devices):
            # a deny rule the kernel will not hear of: with CAP_MKNOD, or a device node in
            # the image, the container reaches devices the spec denies. Said loudly.
            log.warning("%s: %d device rule(s) NOT enforced: the cgroup v2 driver attaches "
                        "no eBPF device program yet, so device nodes the container makes or "
                        "brings are usable", self.dir, len(r.devices))
        # Last, as runc does: a raw unified value overrides what was converted above.
        for key, value in (r.unified or {}).items():
            fs.write(self._file(key), value)

    def _check(self, r: Resources) -> int:
        swap = 0
        m = r.memory
        if m is not None:
            swap = swap_to_v2(m.swap or 0, m.limit or 0)
            if m.limit or m.reservation or swap:
                self._need("memory", "memory.max")
        c = r.cpu
        if c is not None:
            if c.realtime_runtime or c.realtime_period:
                raise CgroupError("cpu.rt_runtime_us: realtime scheduling settings "
                                  "(linux.resources.cpu.realtimeRuntime/realtimePeriod) "
                                  "need cgroup v1")
            if c.shares or c.quota or c.period or c.burst is not None or c.idle is not None:
                self._need("cpu", "cpu.max" if (c.quota or c.period) else "cpu.weight")
            if c.cpus or c.mems:
                self._need("cpuset", "cpuset.cpus" if c.cpus else "cpuset.mems")
        if r.pids is not None:
            self._need("pids", "pids.max")
        b = r.block_io
        if b is not None and (b.weight or b.weight_device or b.throttle_read_bps_device
                              or b.throttle_write_bps_device or b.throttle_read_iops_device
                              or b.throttle_write_iops_device):
            self._need("io", "io.max" if not (b.weight or b.weight_device) else "io.weight")
        for h in r.hugepage_limits:
            self._need("hugetlb", f"hugetlb.{h.page_size}.max")
        for key in r.unified or {}:
            if not key or "/" in key or key.startswith("."):
                raise SpecError(f"linux.resources.unified.{key}",
                                "must be the name of a file in the cgroup directory")
            controller = key.split(".", 1)[0]
            if controller != "cgroup":
                self._need(controller, key)
        return swap

    def _set_cpuset(self, c: Cpu) -> None:
        if c.cpus:
            fs.write(self._file("cpuset.cpus"), c.cpus)
        if c.mems:
            fs.write(self._file("cpuset.mems"), c.mems)

    def _set_memory(self, m: Memory, swap: int) -> None:
        swap_str = _num(swap)
        if not swap_str and swap == 0 and (m.swap or 0) > 0:
            swap_str = "0"  # memory == memory+swap: no swap at all
        if swap_str:
            target = self._file("memory.swap.max")
            if os.path.exists(target):
                fs.write(target, swap_str)
            elif swap_str not in ("max", "0"):
                # Without swap accounting "unlimited" and "none" need no file; a limit does.
                raise CgroupError(f"memory.swap.max: swap accounting is not available in "
                                  f"{self.dir}, so linux.resources.memory.swap cannot be "
                                  "applied")
        if limit := _num(m.limit):
            fs.write(self._file("memory.max"), limit)
        if low := _num(m.reservation):
            fs.write(self._file("memory.low"), low)
        for name, value in (("swappiness", m.swappiness), ("kernel", m.kernel),
                            ("kernelTCP", m.kernel_tcp),
                            ("disableOOMKiller", m.disable_oom_killer)):
            if value is not None:
                log.debug("linux.resources.memory.%s has no cgroup v2 equivalent; ignored",
                          name)

    def _set_cpu(self, c: Cpu) -> None:
        if c.idle is not None:
            fs.write(self._file("cpu.idle"), str(c.idle))
        if c.shares:
            fs.write(self._file("cpu.weight"), str(shares_to_weight(c.shares)))
        if c.quota or c.period:
            value = str(c.quota) if c.quota and c.quota > 0 else "max"
            if c.period:
                value += f" {c.period}"
            fs.write(self._file("cpu.max"), value)
        if c.burst is not None:
            fs.write(self._file("cpu.max.burst"), str(c.burst))

    def _set_io(self, b: BlockIO) -> None:
        # BFQ takes the v1 range (1..1000) unconverted, io.weight needs the conversion.
        bfq = os.path.exists(self._file("io.bfq.weight"))
        if b.weight:
            if bfq:
                fs.write(self._file("io.bfq.weight"), str(b.weight))
            else:
                fs.write(self._file("io.weight"), str(blkio_weight_to_io_weight(b.weight)))
        for wd in b.weight_device:
            if wd.weight:
                if bfq:
                    fs.write(self._file("io.bfq.weight"), f"{wd.major}:{wd.minor} {wd.weight}",
                             append=True)
                else:
                    w = blkio_weight_to_io_weight(wd.weight)
                    fs.write(self._file("io.weight"), f"{wd.major}:{wd.minor} {w}", append=True)
            if wd.leaf_weight:
                log.debug("blockIO.weightDevice.leafWeight has no cgroup v2 equivalent; ignored")
        if b.leaf_weight:
            log.debug("linux.resources.blockIO.leafWeight has no cgroup v2 equivalent; ignored")
        # One io.max line per device, carrying every limit given for it.
        limits: dict[tuple[int, int], list[str]] = {}
        for key, devices in (("rbps", b.throttle_read_bps_device),
                             ("wbps", b.throttle_write_bps_device),
                             ("riops", b.throttle_read_iops_device),
                             ("wiops", b.throttle_write_iops_device)):
            for td in devices:
                limits.setdefault((td.major, td.minor), []).append(f"{key}={td.rate}")
        for (major, minor), parts in limits.items():
            fs.write(self._file("io.max"), f"{major}:{minor} " + " ".join(parts), append=True)

    # -- reading -----------------------------------------------------------------------

    def oom_kills(self) -> int:
        return (fs.read_keyed(self._file("memory.events")) or {}).get("oom_kill", 0)

    def stats(self) -> dict:
        out: dict = {}
        cpu = fs.read_keyed(self._file("cpu.stat"))
        if cpu is not None:
            usage = {k: cpu[f] * 1000 for k, f in (("total", "usage_usec"),
                                                    ("user", "user_usec"),
                                                    ("kernel", "system_usec")) if f in cpu}
            throttling = {k: v for k, v in (("periods", cpu.get("nr_periods")),
                                            ("throttledPeriods", cpu.get("nr_throttled")),
                                            ("throttledTime",
                                             cpu["throttled_usec"] * 1000
                                             if "throttled_usec" in cpu else None))
                          if v is not None}
            out["cpu"] = {"usage": usage, "throttling": throttling}
        memory = self._memory_stats()
        if memory:
            out["memory"] = memory
        pids: dict[str, int] = {}
        if (current := fs.read_int(self._file("pids.current"))) is not None:
            pids["current"] = current
        if (limit := fs.read_int(self._file("pids.max"))) is not None:
            pids["limit"] = limit  # runc reports "max" as 0
        if pids:
            out["pids"] = pids
        io = fs.parse_device_lines(fs.read_optional(self._file("io.stat")))
        if io:
            blkio: dict[str, list[dict]] = {"ioServiceBytesRecursive": [],
                                            "ioServicedRecursive": []}
            for major, minor, rest in io:
                fields = dict(kv.split("=", 1) for kv in rest.split() if "=" in kv)
                for key, field, op in (("ioServiceBytesRecursive", "rbytes", "Read"),
                                       ("ioServiceBytesRecursive", "wbytes", "Write"),
                                       ("ioServicedRecursive", "rios", "Read"),
                                       ("ioServicedRecursive", "wios", "Write")):
                    if field in fields:
                        blkio[key].append({"major": major, "minor": minor, "op": op,
                                           "value": int(fields[field])})
            out["blkio"] = blkio
        hugetlb = self._hugetlb_stats()
        if hugetlb:
            out["hugetlb"] = hugetlb
        return out

    def _memory_stats(self) -> dict:
        out: dict = {}
        usage: dict[str, int] = {}
        if (current := fs.read_int(self._file("memory.current"))) is not None:
            usage["usage"] = current
        if (limit := fs.read_int(self._file("memory.max"), max_value=UNLIMITED)) is not None:
            usage["limit"] = limit
        if (peak := fs.read_int(self._file("memory.peak"))) is not None:
            usage["max"] = peak
        events = fs.read_keyed(self._file("memory.events"))
        if events is not None:
            usage["failcnt"] = events.get("max", 0)
        if usage:
            out["usage"] = usage
        # runc reports v2 swap as memory+swap so the numbers mean what v1's memsw meant.
        swap_cur = fs.read_int(self._file("memory.swap.current"))
        swap_max = fs.read_int(self._file("memory.swap.max"), max_value=UNLIMITED)
        if swap_cur is not None:
            swap = {"usage": swap_cur + usage.get("usage", 0), "failcnt": 0}
            if swap_max is not None:
                mem_max = usage.get("limit", UNLIMITED)
                swap["limit"] = (UNLIMITED if UNLIMITED in (swap_max, mem_max)
                                 else swap_max + mem_max)
            out["swap"] = swap
        raw = fs.read_keyed(self._file("memory.stat"))
        if raw is not None:
            out["raw"] = raw
            if "file" in raw:
                out["cache"] = raw["file"]
        return out

    def _hugetlb_stats(self) -> dict:
        try:
            names = os.listdir(self.dir)
        except OSError:
            return {}
        out: dict[str, dict[str, int]] = {}
        for name in sorted(names):
            if name.startswith("hugetlb.") and name.endswith(".current") and ".rsvd." not in name:
                size = name[len("hugetlb."):-len(".current")]
                entry = {"usage": fs.read_int(self._file(name)) or 0,
                         "failcnt": (fs.read_keyed(self._file(f"hugetlb.{size}.events"))
                                     or {}).get("max", 0)}
                out[size] = entry
        return out


class _Freezable(_Interface):
    """What signal_all needs; both drivers offer it."""

    def pids(self) -> list[int]: ...
    def frozen(self) -> bool: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def can_freeze(self) -> bool: ...


def signal_all(cg: _Freezable, sig: int) -> None:
    """Signal every process in `cg`, frozen meanwhile when a freezer exists (as runc's
    signalAllProcesses), so that no process can fork a child between our reading the pid
    list and our signal reaching it."""
    use_freezer = cg.can_freeze()
    was_frozen = use_freezer and cg.frozen()
    if use_freezer and not was_frozen:
        try:
            cg.freeze()
        except CgroupError as e:
            log.debug("signalling without freezing: %s", e)
            use_freezer = False
    try:
        fs.signal_pids(cg.pids(), sig)
    finally:
        # A paused container stays paused for other signals (they wait, as with runc), but
        # SIGKILL must thaw it: a v1-frozen task cannot die until it runs again.
        if use_freezer and (not was_frozen or sig == signals.SIGKILL):
            try:
                cg.thaw()
            except CgroupError as e:
                if getattr(e, "errno", None) != errno.ENOENT:
                    raise
