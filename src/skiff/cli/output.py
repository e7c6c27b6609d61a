"""What the docker CLI prints, reproduced: its units, its times, its tables, its JSON.

Sizes and durations are go-units', from `skiff.units`; `since` is ``2 hours ago``; times are
Go's layouts (`go_time_string`: ``2024-01-02 15:04:05 +0000 UTC``,
`rfc3339`, `ansic`). `TabWriter` is text/tabwriter's elastic tab stops as docker configures
them (minwidth 10, padding 3, spaces; a column is as wide as its widest cell in a run of
lines that have it; wide characters count two). `go_json` encodes as Go's encoding/json does
(``<`` as ``\\u003c``, non-ASCII kept, optional indent), so `{{json .}}` and `inspect` print
byte for byte what docker prints.
"""

from __future__ import annotations

import time

import _json

from skiff.units import human_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def since(timestamp: float, now: float | None = None) -> str:
    """``2 hours ago``: how docker shows a creation time."""
    return human_duration((time.time() if now is None else now) - timestamp) + " ago"


def go_time_string(timestamp: int) -> str:
    """Go's time.Time.String() of a Unix time, in local time: ``2006-01-02 15:04:05 -0700 MST``."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(timestamp))


def rfc3339(timestamp: int, nanos: int | None = None) -> str:
    """Go's time.RFC3339 in local time (``Z`` for UTC); with `nanos`, the fraction as
    jsonmessage's RFC3339NanoFixed writes it (nine digits, always)."""
    t = time.localtime(timestamp)
    offset = t.tm_gmtoff or 0
    if offset == 0:
        zone = "Z"
    else:
        sign = "+" if offset > 0 else "-"
        zone = f"{sign}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    fraction = "" if nanos is None else f".{nanos:09d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + fraction + zone


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def ansic(text: str) -> str:
    """An RFC 3339 time as Go's time.ANSIC (``Mon Jan  2 15:04:05 2006``), in the zone it
    was written in — what `docker version` shows as Built; the text as it was if not a time."""
    try:
        date, clock = text[:10], text[11:19]
        year, month, day = (int(x) for x in date.split("-"))
        weekday = _weekday(year, month, day)
        return f"{_DAYS[weekday]} {_MONTHS[month - 1]} {day:2d} {clock} {year}"
    except (ValueError, IndexError):
        return text


def _weekday(year: int, month: int, day: int) -> int:
    # the Julian day number, whose remainder by 7 is 0 on Mondays (no `datetime` import)
    a = (14 - month) // 12
    y, m = year + 4800 - a, month + 12 * a - 3
    jdn = day + (153 * m + 2) // 5 + 365 * y + y // 4 - y // 100 + y // 400 - 32045
    return jdn % 7


def truncate_id(image_id: str) -> str:
    """stringid.TruncateID: the algorithm prefix dropped, 12 hex digits kept."""
    hex_part = image_id.split(":", 1)[1] if ":" in image_id else image_id
    return hex_part[:12]


def display_width(text: str) -> int:
    if text.isascii():
        return len(text)
    import unicodedata
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else
               0 if unicodedata.combining(c) else 1 for c in text)


