"""Docker's port model: `-p`/`--expose` parsing, the JSON shapes, and host ports reserved for real.

Parsing (in the foundation module `skiff.port_specs`, which the CLI imports alone) follows the docker CLI and
go-connections' ``nat.ParsePortSpecs`` line by line
(``[ip:][hostPort[-end]:]containerPort[-end][/tcp|udp|sctp]``, the long form
``published=…,target=…,protocol=…``, ``--expose`` ranges), with their error texts, so
that ``skiff run -p`` refuses exactly what ``docker run -p`` refuses. The results are the
Engine API's own shapes: ``ExposedPorts`` (``{"80/tcp": {}}``) and ``PortBindings``
(``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}``); `effective_bindings` adds what
``-P`` (``PublishAllPorts``) publishes, `network_ports` makes ``NetworkSettings.Ports``
for inspect and `port`.

A host port is reserved by binding a socket on it and keeping it (`PortAllocator`): the
kernel then refuses it to everyone else, and the userland proxy listens on that very
socket (skiff.net.proxy), so there is no window between the check and the use. An empty
host port takes the next free one from the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``), round-robin as Docker's port allocator.
A port held by another of our containers is ``Bind for 0.0.0.0:8080 failed: port is
already allocated``; one held by another process ``… bind: address already in use``, as
dockerd words them.
"""

from __future__ import annotations

import errno
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from skiff.errors import InvalidArgument, PortAllocated
from skiff.port_specs import (  # noqa: F401 - the parsing (`port_specs`), re-exported
    PROTOCOLS,
    _host_ip,
    parse_expose,
    parse_port_range,
    parse_port_spec,
    parse_publish,
    split_proto_port,
)

ExposedPorts = dict[str, dict[str, Any]]
PortBindings = dict[str, list[dict[str, str]]]


# -- the API's shapes -------------------------------------------------------------------
@dataclass(frozen=True)
class PortBinding:
    """One binding of a container port: `host_port` "" for an ephemeral one, or a range."""

    proto: str
    container_port: int
    host_ip: str = ""
    host_port: str = ""


def _port_key(key: str) -> tuple[int, str]:
    proto, port = split_proto_port(key)
    if proto.lower() not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    try:
        start, end = parse_port_range(port)
    except ValueError:
        raise InvalidArgument(f"invalid port: {key}") from None
    if start != end:
        raise InvalidArgument(f"invalid port: {key} (one port, not a range)")
    return start, proto.lower()


def bindings_from_json(raw: Mapping[str, Any] | None) -> list[PortBinding]:
    """HostConfig.PortBindings (``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}``)."""
    out = []
    for key, entries in (raw or {}).items():
        port, proto = _port_key(key)
        for entry in entries or [{}]:  # `null` as in {"80/tcp": null} publishes ephemerally
            if not isinstance(entry, Mapping):
                raise InvalidArgument(f"PortBindings[{key}]: not an object")
            host_ip, host_port = _host_ip(entry.get("HostIp") or ""), entry.get("HostPort") or ""
            if host_port:
                try:
                    parse_port_range(host_port)
                except ValueError:
                    raise InvalidArgument(f"invalid hostPort: {host_port}") from None
            out.append(PortBinding(proto, port, host_ip, host_port))
    return out


def bindings_to_json(bindings: Iterable[PortBinding]) -> PortBindings:
    out: PortBindings = {}
    for b in bindings:
        out.setdefault(f"{b.container_port}/{b.proto}", []).append(
            {"HostIp": b.host_ip, "HostPort": b.host_port})
    return out


def exposed_from_json(raw: Mapping[str, Any] | None) -> list[tuple[int, str]]:
    """Config.ExposedPorts (``{"80/tcp": {}}``) as sorted (port, proto)."""
    return sorted(_port_key(key) for key in (raw or {}))


