"""``docker pause``, ``unpause``, ``rename`` and ``update``: the small container verbs that
change a container in place, over the `ContainerService` that holds it.

Pause and unpause freeze and thaw the container's cgroup through the runtime library
(`runtime.pause`) and keep ``State.Paused`` (Status ``paused``) in the row; a signal sent to
a paused container (stop, kill, ``rm -f``) thaws it afterwards, as dockerd does, so that the
signal is delivered (`thaw_for_signal`). Rename changes the row's name — the database's
unique name is what makes two renames to one name safe — and update checks a resources
change with `container_config`'s checks, merges it into the stored HostConfig the way
moby's ``UpdateContainer`` does (a zero field keeps the old value), applies it to a
running container's cgroup through the runtime library (`runtime.update`) before storing
it, so a change the kernel refuses changes nothing. Each emits Docker's event.
"""

from __future__ import annotations

import copy

from skiff.errors import ContainerConflict, InvalidArgument, RuntimeError_, SkiffError
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.engine.containers import ContainerService
    from skiff.engine.state_db import ContainerRow

_log = logger("skiff.engine.control")

# moby's container.Resources fields `docker update` may change, with their Go types
UPDATABLE: tuple[tuple[str, str], ...] = (
    ("BlkioWeight", "int64"), ("CpuShares", "int64"), ("NanoCpus", "int64"),
    ("CpuPeriod", "int64"), ("CpuQuota", "int64"), ("CpusetCpus", "string"),
    ("CpusetMems", "string"), ("Memory", "int64"), ("MemorySwap", "int64"),
    ("MemoryReservation", "int64"), ("PidsLimit", "int64"),
)
# Resources fields skiff does not change live (a non-zero value is refused)
_NOT_UPDATABLE = ("KernelMemory", "KernelMemoryTCP", "CpuRealtimePeriod",
                  "CpuRealtimeRuntime", "BlkioWeightDevice", "BlkioDeviceReadBps",
                  "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
                  "Devices", "DeviceCgroupRules", "DeviceRequests", "Ulimits",
                  "OomKillDisable", "MemorySwappiness", "CpuCount", "CpuPercent",
                  "IOMaximumIOps", "IOMaximumBandwidth")


def _emit(svc: ContainerService, cid: str, action: str,
          extra: dict[str, str] | None = None) -> None:
    row = svc.db.get(cid)
    if row is not None:
        svc._event(row, action, extra)  # the engine's one way to build a container event


def _runtime_store(svc: ContainerService) -> Any:
    from skiff.runtime.state import StateStore

    return StateStore(svc.runtime_root)


def _set_paused(svc: ContainerService, cid: str, paused: bool) -> None:
    with svc._cond:
        row = svc.db.get(cid)
        if row is not None and row.state.get("Running"):
            row.state.update(Paused=paused, Status="paused" if paused else "running")
            svc.db.set_state(cid, row.state)
        svc._cond.notify_all()


def _running_row(svc: ContainerService, cid: str) -> ContainerRow:
    row = svc._row(cid)
    if not svc._running(row):
        raise ContainerConflict(f"Container {cid} is not running")
    return row


# -- pause, unpause -------------------------------------------------------------------------
def pause(svc: ContainerService, ref: str) -> None:
    """``POST /containers/{id}/pause``: freeze every process of a running container."""
    from skiff.runtime.pause import pause as freeze

    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    with live.lock:
        row = _running_row(svc, cid)
        if row.state.get("Paused"):
            raise ContainerConflict(f"Container {cid} is already paused")
        try:
            freeze(_runtime_store(svc), cid)
        except RuntimeError_ as e:
            raise SkiffError(f"Cannot pause container {cid}: {e}") from e
        _set_paused(svc, cid, True)
    _emit(svc, cid, "pause")


def unpause(svc: ContainerService, ref: str) -> None:
    """``POST /containers/{id}/unpause``: thaw a paused container."""
    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    with live.lock:
        row = svc._row(cid)
        if not row.state.get("Paused") or not svc._running(row):
            raise ContainerConflict(f"Container {cid} is not paused")
        _thaw(svc, cid)


def _thaw(svc: ContainerService, cid: str) -> None:
    from skiff.runtime.pause import resume

    try:
        resume(_runtime_store(svc), cid)
    except RuntimeError_ as e:
        raise SkiffError(f"Cannot unpause container {cid}: {e}") from e
    _set_paused(svc, cid, False)
    _emit(svc, cid, "unpause")


def thaw_for_signal(svc: ContainerService, cid: str) -> None:
    """After a signal to `cid`: a paused container is thawed so that it gets the signal
    (dockerd's killWithSignal); what goes wrong is logged, the signal is sent already."""
    row = svc.db.get(cid)
    if row is None or not row.state.get("Paused"):
        return
    try:
        _thaw(svc, cid)
    except SkiffError as e:
        _log.warning("container %s: %s", cid[:12], e)


# -- rename ---------------------------------------------------------------------------------
def rename(svc: ContainerService, ref: str, new_name: str) -> None:
    """``POST /containers/{id}/rename?name=``: 400 for an empty, invalid or unchanged
    name, 409 when another container holds it."""
    from skiff.engine.names import check_name
    from skiff.engine.state_db import NameTaken

    if not new_name:
        raise InvalidArgument("Neither old nor new names may be empty")
    name = check_name(new_name)
    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    with live.lock:
        old = svc._row(cid).name
        if old == name:
            raise InvalidArgument("Renaming a container with the same name as its current "
                                  "name")
        with svc._cond:
            holder = svc._reserved.get(name)
            if holder is not None:
                raise svc._name_conflict(name, holder)
            try:
                svc.db.rename(cid, name)
            except NameTaken as e:
                raise svc._name_conflict(e.name, e.holder) from None
    _emit(svc, cid, "rename", {"oldName": "/" + old})


