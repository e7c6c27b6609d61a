"""`NetworkPorts` without a kernel's firewall: when the table is applied, appended to,
left alone or removed; a start's ports recorded on its gateway endpoint, Docker's words for
a taken one with nothing held, the run's end and skiffd's start and stop. The firewall's
calls are recorded by a fake; the host ports are real sockets on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from skiff.engine import network_ports
from skiff.engine.network_ports import NetworkPorts, network_ports_of, published_of
from skiff.engine.networks import NetworkService
from skiff.engine.state_db import ContainerRow
from skiff.errors import PortAllocated
from skiff.net import firewall
from skiff.net.ports import PortAllocator
from skiff.net.publish import PortPublisher
from test_engine_networks import container, net, running_on, user_network  # noqa: F401 - net: the fixture


class FakeFirewall:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def apply(self, table: str, bridges: Any, ports: Any, forwarding: bool = True) -> None:
        self.calls.append(("apply", [b.bridge for b in bridges], [p.host_port for p in ports]))

    def append_ports(self, table: str, bridges: Any, applied: Any, ports: Any) -> bool:
        if list(ports[:len(applied)]) != list(applied) or len(ports) == len(applied):
            return False  # the real one's contract: only an append is one
        self.calls.append(("append", [p.host_port for p in ports[len(applied):]]))
        return True

    def remove(self, table: str) -> None:
        self.calls.append(("remove",))

    def foreign_forward_drops(self, table: str) -> list[str]:
        return ["ip filter FORWARD"]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFirewall:
    f = FakeFirewall()
    for name in ("apply", "append_ports", "remove", "foreign_forward_drops"):
        monkeypatch.setattr(firewall, name, getattr(f, name))
    return f


@pytest.fixture
def ports(net: NetworkService, fake: FakeFirewall) -> Iterator[NetworkPorts]:
    made = NetworkPorts(net, "skiff_unit")
    made._publisher = PortPublisher(PortAllocator(ipv6=False))
    net.ports = made
    yield made
    made.close()


def started(net: NetworkService, name: str, address: str, bindings: dict[str, Any]) -> ContainerRow:
    row = net.db.get(("web".encode().hex() * 64)[:64]) or user_network(net, "web", "10.7.0.0/24")
    crow = container(net, name)
    crow.doc["Config"]["ExposedPorts"] = {k: {} for k in bindings}
    crow.doc["HostConfig"]["PortBindings"] = bindings
    crow.state["Running"] = True
    running_on(net, crow, row, address)
    ep = net.db.endpoints(cid=crow.id)[0]
    net.db.set_endpoint_doc(row.id, crow.id, {**ep.doc, "DefaultRoute": True})
    return crow


def test_the_table_follows_networks_and_ports(net: NetworkService, ports: NetworkPorts,
                                              fake: FakeFirewall) -> None:
    ports.sync()
    assert fake.calls == []  # nothing before skiffd's start has restored what runs
    ports.restore(set())
    assert fake.calls == [("remove",)]  # no bridge, no port: a table left from before goes
    crow = started(net, "c1", "10.7.0.2", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
    net.endpoints_changed()
    bridge = f"br-{net.find('web').id[:12]}"
    assert fake.calls[-1] == ("apply", [bridge], [])
    assert ports.warnings and "ip filter FORWARD" in ports.warnings[0]
    net.endpoints_changed()
    assert len(fake.calls) == 2  # the same table again: not applied
    got = ports.publish(crow, net.db.endpoints(cid=crow.id))
    assert [(p.proto, p.container_port, p.host_ip) for p in got] == [("tcp", 80, "127.0.0.1")]
    assert fake.calls[-1] == ("append", [got[0].host_port])  # rules added, nothing replaced
    assert published_of(net, crow.id) == got
    assert network_ports_of(net, crow) == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(got[0].host_port)}]}
    # a second container asking for the same port: Docker's words, nothing held
    other = started(net, "c2", "10.7.0.3",
                    {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(got[0].host_port)}]})
    with pytest.raises(PortAllocated) as info:
        ports.publish(other, net.db.endpoints(cid=other.id))
    assert str(info.value) == (f"driver failed programming external connectivity on endpoint c2 "
                               f"({'e' * 64}): Bind for 127.0.0.1:{got[0].host_port} failed: "
                               f"port is already allocated")
    assert ports.publisher.published(other.id) == [] and published_of(net, other.id) == []
    ports.run_ended(crow.id)
    assert fake.calls[-1] == ("apply", [bridge], [])  # its rules gone with its run
    assert ports.publisher.allocator.held() == []
    crow.state["Running"] = False
    assert network_ports_of(net, crow) == {}


def test_no_gateway_endpoint_publishes_nothing(net: NetworkService, ports: NetworkPorts) -> None:
    crow = started(net, "c1", "10.7.0.2", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
    ep = net.db.endpoints(cid=crow.id)[0]
    net.db.set_endpoint_doc(ep.network_id, crow.id, {**ep.doc, "DefaultRoute": False})
    assert ports.publish(crow, net.db.endpoints(cid=crow.id)) == []  # internal networks only


def test_restore_holds_the_same_ports_again(net: NetworkService, ports: NetworkPorts,
                                            fake: FakeFirewall) -> None:
    ports.restore(set())
    crow = started(net, "c1", "10.7.0.2", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
    got = ports.publish(crow, net.db.endpoints(cid=crow.id))
    ports.close()  # skiffd's stop: the table stays as it is, the sockets go
    assert fake.calls[-1][0] != "remove"
    again = NetworkPorts(net, "skiff_unit")
    again._publisher = PortPublisher(PortAllocator(ipv6=False))
    net.ports = again
    again.restore({crow.id})
    assert again.publisher.published(crow.id) == got  # the very host port
    assert fake.calls[-1] == ("apply", [f"br-{net.find('web').id[:12]}"], [got[0].host_port])
    assert network_ports.published_ports(net, crow.id) == {f"{got[0].host_port}/tcp"}
    again.close()


def test_the_tables_bridges(net: NetworkService, ports: NetworkPorts) -> None:
    net.ensure_predefined()  # as skiffd's start does
    front = user_network(net, "front", "10.7.0.0/24", internal=True)
    assert [(r.bridge, r.subnet, r.internal) for r in ports._bridges()] == \
        [(f"br-{front.id[:12]}", "10.7.0.0/24", True)]
    net._bridges.add("skiff0")  # as after the default bridge's first container
    assert ("skiff0", "172.29.0.0/16", False) in \
        [(r.bridge, r.subnet, r.internal) for r in ports._bridges()]
