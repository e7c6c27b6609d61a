"""skiff's events line and templates, and system df's summary and prune's warning, as the
docker CLI writes them (events.go prettyPrintEvent, formatter/disk_usage.go, prune.go)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from skiff.cli.disk import _warning, summary_rows
from skiff.cli.events import EventRow, event_line, rfc3339_nano_fixed
from skiff.cli.template import parse, render_rows

MESSAGE = {"status": "die", "id": "abc", "from": "busybox", "Type": "container",
           "Action": "die", "Actor": {"ID": "abc", "Attributes": {
               "name": "x", "image": "busybox", "exitCode": "3", "a<b": "&"}},
           "scope": "local", "time": 1714564800, "timeNano": 1714564800123456789}


@pytest.fixture
def utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_the_default_line_has_the_fixed_nano_time_and_sorted_attributes(utc: None) -> None:
    assert event_line(MESSAGE) == (
        "2024-05-01T12:00:00.123456789Z container die abc "
        "(a<b=&, exitCode=3, image=busybox, name=x)")
    prune = {"Type": "image", "Action": "prune", "Actor": {"ID": "", "Attributes": {
        "reclaimed": "0"}}, "time": 1714564800}
    assert event_line(prune) == "2024-05-01T12:00:00.000000000Z image prune  (reclaimed=0)"


def test_a_zone_east_of_utc_is_written_as_an_offset() -> None:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    try:
        assert rfc3339_nano_fixed(1714564800_000000007) == "2024-05-01T17:30:00.000000007+05:30"
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_json_is_the_wire_message_and_fields_are_gos() -> None:
    row = EventRow(MESSAGE)
    assert parse("{{json .}}").execute(row) == (
        '{"status":"die","id":"abc","from":"busybox","Type":"container","Action":"die",'
        '"Actor":{"ID":"abc","Attributes":{"a\\u003cb":"\\u0026","exitCode":"3",'
        '"image":"busybox","name":"x"}},"scope":"local","time":1714564800,'
        '"timeNano":1714564800123456789}')
    assert parse("{{.Status}} {{.ID}} {{.Actor.Attributes.name}} {{.TimeNano}}").execute(
        row) == "die abc x 1714564800123456789"
    image = EventRow({"Type": "image", "Action": "prune", "Actor": {"ID": ""}})
    assert parse("{{json .}}").execute(image).startswith('{"Type":"image"')


USAGE = {
    "LayersSize": 10_000_000,
    "Images": [{"Id": "sha256:1", "Size": 6_000_000, "SharedSize": 1_000_000, "Containers": 2},
               {"Id": "sha256:2", "Size": 5_000_000, "SharedSize": 1_000_000, "Containers": 0}],
    "Containers": [{"State": "running", "SizeRw": 300}, {"State": "exited", "SizeRw": 100},
                   {"State": "paused", "SizeRw": 0}],
    "Volumes": [{"Name": "v", "UsageData": {"Size": 50, "RefCount": 0}},
                {"Name": "w", "UsageData": {"Size": -1, "RefCount": 1}}],
    "BuildCache": [],
}


def test_the_df_summary_counts_as_dockers_formatter() -> None:
    text = render_rows("table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t"
                       "{{.Reclaimable}}", list(summary_rows(USAGE)),
                       {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
                        "Size": "SIZE", "Reclaimable": "RECLAIMABLE"})
    assert text.splitlines() == [
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE",
        "Images          2         1         10MB      5MB (50%)",
        "Containers      3         2         400B      100B (25%)",
        "Local Volumes   2         1         50B       50B (100%)",
        "Build Cache     0         0         0B        0B",
    ]


def test_the_df_summary_json() -> None:
    row = summary_rows({})[0]
    assert parse("{{json .}}").execute(row) == (
        '{"Active":"0","Reclaimable":"0B","Size":"0B","TotalCount":"0","Type":"Images"}')


def test_prunes_warning_names_what_goes_and_the_filters() -> None:
    plain = SimpleNamespace(volumes=False, all=False, filter=[])
    assert _warning(plain) == (
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n  - all dangling images\n"
        "  - all dangling build cache\n")
    every = SimpleNamespace(volumes=True, all=True, filter=["until=24h", "label=a=b", "x=1"])
    assert _warning(every) == (
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all volumes not used by at least one container\n"
        "  - all images without at least one container associated to them\n"
        "  - all build cache\n\n  Items to be pruned will be filtered with:\n"
        "  - label=a=b\n  - until=24h\n")


def test_df_verbose_lists_take_json_whole_or_by_section() -> None:
    from skiff.cli.disk import VerboseUsage

    usage = VerboseUsage({"Volumes": [{"Name": "v1", "Driver": "local",
                                       "UsageData": {"Size": 6, "RefCount": 0}}]}, trunc=False)
    whole = parse("{{json .}}").execute(usage)
    assert whole.startswith('{"Images":[],"Containers":[],"Volumes":[{') and \
        whole.endswith('}],"BuildCache":[]}')
    section = parse("{{json .Volumes}}").execute(usage)
    assert section.startswith('[{"Driver":"local",') and '"Size":"6B"' in section
    assert parse("{{range .Volumes}}{{.Name}} {{.Links}}{{end}}").execute(usage) == "v1 0"
