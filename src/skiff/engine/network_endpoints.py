"""Containers in networks: their endpoints from create to removal, over `NetworkService`.

At create, `plan` reads the container's NetworkMode and NetworkingConfig (``--network``,
``--ip``, ``--network-alias``, ``--mac-address``) with Docker's refusals, and `record`
keeps one endpoint row per network it joins. At start `attach_all` gives each endpoint its
address (the requested one, or the lowest free), makes the default bridge if it is not
there yet and wires a veth pair into the container's network namespace (``eth0``,
``eth1``…; the default route via the first non-internal network's gateway); a failure
half-way takes back what was made. When the run ends `detach_all` deletes the veths and
gives the addresses back, keeping what was asked for the next start. `connect` and
`disconnect` do the same for one network, live on a running container. Docker's network
events go with each: ``connect`` and ``disconnect`` (the network's ID, the container's in
``container``), at start and stop as at connect and disconnect.
"""

from __future__ import annotations

import errno
import os

from skiff.engine.network_db import AddressTaken, EndpointRow
from skiff.engine.networks import PREDEFINED, bridge_of, mtu_of, pool_of
from skiff.errors import (
    InvalidArgument,
    KernelError,
    NetworkForbidden,
    NoSuchContainer,
    SkiffError,
)
from skiff.log import logger
from skiff.net import ipam

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.engine.network_db import NetworkRow
    from skiff.engine.networks import NetworkService
    from skiff.engine.state_db import ContainerRow

_log = logger("skiff.engine.networks")
RUNTIME_KEYS = ("EndpointID", "IPAddress", "IPPrefixLen", "Gateway", "MacAddress", "HostIf",
                "IfName", "DefaultRoute", "PublishedPorts")
_ASKED_KEYS = ("IPAMConfig", "Aliases", "MacAddress", "DriverOpts")


def mode_network(mode: str) -> str | None:
    """The network a NetworkMode names (None: ``container:<id>``, which joins another's)."""
    if mode.startswith("container:"):
        return None
    return "bridge" if mode in ("", "default") else mode


# -- create ---------------------------------------------------------------------------------
def plan(net: NetworkService, mode: str, networking: Any,
         mac: str = "") -> list[tuple[NetworkRow, dict[str, Any]]]:
    """The networks a new container joins, each with what was asked of its endpoint."""
    endpoints = (networking or {}).get("EndpointsConfig") or {} \
        if isinstance(networking, dict) else {}
    primary = mode_network(mode)
    if primary is None:
        if endpoints:
            raise InvalidArgument("conflicting options: container type network can't be used "
                                  "with other networks")
        if mac:
            raise InvalidArgument("conflicting options: mac-address and the network mode")
        return []
    first = net.find(primary)
    chosen: list[tuple[NetworkRow, dict[str, Any]]] = [(first, {})]
    for name, settings in endpoints.items():
        row = net.find(mode_network(name) or name)  # the docker CLI's "default" is bridge
        asked = _asked(row, settings)
        if row.id == first.id:
            chosen[0] = (first, asked)
            continue
        if row.name in ("host", "none") or first.name in ("host", "none"):
            raise InvalidArgument(f"conflicting options: the network {row.name} and "
                                  f"NetworkMode {mode}")
        if any(r.id == row.id for r, _ in chosen):
            continue
        chosen.append((row, asked))
    if mac:
        if first.name in ("host", "none"):
            raise InvalidArgument("conflicting options: mac-address and the network mode")
        chosen[0] = (first, {**chosen[0][1], "MacAddress": ipam.check_mac(mac)})
    return chosen


