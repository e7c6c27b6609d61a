"""Semantic versions (semver.org 2.0.0) and the version ranges capsules require each other by.

`Version.parse` takes the 2.0.0 grammar exactly — ``MAJOR.MINOR.PATCH``, an optional
``-pre.release`` of dot-separated identifiers and an optional ``+build`` — refusing leading
zeros in numeric identifiers and empty identifiers, as the spec's BNF does. Versions order by
the spec's precedence: numbers numerically, a pre-release below its release, pre-release
identifiers one by one (numeric ones numerically and below alphanumeric ones, which compare
in ASCII; a longer list above its prefix); build metadata takes no part in precedence
(`key` orders by it last only so that a sort is stable). `Range.parse` takes what npm and
Cargo users write: ``1.2.3`` or ``=1.2.3`` (exactly), ``^1.1`` (compatible: the leftmost
non-zero part fixed), ``~2.0`` (patch updates, or minor ones for ``~2``), comparators
``>=1.0``, ``>1``, ``<2``, ``<=1.4`` (partial versions meaning what npm makes of them),
``1.x`` / ``1.2.*`` / ``*``, several ANDed with commas or spaces, alternatives joined by
``||``. A pre-release satisfies a range only when a comparator of the same alternative names
a pre-release of the same ``MAJOR.MINOR.PATCH`` (npm's rule): ``^1.0`` never picks
``2.0.0-rc.1`` nor ``1.1.0-beta``. This module imports nothing of skiff but its errors, so any
layer may use it.
"""

from __future__ import annotations

from skiff.errors import InvalidArgument

_DIGITS = frozenset("0123456789")
_IDENT = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_WILD = ("x", "X", "*")
_OPERATORS = (">=", "<=", ">", "<", "=")


def _number(text: str, what: str, source: str) -> int:
    if not text or not _DIGITS.issuperset(text):
        raise InvalidArgument(f"invalid version {source!r}: the {what} must be a number")
    if len(text) > 1 and text[0] == "0":
        raise InvalidArgument(f"invalid version {source!r}: the {what} has a leading zero")
    return int(text)


def _identifiers(text: str, what: str, source: str, numeric_zeros: bool) -> tuple[str, ...]:
    parts = tuple(text.split("."))
    for part in parts:
        if not part or not _IDENT.issuperset(part):
            raise InvalidArgument(f"invalid version {source!r}: the {what} identifiers must be "
                                  f"non-empty [0-9A-Za-z-]")
        if numeric_zeros and len(part) > 1 and part[0] == "0" and _DIGITS.issuperset(part):
            raise InvalidArgument(f"invalid version {source!r}: the pre-release identifier "
                                  f"{part!r} has a leading zero")
    return parts


class Version:
    """One semantic version; compared by precedence (build metadata ignored)."""

    __slots__ = ("major", "minor", "patch", "pre", "build", "_order")

    def __init__(self, major: int, minor: int, patch: int, pre: tuple[str, ...] = (),
                 build: tuple[str, ...] = ()) -> None:
        self.major, self.minor, self.patch = major, minor, patch
        self.pre, self.build = pre, build
        # a release sorts after every pre-release of it: (1,) against (0, …)
        pre_key = tuple((0, int(p), "") if _DIGITS.issuperset(p) else (1, 0, p) for p in pre)
        self._order = (major, minor, patch, (0, pre_key) if pre else (1, ()))

    @classmethod
    def parse(cls, text: str) -> Version:
        if not isinstance(text, str) or not text:
            raise InvalidArgument(f"invalid version {text!r}: expected MAJOR.MINOR.PATCH")
        if text[0] in "vV":
            raise InvalidArgument(f"invalid version {text!r}: a semantic version has no "
                                  f"leading v (write {text[1:]!r})")
        core, plus, build_text = text.partition("+")
        core, dash, pre_text = core.partition("-")
        numbers = core.split(".")
        if len(numbers) != 3:
            raise InvalidArgument(f"invalid version {text!r}: expected MAJOR.MINOR.PATCH")
        major, minor, patch = (_number(n, w, text) for n, w in
                               zip(numbers, ("major version", "minor version", "patch")))
        pre = _identifiers(pre_text, "pre-release", text, True) if dash else ()
        build = _identifiers(build_text, "build metadata", text, False) if plus else ()
        return cls(major, minor, patch, pre, build)

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def key(self) -> tuple[object, ...]:
        """A sort key: precedence, then the build metadata so that sorts are stable."""
        return (*self._order, self.build)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._order == other._order

    def __hash__(self) -> int:
        return hash(self._order)

    def __lt__(self, other: Version) -> bool:
        return self._order < other._order

    def __le__(self, other: Version) -> bool:
        return self._order <= other._order

    def __gt__(self, other: Version) -> bool:
        return self._order > other._order

    def __ge__(self, other: Version) -> bool:
        return self._order >= other._order

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            text += "-" + ".".join(self.pre)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self) -> str:
        return f"Version({str(self)!r})"


