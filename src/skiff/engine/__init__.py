"""The engine: Docker's object model over skiff's store, registry client and runtime.

`Engine(root, run, options)` is what skiffd holds. It is synchronous and knows no HTTP:
the API layer calls it from worker threads. Its parts are services, one per kind of Docker
object — `images` (ImageService), `containers` (ContainerService), `execs` (ExecService),
`volumes` (VolumeService, which the container service holds: a container's mounts use it at
create, start, exit and removal), `capsules` (CapsuleService: skiff's versioned, read-only
bundles of files), `networks` (NetworkService, also the container service's: a container's endpoints come
and go with its runs) and `system` (version, info, login). The
container service fills the hooks the image, system and capsule services leave for it
(`images.in_use`, `system.containers`, `capsules.users` and `capsules.detach`) and is given
the capsule service for attach, detach and ``run --capsule``. `start` makes sure the built-in ``busybox:latest``
is in the store, so that a machine with no registry still has an image, and reconciles the
containers with what really runs (they outlive skiffd). The engine's own small state (its
ID, tag times) lives in ``<root>/engine/``, the containers' in ``<root>/skiff.db``.
"""

from __future__ import annotations

import os

from skiff.log import logger
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_log = logger("skiff.engine")
BUILTIN_IMAGE = "busybox:latest"


class EngineOptions(Record):
    """Daemon settings the engine needs: ``--insecure-registry`` entries (host[:port] or
    CIDR), the certs.d folder, whether to provide the built-in busybox, debug mode, and the
    cgroup every container's cgroup goes below (dockerd's ``--cgroup-parent``)."""

    insecure_registries: tuple[str, ...] = ()
    certs_dir: str = "/etc/docker/certs.d"
    builtin_busybox: bool = True
    debug: bool = False
    cgroup_parent: str = "/skiff"
    userns_remap: str = ""  # dockerd's --userns-remap: "", default, user[:group]
    bridge_name: str = ""  # dockerd's --bridge: the default bridge's Linux name (skiff0)
    bridge_subnet: str = ""  # dockerd's --bip, as a subnet: the default bridge's (172.29/16)
    dns_upstreams: tuple[str, ...] = ()  # where the embedded DNS forwards (): the host's


class Engine:
    def __init__(self, root: str | os.PathLike[str], run: str | os.PathLike[str],
                 options: EngineOptions | None = None) -> None:
        from skiff.engine.capsules import CapsuleService
        from skiff.engine.containers import ContainerService
        from skiff.engine.events import EventLog
        from skiff.engine.exec import ExecService
        from skiff.engine.images import ImageService
        from skiff.engine.system import SystemService
        from skiff.store.images import ImageStore

        self.root = os.path.abspath(os.fspath(root))
        self.run = os.path.abspath(os.fspath(run))
        self.options = options or EngineOptions()
        remap = None
        if self.options.userns_remap:  # first: a refusal must leave nothing made
            from skiff.engine.userns_remap import check_reachable, setup_remap

            remap = setup_remap(self.options.userns_remap)
            check_reachable(self.root, remap)
        self.state_dir = os.path.join(self.root, "engine")
        self.scratch_dir = os.path.join(self.state_dir, "tmp")  # spooled uploads, unlinked
        self.store = ImageStore(self.root)
        self.events = EventLog()  # one for every service, as dockerd has one
        self.images = ImageService(self.store, self.state_dir, self.registry_options)
        self.images.events = self.events
        self.system = SystemService(self)
        self.containers = ContainerService(self.store, self.root, self.run,
                                           cgroup_parent=self.options.cgroup_parent,
                                           events=self.events, remap=remap,
                                           bridge_name=self.options.bridge_name,
                                           bridge_subnet=self.options.bridge_subnet)
        self.volumes = self.containers.volumes
        self.networks = self.containers.networks  # a container's endpoints come at its start
        if self.options.dns_upstreams:
            from skiff.engine.network_dns import parse_upstreams

            self.networks.dns.upstreams = parse_upstreams(self.options.dns_upstreams)
        if remap is not None:
            self.volumes.owner = remap.maps.host_ids()
        self.execs = ExecService(self.containers)
        self.capsules = CapsuleService(self.root, self.events)
        self.capsules.registry_options = self.registry_options
        self.containers.capsules = self.capsules  # attach, detach, run --capsule
        self.capsules.users = self.containers.capsule_users
        self.capsules.detach = self.containers.detach_capsule_from
        self.images.in_use = self.containers.image_users
        self.system.containers = self.containers.counts
        self._id: str | None = None

    def __repr__(self) -> str:
        return f"Engine(root={self.root!r}, run={self.run!r})"

    def start(self) -> None:
        """Make the folders and the built-in image, and reconcile the containers. A host
        without a static busybox gets a warning, not a failure: everything but that image
        still works."""
        os.makedirs(self.scratch_dir, exist_ok=True)
        os.makedirs(self.run, exist_ok=True)
        if self.options.builtin_busybox and not self.store.exists(BUILTIN_IMAGE):
            from skiff.errors import StoreError
            from skiff.store.builtin import ensure_busybox

            try:
                ensure_busybox(self.store, BUILTIN_IMAGE)
            except StoreError as e:
                _log.warning("no built-in %s: %s", BUILTIN_IMAGE, e)
        self.capsules.store.sweep()
        from skiff.net import links

        links.warm()  # pyroute2's import, off the first start's path
        self.containers.reconcile()
        running = {row.id for row in self.containers.db.all() if row.state.get("Running")}
        self.networks.reconcile(running)
        if self.networks.ports is not None:
            self.networks.ports.restore(running)  # their ports held again, the table applied

    def close(self) -> None:
        """Let go of the engine's resources (the containers and execs go on running)."""
        self.execs.close()
        self.containers.close()

    @property
    def id(self) -> str:
        """The engine's ID (Docker's engine-id): made once per root, kept in the root."""
        if self._id is None:
            path = os.path.join(self.state_dir, "engine-id")
            try:
                with open(path) as f:
                    self._id = f.read().strip()
            except FileNotFoundError:
                import uuid

                from skiff.store.durable import write_atomic

                os.makedirs(self.state_dir, exist_ok=True)
                self._id = str(uuid.uuid4())
                write_atomic(path, self._id + "\n")
        return self._id

    def registry_options(self) -> Any:
        """The registry client's settings from the daemon's (imported only when needed)."""
        from skiff.registry.options import RegistryOptions

        return RegistryOptions(insecure=tuple(self.options.insecure_registries),
                               certs_dir=self.options.certs_dir)
