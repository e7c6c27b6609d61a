"""Times as Docker writes and reads them: RFC 3339 with nanoseconds, and Go's zero time.

Image configs carry ``created`` as RFC 3339 text, which the API shows as is (inspect) or as
Unix seconds (list, history). `parse_time` reads that and the looser forms ``until`` and
``since`` filters take (a date, a local time without zone); `rfc3339_nano` writes a moment
the way Go's `time.RFC3339Nano` does (trailing zeros of the fraction dropped, ``Z`` for UTC).
"""

from __future__ import annotations

from datetime import datetime, timezone

GO_ZERO_TIME = "0001-01-01T00:00:00Z"  # what Go prints for a time never set


def parse_time(text: str | None) -> float | None:
    """Unix seconds of an RFC 3339 time (fractions of any length, ``Z`` or an offset), or of
    a date / local time; None when `text` is absent or not a time."""
    if not text:
        return None
    value = text.strip()
    # Python takes at most 6 fractional digits: Go writes 9
    head, dot, rest = value.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        value = head + "." + rest[:min(digits, 6)] + rest[digits:]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.year <= 1:
        return None  # Go's zero time: never set
    return moment.timestamp()


def unix_seconds(text: str | None) -> int:
    """The whole Unix seconds of an image time (0 when it is absent or unreadable)."""
    moment = parse_time(text)
    return int(moment // 1) if moment is not None else 0


def rfc3339_nano(moment: float) -> str:
    """Go's RFC3339Nano in UTC: ``2024-05-01T10:20:30.123456Z``."""
    whole = int(moment // 1)
    stamp = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    nanos = round((moment - whole) * 1e9)
    if nanos >= 1_000_000_000:
        return rfc3339_nano(whole + 1)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{stamp}{fraction}Z"
