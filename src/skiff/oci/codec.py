"""Turn JSON documents into skiff's spec records and back, driven by their annotations.

Every spec type in `oci/` is a `Record` whose attributes are snake_case; their JSON names
are camelCase unless a field says otherwise with ``field(json=...)``. The annotations are
read as text — `str`, `int`, `bool`, `float`, `Any`, `X | None`, `tuple[X, ...]`,
`dict[str, X]` and record class names — and compiled once per class into checking
decoders, so no `typing` machinery is imported at run time. Decoding raises `SpecError`
naming the dotted path of the field (``process.user.uid: expected an integer, got 'x'``).
Unknown JSON keys are ignored, as runc ignores them. Encoding drops None fields, as runc's
output does.
"""

from __future__ import annotations

import sys

from skiff.errors import SpecError
from skiff.record import Field, Record, is_record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar
    T = TypeVar("T", bound=Record)
    Decoder = Callable[[Any, str], Any]

_PRIMITIVES: dict[str, tuple[Any, str]] = {"str": (str, "a string"), "int": (int, "an integer"), "bool": (bool, "a boolean"),
               "float": ((int, float), "a number")}


def json_name(f: Field) -> str:
    if f.json:
        return f.json
    head, *rest = f.name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) < 40 else "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return {"list": "a list", "dict": "an object"}.get(type(value).__name__, type(value).__name__)


def _compile(annotation: str, owner: type) -> Decoder:
    ann = annotation.strip()
    if ann.endswith("| None"):
        inner = _compile(ann[: -len("| None")], owner)
        return lambda v, w: None if v is None else inner(v, w)
    if ann.startswith("tuple[") and ann.endswith(", ...]"):
        item = _compile(ann[len("tuple["): -len(", ...]")], owner)

        def tuple_of(v: Any, w: str) -> tuple[Any, ...]:
            if not isinstance(v, list):
                raise SpecError(w, f"expected a list, got {_describe(v)}")
            return tuple(item(x, f"{w}[{i}]") for i, x in enumerate(v))
        return tuple_of
    if ann.startswith("dict[str, ") and ann.endswith("]"):
        value = _compile(ann[len("dict[str, "): -1], owner)

        def dict_of(v: Any, w: str) -> dict[str, Any]:
            if not isinstance(v, dict):
                raise SpecError(w, f"expected an object, got {_describe(v)}")
            return {str(k): value(x, f"{w}.{k}") for k, x in v.items()}
        return dict_of
    if ann == "Any":
        return lambda v, w: v
    if ann in _PRIMITIVES:
        kind, said = _PRIMITIVES[ann]

        def primitive(v: Any, w: str) -> Any:
            if not isinstance(v, kind) or (isinstance(v, bool) and ann != "bool"):
                raise SpecError(w, f"expected {said}, got {_describe(v)}")
            return float(v) if ann == "float" else v
        return primitive
    cls = getattr(sys.modules[owner.__module__], ann, None)
    if not (isinstance(cls, type) and issubclass(cls, Record)):
        raise TypeError(f"{owner.__name__}: codec cannot decode {annotation!r}")  # a bug in a spec type
    return lambda v, w: decode_object(cls, v, w)


_PLANS: dict[type, tuple[tuple[Field, str, Decoder], ...]] = {}


def _plan(cls: type) -> tuple[tuple[Field, str, Decoder], ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = tuple((f, json_name(f), _compile(f.annotation, cls)) for f in cls.__fields__)  # type: ignore[attr-defined]
        _PLANS[cls] = plan
    return plan


def decode_object(cls: type[T], value: Any, where: str = "") -> T:
    if not isinstance(value, dict):
        raise SpecError(where, f"expected an object, got {_describe(value)}")
    kwargs: dict[str, Any] = {}
    for f, name, decoder in _plan(cls):
        sub = f"{where}.{name}" if where else name
        if name in value:
            item = decoder(value[name], sub)
            if f.choices is not None and item not in f.choices:
                raise SpecError(sub, f"must be one of {', '.join(map(str, f.choices))}, "
                                     f"got {_describe(item)}")
            kwargs[f.name] = item
        elif f.required:
            raise SpecError(sub, "is required")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check(where)
    return obj


def encode(value: Any) -> Any:
    """The JSON form of a spec value: records become objects without their None fields."""
    if is_record(value):
        out: dict[str, Any] = {}
        for f, name, _ in _plan(type(value)):
            v = getattr(value, f.name)
            if v is not None:
                out[name] = encode(v)
        return out
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value
