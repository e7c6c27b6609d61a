"""skiff's embedded DNS server: 127.0.0.11:53 inside every container on a user network.

As Docker's embedded DNS, one server answers for all containers: `DnsServer.add(key,
netns_path)` opens a UDP and a TCP socket on 127.0.0.11 inside the network namespace at
`netns_path`, at ports of the kernel's choosing, and has `dns_redirect` DNAT 127.0.0.11:53
to them there (both made by a short-lived thread that setns()es into the namespace: a
socket, and libnftables' netlink socket, stay in the namespace they were made in, so the
serving thread itself never moves); port 53 is thus left to the container, whose own DNS
server may bind 0.0.0.0:53 as under Docker. A namespace whose DNAT already names ports
(served before: skiffd restarted) is served on those again when they are free, its rules
untouched. `remove(key)` closes the sockets and every
connection and forward in flight for that container (and deletes the DNAT, unless the
namespace goes anyway), and `close()` ends it all. One thread runs an asyncio loop of its
own over every container's sockets, so the server is independent of whatever loop skiffd's
API runs and of its load; the loop thread stays in the host's namespace, so forwarded
queries go out from the host, as Docker's go to the resolvers it read from the host. A
query is answered from the callbacks when `dns_answer.local_answer` says so (A, AAAA, MX,
PTR of names and addresses the engine knows, TTL 600, in the callbacks' order), and
forwarded upstream (`dns_upstream.forward`) otherwise: to the container's own resolvers
when `add` was given some (its ``--dns``; asked from inside its namespace with
``from_netns``, as moby asks them), else to the server's (by default the host's
resolv.conf's, read at each `add`, asked from the host's namespace); SERVFAIL when no
upstream answers, when a container has none (an internal network), or when
`max_forwards` queries are already out (moby's limit of 1024). A packet that is not a
query is dropped, one whose question cannot be read gets FORMERR: nothing a client sends
ends the loop. Made with ``port=53``, the server binds 127.0.0.11:53 itself and sets no
rule (a container's own bind of 0.0.0.0:53 then fails with EADDRINUSE). The callbacks are
called on the server's thread, for every query: they must be quick (in-memory look-ups),
thread-safe, and never call back into the server.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

from skiff.errors import FirewallError, InvalidArgument, KernelError, SkiffError
from skiff.kernel.netns_thread import in_netns
from skiff.log import logger
from skiff.net import dns_redirect
from skiff.net.dns_redirect import DNS_PORT
from skiff.net.dns_answer import Resolve, Reverse, local_answer
from skiff.net.dns_message import (EXTENDED_RCODE_BADVERS, OPCODE_QUERY, RCODE_FORMERR,
                                   RCODE_NOERROR, RCODE_NOTIMP, RCODE_SERVFAIL, TCP_MAX_SIZE,
                                   MalformedMessage, Query, build_reply, error_reply,
                                   parse_query)
from skiff.net.dns_upstream import (DEFAULT_TIMEOUT, OpenSocket, Upstream, forward,
                                    host_socket, host_upstreams)

log = logger("skiff.net.dns")

LISTEN_ADDRESS = "127.0.0.11"
MAX_FORWARDS = 1024
TCP_IDLE_TIMEOUT = 10.0  # seconds a TCP client may keep a connection without a query
TCP_CLIENTS = 64  # open TCP connections per container; more are closed at once
TCP_WRITE_BACKLOG = 256 * 1024  # answers a TCP client has not read; more: it is cut off


class Ports(NamedTuple):
    """The ports a container's server sockets listen on (the kernel's choice, unless the
    server was made with a port of its own: 53 and 53 for ``port=53``)."""

    udp: int
    tcp: int


def _bind_pair(address: str, ports: tuple[int, int],
               netns_path: str) -> tuple[socket.socket, socket.socket]:
    """A bound UDP socket and a listening TCP socket on `address` at `ports` (UDP's, TCP's)
    in the calling thread's network namespace (that at `netns_path`, named in errors), both
    non-blocking (neither left open on a failure)."""
    made: list[socket.socket] = []
    try:
        for kind, port in zip((socket.SOCK_DGRAM, socket.SOCK_STREAM), ports):
            sock = socket.socket(socket.AF_INET, kind)
            made.append(sock)
            if kind == socket.SOCK_STREAM:
                # a connection of a server removed a moment ago may be in TIME_WAIT
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as e:
                raise KernelError.from_os(f"bind {kind.name} {address}:{port} in", e,
                                          netns_path) from None
            if kind == socket.SOCK_STREAM:
                sock.listen(128)
            sock.setblocking(False)
    except BaseException:
        for sock in made:
            sock.close()
        raise
    return made[0], made[1]


def _netns_id() -> tuple[int, int]:
    """The calling thread's network namespace, as the kernel tells one from another."""
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino


