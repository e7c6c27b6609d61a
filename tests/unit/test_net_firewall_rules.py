"""skiff.net.firewall's rules as text: what a table holds, and the input it refuses."""

from __future__ import annotations

import pytest

from skiff.errors import InvalidArgument
from skiff.net import firewall
from skiff.net.firewall import BridgeRule, PortRule

TABLE = "skiff_test"


def test_the_table_holds_each_rule_once() -> None:
    text = firewall.render(TABLE, [BridgeRule("br-a", "10.1.1.0/24"),
                                   BridgeRule("br-i", "10.1.2.7/24", internal=True)],
                           [PortRule("tcp", "", 8080, "10.1.1.2", 80, "br-a"),
                            PortRule("udp", "127.0.0.1", 53, "10.1.1.2", 5353, "br-a")])
    # one batch that makes sure the table exists, deletes it and makes it anew
    assert text.startswith(f"table ip {TABLE} {{}}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n")
    for rule in ['ip saddr 10.1.1.0/24 oifname != "br-a" masquerade',
                 'iifname "br-i" oifname != "br-i" drop', 'oifname "br-i" iifname != "br-i" drop',
                 'iifname "br-a" oifname { "br-i" } drop', "ct status dnat accept",
                 "ct state established,related accept", 'oifname "br-a" iifname != "br-a" drop',
                 "meta l4proto tcp th dport 8080 dnat to 10.1.1.2:80",
                 "ip daddr 127.0.0.1 meta l4proto udp th dport 53 dnat to 10.1.1.2:5353",
                 'oifname "br-a" ip saddr 127.0.0.0/8 masquerade',
                 'oifname "br-a" ct status dnat ip saddr 10.1.1.0/24 masquerade']:
        assert text.count(rule) == 1, rule
    assert "10.1.2.0/24" not in text  # an internal subnet is not masqueraded


def test_bad_input_is_refused_before_any_change() -> None:
    a = BridgeRule("br-a", "10.1.1.0/24")
    for bridges, ports, message in [
        ([BridgeRule("br a", "10.1.1.0/24")], [], "interface name"),
        ([BridgeRule("br-a", "10.1.1.0/33")], [], "invalid subnet"),
        ([BridgeRule("br-a", "fd00::/64")], [], "only IPv4"),
        ([a, a], [], "twice"),
        ([a], [PortRule("icmp", "", 80, "10.1.1.2", 80, "br-a")], "invalid proto"),
        ([a], [PortRule("tcp", "", 0, "10.1.1.2", 80, "br-a")], "invalid port"),
        ([a], [PortRule("tcp", "1.2.3", 80, "10.1.1.2", 80, "br-a")], "invalid IP"),
        ([a], [PortRule("tcp", "", 80, "10.1.1.2", 80, "br-b")], "not among"),
        ([a], [PortRule("tcp", "", 80, "10.1.1.2", 80, "br-a"),
               PortRule("tcp", "127.0.0.1", 80, "10.1.1.3", 80, "br-a")], "given twice"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            firewall.render(TABLE, bridges, ports)
    with pytest.raises(InvalidArgument, match="table name"):
        firewall.remove("bad name;")
    # the same port on two host addresses, or tcp and udp, is fine
    firewall.render(TABLE, [a], [PortRule("tcp", "127.0.0.1", 80, "10.1.1.2", 80, "br-a"),
                                 PortRule("tcp", "10.9.0.1", 80, "10.1.1.3", 80, "br-a"),
                                 PortRule("udp", "", 80, "10.1.1.3", 80, "br-a")])


def test_table_names_per_run() -> None:
    assert firewall.table_for_run("/run/skiff") == "skiff"
    one, two = firewall.table_for_run("/tmp/a/run"), firewall.table_for_run("/tmp/b/run")
    assert one != two and one.startswith("skiff_")
    firewall.render(one, [], [])
