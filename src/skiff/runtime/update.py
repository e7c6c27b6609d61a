"""`update`: change a live container's resource limits (written to its cgroup and kept
in its state, so a later `state`/`events` sees them)."""

from __future__ import annotations

from skiff.oci.runtime_spec import Cpu, Memory, Pids, BlockIO, Resources, to_json
from skiff.runtime.container import open_container
from skiff.runtime.state import StateStore
from skiff.record import fields, is_record, replace


def merge(base: Resources | None, change: Resources) -> Resources:
    """`change` on top of `base`, field by field (None keeps the old value)."""
    if base is None:
        return change
    out = {}
    for f in fields(Resources):
        old, new = getattr(base, f.name), getattr(change, f.name)
        if is_record(old) and is_record(new):
            kept = {g.name: getattr(new, g.name) if getattr(new, g.name) not in (None, ())
                    else getattr(old, g.name) for g in fields(old)}
            out[f.name] = type(old)(**kept)
        else:
            out[f.name] = new if new not in (None, ()) else old
    return Resources(**out)


def from_flags(memory: int | None = None, memory_reservation: int | None = None,
               memory_swap: int | None = None, cpu_shares: int | None = None,
               cpu_quota: int | None = None, cpu_period: int | None = None,
               cpuset_cpus: str | None = None, cpuset_mems: str | None = None,
               pids_limit: int | None = None, blkio_weight: int | None = None) -> Resources:
    mem = Memory(limit=memory, reservation=memory_reservation, swap=memory_swap)
    cpu = Cpu(shares=cpu_shares, quota=cpu_quota, period=cpu_period, cpus=cpuset_cpus,
              mems=cpuset_mems)
    return Resources(
        memory=mem if mem != Memory() else None, cpu=cpu if cpu != Cpu() else None,
        pids=Pids(pids_limit) if pids_limit is not None else None,
        block_io=BlockIO(weight=blkio_weight) if blkio_weight is not None else None)


def update(store: StateStore, container_id: str, change: Resources) -> None:
    with store.locked(container_id):
        c = open_container(store, container_id)
        c.require("update")
        assert c.spec.linux is not None
        merged = merge(c.spec.linux.resources, change)
        # all of it, not only the change: a v2 file can need two settings at once (cpu.max
        # is quota and period, memory.swap.max is derived from the memory limit); devices
        # stay as create set them
        c.cgroup.set(replace(merged, devices=()))
        c.state.config.setdefault("linux", {})["resources"] = to_json(merged)
        store.save(c.state)
