"""The capsule resolver over a fake catalog: requests and requirements to one set, the
highest that satisfies all, and conflicts, cycles and unknowns named on both sides."""

from __future__ import annotations

import pytest

from skiff.engine.capsule_resolve import (Candidate, parse_request, parse_requires,
                                          resolve)
from skiff.errors import CapsuleConflict, CapsuleCycle, InvalidArgument, NoSuchCapsule
from skiff.semver import Range, Version


def catalog(*specs: str):
    """``"name:version -> dep@range, dep@range"`` lines as a catalog callable."""
    stored: dict[str, list[Candidate]] = {}
    for spec in specs:
        head, _, tail = spec.partition("->")
        name, _, version = head.strip().partition(":")
        requires = {d.split("@")[0].strip(): Range.parse(d.split("@")[1])
                    for d in tail.split(",") if d.strip()}
        stored.setdefault(name, []).append(Candidate(
            name=name, version=Version.parse(version), digest=f"sha256:{name}{version}",
            requires=requires))
    return lambda name: list(stored.get(name, []))


def refs(requests, cat, **kw):
    return [c.ref for c in resolve([parse_request(r) for r in requests], cat, **kw)]


def test_highest_that_satisfies_with_dependencies_first():
    cat = catalog("libssl:1.1.1 -> libcrypto@^1.1", "libssl:3.0.2 -> libcrypto@^3",
                  "libcrypto:1.1.0", "libcrypto:1.1.1", "libcrypto:3.0.2", "libcrypto:1.2.0-rc.1")
    assert refs(["libssl:1.1.1"], cat) == ["libcrypto:1.1.1", "libssl:1.1.1"]
    assert refs(["libssl"], cat) == ["libcrypto:3.0.2", "libssl:3.0.2"]
    assert refs(["libssl@<3"], cat) == ["libcrypto:1.1.1", "libssl:1.1.1"]
    assert refs(["libcrypto@~1.1.0", "libssl@^1"], cat) == ["libcrypto:1.1.1", "libssl:1.1.1"]


def test_backtracks_to_a_lower_version_when_a_later_requirement_needs_it():
    # app 2 wants the newest b, which wants c 2; but a also wants c 1: b 1 is the answer
    cat = catalog("a:1.0.0 -> c@^1", "b:2.0.0 -> c@^2", "b:1.0.0 -> c@^1", "c:1.4.0", "c:2.0.0")
    assert refs(["b", "a"], cat) == ["c:1.4.0", "b:1.0.0", "a:1.0.0"]


def test_a_diamond_gets_one_version():
    cat = catalog("app:1.0.0 -> x@^1, y@^1", "x:1.0.0 -> z@>=1.2", "y:1.0.0 -> z@<1.5",
                  "z:1.1.0", "z:1.4.0", "z:1.6.0")
    assert refs(["app:1.0.0"], cat) == ["z:1.4.0", "x:1.0.0", "y:1.0.0", "app:1.0.0"]


def test_conflict_names_both_sides():
    cat = catalog("libssl:1.1.1 -> libcrypto@^1.1", "app:2.0.0 -> libcrypto@^3",
                  "libcrypto:1.1.1", "libcrypto:3.0.2")
    with pytest.raises(CapsuleConflict) as e:
        resolve([parse_request("libssl:1.1.1"), parse_request("app:2.0.0")], cat)
    text = str(e.value)
    assert "libcrypto@^1.1 (libssl:1.1.1)" in text and "libcrypto@^3 (app:2.0.0)" in text
    assert "1.1.1, 3.0.2" in text
    assert len(e.value.sides) == 2


def test_two_requests_for_two_versions_conflict():
    cat = catalog("libssl:1.1.1", "libssl:3.0.2")
    with pytest.raises(CapsuleConflict, match=r"libssl@1.1.1 \(requested\) and "
                                              r"libssl@3.0.2 \(requested\)"):
        refs(["libssl:1.1.1", "libssl:3.0.2"], cat)


def test_unknown_capsule_and_version():
    cat = catalog("libssl:1.1.1 -> libcrypto@^1.1", "libcrypto:3.0.2")
    with pytest.raises(NoSuchCapsule, match="no such capsule: nope"):
        refs(["nope"], cat)
    with pytest.raises(NoSuchCapsule, match=r"no version of capsule libssl satisfies 9.9.9 "
                                            r"\(requested\); there are: 1.1.1"):
        refs(["libssl:9.9.9"], cat)
    with pytest.raises(NoSuchCapsule, match=r"libcrypto satisfies \^1.1 \(libssl:1.1.1\); "
                                            r"there are: 3.0.2"):
        refs(["libssl:1.1.1"], cat)


def test_a_missing_dependency_is_left_out_when_asked():
    cat = catalog("libssl:1.1.1 -> libcrypto@^1.1")
    assert refs(["libssl:1.1.1"], cat, missing_ok=True) == ["libssl:1.1.1"]


def test_cycles_are_refused_with_the_circle():
    cat = catalog("a:1.1.0 -> b@^1", "b:1.0.0 -> c@^1", "c:1.0.0 -> a@^1.1")
    with pytest.raises(CapsuleCycle) as e:
        refs(["a"], cat)
    assert str(e.value) == "capsule dependency cycle: c:1.0.0 -> a:1.1.0 -> b:1.0.0 -> c:1.0.0"
    with pytest.raises(CapsuleCycle, match="a:1.0.0 -> a:1.0.0"):
        refs(["a"], catalog("a:1.0.0 -> a@^1"))


def test_a_cycle_on_one_version_is_avoided_by_another():
    # a 1.1 would close a circle; a 1.0 does not, and satisfies everything
    cat = catalog("a:1.1.0 -> b@^1", "a:1.0.0", "b:1.0.0 -> a@^1")
    assert refs(["b"], cat) == ["a:1.0.0", "b:1.0.0"]
    with pytest.raises(CapsuleCycle):
        refs(["a@1.1"], cat)


@pytest.mark.parametrize("text", ["", "Libssl:1.0.0", "libssl:1.0", "libssl@^y", "-a",
                                  "a b", "libssl:v1.0.0", "libssl@"])
def test_bad_requests(text):
    with pytest.raises(InvalidArgument):
        parse_request(text)


def test_parse_requires():
    assert parse_requires(["libcrypto@^1.1", "zlib@>=1.2,<2"]) == {
        "libcrypto": "^1.1", "zlib": ">=1.2,<2"}
    assert parse_requires({"zlib": "~1.2"}) == {"zlib": "~1.2"}
    for bad in (["libcrypto"], ["libcrypto@^1", "libcrypto@^2"], ["libcrypto@bad range"],
                ["BAD@1"]):
        with pytest.raises(InvalidArgument):
            parse_requires(bad)