def _asked(row: NetworkRow, settings: Any) -> dict[str, Any]:
    """An EndpointSettings of a create or connect, checked against its network."""
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise InvalidArgument("json: cannot unmarshal into Go value of type "
                              "network.EndpointSettings")
    if settings.get("Links"):
        raise InvalidArgument("links (--link) are not supported by skiff yet")
    asked: dict[str, Any] = {}
    user = row.name not in PREDEFINED
    ipam_config = settings.get("IPAMConfig") or {}
    if not isinstance(ipam_config, dict):
        raise InvalidArgument("json: cannot unmarshal into Go struct field "
                              "EndpointSettings.IPAMConfig of type network.EndpointIPAMConfig")
    address = ipam_config.get("IPv4Address") or ""
    if ipam_config.get("IPv6Address"):
        raise InvalidArgument("IPv6 addresses are not supported by skiff yet")
    if address:
        if not user:
            raise InvalidArgument("user specified IP address is supported on user defined "
                                  "networks only")
        if not row.doc.get("_UserSubnet"):
            raise InvalidArgument("user specified IP address is supported only when "
                                  "connecting to networks with user configured subnets")
        pool = pool_of(row)
        parsed = ipam.parse_address(address, "IPv4 address")
        if pool is None or parsed not in pool.subnet:
            raise InvalidArgument(f"Invalid address {address}: It does not belong to any of "
                                  f"this network's subnets")
        asked["IPAMConfig"] = {"IPv4Address": str(parsed)}
    aliases = settings.get("Aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InvalidArgument("json: cannot unmarshal into Go struct field "
                              "EndpointSettings.Aliases of type []string")
    if aliases:
        if not user:
            raise InvalidArgument("network-scoped alias is supported only for containers in "
                                  "user defined networks")
        asked["Aliases"] = list(dict.fromkeys(aliases))
    if settings.get("MacAddress"):
        asked["MacAddress"] = ipam.check_mac(str(settings["MacAddress"]))
    if settings.get("DriverOpts"):
        asked["DriverOpts"] = dict(settings["DriverOpts"])
    return asked


def record(net: NetworkService, cid: str, name: str,
           chosen: list[tuple[NetworkRow, dict[str, Any]]]) -> None:
    """Keep the planned endpoints of the new container `cid` (called `name`)."""
    for row, asked in chosen:
        net.db.attach(EndpointRow(network_id=row.id, container_id=cid, address=None,
                                  doc={"Asked": asked, "ContainerName": name}))


# -- start and the end of a run -------------------------------------------------------------
def attach_all(net: NetworkService, crow: ContainerRow, netns: str) -> list[EndpointRow]:
    """Wire the container into each of its bridge networks (made or nothing). A network
    its NetworkMode names that was removed meanwhile is Docker's 404 at start."""
    primary = mode_network(crow.doc["HostConfig"]["NetworkMode"])
    if primary is not None and primary not in PREDEFINED:
        net.find(primary)
    made: list[EndpointRow] = []
    try:
        for ep in net.db.endpoints(cid=crow.id):
            row = net.db.get(ep.network_id)
            if row is None or row.doc.get("Driver") != "bridge":
                continue
            made.append(_attach(net, row, ep, crow, netns, made))
    except BaseException:
        for ep in made:
            _detach(net, ep)
        raise
    if made:
        for ep in made:
            _event(net, "connect", ep)
        net.endpoints_changed()
    return made


def _attach(net: NetworkService, row: NetworkRow, ep: EndpointRow, crow: ContainerRow,
            netns: str, siblings: list[EndpointRow]) -> EndpointRow:
    from skiff.net import links

    pool = pool_of(row)
    assert pool is not None
    asked = ep.doc.get("Asked") or {}
    requested = (asked.get("IPAMConfig") or {}).get("IPv4Address") or ""
    bridge = bridge_of(row)
    with net.lock:
        if row.name == "bridge":
            net.bridge_touched = True
        net.ensure_bridge(row, pool)
        for _ in range(8):
            address = ipam.allocate(pool, net.db.taken(row.id), requested)
            doc = _runtime_doc(ep, row, crow, pool, address, siblings)
            try:
                net.db.claim(row.id, crow.id, address, doc)
                break
            except AddressTaken:
                if requested:
                    from skiff.errors import NetworkConflict

                    raise NetworkConflict(f"Address already in use: {requested}") from None
        else:
            raise SkiffError(f"network {row.name}: could not claim an address")
    claimed = EndpointRow(network_id=row.id, container_id=crow.id, address=address, doc=doc)
    wanted = links.Endpoint(
        bridge=bridge, host_ifname=doc["HostIf"], netns=netns, ifname=doc["IfName"],
        mac=doc["MacAddress"], mtu=mtu_of(row), address=address,
        prefixlen=pool.subnet.prefixlen,
        gateway=str(pool.gateway) if doc["DefaultRoute"] else None)
    try:
        try:
            links.add_endpoint(wanted)
        except KernelError as e:
            if e.errno != errno.ENODEV or e.path != bridge:
                raise
            with net.lock:  # its bridge went since it was made (by hand): made again
                net.forget_bridge(bridge)
                net.ensure_bridge(row, pool)
            links.add_endpoint(wanted)
    except BaseException:
        net.db.release(row.id, crow.id, _asked_doc(doc))
        raise
    return claimed


