"""The DNS wire format, as much of it as the embedded DNS server reads and writes.

`parse_query` reads a request (RFC 1035 §4: header, one question, then the records that
follow it, only to find an EDNS OPT record and its UDP size); names are read with
compression pointers, each of which must point before the label it stands for, so a
hostile packet cannot make a loop; any defect raises `MalformedMessage`, the only
exception this module raises on bad bytes, and the server drops or answers FORMERR.
`build_reply` writes an answer to a parsed query: the question again (its name uncompressed,
spelled as the client spelled it: 0x20-randomising clients compare it), then A, AAAA or PTR
records whose owner is a pointer to that question, all with one TTL, trimmed from the end
until the message fits the client's size (with TC set over UDP), as Docker's resolver does.
`reply_matches` checks that an upstream's answer is the answer to the query sent (ID, QR,
the same question), so a stray or spoofed datagram is not passed on; `with_id` swaps a
message's ID (a query goes upstream under an ID of our own, its answer back under the
client's). It imports only the
standard library: it is small because the server needs little, and a few times cheaper to
import than dnslib (21 ms here) or dnspython (70 ms), which matters for skiffd's start.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

from skiff.errors import InvalidArgument

TYPE_A = 1
TYPE_PTR = 12
TYPE_MX = 15
TYPE_AAAA = 28
TYPE_OPT = 41
CLASS_IN = 1

OPCODE_QUERY = 0
RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
EXTENDED_RCODE_BADVERS = 16  # RFC 6891: its upper 8 bits go in the OPT record's TTL

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080
FLAG_CD = 0x0010

UDP_PLAIN_SIZE = 512  # RFC 1035's limit for a client that sent no EDNS size
UDP_OWN_SIZE = 1232  # the size advertised in our OPT records (DNS flag day 2020)
TCP_MAX_SIZE = 65535
TTL = 600  # Docker's respTTL

MAX_NAME = 255
MAX_LABEL = 63

_HEADER = struct.Struct("!HHHHHH")
_QUESTION_TAIL = struct.Struct("!HH")
_RR_TAIL = struct.Struct("!HHIH")


class MalformedMessage(InvalidArgument):
    """Bytes that are not a DNS message this server can read (what is wrong, and where)."""


@dataclass(frozen=True, slots=True)
class Question:
    """One question: the name's labels as sent (case kept), its type and class."""

    labels: tuple[bytes, ...]
    qtype: int
    qclass: int

    def text(self) -> str | None:
        """The name as lower-case dotted text without the trailing dot ("" for the root), or
        None when a label holds a byte a host name cannot have (a dot, a space, a control,
        non-ASCII): such a name is nobody's here."""
        for label in self.labels:
            if not all(0x20 < byte < 0x7F and byte != 0x2E for byte in label):
                return None
        return b".".join(self.labels).decode("ascii").lower()

    def same_as(self, other: Question) -> bool:
        """The same question, with the name compared without regard to case (RFC 4343)."""
        return (self.qtype == other.qtype and self.qclass == other.qclass
                and len(self.labels) == len(other.labels)
                and all(a.lower() == b.lower() for a, b in zip(self.labels, other.labels)))


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed request: its ID and flags, its one question, and its EDNS record if any
    (`edns_size`: the UDP size the client takes, None without EDNS; `edns_version`)."""

    id: int
    flags: int
    question: Question
    edns_size: int | None = None
    edns_version: int = 0

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    def udp_limit(self) -> int:
        """The largest UDP answer the client takes: 512 without EDNS, else its own size (a
        size below 512 counts as 512, RFC 6891)."""
        return max(UDP_PLAIN_SIZE, self.edns_size or 0)


@dataclass(frozen=True, slots=True)
class Record:
    """An answer record for the question's own name: its type and its encoded RDATA."""

    rtype: int
    rdata: bytes


