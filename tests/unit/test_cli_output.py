"""docker's units, times, tables and JSON, case for case with go-units, Go's tabwriter and
encoding/json (the expected values are go-units' own tests and docker's printed output)."""

from __future__ import annotations

import time

import pytest

from skiff.cli.output import (TabWriter, ansic, display_width, ellipsis, go_json, go_time_string,
                              indent_json, rfc3339, since, table, truncate_id)
from skiff.units import bytes_size, human_duration, human_size

MINUTE, HOUR, DAY = 60, 3600, 86400
WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY


@pytest.mark.parametrize("size,precision,text", [
    (0, 4, "0B"), (123, 3, "123B"), (1000, 4, "1kB"), (1024, 4, "1.024kB"),
    (4261550, 3, "4.26MB"), (4261550, 4, "4.262MB"), (1234567, 4, "1.235MB"),
    (999999, 3, "1e+03kB"), (55_500_000, 3, "55.5MB"), (32768, 4, "32.77kB"),
    (50_000_000, 4, "50MB"), (10 ** 12, 4, "1TB"), (10 ** 30, 4, "1e+06YB"),
])
def test_human_size(size: int, precision: int, text: str) -> None:
    assert human_size(size, precision) == text


def test_bytes_size() -> None:
    assert bytes_size(8_000_000_000) == "7.451GiB"
    assert bytes_size(1024) == "1KiB"
    assert bytes_size(512) == "512B"


@pytest.mark.parametrize("seconds,text", [
    (0.45, "Less than a second"), (1, "1 second"), (45, "45 seconds"), (59, "59 seconds"),
    (60, "About a minute"), (3 * MINUTE, "3 minutes"), (35 * MINUTE + 40, "35 minutes"),
    (59 * MINUTE, "59 minutes"), (HOUR, "About an hour"), (HOUR + 29 * MINUTE, "About an hour"),
    (HOUR + 31 * MINUTE, "2 hours"), (3 * HOUR + 31 * MINUTE, "4 hours"), (DAY, "24 hours"),
    (DAY + 12 * HOUR, "36 hours"), (2 * DAY, "2 days"), (13 * DAY + 5 * HOUR, "13 days"),
    (2 * WEEK, "2 weeks"), (2 * WEEK + 4 * DAY, "2 weeks"), (MONTH, "4 weeks"),
    (MONTH + 2 * WEEK, "6 weeks"), (2 * MONTH, "2 months"), (3 * MONTH + WEEK, "3 months"),
    (13 * MONTH, "13 months"), (24 * MONTH, "24 months"), (24 * MONTH + 2 * WEEK, "2 years"),
    (3 * YEAR + 2 * MONTH, "3 years"), (-5, "Less than a second"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_since_and_go_times(monkeypatch: pytest.MonkeyPatch) -> None:
    assert since(1000, now=1000 + 2 * HOUR) == "2 hours ago"
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert go_time_string(0) == "1970-01-01 00:00:00 +0000 UTC"
        assert rfc3339(1_700_000_000) == "2023-11-14T22:13:20Z"
        monkeypatch.setenv("TZ", "CET-1")
        time.tzset()
        assert rfc3339(0) == "1970-01-01T01:00:00+01:00"
        assert go_time_string(0) == "1970-01-01 01:00:00 +0100 CET"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert ansic("2024-01-01T00:00:00.000000000+00:00") == "Mon Jan  1 00:00:00 2024"
    assert ansic("2025-05-30T12:07:14Z") == "Fri May 30 12:07:14 2025"
    assert ansic("not a time") == "not a time"



def test_ids_and_ellipsis() -> None:
    assert truncate_id("sha256:" + "ab" * 32) == "abababababab"
    assert truncate_id("<missing>") == "<missing>"
    text = "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / "
    assert ellipsis(text, 45) == "/bin/sh -c #(nop) ADD file:0123456789abcdef0…"
    assert ellipsis("short", 45) == "short"
    assert ellipsis("日本語のテキスト", 7) == "日本語…"
    assert display_width("日本") == 4


def test_tables_are_docker_tables() -> None:
    out = table([["REPOSITORY", "TAG", "IMAGE ID", "SIZE"],
                 ["busybox", "latest", "aaaaaaaaaaaa", "4.26MB"],
                 ["localhost:5000/busybox", "v1", "aaaaaaaaaaaa", "4.26MB"]])
    assert out.splitlines() == [
        "REPOSITORY               TAG       IMAGE ID       SIZE",
        "busybox                  latest    aaaaaaaaaaaa   4.26MB",
        "localhost:5000/busybox   v1        aaaaaaaaaaaa   4.26MB",
    ]


def test_tab_writer_columns_are_elastic() -> None:
    # Go's own example: a column holds only while consecutive lines have that cell
    tw = TabWriter(minwidth=0, padding=1)
    tw.write("aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n")
    assert tw.render().splitlines() == ["aaaa bbb d", "aa   b   dd", "a    ", "aa   cccc eee"]
    broken = TabWriter(minwidth=0, padding=1)
    broken.write("aaaa\tb\nc\nd\te\n")  # a line without a tab ends the column
    assert broken.render().splitlines() == ["aaaa b", "c", "d e"]
    empty = TabWriter()
    empty.write("A\tB\n\t\n")
    assert empty.render() == "A         B\n          \n"


def test_go_json() -> None:
    value = {"b": "<none>&é\u2028", "a": [1, 2.5, None, True, {}], "c": {}}
    assert go_json(value) == '{"b":"\\u003cnone\\u003e\\u0026é\\u2028","a":[1,2.5,null,true,{}],"c":{}}'
    assert go_json({"a": "<x>"}, html=False) == '{"a":"<x>"}'
    assert go_json([{"Id": "x", "T": []}], indent="    ") == (
        '[\n    {\n        "Id": "x",\n        "T": []\n    }\n]')
    assert go_json([]) == "[]"
    assert go_json([1e21, 1e-7, 0.5, 100.0]) == "[1e+21,1e-7,0.5,100]"


def test_indent_json_keeps_what_the_daemon_wrote() -> None:
    raw = '[{"A": "x\\"y, {z}", "B": [], "C": {}, "D": [1, {"e": null}], "F": "\\u00e9<"}]'
    assert indent_json(raw) == (
        '[\n    {\n        "A": "x\\"y, {z}",\n        "B": [],\n        "C": {},\n'
        '        "D": [\n            1,\n            {\n                "e": null\n'
        '            }\n        ],\n        "F": "\\u00e9<"\n    }\n]')
