"""The json-file log a monitor writes: Docker's format, line splitting and rotation.

Each line a container prints becomes one JSON object on a line of its own, exactly as
Docker's json-file driver writes it: ``{"log":"hi\\n","stream":"stdout","time":
"2026-12-01T22:59:08.123456789Z"}`` — the text escaped the way moby's encoder escapes it
(``<``, ``>``, ``&``, U+2028/9 and control bytes as ``\\u00XX``, invalid UTF-8 as U+FFFD),
the time in UTC with nine fraction digits. As in moby's copier, a line longer than 16 KiB
is logged in 16 KiB pieces without a newline, and what is left at EOF without a newline is
logged as it is. With a `max_size`, the file is rotated before a write once it has reached
that size: ``log`` becomes ``log.1``, ``log.1`` ``log.2`` … up to ``max_file - 1`` files
kept; with ``max_file`` 1 the file is truncated in place (Docker's rules). This module
imports only the interpreter's built-in modules: the monitor loads it, and a monitor's
memory is a goal (``os`` alone would cost it a tenth of its budget).
"""

from __future__ import annotations

import posix
import time

MAX_LINE = 16 * 1024  # moby's copier buffer: a longer line goes in pieces of this size
STREAMS = ("stdout", "stderr")

# moby's ffjsonWriteJSONBytesAsString: every byte below 0x20 as \u00XX but \n and \r;
# the HTML characters and the JavaScript line separators escaped too
_ESCAPES: dict[int, str] = {c: f"\\u{c:04x}" for c in range(0x20)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r",
                 ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                 0x2028: "\\u2028", 0x2029: "\\u2029"})


def json_string(raw: bytes | str) -> str:
    """A JSON string literal of `raw` as moby writes one (bytes are read as UTF-8, an
    invalid sequence becoming U+FFFD)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return '"' + text.translate(_ESCAPES) + '"'


class _Seconds:
    """The date-and-time part of the last second formatted: most lines share it."""

    whole = -1
    text = ""


def log_time(ns: int) -> str:
    """Unix nanoseconds as moby's log times: RFC 3339, UTC, always nine fraction digits."""
    whole, frac = divmod(ns, 1_000_000_000)
    if whole != _Seconds.whole:
        _Seconds.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _Seconds.whole = whole
    return f"{_Seconds.text}.{frac:09d}Z"


def go_time(ns: int) -> str:
    """Unix nanoseconds as Go's time.RFC3339Nano writes them (trailing zeros of the
    fraction dropped): what Docker shows as a container's StartedAt and FinishedAt."""
    whole, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    fraction = f".{frac:09d}".rstrip("0") if frac else ""
    return f"{stamp}{fraction}Z"


def log_line(stream: str, data: bytes, ns: int) -> bytes:
    """One json-file line (with its newline) for `data` printed on `stream` at `ns`."""
    return (f'{{"log":{json_string(data)},"stream":"{stream}","time":"{log_time(ns)}"}}\n'
            .encode())


def rotated_name(path: str, n: int) -> str:
    return f"{path}.{n}"


class LogWriter:
    """The log of one container run, fed with what its streams print.

    `feed` takes the bytes read from a stream and logs each complete line (and 16 KiB
    pieces of an overlong one); the rest waits for more, or for `flush` at the stream's
    EOF. A write that fails (disk full…) is counted in `dropped` and noted in `error`:
    the container must never block on its log.
    """

    def __init__(self, path: str, max_size: int = -1, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size if max_size > 0 else -1
        self.max_file = max(1, max_file)
        self.fd = self._open(0)
        self.size = posix.fstat(self.fd).st_size
        self.pending: dict[str, bytes] = {}
        self.dropped = 0
        self.error: OSError | None = None

    def _open(self, extra: int) -> int:
        flags = posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC | extra
        return posix.open(self.path, flags, 0o640)

    def feed(self, stream: str, data: bytes) -> None:
        before = self.pending.pop(stream, None)
        buf = before + data if before else data
        ns = time.time_ns()
        out: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            while end - start >= MAX_LINE:  # moby's buffer filled up before the newline
                out.append(log_line(stream, buf[start:start + MAX_LINE], ns))
                start += MAX_LINE
            out.append(log_line(stream, buf[start:end + 1], ns))
            start = end + 1
        while len(buf) - start >= MAX_LINE:
            out.append(log_line(stream, buf[start:start + MAX_LINE], ns))
            start += MAX_LINE
        if start < len(buf):
            self.pending[stream] = buf[start:]
        if out:
            self._write(out)

    def flush(self, stream: str) -> None:
        """The stream ended: log what it left without a newline, as it is."""
        rest = self.pending.pop(stream, b"")
        if rest:
            self._write([log_line(stream, rest, time.time_ns())])

    def _write(self, lines: list[bytes]) -> None:
        if self.max_size < 0:
            self._append(b"".join(lines))
            return
        batch: list[bytes] = []
        size = self.size
        for line in lines:  # Docker's check, before each message: full → rotate first
            if size >= self.max_size:
                if batch:
                    self._append(b"".join(batch))
                    batch = []
                self._rotate()
                size = self.size
            batch.append(line)
            size += len(line)
        if batch:
            self._append(b"".join(batch))

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                n = posix.write(self.fd, view)
                self.size += n
                view = view[n:]
        except OSError as e:
            self.dropped += 1
            self.error = e

    def _rotate(self) -> None:
        try:
            if self.max_file >= 2:
                _remove(rotated_name(self.path, self.max_file - 1))
                for n in range(self.max_file - 1, 1, -1):
                    _rename(rotated_name(self.path, n - 1), rotated_name(self.path, n))
                _rename(self.path, rotated_name(self.path, 1))
            fd = self._open(posix.O_TRUNC)
        except OSError as e:
            self.error = e
            return  # keep appending to the file we have: better long than lost
        posix.close(self.fd)
        self.fd = fd
        self.size = 0

    def close(self) -> None:
        for stream in list(self.pending):
            self.flush(stream)
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1


def _remove(path: str) -> None:
    try:
        posix.unlink(path)
    except FileNotFoundError:
        pass


def _rename(src: str, dst: str) -> None:
    try:
        posix.rename(src, dst)
    except FileNotFoundError:
        pass
