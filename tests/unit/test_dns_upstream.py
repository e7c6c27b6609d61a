"""Forwarding to upstream resolvers, against fake upstreams on the host's 127.0.0.1 (never a
real resolver), and reading the host's resolv.conf."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode

from fixtures_dns import FakeUpstream
from skiff.net import dns_message as m
from skiff.net.dns_upstream import Upstream, forward, host_upstreams, parse_resolv_conf


def test_resolv_conf_nameservers_first_three_loopback_kept():
    text = ("# a comment\n; another\nsearch example.org\nnameserver 127.0.0.53\n"
            "options ndots:2\nnameserver  fe80::1%lo\nnameserver not-an-address\n"
            "nameserver\nnameserver 192.0.2.53 # trailing words\nnameserver 192.0.2.54\n")
    assert parse_resolv_conf(text) == [Upstream("127.0.0.53"), Upstream("fe80::1%lo"),
                                       Upstream("192.0.2.53")]


def test_no_nameserver_means_the_local_one_as_glibc(tmp_path: Path):
    empty = tmp_path / "resolv.conf"
    empty.write_text("search example.org\n")
    assert host_upstreams(str(empty)) == [Upstream("127.0.0.1")]
    assert host_upstreams(str(tmp_path / "missing")) == [Upstream("127.0.0.1")]
    assert str(Upstream("fd00::53", 5353)) == "[fd00::53]:5353"


def closed_port() -> int:
    # a port nothing listens on, for UDP and TCP: bound, read, released
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_forward(upstreams: list[Upstream], name: str, rdtype: str = "A", tcp: bool = False,
                timeout: float = 2.0, **kw: object) -> dns.message.Message | None:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    raw = q.to_wire()
    query = m.parse_query(raw)
    reply = asyncio.run(forward(raw, query, upstreams, timeout, tcp, query.udp_limit()))
    if reply is None:
        return None
    answer = dns.message.from_wire(reply)
    assert q.is_response(answer)  # under the client's ID, to its question
    return answer


def test_an_answer_comes_back_under_the_clients_id(fake_upstream: FakeUpstream):
    up = Upstream("127.0.0.1", fake_upstream.port)
    r = run_forward([up], "Outside.TEST")
    assert r is not None and [str(x) for x in r.answer[0]] == ["192.0.2.1"]
    r = run_forward([up], "outside.test", tcp=True)
    assert r is not None and [str(x) for x in r.answer[0]] == ["192.0.2.1"]
    assert fake_upstream.asked == [("outside.test", "A", "udp"), ("outside.test", "A", "tcp")]


def test_a_truncated_answer_is_asked_again_over_tcp(fake_upstream: FakeUpstream):
    up = Upstream("127.0.0.1", fake_upstream.port)
    big = run_forward([up], "big.test", use_edns=0, payload=4096)
    assert big is not None and len(big.answer[0]) == 60  # fitted in EDNS UDP at once
    fake_upstream.udp_limit = 512  # now the upstream truncates whatever the client takes
    big = run_forward([up], "big.test", use_edns=0, payload=4096)
    assert big is not None and len(big.answer[0]) == 60 and not big.flags & dns.flags.TC
    assert fake_upstream.asked[-1] == ("big.test", "A", "tcp")
    # a client that takes 512 bytes gets the truncated answer, to ask us over TCP itself
    small = run_forward([up], "big.test")
    assert small is not None and small.flags & dns.flags.TC


def test_failing_upstreams_are_passed_over(fake_upstream: FakeUpstream):
    good = Upstream("127.0.0.1", fake_upstream.port)
    down = Upstream("127.0.0.1", closed_port())
    r = run_forward([down, good], "outside.test")
    assert r is not None and r.rcode() == dns.rcode.NOERROR
    # SERVFAIL from the only upstream: that answer is what the client gets
    r = run_forward([good], "fail.test")
    assert r is not None and r.rcode() == dns.rcode.SERVFAIL
    # an authoritative NXDOMAIN ends the search
    r = run_forward([good, down], "nowhere.test")
    assert r is not None and r.rcode() == dns.rcode.NXDOMAIN


def test_no_answer_at_all_is_none(fake_upstream: FakeUpstream):
    down = Upstream("127.0.0.1", closed_port())
    assert run_forward([down], "outside.test") is None
    assert run_forward([down], "outside.test", tcp=True) is None
    silent = Upstream("127.0.0.1", fake_upstream.port)
    assert run_forward([silent], "silent.test", timeout=0.2) is None
    assert run_forward([], "outside.test") is None


def test_a_datagram_under_another_id_is_not_taken():
    spoofed = FakeUpstream({"outside.test": ["192.0.2.1"]}, spoof_first=True)
    try:
        r = run_forward([Upstream("127.0.0.1", spoofed.port)], "outside.test")
        assert r is not None and [str(x) for x in r.answer[0]] == ["192.0.2.1"]
    finally:
        spoofed.close()
