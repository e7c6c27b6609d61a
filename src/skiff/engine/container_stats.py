"""``docker top`` and ``docker stats``: a running container's processes and its resource
use, read from its cgroup through the runtime library, in Docker's shapes.

`top` lists the cgroup's processes (`runtime.ps.container_pids`) and runs ``ps`` on the host
with the caller's options, keeping the rows of those pids, as moby's ContainerTop does:
``Titles`` from ps's header and each row cut into as many fields, the last one taking the
rest of the line (the command and its spaces). `stats_doc` turns the runtime's cgroup
statistics (runc's ``events --stats`` shape, from v1 or v2 files alike) into Docker's
StatsJSON: ``cpu_stats`` with the host's ``system_cpu_usage`` (the ``cpu`` line of
/proc/stat in nanoseconds, what the docker CLI's CPU % divides by), ``memory_stats`` with
the raw ``memory.stat`` counters (the CLI subtracts the inactive file pages) and, for a
container with no limit, the host's memory as its limit (dockerd's rule); a container
that does not run gets Docker's zero document. `stream` samples once a second, each sample
carrying the one before as ``precpu_stats``/``preread``; once the container stops, the
stream goes on with Docker's empty documents until it is removed.
"""

from __future__ import annotations

import os
import time

from skiff.errors import ContainerConflict, InvalidArgument, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from skiff.engine.containers import ContainerService

INTERVAL = 1.0  # seconds between streamed samples, dockerd's collector interval
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as dockerd sends it
_BLKIO_KEYS = (("io_service_bytes_recursive", "ioServiceBytesRecursive"),
               ("io_serviced_recursive", "ioServicedRecursive"),
               ("io_queue_recursive", "ioQueueRecursive"),
               ("io_service_time_recursive", "ioServiceTimeRecursive"),
               ("io_wait_time_recursive", "ioWaitTimeRecursive"),
               ("io_merged_recursive", "ioMergedRecursive"),
               ("io_time_recursive", "ioTimeRecursive"),
               ("sectors_recursive", "sectorsRecursive"))


# -- top ------------------------------------------------------------------------------------
def parse_ps(output: str, pids: list[int]) -> dict[str, Any]:
    """moby's parsePSOutput: ps's table kept to `pids`."""
    lines = output.splitlines()
    if not lines:
        raise SkiffError("Error running ps: no output")
    titles = lines[0].split()
    try:
        pid_index = titles.index("PID")
    except ValueError:
        raise SkiffError("Couldn't find PID field in ps output") from None
    wanted = set(pids)
    processes = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise SkiffError(f"Unexpected pid '{fields[pid_index]}'") from None
        if pid in wanted:
            last = len(titles) - 1
            processes.append(fields[:last] + [" ".join(fields[last:])])
    return {"Titles": titles, "Processes": processes}