class _Partial:
    """A version as a range may write it: ``1``, ``1.2``, ``1.2.x``, ``1.2.3-rc.1``."""

    __slots__ = ("parts", "pre")

    def __init__(self, parts: tuple[int, ...], pre: tuple[str, ...]) -> None:
        self.parts, self.pre = parts, pre

    @classmethod
    def parse(cls, text: str, source: str) -> _Partial:
        if text in _WILD or text == "":
            return cls((), ())
        core, _, _build = text.partition("+")
        core, dash, pre_text = core.partition("-")
        pieces = core.split(".")
        if len(pieces) > 3:
            raise InvalidArgument(f"invalid version range {source!r}: {text!r} has more than "
                                  f"three parts")
        parts: list[int] = []
        for i, piece in enumerate(pieces):
            if piece in _WILD:
                if any(p not in _WILD for p in pieces[i:]):
                    raise InvalidArgument(f"invalid version range {source!r}: {text!r} has a "
                                          f"number after a wildcard")
                break
            try:
                parts.append(_number(piece, "version part", text))
            except InvalidArgument:
                raise InvalidArgument(f"invalid version range {source!r}: {text!r} is not a "
                                      f"version") from None
        if dash and len(parts) < 3:
            raise InvalidArgument(f"invalid version range {source!r}: a pre-release needs a "
                                  f"whole MAJOR.MINOR.PATCH ({text!r})")
        pre = _identifiers(pre_text, "pre-release", text, True) if dash else ()
        return cls(tuple(parts), pre)

    def low(self) -> Version:
        """The least version this partial covers (missing parts are 0)."""
        major, minor, patch = (*self.parts, 0, 0, 0)[:3]
        return Version(major, minor, patch, self.pre)

    def next_release(self, index: int) -> tuple[int, int, int]:
        """The first release past this partial's `index`-th part: ``1.2`` at 0 is 2.0.0."""
        parts = [*self.parts, 0, 0, 0][:3]
        parts[index] += 1
        for i in range(index + 1, 3):
            parts[i] = 0
        return (parts[0], parts[1], parts[2])

    def above(self) -> Version:
        """The least release above everything this partial covers (``>1.2``: 1.3.0)."""
        return Version(*self.next_release(len(self.parts) - 1))

    def below(self, index: int) -> Version:
        """The upper bound past the `index`-th part, written ``-0`` so that it ends below
        that release's pre-releases too (``^1.1`` stops before 2.0.0-rc.1)."""
        return Version(*self.next_release(index), ("0",))


_Comparator = tuple[str, Version]  # (">=" | ">" | "<" | "<=" | "=", version)


def _comparators(term: str, source: str) -> list[_Comparator]:
    """One term of a range as the comparators it stands for."""
    if term.startswith("^"):
        p = _Partial.parse(term[1:], source)
        if not p.parts:
            return []
        # the leftmost non-zero part is fixed; ^0.0 and ^0 fix what they name
        fixed = next((i for i, n in enumerate(p.parts) if n != 0), len(p.parts) - 1)
        return [(">=", p.low()), ("<", p.below(fixed))]
    if term.startswith("~"):
        p = _Partial.parse(term[1:].lstrip(">"), source)
        if not p.parts:
            return []
        return [(">=", p.low()), ("<", p.below(0 if len(p.parts) == 1 else 1))]
    op = next((o for o in _OPERATORS if term.startswith(o)), "")
    p = _Partial.parse(term[len(op):].strip(), source)
    if not p.parts:
        if op in ("<", ">"):
            raise InvalidArgument(f"invalid version range {source!r}: {term!r} matches nothing")
        return []
    whole = len(p.parts) == 3
    if op in ("", "="):
        if whole:
            return [("=", p.low())]
        return [(">=", p.low()), ("<", p.below(len(p.parts) - 1))]
    if op == ">=":
        return [(">=", p.low())]
    if op == ">":
        return [(">", p.low())] if whole else [(">=", p.above())]
    if op == "<":
        return [("<", p.low() if whole else Version(*p.low().release, ("0",)))]
    return [("<=", p.low())] if whole else [("<", p.below(len(p.parts) - 1))]  # "<="


def _holds(op: str, version: Version, bound: Version) -> bool:
    if op == "=":
        return version == bound
    if op == ">=":
        return version >= bound
    if op == ">":
        return version > bound
    if op == "<":
        return version < bound
    return version <= bound


class Range:
    """A version range: alternatives (``||``), each a list of comparators all must hold."""

    __slots__ = ("text", "alternatives")

    def __init__(self, text: str, alternatives: list[list[_Comparator]]) -> None:
        self.text = text
        self.alternatives = alternatives

    @classmethod
    def parse(cls, text: str) -> Range:
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument(f"invalid version range {text!r}: it is empty")
        alternatives = []
        for alternative in text.split("||"):
            terms = [t for t in alternative.replace(",", " ").split() if t]
            # ">= 1.0" written with a space: the operator goes with what follows it
            joined: list[str] = []
            for term in terms:
                if joined and joined[-1] in (*_OPERATORS, "^", "~"):
                    joined[-1] += term
                else:
                    joined.append(term)
            if not joined:
                raise InvalidArgument(f"invalid version range {text!r}: an alternative is "
                                      f"empty")
            if joined[-1] in (*_OPERATORS, "^", "~"):
                raise InvalidArgument(f"invalid version range {text!r}: {joined[-1]!r} has "
                                      f"no version")
            alternatives.append([c for term in joined for c in _comparators(term, text)])
        return cls(text.strip(), alternatives)

    @classmethod
    def exact(cls, version: Version) -> Range:
        return cls(str(version), [[("=", version)]])

    def matches(self, version: Version) -> bool:
        for comparators in self.alternatives:
            if not all(_holds(op, version, bound) for op, bound in comparators):
                continue
            # npm's rule: a pre-release only where this alternative asks for one of its
            # MAJOR.MINOR.PATCH
            if version.pre and not any(bound.pre and bound.release == version.release
                                       for _, bound in comparators):
                continue
            return True
        return False

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Range({self.text!r})"


def is_version(text: str) -> bool:
    try:
        Version.parse(text)
    except InvalidArgument:
        return False
    return True
