"""Semantic versions and ranges: semver.org 2.0.0's grammar and precedence, and the range
forms capsules require each other by (npm's and Cargo's ^ ~ comparators, partials, ||)."""

from __future__ import annotations

import pytest

from skiff.errors import InvalidArgument
from skiff.semver import Range, Version, is_version

# semver.org §11's own example, lowest first
SPEC_ORDER = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
              "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"]


def test_precedence_is_the_specs():
    versions = [Version.parse(v) for v in SPEC_ORDER]
    assert all(a < b for a, b in zip(versions, versions[1:]))
    assert sorted(reversed(versions), key=Version.key) == versions
    assert Version.parse("2.0.0") > Version.parse("1.10.0") > Version.parse("1.9.0")
    assert Version.parse("1.0.0-2") < Version.parse("1.0.0-10")   # numerically
    assert Version.parse("1.0.0-10") < Version.parse("1.0.0-a")   # numeric below alpha


def test_build_metadata_takes_no_part_in_precedence():
    a, b = Version.parse("1.0.0+build.1"), Version.parse("1.0.0+build.2")
    assert a == b and not a < b and hash(a) == hash(b)
    assert str(a) == "1.0.0+build.1"
    assert a.key() < b.key()  # but a sort is stable


@pytest.mark.parametrize("text", ["1.2.3", "0.0.0", "1.0.0-0.3.7", "1.0.0-x.7.z.92",
                                  "1.0.0-x-y-z.--", "1.0.0+20130313144700",
                                  "1.0.0-beta+exp.sha.5114f85", "1.0.0+21AF26D3----117B344092BD"])
def test_valid_versions_round_trip(text):
    assert str(Version.parse(text)) == text and is_version(text)


@pytest.mark.parametrize("text, words", [
    ("1.2", "MAJOR.MINOR.PATCH"), ("1.2.3.4", "MAJOR.MINOR.PATCH"), ("", "MAJOR"),
    ("01.2.3", "leading zero"), ("1.02.3", "leading zero"), ("1.2.03", "leading zero"),
    ("1.2.3-01", "leading zero"), ("1.2.3-", "non-empty"), ("1.2.3-a..b", "non-empty"),
    ("1.2.3+", "non-empty"), ("1.2.3-a_b", "[0-9A-Za-z-]"), ("v1.2.3", "leading v"),
    ("1.x.3", "number"), ("-1.2.3", "MAJOR.MINOR.PATCH"), ("1.2.3 ", "number"),
])
def test_invalid_versions_say_why(text, words):
    with pytest.raises(InvalidArgument, match="invalid version") as e:
        Version.parse(text)
    assert words in str(e.value)
    assert not is_version(text)


@pytest.mark.parametrize("spec, inside, outside", [
    ("^1.1", ["1.1.0", "1.1.9", "1.9.9"], ["1.0.9", "2.0.0", "2.0.0-rc.1", "1.2.0-beta"]),
    ("^1", ["1.0.0", "1.99.0"], ["0.9.9", "2.0.0"]),
    ("^0.2.3", ["0.2.3", "0.2.9"], ["0.2.2", "0.3.0"]),
    ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
    ("^0.0", ["0.0.0", "0.0.9"], ["0.1.0"]),
    ("^0", ["0.0.1", "0.9.0"], ["1.0.0"]),
    ("~2.0", ["2.0.0", "2.0.7"], ["2.1.0", "1.9.9"]),
    ("~2", ["2.0.0", "2.9.0"], ["3.0.0"]),
    ("~1.2.3", ["1.2.3", "1.2.9"], ["1.2.2", "1.3.0"]),
    (">=1.0,<2", ["1.0.0", "1.9.9"], ["0.9.0", "2.0.0", "2.0.0-alpha"]),
    (">=1.0 <2", ["1.5.0"], ["2.0.0"]),
    (">= 1.0, < 2", ["1.5.0"], ["2.0.0"]),
    (">1.2", ["1.3.0"], ["1.2.9", "1.3.0-alpha"]),
    (">1.2.3", ["1.2.4"], ["1.2.3"]),
    ("<=1.2", ["1.2.9", "0.1.0"], ["1.3.0"]),
    ("<1", ["0.9.0"], ["1.0.0", "1.0.0-rc.1"]),
    ("1.2.3", ["1.2.3", "1.2.3+build"], ["1.2.4", "1.2.3-rc.1"]),
    ("=1.2.3", ["1.2.3"], ["1.2.2"]),
    ("1.2", ["1.2.0", "1.2.9"], ["1.3.0"]),
    ("1.x", ["1.0.0", "1.9.0"], ["2.0.0"]),
    ("1.2.*", ["1.2.5"], ["1.3.0"]),
    ("*", ["0.0.1", "9.9.9"], ["1.0.0-rc.1"]),
    ("1.x || >=3.1", ["1.5.0", "3.1.0", "4.0.0"], ["2.0.0", "3.0.9"]),
    (">=1.0.0-rc.1", ["1.0.0-rc.2", "1.0.0", "1.1.0"], ["1.0.0-beta", "1.1.0-beta"]),
    ("^1.2.3-beta.2", ["1.2.3-beta.3", "1.2.3", "1.9.0"], ["1.2.3-beta.1", "1.2.4-beta"]),
])
def test_ranges(spec, inside, outside):
    r = Range.parse(spec)
    assert [v for v in inside if not r.matches(Version.parse(v))] == []
    assert [v for v in outside if r.matches(Version.parse(v))] == []


@pytest.mark.parametrize("spec", ["", "  ", "^", ">=", "1.2.3.4", "^1.x.3", ">=a", "1.2 ||",
                                  "~v1", "1.2-rc", ">*", "<x"])
def test_bad_ranges_are_refused(spec):
    with pytest.raises(InvalidArgument, match="invalid version"):
        Range.parse(spec)


def test_exact_range():
    r = Range.exact(Version.parse("1.1.1"))
    assert r.matches(Version.parse("1.1.1")) and not r.matches(Version.parse("1.1.2"))
    assert str(r) == "1.1.1"
