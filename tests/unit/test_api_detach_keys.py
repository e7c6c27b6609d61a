"""Detach keys: moby/term's notation (named controls, single characters, its error words and
dockerd's 400 text) and the scanner over input in pieces of any size — held bytes given back
when the sequence does not complete, overlapping prefixes, what follows the sequence dropped,
the held tail flushed at the input's end."""

from __future__ import annotations

import pytest

from skiff.api.detach_keys import DEFAULT, DetachScanner, parse, to_bytes
from skiff.errors import InvalidArgument


def test_notation_as_moby_term() -> None:
    assert to_bytes("ctrl-p,ctrl-q") == b"\x10\x11" == DEFAULT
    assert to_bytes("ctrl-a,x") == b"\x01x"
    assert to_bytes("CTRL-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_") == bytes([0, 27, 28, 29, 30, 31])
    assert to_bytes("a,b,c") == b"abc"
    for bad, word in (("ctrl-1", "ctrl-1"), ("ab", "ab"), ("ctrl-p,", ""), (",", ""), ("é", "é")):
        with pytest.raises(ValueError) as e:
            to_bytes(bad)
        assert str(e.value) == f"Unknown character: '{word}'"


def test_parse_gives_the_default_and_dockerds_words() -> None:
    assert parse("") == DEFAULT
    assert parse("ctrl-x") == b"\x18"
    with pytest.raises(InvalidArgument) as e:
        parse("ctrl-1,q")
    assert str(e.value) == "Invalid detach keys (ctrl-1,q) provided"


def feed_all(scanner: DetachScanner, pieces: list[bytes]) -> tuple[bytes, bool]:
    out = b""
    for piece in pieces:
        data, hit = scanner.feed(piece)
        out += data
        if hit:
            return out, True
    return out + scanner.flush(), False


@pytest.mark.parametrize("pieces,expected", [
    ([b"echo hi\n"], (b"echo hi\n", False)),
    ([b"ab\x10\x11cd"], (b"ab", True)),                 # one read holds the whole sequence
    ([b"ab\x10", b"\x11", b"cd"], (b"ab", True)),       # keystrokes one by one
    ([b"\x10", b"x"], (b"\x10x", False)),               # a prefix that did not complete
    ([b"\x10\x10", b"\x11"], (b"\x10", True)),          # the second ctrl-p begins it again
    ([b"a\x10"], (b"a\x10", False)),                    # the input ends mid-sequence
    ([b"\x10", b"", b"\x11"], (b"", True)),             # an empty piece changes nothing
])
def test_scanner_default_keys(pieces: list[bytes], expected: tuple[bytes, bool]) -> None:
    assert feed_all(DetachScanner(), pieces) == expected


def test_scanner_overlapping_and_long_sequences() -> None:
    keys = to_bytes("a,a,b")
    assert feed_all(DetachScanner(keys), [b"xaaab"]) == (b"xa", True)
    assert feed_all(DetachScanner(keys), [b"aa", b"aa", b"c"]) == (b"aaaac", False)
    assert feed_all(DetachScanner(keys), [b"a", b"a", b"a", b"b", b"tail"]) == (b"a", True)
    one = DetachScanner(b"q")
    assert one.feed(b"abq") == (b"ab", True)
    with pytest.raises(ValueError):
        DetachScanner(b"")


def test_scanner_holds_only_while_it_may_match() -> None:
    s = DetachScanner()
    assert s.feed(b"x\x10") == (b"x", False)
    assert s.held == b"\x10"
    assert s.feed(b"y") == (b"\x10y", False)
    assert s.held == b""
