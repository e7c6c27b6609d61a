"""The `skiff` command-line grammar: the docker CLI's (cobra and pflag), with its messages.

Flags and arguments mix freely (`skiff images -q busybox -a`), up to a ``--``; long flags
take ``--name value`` or ``--name=value``; short ones combine (``-aq``) and take their value
attached, after ``=`` or as the next word; a bool takes ``=false``. A malformed flag raises
UsageError with cobra's text and usage lines (exit 125), a wrong number of arguments
InvalidArgument with docker's ``'skiff pull' requires 1 argument`` (exit 1), ``-h/--help``
UsageError(help=True) with the help page, laid out as docker lays it out (pflag's flag
columns, wrapped at 80). This is skiff's own small parser: argparse can produce neither
these messages nor Go's flag forms, and its import (with `re` and `gettext`) would cost
more than the rest of `skiff images`.
"""

from __future__ import annotations

import os

from skiff.errors import InvalidArgument, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

NAME_PADDING = 11  # cobra's minimum width of a command's name in a list of commands
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class Flag:
    """One flag. `kind`: ``bool``, ``string``, ``int``, or ``list`` (repeatable; `type_name`
    says how help names its value: ``list``, ``filter``, ``strings``). `check` may raise
    ValueError(reason) for a value it refuses."""

    __slots__ = ("long", "short", "kind", "default", "help", "type_name", "dest", "check",
                 "hidden")

    def __init__(self, long: str, short: str = "", kind: str = "bool", help: str = "",
                 default: Any = None, type_name: str = "", dest: str = "",
                 check: Callable[[str], object] | None = None, hidden: bool = False) -> None:
        self.long, self.short, self.kind, self.help = long, short, kind, help
        if default is None:
            default = {"bool": False, "list": None, "int": 0}.get(kind, "")
        self.default = default
        self.type_name = type_name or ("" if kind == "bool" else kind)
        self.dest = dest or long.replace("-", "_")
        self.check = check
        self.hidden = hidden

    @property
    def label(self) -> str:
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


def flag(long: str, short: str = "", help: str = "", default: bool = False) -> Flag:
    return Flag(long, short, "bool", help, default)


def option(long: str, short: str = "", help: str = "", default: str = "",
           type_name: str = "string") -> Flag:
    return Flag(long, short, "string", help, default, type_name)


def repeated(long: str, short: str = "", help: str = "", type_name: str = "list",
             check: Callable[[str], object] | None = None) -> Flag:
    return Flag(long, short, "list", help, type_name=type_name, check=check)


def check_filter(value: str) -> None:
    if "=" not in value:
        raise ValueError("bad format of filter (expected name=value)")


def filter_flag(short: str = "f", help: str = "Filter output based on conditions provided"
                ) -> Flag:
    return repeated("filter", short, help, "filter", check_filter)


FORMAT_HELP = """Format output using a custom template:
'table':            Print output in table format with column headers (default)
'table TEMPLATE':   Print output in table format using the given Go template
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates"""

INSPECT_FORMAT_HELP = """Format output using a custom template:
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template.
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates"""


