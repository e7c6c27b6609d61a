"""The upstream resolvers that the embedded DNS server forwards the names it does not know to.

`host_upstreams` reads them from the host's resolv.conf: its ``nameserver`` lines, the first
three as glibc takes (MAXNS), and 127.0.0.1 when there is none (glibc's default too).
Loopback servers (systemd-resolved's 127.0.0.53, a local dnsmasq) are kept: the queries
leave from the host's network namespace, where they are reachable, which is why Docker's
resolver too forwards to the host's loopback servers from the host's namespace instead of
writing a public resolver into the container's resolv.conf (a container's own ``--dns``
servers moby asks from inside the container's namespace: `forward`'s `open_socket` says
where each query's socket is made). `forward` asks them in order:
over UDP first (from a socket of its own per query, connected, so a source port the
upstream cannot guess and an ICMP "port unreachable" ends the wait at once), again over
TCP when the answer came truncated, and over TCP only for a query that came over TCP. An
upstream that does not answer within the timeout, answers SERVFAIL or REFUSED, or a
non-authoritative NXDOMAIN, makes it try the next (as moby's resolver); when none gives a
usable answer the last answer received is returned, or None (the server then answers
SERVFAIL). The query goes out under an ID of our own and comes back under the client's.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from skiff.errors import InvalidArgument
from skiff.log import logger
from skiff.net.dns_message import (RCODE_NXDOMAIN, RCODE_REFUSED, RCODE_SERVFAIL, Query,
                                   reply_authoritative, reply_matches, reply_rcode,
                                   reply_truncated, with_id)

log = logger("skiff.net.dns")

MAXNS = 3
SockAddr = tuple[Any, ...]  # (host, port) for IPv4, (host, port, flowinfo, scope) for IPv6
DEFAULT_TIMEOUT = 4.0  # moby's extIOTimeout, per upstream and attempt


@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream resolver: a numeric address (IPv6 may carry a %zone) and a port."""

    host: str
    port: int = 53

    def sockaddr(self, kind: socket.SocketKind) -> tuple[socket.AddressFamily, SockAddr]:
        return _sockaddr(self.host, self.port, kind)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@functools.lru_cache(maxsize=64)
def _sockaddr(host: str, port: int, kind: socket.SocketKind
              ) -> tuple[socket.AddressFamily, SockAddr]:
    # numeric, so no lookup goes out; cached, as every forwarded query needs it
    family, _, _, _, address = socket.getaddrinfo(host, port, type=kind,
                                                  flags=socket.AI_NUMERICHOST)[0]
    return family, address


def parse_resolv_conf(text: str) -> list[Upstream]:
    """The ``nameserver`` entries of a resolv.conf, in order, the first MAXNS only, each a
    numeric address (a line that is not one is skipped, as glibc skips it)."""
    found: list[Upstream] = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        try:
            socket.getaddrinfo(words[1], 53, flags=socket.AI_NUMERICHOST)
        except (socket.gaierror, UnicodeError):
            continue
        found.append(Upstream(words[1]))
        if len(found) == MAXNS:
            break
    return found


def parse_upstream(text: str) -> Upstream:
    """An upstream as a user writes it: ``ADDR``, ``ADDR:PORT`` or ``[ADDR6]:PORT``, the
    address numeric (no name is looked up); InvalidArgument otherwise."""
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise InvalidArgument(f"bad DNS server {text!r}: expected [ADDR6]:PORT")
            port = rest[1:]
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"bad DNS server {text!r}: the port must be 1-65535")
    try:
        socket.getaddrinfo(host, 53, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        raise InvalidArgument(f"bad DNS server {text!r}: expected a numeric IP address") \
            from None
    return Upstream(host, int(port))


def host_upstreams(path: str = "/etc/resolv.conf") -> list[Upstream]:
    """The host's resolvers (see the module's text); 127.0.0.1 when the file names none or
    cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            found = parse_resolv_conf(f.read())
    except OSError:
        found = []
    return found or [Upstream("127.0.0.1")]


OpenSocket = Callable[[socket.AddressFamily, socket.SocketKind], Awaitable[socket.socket]]


async def host_socket(family: socket.AddressFamily, kind: socket.SocketKind) -> socket.socket:
    """A socket of the caller's own network namespace (the host's, for the DNS server)."""
    return socket.socket(family, kind)


async def _udp_exchange(upstream: Upstream, message: bytes, ident: int, query: Query,
                        timeout: float, open_socket: OpenSocket) -> bytes:
    loop = asyncio.get_running_loop()
    family, address = upstream.sockaddr(socket.SOCK_DGRAM)
    with await open_socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(address)
        await loop.sock_sendall(sock, message)
        async with asyncio.timeout(timeout):
            while True:
                reply = await loop.sock_recv(sock, 65535)
                if reply_matches(reply, ident, query.question):
                    return reply
                # a datagram that answers something else: not ours, keep waiting


async def _tcp_exchange(upstream: Upstream, message: bytes, ident: int, query: Query,
                        timeout: float, open_socket: OpenSocket) -> bytes:
    loop = asyncio.get_running_loop()
    family, address = upstream.sockaddr(socket.SOCK_STREAM)  # a raw socket keeps a %zone
    with await open_socket(family, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, address)
            await loop.sock_sendall(sock, struct.pack("!H", len(message)) + message)
            (length,) = struct.unpack("!H", await _read_exactly(loop, sock, 2))
            reply = await _read_exactly(loop, sock, length)
    if not reply_matches(reply, ident, query.question):
        raise ConnectionError(f"{upstream} answered something else over TCP")
    return reply


async def _read_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int
                        ) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


async def forward(raw: bytes, query: Query, upstreams: Sequence[Upstream], timeout: float,
                  tcp: bool, udp_limit: int,
                  open_socket: OpenSocket = host_socket) -> bytes | None:
    """The answer of the first upstream that gives a usable one to the query `raw` (parsed:
    `query`), under the client's ID; None when none answered at all. `tcp`: the client
    asked over TCP; `udp_limit`: the largest UDP answer it takes (a TCP retry's answer
    bigger than that goes back truncated, as the upstream sent it, for the client to retry
    over TCP itself). `open_socket` makes each query's socket (in the host's namespace
    unless it says otherwise)."""
    ident = int.from_bytes(os.urandom(2), "big")  # unguessable, and no `secrets` to import
    message = with_id(raw, ident)
    fallback: bytes | None = None
    for upstream in upstreams:
        try:
            if tcp:
                reply = await _tcp_exchange(upstream, message, ident, query, timeout,
                                            open_socket)
            else:
                reply = await _udp_exchange(upstream, message, ident, query, timeout,
                                            open_socket)
                if reply_truncated(reply):
                    try:
                        full = await _tcp_exchange(upstream, message, ident, query, timeout,
                                                   open_socket)
                    except (OSError, TimeoutError) as e:
                        log.debug("dns: TCP retry to %s: %s", upstream, e)
                    else:
                        if len(full) <= udp_limit:
                            reply = full
        except (OSError, TimeoutError) as e:
            log.debug("dns: %s: %s", upstream, e or type(e).__name__)
            continue
        rcode = reply_rcode(reply)
        if rcode in (RCODE_SERVFAIL, RCODE_REFUSED) or (
                rcode == RCODE_NXDOMAIN and not reply_authoritative(reply)):
            fallback = reply
            continue
        return with_id(reply, query.id)
    return None if fallback is None else with_id(fallback, query.id)