def read_name(buf: bytes, offset: int) -> tuple[tuple[bytes, ...], int]:
    """The labels of the name at `offset` and the offset just after it (after the first
    pointer, when the name is compressed)."""
    labels: list[bytes] = []
    size = 1  # the root's zero byte
    end = -1  # where the name ends in the message, fixed at the first pointer
    position = offset
    while True:
        if position >= len(buf):
            raise MalformedMessage(f"name at {offset} runs past the end")
        length = buf[position]
        kind = length & 0xC0
        if kind == 0xC0:
            if position + 1 >= len(buf):
                raise MalformedMessage(f"pointer at {position} cut short")
            target = ((length & 0x3F) << 8) | buf[position + 1]
            # only backwards, and strictly: every step then goes lower, so no loop
            if target >= position:
                raise MalformedMessage(f"pointer at {position} does not point back")
            if end < 0:
                end = position + 2
            position = target
            continue
        if kind:
            raise MalformedMessage(f"label type {kind:#x} at {position}")
        if length == 0:
            return tuple(labels), (end if end >= 0 else position + 1)
        size += length + 1
        if size > MAX_NAME:
            raise MalformedMessage(f"name at {offset} longer than {MAX_NAME} bytes")
        label = buf[position + 1:position + 1 + length]
        if len(label) != length:
            raise MalformedMessage(f"label at {position} runs past the end")
        labels.append(label)
        position += 1 + length


def encode_name(labels: Sequence[bytes]) -> bytes:
    """A name in wire form, uncompressed."""
    out = bytearray()
    for label in labels:
        if not 0 < len(label) <= MAX_LABEL:
            raise MalformedMessage(f"label {label!r} is empty or longer than {MAX_LABEL}")
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > MAX_NAME:
        raise MalformedMessage(f"name longer than {MAX_NAME} bytes")
    return bytes(out)


def name_labels(text: str) -> tuple[bytes, ...]:
    """The labels of a dotted name ("web.net." or "web.net"), ASCII only."""
    if not text.isascii():
        raise MalformedMessage(f"name {text!r} is not ASCII")
    stripped = text[:-1] if text.endswith(".") else text
    return tuple(label.encode() for label in stripped.split(".")) if stripped else ()