def effective_bindings(exposed: Mapping[str, Any] | None, bindings: Mapping[str, Any] | None,
                       publish_all: bool) -> list[PortBinding]:
    """What is published: the bindings, and with ``-P`` every exposed port that has none,
    on an ephemeral host port of every address (Docker's PublishAllPorts)."""
    out = bindings_from_json(bindings)
    if publish_all:
        bound = {(b.container_port, b.proto) for b in out}
        out += [PortBinding(proto, port) for port, proto in exposed_from_json(exposed)
                if (port, proto) not in bound]
    return out


@dataclass(frozen=True)
class Published:
    """A binding made real: the host address and port it got."""

    proto: str
    container_port: int
    host_ip: str
    host_port: int


def network_ports(exposed: Mapping[str, Any] | None, published: Iterable[Published],
                  ipv6: bool = False) -> dict[str, list[dict[str, str]] | None]:
    """NetworkSettings.Ports: every exposed or published port, `None` if not published; an
    unspecified host address shows as 0.0.0.0 (and ``::`` when the proxy also serves IPv6)."""
    out: dict[str, list[dict[str, str]] | None] = {
        f"{port}/{proto}": None for port, proto in exposed_from_json(exposed)}
    for p in published:
        entries = out.get(f"{p.container_port}/{p.proto}") or []
        if p.host_ip in ("", "0.0.0.0"):
            entries.append({"HostIp": "0.0.0.0", "HostPort": str(p.host_port)})
            if ipv6:
                entries.append({"HostIp": "::", "HostPort": str(p.host_port)})
        else:
            entries.append({"HostIp": p.host_ip, "HostPort": str(p.host_port)})
        out[f"{p.container_port}/{p.proto}"] = entries
    return out


def port_lines(ports: Mapping[str, list[dict[str, str]] | None], private: str | None = None) -> list[str]:
    """What ``docker port CONTAINER [PRIVATE_PORT[/PROTO]]`` prints: ``80/tcp -> 0.0.0.0:8080``
    (without the key when one port is asked); an IPv6 host address in brackets."""
    if private is not None:
        proto, port = split_proto_port(private)
        key = f"{port}/{proto.lower()}"
        if not ports.get(key):
            raise InvalidArgument(f"No public port '{key}' published")
        return [_host(b) for b in ports[key] or []]
    lines = []
    for key in sorted(ports, key=lambda k: (_port_key(k), k)):
        lines += [f"{key} -> {_host(b)}" for b in ports[key] or []]
    return lines


def _host(binding: Mapping[str, str]) -> str:
    ip = binding["HostIp"]
    return f"[{ip}]:{binding['HostPort']}" if ":" in ip else f"{ip}:{binding['HostPort']}"


