"""Docker's streamed JSON messages (pull, push, load, import) shown as the docker CLI shows
them: pkg/jsonmessage's DisplayJSONMessagesStream.

On a terminal every layer keeps a line of its own that is redrawn in place (cursor up to it,
clear, ``<id>: Downloading [=====>      ]  1.5MB/50MB``, cursor back down); the bar is drawn
when the terminal is wider than 110 columns, the counts always. Anywhere else progress
updates are dropped and each status is a plain line (``<id>: Pull complete``). A message
with ``errorDetail`` ends the stream with its text; ``aux`` messages (a push's digest, a
build's image ID) are kept for the caller and not shown.
"""

from __future__ import annotations

import time

from skiff.units import human_size
from skiff.errors import SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, TextIO


def go_duration(seconds: int) -> str:
    """Go's time.Duration.String() for whole seconds: ``1h2m3s``, ``45s``, ``0s``."""
    if seconds <= 0:
        return "0s"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def progress_text(detail: dict[str, Any], width: int, now: float | None = None) -> str:
    """JSONProgress.String(): the bar (wide terminals), the counts, the time left."""
    current = int(detail.get("current") or 0)
    total = int(detail.get("total") or 0)
    start = int(detail.get("start") or 0)
    units = detail.get("units") or ""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return "%8s" % human_size(current) if not units else f"{current} {units}"
    percentage = min(int(current / total * 100) // 2, 50)
    bar = ""
    if width > 110:
        bar = f"[{'=' * percentage}>{' ' * max(50 - percentage, 0)}] "
    if detail.get("hidecounts"):
        numbers = ""
    elif not units:
        numbers = "%8s/%s" % (human_size(current), human_size(total))
        if current > total:
            numbers = "%8s" % human_size(current)
    else:
        numbers = f"{current}/{total} {units}" if current <= total else f"{current} {units}"
    left = ""
    if current > 0 and start > 0 and percentage < 50:
        elapsed = (time.time() if now is None else now) - start
        remaining = int((total - current) * (elapsed / current))
        if width > 50:
            left = " " + go_duration(remaining)
    return bar + numbers + left


class Display:
    """Shows one stream of messages on `out` (a terminal or not, `width` columns)."""

    def __init__(self, out: TextIO, terminal: bool, width: int = 200) -> None:
        self.out = out
        self.terminal = terminal
        self.width = width
        self.ids: dict[str, int] = {}
        self.aux: list[Any] = []

    def show_all(self, messages: Iterable[dict[str, Any]]) -> None:
        for message in messages:
            self.show(message)

    def show(self, jm: dict[str, Any]) -> None:
        error = jm.get("errorDetail")
        if error or jm.get("error"):
            message = (error or {}).get("message") or jm.get("error") or "unknown error"
            raise SkiffError(message)
        if jm.get("aux") is not None:
            self.aux.append(jm["aux"])
            return
        write = self.out.write
        ident = jm.get("id") or ""
        detail = jm.get("progressDetail")
        diff = 0
        if ident and (detail is not None or jm.get("progress")):
            line = self.ids.get(ident)
            if line is None:
                line = self.ids[ident] = len(self.ids)
                if self.terminal:
                    write("\n")
            diff = len(self.ids) - line
            if self.terminal and diff:
                write(f"\x1b[{diff}A")
        else:
            # anything that is not a layer's progress starts a new block of layers
            self.ids = {}
        self._display(jm, ident, detail)
        if ident and self.terminal and diff:
            write(f"\x1b[{diff}B")
        self.out.flush()

    def _display(self, jm: dict[str, Any], ident: str, detail: dict[str, Any] | None) -> None:
        write = self.out.write
        stream = jm.get("stream") or ""
        status = jm.get("status") or ""
        endl = ""
        if self.terminal and not stream and detail is not None:
            write("\x1b[2K\r")
            endl = "\r"
        elif detail is not None and progress_text(detail, self.width):
            return  # no progress bars off a terminal
        if ident:
            write(f"{ident}: ")
        if jm.get("from"):
            write(f"(from {jm['from']}) ")
        if detail is not None and self.terminal:
            write(f"{status} {progress_text(detail, self.width)}{endl}")
        elif jm.get("progress"):
            write(f"{status} {jm['progress']}{endl}")
        elif stream:
            write(f"{stream}{endl}")
        else:
            write(f"{status}{endl}\n")
