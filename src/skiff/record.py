"""Records: skiff's typed value objects, cheap to define and cheap to import.

A record is a class with annotated fields, built with keywords or in order, compared by
value, printed with its fields and immutable unless declared ``mutable=True``; `replace`
makes a changed copy. That is what frozen dataclasses give, without their price: importing
`dataclasses` pulls in `inspect`, and generating each class's methods with `exec` costs a
few hundred microseconds a class — together a third of `skiff-runtime run`. A field can say
its JSON key and its allowed values (``field(json="containerID")``, ``field(choices=...)``)
for `oci.codec`. Like errors.py, this module imports nothing and any layer may use it.
"""

from __future__ import annotations

MISSING: object = object()


class _FieldSpec:
    __slots__ = ("default", "factory", "json", "choices")

    def __init__(self, default: object, factory: object, json: str | None,
                 choices: tuple[object, ...] | None) -> None:
        self.default, self.factory, self.json, self.choices = default, factory, json, choices


def field(default: object = MISSING, *, factory: object = None, json: str | None = None,
          choices: tuple[object, ...] | None = None) -> Any:
    """A field's default (or `factory` for a fresh one each time), JSON key and choices."""
    return _FieldSpec(default, factory, json, choices)


class Field:
    """One field of a record class; `annotation` is the annotation's source text."""

    __slots__ = ("name", "annotation", "default", "factory", "json", "choices")

    def __init__(self, name: str, annotation: str, spec: _FieldSpec) -> None:
        self.name = name
        self.annotation = annotation
        self.default = spec.default
        self.factory = spec.factory
        self.json = spec.json
        self.choices = spec.choices

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.factory is None

    def __repr__(self) -> str:
        return f"Field({self.name}: {self.annotation})"


class Record:
    __slots__ = ()
    __fields__: tuple[Field, ...] = ()
    __mutable__: bool = False

    def __init_subclass__(cls, mutable: bool = False, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)  # type: ignore[arg-type]
        fields = {f.name: f for f in cls.__fields__}
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if str(annotation).startswith("ClassVar"):
                continue
            value = cls.__dict__.get(name, MISSING)
            spec = value if isinstance(value, _FieldSpec) else _FieldSpec(value, None, None, None)
            if isinstance(value, _FieldSpec):
                if spec.default is MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, spec.default)
            fields[name] = Field(name, str(annotation), spec)
        cls.__fields__ = tuple(fields.values())
        cls.__mutable__ = mutable
        if mutable:
            cls.__hash__ = None  # type: ignore[assignment]

    def __init__(self, *args: object, **kwargs: object) -> None:
        fields = self.__fields__
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} arguments, got {len(args)}")
        put = object.__setattr__
        for f, value in zip(fields, args):
            put(self, f.name, value)
        for f in fields[len(args):]:
            if f.name in kwargs:
                put(self, f.name, kwargs.pop(f.name))
            elif f.factory is not None:
                put(self, f.name, f.factory())  # type: ignore[operator]
            elif f.default is not MISSING:
                put(self, f.name, f.default)
            else:
                raise TypeError(f"{type(self).__name__}() needs {f.name!r}")
        if kwargs:
            raise TypeError(f"{type(self).__name__}() has no field {next(iter(kwargs))!r}")

    def __setattr__(self, name: str, value: object) -> None:
        if not self.__mutable__:
            raise AttributeError(f"{type(self).__name__} is immutable: use record.replace()")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__}: cannot delete {name!r}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, f.name) for f in self.__fields__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__fields__)
        return f"{type(self).__name__}({inner})"


def fields(record: Record | type[Record]) -> tuple[Field, ...]:
    return record.__fields__


def replace(record: "R", **changes: object) -> "R":
    values = {f.name: getattr(record, f.name) for f in record.__fields__}
    values.update(changes)
    return type(record)(**values)


def is_record(value: object) -> bool:
    return isinstance(value, Record)


TYPE_CHECKING = False  # type checkers see True (they go by the name); no typing import at run time
if TYPE_CHECKING:
    from typing import Any, TypeVar
    R = TypeVar("R", bound=Record)
