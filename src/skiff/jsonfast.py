"""JSON in and out through CPython's own C accelerator, without importing `json`.

`import json` compiles regular expressions at import (it brings in `re`), which costs
about 5 ms — an eighth of a whole `skiff-runtime run` — while the work itself is done by
the C module `_json` that `json` wraps. `loads` and `dumps` call it directly and behave
like `json.loads` and `json.dumps` (with `indent` and `sort_keys`) for the documents skiff
reads and writes. A malformed document raises `ValueError` (`json.JSONDecodeError`, with
the place, for a syntax error). Like errors.py, this module imports nothing of skiff.
"""

from __future__ import annotations

import _json
import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _Context:
    """The attributes `_json.make_scanner` reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Context)  # type: ignore[arg-type]  # (it reads the attributes)


def loads(text: str | bytes) -> Any:
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8-sig" if text[:3] == b"\xef\xbb\xbf" else "utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError(f"Expecting value: char {start}") from None
    except SystemError:
        # the scanner reports a syntax error through json.decoder, if that was imported;
        # only then is `json` worth its cost: it says what is wrong, and where
        import json
        return json.loads(text)
    finally:
        _Context.memo.clear()
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"Extra data: char {end}")
    return value


def _unsupported(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _unsupported, _json.encode_basestring_ascii, None, ": ", ", ",
                             False, False, True)
_encode_sorted = _json.make_encoder(None, _unsupported, _json.encode_basestring_ascii, None, ": ",
                                    ", ", True, False, True)


def dumps(value: Any, indent: int | str | None = None, sort_keys: bool = False) -> str:
    if indent is None:
        return "".join((_encode_sorted if sort_keys else _encode)(value, 0))
    step = " " * indent if isinstance(indent, int) else indent
    out: list[str] = []
    _pretty(value, step, 0, sort_keys, out)
    return "".join(out)


def _pretty(value: Any, step: str, level: int, sort_keys: bool, out: list[str]) -> None:
    if isinstance(value, dict) and value:
        inner = "\n" + step * (level + 1)
        out.append("{")
        items = sorted(value.items()) if sort_keys else value.items()
        for i, (k, v) in enumerate(items):
            out.append(("," if i else "") + inner + _json.encode_basestring_ascii(str(k)) + ": ")
            _pretty(v, step, level + 1, sort_keys, out)
        out.append("\n" + step * level + "}")
    elif isinstance(value, (list, tuple)) and value:
        inner = "\n" + step * (level + 1)
        out.append("[")
        for i, v in enumerate(value):
            out.append(("," if i else "") + inner)
            _pretty(v, step, level + 1, sort_keys, out)
        out.append("\n" + step * level + "]")
    else:
        out.append("".join(_encode(value, 0)))
