"""The network half of the engine: Docker's bridge networks over `net.links` and `net.ipam`.

`NetworkService` answers the network endpoints — create (driver ``bridge`` only, one IPv4
pool from ``IPAM.Config`` or from Docker's default pools, ``Internal``, ``Attachable``,
``Labels``, ``Options`` with the bridge's name and MTU), inspect (Docker's NetworkResource,
with the running containers' endpoints), list with Docker's filters, remove (403 for the
pre-defined networks and for one with active endpoints, as moby's errdefs.Forbidden),
prune, connect and disconnect — and serves the container service at each step of a
container's life through `network_endpoints` (the endpoints made at start, removed when the
run ends). Networks and endpoints are rows of the state database (`network_db`).

The pre-defined networks are always there: ``host``, ``none`` and ``bridge``, the default
bridge, whose Linux bridge is ``skiff0`` with the subnet of skiffd's ``--bip`` setting.
Its default, 172.29.0.0/16, is chosen to stay out of the way of the engines a host may
also run: Docker's docker0 takes 172.17.0.0/16 and its user networks the next /16s upwards
from there, podman's default network is 10.88.0.0/16; 172.29 is the last but two of
Docker's local pools, reached only on a host with a dozen Docker networks. Bridges of user
networks are made with the network (Docker's ``br-<id>`` name unless the option names
one) and removed with it; the default bridge is made when the first container joins it
and removed when skiffd stops with no container running on it. A restarted skiffd makes
again the bridges of networks that lost theirs (a host reboot) and gives back the addresses
of containers that stopped while it was away.

Seams for the firewall and the DNS server: `endpoints_changed` is called after any endpoint
is added or removed; `resolve` and `reverse` answer what a name means (and what an address
is called) to a given container, on the networks it shares with others.
"""

from __future__ import annotations

import os
import re
import threading
import time

from skiff.engine.filters import Filters, until_timestamp
from skiff.engine.network_db import NetworkDB, NetworkRow
from skiff.engine.times import parse_time, rfc3339_nano
from skiff.errors import (
    InvalidArgument,
    NetworkConflict,
    NetworkForbidden,
    NoSuchNetwork,
    SkiffError,
)
from skiff.log import logger
from skiff.net import ipam

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable
    from typing import Any

    from skiff.engine.containers import ContainerService
    from skiff.engine.events import EventLog
    from skiff.engine.network_db import EndpointRow
    from skiff.engine.network_ports import NetworkPorts
    from skiff.engine.state_db import StateDB

_log = logger("skiff.engine.networks")
DEFAULT_BRIDGE = "skiff0"
DEFAULT_SUBNET = "172.29.0.0/16"
PREDEFINED = ("bridge", "host", "none")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
MTU_OPTION = "com.docker.network.driver.mtu"
DEFAULT_MTU = 1500
LIST_FILTERS = ("driver", "id", "label", "name", "scope", "type", "dangling")
PRUNE_FILTERS = ("until", "label", "label!")
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def _is_hex(text: str) -> bool:
    return bool(text) and not set(text) - set("0123456789abcdef")