class Namespace:
    """Parsed values, one attribute per flag (its `dest`), and `args` (the positionals)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)

    def given(self, dest: str) -> bool:
        return dest in self.__dict__.get("_given", ())


HELP_FLAG = Flag("help", "h", "bool", "Print usage", hidden=True)


class Command:
    """A command: `path` as typed (``skiff image ls``), `use` its synopsis after the name
    (``[OPTIONS] [REPOSITORY[:TAG]]``), `short` its one-line purpose, `nargs` (min, max or
    None), `aliases` the line help shows."""

    def __init__(self, path: str, use: str, short: str, flags: list[Flag] | None = None,
                 nargs: tuple[int, int | None] = (0, 0), aliases: str = "",
                 long: str = "") -> None:
        self.path, self.use, self.short, self.long = path, use, short, long
        self.flags = list(flags or [])
        self.nargs = nargs
        self.aliases = aliases

    @property
    def use_line(self) -> str:
        return f"{self.path} {self.use}".rstrip()

    def usage_error(self, message: str) -> UsageError:
        return UsageError(f"{message}\n\nUsage:  {self.use_line}\n\n"
                          f"Run '{self.path} --help' for more information")

    def help_text(self) -> str:
        out = [f"Usage:  {self.use_line}", "", (self.long or self.short).strip()]
        if self.aliases:
            out += ["", "Aliases:", f"  {self.aliases}"]
        shown = [f for f in self.flags if not f.hidden]
        if shown:
            out += ["", "Options:", flag_usages(shown)]
        return "\n".join(out) + "\n"

    def parse(self, argv: list[str], interspersed: bool = True) -> Namespace:
        """The flags and positionals of `argv`; with `interspersed` False (the root
        command's grammar) the first positional and all after it are left as arguments."""
        values: dict[str, Any] = {}
        for f in self.flags:
            values[f.dest] = list(f.default or []) if f.kind == "list" else f.default
        given: set[str] = set()
        args: list[str] = []
        longs = {f.long: f for f in self.flags}
        shorts = {f.short: f for f in self.flags if f.short}
        longs.setdefault("help", HELP_FLAG)
        shorts.setdefault("h", HELP_FLAG)
        i = 0
        while i < len(argv):
            word = argv[i]
            i += 1
            if word == "--":
                args += argv[i:]
                break
            if word.startswith("--"):
                name, eq, value = word[2:].partition("=")
                found = longs.get(name)
                if found is None:
                    raise self.usage_error(f"unknown flag: --{name}")
                f = found
                if f.kind != "bool" and not eq:
                    if i >= len(argv):
                        raise self.usage_error(f"flag needs an argument: --{name}")
                    value, i = argv[i], i + 1
                self._set(f, value if (eq or f.kind != "bool") else None, values, given)
            elif word.startswith("-") and len(word) > 1:
                rest = word[1:]
                while rest:
                    c, rest = rest[0], rest[1:]
                    short = shorts.get(c)
                    if short is None:
                        raise self.usage_error(f"unknown shorthand flag: '{c}' in -{c}{rest}")
                    f = short
                    if f.kind == "bool":
                        if rest.startswith("="):
                            self._set(f, rest[1:], values, given)
                            rest = ""
                        else:
                            self._set(f, None, values, given)
                        continue
                    if rest:
                        value, rest = rest.removeprefix("="), ""
                    elif i < len(argv):
                        value, i = argv[i], i + 1
                    else:
                        raise self.usage_error(f"flag needs an argument: '{c}' in -{c}{rest}")
                    self._set(f, value, values, given)
            elif interspersed:
                args.append(word)
            else:
                args += argv[i - 1:]
                break
        if "help" in given:
            raise UsageError(self.help_text(), help=True)
        self.check_args(args)
        values["args"] = args
        values["_given"] = given
        return Namespace(**values)

    def _set(self, f: Flag, value: str | None, values: dict[str, Any], given: set[str]) -> None:
        given.add(f.dest)
        if f.kind == "bool":
            if value is None or value in _TRUE:
                values[f.dest] = True
            elif value in _FALSE:
                values[f.dest] = False
            else:
                raise self.usage_error(f'invalid argument "{value}" for "{f.label}" flag: '
                                       f'strconv.ParseBool: parsing "{value}": invalid syntax')
            return
        assert value is not None
        if f.check is not None:
            try:
                f.check(value)
            except ValueError as exc:
                raise self.usage_error(
                    f'invalid argument "{value}" for "{f.label}" flag: {exc}') from None
        if f.kind == "list":
            values[f.dest].append(value)
        elif f.kind == "int":
            try:
                values[f.dest] = int(value, 0)
            except ValueError:
                raise self.usage_error(f'invalid argument "{value}" for "{f.label}" flag: '
                                       f'strconv.ParseInt: parsing "{value}": invalid syntax'
                                       ) from None
        else:
            values[f.dest] = value

    def check_args(self, args: list[str]) -> None:
        low, high = self.nargs
        n = len(args)
        if low <= n and (high is None or n <= high):
            return
        root = self.path.split(" ", 1)[0]
        if high == 0:
            problem, see = "accepts no arguments", "Run"
        elif low == high:
            problem, see = f"requires {low} {_plural(low)}", "Run"
        elif high is None:
            problem, see = f"requires at least {low} {_plural(low)}", "See"
        elif low == 0:
            problem, see = f"requires at most {high} {_plural(high)}", "Run"
        else:
            problem, see = f"requires at least {low} and at most {high} {_plural(high)}", "Run"
        raise InvalidArgument(f"{root}: '{self.path}' {problem}\n\nUsage:  {self.use_line}\n\n"
                              f"{see} '{self.path} --help' for more information")


def _plural(n: int) -> str:
    return "argument" if n == 1 else "arguments"


def help_width() -> int:
    """docker wraps help one column short of the terminal on stdin (else of 80)."""
    try:
        return os.get_terminal_size(0).columns - 1
    except OSError:
        return 79


def flag_usages(flags: list[Flag], width: int | None = None) -> str:
    """pflag's FlagUsagesWrapped: the flag column, then its help wrapped beside it."""
    width = help_width() if width is None else width
    rows = []
    for f in flags:
        line = f"  -{f.short}, --{f.long}" if f.short else f"      --{f.long}"
        if f.type_name:
            line += " " + f.type_name
        help_text = f.help
        if f.kind == "string" and f.default:
            help_text += f' (default "{f.default}")'
        elif f.kind == "bool" and f.default:
            help_text += " (default true)"
        elif f.kind == "int" and f.default:
            help_text += f" (default {f.default})"
        rows.append((line, help_text))
    maxlen = max(len(line) for line, _ in rows) + 1
    out = []
    for line, help_text in rows:
        # fmt.Println(line, spacing, text): a space either side of the padding
        out.append(f"{line} {' ' * (maxlen - len(line))} {_wrap(maxlen + 2, width, help_text)}"
                   .rstrip())
    return "\n".join(out)


def _wrap_n(i: int, slop: int, s: str) -> tuple[str, str]:
    if i + slop > len(s):
        return s, ""
    w = max(s.rfind(" ", 0, i), s.rfind("\t", 0, i), s.rfind("\n", 0, i))
    if w <= 0:
        return s, ""
    nl = s.rfind("\n", 0, i)
    if 0 < nl < w:
        return s[:nl], s[nl + 1:]
    return s[:w], s[w + 1:]


def _wrap(i: int, w: int, s: str) -> str:
    # pflag's wrap(), case for case, so help lines break where docker's break
    r = ""
    room = w - i
    if room < 24:
        i = 16
        room = w - i
        r += "\n" + " " * i
    if room < 24:
        return s.replace("\n", r)
    slop = 5
    room -= slop
    pad = "\n" + " " * i
    line, s = _wrap_n(room, slop, s)
    r += line.replace("\n", pad)
    while s:
        line, s = _wrap_n(room, slop, s)
        r += pad + line.replace("\n", pad)
    return r
