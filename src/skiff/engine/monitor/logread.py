"""Reading a container's json-file log back: across rotated files, from the end, following.

`read_log` is what the engine's ``logs`` and ``attach`` stand on. It reads the rotated
files oldest first (``log.N`` … ``log.1``), then the live file; ``tail`` takes the last N
entries of them all, read backwards from the end (a log without a size limit may be huge);
``since``/``until`` keep the entries written in that window (Docker's rules: since is
inclusive, and reading stops at the first entry after until). With ``follow_until`` it then
stays on the live file, yielding entries as the monitor appends them, following it across
rotations (the old file is read to its end first) and truncations, until ``follow_until()``
says the container stopped — and then it reads what is left and ends. It waits with
inotify on the log's folder (woken by every write, and by the monitor closing the log,
which it does right after writing the exit file: then it re-checks every few milliseconds
for a while), else re-checking every ``interval`` seconds.
A line being written while it is read is picked up once it is whole; lines that are not
JSON (a torn file) are skipped.
"""

from __future__ import annotations

import os
import time

from skiff import jsonfast
from skiff.errors import KernelError
from skiff.engine.monitor.logfile import rotated_name
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable, Iterator

_BLOCK = 64 * 1024


class LogEntry(Record):
    stream: str  # "stdout" or "stderr"
    data: bytes  # what was printed; a whole line keeps its "\n"
    time: str  # as the log has it: RFC 3339, UTC, nine fraction digits (Docker's -t shows it)
    nanos: int  # the same moment in Unix nanoseconds


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_log_time(text: str) -> int:
    """Unix nanoseconds of an RFC 3339 time (any fraction length, ``Z`` or an offset);
    ValueError when it is not one."""
    if len(text) < 20 or text[4] != "-" or text[7] != "-" or text[10] not in "Tt" \
            or text[13] != ":" or text[16] != ":":
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    seconds = (_days_from_civil(int(text[0:4]), int(text[5:7]), int(text[8:10])) * 86400
               + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19]))
    rest = text[19:]
    frac = 0
    if rest.startswith("."):
        digits = len(rest) - 1 - len(rest[1:].lstrip("0123456789"))
        if not digits:
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        frac = int(rest[1:1 + digits][:9].ljust(9, "0"))
        rest = rest[1 + digits:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = int(rest[1:3]) * 3600 + int(rest[4:6]) * 60
        offset = -offset if rest[0] == "-" else offset
    else:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return (seconds - offset) * 1_000_000_000 + frac


def parse_line(line: bytes) -> LogEntry | None:
    """One json-file line as an entry; None for a line that is not one."""
    try:
        doc = jsonfast.loads(line)
        stamp = doc["time"]
        text = doc.get("log", "")
        return LogEntry(stream=doc.get("stream", "stdout"),
                        data=text.encode("utf-8", "surrogatepass"),
                        time=stamp, nanos=parse_log_time(stamp))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeError):
        return None


def log_files(path: str) -> list[str]:
    """The rotated files that exist, oldest first, then `path` itself (if it exists)."""
    numbered: list[tuple[int, str]] = []
    folder, base = os.path.split(path)
    try:
        names = os.listdir(folder or ".")
    except FileNotFoundError:
        return []
    for name in names:
        suffix = name[len(base) + 1:]
        if name.startswith(base + ".") and suffix.isdigit():
            numbered.append((int(suffix), os.path.join(folder, name)))
    out = [p for _, p in sorted(numbered, reverse=True)]
    if os.path.exists(path):
        out.append(path)
    return out


