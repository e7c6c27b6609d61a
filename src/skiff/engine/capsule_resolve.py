"""Capsule requests and their dependencies resolved to one concrete set of capsules.

A request is ``name:version`` (that version exactly), ``name@range`` (a `semver.Range`) or a
bare ``name`` (its highest release). Each capsule may require others by range, and the
resolver picks one version per name so that every request and every requirement of every
picked capsule holds, preferring higher versions: names are decided in the order they come
up (the requests first, then what the picked capsules require, breadth first), each at the
highest version that satisfies everything known of it so far, going back to the next lower
version of an earlier choice when a later requirement cannot be met — so the answer is the
highest that satisfies all, and a set that cannot be satisfied is known for sure. What
cannot be resolved is an error that names both sides: two requirements no one version
satisfies (`CapsuleConflict`, each with who asked for it), a requirement no stored version
satisfies (`NoSuchCapsule`, with the versions there are), or requirements that go round in a
circle (`CapsuleCycle`, the circle spelled out: ``a:1.1.0 -> b:1.0.0 -> a:1.1.0``). The
answer comes in dependency order, each capsule after what it requires. `resolve` is pure:
it reads the stored capsules only through the `catalog` callable it is given, so it is
tested without a store.
"""

from __future__ import annotations

import re

from skiff.errors import CapsuleConflict, CapsuleCycle, InvalidArgument, NoSuchCapsule
from skiff.record import Record
from skiff.semver import Range, Version

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

NAME_RULE = "[a-z0-9][a-z0-9._-]*"
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?")
_ANY = Range("*", [[]])
MAX_STEPS = 10_000  # a pathological set of ranges must end with an error, not spin


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgument(f"invalid capsule name {name!r}: a name is 1 to 128 of "
                              f"[a-z0-9._-], starting and ending with a letter or digit")
    return name


class Request(Record):
    """One request: the capsule's name, the range of its versions asked for, and the text
    the user wrote (what an error names)."""

    name: str
    range: Range
    text: str