class NetworkService:
    """Docker's network operations, with the networks in `db` (the engine's state
    database). `bridge_name` and `bridge_subnet` are the default bridge's (skiffd's
    ``--bridge`` and ``--bip``); `containers` is the container service (the engine sets it)."""

    def __init__(self, db: StateDB, events: EventLog | None = None, *,
                 bridge_name: str = DEFAULT_BRIDGE, bridge_subnet: str = DEFAULT_SUBNET,
                 routes: Callable[[], builtins.list[ipam.IPv4Network]] = ipam.host_routes) -> None:
        from skiff.engine.events import EventLog

        self.db = NetworkDB(db)
        self.events = events or EventLog()
        self.bridge_name = bridge_name
        self.bridge_pool = ipam.parse_pool(bridge_subnet)
        self.routes = routes
        self.containers: ContainerService | None = None
        self.ports: NetworkPorts | None = None  # published ports and the firewall (the engine's)
        self.lock = threading.RLock()  # a create's checks and insert, an allocation
        self._ready = False
        # the default bridge may be there: made or used by this engine, or by one before it
        # at this root (started: `reconcile`), so that its stop looks at it
        self.bridge_touched = False
        self._bridges: set[str] = set()  # bridges this engine made or found, at their attach
        self._reaping: set[threading.Thread] = set()  # veths being deleted after their run
        from skiff.engine.network_dns import EmbeddedDns

        self.dns = EmbeddedDns(self)  # its server is made at the first container it serves

    # -- the pre-defined networks -----------------------------------------------------------
    def ensure_predefined(self) -> None:
        """``bridge``, ``host`` and ``none``, stored once per root (each with an ID of its
        own, as dockerd's); the default bridge follows skiffd's settings."""
        if self._ready:
            return
        with self.lock:
            have = {row.name: row for row in self.db.all()}
            for name in PREDEFINED:
                row = have.get(name)
                doc = self._predefined_doc(name)
                if row is None:
                    nid = os.urandom(32).hex()
                    self.db.insert(NetworkRow(id=nid, name=name, created=_now(),
                                              doc={**doc, "Id": nid}))
                elif name == "bridge" and (row.doc.get("IPAM"), row.doc.get("Options")) != \
                        (doc["IPAM"], doc["Options"]):
                    if any(e.address for e in self.db.endpoints(nid=row.id)):
                        _log.warning("the default bridge's settings changed while containers "
                                     "run on it: kept as they were until they stop")
                    else:
                        self.db.set_doc(row.id, {**row.doc, "IPAM": doc["IPAM"],
                                                 "Options": doc["Options"]})
            self._ready = True

    def _predefined_doc(self, name: str) -> dict[str, Any]:
        if name == "bridge":
            pool = self.bridge_pool
            options = {"com.docker.network.bridge.default_bridge": "true",
                       "com.docker.network.bridge.enable_icc": "true",
                       "com.docker.network.bridge.enable_ip_masquerade": "true",
                       "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                       BRIDGE_NAME_OPTION: self.bridge_name,
                       MTU_OPTION: str(DEFAULT_MTU)}
            return _resource(name, "bridge", [pool.ipam_config()], options=options)
        return _resource(name, "host" if name == "host" else "null", [])

    # -- finding ----------------------------------------------------------------------------
    def find(self, ref: str) -> NetworkRow:
        """The network `ref` names — its full ID, its name, or a unique ID prefix, in the
        order moby's FindNetwork tries them; Docker's 404 otherwise."""
        self.ensure_predefined()
        if not isinstance(ref, str) or not ref:
            raise NoSuchNetwork(str(ref))
        rows = self.db.all()
        for row in rows:
            if row.id == ref:
                return row
        for row in rows:
            if row.name == ref:
                return row
        if _is_hex(ref):
            found = [row for row in rows if row.id.startswith(ref)]
            if len(found) > 1:
                raise InvalidArgument(f"network {ref} is ambiguous ({len(found)} matches found "
                                      f"based on ID prefix)")
            if found:
                return found[0]
        raise NoSuchNetwork(ref)

    def all(self) -> builtins.list[NetworkRow]:
        self.ensure_predefined()
        return self.db.all()

    # -- the endpoints ----------------------------------------------------------------------
    def create(self, body: Any) -> dict[str, Any]:
        """``POST /networks/create``: Docker's NetworkCreateResponse."""
        spec = _create_spec(body)
        name = spec["Name"]
        with self.lock:
            self.ensure_predefined()
            rows = self.db.all()
            if name in PREDEFINED:
                raise NetworkForbidden(f"operation is not permitted on predefined {name} network")
            if any(row.name == name for row in rows):
                raise NetworkConflict(f"network with name {name} already exists")
            subnets = [ipam.IPv4Network(c["Subnet"]) for row in rows
                       for c in (row.doc.get("IPAM") or {}).get("Config") or []]
            if spec["Config"]:
                wanted = spec["Config"][0]
                pool = ipam.parse_pool(wanted.get("Subnet", ""), wanted.get("Gateway", ""),
                                       wanted.get("IPRange", ""))
                ipam.check_overlap(pool.subnet, subnets)
            else:
                pool = ipam.parse_pool(str(ipam.default_subnet(subnets, self.routes())))
            nid = os.urandom(32).hex()
            options = dict(spec["Options"])
            bridge = options.get(BRIDGE_NAME_OPTION) or f"br-{nid[:12]}"
            _check_bridge_name(bridge)
            if any(bridge_of(row) == bridge for row in rows):
                raise NetworkConflict(f"bridge name {bridge} is already in use by another "
                                      f"network")
            mtu = _mtu(options)
            doc = _resource(name, "bridge", [pool.ipam_config()], options=options,
                            internal=spec["Internal"], attachable=spec["Attachable"],
                            labels=spec["Labels"], ipam_options=spec["IPAMOptions"])
            doc["Id"] = nid
            doc["_UserSubnet"] = bool(spec["Config"])  # --ip is for user-given subnets only
            from skiff.net import links

            made = links.ensure_bridge(bridge, str(pool.gateway), pool.subnet.prefixlen, mtu)
            try:
                if not self.db.insert(NetworkRow(id=nid, name=name, created=doc["Created"],
                                                 doc=doc)):
                    raise NetworkConflict(f"network with name {name} already exists")
            except BaseException:
                if made:
                    links.delete_bridge(bridge)
                raise
            self._bridges.add(bridge)
        self.endpoints_changed()
        self.events.emit("network", "create", nid, {"name": name, "type": "bridge"})
        return {"Id": nid, "Warning": ""}

    def inspect(self, ref: str, scope: str = "") -> dict[str, Any]:
        """``GET /networks/{id}``: Docker's NetworkResource with its Containers."""
        row = self.find(ref)
        if scope and scope != "local":
            raise NoSuchNetwork(ref)
        return self._view(row, self.db.endpoints(nid=row.id))

    def _view(self, row: NetworkRow, endpoints: builtins.list[EndpointRow]) -> dict[str, Any]:
        doc = {k: v for k, v in row.doc.items() if not k.startswith("_")}  # skiff's own out
        doc["Id"] = row.id
        containers: dict[str, Any] = {}
        if row.name != "none" and row.name != "host":
            for ep in endpoints:
                if ep.address is None:
                    continue
                d = ep.doc
                containers[ep.container_id] = {
                    "Name": d.get("ContainerName", ""), "EndpointID": d.get("EndpointID", ""),
                    "MacAddress": d.get("MacAddress", ""),
                    "IPv4Address": f"{ep.address}/{d.get('IPPrefixLen', 0)}",
                    "IPv6Address": ""}
        else:
            for ep in endpoints:
                if ep.doc.get("EndpointID"):
                    containers[ep.container_id] = {
                        "Name": ep.doc.get("ContainerName", ""),
                        "EndpointID": ep.doc["EndpointID"], "MacAddress": "",
                        "IPv4Address": "", "IPv6Address": ""}
        doc["Containers"] = containers
        return doc

    def list(self, filters: Any = None) -> builtins.list[dict[str, Any]]:
        """``GET /networks`` with Docker's filters (name and id match parts, as moby's)."""
        f = Filters.parse(filters)
        f.validate(LIST_FILTERS)
        if f.contains("type"):
            for value in f.get("type"):
                if value not in ("custom", "builtin"):
                    raise InvalidArgument(f"invalid filter: 'type'='{value}'")
        dangling = f.boolean("dangling", False) if f.contains("dangling") else None
        every = self.db.endpoints()
        out = []
        for row in self.all():
            eps = [e for e in every if e.network_id == row.id]
            if not _list_match(f, row, eps, dangling):
                continue
            out.append(self._view(row, eps))
        return out

    def remove(self, ref: str) -> None:
        """``DELETE /networks/{id}``."""
        with self.lock:
            row = self.find(ref)
            if row.name in PREDEFINED:
                raise NetworkForbidden(f"{row.name} is a pre-defined network and cannot be "
                                       f"removed")
            if self._active(row.id):
                raise NetworkForbidden(f"error while removing network: network {row.name} id "
                                       f"{row.id} has active endpoints")
            self._destroy(row)

    def _active(self, nid: str) -> builtins.list[EndpointRow]:
        return [e for e in self.db.endpoints(nid=nid) if e.address is not None]

    def _destroy(self, row: NetworkRow) -> None:
        from skiff.net import links

        links.delete_bridge(bridge_of(row))
        self.forget_bridge(bridge_of(row))
        self.db.delete(row.id)  # the stopped containers' attachments go with it, as Docker's
        self.endpoints_changed()
        self.events.emit("network", "destroy", row.id, {"name": row.name, "type": "bridge"})

    def prune(self, filters: Any = None) -> dict[str, Any]:
        """``POST /networks/prune``: every user network without active endpoints."""
        f = Filters.parse(filters)
        f.validate(PRUNE_FILTERS)
        until = None
        if f.contains("until"):
            values = f.get("until")
            if len(values) > 1:
                raise InvalidArgument("more than one until filter specified")
            until = until_timestamp(values[0])
        deleted: list[str] = []
        with self.lock:
            for row in self.all():
                if row.name in PREDEFINED or self._active(row.id):
                    continue
                if until is not None and (parse_time(row.created) or 0) >= until:
                    continue
                labels = row.doc.get("Labels") or {}
                if not f.match_kv_list("label", labels):
                    continue
                if f.contains("label!") and _any_label(f.get("label!"), labels):
                    continue
                try:
                    self._destroy(row)
                except SkiffError as e:
                    _log.warning("network %s: %s", row.name, e)
                    continue
                deleted.append(row.name)
        self.events.emit("network", "prune", "", {"reclaimed": "0"})
        return {"NetworksDeleted": deleted or None}

    def connect(self, ref: str, body: Any) -> None:
        """``POST /networks/{id}/connect`` (`network_endpoints.connect`)."""
        from skiff.engine.network_endpoints import connect

        connect(self, ref, body)

    def disconnect(self, ref: str, body: Any) -> None:
        """``POST /networks/{id}/disconnect`` (`network_endpoints.disconnect`)."""
        from skiff.engine.network_endpoints import disconnect

        disconnect(self, ref, body)

    # -- seams for the firewall and the DNS server ------------------------------------------
    def endpoints_changed(self) -> None:
        """Called after any endpoint was added or removed (a start, a run's end, connect,
        disconnect) and after a network was made or removed. The firewall re-applies its
        rules from here (NAT for the bridges, isolation between them, published ports)."""
        if self.ports is not None:
            self.ports.sync()

    def resolve(self, cid: str, name: str) -> builtins.list[str]:
        """The IPv4 addresses `name` resolves to for the container `cid`: on each user
        network `cid` is running on, the running containers there called so — by name,
        network alias, hostname or short ID (DNS names match without regard to case, a
        trailing dot is dropped). The default bridge has no names, as Docker's."""
        from skiff.engine.network_names import resolve

        return resolve(self, cid, name)

    def reverse(self, cid: str, address: str) -> str | None:
        """The name of `address` for the container `cid` (``name.network``, Docker's PTR
        answer), or None when no container on a user network it shares holds it."""
        from skiff.engine.network_names import reverse

        return reverse(self, cid, address)

    # -- bridges and veths -------------------------------------------------------------------
    def ensure_bridge(self, row: NetworkRow, pool: ipam.Pool) -> None:
        """The network's bridge, made if it is not there (looked at once per engine: a
        bridge gone since fails the veth's attach, which asks again)."""
        name = bridge_of(row)
        if name in self._bridges:
            return
        from skiff.net import links

        links.ensure_bridge(name, str(pool.gateway), pool.subnet.prefixlen, mtu_of(row))
        self._bridges.add(name)

    def has_bridge(self, name: str) -> bool:
        """Whether this engine made or found the bridge `name` (and has not removed it)."""
        return name in self._bridges

    def forget_bridge(self, name: str) -> None:
        self._bridges.discard(name)

    def reap(self, host_ifname: str) -> None:
        """Delete an unplugged veth on a thread of its own (skiffd's stop waits for them)."""
        from skiff.net import links

        def delete() -> None:
            try:
                links.delete_endpoint(host_ifname)
            except SkiffError as e:
                _log.warning("veth %s: %s", host_ifname, e)
            finally:
                with self.lock:
                    self._reaping.discard(threading.current_thread())

        worker = threading.Thread(target=delete, name="skiffd-veth-reap", daemon=True)
        with self.lock:
            self._reaping.add(worker)
        worker.start()

    def settle(self) -> None:
        """Wait for the veths being deleted."""
        with self.lock:
            pending = list(self._reaping)
        for worker in pending:
            worker.join()

    def upstream_servers(self, cid: str) -> builtins.list[str]:
        """Where the DNS server forwards the names it does not know, for the container
        `cid`: its ``--dns`` servers, else the host's resolvers that are not loopback
        addresses (which mean nothing in the container's namespace)."""
        crow = self.containers.db.get(cid) if self.containers is not None else None
        given = list(crow.doc["HostConfig"].get("Dns") or []) if crow is not None else []
        if given:
            return given
        from skiff.engine.container_files import host_nameservers

        return host_nameservers()

    # -- engine start and stop --------------------------------------------------------------
    def reconcile(self, running: set[str]) -> None:
        """At skiffd's start: the addresses of containers that are not running go back to
        their pools, and the bridges of networks in use that are gone are made again."""
        from skiff.engine.network_endpoints import reconcile

        reconcile(self, running)
        self.dns.reconcile(running)

    def close(self) -> None:
        """At skiffd's stop: the DNS server ends, the veths being deleted are gone, and the
        default bridge goes when no container runs on it."""
        self.dns.close()
        self.settle()
        try:
            self._close_default_bridge()
        finally:
            if self.ports is not None:
                self.ports.close()

    def _close_default_bridge(self) -> None:
        if not self.bridge_touched:
            return
        try:
            self.ensure_predefined()
            row = self.find("bridge")
            if not self._active(row.id):
                from skiff.net import links

                if links.link_exists(self.bridge_name):
                    links.delete_bridge(self.bridge_name)
                self.forget_bridge(self.bridge_name)
        except SkiffError as e:
            _log.warning("the default bridge %s: %s", self.bridge_name, e)


