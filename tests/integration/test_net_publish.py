"""skiff.net.publish: a container's ports held, proxied and turned into rules, all or nothing."""

from __future__ import annotations

import socket
from typing import Iterator

import pytest

from skiff.errors import InvalidArgument, PortAllocated
from skiff.net.firewall import PortRule
from skiff.net.ports import PortAllocator, PortBinding, Published
from skiff.net.publish import PortPublisher


@pytest.fixture
def publisher() -> Iterator[PortPublisher]:
    p = PortPublisher(PortAllocator(ipv6=False))
    yield p
    p.close()


def test_publish_serve_and_unpublish(publisher: PortPublisher) -> None:
    backend = socket.create_server(("127.0.0.1", 0))
    port = backend.getsockname()[1]
    got = publisher.publish("c1", [PortBinding("tcp", port, "127.0.0.1"),
                                   PortBinding("udp", 53, "127.0.0.1")], "127.0.0.1", "br-x")
    tcp, udp = got
    assert tcp.host_ip == "127.0.0.1" and tcp.host_port > 0 and udp.proto == "udp"
    assert publisher.published("c1") == got
    assert publisher.rules() == [PortRule("tcp", "127.0.0.1", tcp.host_port, "127.0.0.1", port, "br-x"),
                                 PortRule("udp", "127.0.0.1", udp.host_port, "127.0.0.1", 53, "br-x")]
    with socket.create_connection(("127.0.0.1", tcp.host_port), timeout=10) as c:
        inner, _ = backend.accept()
        c.sendall(b"x")
        assert inner.recv(1) == b"x"
        inner.close()
    publisher.unpublish("c1")
    assert publisher.rules() == [] and publisher.allocator.held() == []
    backend.close()


def test_a_taken_port_gives_back_what_the_call_took(publisher: PortPublisher) -> None:
    first = publisher.publish("c1", [PortBinding("tcp", 80, "127.0.0.1")], "10.1.1.2", "br-x")[0]
    with pytest.raises(PortAllocated, match="port is already allocated"):
        publisher.publish("c2", [PortBinding("tcp", 81, "127.0.0.1"),
                                 PortBinding("tcp", 80, "", str(first.host_port))], "10.1.1.3", "br-x")
    assert publisher.allocator.held() == [("tcp", "127.0.0.1", first.host_port)]
    assert publisher.published("c2") == []
    with pytest.raises(InvalidArgument, match="published already"):
        publisher.publish("c1", [], "10.1.1.2", "br-x")
    with pytest.raises(InvalidArgument, match="IPv4"):
        publisher.publish("c3", [], "fd00::2", "br-x")
    assert publisher.published("c1") == [Published("tcp", 80, "127.0.0.1", first.host_port)]
