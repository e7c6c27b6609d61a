"""Docker's units, as its go-units library writes them, for every layer that shows them.

`human_size` is HumanSize(WithPrecision): 1000-based, ``4.26MB``, ``kB``; `bytes_size`
BytesSize: 1024-based, ``7.451GiB``; `human_duration` HumanDuration: ``2 hours``, ``About a
minute``; `go_duration_seconds` reads Go's time.ParseDuration (``1h30m``, ``300ms``). The
daemon needs them for its progress lines and its ``Up 3 seconds`` statuses, the CLI for
its tables and flags; a foundation module (like errors and record) so neither copies them.
"""

from __future__ import annotations

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _scaled(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return size, units[i]


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision (HumanSize is precision 4; docker's tables use 3)."""
    value, unit = _scaled(float(size), 1000.0, _DECIMAL)
    return "%.*g%s" % (precision, value, unit)


def bytes_size(size: float) -> str:
    value, unit = _scaled(float(size), 1024.0, _BINARY)
    return "%.4g%s" % (value, unit)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, case for case."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}


def go_duration_seconds(text: str) -> float | None:
    """Go's time.ParseDuration (``1h30m``, ``-1.5s``, ``300ms``) in seconds; None if it is
    not one."""
    rest = text
    sign = 1.0
    if rest[:1] in "+-" and rest[:1]:
        sign, rest = (-1.0 if rest[0] == "-" else 1.0), rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        return None
    total = 0.0
    while rest:
        i = 0
        while i < len(rest) and (rest[i].isdigit() or rest[i] == "."):
            i += 1
        number, rest = rest[:i], rest[i:]
        if not number or number == "." or number.count(".") > 1:
            return None
        j = 0
        while j < len(rest) and not (rest[j].isdigit() or rest[j] == "."):
            j += 1
        unit, rest = rest[:j], rest[j:]
        if unit not in _DURATION_UNITS:
            return None
        total += float(number) * _DURATION_UNITS[unit]
    return sign * total