# -- update ---------------------------------------------------------------------------------
def parse_update(body: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The resources fields set in an UpdateConfig body and its RestartPolicy (None when
    not given); Docker's 400 for a wrong type or a field skiff cannot change live."""
    from skiff.engine.container_config import _check_type, _zero

    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: the request body must be an UpdateConfig object")
    given: dict[str, Any] = {}
    for key, gotype in UPDATABLE:
        value = _check_type("UpdateConfig", key, gotype, body.get(key))
        if value is not None and (key == "PidsLimit" or not _zero(value)):
            given[key] = value
    for key in _NOT_UPDATABLE:
        if not _zero(body.get(key)):
            raise InvalidArgument(f"updating {key} is not supported by skiffd")
    policy = body.get("RestartPolicy")
    if policy is not None and not isinstance(policy, dict):
        raise InvalidArgument("json: cannot unmarshal into Go struct field UpdateConfig."
                              "RestartPolicy of type container.RestartPolicy")
    return given, policy if policy and policy.get("Name") else None


def merge_update(cid: str, host: dict[str, Any], given: dict[str, Any],
                 policy: dict[str, Any] | None, *, ncpu: int,
                 swap_limit: bool) -> tuple[dict[str, Any], list[str]]:
    """A copy of `host` with the change applied as moby's UpdateContainer applies it, and
    the warnings; checked as a create's resources are."""
    from skiff.engine.container_config import _check_resources

    out = copy.deepcopy(host)
    memory = given.get("Memory", 0)
    if memory and memory > int(out.get("MemorySwap") or 0) and not given.get("MemorySwap"):
        raise ContainerConflict(f"Cannot update container {cid}: Memory limit should be "
                                f"smaller than already set memoryswap limit, update the "
                                f"memoryswap at the same time")
    if given.get("NanoCpus") and int(out.get("CpuQuota") or 0) and not given.get("CpuQuota"):
        raise ContainerConflict(f"Cannot update container {cid}: Conflicting options: "
                                f"Nano CPUs cannot be updated as CPU Quota has already "
                                f"been set")
    if given.get("CpuQuota") and int(out.get("NanoCpus") or 0) and not given.get("NanoCpus"):
        raise ContainerConflict(f"Cannot update container {cid}: Conflicting options: CPU "
                                f"Quota cannot be updated as NanoCPUs has already been set")
    for key, value in given.items():
        out[key] = value
    if "PidsLimit" in given and given["PidsLimit"] <= 0:
        out["PidsLimit"] = None
    if policy is not None:
        _check_policy(policy)
        if out.get("AutoRemove") and policy.get("Name") not in ("", "no"):
            raise ContainerConflict(f"Cannot update container {cid}: Restart policy cannot "
                                    f"be updated because AutoRemove is enabled for the "
                                    f"container")
        out["RestartPolicy"] = {"Name": policy.get("Name") or "no",
                                "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
    warnings: list[str] = []
    _check_resources(out, warnings, ncpu, swap_limit)
    if "PidsLimit" in given and given["PidsLimit"] <= 0:
        out["PidsLimit"] = None
    return out, warnings


def _check_policy(policy: dict[str, Any]) -> None:
    from skiff.engine.supervision import check_restart_policy

    check_restart_policy(policy, False)


def update(svc: ContainerService, ref: str, body: Any) -> dict[str, Any]:
    """``POST /containers/{id}/update``: ``{"Warnings": [...]}``."""
    import os

    from skiff.engine.containers import _swap_limit

    given, policy = parse_update(body)
    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    with live.lock:
        row = svc._row(cid)
        if live.removing or row.state.get("Status") in ("removing", "dead"):
            raise ContainerConflict(f"Cannot update container {cid}: container is marked "
                                    f"for removal and cannot be \"update\"")
        host, warnings = merge_update(cid, row.doc["HostConfig"], given, policy,
                                      ncpu=os.cpu_count() or 1, swap_limit=_swap_limit())
        if svc._running(row):
            _apply_live(svc, cid, host, given)
        doc = dict(row.doc)
        doc["HostConfig"] = host
        svc.db.set_doc(cid, doc)
        if policy is not None:
            updated = svc.db.get(cid)
            if updated is not None:
                svc.supervisor.set_policy(updated)  # the monitor's, from its next exit
    _emit(svc, cid, "update")
    return {"Warnings": warnings}


def _apply_live(svc: ContainerService, cid: str, host: dict[str, Any],
                given: dict[str, Any]) -> None:
    from skiff.engine.oci_spec import _resources
    from skiff.oci.codec import decode_object
    from skiff.oci.runtime_spec import Resources
    from skiff.runtime.update import update as update_cgroup

    wanted = _resources(host, bool(host.get("Privileged")))
    wanted.pop("devices", None)
    if "PidsLimit" in given and given["PidsLimit"] <= 0:
        wanted["pids"] = {"limit": -1}  # back to no limit: "max"
    try:
        update_cgroup(_runtime_store(svc), cid, decode_object(Resources, wanted))
    except SkiffError as e:
        raise SkiffError(f"Cannot update container {cid}: {e}") from e