def ellipsis(text: str, width: int) -> str:
    """formatter.Ellipsis: cut to `width` display columns, the last one a ``…``."""
    if width <= 0:
        return ""
    if width == 1:
        return text[:1]
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for c in text:
        w = display_width(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


class TabWriter:
    """text/tabwriter with docker's settings: cells end at tabs, columns are elastic."""

    def __init__(self, minwidth: int = 10, padding: int = 3) -> None:
        self.minwidth, self.padding = minwidth, padding
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def render(self) -> str:
        lines = [line.split("\t") for line in self.text.split("\n")]
        out: list[str] = []
        self._format(lines, 0, len(lines), [], out)
        return "\n".join(out)

    def _format(self, lines: list[list[str]], line0: int, line1: int, widths: list[int],
                out: list[str]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            # lines line0..this have no cell in this column: print them with what is known
            self._write_lines(lines, line0, this, widths, out)
            line0 = this
            width = self.minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, display_width(lines[this][column]) + self.padding)
                this += 1
            self._format(lines, line0, this, widths + [width], out)
            line0 = this
        self._write_lines(lines, line0, line1, widths, out)

    @staticmethod
    def _write_lines(lines: list[list[str]], line0: int, line1: int, widths: list[int],
                     out: list[str]) -> None:
        for cells in lines[line0:line1]:
            parts = []
            for j, cell in enumerate(cells):
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(cell + " " * (widths[j] - display_width(cell)))
                else:
                    parts.append(cell)
            out.append("".join(parts))


def table(rows: list[list[str]], minwidth: int = 10, padding: int = 3) -> str:
    """Rows of cells laid out as docker's tables (the last cell of a row is not padded)."""
    tw = TabWriter(minwidth, padding)
    tw.write("\n".join("\t".join(r) for r in rows))
    return tw.render()


# -- JSON, as Go writes it ----------------------------------------------------------------
def go_string(text: str, html: bool = True) -> str:
    """A JSON string as Go writes it: non-ASCII kept, and with `html` (json.Marshal's
    default) ``<``, ``>``, ``&`` escaped; U+2028 and U+2029 always are."""
    out = str(_json.encode_basestring(text))  # type: ignore[attr-defined]
    if html and ("<" in out or ">" in out or "&" in out):
        out = out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    if "\u2028" in out or "\u2029" in out:
        out = out.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return out


def shortest_digits(value: float) -> tuple[str, int]:
    """The shortest digits that read back as `value` (Python's repr finds them, as Go's
    strconv does), and the decimal point's place: 0.<digits> x 10^point."""
    text = repr(abs(value))
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    raw = whole + fraction
    stripped = raw.lstrip("0")
    point = len(whole) - (len(raw) - len(stripped)) + (int(exponent) if exponent else 0)
    digits = stripped.rstrip("0")
    return (digits, point) if digits else ("0", 1)


def go_float(value: float, json: bool = False) -> str:
    """A float as Go's fmt %v writes it (shortest digits, exponent form from 1e+06 and below
    1e-04, two-digit exponents) or, with `json`, as encoding/json does (exponent form only
    from 1e21 and below 1e-6, exponents as short as they go)."""
    if value != value or value in (float("inf"), float("-inf")):
        if json:
            raise ValueError(f"json: unsupported value: {value!r}")
        return "NaN" if value != value else ("+Inf" if value > 0 else "-Inf")
    digits, point = shortest_digits(value)
    sign = "-" if value < 0 else ""
    exp = point - 1
    if json:
        exponent_form = value != 0 and not 1e-6 <= abs(value) < 1e21
    else:
        exponent_form = value != 0 and (exp < -4 or exp >= 6)
    if exponent_form:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        width = 1 if json else 2
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):0{width}d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def indent_json(text: str, indent: str = "    ") -> str:
    """encoding/json's Indent: a JSON document laid out again, its strings and numbers kept
    byte for byte as they were written (which is how `docker inspect` prints the daemon's
    answers: the daemon's escapes, not Go's)."""
    out: list[str] = []
    depth = 0
    pending = False  # an opening bracket whose first element has not come yet
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
            continue
        if pending and c not in "}]":
            pending = False
            depth += 1
            out.append("\n" + indent * depth)
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
            continue
        if c in "{[":
            pending = True
            out.append(c)
        elif c == ",":
            out.append(",\n" + indent * depth)
        elif c == ":":
            out.append(": ")
        elif c in "}]":
            if pending:
                pending = False
            else:
                depth -= 1
                out.append("\n" + indent * depth)
            out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def go_json(value: Any, indent: str = "", html: bool = True, level: int = 0) -> str:
    """encoding/json's Marshal (MarshalIndent with `indent`; an Encoder with
    SetEscapeHTML(false) when not `html`) of a decoded JSON value."""
    if isinstance(value, str):
        return go_string(value, html)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value, json=True)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [(go_string(str(k), html), go_json(v, indent, html, level + 1))
                 for k, v in value.items()]
        if not indent:
            return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
        inner = "\n" + indent * (level + 1)
        return "{" + ",".join(f"{inner}{k}: {v}" for k, v in items) + "\n" + indent * level + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        parts = [go_json(v, indent, html, level + 1) for v in value]
        if not indent:
            return "[" + ",".join(parts) + "]"
        inner = "\n" + indent * (level + 1)
        return "[" + ",".join(inner + p for p in parts) + "\n" + indent * level + "]"
    return go_string(str(value), html)
