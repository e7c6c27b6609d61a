"""Docker's list and prune filters (moby's api/types/filters), and the matching they use.

A filter set arrives as the ``filters`` query parameter: JSON, either the current form
``{"dangling": {"true": true}}`` or the legacy ``{"dangling": ["true"]}``. `Filters` holds
it as Docker's `filters.Args` does — a set of values per key — with the same questions:
`contains`, `exact_match` (true when the key is absent), `match_kv_list` (every ``label``
value, ``key`` or ``key=value``, must hold) and `validate` against a command's keys. Every
malformed filter is an `InvalidArgument` with Docker's text (``invalid filter 'foo'``).
`familiar_match` is distribution's FamiliarMatch over Go's `path.Match` globs (``*`` and
``?`` stop at ``/``), and `until_timestamp` reads the ``until`` forms Docker takes: a Go
duration before now (``10m``, ``1h30m``), a Unix timestamp, or an RFC 3339 date or time.
"""

from __future__ import annotations

import re
import time

from skiff import jsonfast
from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from skiff.reference import Reference

BAD_PATTERN = "syntax error in pattern"


class Filters:
    """A filter set: key → values (order kept, as the user gave them)."""

    def __init__(self, fields: Mapping[str, Iterable[str]] | None = None) -> None:
        self.fields: dict[str, list[str]] = {}
        for key, values in (fields or {}).items():
            self.fields[key] = list(dict.fromkeys(values))

    @classmethod
    def parse(cls, value: str | Mapping[str, Iterable[str]] | Filters | None) -> Filters:
        """The ``filters`` parameter (JSON text, either form), or a mapping already."""
        if value is None or value == "":
            return cls()
        if isinstance(value, Filters):
            return value
        if not isinstance(value, str):
            return cls(value)
        try:
            doc = jsonfast.loads(value)
        except ValueError as e:
            raise InvalidArgument(f"invalid filters: {e}") from e
        if not isinstance(doc, dict):
            raise InvalidArgument("invalid filters: expected a JSON object of filter names")
        fields: dict[str, list[str]] = {}
        for key, values in doc.items():
            if isinstance(values, dict):  # {"value": true, …}: Docker keeps every key given
                fields[key] = [str(v) for v in values]
            elif isinstance(values, list) and all(isinstance(v, str) for v in values):
                fields[key] = values
            else:
                raise InvalidArgument(f"invalid filter '{key}': expected a list of strings")
        return cls(fields)

    def __repr__(self) -> str:
        return f"Filters({self.fields!r})"

    def __bool__(self) -> bool:
        return bool(self.fields)

    def validate(self, accepted: Iterable[str]) -> None:
        allowed = set(accepted)
        for key in self.fields:
            if key not in allowed:
                raise InvalidArgument(f"invalid filter '{key}'")

    def contains(self, key: str) -> bool:
        return key in self.fields

    def get(self, key: str) -> list[str]:
        return list(self.fields.get(key, ()))

    def exact_match(self, key: str, value: str) -> bool:
        values = self.fields.get(key)
        return not values or value in values

    def match_kv_list(self, key: str, sources: Mapping[str, str] | None) -> bool:
        """Every value of `key` (``name`` or ``name=value``) holds in `sources`."""
        values = self.fields.get(key)
        if not values:
            return True
        if not sources:
            return False
        for value in values:
            name, eq, wanted = value.partition("=")
            if name not in sources or (eq and sources[name] != wanted):
                return False
        return True

    def invalid(self, key: str) -> InvalidArgument:
        return InvalidArgument(f"invalid filter '{key}={','.join(self.fields.get(key, ()))}'")

    def boolean(self, key: str, default: bool) -> bool:
        """A true/false filter (``dangling``): "true"/"1" or "false"/"0", else Docker's error."""
        if not self.contains(key):
            return default
        if self.exact_match(key, "true") or self.exact_match(key, "1"):
            return True
        if self.exact_match(key, "false") or self.exact_match(key, "0"):
            return False
        raise self.invalid(key)


# -- reference globs ------------------------------------------------------------------------
def familiar_match(pattern: str, ref: Reference) -> bool:
    """distribution's FamiliarMatch: the glob against ``name:tag`` as Docker prints it, or
    against the bare familiar name."""
    return glob_match(pattern, ref.familiar()) or glob_match(pattern, ref.familiar_name)


def glob_match(pattern: str, name: str) -> bool:
    """Go's path.Match: ``*`` any run of non-``/``, ``?`` one non-``/``, ``[a-z]``/``[^…]``
    classes, ``\\`` escapes. InvalidArgument (Go's text) for a malformed pattern."""
    return _glob_regex(pattern).fullmatch(name) is not None


_compiled: dict[str, re.Pattern[str]] = {}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    found = _compiled.get(pattern)
    if found is None:
        found = _compiled[pattern] = re.compile(_translate(pattern), re.DOTALL)
    return found


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i >= n:
                raise InvalidArgument(BAD_PATTERN)
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            text, i = _char_class(pattern, i)
            out.append(text)
        else:
            out.append(re.escape(c))
    return "".join(out)


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """The regex for a class whose body starts at `i`, and the index after its ``]``."""
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    if negate:
        i += 1
    ranges: list[str] = []
    count = 0
    while True:
        if i < n and pattern[i] == "]" and count > 0:
            i += 1
            break
        lo, i = _class_char(pattern, i)
        hi = lo
        if i < n and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        count += 1
        if lo <= hi:  # Go accepts a reversed range; it just matches nothing
            ranges.append(f"{re.escape(lo)}-{re.escape(hi)}")
    body = "".join(ranges)
    if not body:
        return ("[\\s\\S]" if negate else "(?!)"), i
    return f"[{'^' if negate else ''}{body}]", i


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    # Go's getEsc: a class member may not be a bare "-" or "]", and may not end the pattern
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise InvalidArgument(BAD_PATTERN)
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise InvalidArgument(BAD_PATTERN)
    if i + 1 >= n:
        raise InvalidArgument(BAD_PATTERN)
    return pattern[i], i + 1


# -- until ----------------------------------------------------------------------------------
_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_UNIX = re.compile(r"\d+(?:\.\d{1,9})?")


def go_duration(text: str) -> float | None:
    """Go's time.ParseDuration in seconds (``1h30m``, ``-10s``), or None if it is not one."""
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    if not body or _DURATION.fullmatch(body) is None:
        return None
    return sign * sum(float(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(body))


def until_timestamp(value: str, now: float | None = None) -> float:
    """Docker's timetypes.GetTimestamp for ``until``: the moment `value` names, in Unix
    seconds."""
    now = time.time() if now is None else now
    if value != "0":
        d = go_duration(value)
        if d is not None:
            return now - d
    if _UNIX.fullmatch(value):
        return float(value)
    from skiff.engine.times import parse_time

    moment = parse_time(value)
    if moment is None:
        raise InvalidArgument(f'failed to parse value as time or duration: "{value}"')  # Go's %q
    return moment