def netns_socket_opener(netns_path: str) -> OpenSocket:
    """What makes a forwarded query's socket inside the network namespace at `netns_path`
    (from a thread that joins it, run off the loop); a namespace gone is an OSError, as a
    failed connect is, so that the query fails like one."""

    async def open_socket(family: socket.AddressFamily,
                          kind: socket.SocketKind) -> socket.socket:
        def make() -> socket.socket:
            return socket.socket(family, kind)

        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, in_netns, netns_path, make)
        except KernelError as e:
            raise OSError(e.errno or 0, str(e)) from None

    return open_socket


class _UdpService(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer, served: _Served) -> None:
        self.server = server
        self.served = served
        self.transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server._on_datagram(self.served, data, addr)

    def error_received(self, exc: Exception) -> None:
        # an ICMP error for an answer to a client that has gone: nothing to do
        log.debug("dns %s: %s", self.served.key, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _TcpClient(asyncio.Protocol):
    """One DNS-over-TCP connection (RFC 7766): length-prefixed queries, answered in the
    order they are ready (a forwarded one may come after a later local one: the IDs tell
    them apart), closed after TCP_IDLE_TIMEOUT without a query, or when the client reads
    so little that answers pile up."""

    def __init__(self, server: DnsServer, served: _Served) -> None:
        self.server = server
        self.served = served
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.idle: asyncio.TimerHandle | None = None
        served.clients.add(self)  # now: an unserve must find every client made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.served.closing:
            transport.close()
            return
        self._rearm()

    def _rearm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        assert self.transport is not None
        self.idle = asyncio.get_running_loop().call_later(TCP_IDLE_TIMEOUT,
                                                          self.transport.close)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._rearm()
        while len(self.buffer) >= 2:
            (length,) = struct.unpack_from("!H", self.buffer)
            if len(self.buffer) < 2 + length:
                break
            message = bytes(self.buffer[2:2 + length])
            del self.buffer[:2 + length]
            self.server._on_tcp_message(self, message)

    def send(self, reply: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(struct.pack("!H", len(reply)) + reply)
        if transport.get_write_buffer_size() > TCP_WRITE_BACKLOG:
            transport.abort()  # a client that asks and never reads

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.served.clients.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass(eq=False)
class _Served:
    """One container's sockets and what is in flight for it (touched on the loop only)."""

    key: str
    upstreams: list[Upstream]
    open_socket: OpenSocket  # where a forwarded query's socket is made
    udp: _UdpService | None = None
    listener: socket.socket | None = None
    clients: set[_TcpClient] = field(default_factory=set)
    accepted: set[socket.socket] = field(default_factory=set)  # not yet a client's
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    closing: bool = False


class _Placed(NamedTuple):
    """Where a container is served (the callers' side, under the server's lock)."""

    netns_path: str
    netns: tuple[int, int]  # the namespace itself: its path may later name another


class DnsServer:
    """The embedded DNS server for every container (see the module's text)."""

    def __init__(self, resolve: Resolve, reverse: Reverse,
                 upstreams: Sequence[Upstream] | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, address: str = LISTEN_ADDRESS,
                 port: int = 0, max_forwards: int = MAX_FORWARDS) -> None:
        self._resolve = resolve
        self._reverse = reverse
        # None: the host's, read again at every add (as Docker reads them at every
        # container's start), so a resolv.conf rewritten by DHCP reaches new containers
        self._own_upstreams = None if upstreams is None else list(upstreams)
        self._timeout = timeout
        self._address = address
        self._port = port
        self._redirect = port != DNS_PORT  # 53 reached through the namespace's DNAT
        self._max_forwards = max_forwards
        self._forwards = 0  # in flight, counted on the loop
        self._served: dict[str, _Served] = {}  # the loop's
        self._placed: dict[str, _Placed] = {}  # the callers' view of _served, under _lock
        self._lock = threading.Lock()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="skiffd-dns",
                                        daemon=True)
        self._thread.start()

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the callers' side ----------------------------------------------------------------
    # one at a time (under _lock): an add takes about a millisecond, and a remove racing
    # the add of the same key could otherwise leave sockets no one removes
    def add(self, key: str, netns_path: str, upstreams: Sequence[Upstream] | None = None,
            *, from_netns: bool = False) -> Ports:
        """Serve the container `key` inside the network namespace at `netns_path`, on the
        ports returned (with 127.0.0.11:53 DNAT'd to them there, unless the server listens
        on 53 itself); the names it asks that the callbacks do not know go to `upstreams`
        (its ``--dns``) when given, to the server's own otherwise, nowhere when it is empty
        (an ``--internal`` network: SERVFAIL). `from_netns`: `upstreams` are asked from
        inside that namespace, as moby asks a container's own ``--dns`` servers (the
        server's own are always asked from the host's). One namespace, one container
        served: a second key there is refused."""
        with self._lock:
            if self._closed:
                raise InvalidArgument("the DNS server is closed")
            if key in self._placed:
                raise InvalidArgument(f"DNS: {key} is already served")
            if upstreams is not None:
                chosen = list(upstreams)
            elif self._own_upstreams is not None:
                chosen = self._own_upstreams
            else:
                chosen = host_upstreams()
            netns, udp, tcp = in_netns(netns_path, lambda: self._listen_here(netns_path))
            ports = Ports(udp.getsockname()[1], tcp.getsockname()[1])
            opener = netns_socket_opener(netns_path) \
                if from_netns and upstreams is not None else host_socket
            try:
                asyncio.run_coroutine_threadsafe(self._serve(key, udp, tcp, chosen, opener),
                                                 self._loop).result()
            except BaseException:
                udp.close()
                tcp.close()
                self._unredirect(_Placed(netns_path, netns))
                raise
            self._placed[key] = _Placed(netns_path, netns)
            return ports

    def _listen_here(self, netns_path: str
                     ) -> tuple[tuple[int, int], socket.socket, socket.socket]:
        """On the thread that joined the namespace at `netns_path` (the caller holds the
        lock): refuse a namespace served already, bind the sockets, and point 53 at them.

        A namespace whose DNAT names ports of a server before (skiffd restarted, or the
        container served anew) gets sockets on those ports again when they are free: its
        rules stay as they are, and so do the kernel's NAT'd connections, so that a client
        keeping its socket (its source port) still gets answers — after a switch its
        packets would follow their conntrack entry to the old port, refused, for as long
        as they keep coming. Taken ports: new ones, and the rules switched to them."""
        netns = _netns_id()
        for key, placed in self._placed.items():
            if placed.netns == netns:
                raise InvalidArgument(f"DNS: the network namespace at {netns_path} is "
                                      f"served already (for {key})")
        if self._redirect and self._port == 0:
            kept = dns_redirect.in_force(self._address)
            if kept is not None:
                try:
                    udp, tcp = _bind_pair(self._address, kept, netns_path)
                    return netns, udp, tcp
                except KernelError as e:
                    log.info("dns: %s: the ports its DNAT names are taken (%s): new ones",
                             netns_path, e)
        udp, tcp = _bind_pair(self._address, (self._port, self._port), netns_path)
        if self._redirect:
            try:
                dns_redirect.apply(self._address, udp.getsockname()[1], tcp.getsockname()[1])
            except BaseException as e:
                udp.close()
                tcp.close()
                if isinstance(e, FirewallError):
                    raise FirewallError(f"DNAT of {self._address}:{DNS_PORT} in "
                                        f"{netns_path}: {e}") from None
                raise
        return netns, udp, tcp

    def _unredirect(self, placed: _Placed) -> None:
        """Delete the DNAT in `placed`'s namespace, if it is still there (a failure is
        logged: the sockets it pointed at are closed by then, so 53 only refuses)."""
        if not self._redirect:
            return

        def inside() -> None:
            if _netns_id() == placed.netns:
                dns_redirect.remove()

        try:
            in_netns(placed.netns_path, inside)
        except SkiffError as e:
            log.warning("dns: the DNAT in %s: %s", placed.netns_path, e)

    def remove(self, key: str, *, keep_redirect: bool = False) -> None:
        """Stop serving `key`: its sockets closed, its connections and forwards ended, by
        the time this returns (nothing to do for a key not served), and the DNAT in its
        namespace deleted — unless `keep_redirect`: the namespace goes (and its rules with
        it) at the end of the container's run, or an `add` comes next, which takes their
        ports again (a deletion waits ~10 ms for the kernel's RCU grace period)."""
        with self._lock:
            self._remove(key, keep_redirect)

    def _remove(self, key: str, keep_redirect: bool) -> None:
        placed = self._placed.get(key)
        if placed is None:
            return
        asyncio.run_coroutine_threadsafe(self._unserve(key), self._loop).result()
        del self._placed[key]
        if not keep_redirect:
            self._unredirect(placed)

    def keys(self) -> list[str]:
        """The containers served now."""
        with self._lock:
            return sorted(self._placed)

    def close(self) -> None:
        """Stop serving every container and end the server's thread (again: nothing). The
        DNAT rules stay in the namespaces: the next server's `add` listens on their ports
        again (or switches them)."""
        with self._lock:
            if self._closed:
                return
            for key in list(self._placed):
                self._remove(key, keep_redirect=True)
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    # -- the loop's side ------------------------------------------------------------------
    async def _serve(self, key: str, udp: socket.socket, tcp: socket.socket,
                     upstreams: list[Upstream], opener: OpenSocket) -> None:
        loop = asyncio.get_running_loop()
        served = _Served(key, upstreams, opener)
        _, served.udp = await loop.create_datagram_endpoint(
            lambda: _UdpService(self, served), sock=udp)
        # accepted here, not by an asyncio.Server: a Server that is closed while a connection
        # it accepted waits for its transport loses that connection, open, to no one
        served.listener = tcp
        loop.add_reader(tcp.fileno(), self._accept, served)
        self._served[key] = served

    def _close_udp(self, served: _Served) -> None:
        if served.udp is not None and served.udp.transport is not None:
            served.udp.transport.close()

    def _accept(self, served: _Served) -> None:
        assert served.listener is not None
        loop = asyncio.get_running_loop()
        for _ in range(TCP_CLIENTS):  # a batch per wake-up, then the others get a turn
            try:
                conn, _ = served.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: try again at the next wake-up
                log.warning("dns %s: accept: %s", served.key, e)
                return
            if served.closing or len(served.clients) + len(served.accepted) >= TCP_CLIENTS:
                conn.close()
                continue
            served.accepted.add(conn)
            self._track(served, loop.create_task(self._connect(served, conn)))

    async def _connect(self, served: _Served, conn: socket.socket) -> None:
        await asyncio.get_running_loop().connect_accepted_socket(
            lambda: _TcpClient(self, served), conn)
        served.accepted.discard(conn)  # its transport's now

    async def _unserve(self, key: str) -> None:
        served = self._served.pop(key, None)
        if served is None:
            return
        served.closing = True
        if served.listener is not None:
            asyncio.get_running_loop().remove_reader(served.listener.fileno())
            served.listener.close()
        for task in list(served.tasks):
            task.cancel()
        if served.tasks:
            await asyncio.gather(*served.tasks, return_exceptions=True)
        for conn in served.accepted:
            conn.close()
        clients = list(served.clients)
        for client in clients:
            client.close()
        self._close_udp(served)
        # transports close their sockets on the loop's next turn: wait for that (a client
        # whose transport never came to be has nothing to close: hence the bound)
        closing = [c.closed for c in clients if c.transport is not None]
        if served.udp is not None:
            closing.append(served.udp.closed)
        if closing:
            await asyncio.wait(closing, timeout=1.0)

    def _track(self, served: _Served, task: asyncio.Task[None]) -> None:
        served.tasks.add(task)
        task.add_done_callback(served.tasks.discard)

    def _local(self, key: str, data: bytes, tcp: bool) -> tuple[bytes | None, Query | None]:
        """(the answer to send now, or None) and (the query to forward, or None); neither:
        drop the packet."""
        try:
            query = parse_query(data)
        except MalformedMessage:
            return error_reply(data, RCODE_FORMERR), None
        limit = TCP_MAX_SIZE if tcp else query.udp_limit()
        if query.opcode != OPCODE_QUERY:
            return build_reply(query, RCODE_NOTIMP, limit=limit), None
        if query.edns_version != 0:
            return build_reply(query, EXTENDED_RCODE_BADVERS, limit=limit), None
        try:
            records = local_answer(query, key, self._resolve, self._reverse)
        except Exception as e:  # noqa: BLE001 - the engine's failure is this query's SERVFAIL
            log.warning("dns %s: looking up %s: %s", key, query.question.text(), e)
            return build_reply(query, RCODE_SERVFAIL, limit=limit), None
        if records is None:
            return None, query
        return build_reply(query, RCODE_NOERROR, records, limit, truncate_flag=not tcp), None

    async def _forwarded(self, served: _Served, data: bytes, query: Query, tcp: bool) -> bytes:
        limit = TCP_MAX_SIZE if tcp else query.udp_limit()
        if self._forwards >= self._max_forwards:
            log.warning("dns: more than %d queries forwarded at once", self._max_forwards)
            return build_reply(query, RCODE_SERVFAIL, limit=limit)
        self._forwards += 1
        try:
            reply = await forward(data, query, served.upstreams, self._timeout, tcp, limit,
                                  served.open_socket)
        finally:
            self._forwards -= 1
        if reply is None:
            log.debug("dns: no upstream answered %s", query.question.text())
            return build_reply(query, RCODE_SERVFAIL, limit=limit)
        return reply

    def _on_datagram(self, served: _Served, data: bytes, addr: tuple[str, int]) -> None:
        try:
            reply, query = self._local(served.key, data, tcp=False)
        except Exception as e:  # noqa: BLE001 - a bug met by one packet drops that packet only
            log.error("dns %s: a %d-byte query: %r", served.key, len(data), e)
            return
        assert served.udp is not None and served.udp.transport is not None
        transport = served.udp.transport
        if reply is not None:
            transport.sendto(reply, addr)
        elif query is not None:
            self._track(served, asyncio.get_running_loop().create_task(
                self._forward_udp(served, transport, data, query, addr)))

    async def _forward_udp(self, served: _Served, transport: asyncio.DatagramTransport,
                           data: bytes, query: Query, addr: tuple[str, int]) -> None:
        reply = await self._forwarded(served, data, query, tcp=False)
        if not transport.is_closing():
            transport.sendto(reply, addr)

    def _on_tcp_message(self, client: _TcpClient, data: bytes) -> None:
        try:
            reply, query = self._local(client.served.key, data, tcp=True)
        except Exception as e:  # noqa: BLE001 - as for a datagram: this query only
            log.error("dns %s: a %d-byte TCP query: %r", client.served.key, len(data), e)
            client.close()
            return
        if reply is not None:
            client.send(reply)
        elif query is not None:
            self._track(client.served, asyncio.get_running_loop().create_task(
                self._forward_tcp(client, data, query)))
        else:
            client.close()  # not even a header: nothing to say to such a client

    async def _forward_tcp(self, client: _TcpClient, data: bytes, query: Query) -> None:
        client.send(await self._forwarded(client.served, data, query, tcp=True))
