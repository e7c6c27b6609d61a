"""What the embedded DNS server answers itself, and what it leaves to the upstream resolvers.

`local_answer` takes a parsed query, the key of the container that asked and the two
callbacks the engine gave (`resolve(key, name) -> addresses`, `reverse(key, ip) -> name`)
and returns the records to answer with, or None: forward it. As Docker's resolver: A and
AAAA for a name the callbacks know get its addresses of that family, in the order given
(duplicates dropped), and a known name without one gets an empty NOERROR answer (Docker's
"present without IPv6": no AAAA query for a container's name goes outside); MX for a known
name is an empty NOERROR answer too (RFC 5321's implicit MX); PTR for
``d.c.b.a.in-addr.arpa`` or a full ``ip6.arpa`` name is answered when `reverse` knows the
address. Names are matched without regard to case and without the trailing dot; the
callbacks get the lower-case name. Every other type and class, and every name the
callbacks do not know, is forwarded.
"""

from __future__ import annotations

import ipaddress
from typing import Callable

from skiff.net.dns_message import (CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_MX, TYPE_PTR,
                                   MalformedMessage, Query, Record, encode_name, name_labels)

Resolve = Callable[[str, str], "list[str]"]
Reverse = Callable[[str, str], "str | None"]

_V4_SUFFIX = ".in-addr.arpa"
_V6_SUFFIX = ".ip6.arpa"
_HEX = frozenset("0123456789abcdef")


def ptr_address(name: str) -> str | None:
    """The address a reverse name stands for ("4.3.2.1.in-addr.arpa" -> "1.2.3.4", 32
    nibbles under ip6.arpa -> the compressed IPv6 text), or None for any other name."""
    if name.endswith(_V4_SUFFIX):
        parts = name[:-len(_V4_SUFFIX)].split(".")
        if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
            return None
        if any(int(p) > 255 or (len(p) > 1 and p[0] == "0") for p in parts):
            return None
        return ".".join(reversed(parts))
    if name.endswith(_V6_SUFFIX):
        nibbles = name[:-len(_V6_SUFFIX)].split(".")
        if len(nibbles) != 32 or not all(len(n) == 1 and n in _HEX for n in nibbles):
            return None
        packed = bytes.fromhex("".join(reversed(nibbles)))
        return str(ipaddress.IPv6Address(packed))
    return None


def _address_records(addresses: list[str], qtype: int) -> list[Record]:
    family = 4 if qtype == TYPE_A else 6
    records: list[Record] = []
    seen: set[bytes] = set()
    for text in addresses:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue  # a callback's bad entry is not the client's problem
        if address.version != family or address.packed in seen:
            continue
        seen.add(address.packed)
        records.append(Record(qtype, address.packed))
    return records


def local_answer(query: Query, key: str, resolve: Resolve, reverse: Reverse
                 ) -> list[Record] | None:
    """The records the server answers `query` from container `key` with (an empty list: an
    empty NOERROR answer), or None when the query goes to the upstream resolvers."""
    question = query.question
    if question.qclass != CLASS_IN:
        return None
    name = question.text()
    if not name:
        return None
    if question.qtype in (TYPE_A, TYPE_AAAA, TYPE_MX):
        addresses = resolve(key, name)
        if not addresses:
            return None
        return [] if question.qtype == TYPE_MX else _address_records(addresses, question.qtype)
    if question.qtype == TYPE_PTR:
        address = ptr_address(name)
        if address is None:
            return None
        target = reverse(key, address)
        if not target:
            return None
        try:
            return [Record(TYPE_PTR, encode_name(name_labels(target)))]
        except MalformedMessage:
            return None  # a name that DNS cannot carry (a label over 63 bytes): not ours to say
    return None
