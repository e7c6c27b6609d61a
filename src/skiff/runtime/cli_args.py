"""Command-line grammar of `skiff-runtime`: runc's, which is Go's flag package's.

Flags come before the positional arguments and take one or two dashes (`-bundle x`,
`--bundle=x`, `-b x`); the first word that is not a flag, or `--`, ends them, so what
follows an exec's container id is the command, untouched. Each verb declares its flags as
`Opt`s and its positionals as names (`id`, `signal?` optional, `command*` the rest). This is
skiff's own small parser rather than argparse, because argparse (with `re` and `gettext`)
costs more start-up than the rest of `skiff-runtime state`, and does not take Go's
single-dash long flags that runc's callers may use.
"""

from __future__ import annotations

from skiff.errors import UsageError

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Any, Callable


class Namespace:
    """The parsed arguments, one attribute each (types.SimpleNamespace, without the import)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # what the verb's grammar declared
        raise AttributeError(name)


class Opt:
    """One flag: its names, where it goes, and how its value is read.

    `kind` is "bool" (no value), "value" (one value, read by `convert`) or "append"
    (repeatable, each value read by `convert`)."""

    __slots__ = ("names", "dest", "kind", "default", "convert", "help", "choices")

    def __init__(self, names: str, help: str = "", kind: str = "value", default: Any = None,
                 convert: Callable[[str], Any] = str, choices: tuple[str, ...] = ()) -> None:
        self.names = tuple(n.lstrip("-") for n in names.split(","))
        self.dest = max(self.names, key=len).replace("-", "_")
        self.kind = kind
        self.default = [] if kind == "append" else (False if kind == "bool" else default)
        self.convert = convert
        self.help = help
        self.choices = choices


def flag(names: str, help: str = "") -> Opt:
    return Opt(names, help, kind="bool")


def usage(prog: str, opts: list[Opt], positionals: tuple[str, ...], about: str = "") -> str:
    words = " ".join(f"[{p[:-1].upper()}]" if p.endswith("?") else
                     f"[{p[:-1].upper()}...]" if p.endswith("*") else p.upper()
                     for p in positionals)
    lines = [f"usage: {prog} [flags] {words}".rstrip()]
    if about:
        lines.append(about)
    for o in opts:
        names = ", ".join(("-" if len(n) == 1 else "--") + n for n in o.names)
        value = "" if o.kind == "bool" else " " + (("|".join(o.choices)) if o.choices else "VALUE")
        lines.append(f"  {names}{value}".ljust(34) + o.help)
    return "\n".join(lines) + "\n"


def parse(prog: str, opts: list[Opt], positionals: tuple[str, ...], argv: list[str],
          about: str = "") -> Namespace:
    """Read `argv` into a namespace with one attribute per flag and positional; raises
    UsageError (the message says what is wrong) or, for -h/--help, UsageError with the
    usage text and `help=True`.

    Flags may also follow the positionals (`delete c1 --force`, as runc's urfave/cli
    allows), except where the last positional takes the rest of the line untouched (exec's
    command, ps's options): there the first word that is not a flag ends them."""
    by_name = {n: o for o in opts for n in o.names}
    ns = Namespace(**{o.dest: ([] if o.kind == "append" else o.default) for o in opts})
    takes_rest = bool(positionals) and positionals[-1].endswith("*")
    words: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            words += argv[i + 1:]
            break
        if not word.startswith("-") or word == "-":
            if takes_rest:
                words += argv[i:]
                break
            words.append(word)
            i += 1
            continue
        i = _flag(prog, opts, positionals, by_name, ns, argv, i, about)
    for p in positionals:
        name = p.rstrip("?*")
        if p.endswith("*"):
            setattr(ns, name, words)
            words = []
        elif words:
            setattr(ns, name, words.pop(0))
        elif p.endswith("?"):
            setattr(ns, name, None)
        else:
            raise UsageError(f"{prog}: missing {name.upper()}\n" + usage(prog, opts, positionals))
    if words:
        raise UsageError(f"{prog}: unexpected argument {words[0]!r}")
    return ns


def _flag(prog: str, opts: list[Opt], positionals: tuple[str, ...], by_name: dict[str, Opt],
          ns: Namespace, argv: list[str], i: int, about: str) -> int:
    """Read the flag at argv[i] (and its value) into `ns`; the index after it."""
    word = argv[i]
    name, eq, value = word.lstrip("-").partition("=")
    if name in ("h", "help"):
        raise UsageError(usage(prog, opts, positionals, about), help=True)
    o = by_name.get(name)
    if o is None:
        raise UsageError(f"{prog}: unknown flag {word!r}")
    if o.kind == "bool":
        setattr(ns, o.dest, value.lower() not in ("false", "0") if eq else True)
        return i + 1
    if not eq:
        if i + 1 >= len(argv):
            raise UsageError(f"{prog}: flag {word} needs a value")
        value = argv[i + 1]
        i += 1
    if o.choices and value not in o.choices:
        raise UsageError(f"{prog}: {word} must be one of {', '.join(o.choices)}, not {value!r}")
    try:
        converted = o.convert(value)
    except ValueError as e:
        raise UsageError(f"{prog}: {word}: {e}") from None
    if o.kind == "append":
        getattr(ns, o.dest).append(converted)
    else:
        setattr(ns, o.dest, converted)
    return i + 1
