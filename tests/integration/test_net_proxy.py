"""skiff.net.proxy relaying for real: TCP both ways with half-close, UDP per client, ports freed.

The first tests relay on the loopback to a server thread of the test (a "container" at
127.0.0.1); the last puts the container in a namespace behind a bridge with the firewall
applied, where the kernel's DNAT answers 127.0.0.1 and the proxy answers ::1.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path
from typing import Iterator

import pytest

from netlab import TCP_WHOAMI, Lab
from skiff.errors import InvalidArgument
from skiff.net import firewall
from skiff.net.firewall import BridgeRule, PortRule
from skiff.net.ports import PortAllocator
from skiff.net.proxy import ProxyLoop


@pytest.fixture
def loop() -> Iterator[ProxyLoop]:
    p = ProxyLoop(udp_timeout=0.5)
    yield p
    p.close()


class DigestServer:
    """A TCP server thread: reads to EOF, answers with the sha256 of what it read and then
    `reply_size` bytes of a known pattern, then closes."""

    def __init__(self, reply_size: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.reply_size = reply_size
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            h = hashlib.sha256()
            while data := conn.recv(1 << 16):
                h.update(data)
            conn.sendall(h.hexdigest().encode())
            conn.sendall(pattern(self.reply_size))

    def close(self) -> None:
        self.thread.join(timeout=30)
        self.sock.close()


def pattern(n: int) -> bytes:
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


def test_tcp_relays_both_ways_with_half_close(loop: ProxyLoop) -> None:
    server = DigestServer(reply_size=48 << 20)
    alloc = PortAllocator(ipv6=False)
    fwd = loop.add(alloc.reserve("tcp", "127.0.0.1"), "127.0.0.1", server.port)
    payload = os.urandom(1 << 20) * 40  # 40 MiB up, 48 MiB down
    with socket.create_connection(("127.0.0.1", fwd.reservation.host_port), timeout=30) as c:
        def send() -> None:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()  # the server answers only after our EOF: the proxy must relay it
        got = bytearray()
        while data := c.recv(1 << 20):
            got += data
        sender.join()
    server.close()
    assert bytes(got[:64]) == hashlib.sha256(payload).hexdigest().encode()
    assert bytes(got[64:]) == pattern(48 << 20)
    fwd.close()


def test_closing_frees_the_port_and_cuts_connections(loop: ProxyLoop) -> None:
    backend = socket.create_server(("127.0.0.1", 0))
    alloc = PortAllocator(ipv6=False)
    fwd = loop.add(alloc.reserve("tcp", "127.0.0.1"), "127.0.0.1", backend.getsockname()[1])
    port = fwd.reservation.host_port
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    inner, _ = backend.accept()
    c.sendall(b"ping")
    assert inner.recv(4) == b"ping"
    fwd.close()
    assert c.recv(10) == b""  # the relay is gone with the forward
    assert alloc.held() == []
    with socket.socket() as again:
        # (SO_REUSEADDR: the proxy's side of the cut connection waits in TIME_WAIT)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()
    c.close()
    inner.close()
    backend.close()
    fwd.close()  # twice is fine


def test_many_connections_at_once_and_nothing_left_open(loop: ProxyLoop) -> None:
    backend = socket.create_server(("127.0.0.1", 0), backlog=128)

    def echo_each() -> None:
        for _ in range(60):
            conn, _ = backend.accept()
            threading.Thread(target=lambda c=conn: (c.sendall(c.recv(100).upper()), c.close()),
                             daemon=True).start()
    server = threading.Thread(target=echo_each, daemon=True)
    server.start()
    fds_before = len(os.listdir("/proc/self/fd"))
    fwd = loop.add(PortAllocator(ipv6=False).reserve("tcp", "127.0.0.1"), "127.0.0.1",
                   backend.getsockname()[1])
    clients = [socket.create_connection(("127.0.0.1", fwd.reservation.host_port), timeout=10)
               for _ in range(60)]
    for i, c in enumerate(clients):
        c.sendall(f"hello {i}".encode())
    assert [c.recv(100) for c in clients] == [f"HELLO {i}".encode() for i in range(60)]
    for c in clients:
        assert c.recv(10) == b""  # the backend's close relayed
        c.close()
    server.join(timeout=10)
    for _ in range(50):  # the loop closes both sides once both directions ended
        if not fwd.conns:
            break
        threading.Event().wait(0.05)
    assert not fwd.conns and fwd.accepted == 60
    fwd.close()
    backend.close()
    assert len(os.listdir("/proc/self/fd")) <= fds_before  # sockets and pipes all closed


def test_a_container_that_refuses_closes_the_client(loop: ProxyLoop) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nobody listens there once closed
    fwd = loop.add(PortAllocator(ipv6=False).reserve("tcp", "127.0.0.1"), "127.0.0.1", dead)
    with socket.create_connection(("127.0.0.1", fwd.reservation.host_port), timeout=10) as c:
        assert c.recv(10) == b""
    fwd.close()


def test_udp_round_trip_per_client_and_idle_flows_expire(loop: ProxyLoop) -> None:
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    echo.settimeout(10)

    def serve() -> None:
        for _ in range(3):
            data, peer = echo.recvfrom(65536)
            echo.sendto(data.upper(), peer)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    fwd = loop.add(PortAllocator(ipv6=False).reserve("udp", "127.0.0.1"), "127.0.0.1", echo.getsockname()[1])
    target = ("127.0.0.1", fwd.reservation.host_port)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (a, b):
        s.settimeout(10)
    a.sendto(b"one", target)
    assert a.recvfrom(100) == (b"ONE", target)
    b.sendto(b"two", target)
    assert b.recvfrom(100) == (b"TWO", target)
    assert len(fwd.flows) == 2  # a flow, and its socket to the container, per client
    deadline = threading.Event()
    for _ in range(40):
        if not fwd.flows:
            break
        deadline.wait(0.1)
    assert not fwd.flows  # idle past udp_timeout
    a.sendto(b"three", target)  # a new flow after the old one expired
    assert a.recvfrom(100) == (b"THREE", target)
    t.join()
    for s in (a, b, echo):
        s.close()
    fwd.close()


def test_refuses_what_it_cannot_relay(loop: ProxyLoop) -> None:
    r = PortAllocator(ipv6=False).reserve("tcp", "127.0.0.1")
    r.close()
    with pytest.raises(InvalidArgument, match="not held"):
        loop.add(r, "127.0.0.1", 80)


@pytest.mark.root
@pytest.mark.netns
def test_dnat_serves_ipv4_and_the_proxy_ipv6_of_one_published_port(tmp_root: Path) -> None:
    lab = Lab()
    try:
        host = lab.netns("host")
        br = lab.ifname("br")
        lab.bridge(host, br, "10.1.1.1/24")
        c1 = lab.container(host, br, "c1", "10.1.1.2/24", "10.1.1.1")
        lab.start(c1, TCP_WHOAMI, "80")

        def publish_and_ask() -> list[tuple[str, int]]:
            alloc = PortAllocator()
            r = alloc.reserve("tcp", "", "8080")
            assert len(r.sockets) == 2  # 0.0.0.0 and [::]
            firewall.apply("skiff_test", [BridgeRule(br, "10.1.1.0/24")],
                           [PortRule("tcp", "", 8080, "10.1.1.2", 80, br)])
            proxy = ProxyLoop()
            fwd = proxy.add(r, "10.1.1.2", 80)
            seen = []
            for addr in ("127.0.0.1", "::1"):
                with socket.create_connection((addr, 8080), timeout=5) as c:
                    seen.append((c.makefile().readline().strip(), fwd.accepted))
            proxy.close()
            return seen
        # 127.0.0.1 by DNAT (the proxy saw nothing), masqueraded to the bridge's address;
        # ::1 through the proxy, whose socket to the container has that address too
        assert lab.inside(host, publish_and_ask) == [["10.1.1.1", 0], ["10.1.1.1", 1]]
    finally:
        lab.close()