def parse_query(buf: bytes) -> Query:
    """A request read from `buf`: exactly one question; an OPT record, if any, found in the
    additional section (the sections before it are walked over, not kept)."""
    if len(buf) < _HEADER.size:
        raise MalformedMessage(f"{len(buf)} bytes: shorter than a header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(buf)
    if flags & FLAG_QR:
        raise MalformedMessage("a response, not a query")
    if qdcount != 1:
        raise MalformedMessage(f"{qdcount} questions, not one")
    labels, offset = read_name(buf, _HEADER.size)
    if offset + _QUESTION_TAIL.size > len(buf):
        raise MalformedMessage("question cut short")
    qtype, qclass = _QUESTION_TAIL.unpack_from(buf, offset)
    offset += _QUESTION_TAIL.size
    edns_size: int | None = None
    edns_version = 0
    for index in range(ancount + nscount + arcount):
        owner, offset = read_name(buf, offset)
        if offset + _RR_TAIL.size > len(buf):
            raise MalformedMessage(f"record {index} cut short")
        rtype, rclass, ttl, rdlength = _RR_TAIL.unpack_from(buf, offset)
        offset += _RR_TAIL.size + rdlength
        if offset > len(buf):
            raise MalformedMessage(f"record {index} data runs past the end")
        if rtype == TYPE_OPT:
            if index < ancount + nscount or owner or edns_size is not None:
                raise MalformedMessage("OPT record out of place, not at the root, or twice")
            edns_size = rclass
            edns_version = (ttl >> 16) & 0xFF
    return Query(ident, flags, Question(labels, qtype, qclass), edns_size, edns_version)


def reply_flags(query_flags: int, rcode: int) -> int:
    """The flags of our answer to a query with `query_flags`: QR, its opcode, RD and CD back,
    recursion available (Docker's resolver sets RA), not authoritative."""
    kept = query_flags & (0x7800 | FLAG_RD | FLAG_CD)
    return FLAG_QR | FLAG_RA | kept | (rcode & 0xF)


def _opt_record(extended_rcode: int) -> bytes:
    # root owner, our UDP size in the class, the upper rcode bits and version 0 in the TTL
    return b"\x00" + _RR_TAIL.pack(TYPE_OPT, UDP_OWN_SIZE, (extended_rcode >> 4) << 24, 0)


def build_reply(query: Query, rcode: int, records: Sequence[Record] = (),
                limit: int = TCP_MAX_SIZE, truncate_flag: bool = True) -> bytes:
    """The answer to `query` with `rcode` and `records` (owned by the question's name), at
    most `limit` bytes: records are dropped from the end until it fits, and TC is set when
    any were dropped and `truncate_flag` (UDP; over TCP the client could not ask again)."""
    question = (encode_name(query.question.labels)
                + _QUESTION_TAIL.pack(query.question.qtype, query.question.qclass))
    opt = b"" if query.edns_size is None else _opt_record(rcode)
    owner = b"\xc0\x0c"  # a pointer to the question's name, which starts right after the header
    encoded = [owner + _RR_TAIL.pack(r.rtype, CLASS_IN, TTL, len(r.rdata)) + r.rdata
               for r in records]
    room = limit - _HEADER.size - len(question) - len(opt)
    kept = 0
    used = 0
    for record in encoded:
        if used + len(record) > room:
            break
        used += len(record)
        kept += 1
    flags = reply_flags(query.flags, rcode)
    if kept < len(encoded) and truncate_flag:
        flags |= FLAG_TC
    header = _HEADER.pack(query.id, flags, 1, kept, 0, 1 if opt else 0)
    return header + question + b"".join(encoded[:kept]) + opt


def error_reply(buf: bytes, rcode: int) -> bytes | None:
    """A header-only answer with `rcode` to the request whose bytes are `buf` (for one whose
    question could not be read), or None when not even a query's header is there."""
    if len(buf) < _HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", buf)
    if flags & FLAG_QR:
        return None  # never answer an answer: two servers would talk to each other for ever
    return _HEADER.pack(ident, reply_flags(flags, rcode), 0, 0, 0, 0)


def reply_rcode(buf: bytes) -> int:
    """The (4-bit) rcode of a message that `reply_matches` accepted."""
    return buf[3] & 0xF


def reply_truncated(buf: bytes) -> bool:
    return bool(struct.unpack_from("!H", buf, 2)[0] & FLAG_TC)


def reply_authoritative(buf: bytes) -> bool:
    return bool(struct.unpack_from("!H", buf, 2)[0] & FLAG_AA)


def reply_matches(buf: bytes, ident: int, question: Question) -> bool:
    """Whether `buf` answers the query with ID `ident` asking `question`: that ID, QR set,
    and the same question (or none at all, as some servers send with an error)."""
    if len(buf) < _HEADER.size:
        return False
    got: int
    flags: int
    qdcount: int
    got, flags, qdcount = struct.unpack_from("!HHH", buf)
    if got != ident or not flags & FLAG_QR:
        return False
    if qdcount == 0:
        return (flags & 0xF) != RCODE_NOERROR
    if qdcount != 1:
        return False
    try:
        labels, offset = read_name(buf, _HEADER.size)
    except MalformedMessage:
        return False
    if offset + _QUESTION_TAIL.size > len(buf):
        return False
    qtype, qclass = _QUESTION_TAIL.unpack_from(buf, offset)
    return Question(labels, qtype, qclass).same_as(question)


def with_id(buf: bytes, ident: int) -> bytes:
    """`buf` with its message ID replaced."""
    return struct.pack("!H", ident) + buf[2:]