def parse_request(text: str) -> Request:
    """``name:version``, ``name@range`` or ``name``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument("invalid capsule request '': expected name:version or "
                              "name@range")
    text = text.strip()
    if "@" in text:
        name, _, range_text = text.partition("@")
        return Request(name=check_name(name), range=Range.parse(range_text), text=text)
    if ":" in text:
        name, _, version = text.partition(":")
        return Request(name=check_name(name), range=Range.exact(Version.parse(version)),
                       text=text)
    return Request(name=check_name(text), range=_ANY, text=text)


def parse_requires(requires: Iterable[str] | dict[str, str]) -> dict[str, str]:
    """``--requires`` values (``name@range``, or a name → range mapping) checked and made a
    name → range text mapping; a name twice is refused."""
    items = requires.items() if isinstance(requires, dict) else \
        [tuple(r.partition("@")[::2]) if isinstance(r, str) and "@" in r else (r, None)
         for r in requires]
    out: dict[str, str] = {}
    for name, range_text in items:
        if range_text is None:
            raise InvalidArgument(f"invalid requirement {name!r}: expected name@range "
                                  f"(libcrypto@^1.1)")
        check_name(name)
        Range.parse(range_text)
        if name in out:
            raise InvalidArgument(f"capsule {name} is required twice ({out[name]} and "
                                  f"{range_text})")
        out[name] = str(range_text).strip()
    return out


class Candidate(Record):
    """A stored capsule as the resolver sees it: name, version, digest, requirements."""

    name: str
    version: Version
    digest: str
    requires: dict[str, Range] = {}

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


class _Search:
    """The backtracking search over one set of requests."""

    def __init__(self, catalog: Callable[[str], list[Candidate]], missing_ok: bool) -> None:
        self.catalog = catalog
        self.missing_ok = missing_ok
        self.steps = 0
        self._versions: dict[str, list[Candidate]] = {}

    def versions(self, name: str) -> list[Candidate]:
        found = self._versions.get(name)
        if found is None:
            found = sorted(self.catalog(name), key=lambda c: c.version.key(), reverse=True)
            self._versions[name] = found
        return found

    def solve(self, chosen: dict[str, Candidate],
              wanted: dict[str, tuple[tuple[Range, str], ...]],
              pending: tuple[str, ...]) -> dict[str, Candidate]:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise CapsuleConflict(f"capsule resolution gave up after {MAX_STEPS} steps: the "
                                  f"requirements leave too many combinations to try")
        while pending and pending[0] in chosen:
            pending = pending[1:]
        if not pending:
            return chosen
        name, rest = pending[0], pending[1:]
        asks = wanted[name]
        fitting = [c for c in self.versions(name)
                   if all(r.matches(c.version) for r, _ in asks)]
        if not fitting:
            if self.missing_ok:
                return self.solve(chosen, wanted, rest)
            raise self.unsatisfiable(name, asks)
        first: Exception | None = None
        for candidate in fitting:
            try:
                return self.choose(candidate, chosen, wanted, rest)
            except (CapsuleConflict, NoSuchCapsule) as e:
                first = first or e  # the failure of the highest choice says the most
        assert first is not None
        raise first

    def choose(self, candidate: Candidate, chosen: dict[str, Candidate],
               wanted: dict[str, tuple[tuple[Range, str], ...]],
               rest: tuple[str, ...]) -> dict[str, Candidate]:
        name = candidate.name
        chosen = {**chosen, name: candidate}
        wanted = dict(wanted)
        pending = list(rest)
        for dep, rng in candidate.requires.items():
            wanted[dep] = (*wanted.get(dep, ()), (rng, candidate.ref))
            if dep in chosen:
                circle = self.path(chosen, dep, name)
                if circle is not None:
                    refs = [candidate.ref, *(chosen[n].ref for n in circle)]
                    raise CapsuleCycle("capsule dependency cycle: " + " -> ".join(refs),
                                       tuple(refs))
                if not rng.matches(chosen[dep].version):
                    raise self.unsatisfiable(dep, wanted[dep], chosen[dep])
            else:
                pending.append(dep)
        return self.solve(chosen, wanted, tuple(pending))

    @staticmethod
    def path(chosen: dict[str, Candidate], start: str, goal: str) -> list[str] | None:
        """The names from `start` to `goal` along the chosen capsules' requirements."""
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, trail = stack.pop()
            if node == goal:
                return trail
            if node in seen or node not in chosen:
                continue
            seen.add(node)
            for dep in chosen[node].requires:
                stack.append((dep, [*trail, dep]))
        return None

    def unsatisfiable(self, name: str, asks: tuple[tuple[Range, str], ...],
                      chosen: Candidate | None = None) -> Exception:
        versions = self.versions(name)
        have = ", ".join(str(c.version) for c in reversed(versions)) or "none"
        if not versions:
            who = "; ".join(f"{name}@{r} ({by})" for r, by in asks)
            return NoSuchCapsule(f"no such capsule: {name} (asked for by {who})")
        for i, (r1, by1) in enumerate(asks):
            if not any(r1.matches(c.version) for c in versions):
                return NoSuchCapsule(f"no version of capsule {name} satisfies {r1} ({by1}); "
                                     f"there are: {have}")
            for r2, by2 in asks[i + 1:]:
                if not any(r1.matches(c.version) and r2.matches(c.version) for c in versions):
                    return CapsuleConflict(
                        f"capsule conflict on {name}: {name}@{r1} ({by1}) and {name}@{r2} "
                        f"({by2}): no version satisfies both; there are: {have}",
                        (f"{name}@{r1} ({by1})", f"{name}@{r2} ({by2})"))
        listed = " and ".join(f"{name}@{r} ({by})" for r, by in asks)
        if chosen is not None:
            return CapsuleConflict(f"capsule conflict on {name}: {listed} with the other "
                                   f"choices made ({chosen.ref} picked first); there are: "
                                   f"{have}", tuple(f"{name}@{r} ({by})" for r, by in asks))
        return CapsuleConflict(f"capsule conflict on {name}: no version satisfies all of "
                               f"{listed}; there are: {have}",
                               tuple(f"{name}@{r} ({by})" for r, by in asks))


def resolve(requests: Iterable[Request], catalog: Callable[[str], list[Candidate]], *,
            missing_ok: bool = False) -> list[Candidate]:
    """The capsules that satisfy `requests` and their requirements, dependencies first.
    With `missing_ok`, a name nothing stored satisfies is left out rather than an error
    (a create's check for cycles, before every dependency is there)."""
    requests = list(requests)
    wanted: dict[str, tuple[tuple[Range, str], ...]] = {}
    order: list[str] = []
    for request in requests:
        wanted[request.name] = (*wanted.get(request.name, ()), (request.range, "requested"))
        if request.name not in order:
            order.append(request.name)
    chosen = _Search(catalog, missing_ok).solve({}, wanted, tuple(order))
    out: list[Candidate] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed or name not in chosen:
            return
        placed.add(name)
        for dep in chosen[name].requires:
            place(dep)
        out.append(chosen[name])

    for name in order:
        place(name)
    return out