# -- host ports, reserved by binding them ---------------------------------------------
def ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The kernel's ephemeral port range, Docker's for host ports; 49153-65535 if unreadable."""
    try:
        with open(path) as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 49153, 65535


@dataclass
class Reservation:
    """A host port held by bound sockets (TCP ones listening: skiff.net.proxy accepts on
    them; with the kernel's DNAT in front, only what DNAT does not reach arrives there);
    `close` frees it."""

    proto: str
    host_ip: str
    host_port: int
    sockets: list[socket.socket] = field(default_factory=list)
    _release: Any = None

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets.clear()
        if self._release is not None:
            self._release(self)
            self._release = None


_SOCK_TYPES = {"tcp": (socket.SOCK_STREAM, 0), "udp": (socket.SOCK_DGRAM, 0),
               "sctp": (socket.SOCK_STREAM, socket.IPPROTO_SCTP)}


def _bind(proto: str, host_ip: str, port: int, ipv6: bool) -> list[socket.socket]:
    """Sockets bound on host_ip:port (for "" the IPv4 any address, and with `ipv6` the IPv6
    one apart); OSError when the kernel refuses, with nothing left open."""
    kind, number = _SOCK_TYPES[proto]
    addrs = [host_ip] if host_ip not in ("", "0.0.0.0") else ["0.0.0.0"] + (["::"] if ipv6 else [])
    made: list[socket.socket] = []
    try:
        for addr in addrs:
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            try:
                s = socket.socket(family, kind, number)
            except OSError as e:
                if addr == "::" and e.errno == errno.EAFNOSUPPORT:
                    continue  # a host without IPv6: the IPv4 socket is the reservation
                raise
            made.append(s)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_STREAM:
                # the proxy restarting on a port whose connections are in TIME_WAIT
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, port))
            except OSError as e:
                if addr == "::" and e.errno == errno.EADDRNOTAVAIL:
                    made.pop().close()
                    continue
                raise
            if kind == socket.SOCK_STREAM:
                # a bound socket with SO_REUSEADDR shares its port with any other that
                # sets it too, until one listens: listening is what holds it
                s.listen(1024)
        return made
    except OSError:
        for s in made:
            s.close()
        raise


class PortAllocator:
    """The host ports this engine holds, by (proto, host ip, port); thread-safe."""

    def __init__(self, ephemeral: tuple[int, int] | None = None, ipv6: bool | None = None) -> None:
        self.low, self.high = ephemeral or ephemeral_range()
        self.ipv6 = socket.has_ipv6 if ipv6 is None else ipv6
        self._held: dict[tuple[str, str, int], Reservation] = {}
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def _clash(self, proto: str, host_ip: str, port: int) -> bool:
        any_ip = host_ip in ("", "0.0.0.0")
        return any(p == proto and n == port and (any_ip or ip in ("", "0.0.0.0") or ip == host_ip)
                   for p, ip, n in self._held)

    def _take(self, proto: str, host_ip: str, port: int) -> Reservation:
        r = Reservation(proto, host_ip, port, _bind(proto, host_ip, port, self.ipv6), self._forget)
        self._held[(proto, host_ip, port)] = r
        return r

    def _forget(self, r: Reservation) -> None:
        with self._lock:
            self._held.pop((r.proto, r.host_ip, r.host_port), None)

    def reserve(self, proto: str, host_ip: str = "", host_port: str = "") -> Reservation:
        """Hold `host_port` ("" for an ephemeral one, "8000-8010" for the first free of a
        range) on `host_ip` ("" for all addresses); PortAllocated if none can be had."""
        if proto not in PROTOCOLS:
            raise InvalidArgument(f"invalid proto: {proto}")
        host_ip = _host_ip(host_ip)
        shown = f"{host_ip or '0.0.0.0'}" if ":" not in host_ip else f"[{host_ip}]"
        if host_port and "-" not in host_port:
            try:
                port = parse_port_range(host_port)[0]
            except ValueError:
                raise InvalidArgument(f"invalid hostPort: {host_port}") from None
            with self._lock:
                if self._clash(proto, host_ip, port):
                    raise PortAllocated(f"Bind for {shown}:{port} failed: port is already allocated")
                try:
                    return self._take(proto, host_ip, port)
                except OSError as e:
                    raise self._refused(proto, shown, port, e) from None
        if host_port:
            try:
                low, high = parse_port_range(host_port)
            except ValueError:
                raise InvalidArgument(f"invalid hostPort: {host_port}") from None
            candidates = list(range(low, high + 1))
        else:
            low, high = self.low, self.high
            with self._lock:
                start = self._next.get(proto, low)
            candidates = list(range(start, high + 1)) + list(range(low, start))
        with self._lock:
            for port in candidates:
                if port == 0 or self._clash(proto, host_ip, port):
                    continue
                try:
                    r = self._take(proto, host_ip, port)
                except OSError as e:
                    if e.errno in (errno.EADDRINUSE, errno.EACCES):
                        continue
                    raise self._refused(proto, shown, port, e) from None
                if not host_port:
                    self._next[proto] = port + 1 if port < high else low
                return r
        if host_port:
            raise PortAllocated(f"Bind for {shown}:{host_port} failed: port is already allocated")
        raise PortAllocated(f"all ports are allocated ({proto} {low}-{high} on {shown})")

    @staticmethod
    def _refused(proto: str, shown: str, port: int, e: OSError) -> PortAllocated:
        # dockerd's words when the proxy's listen fails
        reason = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        family = "6" if shown.startswith("[") else "4"
        return PortAllocated(f"Error starting userland proxy: listen {proto}{family} {shown}:{port}: "
                             f"bind: {reason}")

    def held(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return sorted(self._held)
