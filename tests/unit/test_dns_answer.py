"""What the embedded DNS server answers itself and what it forwards, with fake callbacks."""

from __future__ import annotations

import ipaddress

import dns.message
import pytest

from skiff.net import dns_message as m
from skiff.net.dns_answer import local_answer, ptr_address


class Engine:
    """A fake of the engine's two look-ups: per asking container, a table of names and
    one of addresses; every call is kept."""

    def __init__(self) -> None:
        self.names = {"c1": {"web": ["10.0.0.2", "fd00::2", "10.0.0.9", "10.0.0.2"],
                             "db": ["10.0.0.3"], "v6only": ["fd00::7"], "bad": ["nope"]},
                      "c2": {"web": ["10.1.0.2"]}}
        self.addresses = {"c1": {"10.0.0.2": "web", "fd00::2": "web.mynet",
                                 "10.0.0.66": "x" * 64}}
        self.calls: list[tuple[str, str, str]] = []

    def resolve(self, key: str, name: str) -> list[str]:
        self.calls.append(("resolve", key, name))
        return self.names.get(key, {}).get(name, [])

    def reverse(self, key: str, ip: str) -> str | None:
        self.calls.append(("reverse", key, ip))
        return self.addresses.get(key, {}).get(ip)


@pytest.fixture
def engine() -> Engine:
    return Engine()


def ask(engine: Engine, name: str, rdtype: str = "A", key: str = "c1",
        rdclass: str = "IN") -> list[str] | None:
    query = m.parse_query(dns.message.make_query(name, rdtype, rdclass).to_wire())
    records = local_answer(query, key, engine.resolve, engine.reverse)
    if records is None:
        return None
    out = []
    for r in records:
        if r.rtype in (m.TYPE_A, m.TYPE_AAAA):
            out.append(str(ipaddress.ip_address(r.rdata)))
        else:
            labels, _ = m.read_name(r.rdata, 0)
            out.append(b".".join(labels).decode())
    return out


def test_a_in_the_callbacks_order_without_duplicates(engine: Engine):
    assert ask(engine, "web") == ["10.0.0.2", "10.0.0.9"]
    assert ask(engine, "web", key="c2") == ["10.1.0.2"]  # the asking container's view


def test_names_are_matched_without_case_and_trailing_dot(engine: Engine):
    assert ask(engine, "WEB.") == ask(engine, "Web") == ["10.0.0.2", "10.0.0.9"]
    assert {c[2] for c in engine.calls} == {"web"}
    assert {c[1] for c in engine.calls} == {"c1"}


def test_aaaa_and_a_known_name_without_the_family_gets_an_empty_answer(engine: Engine):
    assert ask(engine, "web", "AAAA") == ["fd00::2"]
    assert ask(engine, "db", "AAAA") == []
    assert ask(engine, "v6only", "A") == []
    assert ask(engine, "bad", "A") == []  # a callback's unreadable entry is skipped


def test_mx_of_a_known_name_is_empty_and_other_types_are_forwarded(engine: Engine):
    assert ask(engine, "web", "MX") == []
    assert ask(engine, "web", "TXT") is None
    assert ask(engine, "web", "SRV") is None
    assert ask(engine, "web", "A", rdclass="CH") is None


def test_unknown_names_are_forwarded(engine: Engine):
    assert ask(engine, "example.org") is None
    assert ask(engine, "example.org", "AAAA") is None
    assert ask(engine, "web", key="c3") is None
    assert ask(engine, ".") is None  # the root is nobody's
    engine.calls.clear()
    query = m.parse_query(b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                          b"\x03w.b\x00\x00\x01\x00\x01")  # a label with a dot in it
    assert local_answer(query, "c1", engine.resolve, engine.reverse) is None
    assert engine.calls == []  # never asked the engine


def test_ptr(engine: Engine):
    assert ask(engine, "2.0.0.10.in-addr.arpa", "PTR") == ["web"]
    v6 = ipaddress.ip_address("fd00::2").reverse_pointer
    assert ask(engine, v6.upper(), "PTR") == ["web.mynet"]
    assert ask(engine, "3.0.0.10.in-addr.arpa", "PTR") is None  # not known: forwarded
    assert ask(engine, "66.0.0.10.in-addr.arpa", "PTR") is None  # a name DNS cannot carry
    assert ("reverse", "c1", "fd00::2") in engine.calls


@pytest.mark.parametrize("name, address", [
    ("4.3.2.1.in-addr.arpa", "1.2.3.4"),
    ("0.0.0.0.in-addr.arpa", "0.0.0.0"),
    (ipaddress.ip_address("2001:db8::1").reverse_pointer, "2001:db8::1"),
    ("3.2.1.in-addr.arpa", None),
    ("5.4.3.2.1.in-addr.arpa", None),
    ("256.3.2.1.in-addr.arpa", None),
    ("04.3.2.1.in-addr.arpa", None),
    ("a.3.2.1.in-addr.arpa", None),
    ("-1.3.2.1.in-addr.arpa", None),
    ("1.0.ip6.arpa", None),
    ("g" + ipaddress.ip_address("2001:db8::1").reverse_pointer[1:], None),
    ("in-addr.arpa", None),
    ("web", None),
])
def test_ptr_address(name: str, address: str | None):
    assert ptr_address(name) == address
