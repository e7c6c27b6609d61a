"""skiff's DNS codec against dnspython: it reads dnspython's queries, dnspython reads its
answers, and no packet, however malformed, makes it raise anything but MalformedMessage."""

from __future__ import annotations

import ipaddress
import random
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from skiff.net import dns_message as m


def wire(name: str, rdtype: str = "A", **kw: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()  # type: ignore[arg-type]


def a_record(address: str) -> m.Record:
    return m.Record(m.TYPE_A, ipaddress.ip_address(address).packed)


def test_a_plain_query_is_read():
    q = dns.message.make_query("Web.Example.", "AAAA")
    parsed = m.parse_query(q.to_wire())
    assert parsed.id == q.id
    assert parsed.question.labels == (b"Web", b"Example")
    assert parsed.question.text() == "web.example"
    assert (parsed.question.qtype, parsed.question.qclass) == (m.TYPE_AAAA, m.CLASS_IN)
    assert parsed.flags & m.FLAG_RD
    assert parsed.edns_size is None and parsed.udp_limit() == 512


def test_edns_size_and_version_are_read():
    parsed = m.parse_query(wire("web", use_edns=0, payload=4096))
    assert parsed.edns_size == 4096 and parsed.edns_version == 0
    assert parsed.udp_limit() == 4096
    small = m.parse_query(wire("web", use_edns=0, payload=100))
    assert small.udp_limit() == 512  # below 512 counts as 512
    assert m.parse_query(wire("web", use_edns=1)).edns_version == 1


def test_a_compressed_name_is_followed():
    # the question at 12, then an answer whose owner is a pointer back to it, then an OPT
    q = dns.message.make_query("a.b.example", "A", use_edns=0, payload=1400)
    q.answer.append(dns.rrset.from_text("a.b.example.", 1, "IN", "A", "192.0.2.1"))
    raw = q.to_wire()
    assert b"\xc0\x0c" in raw  # dnspython compressed the answer's owner
    assert m.parse_query(raw).edns_size == 1400
    labels, end = m.read_name(raw, raw.index(b"\xc0\x0c"))
    assert labels == (b"a", b"b", b"example")
    assert end == raw.index(b"\xc0\x0c") + 2


def header(qdcount: int = 1, arcount: int = 0, flags: int = 0x0100) -> bytes:
    return struct.pack("!HHHHHH", 0x1234, flags, qdcount, 0, 0, arcount)


@pytest.mark.parametrize("body, problem", [
    (b"\xc0\x0c\x00\x01\x00\x01", "does not point back"),  # a pointer to itself
    (b"\x01a\xc0\x0e\x00\x01\x00\x01", "does not point back"),  # forward, into itself
    (b"\x01a\x40\x00\x01\x00\x01", "label type"),  # an extended label
    (b"\x05ab", "runs past the end"),
    (b"\x01a", "runs past the end"),
    (b"\x01a\x00\x00", "question cut short"),
    (b"", "runs past the end"),
    (b"".join(b"\x3f" + b"x" * 63 for _ in range(4)) + b"\x00\x00\x01\x00\x01", "longer than 255"),
])
def test_malformed_names_are_refused(body: bytes, problem: str):
    with pytest.raises(m.MalformedMessage, match=problem):
        m.parse_query(header() + body)


def test_a_pointer_chain_ends():
    # each pointer points to the one before it: legal, long, and it must end at the root
    buf = bytearray(header() + b"\x00")  # root at 12
    for i in range(200):
        buf += struct.pack("!H", 0xC000 | (12 + (0 if i == 0 else 1 + 2 * (i - 1))))
    labels, _ = m.read_name(bytes(buf), len(buf) - 2)
    assert labels == ()


@pytest.mark.parametrize("raw, problem", [
    (b"\x00" * 11, "shorter than a header"),
    (header(qdcount=0), "0 questions"),
    (header(qdcount=2) + b"\x00\x00\x01\x00\x01" * 2, "2 questions"),
    (header(flags=0x8000) + b"\x00\x00\x01\x00\x01", "a response"),
    (header(arcount=1) + b"\x00\x00\x01\x00\x01" + b"\x00\x00\x29\x10", "record 0 cut short"),
    (header(arcount=1) + b"\x00\x00\x01\x00\x01" + b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x05",
     "data runs past"),
    (header(arcount=2) + b"\x00\x00\x01\x00\x01" + b"\x00\x00\x29\x10\x00" + b"\x00" * 6 * 1
     + b"\x00\x00\x29\x10\x00" + b"\x00" * 6, "OPT record out of place"),
])
def test_malformed_queries_are_refused(raw: bytes, problem: str):
    with pytest.raises(m.MalformedMessage, match=problem):
        m.parse_query(raw)


def test_an_answer_reads_back_in_dnspython():
    q = dns.message.make_query("WeB", "A")
    q.flags |= dns.flags.CD
    raw = m.build_reply(m.parse_query(q.to_wire()), m.RCODE_NOERROR,
                        [a_record("10.0.0.2"), a_record("10.0.0.3")])
    r = dns.message.from_wire(raw)
    assert r.id == q.id and r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.QR and r.flags & dns.flags.RA and r.flags & dns.flags.RD
    assert r.flags & dns.flags.CD and not r.flags & dns.flags.AA and not r.flags & dns.flags.TC
    assert str(r.question[0].name) == "WeB."  # the client's own spelling
    (rrset,) = r.answer
    assert rrset.ttl == 600 and str(rrset.name) == "WeB."
    assert [str(x) for x in rrset] == ["10.0.0.2", "10.0.0.3"]
    assert r.edns < 0  # no OPT back to a query without one
    assert q.is_response(r)


def test_aaaa_and_ptr_answers_read_back():
    q6 = dns.message.make_query("web", "AAAA")
    r6 = dns.message.from_wire(m.build_reply(m.parse_query(q6.to_wire()), m.RCODE_NOERROR,
                                             [m.Record(m.TYPE_AAAA, ipaddress.ip_address(
                                                 "fd00::2").packed)]))
    assert [str(x) for x in r6.answer[0]] == ["fd00::2"]
    qp = dns.message.make_query("2.0.0.10.in-addr.arpa", "PTR")
    rp = dns.message.from_wire(m.build_reply(
        m.parse_query(qp.to_wire()), m.RCODE_NOERROR,
        [m.Record(m.TYPE_PTR, m.encode_name(m.name_labels("web.mynet.")))]))
    assert [str(x) for x in rp.answer[0]] == ["web.mynet."]


def test_an_edns_query_gets_an_opt_back_and_badvers_says_so():
    q = dns.message.make_query("web", "A", use_edns=0, payload=4096)
    r = dns.message.from_wire(m.build_reply(m.parse_query(q.to_wire()), m.RCODE_NOERROR))
    assert r.edns == 0 and r.payload == m.UDP_OWN_SIZE and r.answer == []
    q1 = dns.message.make_query("web", "A", use_edns=1)
    r1 = dns.message.from_wire(m.build_reply(m.parse_query(q1.to_wire()),
                                             m.EXTENDED_RCODE_BADVERS))
    assert r1.rcode() == dns.rcode.BADVERS


def test_a_big_answer_is_trimmed_to_fit():
    records = [a_record(f"10.0.1.{i}") for i in range(1, 101)]
    query = m.parse_query(wire("many"))
    udp = m.build_reply(query, m.RCODE_NOERROR, records, limit=512)
    assert len(udp) <= 512
    r = dns.message.from_wire(udp)
    assert r.flags & dns.flags.TC
    kept = [str(x) for x in r.answer[0]]
    assert kept == [f"10.0.1.{i}" for i in range(1, len(kept) + 1)] and len(kept) > 20
    tcp = dns.message.from_wire(m.build_reply(query, m.RCODE_NOERROR, records))
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 100
    quiet = m.build_reply(query, m.RCODE_NOERROR, records, limit=512, truncate_flag=False)
    assert not dns.message.from_wire(quiet).flags & dns.flags.TC


def test_error_reply():
    raw = header(qdcount=3) + b"junk"
    r = dns.message.from_wire(m.error_reply(raw, m.RCODE_FORMERR) or b"")
    assert r.id == 0x1234 and r.rcode() == dns.rcode.FORMERR and not r.question
    assert m.error_reply(b"\x00" * 5, m.RCODE_FORMERR) is None
    assert m.error_reply(header(flags=0x8000), m.RCODE_FORMERR) is None


def test_reply_matches():
    q = dns.message.make_query("Outside.Test", "A")
    question = m.parse_query(q.to_wire()).question
    reply = dns.message.make_response(q)
    reply.question[0].name = dns.name.from_text("oUTSIDE.tEST")  # case may differ
    raw = reply.to_wire()
    assert m.reply_matches(raw, q.id, question)
    assert not m.reply_matches(raw, q.id ^ 1, question)
    assert not m.reply_matches(q.to_wire(), q.id, question)  # a query is no reply
    other = dns.message.make_response(dns.message.make_query("other.test", "A", id=q.id))
    assert not m.reply_matches(other.to_wire(), q.id, question)
    aaaa = dns.message.make_response(dns.message.make_query("outside.test", "AAAA", id=q.id))
    assert not m.reply_matches(aaaa.to_wire(), q.id, question)
    assert m.reply_matches(m.error_reply(q.to_wire(), m.RCODE_SERVFAIL) or b"", q.id,
                           question)  # an error with no question is accepted
    assert m.with_id(raw, 7)[:2] == b"\x00\x07" and m.with_id(raw, 7)[2:] == raw[2:]


def test_names_a_host_cannot_have_are_nobodys():
    assert m.Question((b"a.b",), 1, 1).text() is None
    assert m.Question((b"a b",), 1, 1).text() is None
    assert m.Question((b"\xc3\xa9",), 1, 1).text() is None
    assert m.Question((), 1, 1).text() == ""
    with pytest.raises(m.MalformedMessage):
        m.encode_name(m.name_labels("x" * 64 + ".net"))
    with pytest.raises(m.MalformedMessage):
        m.encode_name(m.name_labels("a..b"))
    with pytest.raises(m.MalformedMessage):
        m.name_labels("caf\u00e9")


def _mutations(rng: random.Random, seeds: list[bytes]) -> list[bytes]:
    out = []
    for _ in range(4000):
        raw = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            action = rng.random()
            if action < 0.5 and raw:
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            elif action < 0.7:
                del raw[rng.randrange(len(raw) + 1):]
            elif action < 0.85:
                pos = rng.randrange(len(raw) + 1)
                raw[pos:pos] = bytes([0xC0 | rng.randrange(64), rng.randrange(256)])
            else:
                raw += rng.randbytes(rng.randint(1, 20))
        out.append(bytes(raw))
    out += [rng.randbytes(rng.randint(0, 80)) for _ in range(2000)]
    return out


def test_fuzzed_packets_raise_only_malformed_and_what_parses_can_be_answered():
    rng = random.Random(7)
    seeds = [wire("web"), wire("a.b.example", "AAAA", use_edns=0, payload=1232),
             wire("2.0.0.10.in-addr.arpa", "PTR"),
             header(arcount=1) + b"\x03www\x00\x00\x01\x00\x01" + b"\xc0\x0c\x00\x01\x00\x01"
             + b"\x00\x00\x00\x00\x00\x00"]
    parsed = 0
    for raw in _mutations(rng, seeds):
        try:
            query = m.parse_query(raw)
        except m.MalformedMessage:
            formerr = m.error_reply(raw, m.RCODE_FORMERR)
            assert formerr is None or dns.message.from_wire(formerr).rcode() == dns.rcode.FORMERR
            continue
        parsed += 1
        reply = m.build_reply(query, m.RCODE_NOERROR, [a_record("10.0.0.2")], limit=512)
        assert dns.message.from_wire(reply).id == query.id
        m.reply_matches(raw, query.id, query.question)
    assert parsed > 100  # the mutations reached past the header often enough to mean something
