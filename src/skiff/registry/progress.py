"""Progress of a pull or push, one record per layer event, in Docker's own words.

The statuses are those dockerd streams in its JSON progress lines (``Pulling fs layer``,
``Downloading``, ``Extracting``, ``Pull complete``, ``Already exists``, ``Pushing``,
``Layer already exists``, ``Mounted from library/x``, ``Retrying in 5 seconds``…); `id` is
the 12-hex short digest Docker prints before the colon. A `Reporter` wraps the caller's
callback: it may be called from worker threads, so it serialises the calls, and it thins
the byte counts of ``Downloading``/``Extracting``/``Pushing`` to a few a second (the last
one of a transfer always goes out). A `CountingReader` is a stored blob read through, an
unpacker's input or an upload's body, that tells its running byte count as it goes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

_INTERVAL = 0.1  # seconds between two byte-count updates of one layer


class Progress(Record):
    id: str | None
    status: str
    current: int | None = None
    total: int | None = None


ProgressFn = Callable[[Progress], None]


def short_id(digest: str) -> str:
    """The 12 hex digits Docker shows of a digest."""
    return digest.partition(":")[2][:12]


class Reporter:
    """The callback, made thread-safe and thinned; a no-op when there is none."""

    def __init__(self, fn: ProgressFn | None) -> None:
        self.fn = fn
        self.lock = threading.Lock()
        self.last: dict[str | None, float] = {}

    def __call__(self, id: str | None, status: str, current: int | None = None,
                 total: int | None = None) -> None:
        if self.fn is None:
            return
        with self.lock:
            self.fn(Progress(id, status, current, total))

    def bytes(self, id: str, status: str, current: int, total: int | None) -> None:
        """A byte count: sent when the last one of this layer is old enough, or it is
        the end of the transfer."""
        if self.fn is None:
            return
        now = time.monotonic()
        if current != total and now - self.last.get(id, 0.0) < _INTERVAL:
            return
        self.last[id] = now
        self(id, status, current, total)


class CountingReader:
    """A blob opened for reading, calling `on_bytes` with the bytes read so far after each
    read; seeking (a resent upload rewinds its body) moves the count with it."""

    def __init__(self, f: IO[bytes], on_bytes: Callable[[int], None]) -> None:
        self.f = f
        self.on_bytes = on_bytes
        self.total = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.total += len(data)
        self.on_bytes(self.total)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        self.total = self.f.seek(offset, whence)
        return self.total

    def close(self) -> None:
        self.f.close()
