"""skiff.record: fields in order with defaults and factories, value equality and hashing,
immutability (and `mutable=True`), `replace`, and the field metadata the codec reads."""

from __future__ import annotations

import pytest

from skiff.record import Record, field, fields, is_record, replace


class Point(Record):
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    extra: dict[str, str] = field(factory=dict)
    name: str | None = field(None, json="displayName", choices=("a", "b"))


class Pair(Record):
    a: int
    b: str


class Box(Record, mutable=True):
    items: list[int] = field(factory=list)


def test_positional_keyword_and_defaults():
    p = Point(1, tags=("t",))
    assert (p.x, p.y, p.tags, p.extra, p.name) == (1, 0, ("t",), {}, None)
    assert Point(1).extra is not Point(1).extra  # a fresh dict each time


def test_missing_and_unknown_arguments():
    with pytest.raises(TypeError, match="needs 'x'"):
        Point()
    with pytest.raises(TypeError, match="no field 'z'"):
        Point(1, z=2)
    with pytest.raises(TypeError, match="takes 5 arguments"):
        Point(1, 2, (), {}, None, 6)


def test_value_semantics():
    assert Point(1, 2) == Point(1, 2) and Point(1, 2) != Point(2, 1)
    assert hash(Pair(1, "a")) == hash(Pair(1, "a")) and {Pair(1, "a"), Pair(1, "a")} == {Pair(1, "a")}
    assert Point(1) != Box()
    assert "Point(x=1, y=0" in repr(Point(1))


def test_immutable_unless_declared_mutable():
    p = Point(1)
    with pytest.raises(AttributeError, match="immutable"):
        p.x = 2  # type: ignore[misc]
    b = Box()
    b.items = [1]
    assert b.items == [1]
    with pytest.raises(TypeError):
        hash(b)


def test_replace_and_fields():
    p = replace(Point(1, 2), y=5)
    assert (p.x, p.y) == (1, 5)
    f = {f.name: f for f in fields(Point)}
    assert list(f) == ["x", "y", "tags", "extra", "name"]
    assert f["x"].required and not f["y"].required and not f["extra"].required
    assert f["name"].json == "displayName" and f["name"].choices == ("a", "b")
    assert f["tags"].annotation == "tuple[str, ...]"
    assert is_record(p) and not is_record((1, 2))