def _runtime_doc(ep: EndpointRow, row: NetworkRow, crow: ContainerRow, pool: ipam.Pool,
                 address: str, siblings: list[EndpointRow]) -> dict[str, Any]:
    asked = ep.doc.get("Asked") or {}
    endpoint_id = os.urandom(32).hex()
    used = {e.doc.get("IfName") for e in siblings}
    index = 0
    while f"eth{index}" in used:
        index += 1
    routed = any(e.doc.get("DefaultRoute") for e in siblings)
    return {**ep.doc, "ContainerName": crow.name, "EndpointID": endpoint_id,
            "IPAddress": address, "IPPrefixLen": pool.subnet.prefixlen,
            "Gateway": str(pool.gateway),
            "MacAddress": asked.get("MacAddress") or ipam.mac_address(address),
            "HostIf": "veth" + endpoint_id[:11], "IfName": f"eth{index}",
            "DefaultRoute": not routed and not row.doc.get("Internal")}


def _asked_doc(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in RUNTIME_KEYS}


def _detach(net: NetworkService, ep: EndpointRow, later: bool = False) -> None:
    """The endpoint's veth goes and its address back to the pool. `later`: the pair is
    taken off its bridge now and deleted on another thread (the end of a run, whose
    namespace is let go as well: deleting a veth waits for an RCU grace period)."""
    from skiff.net import links

    host_if = ep.doc.get("HostIf")
    if host_if:
        try:
            if later:
                if links.unplug(host_if):
                    net.reap(host_if)
            else:
                links.delete_endpoint(host_if)
        except SkiffError as e:  # its namespace's end takes it anyway
            _log.warning("container %s: %s", ep.container_id[:12], e)
    net.db.release(ep.network_id, ep.container_id, _asked_doc(ep.doc))


def detach_all(net: NetworkService, cid: str) -> None:
    """The run of `cid` is over: its veths go and its addresses go back."""
    if net.ports is not None:
        net.ports.unpublish(cid)
    gone = [ep for ep in net.db.endpoints(cid=cid) if ep.address is not None]
    for ep in gone:
        _detach(net, ep, later=True)
        _event(net, "disconnect", ep)
    if gone:
        net.endpoints_changed()


def active(net: NetworkService, cid: str) -> list[EndpointRow]:
    """The container's endpoints with an address (while it runs)."""
    return [ep for ep in net.db.endpoints(cid=cid) if ep.address is not None]


def _event(net: NetworkService, action: str, ep: EndpointRow) -> None:
    row = net.db.get(ep.network_id)
    net.events.emit("network", action, ep.network_id,
                    {"container": ep.container_id, "name": row.name if row else "",
                     "type": str(row.doc.get("Driver")) if row else "bridge"})


def reconcile(net: NetworkService, running: set[str]) -> None:
    """skiffd's start: addresses of containers no longer running go back; the bridges of
    networks in use (and of every user network) are there again."""
    from skiff.net import links

    net.ensure_predefined()
    every = net.db.endpoints()
    for ep in every:
        if ep.address is not None and ep.container_id not in running:
            _detach(net, ep)
    live = {ep.network_id for ep in every if ep.container_id in running and ep.address}
    net.bridge_touched = True  # a skiffd killed before may have left it: looked at at close
    for row in net.db.all():
        if row.doc.get("Driver") != "bridge" or (row.name == "bridge" and row.id not in live):
            continue
        pool = pool_of(row)
        if pool is None:
            continue
        try:
            if links.ensure_bridge(bridge_of(row), str(pool.gateway), pool.subnet.prefixlen,
                                   mtu_of(row)):
                for ep in every:  # a bridge made again: the veths left go back on it
                    if ep.network_id == row.id and ep.container_id in running:
                        links.attach_to_bridge(str(ep.doc.get("HostIf")), bridge_of(row))
        except SkiffError as e:
            _log.warning("network %s: %s", row.name, e)


