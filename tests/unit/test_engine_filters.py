"""Docker's filter sets, Go's path.Match globs for `reference`, the `until` forms, and the
times images carry."""

from __future__ import annotations

import pytest

from skiff.engine.filters import Filters, familiar_match, glob_match, go_duration, until_timestamp
from skiff.engine.times import parse_time, rfc3339_nano, unix_seconds
from skiff.errors import InvalidArgument
from skiff.reference import parse_reference


def test_both_json_forms_parse_to_the_same_set() -> None:
    new = Filters.parse('{"label": {"a=b": true, "c": true}, "dangling": {"true": true}}')
    old = Filters.parse('{"label": ["a=b", "c"], "dangling": ["true"]}')
    assert new.fields == old.fields == {"label": ["a=b", "c"], "dangling": ["true"]}
    assert not Filters.parse(None) and not Filters.parse("")


@pytest.mark.parametrize("text", ["not json", "[1]", '{"label": "x"}', '{"label": [1]}'])
def test_malformed_filters_are_invalid_arguments(text: str) -> None:
    with pytest.raises(InvalidArgument):
        Filters.parse(text)


def test_validate_exact_match_and_kv_lists() -> None:
    f = Filters({"label": ["tier=web", "owner"], "dangling": ["true"]})
    f.validate(["label", "dangling"])
    with pytest.raises(InvalidArgument, match="^invalid filter 'dangling'$"):
        f.validate(["label"])
    assert f.exact_match("dangling", "true") and not f.exact_match("dangling", "false")
    assert f.exact_match("absent", "anything")
    assert f.match_kv_list("label", {"tier": "web", "owner": "me"})
    assert not f.match_kv_list("label", {"tier": "db", "owner": "me"})
    assert not f.match_kv_list("label", {})
    assert f.match_kv_list("other", {})
    assert f.boolean("dangling", False) is True
    assert Filters({"dangling": ["0"]}).boolean("dangling", True) is False
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=yes'"):
        Filters({"dangling": ["yes"]}).boolean("dangling", True)


@pytest.mark.parametrize("pattern,name,matches", [
    ("busybox", "busybox", True),
    ("busy*", "busybox", True),
    ("*", "team/app", False),          # * does not cross /
    ("*/*", "team/app", True),
    ("team/?pp", "team/app", True),
    ("team/?pp", "team/aapp", False),
    ("[a-c]x", "bx", True),
    ("[^a-c]x", "bx", False),
    ("[^a-c]x", "dx", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
])
def test_glob_is_gos_path_match(pattern: str, name: str, matches: bool) -> None:
    assert glob_match(pattern, name) is matches


@pytest.mark.parametrize("pattern", ["[", "a[b", "\\", "[a-", "[-a]", "[]]"])
def test_bad_globs_are_go_syntax_errors(pattern: str) -> None:
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        glob_match(pattern, "x")


def test_familiar_match_tries_name_tag_then_name() -> None:
    ref = parse_reference("docker.io/library/busybox:1.36")
    assert familiar_match("busybox", ref)             # the bare name
    assert familiar_match("busybox:1.*", ref)
    assert not familiar_match("library/busybox", ref)  # Docker matches the familiar form
    assert familiar_match("127.0.0.1:5000/*", parse_reference("127.0.0.1:5000/x:1"))


def test_go_durations_and_until() -> None:
    assert go_duration("1h30m") == 5400
    assert go_duration("1.5s") == 1.5
    assert go_duration("-10m") == -600
    assert go_duration("0") == 0
    assert go_duration("10") is None and go_duration("h") is None
    now = 1_700_000_000.0
    assert until_timestamp("10m", now) == now - 600
    assert until_timestamp("1690000000", now) == 1_690_000_000
    assert until_timestamp("1690000000.5", now) == 1_690_000_000.5
    assert until_timestamp("2024-01-01T00:00:00Z", now) == 1_704_067_200
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        until_timestamp("soon", now)


def test_image_times() -> None:
    assert parse_time("2022-02-04T21:20:12.497794809Z") == pytest.approx(1644009612.497794)
    assert parse_time("2022-02-04T21:20:12+02:00") == 1644002412
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("") is None and parse_time("nonsense") is None
    assert unix_seconds("1970-01-01T00:00:00Z") == 0
    assert unix_seconds(None) == 0
    assert rfc3339_nano(1644009612.5) == "2022-02-04T21:20:12.5Z"
    assert rfc3339_nano(0) == "1970-01-01T00:00:00Z"
