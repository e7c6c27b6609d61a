"""The userland proxy: published ports served from a socket in the host, as docker-proxy.

The kernel's DNAT (skiff.net.firewall) carries most traffic to a published port; what it
does not reach — IPv6 (``::1``, ``[::]``) when the host address is unspecified, a host
where the table is not applied — comes to the listening socket here and is relayed to
the container. The listening socket is the very one that reserved the port
(skiff.net.ports.Reservation), so the port is held from allocation to release with no
gap, and closing a forward frees it.

One `ProxyLoop` thread serves every forward of an engine with one epoll selector, where
docker-proxy runs one process per port and two goroutines per connection. TCP bytes never
enter Python: each direction of a connection is a pipe, and ``os.splice`` moves data
socket → pipe → socket inside the kernel, up to the pipe's size (1 MiB where allowed) per
call. A side that stops accepting data stops the reading of the other (the pipe stays
full, its reader is not polled): back-pressure without buffers of our own. End of stream
is relayed as ``shutdown(SHUT_WR)`` once the pipe is drained, so half-closed connections
work; a reset or error on either side closes both. UDP is relayed per client: each
client address gets a socket connected to the container, replies go back from the
published socket, and a flow idle for `udp_timeout` seconds (docker-proxy's 90) is closed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from skiff.errors import InvalidArgument
from skiff.net.ports import Reservation

F_SETPIPE_SZ = 1031
PIPE_SIZE = 1 << 20
SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
UDP_TIMEOUT = 90.0
UDP_BUFSIZE = 65507
ACCEPT_BURST = 64
PUMP_ROUNDS = 8
_GONE = (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT, errno.EHOSTUNREACH,
         errno.ECONNREFUSED, errno.ENETUNREACH)


class _Stream:
    """One direction of a TCP connection: `src` → pipe → `dst`."""

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src, self.dst = src, dst
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.size = fcntl.fcntl(self.w, F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # above /proc/sys/fs/pipe-max-size for an unprivileged user
            self.size = 65536
        self.buffered = 0
        self.eof = False
        self.done = False

    def wants_read(self) -> bool:
        return not self.eof and self.buffered < self.size

    def wants_write(self) -> bool:
        return self.buffered > 0

    def pump(self) -> None:
        """Move what can move now: into the pipe while it has room and `src` has data, out
        while `dst` takes it; a few rounds at most, so that one busy stream cannot starve
        the loop's other connections."""
        for _ in range(PUMP_ROUNDS):
            moved = False
            if self.wants_read():
                try:
                    n = os.splice(self.src.fileno(), self.w, self.size - self.buffered, flags=SPLICE_FLAGS)
                except BlockingIOError:
                    n = -1
                if n == 0:
                    self.eof = True
                elif n > 0:
                    self.buffered += n
                    moved = True
            if self.buffered:
                try:
                    n = os.splice(self.r, self.dst.fileno(), self.buffered, flags=SPLICE_FLAGS)
                    self.buffered -= n
                    moved = moved or n > 0
                except BlockingIOError:
                    pass
            if not moved:
                break
        if self.eof and not self.buffered and not self.done:
            self.done = True
            try:
                self.dst.shutdown(socket.SHUT_WR)
            except OSError as e:
                if e.errno != errno.ENOTCONN:
                    raise

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class _TcpConn:
    """A client and its connection to the container, relayed both ways once connected."""

    def __init__(self, loop: ProxyLoop, fwd: Forward, client: socket.socket) -> None:
        self.loop, self.fwd, self.client = loop, fwd, client
        self.upstream = socket.socket(socket.AF_INET6 if ":" in fwd.container_ip else socket.AF_INET)
        self.upstream.setblocking(False)
        self.streams: tuple[_Stream, _Stream] | None = None
        self.masks = {client: 0, self.upstream: 0}
        for s in (client, self.upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = self.upstream.connect_ex((fwd.container_ip, fwd.container_port))
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, os.strerror(err))
        self._watch(self.upstream, selectors.EVENT_WRITE)

    def _watch(self, s: socket.socket, mask: int) -> None:
        if mask == self.masks[s]:
            return
        sel = self.loop.selector
        if not self.masks[s]:
            sel.register(s, mask, self.on_event)
        elif not mask:
            sel.unregister(s)
        else:
            sel.modify(s, mask, self.on_event)
        self.masks[s] = mask

    def on_event(self, s: socket.socket, mask: int) -> None:
        try:
            if self.streams is None:
                err = self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                self.streams = (_Stream(self.client, self.upstream), _Stream(self.upstream, self.client))
            else:
                for stream in self.streams:
                    if (stream.src is s and mask & selectors.EVENT_READ) or (
                            stream.dst is s and mask & selectors.EVENT_WRITE):
                        stream.pump()
        except OSError as e:
            if e.errno not in _GONE:
                self.loop.report(f"proxy {self.fwd}: {e}")
            self.close()
            return
        if all(st.done for st in self.streams):
            self.close()
            return
        for sock in (self.client, self.upstream):
            mask = 0
            for st in self.streams:
                if st.src is sock and st.wants_read():
                    mask |= selectors.EVENT_READ
                if st.dst is sock and st.wants_write():
                    mask |= selectors.EVENT_WRITE
            self._watch(sock, mask)

    def close(self) -> None:
        for s in (self.client, self.upstream):
            if self.masks[s]:
                self.loop.selector.unregister(s)
                self.masks[s] = 0
            s.close()
        if self.streams:
            for st in self.streams:
                st.close()
            self.streams = None
        self.fwd.conns.discard(self)


