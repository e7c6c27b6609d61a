"""Which registry a reference talks to, and how: Docker Hub's API host and Docker's TLS rules.

Docker Hub is ``docker.io`` in references (its names are skiff.reference's `is_docker_hub`)
but its API is served by ``registry-1.docker.io``. A registry is *insecure* when it is
listed (``host[:port]`` or a CIDR, as ``dockerd --insecure-registry``) or, as Docker's
stop-gap for local registries, on a loopback address: then TLS is tried without
verification, and plain HTTP after it. Otherwise TLS is verified against the system's
roots plus the CAs in ``<certs_dir>/<host:port>/*.crt``, with the client certificate
pairs (``*.cert`` and ``*.key``) found there, as Docker reads its certs.d.
"""

from __future__ import annotations

import os

from skiff.record import Record
from skiff.reference import is_docker_hub

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

HUB_API_HOST = "registry-1.docker.io"
DEFAULT_CERTS_DIR = "/etc/docker/certs.d"


class RegistryOptions(Record):
    """How registries are reached. `insecure` lists ``host[:port]`` names or CIDRs;
    `certs_dir` is Docker's certs.d; `loopback_insecure` keeps Docker's rule that
    loopback registries are insecure (tests turn it off to check verification)."""

    insecure: tuple[str, ...] = ()
    certs_dir: str = DEFAULT_CERTS_DIR
    loopback_insecure: bool = True


def api_host(domain: str) -> str:
    """The host:port requests go to for a reference's domain."""
    return HUB_API_HOST if is_docker_hub(domain) else domain


def split_host(host: str) -> tuple[str, int | None]:
    """``name:port``, ``[v6]:port`` or a bare name → (name, port or None)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name, int(port)
    return host, None


def _addresses(name: str) -> list[str]:
    import ipaddress

    try:
        return [str(ipaddress.ip_address(name))]
    except ValueError:
        pass
    if name == "localhost" or name.endswith(".localhost"):
        return ["127.0.0.1", "::1"]
    import socket

    try:
        return sorted({str(info[4][0]) for info in socket.getaddrinfo(name, None)})
    except OSError:
        return []


def is_insecure(domain: str, options: RegistryOptions) -> bool:
    """Docker's `isSecureIndex`, inverted: listed by name, or an address in a listed CIDR
    (loopback counts unless `options.loopback_insecure` is off)."""
    if is_docker_hub(domain):
        return False  # Docker never lets Docker Hub be insecure
    name, _ = split_host(domain)
    cidrs = [entry for entry in options.insecure if "/" in entry]
    if domain in options.insecure or name in options.insecure:
        return True
    loopback_name = name == "localhost" or name.startswith("127.") or name == "::1"
    if not cidrs and not (options.loopback_insecure and loopback_name):
        return False  # nothing left to match: no need to resolve the name
    import ipaddress

    networks = []
    for entry in cidrs:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    for text in _addresses(name):
        address = ipaddress.ip_address(text)
        if options.loopback_insecure and address.is_loopback:
            return True
        if any(address in net for net in networks):
            return True
    return False


def certs_dir_for(domain: str, options: RegistryOptions) -> str:
    return os.path.join(options.certs_dir, domain)


def ssl_context(domain: str, options: RegistryOptions, verify: bool) -> ssl.SSLContext:
    """The TLS settings for `domain`: system roots plus its certs.d CAs and client
    certificates; with `verify` False, no verification (an insecure registry)."""
    import ssl

    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    folder = certs_dir_for(domain, options)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        names = []
    for name in names:
        path = os.path.join(folder, name)
        if name.endswith(".crt") and verify:
            context.load_verify_locations(cafile=path)
        elif name.endswith(".cert"):
            key = path[: -len(".cert")] + ".key"
            if os.path.exists(key):
                context.load_cert_chain(path, key)
    return context
