"""``docker create``: a container's row, rootfs snapshot, volumes and files, made together
or not at all, for the `ContainerService` that will hold it.

`create` checks the request (`container_config`) and composes the whole OCI spec once, so
that what the runtime would refuse is refused now; takes a name — the user's, or a
Docker-like random one — and holds it while the create runs (two creates cannot take one
name; the image counts as in use meanwhile); makes the container's rootfs snapshot over its
image's layers, gets its volumes from the `VolumeService` (made, copied up), writes its
/etc/hostname, hosts and resolv.conf (owned by the remapped root under ``--userns-remap``)
and its working directory, resolves the capsules it asks for (``HostConfig.Capsules``,
skiff's own: `container_capsules`) and stores its row, with an endpoint for each network
it joins (`network_endpoints`). If any step fails, what the earlier ones
made is undone.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack, contextmanager, nullcontext
from functools import partial

from skiff.engine.container_capsules import attached_events, plan_create
from skiff.engine.container_config import parse_create
from skiff.engine.container_files import files_in, make_working_dir, write_files
from skiff.engine.container_removal import drop_snapshot
from skiff.engine.containers import _Live, _now, _swap_limit
from skiff.engine.names import check_name, free_name, new_id
from skiff.engine.network_endpoints import plan as plan_networks
from skiff.engine.network_endpoints import record as record_networks
from skiff.engine.oci_spec import compose_spec
from skiff.engine.state_db import ContainerRow, NameTaken
from skiff.engine.userns_remap import container_maps, maps_doc
from skiff.errors import InvalidArgument, NoSuchNetwork
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from skiff.engine.containers import ContainerService

_log = logger("skiff.engine.containers")


def create(svc: ContainerService, body: dict[str, Any],
           name: str | None = None) -> dict[str, Any]:
    """``POST /containers/create``: ``{"Id", "Warnings"}``. Nothing is left of a create
    that fails."""
    wanted = check_name(name) if name else None
    ref = body.get("Image") if isinstance(body, dict) else None
    image = svc.store.get(ref) if isinstance(ref, str) and ref else None
    image_config = svc._image_config(image.id).get("config") if image else None
    request = parse_create(body, image_config if isinstance(image_config, dict) else None,
                           swap_limit=_swap_limit(), mounts_of=partial(_mounts_of, svc))
    assert image is not None  # parse_create refuses a body without an image
    cid = new_id()
    config = dict(request.config)
    config.setdefault("Hostname", "")
    if not config["Hostname"]:
        config["Hostname"] = cid[:12]
    host = request.host_config
    mode = host["NetworkMode"]
    if mode.startswith("container:"):
        svc._find(mode.partition(":")[2])  # Docker's 404 at create; it must run at start
    try:
        networks = plan_networks(svc.networks, mode, body.get("NetworkingConfig"),
                                 str(config.get("MacAddress") or ""))
    except NoSuchNetwork as e:
        # Docker's words, but not its 404: a client takes a 404 at create for a missing
        # image and pulls (moby itself finds out only at start, leaving the container made)
        raise InvalidArgument(str(e)) from None
    folder = svc.container_dir(cid)
    idmaps = container_maps(svc.remap, host)
    # the whole spec, once, so that what the runtime would refuse is refused now
    compose_spec(cid, config, host, rootfs="/", files=files_in(folder),
                 cgroup_parent=svc.cgroup_parent, devices=list, idmaps=idmaps)
    with _reservation(svc, wanted, cid, image.id) as chosen:
        row = ContainerRow(id=cid, name=chosen, image_id=image.id, created=_now(),
                           doc={"Config": config, "HostConfig": host, "Path": request.path,
                                "Args": list(request.args), "Platform": "linux",
                                **({"IdMaps": maps_doc(idmaps)} if idmaps else {})},
                           state=_created_state())
        with ExitStack() as undo:
            rootfs = svc.snapshots.prepare(cid, svc.store.rootfs_layers(image), idmaps)
            undo.callback(drop_snapshot, svc, cid)
            points = svc.volumes.attach(cid, request.mounts, rootfs)
            undo.callback(svc.volumes.drop_anonymous, points)
            undo.callback(svc.volumes.settle, cid)  # first: its claim goes before them
            row.doc["MountPoints"] = points
            os.makedirs(svc.containers_dir, exist_ok=True)
            os.mkdir(folder, 0o710)
            undo.callback(shutil.rmtree, folder, ignore_errors=True)
            if idmaps is not None:  # as Docker: its root may reach the files bound in
                os.chown(folder, 0, idmaps.host_ids()[1])
            write_files(files_in(folder), config, host,
                        str(svc.networks.bridge_pool.gateway))
            if idmaps is not None:  # root's inside, as Docker chowns them
                bound = files_in(folder)
                for path in (bound.hostname, bound.hosts, bound.resolv_conf):
                    os.chown(path, *idmaps.host_ids())
            if config.get("WorkingDir"):
                made = make_working_dir(rootfs, config["WorkingDir"])
                if idmaps is not None:  # the container's root owns what it did not have
                    os.chown(made, *idmaps.host_ids())
            # the capsules, under their service's lock until the row that uses them is in
            held = svc.capsules.lock if svc.capsules is not None else nullcontext()
            with held:
                capsules = plan_create(svc, row, (body.get("HostConfig") or {}).get("Capsules"))
                try:
                    svc.db.insert(row)
                except NameTaken as e:
                    raise svc._name_conflict(e.name, e.holder) from None
                undo.callback(svc.db.delete, cid)
                undo.callback(svc.networks.db.forget, cid)
                record_networks(svc.networks, cid, chosen, networks)
            undo.pop_all()
            svc.volumes.settle(cid)
        with svc._cond:
            svc._live[cid] = _Live(row.state)
        svc._event(row, "create")
        attached_events(svc, row, capsules)
    _log.debug("container %s (%s) created from %s", cid[:12], chosen, image.id[:19])
    return {"Id": cid, "Warnings": list(request.warnings)}


def _mounts_of(svc: ContainerService, ref: str) -> list[dict[str, Any]]:
    """The mount points of the container `ref` (what --volumes-from takes)."""
    return list(svc._find(ref).doc.get("MountPoints") or [])


@contextmanager
def _reservation(svc: ContainerService, name: str | None, cid: str,
                 image_id: str) -> Iterator[str]:
    """Hold `name` (or a free random one) for the create of `cid` while it runs."""
    with svc._cond:
        if name is None:
            held = svc.db.names()
            name = free_name(lambda n: n in held or n in svc._reserved)
        else:
            row = svc.db.by_name(name)
            holder = svc._reserved.get(name) or (row.id if row is not None else None)
            if holder is not None:
                raise svc._name_conflict(name, holder)
        svc._reserved[name] = cid
        svc._creating[cid] = image_id
    try:
        yield name
    finally:
        with svc._cond:
            svc._reserved.pop(name, None)
            svc._creating.pop(cid, None)


def _created_state() -> dict[str, Any]:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": "", "FinishedAt": "", "MonitorPid": 0, "RestartCount": 0}
