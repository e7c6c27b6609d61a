"""Capsules attached to containers: which ones each container has, live attach and detach,
and the mounts a start gives them.

A container's attachments are a list in its row (``doc["Capsules"]``), one entry a capsule:
``Name``, ``Version``, ``Digest``, ``Target`` (where the container sees it), ``Wanted``
(asked for by name, not only needed by another) and ``For`` (the attached capsules that need
it). The `CapsuleService` resolves a request and its dependencies to one concrete set of
verified, unpacked folders; here each becomes a read-only bind at its target.

- `attach` on a running (or paused) container mounts every capsule of the set that is not
  attached yet at once (`runtime.live_mount`), then records them; one that fails takes the
  ones mounted before it down again, so nothing is half-attached. On a stopped or created
  container it only records them: the next start mounts them.
- `detach` takes a capsule and the dependencies that came only for it; one that another
  attached capsule needs is refused.
- `start_mounts` gives a start the spec's mounts of the attachments (bind, ro, nosuid, nodev,
  rprivate), so they are kept across restarts of the container and of skiffd; and since a
  restart policy is carried out by the monitor alone, from the bundle's config.json, a live
  attach or detach rewrites that file's mounts too, so the next run the monitor makes has the
  same capsules.

Events: ``capsule attach`` and ``capsule detach``, the actor ``name:version``, with the
container, the target and the digest.
"""

from __future__ import annotations

import os

from skiff import jsonfast
from skiff.errors import (
    CapsuleConflict,
    ContainerConflict,
    ContainerNotFound,
    InvalidArgument,
    InvalidState,
    NoSuchCapsule,
    NoSuchContainer,
)
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.engine.containers import ContainerService
    from skiff.engine.state_db import ContainerRow

_log = logger("skiff.engine.capsules")
CAPSULES_ROOT = "/capsules"
# what a capsule's bind is at start: the runtime's live mount gives the same flags
START_OPTIONS = ("bind", "ro", "nosuid", "nodev", "rprivate")


def default_target(name: str, version: str) -> str:
    return f"{CAPSULES_ROOT}/{name}/{version}"


def parse_request(text: str) -> tuple[str, str | None]:
    """``name:version[:/target]`` (``run --capsule``) as ``(name:version, target)``."""
    name, sep, rest = text.partition(":")
    version, _, target = rest.partition(":")
    if not name or not sep or not version:
        raise InvalidArgument(f"invalid capsule {text!r}: give NAME:VERSION[:/TARGET]")
    return f"{name}:{version}", target or None


def attachments(row: ContainerRow) -> list[dict[str, Any]]:
    return [dict(e) for e in row.doc.get("Capsules") or ()]


def views(row: ContainerRow) -> list[dict[str, Any]]:
    """inspect's ``Capsules``: what is attached, where, and for whom."""
    return [{"Name": e["Name"], "Version": e["Version"], "Digest": e["Digest"],
             "Target": e["Target"], "RequiredBy": list(e["For"])} for e in attachments(row)]