def log_end(path: str) -> int:
    """The current size of the live log (0 when there is none yet): a `from_offset` that
    reads only what is written from now on."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _lines_of(path: str) -> Iterator[bytes]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if line.endswith(b"\n"):
                yield line


def _last_lines(fd: int, end: int, count: int) -> list[bytes]:
    """Up to `count` whole lines ending at or before `end` of an open file, read backwards
    block by block."""
    chunks: list[bytes] = []
    newlines = 0
    pos = end
    while pos > 0 and newlines <= count:
        size = min(_BLOCK, pos)
        pos -= size
        chunk = os.pread(fd, size, pos)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")
    data = b"".join(reversed(chunks))
    cut = data.rfind(b"\n") + 1  # a line still being written is not whole yet
    lines = data[:cut].split(b"\n")[:-1]
    if pos > 0:
        lines = lines[1:]  # the first one may have started before what we read
    return [line + b"\n" for line in lines[-count:]] if count else []


def _tail(path: str, fd: int | None, end: int, count: int) -> list[bytes]:
    """The last `count` lines of the live file (open as `fd`, up to `end`) and, if it has
    fewer, of the rotated files before it."""
    found: list[bytes] = []
    if fd is not None:
        found = _last_lines(fd, end, count)
    for older in reversed(log_files(path)):
        if len(found) >= count:
            break
        if older == path:
            continue
        try:
            ofd = os.open(older, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            found = _last_lines(ofd, os.fstat(ofd).st_size, count - len(found)) + found
        finally:
            os.close(ofd)
    return found


class _Waiter:
    """Sleeps until something happens in the log's folder, or `interval` passes.

    Once the writer has closed the log — a monitor does that only when its run is over —
    the end is moments away (the engine learns it when the monitor exits, just after), so
    for a while the waits are short: a follower ends within milliseconds of the run."""

    CLOSING_WAIT = 0.005
    CLOSING_FOR_NS = 2_000_000_000

    def __init__(self, path: str) -> None:
        self.name = os.path.basename(path)
        self.closing_until = 0
        self.watch = None
        try:
            from skiff.kernel import inotify
            self.close_write = inotify.IN_CLOSE_WRITE
            watch = inotify.Inotify()
            try:
                watch.add_watch(os.path.dirname(path) or ".", inotify.IN_MODIFY | inotify.IN_CREATE
                                | inotify.IN_MOVED_TO | inotify.IN_MOVED_FROM | inotify.IN_DELETE
                                | inotify.IN_CLOSE_WRITE | inotify.IN_ONLYDIR)
            except BaseException:
                watch.close()
                raise
            self.watch = watch
        except (OSError, KernelError):  # no inotify here (or no folder yet): poll
            self.watch = None

    def wait(self, interval: float) -> None:
        if self.watch is None:
            time.sleep(min(interval, 0.05))
            return
        if time.monotonic_ns() < self.closing_until:
            interval = self.CLOSING_WAIT
        for event in self.watch.read(interval):
            if event.mask & self.close_write and event.name == self.name:
                self.closing_until = time.monotonic_ns() + self.CLOSING_FOR_NS

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()


def _follow(path: str, fd: int | None, pos: int, follow_until: Callable[[], bool],
            until_ns: int | None, interval: float) -> Iterator[bytes]:
    """Whole lines appended to the live file from `pos` on, until `follow_until()`."""
    waiter = _Waiter(path)
    pending = b""
    ending = False
    try:
        while True:
            if fd is None:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    pos = min(pos, os.fstat(fd).st_size)
                except FileNotFoundError:
                    fd = None
            if fd is not None:
                chunk = os.pread(fd, _BLOCK, pos)
                if chunk:
                    pos += len(chunk)
                    pending += chunk
                    if b"\n" in chunk:
                        *lines, pending = pending.split(b"\n")
                        for line in lines:
                            yield line + b"\n"
                    continue
                mine = os.fstat(fd)
                if mine.st_size < pos:  # truncated in place (max-file 1): start over
                    pos, pending = 0, b""
                    continue
                try:
                    now = os.stat(path)
                    rotated = (now.st_ino, now.st_dev) != (mine.st_ino, mine.st_dev)
                except FileNotFoundError:
                    rotated = False
                if rotated:  # we read the old file to its end: go on with the new one
                    os.close(fd)
                    fd, pos, pending = None, 0, b""
                    continue
            if ending:
                return
            ending = follow_until() or (until_ns is not None and time.time_ns() > until_ns)
            if not ending:
                waiter.wait(interval)
    finally:
        waiter.close()
        if fd is not None:
            os.close(fd)


def _select(lines: Iterable[bytes], since_ns: int | None, until_ns: int | None,
            done: list[bool]) -> Iterator[LogEntry]:
    for line in lines:
        entry = parse_line(line)
        if entry is None:
            continue
        if until_ns is not None and entry.nanos > until_ns:
            done[0] = True
            return
        if since_ns is None or entry.nanos >= since_ns:
            yield entry


def bound_ns(value: float | str | None) -> int | None:
    """A `since`/`until` bound in Unix nanoseconds: seconds as a number (an int exactly, a
    float as close as it holds), or as the Engine API's text ``SECONDS[.NANOSECONDS]``
    (exact); None stays None. ValueError for text that is not such a number."""
    if value is None:
        return None
    if isinstance(value, str):
        whole, dot, frac = value.strip().partition(".")
        if not whole.lstrip("-").isdigit() or (dot and not frac.isdigit()):
            raise ValueError(f"invalid timestamp {value!r}")
        sign = -1 if whole.startswith("-") else 1
        return int(whole) * 1_000_000_000 + sign * int(frac[:9].ljust(9, "0") if dot else 0)
    if isinstance(value, int):
        return value * 1_000_000_000
    return round(value * 1e9)


def read_log(path: str, *, follow_until: Callable[[], bool] | None = None,
             since: float | str | None = None, until: float | str | None = None,
             tail: int | None = None,
             from_offset: int | None = None, interval: float = 0.25) -> Iterator[LogEntry]:
    """The entries of the log at `path` (see the module's text).

    `since`/`until`: Unix seconds, as numbers or as the API's ``SECONDS.NANOSECONDS``
    text (exact to the nanosecond; a float only as exact as it holds, see `bound_ns`).
    `tail`: the last N entries only (None or negative: all; 0: none of what is there).
    `from_offset`: start at this byte offset of the live file instead (rotated files and
    `tail` are then ignored; a file now shorter than that is read from its start) — from
    `log_end(path)` taken before a start, it gives exactly what that run prints.
    `follow_until`: follow the live file until it returns True (checked whenever the
    folder changes, and every `interval` seconds).
    """
    since_ns = bound_ns(since)
    until_ns = bound_ns(until)
    try:
        fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = None
    done = [False]
    try:
        end = os.fstat(fd).st_size if fd is not None else 0
        if from_offset is not None:
            pos = from_offset if from_offset <= end else 0
        else:
            pos = end
            if tail is not None and tail >= 0:
                history: Iterable[bytes] = _tail(path, fd, end, tail)
            else:
                history = _history(path, fd, end)
            yield from _select(history, since_ns, until_ns, done)
        if follow_until is None or done[0]:
            if from_offset is not None and fd is not None:
                yield from _select(_until_end(fd, pos), since_ns, until_ns, done)
            return
        owned, fd = fd, None  # the follower closes it from now on
        yield from _select(_follow(path, owned, pos, follow_until, until_ns, interval),
                           since_ns, until_ns, done)
    finally:
        if fd is not None:
            os.close(fd)


def _history(path: str, fd: int | None, end: int) -> Iterator[bytes]:
    """Every whole line of the rotated files, then of the live file up to `end`."""
    for older in log_files(path):
        if older != path:
            yield from _lines_of(older)
    if fd is not None:
        yield from _until_end(fd, 0, end)


def _until_end(fd: int, pos: int, end: int | None = None) -> Iterator[bytes]:
    """The whole lines of an open file from `pos` to `end` (default: its end now)."""
    limit = os.fstat(fd).st_size if end is None else end
    pending = b""
    while pos < limit:
        chunk = os.pread(fd, min(_BLOCK, limit - pos), pos)
        if not chunk:
            break
        pos += len(chunk)
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            yield line + b"\n"