# -- documents ------------------------------------------------------------------------------
def _now() -> str:
    return rfc3339_nano(time.time())


def _resource(name: str, driver: str, config: builtins.list[dict[str, str]], *,
              options: dict[str, str] | None = None, internal: bool = False,
              attachable: bool = False, labels: dict[str, str] | None = None,
              ipam_options: dict[str, str] | None = None) -> dict[str, Any]:
    """Docker's NetworkResource, in its field order, without Id and Containers."""
    return {"Name": name, "Id": "", "Created": _now(), "Scope": "local", "Driver": driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": ipam_options or None, "Config": config},
            "Internal": internal, "Attachable": attachable, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
            "Options": options or {}, "Labels": labels or {}}


def pool_of(row: NetworkRow) -> ipam.Pool | None:
    """The network's IPv4 pool (None for ``host`` and ``none``)."""
    config = (row.doc.get("IPAM") or {}).get("Config") or []
    if row.doc.get("Driver") != "bridge" or not config:
        return None
    c = config[0]
    return ipam.parse_pool(c["Subnet"], c.get("Gateway", ""), c.get("IPRange", ""))


def bridge_of(row: NetworkRow) -> str:
    """The Linux bridge of a bridge network (Docker's ``br-<id>`` unless named)."""
    return str((row.doc.get("Options") or {}).get(BRIDGE_NAME_OPTION) or f"br-{row.id[:12]}")