# -- planning -------------------------------------------------------------------------------
def plan(svc: ContainerService, row: ContainerRow, request: str,
         target: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """What attaching `request` (``name:version``) to `row` makes its list: (the whole new
    list, the entries that are new, each new capsule's folder). Nothing is changed."""
    from skiff.runtime.live_mount import check_target

    assert svc.capsules is not None
    name = request.partition(":")[0]
    resolved = svc.capsules.resolve([request])
    entries = attachments(row)
    by_name = {e["Name"]: e for e in entries}
    new: list[dict[str, Any]] = []
    paths: dict[str, str] = {}
    for r in resolved:
        top = r.name == name
        have = by_name.get(r.name)
        if have is not None:
            if have["Version"] != r.version:
                mine = f"{r.name}:{r.version}"
                raise CapsuleConflict(
                    f"capsule {r.name}:{have['Version']} is attached to container {row.name} "
                    f"already; {request} needs {mine}", (f"{r.name}:{have['Version']}", mine))
            if top and have["Wanted"]:
                raise ContainerConflict(f"capsule {request} is attached to container "
                                        f"{row.name} already, at {have['Target']}")
            if top:
                have["Wanted"] = True
            elif name not in have["For"]:
                have["For"].append(name)
            continue
        entry = {"Name": r.name, "Version": r.version, "Digest": r.digest,
                 "Target": check_target(target) if top and target
                 else default_target(r.name, r.version),
                 "Wanted": top, "For": [] if top else [name]}
        new.append(entry)
        entries.append(entry)
        paths[r.name] = r.path
    _check_targets(row, entries, new)
    return entries, new, paths


def _check_targets(row: ContainerRow, entries: list[dict[str, Any]],
                   new: list[dict[str, Any]]) -> None:
    """A new target may not be another capsule's, nor a volume's or bind's destination."""
    taken = {p["Destination"].rstrip("/") or "/": f"mount {p['Destination']}"
             for p in row.doc.get("MountPoints") or ()}
    for e in entries:
        if e not in new:
            taken[e["Target"]] = f"capsule {e['Name']}:{e['Version']}"
    for e in new:
        holder = taken.get(e["Target"])
        if holder is not None:
            raise ContainerConflict(f"capsule {e['Name']}:{e['Version']}: target {e['Target']} "
                                    f"of container {row.name} is taken by {holder}")
        taken[e["Target"]] = f"capsule {e['Name']}:{e['Version']}"


def _unplan(row: ContainerRow, name: str,
            force: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What detaching `name` makes `row`'s list: (what stays, what goes: it and the
    dependencies that were there only for it). `force` (a forced capsule rm) takes it even
    when other attached capsules need it."""
    entries = attachments(row)
    by_name = {e["Name"]: e for e in entries}
    entry = by_name.get(name)
    if force and entry is not None:
        entry["Wanted"], entry["For"] = True, []
    if entry is None or not entry["Wanted"]:
        if entry is not None:
            needers = ", ".join(entry["For"])
            raise CapsuleConflict(f"capsule {name} is attached to container {row.name} only as "
                                  f"a dependency of {needers}: detach that instead",
                                  (name, needers))
        raise NoSuchCapsule(f"capsule {name} is not attached to container {row.name}")
    if entry["For"]:
        needers = ", ".join(entry["For"])
        raise CapsuleConflict(f"capsule {name} is needed by {needers} attached to container "
                              f"{row.name}: detach that first", (name, needers))
    gone = [entry]
    for e in entries:
        if name in e["For"]:
            e["For"].remove(name)
            if not e["For"] and not e["Wanted"]:
                gone.append(e)
    return [e for e in entries if e not in gone], gone


def plan_create(svc: ContainerService, row: ContainerRow, requests: Any) -> list[dict[str, Any]]:
    """``create`` with ``HostConfig.Capsules`` (``run --capsule``, each
    ``name:version[:/target]``): the row's list, set in its doc; the caller holds the capsule
    service's lock until the row is stored."""
    if requests is None:
        return []
    if not isinstance(requests, list) or not all(isinstance(r, str) for r in requests):
        raise InvalidArgument("HostConfig.Capsules: give a list of NAME:VERSION[:/TARGET]")
    if requests and svc.capsules is None:
        raise NoSuchCapsule("this engine keeps no capsules")
    new: list[dict[str, Any]] = []
    for text in requests:
        request, target = parse_request(text)
        entries, added, _ = plan(svc, row, request, target)
        row.doc["Capsules"] = entries
        new += added
    return new


def attached_events(svc: ContainerService, row: ContainerRow,
                    entries: list[dict[str, Any]]) -> None:
    for e in entries:
        _event(svc, row, "attach", e)


# -- the verbs --------------------------------------------------------------------------------
def attach(svc: ContainerService, ref: str, request: str,
           target: str | None = None) -> dict[str, Any]:
    """``POST /containers/{id}/capsules``: attach `request` (``name:version``) and what it
    needs; ``{"Capsules": [...], "Live": bool}`` (Live: mounted into the running container
    now, else recorded for its next start)."""
    from skiff.runtime.live_mount import check_target

    request, given = parse_request(request)
    target = target or given
    if target:
        target = check_target(target)  # bad input refused before anything is looked up
    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    if svc.capsules is None:
        raise NoSuchCapsule("this engine keeps no capsules")
    # the capsule service's lock from the resolve until the row says it is used: a capsule
    # rm or prune meanwhile cannot take the folder being mounted
    with live.lock, svc.capsules.lock:
        row = svc._row(cid)
        _refuse_removing(live, row)
        entries, new, paths = plan(svc, row, request, target)
        running = svc._running(row)
        if running:
            running = _mount_live(svc, row, entries, new, paths)
        row.doc["Capsules"] = entries
        svc.db.set_doc(cid, row.doc)
    attached_events(svc, row, new)
    return {"Capsules": views(row), "Live": running}


def detach(svc: ContainerService, ref: str, name: str, force: bool = False) -> None:
    """``DELETE /containers/{id}/capsules/{name}``."""
    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    with live.lock:
        row = svc._row(cid)
        if not force:
            _refuse_removing(live, row)
        stays, gone = _unplan(row, name, force)
        if svc._running(row):
            _unmount_live(svc, row, stays, gone)
        row.doc["Capsules"] = stays
        svc.db.set_doc(cid, row.doc)
    for e in gone:
        _event(svc, row, "detach", e)


def start_mounts(svc: ContainerService, row: ContainerRow,
                 rootfs: str) -> list[dict[str, Any]]:
    """The spec's mounts of `row`'s capsules, for a start on `rootfs`: a target that a
    symlink in the container's files now leads out of it is refused, as a live attach
    refuses it (the runtime would only keep the mount inside)."""
    from skiff.runtime.live_mount import refuse_escape

    entries = attachments(row)
    if not entries:
        return []
    for e in entries:
        refuse_escape(rootfs, e["Target"])
    folders = _folders(svc, entries)
    return [_oci_mount(e, folders[e["Name"]]) for e in entries]


def users(svc: ContainerService) -> list[tuple[str, list[str]]]:
    """CapsuleService.users: ``(container ID, ["name:version", …])`` of every container
    with capsules (mounted now or at its next start)."""
    return [(row.id, [f"{e['Name']}:{e['Version']}" for e in row.doc["Capsules"]])
            for row in svc.db.all() if row.doc.get("Capsules")]


def detach_from(svc: ContainerService, ref: str, container_ids: list[str]) -> None:
    """CapsuleService.detach: a forced capsule rm takes `ref` (``name:version``) off those
    containers, even where other attached capsules need it."""
    name = ref.partition(":")[0]
    for cid in container_ids:
        try:
            detach(svc, cid, name, force=True)
        except NoSuchContainer:
            pass  # removed meanwhile: nothing of it to take


# -- the mounts -------------------------------------------------------------------------------
def _refuse_removing(live: Any, row: ContainerRow) -> None:
    if live.removing or row.state.get("Status") in ("removing", "dead"):
        raise ContainerConflict(f"container {row.name} is marked for removal")


def _folders(svc: ContainerService, entries: list[dict[str, Any]]) -> dict[str, str]:
    """Each entry's unpacked folder, checked to be the content it was attached with."""
    assert svc.capsules is not None
    out: dict[str, str] = {}
    for e in entries:
        found = [r for r in svc.capsules.resolve([f"{e['Name']}:{e['Version']}"])
                 if r.name == e["Name"]]
        if not found or found[0].digest != e["Digest"]:
            raise NoSuchCapsule(f"capsule {e['Name']}:{e['Version']} ({e['Digest']}) is gone")
        out[e["Name"]] = found[0].path
    return out


def _oci_mount(entry: dict[str, Any], folder: str) -> dict[str, Any]:
    return {"destination": entry["Target"], "type": "bind", "source": folder,
            "options": list(START_OPTIONS)}


def _runtime_container(svc: ContainerService, cid: str) -> Any:
    from skiff.runtime.container import open_container
    from skiff.runtime.state import StateStore

    return open_container(StateStore(svc.runtime_root), cid)


def _mount_live(svc: ContainerService, row: ContainerRow, entries: list[dict[str, Any]],
                new: list[dict[str, Any]], paths: dict[str, str]) -> bool:
    """Mount `new` into the running `row`, all or none; the bundle's config.json gets them
    first, so that a run the monitor starts meanwhile has them too. False when the run was
    between two inits (a restart under way): the config.json gives them to the next."""
    from skiff.runtime.live_mount import add_mount, remove_mount

    old = _set_bundle_mounts(svc, row, entries, {**paths, **_folders(svc, [
        e for e in entries if e not in new])})
    try:
        container = _runtime_container(svc, row.id)
        container.require("mount")
    except (ContainerNotFound, InvalidState):
        return False
    done: list[dict[str, Any]] = []
    try:
        for e in new:
            add_mount(container, paths[e["Name"]], e["Target"])
            done.append(e)
    except BaseException:
        for e in reversed(done):
            try:
                remove_mount(container, e["Target"])
            except Exception as undo:  # noqa: BLE001 - the first error is the one to report
                _log.warning("container %s: take capsule %s down again: %s", row.id[:12],
                             e["Name"], undo)
        _restore_bundle(svc, row.id, old)
        raise
    return True


def _unmount_live(svc: ContainerService, row: ContainerRow, stays: list[dict[str, Any]],
                  gone: list[dict[str, Any]]) -> None:
    from skiff.runtime.live_mount import remove_mount

    _set_bundle_mounts(svc, row, stays, _folders(svc, stays) if stays else {})
    try:
        container = _runtime_container(svc, row.id)
    except ContainerNotFound:
        return  # between two runs: the next has the new config.json
    for e in gone:
        try:
            remove_mount(container, e["Target"])
        except InvalidState:
            return
        except InvalidArgument:
            # taken down from inside (a container given CAP_SYS_ADMIN): gone all the same
            _log.info("container %s: capsule %s was not mounted at %s any more", row.id[:12],
                      e["Name"], e["Target"])


def _bundle_path(svc: ContainerService, cid: str) -> str:
    return os.path.join(svc.bundle_dir(cid), "config.json")


def _set_bundle_mounts(svc: ContainerService, row: ContainerRow, entries: list[dict[str, Any]],
                       folders: dict[str, str]) -> bytes | None:
    """Make the capsule mounts of the bundle's config.json `entries`' (the others kept as
    they are); the file's old bytes, or None when there is no bundle."""
    path = _bundle_path(svc, row.id)
    try:
        with open(path, "rb") as f:
            old = f.read()
    except FileNotFoundError:
        return None
    spec = jsonfast.loads(old)
    mine = {e["Target"] for e in attachments(row)} | {e["Target"] for e in entries}
    spec["mounts"] = [m for m in spec.get("mounts") or () if m.get("destination") not in mine
                      or m.get("options") != list(START_OPTIONS)]
    spec["mounts"] += [_oci_mount(e, folders[e["Name"]]) for e in entries]
    _write(path, jsonfast.dumps(spec).encode())
    return old


def _restore_bundle(svc: ContainerService, cid: str, old: bytes | None) -> None:
    if old is not None:
        _write(_bundle_path(svc, cid), old)


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.capsules.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _event(svc: ContainerService, row: ContainerRow, action: str, e: dict[str, Any]) -> None:
    svc.events.emit("capsule", action, f"{e['Name']}:{e['Version']}", {
        "name": e["Name"], "version": e["Version"], "digest": e["Digest"],
        "container": row.id, "target": e["Target"]})
