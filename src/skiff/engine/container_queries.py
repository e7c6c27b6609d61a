"""What the container service answers without changing anything: ``docker inspect``,
``ps`` and ``logs``, and what the other services ask of the containers.

`inspect` and `list_containers` read the rows (a row that says running whose monitor is gone
gets its exit recorded first) into Docker's shapes (`container_views`), with the files,
overlay folders and, when asked, sizes of each container and its image column as Docker's
rule has it; inspect adds skiff's own ``Capsules`` (what is attached, where, for whom)
when there are some. `logs` reads the json-file log the monitor writes (`monitor.logread`); a
follow ends with the run under way — from a created container, its coming run — or the
container, or the reader. `image_users`, `volume_users` and `counts` are the hooks the image,
volume and system services are given (`ImageService.in_use`, `VolumeService.users`,
`SystemService.containers`).
"""

from __future__ import annotations

import os
import time
from functools import partial

from skiff.engine.container_capsules import views as capsule_views
from skiff.engine.container_files import files_in
from skiff.engine.container_views import ListFilter, inspect_doc, summary
from skiff.engine.containers import _never
from skiff.engine.filters import Filters, until_timestamp
from skiff.engine.network_endpoints import endpoint_settings, networks_of
from skiff.engine.network_ports import network_ports_of, port_list, published_ports
from skiff.errors import ImageNotFound, InvalidArgument, StoreError
from skiff.store.volumes import tree_size as _tree_size  # Docker's SizeRw of an upper dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from skiff.engine.containers import ContainerService
    from skiff.engine.images import ImageUser
    from skiff.engine.state_db import ContainerRow
    from skiff.engine.system import ContainerCounts


def inspect(svc: ContainerService, ref: str, size: bool = False) -> dict[str, Any]:
    """``GET /containers/{id}/json``: Docker's ContainerInspect."""
    row = svc._find(ref)
    if row.state.get("Running") and not svc._running(row):
        row = svc._row(row.id)  # its monitor was gone: the exit is recorded now
    doc = inspect_doc(row, _paths(svc, row.id), _graph(svc, row),
                      endpoint_settings(svc.networks, row), network_ports_of(svc.networks, row))
    capsules = capsule_views(row)
    if capsules:  # skiff's own, so only when there are some: else Docker's shape exactly
        doc["Capsules"] = capsules
    health = svc.supervisor.health(row)
    if health is not None:
        doc["State"]["Health"] = health
    if size:
        doc["SizeRw"], doc["SizeRootFs"] = _sizes(svc, row)
    return doc


def list_containers(svc: ContainerService, all: bool = False, limit: int = -1,
                    filters: Any = None, size: bool = False) -> list[dict[str, Any]]:
    """``GET /containers/json``: ContainerSummary objects, newest first; running ones
    only unless `all` (or a status filter, or a `limit`)."""
    chosen = ListFilter(Filters.parse(filters), svc._find, partial(_image_ids, svc),
                        partial(networks_of, svc.networks),
                        partial(published_ports, svc.networks))
    show_all = all or chosen.wants_all or limit > 0
    now = time.time()
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for row in reversed(svc.db.all()):
        if not show_all and not row.state.get("Running"):
            continue
        if not chosen.match(row):
            continue
        item = summary(row, _image_column(svc, row, names), now,
                       endpoint_settings(svc.networks, row),
                       port_list(network_ports_of(svc.networks, row)))
        if size:
            item["SizeRw"], item["SizeRootFs"] = _sizes(svc, row)
        out.append(item)
        if 0 < limit <= len(out):
            break
    return out


def _paths(svc: ContainerService, cid: str) -> dict[str, str]:
    files = files_in(svc.container_dir(cid))
    netns = svc.netns_path(cid)
    return {"ResolvConfPath": files.resolv_conf, "HostnamePath": files.hostname,
            "HostsPath": files.hosts, "LogPath": svc.log_path(cid),
            "SandboxKey": netns if os.path.exists(netns) else ""}


def _graph(svc: ContainerService, row: ContainerRow) -> dict[str, str]:
    snap = svc.snapshots.path(row.id)
    try:
        lowers = svc.snapshots.lower_dirs(row.id)
    except StoreError:
        lowers = []
    data = {"LowerDir": ":".join(lowers) or os.path.join(snap, "lower"),
            "MergedDir": os.path.join(snap, "rootfs"),
            "UpperDir": os.path.join(snap, "upper"), "WorkDir": os.path.join(snap, "work")}
    return data


