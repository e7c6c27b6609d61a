"""skiff.net.firewall on the real kernel: masquerade, published ports, internal and isolated bridges.

Each test builds its own "host" namespace holding two bridges (A: 10.1.1.0/24 with two
containers, B: 10.1.2.0/24 with one) and an "outside" namespace joined to the host by a
veth on 10.9.0.0/24, with no route to the bridges' subnets: what the outside sees as a
client's address is what the host's masquerade made of it. The firewall runs inside the
host namespace, so nothing of it reaches the real host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from netlab import TCP_WHOAMI, UDP_WHOAMI, Lab
from skiff.errors import FirewallError, InvalidArgument
from skiff.net import firewall
from skiff.net.firewall import BridgeRule, PortRule

pytestmark = [pytest.mark.root, pytest.mark.netns]

TABLE = "skiff_test"


class Net:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.host = lab.netns("host")
        self.br_a, self.br_b = lab.ifname("ba"), lab.ifname("bb")
        lab.bridge(self.host, self.br_a, "10.1.1.1/24")
        lab.bridge(self.host, self.br_b, "10.1.2.1/24")
        self.c1 = lab.container(self.host, self.br_a, "c1", "10.1.1.2/24", "10.1.1.1")
        self.c2 = lab.container(self.host, self.br_a, "c2", "10.1.1.3/24", "10.1.1.1")
        self.c3 = lab.container(self.host, self.br_b, "c3", "10.1.2.2/24", "10.1.2.1")
        self.outside = lab.netns("out")
        lab.link(self.host, "10.9.0.1/24", self.outside, "10.9.0.2/24", "o")
        # a neighbour that knows the way to the containers: only the table keeps it out
        lab.ip(self.outside, "route", "add", "10.1.0.0/16", "via", "10.9.0.1")

    def bridges(self, internal_b: bool = False) -> list[BridgeRule]:
        return [BridgeRule(self.br_a, "10.1.1.0/24"), BridgeRule(self.br_b, "10.1.2.0/24", internal=internal_b)]

    def apply(self, bridges: list[BridgeRule], ports: list[PortRule] = []) -> None:
        self.lab.inside(self.host, lambda: firewall.apply(TABLE, bridges, ports))

    def table(self) -> bool:
        return bool(self.lab.inside(self.host, lambda: firewall.exists(TABLE)))


@pytest.fixture
def net(tmp_root: Path) -> Iterator[Net]:  # tmp_root: the session's leftover check
    lab = Lab()
    try:
        yield Net(lab)
    finally:
        lab.close()


def test_outbound_is_masqueraded_and_remove_leaves_no_table(net: Net) -> None:
    net.lab.start(net.outside, TCP_WHOAMI, "7000")
    net.apply(net.bridges())
    assert net.table()
    assert net.lab.ask(net.c1, "10.9.0.2", 7000) == "10.9.0.1"
    assert net.lab.ask(net.c3, "10.9.0.2", 7000) == "10.9.0.1"
    net.apply(net.bridges())  # idempotent: the same state again changes nothing
    assert net.lab.ask(net.c1, "10.9.0.2", 7000) == "10.9.0.1"
    net.lab.inside(net.host, lambda: firewall.remove(TABLE))
    assert not net.table()
    # without the table the outside sees the container's own address (it has a route back)
    assert net.lab.ask(net.c1, "10.9.0.2", 7000) == "10.1.1.2"
    net.lab.inside(net.host, lambda: firewall.remove(TABLE))  # removing nothing is fine


def test_published_port_answers_on_loopback_from_outside_and_by_hairpin(net: Net) -> None:
    net.lab.start(net.c1, TCP_WHOAMI, "80")
    net.apply(net.bridges(), [PortRule("tcp", "", 8080, "10.1.1.2", 80, net.br_a)])
    # the host's own loopback: masqueraded to the bridge's address (route_localnet)
    assert net.lab.ask(net.host, "127.0.0.1", 8080) == "10.1.1.1"
    # the host's other addresses: DNAT'd too, and the source is kept (the reply routes back)
    assert net.lab.ask(net.host, "10.9.0.1", 8080) == "10.9.0.1"
    # from outside, the client's own address comes through (DNAT only)
    assert net.lab.ask(net.outside, "10.9.0.1", 8080) == "10.9.0.2"
    # hairpin: the container itself, and its neighbour, through the host's address
    assert net.lab.ask(net.c1, "10.1.1.1", 8080) == "10.1.1.1"
    assert net.lab.ask(net.c2, "10.9.0.1", 8080) == "10.1.1.1"
    # a container on the other bridge reaches the published port (not the container itself)
    assert net.lab.ask(net.c3, "10.1.2.1", 8080) in ("10.1.1.1", "10.1.2.2")


def test_published_port_on_one_host_ip_and_udp(net: Net) -> None:
    net.lab.start(net.c1, TCP_WHOAMI, "80")
    net.lab.start(net.c1, UDP_WHOAMI, "53")
    net.apply(net.bridges(), [PortRule("tcp", "127.0.0.1", 8081, "10.1.1.2", 80, net.br_a),
                              PortRule("udp", "0.0.0.0", 5353, "10.1.1.2", 53, net.br_a)])
    assert net.lab.ask(net.host, "127.0.0.1", 8081) == "10.1.1.1"
    assert net.lab.ask(net.outside, "10.9.0.1", 8081, timeout=1) == "ConnectionRefusedError"
    udp = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b"hello", (sys.argv[1], 5353)); print(s.recv(100).decode())
"""
    assert net.lab.run(net.outside, udp, "10.9.0.1").stdout.strip() == "10.9.0.2 hello"
    assert net.lab.run(net.host, udp, "127.0.0.1").stdout.strip() == "10.1.1.1 hello"