# -- connect and disconnect -----------------------------------------------------------------
def _request(net: NetworkService, ref: str, body: Any, other: str) -> tuple[Any, NetworkRow]:
    """A connect or disconnect body checked (NetworkConnect/NetworkDisconnect: the
    container, and `other`), with the container service and the network it names."""
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str):
        raise InvalidArgument("invalid JSON in the request body: expected "
                              f'{{"Container": …, "{other}": …}}')
    return _containers(net), net.find(ref)


def connect(net: NetworkService, ref: str, body: Any) -> None:
    svc, row = _request(net, ref, body, "EndpointConfig")
    crow = svc._find(body["Container"])
    if row.name in ("host", "none"):
        raise NetworkForbidden(f"container cannot be disconnected from host network or "
                               f"connected to {row.name} network")
    mode = crow.doc["HostConfig"]["NetworkMode"]
    if mode_network(mode) in ("host", "none") or mode.startswith("container:"):
        raise NetworkForbidden("container sharing network namespace with another container "
                               "or host cannot be connected to any other network")
    asked = _asked(row, body.get("EndpointConfig"))
    live = svc._live_of(crow.id)
    with live.lock:
        crow = svc._row(crow.id)
        if not net.db.attach(EndpointRow(network_id=row.id, container_id=crow.id, address=None,
                                         doc={"Asked": asked, "ContainerName": crow.name})):
            raise NetworkForbidden(f"endpoint with name {crow.name} already exists in network "
                                   f"{row.name}")
        if svc._running(crow):
            if not os.path.exists(svc.netns_path(crow.id)):
                net.db.detach(row.id, crow.id)
                raise NetworkForbidden(f"container {crow.id[:12]} runs in a network namespace "
                                       f"skiffd does not keep (its run began before skiffd "
                                       f"wired the namespaces of remapped containers): "
                                       f"restart it to connect it")
            ep = next(e for e in net.db.endpoints(nid=row.id, cid=crow.id))
            try:
                made = _attach(net, row, ep, crow, svc.netns_path(crow.id), active(net, crow.id))
            except BaseException:
                net.db.detach(row.id, crow.id)
                raise
            _event(net, "connect", made)
            net.endpoints_changed()
            _rewrite_files(svc, crow)
            net.dns.refresh(crow, quiet=True)


def disconnect(net: NetworkService, ref: str, body: Any) -> None:
    svc, row = _request(net, ref, body, "Force")
    try:
        crow = svc._find(body["Container"])
    except NoSuchContainer:
        if not body.get("Force"):
            raise
        gone = [e for e in net.db.endpoints(nid=row.id)
                if e.container_id.startswith(body["Container"]) or
                e.doc.get("ContainerName") == body["Container"]]
        for ep in gone:  # Docker's force: the endpoint of a container that is no more
            _detach(net, ep)
            net.db.detach(row.id, ep.container_id)
        if not gone:
            raise
        return
    if row.name in ("host", "none"):
        raise NetworkForbidden(f"container cannot be disconnected from {row.name} network")
    live = svc._live_of(crow.id)
    with live.lock:
        found = net.db.endpoints(nid=row.id, cid=crow.id)
        if not found:
            raise NetworkForbidden(f"container {crow.id} is not connected to network "
                                   f"{row.name}")
        ep = found[0]
        if ep.address is not None:
            _detach(net, ep)
        net.db.detach(row.id, crow.id)
        if ep.address is not None:
            if ep.doc.get("DefaultRoute"):
                _route_again(net, svc.netns_path(crow.id), crow.id)
                if net.ports is not None:
                    net.ports.gateway_gone(svc._row(crow.id), ep)
            _event(net, "disconnect", ep)
            net.endpoints_changed()
            _rewrite_files(svc, svc._row(crow.id))
            net.dns.refresh(crow, quiet=True)