def _sizes(svc: ContainerService, row: ContainerRow) -> tuple[int, int]:
    rw = _tree_size(svc.snapshots.upper(row.id))
    try:
        image_size = svc.store.get(row.image_id).size
    except ImageNotFound:
        image_size = 0
    return rw, rw + image_size


def _image_column(svc: ContainerService, row: ContainerRow, cache: dict[str, str]) -> str:
    """The image as the user named it while that name still means the container's
    image; its ID otherwise (Docker's rule)."""
    given = str(row.doc["Config"].get("Image") or "")
    if given not in cache:
        try:
            cache[given] = svc.store.get(given).id
        except (ImageNotFound, StoreError):
            cache[given] = ""
    return given if cache[given] == row.image_id else row.image_id


def _image_ids(svc: ContainerService, refs: list[str]) -> set[str]:
    found = set()
    for ref in refs:
        try:
            found.add(svc.store.get(ref).id)
        except (ImageNotFound, StoreError):
            continue
    return found


def logs(svc: ContainerService, ref: str, stdout: bool = True, stderr: bool = True,
         follow: bool = False, since: str = "", until: str = "", timestamps: bool = False,
         tail: str = "all", cancelled: Callable[[], bool] = _never
         ) -> Iterator[tuple[int, bytes]]:
    """``GET /containers/{id}/logs``: (stream 1 or 2, bytes) per log entry. `follow`
    goes on while the container runs — from a created container, until its coming run
    ends — and ends with it; `since`/`until` take Docker's forms (Unix time, RFC 3339,
    a duration before now); `tail` a count or ``all``; `timestamps` puts each entry's
    time before it, as ``docker logs -t`` shows. `cancelled` ends a follow early (the
    reader went away), checked as often as the log is."""
    from skiff.engine.monitor.logread import read_log

    if not (stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    cid = svc.resolve(ref)
    since_s = until_timestamp(since) if since and since != "0" else None
    until_s = until_timestamp(until) if until and until != "0" else None
    count: int | None
    try:
        count = int(tail) if tail not in ("", "all") else None
    except ValueError:
        count = None  # as Docker: a tail that is not a number means all
    if count is not None and count < 0:
        count = None
    follow_until = _follow_until(svc, cid, cancelled) if follow else None
    path = svc.log_path(cid)
    return _log_items(read_log(path, follow_until=follow_until, since=since_s, until=until_s,
                               tail=count), stdout, stderr, timestamps)


def _log_items(entries: Iterator[Any], stdout: bool, stderr: bool,
               timestamps: bool) -> Iterator[tuple[int, bytes]]:
    for entry in entries:
        stream = 2 if entry.stream == "stderr" else 1
        if (stream == 1 and not stdout) or (stream == 2 and not stderr):
            continue
        yield stream, (entry.time.encode() + b" " + entry.data if timestamps
                       else entry.data)


def _follow_until(svc: ContainerService, cid: str,
                  cancelled: Callable[[], bool]) -> Callable[[], bool]:
    """When a followed log is over: the run going on now (or, for a container not
    started yet, its first run) has ended, or the container is gone, or the reader."""
    live = svc._live_of(cid)
    with svc._cond:
        seen = live.exits
        waits = live.running or not live.started
    if not waits:
        return lambda: True

    def over() -> bool:
        with svc._cond:
            return live.removed or live.exits > seen or cancelled()
    return over


def image_users(svc: ContainerService, image_id: str) -> list[ImageUser]:
    """The containers that use `image_id` (ImageService.in_use), creates under way too."""
    from skiff.engine.images import ImageUser

    users = [ImageUser(row.id, bool(row.state.get("Running")))
             for row in svc.db.all() if row.image_id == image_id]
    with svc._cond:
        users += [ImageUser(cid, False) for cid, image in svc._creating.items()
                  if image == image_id]
    return users


def volume_users(svc: ContainerService) -> list[tuple[str, bool, list[str]]]:
    """(ID, running, the volumes its mounts name) of every container
    (VolumeService.users)."""
    from skiff.engine.mounts import volume_names

    return [(row.id, bool(row.state.get("Running")),
             volume_names(row.doc.get("MountPoints") or ())) for row in svc.db.all()]


def counts(svc: ContainerService) -> ContainerCounts:
    """What /info says of containers (SystemService.containers)."""
    from skiff.engine.system import ContainerCounts

    running = paused = stopped = 0
    for row in svc.db.all():
        if row.state.get("Running") and row.state.get("Paused"):
            paused += 1
        elif row.state.get("Running"):
            running += 1
        else:
            stopped += 1
    return ContainerCounts(running=running, paused=paused, stopped=stopped)