@dataclass
class _UdpFlow:
    client: tuple[str, int]
    upstream: socket.socket
    last: float


@dataclass(eq=False)
class Forward:
    """One published port served by the proxy: `close` (or `ProxyLoop.remove`) frees it."""

    reservation: Reservation
    container_ip: str
    container_port: int
    loop: ProxyLoop
    conns: set[_TcpConn] = field(default_factory=set)
    flows: dict[tuple[socket.socket, tuple[str, int]], _UdpFlow] = field(default_factory=dict)
    accepted: int = 0  # TCP connections relayed so far

    def __str__(self) -> str:
        r = self.reservation
        return f"{r.proto} {r.host_ip or '*'}:{r.host_port} -> {self.container_ip}:{self.container_port}"

    def close(self) -> None:
        self.loop.remove(self)


class ProxyLoop:
    """The thread that serves every forward; `add` and `remove` may be called from any thread."""

    def __init__(self, udp_timeout: float = UDP_TIMEOUT, report: Callable[[str], None] | None = None) -> None:
        self.selector = selectors.DefaultSelector()
        self.udp_timeout = udp_timeout
        self.report = report or (lambda message: None)
        self._calls: list[tuple[Callable[[], object], threading.Event, list[object]]] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self._forwards: set[Forward] = set()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="skiff-proxy", daemon=True)
        self._thread.start()

    # -- the public surface: runs `fn` on the loop's thread and waits for it --
    def _call(self, fn: Callable[[], object]) -> object:
        if threading.current_thread() is self._thread:
            return fn()
        done, result = threading.Event(), list[object]()
        with self._lock:
            if not self._running:
                raise InvalidArgument("the proxy loop is closed")
            self._calls.append((fn, done, result))
        os.write(self._wake_w, b"x")
        done.wait()
        if result and isinstance(result[0], BaseException):
            raise result[0]
        return result[0] if result else None

    def add(self, reservation: Reservation, container_ip: str, container_port: int) -> Forward:
        """Serve `reservation`'s sockets, relaying to container_ip:container_port."""
        if reservation.proto not in ("tcp", "udp"):
            raise InvalidArgument(f"the userland proxy relays tcp and udp, not {reservation.proto}")
        if not reservation.sockets:
            raise InvalidArgument(f"port {reservation.host_port}/{reservation.proto} is not held")
        fwd = Forward(reservation, container_ip, container_port, self)

        def register() -> Forward:
            for s in reservation.sockets:
                s.setblocking(False)
                if reservation.proto == "tcp":
                    s.listen(1024)
                    self.selector.register(s, selectors.EVENT_READ, lambda s, m: self._accept(fwd, s))
                else:
                    self.selector.register(s, selectors.EVENT_READ, lambda s, m: self._datagram(fwd, s))
            self._forwards.add(fwd)
            return fwd
        result = self._call(register)
        assert isinstance(result, Forward)
        return result

    def remove(self, fwd: Forward) -> None:
        """Stop serving `fwd`: its connections and flows closed, its port freed."""
        def unregister() -> None:
            if fwd not in self._forwards:
                return
            self._forwards.discard(fwd)
            for s in fwd.reservation.sockets:
                self.selector.unregister(s)
            for conn in list(fwd.conns):
                conn.close()
            for flow in fwd.flows.values():
                self.selector.unregister(flow.upstream)
                flow.upstream.close()
            fwd.flows.clear()
            fwd.reservation.close()
        self._call(unregister)

    def close(self) -> None:
        """Every forward removed and the thread ended."""
        for fwd in list(self._forwards):
            self.remove(fwd)

        def stop() -> None:
            self._running = False
        self._call(stop)
        self._thread.join()
        self.selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- the loop's own side --
    def _on_wake(self, fd: int, mask: int) -> None:
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass
        with self._lock:
            calls, self._calls = self._calls, []
        for fn, done, result in calls:
            try:
                result.append(fn())
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                result.append(e)
            done.set()

    def _run(self) -> None:
        while self._running:
            timeout = self.udp_timeout / 4 if any(f.flows for f in self._forwards) else None
            for key, mask in self.selector.select(timeout):
                key.data(key.fileobj, mask)
            self._expire_flows()
        with self._lock:
            self._running = False
            calls, self._calls = self._calls, []
        for _fn, done, result in calls:
            result.append(InvalidArgument("the proxy loop is closed"))
            done.set()

    def _accept(self, fwd: Forward, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                client, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: the client waits in the backlog
                self.report(f"proxy {fwd}: accept: {e}")
                return
            client.setblocking(False)
            fwd.accepted += 1
            try:
                fwd.conns.add(_TcpConn(self, fwd, client))
            except OSError as e:
                self.report(f"proxy {fwd}: connect: {e}")
                client.close()

    def _datagram(self, fwd: Forward, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                data, client = listener.recvfrom(UDP_BUFSIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.report(f"proxy {fwd}: recvfrom: {e}")
                return
            key = (listener, client[:2])
            flow = fwd.flows.get(key)
            if flow is None:
                up = socket.socket(socket.AF_INET6 if ":" in fwd.container_ip else socket.AF_INET,
                                   socket.SOCK_DGRAM)
                up.setblocking(False)
                try:
                    up.connect((fwd.container_ip, fwd.container_port))
                except OSError as e:
                    self.report(f"proxy {fwd}: connect: {e}")
                    up.close()
                    continue
                flow = fwd.flows[key] = _UdpFlow(client[:2], up, time.monotonic())
                self.selector.register(up, selectors.EVENT_READ,
                                       lambda s, m, key=key: self._reply(fwd, key))
            flow.last = time.monotonic()
            try:
                flow.upstream.send(data)
            except OSError as e:  # ECONNREFUSED from an earlier ICMP: the datagram is lost
                if e.errno not in _GONE + (errno.EAGAIN,):
                    self.report(f"proxy {fwd}: send: {e}")

    def _reply(self, fwd: Forward, key: tuple[socket.socket, tuple[str, int]]) -> None:
        flow = fwd.flows[key]
        listener = key[0]
        for _ in range(ACCEPT_BURST):
            try:
                data = flow.upstream.recv(UDP_BUFSIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP port unreachable from the container: nothing to relay
            flow.last = time.monotonic()
            try:
                listener.sendto(data, flow.client)
            except OSError:
                return

    def _expire_flows(self) -> None:
        now = time.monotonic()
        for fwd in self._forwards:
            for key, flow in list(fwd.flows.items()):
                if now - flow.last > self.udp_timeout:
                    self.selector.unregister(flow.upstream)
                    flow.upstream.close()
                    del fwd.flows[key]