def test_internal_bridge_reaches_nothing_outside_it(net: Net) -> None:
    net.lab.start(net.outside, TCP_WHOAMI, "7000")
    net.lab.start(net.c1, TCP_WHOAMI, "80")
    net.lab.start(net.c3, TCP_WHOAMI, "80")
    assert net.lab.ask(net.outside, "10.1.2.2", 80) == "10.9.0.2"  # the route alone lets it in
    net.apply(net.bridges(internal_b=True))
    assert net.lab.ask(net.c1, "10.9.0.2", 7000) == "10.9.0.1"
    assert net.lab.ask(net.c3, "10.9.0.2", 7000, timeout=1) == "TimeoutError"
    assert net.lab.ask(net.c3, "10.1.1.2", 80, timeout=1) == "TimeoutError"
    assert net.lab.ask(net.outside, "10.1.2.2", 80, timeout=1) == "TimeoutError"
    assert net.lab.ask(net.c1, "10.1.2.2", 80, timeout=1) == "TimeoutError"
    with pytest.raises(InvalidArgument, match="internal"):
        firewall.render(TABLE, net.bridges(internal_b=True),
                        [PortRule("tcp", "", 8080, "10.1.2.2", 80, net.br_b)])


def test_bridges_are_isolated_but_a_bridge_talks_to_itself(net: Net) -> None:
    net.lab.start(net.c1, TCP_WHOAMI, "80")
    net.lab.start(net.c3, TCP_WHOAMI, "80")
    # the topology itself routes between the bridges and from outside: the table stops it
    assert net.lab.ask(net.c3, "10.1.1.2", 80) == "10.1.2.2"
    assert net.lab.ask(net.outside, "10.1.1.2", 80) == "10.9.0.2"
    net.apply(net.bridges())
    assert net.lab.ask(net.c3, "10.1.1.2", 80, timeout=1) == "TimeoutError"
    assert net.lab.ask(net.c1, "10.1.2.2", 80, timeout=1) == "TimeoutError"
    assert net.lab.ask(net.outside, "10.1.1.2", 80, timeout=1) == "TimeoutError"
    assert net.lab.ask(net.c2, "10.1.1.2", 80) == "10.1.1.3"


def test_a_refused_batch_keeps_the_rules_in_force(net: Net) -> None:
    net.lab.start(net.outside, TCP_WHOAMI, "7000")
    net.apply(net.bridges())
    missing = BridgeRule(net.lab.ifname("zz"), "10.1.3.0/24")
    # route_localnet of a bridge that is not there: refused before nft is even asked
    with pytest.raises(FirewallError):
        net.apply(net.bridges() + [missing], [PortRule("tcp", "", 8080, "10.1.3.2", 80, missing.bridge)])
    # a replacement that nft refuses half-way (the table already deleted in the batch) is
    # undone whole by the kernel: the masquerade is still there
    good = firewall.render(TABLE, net.bridges(), [])
    broken = good.replace("masquerade", "masquerade to nowhere", 1)
    with pytest.raises(FirewallError):
        net.lab.inside(net.host, lambda: firewall._nft(broken, "-f", "-"))
    assert net.lab.ask(net.c1, "10.9.0.2", 7000) == "10.9.0.1"


def test_foreign_forward_drop_is_named(net: Net) -> None:
    def other_engine() -> list[str]:
        firewall._nft("table ip other_engine {\n chain FORWARD { type filter hook forward "
                      "priority filter; policy drop; }\n}\n", "-f", "-")
        firewall.apply(TABLE, [], [])
        return firewall.foreign_forward_drops(TABLE)
    assert net.lab.inside(net.host, other_engine) == ["ip other_engine FORWARD"]


def test_ports_appended_make_the_table_a_replace_makes(net: Net) -> None:
    one = PortRule("tcp", "127.0.0.1", 8080, "10.1.1.2", 80, net.br_a)
    two = PortRule("udp", "", 5353, "10.1.2.2", 53, net.br_b)
    three = PortRule("tcp", "", 8081, "10.1.1.3", 80, net.br_a)
    bridges = net.bridges()

    def listing() -> str:
        return str(net.lab.inside(net.host, lambda: firewall._nft("", "list", "table", "ip", TABLE)))

    def append(applied: list[PortRule], ports: list[PortRule]) -> bool:
        return bool(net.lab.inside(net.host, lambda: firewall.append_ports(TABLE, bridges, applied, ports)))

    net.lab.start(net.c2, TCP_WHOAMI, "80")
    net.apply(bridges, [one])
    assert append([one], [one, two, three])
    appended = listing()
    assert net.lab.ask(net.outside, "10.9.0.1", 8081) == "10.9.0.2"  # the added DNAT works
    net.apply(bridges, [one, two, three])
    assert listing() == appended  # rule for rule what a whole replace makes
    assert not append([one, two], [two, three])  # not an append: the caller replaces
    assert not append([one], [one])
    with pytest.raises(InvalidArgument, match="given twice"):
        append([one], [one, PortRule("tcp", "", 8080, "10.1.1.3", 81, net.br_a)])
    assert listing() == appended  # a refusal changes nothing
