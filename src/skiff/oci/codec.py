"""Turn JSON documents into skiff's frozen spec dataclasses and back, driven by type hints.

Every spec type in `oci/` is a frozen dataclass whose attributes are snake_case; their JSON
names are camelCase unless a field says otherwise with ``field(metadata={"json": ...})``.
Decoding checks each value against its annotation and raises `SpecError` naming the dotted
path of the field (``process.user.uid: expected an integer, got "x"``). Unknown JSON keys are
ignored, as runc ignores them. Encoding drops fields that are None so the output matches what
runc writes.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

from skiff.errors import SpecError

T = TypeVar("T")

_JSON_TYPES = {str: "a string", int: "an integer", bool: "a boolean", float: "a number"}


def json_name(f: dataclasses.Field[Any]) -> str:
    explicit = f.metadata.get("json")
    if explicit:
        return explicit
    head, *rest = f.name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field[Any], str, Any], ...]:
    hints = _hints(cls)
    return tuple((f, json_name(f), hints[f.name]) for f in dataclasses.fields(cls))


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) < 40 else "a string"
    if value is None:
        return "null"
    return type(value).__name__ if not isinstance(value, (int, float, bool)) else repr(value)


def decode(tp: Any, value: Any, where: str = "") -> Any:
    """Check `value` (parsed JSON) against type `tp` and build it; `where` names the field."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return decode(args[0], value, where)
        for a in args:
            try:
                return decode(a, value, where)
            except SpecError:
                continue
        raise SpecError(where, f"unexpected value {_describe(value)}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise SpecError(where, f"must be one of {', '.join(map(str, allowed))}, got {_describe(value)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise SpecError(where, f"expected a list, got {_describe(value)}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(decode(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(where, f"expected an object, got {_describe(value)}")
        _, vt = typing.get_args(tp)
        return {str(k): decode(vt, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return decode_object(tp, value, where)
    if tp is Any:
        return value
    if tp in _JSON_TYPES:
        ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise SpecError(where, f"expected {_JSON_TYPES[tp]}, got {_describe(value)}")
        return value
    raise TypeError(f"codec cannot decode {tp!r}")  # a bug in a spec type, not in the input


def decode_object(cls: type[T], value: Any, where: str = "") -> T:
    if not isinstance(value, dict):
        raise SpecError(where, f"expected an object, got {_describe(value)}")
    kwargs: dict[str, Any] = {}
    for f, name, tp in _fields(cls):
        sub = f"{where}.{name}" if where else name
        if name in value:
            kwargs[f.name] = decode(tp, value[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(sub, "is required")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check(where)
    return obj


def encode(value: Any) -> Any:
    """The JSON form of a spec value: dataclasses become objects without their None fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f, name, _ in _fields(type(value)):
            v = getattr(value, f.name)
            if v is None:
                continue
            out[name] = encode(v)
        return out
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value
