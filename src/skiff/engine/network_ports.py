"""Published ports and the firewall of one engine: `net.publish` and `net.firewall` wired to
the containers' runs.

`NetworkPorts` is the network service's (``NetworkService.ports``). At a container's start,
once its endpoints exist, `publish` holds and proxies what its HostConfig publishes
(``PortBindings``, and with ``PublishAllPorts`` every exposed port, the image's EXPOSE
included) on the address of the endpoint that gives the default route — libnetwork's
gateway endpoint; a container only on internal networks has none, and so publishes
nothing — and records what each binding got in that endpoint's row (``PublishedPorts``),
which is what inspect, the list and ``port`` show and what a restarted skiffd holds
again. All or nothing: a port that cannot be had fails the start with Docker's words
(``driver failed programming external connectivity on endpoint …``), and the start's
failure path takes back the endpoints and the namespace. `unpublish` frees them when the
run ends.

`sync` renders the one nftables table of this skiffd (`firewall.table_for_run`) from the
bridges in use and the held ports and applies it whole, or removes it when no bridge and
no port is left; the network service calls it whenever an endpoint or a network comes or
goes. A table that would come out as the one applied last is not applied again, so that a
run on a bridge that is there already costs no ``nft`` batch at all, and one with published
ports one at its start (rules added to the table in force, `firewall.append_ports`: no
deletion, so no wait for the kernel's grace period) and one at its end. Live restore: the table outlives skiffd (its
DNAT keeps the ports of running containers answering while skiffd is away) and nothing is
applied until `restore`, at skiffd's start, has held the running containers' ports again
— otherwise the first run to end after a restart would apply a table without them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict

from skiff.engine.networks import PREDEFINED, bridge_of, pool_of
from skiff.errors import PortAllocated, SkiffError
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.engine.network_db import EndpointRow
    from skiff.engine.networks import NetworkService
    from skiff.engine.state_db import ContainerRow
    from skiff.net.firewall import BridgeRule, PortRule
    from skiff.net.ports import PortBinding, Published
    from skiff.net.publish import PortPublisher

_log = logger("skiff.engine.networks")
PUBLISHED_KEY = "PublishedPorts"  # in the gateway endpoint's row, while the container runs
MASQUERADE_OPTION = "com.docker.network.bridge.enable_ip_masquerade"
HOST_MODE_WARNING = "Published ports are discarded when using host network mode"


class NetworkPorts:
    """The published ports and the firewall table `table` of the engine whose networks
    `net` holds."""

    def __init__(self, net: NetworkService, table: str) -> None:
        self.net = net
        self.table = table
        self.warnings: list[str] = []  # for ``info``: another engine's forward DROP
        self._publisher: PortPublisher | None = None
        self._applied: str | None = None  # the batch in force ("" removed; None unknown)
        self._state: tuple[list[BridgeRule], list[PortRule]] | None = None  # what it holds
        self._restored = False
        self._lock = threading.Lock()

    @property
    def publisher(self) -> PortPublisher:
        if self._publisher is None:  # its proxy's thread only once a port is published
            from skiff.net.publish import PortPublisher

            with self._lock:
                if self._publisher is None:
                    self._publisher = PortPublisher()
        return self._publisher

    # -- a run's ports ------------------------------------------------------------------------
    def publish(self, crow: ContainerRow, made: list[EndpointRow],
                bindings: list[PortBinding] | None = None) -> list[Published]:
        """Publish the ports of `crow` (or `bindings`), whose endpoints `made` were just wired
        (nothing when it publishes none or has no gateway endpoint); PortAllocated with
        nothing held."""
        from skiff.net.ports import effective_bindings

        host = crow.doc["HostConfig"]
        if bindings is None:
            bindings = effective_bindings(crow.doc["Config"].get("ExposedPorts"),
                                          host.get("PortBindings"),
                                          bool(host.get("PublishAllPorts")))
        gateway = next((ep for ep in made if ep.doc.get("DefaultRoute")), None)
        if not bindings or gateway is None or gateway.address is None:
            return []
        row = self.net.db.get(gateway.network_id)
        if row is None:
            return []
        began = time.perf_counter()
        try:
            got = self.publisher.publish(crow.id, bindings, gateway.address, bridge_of(row))
        except PortAllocated as e:
            raise PortAllocated(f"driver failed programming external connectivity on endpoint "
                                f"{crow.name} ({gateway.doc.get('EndpointID', '')}): {e}") from None
        try:
            self.net.db.set_endpoint_doc(gateway.network_id, crow.id,
                                         {**gateway.doc, PUBLISHED_KEY: [asdict(p) for p in got]})
            held = time.perf_counter()
            self.sync(strict=True)
        except BaseException:
            self.publisher.unpublish(crow.id)
            raise
        _log.debug("container %s: %d port(s) held in %.1f ms, table in %.1f ms", crow.id[:12],
                   len(got), (held - began) * 1e3, (time.perf_counter() - held) * 1e3)
        return got

    def gateway_gone(self, crow: ContainerRow, gone: EndpointRow) -> None:
        """`gone`, the endpoint `crow`'s ports were published on, was disconnected: they move,
        with the host ports they had, to the endpoint that gives the default route now (as
        libnetwork's new gateway endpoint), or go when there is none."""
        held = gone.doc.get(PUBLISHED_KEY)
        if not held:
            return
        self.unpublish(crow.id)
        from skiff.engine.network_endpoints import active

        try:
            self.publish(crow, active(self.net, crow.id), _bindings(held))
        except SkiffError as e:
            _log.warning("container %s: its published ports: %s", crow.id[:12], e)
            self.sync()

    def run_ended(self, cid: str) -> None:
        """The run of `cid` is over: its ports freed and the table without them, before
        its end is told (so a ``stop`` returns with them free); its endpoints go later."""
        if self._publisher is not None and self._publisher.published(cid):
            began = time.perf_counter()
            self._publisher.unpublish(cid)
            freed = time.perf_counter()
            self.sync()
            _log.debug("container %s: ports freed in %.1f ms, table in %.1f ms", cid[:12],
                       (freed - began) * 1e3, (time.perf_counter() - freed) * 1e3)

    def unpublish(self, cid: str) -> None:
        """Free the ports of `cid` (its run is over); the caller syncs the table after."""
        if self._publisher is not None:
            self._publisher.unpublish(cid)

    # -- the table ----------------------------------------------------------------------------
    def _bridges(self) -> list[BridgeRule]:
        """Every user network's bridge (made with the network, gone with it) and the default
        bridge while this engine has it up or a container runs on it — after a restart too,
        before any start has looked at it (the running containers' DNAT rules need it), and
        with each network's masquerade option."""
        from skiff.net.firewall import BridgeRule

        live = {ep.network_id for ep in self.net.db.endpoints() if ep.address is not None}
        out = []
        for row in self.net.db.all():
            pool = pool_of(row)
            if pool is None:
                continue
            name = bridge_of(row)
            if row.name in PREDEFINED and row.id not in live and \
                    not self.net.has_bridge(name):
                continue
            options = row.doc.get("Options") or {}
            out.append(BridgeRule(name, str(pool.subnet), bool(row.doc.get("Internal")),
                                  options.get(MASQUERADE_OPTION, "true") != "false"))
        return out

    def sync(self, strict: bool = False) -> None:
        """Apply the table for the bridges and ports there are now (or remove it when there
        are none). A refusal raises with `strict` (a start), else is logged."""
        if not self._restored:
            return
        from skiff.net import firewall

        with self._lock:
            try:
                bridges = self._bridges()
                rules = self._publisher.rules() if self._publisher is not None else []
                if not bridges and not rules:
                    if self._applied != "":
                        firewall.remove(self.table)
                        self._applied, self._state = "", None
                    return
                batch = firewall.render(self.table, bridges, rules)
                if batch == self._applied:
                    return
                first = self._applied is None or self._applied == ""
                before = self._state
                if first or before is None or before[0] != bridges or \
                        not firewall.append_ports(self.table, bridges, before[1], rules):
                    firewall.apply(self.table, bridges, rules)
                self._applied, self._state = batch, (bridges, rules)
            except SkiffError as e:
                if strict:
                    raise
                _log.warning("firewall table %s: %s", self.table, e)
                return
        if first:
            self._look_for_foreign_drops()

    def _look_for_foreign_drops(self) -> None:
        from skiff.net import firewall

        try:
            drops = firewall.foreign_forward_drops(self.table)
        except SkiffError as e:
            _log.warning("listing the host's forward chains: %s", e)
            return
        self.warnings = [
            f"WARNING: the forward chain {chain} drops by default: traffic of skiff's "
            f"bridges is dropped there unless accepted (e.g. with Docker's: iptables -I "
            f"DOCKER-USER -i <bridge> -j ACCEPT, and the same with -o <bridge>)"
            for chain in drops]
        for text in self.warnings:
            _log.warning("%s", text)

    # -- skiffd's start and stop --------------------------------------------------------------
    def restore(self, running: set[str]) -> None:
        """skiffd's start: the running containers' ports held and proxied again (the same
        host ports), then the table applied for what there is."""
        for ep in self.net.db.endpoints():
            held = ep.doc.get(PUBLISHED_KEY)
            if not held or ep.address is None or ep.container_id not in running:
                continue
            row = self.net.db.get(ep.network_id)
            if row is None:
                continue
            try:
                self.publisher.publish(ep.container_id, _bindings(held), ep.address,
                                       bridge_of(row))
            except SkiffError as e:
                _log.warning("container %s: its published ports: %s", ep.container_id[:12], e)
        self._restored = True
        self.sync()

    def close(self) -> None:
        """skiffd's stop: the table as it should stay (the running containers' DNAT
        included: they go on, and their ports with them), then the ports let go."""
        self.sync()
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None


def _bindings(held: list[dict[str, Any]]) -> list[PortBinding]:
    """What a container's recorded ports were, as bindings of the very same host ports."""
    from skiff.net.ports import PortBinding

    return [PortBinding(str(p["proto"]), int(p["container_port"]), str(p["host_ip"]),
                        str(p["host_port"])) for p in held]


# -- what inspect, the list and `port` show -------------------------------------------------
def published_of(net: NetworkService, cid: str) -> list[Published]:
    from skiff.net.ports import Published

    for ep in net.db.endpoints(cid=cid):
        if ep.address is not None and ep.doc.get(PUBLISHED_KEY):
            return [Published(str(p["proto"]), int(p["container_port"]), str(p["host_ip"]),
                              int(p["host_port"])) for p in ep.doc[PUBLISHED_KEY]]
    return []


def published_ports(net: NetworkService, cid: str) -> set[str]:
    """The host ports `cid` publishes now, as ``8080/tcp`` (the list's publish filter)."""
    return {f"{p.host_port}/{p.proto}" for p in published_of(net, cid)}


def _ipv6(net: NetworkService) -> bool:
    ports = net.ports
    return bool(ports is not None and ports._publisher is not None
                and ports._publisher.allocator.ipv6)


def network_ports_of(net: NetworkService, crow: ContainerRow) -> dict[str, Any]:
    """NetworkSettings.Ports: while it runs, every exposed port (null when not published)
    with its host bindings; ``{}`` otherwise, as Docker's."""
    from skiff.net.ports import network_ports

    if not crow.state.get("Running"):
        return {}
    return network_ports(crow.doc["Config"].get("ExposedPorts"), published_of(net, crow.id),
                         ipv6=_ipv6(net))


def port_list(ports: dict[str, Any]) -> list[dict[str, Any]]:
    """ContainerSummary.Ports from NetworkSettings.Ports: Docker's list shape."""
    from skiff.net.ports import split_proto_port

    out: list[dict[str, Any]] = []
    for key, bindings in ports.items():
        proto, port = split_proto_port(key)
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto})
            continue
        for b in bindings:
            out.append({"IP": b["HostIp"], "PrivatePort": int(port),
                        "PublicPort": int(b["HostPort"]), "Type": proto})
    return out


# -- a create's checks ----------------------------------------------------------------------
def check_ports(config: dict[str, Any], host: dict[str, Any], warnings: list[str]) -> None:
    """Config.ExposedPorts and HostConfig.PortBindings of a create, as moby checks them:
    well formed (400 otherwise), none with ``container:<id>`` (which has no network of its
    own), discarded with a warning on the host's network."""
    from skiff.errors import InvalidArgument
    from skiff.net.ports import bindings_from_json, exposed_from_json

    exposed, bindings = config.get("ExposedPorts"), host.get("PortBindings")
    exposed_from_json(exposed)
    bindings_from_json(bindings)
    mode = str(host.get("NetworkMode") or "")
    if mode.startswith("container:"):  # moby's order: publishing, then exposing
        if bindings or host.get("PublishAllPorts"):
            raise InvalidArgument("conflicting options: port publishing and the container type "
                                  "network mode")
        if exposed:
            raise InvalidArgument("conflicting options: port exposing and the container type "
                                  "network mode")
    if mode == "host" and (bindings or host.get("PublishAllPorts")):
        warnings.append(HOST_MODE_WARNING)