def mtu_of(row: NetworkRow) -> int:
    return _mtu(row.doc.get("Options") or {})


def _mtu(options: dict[str, str]) -> int:
    text = options.get(MTU_OPTION)
    if not text:
        return DEFAULT_MTU
    try:
        mtu = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid MTU {text!r} (option {MTU_OPTION})") from None
    if not 68 <= mtu <= 65535:
        raise InvalidArgument(f"invalid MTU {mtu}: it must be between 68 and 65535")
    return mtu


def _check_bridge_name(name: str) -> None:
    if not 0 < len(name) <= 15 or "/" in name or " " in name or name in (".", ".."):
        raise InvalidArgument(f"invalid bridge name {name!r} (at most 15 characters, no '/' "
                              f"or space)")


def _create_spec(body: Any) -> dict[str, Any]:
    """The parts of a NetworkCreateRequest skiff reads, checked (Docker's 400s)."""
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON in the request body: expected an object")
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("network name must not be empty")
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] '
                              f'are allowed')
    driver = body.get("Driver") or "bridge"
    if driver in ("host", "null"):
        raise NetworkForbidden(f'only one instance of "{driver}" network is allowed')
    if driver != "bridge":
        raise InvalidArgument(f'plugin "{driver}" not found')
    if body.get("EnableIPv6"):
        raise InvalidArgument("IPv6 networks are not supported by skiff yet (EnableIPv6)")
    if body.get("Ingress"):
        raise InvalidArgument("ingress networks are a swarm feature, not supported")
    spec: dict[str, Any] = {"Name": name}
    for key in ("Internal", "Attachable"):
        value = body.get(key, False)
        if not isinstance(value, bool):
            raise InvalidArgument(f"json: cannot unmarshal into Go struct field "
                                  f"NetworkCreateRequest.{key} of type bool")
        spec[key] = value
    for key in ("Labels", "Options"):
        value = body.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidArgument(f"json: cannot unmarshal into Go struct field "
                                  f"NetworkCreateRequest.{key} of type map[string]string")
        spec[key] = dict(value)
    raw_ipam = body.get("IPAM") or {}
    if not isinstance(raw_ipam, dict):
        raise InvalidArgument("json: cannot unmarshal into Go struct field "
                              "NetworkCreateRequest.IPAM of type network.IPAM")
    if raw_ipam.get("Driver") not in (None, "", "default"):
        raise InvalidArgument(f'plugin "{raw_ipam["Driver"]}" not found')
    config = raw_ipam.get("Config") or []
    if not isinstance(config, list) or not all(isinstance(c, dict) for c in config):
        raise InvalidArgument("json: cannot unmarshal into Go struct field IPAM.Config of "
                              "type []network.IPAMConfig")
    config = [c for c in config if c.get("Subnet") or c.get("Gateway") or c.get("IPRange")]
    if len(config) > 1:
        raise InvalidArgument("skiff networks take one IPv4 subnet (IPAM.Config has "
                              f"{len(config)})")
    for c in config:
        if not c.get("Subnet"):
            raise InvalidArgument("a gateway or ip-range needs a subnet (--subnet)")
        if c.get("AuxiliaryAddresses"):
            raise InvalidArgument("auxiliary addresses (--aux-address) are not supported by "
                                  "skiff yet")
    spec["Config"] = config
    spec["IPAMOptions"] = dict(raw_ipam.get("Options") or {})
    _mtu(spec["Options"])
    return spec


def _any_label(values: builtins.list[str], labels: dict[str, str]) -> bool:
    for value in values:
        key, eq, wanted = value.partition("=")
        if key in labels and (not eq or labels[key] == wanted):
            return True
    return False


def _list_match(f: Filters, row: NetworkRow, eps: builtins.list[EndpointRow],
                dangling: bool | None) -> bool:
    builtin = row.name in PREDEFINED
    if f.contains("name") and not any(v in row.name for v in f.get("name")):
        return False
    if f.contains("id") and not any(v in row.id for v in f.get("id")):
        return False
    if not f.exact_match("driver", str(row.doc.get("Driver"))):
        return False
    if not f.exact_match("scope", "local"):
        return False
    if not f.exact_match("type", "builtin" if builtin else "custom"):
        return False
    if not f.match_kv_list("label", row.doc.get("Labels") or {}):
        return False
    if dangling is not None:
        unused = not builtin and not any(e.address is not None for e in eps)
        if unused != dangling:
            return False
    return True
