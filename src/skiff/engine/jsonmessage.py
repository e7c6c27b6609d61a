"""Docker's streamed JSON messages (moby's pkg/jsonmessage and pkg/streamformatter), as dicts.

Pull, push, load and import answer with one JSON object a line, ``\\r\\n``-terminated, in the
shapes the docker CLI and docker-py read: a status line (``{"status": "Digest: sha256:…"}``,
with an ``id`` when it is about one layer or tag), a layer's progress (``status``,
``progressDetail`` — empty, or ``current``/``total`` — and Docker's ready-made ``progress``
bar, drawn as the daemon draws it for a 200-column terminal), a build-style ``stream`` text,
an ``aux`` object (the push result), and an error (``errorDetail`` and the deprecated
``error``, both). `from_progress` turns a registry `Progress` (or anything with its four
attributes) into the right one; `encode` gives the line.
"""

from __future__ import annotations

from skiff import jsonfast
from skiff.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Message = dict[str, Any]

_BAR = 50  # the bar's cells at 100%


def progress_text(current: int | None, total: int | None) -> str:
    """JSONProgress.String() as the daemon renders it (no terminal: 200 columns, so the bar
    is drawn; no start time, so no time left): ``[=====>      ]  1.2MB/5MB``."""
    cur, tot = current or 0, total or 0
    if cur <= 0 and tot <= 0:
        return ""
    if tot <= 0:
        return "%8s" % human_size(cur)
    filled = min(int(cur / tot * 100) // 2, _BAR)
    bar = "[" + "=" * filled + ">" + " " * max(_BAR - filled, 0) + "] "
    numbers = "%8s/%s" % (human_size(cur), human_size(tot)) if cur <= tot else "%8s" % human_size(cur)
    return bar + numbers


def status(text: str, id: str | None = None) -> Message:
    """A plain status line (progress.Message): no progressDetail."""
    msg: Message = {"status": text}
    if id:
        msg["id"] = id
    return msg


def progress(action: str, id: str | None = None, current: int | None = None,
             total: int | None = None) -> Message:
    """A progress update (progress.Update / ProgressReader): progressDetail is always there,
    empty for a bare step such as ``Pull complete``."""
    detail: dict[str, int] = {}
    if current:
        detail["current"] = current
    if total:
        detail["total"] = total
    msg: Message = {"status": action, "progressDetail": detail}
    bar = progress_text(current, total)
    if bar:
        msg["progress"] = bar
    if id:
        msg["id"] = id
    return msg


def from_progress(p: Any) -> Message:
    """The message for a registry or archive progress report (id, status, current, total)."""
    return progress(getattr(p, "status", ""), getattr(p, "id", None),
                    getattr(p, "current", None), getattr(p, "total", None))


def stream(text: str) -> Message:
    return {"stream": text}


def aux(value: dict[str, Any], id: str | None = None) -> Message:
    msg: Message = {"progressDetail": {}, "aux": value}
    if id:
        msg["id"] = id
    return msg


def error(message: str) -> Message:
    """streamformatter.FormatError: the error twice, new style and deprecated."""
    return {"errorDetail": {"message": message}, "error": message}


def encode(msg: Message) -> bytes:
    return (jsonfast.dumps(msg) + "\r\n").encode()