def top(svc: ContainerService, ref: str, ps_args: str = "") -> dict[str, Any]:
    """``GET /containers/{id}/top?ps_args=``: 409 for a container that does not run."""
    import subprocess

    from skiff.runtime.ps import container_pids
    from skiff.runtime.state import StateStore

    cid = svc.resolve(ref)
    if not svc._running(svc._row(cid)):
        raise ContainerConflict(f"Container {cid} is not running")
    pids = container_pids(StateStore(svc.runtime_root), cid)
    args = ps_args.split() if ps_args.strip() else ["-ef"]
    try:
        done = subprocess.run(["ps", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SkiffError(f"Error running ps: {e}") from None
    if done.returncode != 0:  # moby's words (and its 500) for ps refusing its options
        raise SkiffError(f"Error running ps: exit status {done.returncode}: "
                         f"{done.stderr.strip()}")
    return parse_ps(done.stdout, pids)


# -- stats ----------------------------------------------------------------------------------
def system_cpu_usage(stat_text: str, clock_ticks: int) -> int:
    """The host's CPU time in nanoseconds from /proc/stat's ``cpu`` line (user, nice,
    system, idle, iowait, irq, softirq), as dockerd's getSystemCPUUsage adds it."""
    for line in stat_text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            ticks = sum(int(v) for v in parts[1:8])
            return ticks * 1_000_000_000 // clock_ticks
    return 0


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def machine_memory(meminfo: str | None = None) -> int:
    text = _read("/proc/meminfo") if meminfo is None else meminfo
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _blkio(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for docker_key, runc_key in _BLKIO_KEYS:
        entries = raw.get(runc_key)
        out[docker_key] = [{"major": e["major"], "minor": e["minor"], "op": e["op"],
                            "value": e["value"]} for e in entries] if entries else None
    return out


def zero_stats(name: str, cid: str) -> dict[str, Any]:
    """Docker's StatsJSON of a container that does not run: every field zero."""
    cpu = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
           "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {},
            "blkio_stats": _blkio({}), "num_procs": 0, "storage_stats": {},
            "cpu_stats": cpu, "precpu_stats": dict(cpu), "memory_stats": {},
            "name": "/" + name, "id": cid}


def stats_doc(raw: dict[str, Any], *, name: str, cid: str, read: str, system_usage: int,
              online_cpus: int, host_memory: int, cgroup_v1: bool) -> dict[str, Any]:
    """Docker's StatsJSON from the runtime's cgroup statistics `raw` (precpu left zero)."""
    cpu = raw.get("cpu") or {}
    usage = cpu.get("usage") or {}
    throttling = cpu.get("throttling") or {}
    cpu_usage: dict[str, Any] = {"total_usage": usage.get("total", 0),
                                 "usage_in_kernelmode": usage.get("kernel", 0),
                                 "usage_in_usermode": usage.get("user", 0)}
    if usage.get("percpu"):
        cpu_usage["percpu_usage"] = usage["percpu"]
    cpu_stats = {"cpu_usage": cpu_usage, "system_cpu_usage": system_usage,
                 "online_cpus": online_cpus,
                 "throttling_data": {"periods": throttling.get("periods", 0),
                                     "throttled_periods": throttling.get("throttledPeriods", 0),
                                     "throttled_time": throttling.get("throttledTime", 0)}}
    memory = raw.get("memory") or {}
    mem_usage = memory.get("usage") or {}
    limit = int(mem_usage.get("limit") or 0)
    if host_memory and (limit == 0 or limit > host_memory):
        limit = host_memory  # no limit of its own: the machine's memory
    memory_stats: dict[str, Any] = {"usage": mem_usage.get("usage", 0),
                                    "stats": dict(memory.get("raw") or {}), "limit": limit}
    if cgroup_v1:
        memory_stats["max_usage"] = mem_usage.get("max", 0)
        memory_stats["failcnt"] = mem_usage.get("failcnt", 0)
    pids = raw.get("pids") or {}
    pids_stats: dict[str, Any] = {"current": pids.get("current", 0)}
    if pids.get("limit"):
        pids_stats["limit"] = pids["limit"]
    zero = zero_stats(name, cid)
    return {"read": read, "preread": ZERO_TIME, "pids_stats": pids_stats,
            "blkio_stats": _blkio(raw.get("blkio") or {}), "num_procs": 0,
            "storage_stats": {}, "cpu_stats": cpu_stats, "precpu_stats": zero["precpu_stats"],
            "memory_stats": memory_stats, "name": "/" + name, "id": cid}


class StatsSampler:
    """Samples of one container's cgroup; None when it does not run (any more)."""

    def __init__(self, svc: ContainerService, cid: str) -> None:
        self.svc = svc
        self.cid = cid
        self.host_memory = machine_memory()
        self.clock_ticks = os.sysconf("SC_CLK_TCK")

    def sample(self) -> dict[str, Any] | None:
        from skiff.engine.times import rfc3339_nano
        from skiff.runtime.container import open_container
        from skiff.runtime.state import StateStore

        row = self.svc.db.get(self.cid)
        if row is None or not row.state.get("Running"):
            return None
        try:
            cgroup = open_container(StateStore(self.svc.runtime_root), self.cid).cgroup
            raw = cgroup.stats()
        except SkiffError:
            return None  # it ended meanwhile
        return stats_doc(raw, name=row.name, cid=self.cid, read=rfc3339_nano(time.time()),
                         system_usage=system_cpu_usage(_read("/proc/stat"), self.clock_ticks),
                         online_cpus=os.cpu_count() or 1, host_memory=self.host_memory,
                         cgroup_v1=cgroup.version != "v2")


def stats(svc: ContainerService, ref: str, stream: bool = True, one_shot: bool = False,
          stopped: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
    """``GET /containers/{id}/stats``: the documents to send, one (``stream=0``: after a
    second sample, so the CPU % has a base; ``one-shot=1``: at once, no base) or one a
    second while the container runs and `stopped()` is false."""
    if stream and one_shot:
        raise InvalidArgument("cannot have stream=true and one-shot=true")
    cid = svc.resolve(ref)
    row = svc._row(cid)
    running = svc._running(row)
    if not running and not stream:
        return iter([zero_stats(row.name, cid)])
    sampler = StatsSampler(svc, cid)
    if one_shot:
        first = sampler.sample()
        return iter([first if first is not None else zero_stats(row.name, cid)])
    return _stream(sampler, row.name, stream, stopped or (lambda: False))


def _stream(sampler: StatsSampler, name: str, stream: bool,
            stopped: Callable[[], bool]) -> Iterator[dict[str, Any]]:
    previous: dict[str, Any] | None = None
    while not stopped():
        doc = sampler.sample()
        if doc is None:
            if not stream or sampler.svc.db.get(sampler.cid) is None:
                if previous is None or not stream:
                    yield zero_stats(name, sampler.cid)
                return  # gone: the stream ends
            # stopped: dockerd's collector goes on publishing empty stats (name and ID)
            doc = zero_stats(name, sampler.cid)
        if previous is not None:
            doc["precpu_stats"] = previous["cpu_stats"]
            doc["preread"] = previous["read"]
        if stream or previous is not None:
            yield doc
            if not stream:
                return
        previous = doc
        deadline = time.monotonic() + INTERVAL
        while not stopped() and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
