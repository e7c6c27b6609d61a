"""Docker's ``-p`` and ``--expose`` syntax, parsed as the docker CLI parses it, cheaply.

The text half of `skiff.net.ports`, kept apart so that ``skiff run -p`` pays for none of
what the engine's half imports (dataclasses, ipaddress, typing: some 25 ms of the CLI's
start), and a foundation module (like errors, units and reference) so that the CLI and the
engine check ``-p`` with one grammar, neither importing the other's layer: go-connections'
``nat.ParsePortSpecs`` line by line
(``[ip:][hostPort[-end]:]containerPort[-end][/tcp|udp|sctp]``, the long form
``published=…,target=…,protocol=…``, ``--expose`` ranges), with its error texts. Addresses
are checked with ``inet_pton``, which refuses what Go's ``net.ParseIP`` refuses (leading
zeros, zones).
"""

from __future__ import annotations

import _socket  # not `socket`, whose enums cost the CLI ~8 ms (see skiff.client.transport)

from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

PROTOCOLS = ("tcp", "udp", "sctp")


def _parse_uint16(text: str) -> int:
    """strconv.ParseUint(text, 10, 16) with its error texts."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def parse_port_range(ports: str) -> tuple[int, int]:
    """``80`` or ``8000-8010`` as (start, end); ValueError with Go's text otherwise."""
    if ports == "":
        raise ValueError("empty string specified for ports")
    if "-" not in ports:
        start = _parse_uint16(ports)
        return start, start
    parts = ports.split("-")  # as Go: what follows a second dash is ignored
    start, end = _parse_uint16(parts[0]), _parse_uint16(parts[1])
    if end < start:
        raise ValueError(f"invalid range specified for port: {ports}")
    return start, end


def split_proto_port(raw: str) -> tuple[str, str]:
    """``80/udp`` as ("udp", "80"); no protocol is tcp; an empty port is ("", "")."""
    parts = raw.split("/")
    if raw == "" or parts[0] == "":
        return "", ""
    if len(parts) == 1 or parts[1] == "":
        return "tcp", parts[0]
    return parts[1], parts[0]


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _host_ip(ip: str) -> str:
    if ip.startswith("["):
        if "]" not in ip:
            raise InvalidArgument(f"invalid IP address {ip}: address {ip}:: missing ']' in address")
        inner, _, rest = ip[1:].partition("]")
        if rest:
            raise InvalidArgument(f"invalid IP address {ip}: address {ip}:: missing port in address")
        ip = inner
    if ip and not _is_address(ip):
        raise InvalidArgument(f"invalid IP address: {ip}")
    return ip


def _is_address(ip: str) -> bool:
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, ip)
            return True
        except (OSError, ValueError):
            continue
    return False


def parse_port_spec(raw: str) -> list[tuple[str, dict[str, str]]]:
    """One ``-p`` value as [(port key, binding)], one per container port of its range."""
    ip, host_port, container_port = _split_parts(raw)
    proto, container_port = split_proto_port(container_port)
    ip = _host_ip(ip)
    if container_port == "":
        raise InvalidArgument(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(container_port)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {container_port}") from None
    host_start = host_end = 0
    if host_port:
        try:
            host_start, host_end = parse_port_range(host_port)
        except ValueError:
            raise InvalidArgument(f"invalid hostPort: {host_port}") from None
        # a host range with one container port is the range to pick a host port from
        if end - start != host_end - host_start and end != start:
            raise InvalidArgument("invalid ranges specified for container and host Ports: "
                                  f"{container_port} and {host_port}")
    if proto.lower() not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        binding_port = str(host_start + i) if host_port else ""
        if host_port and start == end and host_start != host_end:
            binding_port = f"{host_start}-{host_end}"
        out.append((f"{start + i}/{proto.lower()}", {"HostIp": ip, "HostPort": binding_port}))
    return out


def _standard_notation(value: str) -> str:
    """The long form ``published=8080,target=80,protocol=udp`` as ``8080:80/udp``."""
    if "=" not in value:
        return value
    params = {"protocol": "tcp"}
    for param in value.split(","):
        key, sep, val = param.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid publish opts format (should be name=value but got '{param}')")
        params[key] = val
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def parse_publish(values: Iterable[str]) -> tuple[dict[str, dict[str, Any]],
                                                 dict[str, list[dict[str, str]]]]:
    """``-p`` values as (ExposedPorts, PortBindings), as ``docker run`` sends them."""
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for value in values:
        for key, binding in parse_port_spec(_standard_notation(value)):
            exposed.setdefault(key, {})
            bindings.setdefault(key, []).append(binding)
    return exposed, bindings


def parse_expose(values: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``--expose`` values (``80``, ``8000-8010/udp``) as ExposedPorts."""
    exposed: dict[str, dict[str, Any]] = {}
    for value in values:
        if ":" in value:
            raise InvalidArgument(f"invalid port format for --expose: {value}")
        proto, port = split_proto_port(value)
        try:
            start, end = parse_port_range(port)
        except ValueError as e:
            raise InvalidArgument(f"invalid range format for --expose: {value}, error: {e}") from None
        if proto.lower() not in PROTOCOLS:
            raise InvalidArgument(f"invalid proto: {proto}")
        for p in range(start, end + 1):
            exposed.setdefault(f"{p}/{proto.lower()}", {})
    return exposed