def _route_again(net: NetworkService, netns: str, cid: str) -> None:
    """The network that gave the container its default route is gone: the next one that
    can (not internal) gives it, as libnetwork picks a new gateway endpoint."""
    from skiff.net import links

    for ep in active(net, cid):
        row = net.db.get(ep.network_id)
        if row is None or row.doc.get("Internal") or not ep.doc.get("Gateway"):
            continue
        try:
            links.add_default_route(netns, str(ep.doc["IfName"]), str(ep.doc["Gateway"]))
        except SkiffError as e:
            _log.warning("container %s: %s", cid[:12], e)
            return
        net.db.set_endpoint_doc(ep.network_id, cid, {**ep.doc, "DefaultRoute": True})
        return


def _containers(net: NetworkService) -> Any:
    if net.containers is None:
        raise SkiffError("the network service has no container service")
    return net.containers


def _rewrite_files(svc: Any, crow: ContainerRow) -> None:
    """/etc/hosts again, with the container's addresses as they are now."""
    from skiff.engine.container_files import files_in, write_network_files

    try:
        write_network_files(files_in(svc.container_dir(crow.id)), crow.doc["Config"],
                            crow.doc["HostConfig"], facts(svc.networks, crow))
    except OSError as e:
        _log.warning("container %s: rewrite its /etc/hosts: %s", crow.id[:12], e)


# -- what the container's files and inspect show --------------------------------------------
class NetworkFacts:
    """What a container's /etc/hosts and /etc/resolv.conf need of its networks."""

    __slots__ = ("addresses", "internal_dns", "host_gateway")

    def __init__(self, addresses: list[str], internal_dns: bool, host_gateway: str) -> None:
        self.addresses = addresses
        self.internal_dns = internal_dns  # on a user network: the embedded DNS server
        self.host_gateway = host_gateway  # what --add-host host-gateway means


def facts(net: NetworkService, crow: ContainerRow) -> NetworkFacts:
    eps = active(net, crow.id)
    rows = {ep.network_id: net.db.get(ep.network_id) for ep in eps}
    user = any(r is not None and r.name not in PREDEFINED for r in rows.values())
    gateway = next((str(ep.doc.get("Gateway")) for ep in eps if ep.doc.get("Gateway")), "")
    if not gateway:
        gateway = str(net.bridge_pool.gateway)
    return NetworkFacts([str(ep.address) for ep in eps], user, gateway)


def networks_of(net: NetworkService, cid: str) -> set[str]:
    """The names and IDs of the networks the container is attached to (``ps -f network``)."""
    out: set[str] = set()
    for ep in net.db.endpoints(cid=cid):
        row = net.db.get(ep.network_id)
        if row is not None:
            out |= {row.name, row.id}
    return out


def endpoint_settings(net: NetworkService, crow: ContainerRow) -> dict[str, dict[str, Any]]:
    """NetworkSettings.Networks: Docker's EndpointSettings for each network joined."""
    out: dict[str, dict[str, Any]] = {}
    short = crow.id[:12]
    for ep in net.db.endpoints(cid=crow.id):
        row = net.db.get(ep.network_id)
        if row is None:
            continue
        d, asked = ep.doc, ep.doc.get("Asked") or {}
        user = row.name not in PREDEFINED
        aliases = list(asked.get("Aliases") or [])
        running = ep.address is not None
        if user and running:
            aliases = [*aliases, short] if short not in aliases else aliases
        hostname = crow.doc["Config"].get("Hostname") or ""
        names = [crow.name, *(asked.get("Aliases") or []), short,
                 *([hostname] if hostname and hostname != short else [])] if user else None
        out[row.name] = {
            "IPAMConfig": asked.get("IPAMConfig"), "Links": None,
            "Aliases": aliases or None, "MacAddress": d.get("MacAddress", "") if running
            else asked.get("MacAddress", ""),
            "DriverOpts": asked.get("DriverOpts"), "NetworkID": row.id,
            "EndpointID": d.get("EndpointID", "") if running else "",
            "Gateway": d.get("Gateway", "") if running else "",
            "IPAddress": ep.address or "",
            "IPPrefixLen": int(d.get("IPPrefixLen", 0)) if running else 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": names}
    return out
