"""The json-file log: the writer's format, line splitting and rotation (Docker's rules), and
the reader the engine's `logs` uses — rotated files, tail, since/until, torn lines, follow."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from skiff.engine.monitor.logfile import (MAX_LINE, LogWriter, go_time, json_string, log_line,
                                          log_time)
from skiff.engine.monitor.logread import (LogEntry, log_end, log_files, parse_line,
                                          parse_log_time, read_log)

T0 = 1_764_629_948_123_456_789  # 2025-12-01T22:59:08.123456789Z


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- format -------------------------------------------------------------------------------
def test_a_line_is_written_as_docker_writes_it():
    assert log_line("stdout", b"hi\n", T0) == (
        b'{"log":"hi\\n","stream":"stdout","time":"2025-12-01T22:59:08.123456789Z"}\n')


def test_times_keep_nine_digits_and_go_time_trims_them():
    assert log_time(1_000_000_000) == "1970-01-01T00:00:01.000000000Z"
    assert go_time(1_000_000_000) == "1970-01-01T00:00:01Z"
    assert go_time(T0 - 89) == "2025-12-01T22:59:08.1234567Z"
    assert log_time(T0) == "2025-12-01T22:59:08.123456789Z"


@pytest.mark.parametrize("raw, text", [
    (b'a"b\\c', '"a\\"b\\\\c"'),
    (b"<&>", '"\\u003c\\u0026\\u003e"'),
    (b"\t\x01\r\n", '"\\u0009\\u0001\\r\\n"'),  # moby: \t as \u0009, only \n and \r short
    ("é \u2028".encode(), '"é \\u2028"'),  # valid UTF-8 stays as it is
    (b"\xff ok", '"\ufffd ok"'),  # invalid bytes: U+FFFD
])
def test_strings_are_escaped_as_moby_escapes_them(raw, text):
    assert json_string(raw) == text
    assert json.loads(json_string(raw)) == raw.decode("utf-8", "replace")


# -- writer -------------------------------------------------------------------------------
def test_lines_are_split_and_a_partial_one_waits(tmp_path):
    log = tmp_path / "c-json.log"
    w = LogWriter(str(log))
    w.feed("stdout", b"one\ntw")
    w.feed("stderr", b"err\n")
    assert [d["log"] for d in lines_of(log)] == ["one\n", "err\n"]
    w.feed("stdout", b"o\nthr")
    w.flush("stdout")  # the stream ended: what is left goes as it is
    w.close()
    docs = lines_of(log)
    assert [(d["stream"], d["log"]) for d in docs] == [
        ("stdout", "one\n"), ("stderr", "err\n"), ("stdout", "two\n"), ("stdout", "thr")]
    assert all(parse_log_time(d["time"]) > 0 for d in docs)


def test_an_overlong_line_is_logged_in_16k_pieces(tmp_path):
    log = tmp_path / "c-json.log"
    w = LogWriter(str(log))
    w.feed("stdout", b"x" * (2 * MAX_LINE + 5) + b"\n" + b"y" * MAX_LINE + b"\n")
    w.close()
    assert [len(d["log"]) for d in lines_of(log)] == [MAX_LINE, MAX_LINE, 6, MAX_LINE, 1]
    assert lines_of(log)[-1]["log"] == "\n"  # moby: the newline after a full buffer, alone


def test_close_writes_what_waits_and_appends_to_an_old_log(tmp_path):
    log = tmp_path / "c-json.log"
    log.write_bytes(log_line("stdout", b"before\n", T0))
    w = LogWriter(str(log))
    w.feed("stderr", b"no newline")
    w.close()
    assert [d["log"] for d in lines_of(log)] == ["before\n", "no newline"]


def test_rotation_keeps_max_file_files(tmp_path):
    log = tmp_path / "c-json.log"
    w = LogWriter(str(log), max_size=200, max_file=3)
    for i in range(40):
        w.feed("stdout", f"line {i:02d}\n".encode())
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c-json.log", "c-json.log.1", "c-json.log.2"]
    for p in tmp_path.iterdir():  # rotated before a write once the size was reached
        assert p.stat().st_size < 200 + 80
    kept = [d["log"] for p in ("c-json.log.2", "c-json.log.1", "c-json.log")
            for d in lines_of(tmp_path / p)]
    assert kept == [f"line {i:02d}\n" for i in range(40 - len(kept), 40)]
    assert [e.data for e in read_log(str(log))] == [k.encode() for k in kept]


def test_one_file_is_truncated_in_place(tmp_path):
    log = tmp_path / "c-json.log"
    w = LogWriter(str(log), max_size=100, max_file=1)
    ino = os.stat(log).st_ino
    for i in range(10):
        w.feed("stdout", f"line {i}\n".encode())
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c-json.log"]
    assert os.stat(log).st_ino == ino
    assert lines_of(log)[-1]["log"] == "line 9\n" and len(lines_of(log)) < 10


def test_a_failing_write_is_counted_not_raised(tmp_path):
    w = LogWriter(str(tmp_path / "c-json.log"))
    os.close(w.fd)
    w.fd = os.open("/dev/full", os.O_WRONLY)
    w.feed("stdout", b"lost\n")
    assert w.dropped == 1 and w.error is not None
    w.close()


# -- reader -------------------------------------------------------------------------------
def write_entries(path: Path, entries: list[tuple[str, bytes, int]]) -> None:
    with open(path, "ab") as f:
        for stream, data, ns in entries:
            f.write(log_line(stream, data, ns))


def test_parse_log_time_reads_rfc3339():
    assert parse_log_time("1970-01-01T00:00:00Z") == 0
    assert parse_log_time(log_time(T0)) == T0
    assert parse_log_time("2025-12-01T23:59:08.5+01:00") == parse_log_time("2025-12-01T22:59:08.5Z")
    stamp = datetime(2001, 2, 28, 23, 59, 59, tzinfo=timezone.utc).timestamp()
    assert parse_log_time("2001-02-28T23:59:59.000001Z") == int(stamp) * 10**9 + 1000
    for bad in ("", "yesterday", "2025-12-01 22:59:08Z", "2025-12-01T22:59:08.Z",
                "2025-12-01T22:59:08+0100"):
        with pytest.raises(ValueError):
            parse_log_time(bad)


def test_parse_line_gives_entries_and_skips_garbage():
    entry = parse_line(log_line("stderr", "é\n".encode(), T0))
    assert entry == LogEntry(stream="stderr", data="é\n".encode(), time=log_time(T0), nanos=T0)
    assert parse_line(b'{"log":"x"}\n') is None  # no time
    assert parse_line(b'{"log":"x","stream":"stdo') is None
    assert parse_line(b"[1]\n") is None


def test_reads_rotated_files_oldest_first(tmp_path):
    log = tmp_path / "c-json.log"
    write_entries(tmp_path / "c-json.log.2", [("stdout", b"a\n", T0)])
    write_entries(tmp_path / "c-json.log.1", [("stdout", b"b\n", T0 + 1)])
    write_entries(log, [("stderr", b"c\n", T0 + 2)])
    (tmp_path / "c-json.log.x").write_text("not a log")
    assert log_files(str(log)) == [str(tmp_path / n) for n in
                                   ("c-json.log.2", "c-json.log.1", "c-json.log")]
    got = list(read_log(str(log)))
    assert [(e.stream, e.data) for e in got] == [("stdout", b"a\n"), ("stdout", b"b\n"),
                                                 ("stderr", b"c\n")]
    assert list(read_log(str(tmp_path / "none.log"))) == []


def test_tail_counts_from_the_end_across_files(tmp_path):
    log = tmp_path / "c-json.log"
    write_entries(tmp_path / "c-json.log.1", [("stdout", f"{i}\n".encode(), T0 + i)
                                              for i in range(5)])
    # enough lines in the live file to need several backward blocks
    write_entries(log, [("stdout", f"{i}\n".encode(), T0 + i) for i in range(5, 3005)])
    def tail(n: int) -> list[bytes]:
        return [e.data for e in read_log(str(log), tail=n)]
    assert tail(2) == [b"3003\n", b"3004\n"]
    assert tail(0) == []
    assert tail(3003) == [f"{i}\n".encode() for i in range(2, 3005)]
    assert tail(10_000) == [f"{i}\n".encode() for i in range(3005)]
    assert len(list(read_log(str(log), tail=-1))) == 3005


def test_since_and_until(tmp_path):
    log = tmp_path / "c-json.log"
    write_entries(log, [("stdout", f"{i}\n".encode(), T0 + i * 10**9) for i in range(5)])
    base = T0 // 10**9

    def got(**kw: object) -> list[bytes]:
        return [e.data for e in read_log(str(log), **kw)]  # type: ignore[arg-type]

    assert got(since=base + 3) == [b"3\n", b"4\n"]  # (entry 3 is at base + 3.123456789)
    assert got(since=f"{base + 2}.123456789") == [b"2\n", b"3\n", b"4\n"]  # inclusive
    assert got(since=f"{base + 2}.12345679") == [b"3\n", b"4\n"]
    assert got(until=base + 1.5) == [b"0\n", b"1\n"]
    assert got(since=f"{base + 1}.123456789", until=f"{base + 3}.123456789") == [
        b"1\n", b"2\n", b"3\n"]
    assert [e.data for e in read_log(str(log), tail=2, since=base + 4)] == [b"4\n"]
    with pytest.raises(ValueError):
        got(since="yesterday")


def test_a_torn_last_line_is_not_read(tmp_path):
    log = tmp_path / "c-json.log"
    write_entries(log, [("stdout", b"whole\n", T0)])
    with open(log, "ab") as f:
        f.write(log_line("stdout", b"torn\n", T0)[:20])
    assert [e.data for e in read_log(str(log))] == [b"whole\n"]
    assert [e.data for e in read_log(str(log), tail=5)] == [b"whole\n"]


def test_from_offset_reads_only_what_came_after(tmp_path):
    log = tmp_path / "c-json.log"
    write_entries(log, [("stdout", b"old\n", T0)])
    offset = log_end(str(log))
    write_entries(log, [("stdout", b"new\n", T0 + 1)])
    assert [e.data for e in read_log(str(log), from_offset=offset)] == [b"new\n"]
    assert [e.data for e in read_log(str(log), from_offset=10**9)] == [b"old\n", b"new\n"]
    assert log_end(str(tmp_path / "none")) == 0


def test_follow_reads_appended_lines_across_rotation_until_told(tmp_path):
    log = tmp_path / "c-json.log"
    stop = threading.Event()

    def writer() -> None:
        w = LogWriter(str(log), max_size=300, max_file=2)
        for i in range(30):
            w.feed("stdout", f"line {i:02d}\n".encode())
            if i % 5 == 0:
                w.feed("stderr", b"half ")  # waits for its newline
            time.sleep(0.005)
        w.feed("stderr", b"done\n")
        stop.set()
        w.close()

    write_entries(log, [("stdout", b"before\n", T0)])
    started = time.monotonic()
    reader = read_log(str(log), follow_until=stop.is_set, tail=1)
    got = [next(reader).data]  # the tail is read before anything more is written
    thread = threading.Thread(target=writer)
    thread.start()
    got += [e.data for e in reader]
    thread.join()
    assert time.monotonic() - started < 3  # woken by inotify, not polling slowly
    assert got[0] == b"before\n"
    assert [g for g in got if g.startswith(b"line")] == [f"line {i:02d}\n".encode()
                                                         for i in range(30)]
    assert got[-1] == b"half half half half half half done\n"


def test_follow_waits_for_a_log_that_does_not_exist_yet(tmp_path):
    log = tmp_path / "c-json.log"
    stop = threading.Event()

    def writer() -> None:
        time.sleep(0.05)
        w = LogWriter(str(log))
        w.feed("stdout", b"late\n")
        w.close()
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    got = list(read_log(str(log), follow_until=stop.is_set, from_offset=0, interval=0.05))
    thread.join()
    assert [e.data for e in got] == [b"late\n"]


def test_follow_ends_at_once_when_already_stopped_and_can_be_closed(tmp_path):
    log = tmp_path / "c-json.log"
    write_entries(log, [("stdout", b"a\n", T0), ("stdout", b"b\n", T0 + 1)])
    assert [e.data for e in read_log(str(log), follow_until=lambda: True)] == [b"a\n", b"b\n"]
    reader = read_log(str(log), follow_until=lambda: False)
    assert next(reader).data == b"a\n"
    reader.close()  # a client that went away: the files are closed
    assert not [fd for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}") == str(log)]


def test_the_writer_closing_the_log_makes_the_follower_check_often(tmp_path):
    """The engine learns of the end a few ms after the monitor closed the log: the follower
    must not sleep its whole interval then."""
    log = tmp_path / "c-json.log"
    w = LogWriter(str(log))
    stop = threading.Event()

    def end_of_run() -> None:
        time.sleep(0.05)
        w.feed("stdout", b"last\n")
        w.close()  # the monitor's last act on the log
        time.sleep(0.03)
        stop.set()  # ... and the engine hears of the exit a little later

    thread = threading.Thread(target=end_of_run)
    thread.start()
    started = time.monotonic()
    got = [e.data for e in read_log(str(log), follow_until=stop.is_set, interval=10)]
    thread.join()
    assert got == [b"last\n"]
    assert time.monotonic() - started < 1
