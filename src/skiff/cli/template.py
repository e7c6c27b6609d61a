"""Go templates, the subset `--format` uses: what ``docker images --format`` and
``docker inspect -f`` accept, with docker's messages when a template is wrong.

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trimming and ``{{/* */}}``
comments; fields (``.ID``, ``.Config.Env``, ``$.X``), ``.``, variables (``$v := …``,
``$v = …``), string/number/bool/nil literals, parenthesised pipelines, ``|`` pipes;
``if``/``else if``/``else``, ``range`` (lists, maps in key order, ``$i, $v :=``, ``else``,
``break``/``continue``), ``with``; Go's functions ``and or not len index slice eq ne lt le gt
ge print printf println`` and docker's ``json split join title lower upper pad truncate``.
Values print as Go's ``%v`` does (``map[a:b]``, ``[x y]``, ``<nil>``). Not supported:
``define``/``template``/``block``, methods with arguments, ``call``, ``html``/``js``/
``urlquery``, and printf verbs beyond ``%s %v %d %q %t %T %x %%`` (with width/flags).
Data is JSON values (dicts, lists…) or `Row` objects whose fields are computed on demand,
as docker's formatter contexts are. A table header is rendered from the same template over a
`Header`, whose fields are the column titles (docker's HeaderFunctions then pass strings
through unchanged).
"""

from __future__ import annotations

from skiff.cli.output import go_float, go_json
from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

_KEYWORDS = frozenset({"if", "else", "end", "range", "with", "break", "continue",
                       "define", "template", "block"})
_MISSING = object()


class TemplateError(InvalidArgument):
    """A template that does not parse or cannot run on the data; the message is docker's
    (``template parsing error: template: :1:2: executing "" at <.Foo>: …``)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"template parsing error: template: :{detail}")


class Row:
    """One formatter context (an image row, a history row): `fields` names its fields in
    order, each computed by the method of that name. `type_name` is the Go type docker's
    error messages name."""

    fields: tuple[str, ...] = ()
    headers: dict[str, str] = {}
    type_name = "*formatter.Context"

    def field(self, name: str) -> Any:
        if name not in self.fields:
            return _MISSING
        return getattr(self, name)()

    def as_json(self) -> str:
        # formatter.MarshalJSON: every field, by name, in a map (so keys sorted, HTML escaped)
        return go_json({name: getattr(self, name)() for name in sorted(self.fields)})


class Header(Row):
    """The header of a table: each field is its column title."""

    type_name = "formatter.SubHeaderContext"

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def field(self, name: str) -> Any:
        return self.headers.get(name, "")

    def as_json(self) -> str:
        return ""


# -- lexing ---------------------------------------------------------------------------------
class Token:
    __slots__ = ("kind", "value", "pos")

    def __init__(self, kind: str, value: Any, pos: int) -> None:
        self.kind, self.value, self.pos = kind, value, pos

    def __repr__(self) -> str:
        return f"{self.kind}:{self.value!r}"


class Source:
    def __init__(self, text: str) -> None:
        self.text = text

    def where(self, pos: int) -> str:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1)
        return f"{line}:{col}"

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1


def _split(src: Source) -> list[tuple[str, Any, int]]:
    """Text pieces and actions (as token lists), with ``{{-`` and ``-}}`` trimming applied."""
    text = src.text
    out: list[tuple[str, Any, int]] = []
    i = 0
    trim_next = False
    while True:
        start = text.find("{{", i)
        piece = text[i:] if start < 0 else text[i:start]
        if trim_next:
            piece = piece.lstrip(" \t\r\n")
        trim_before = start >= 0 and text[start + 2:start + 4] in ("- ", "-\t", "-\n", "-\r")
        if trim_before:
            piece = piece.rstrip(" \t\r\n")
        if piece:
            out.append(("text", piece, i))
        if start < 0:
            return out
        j = start + 3 if trim_before else start + 2
        k = _skip_space(text, j) if trim_before else j
        if text.startswith("/*", k):
            close = text.find("*/", k + 2)
            if close < 0:
                raise TemplateError(f"{src.line(start)}: unclosed comment")
            end = _skip_space(text, close + 2)
            trim_next = text.startswith("-}}", end)
            if not (trim_next or text.startswith("}}", close + 2)):
                raise TemplateError(f"{src.line(start)}: comment ends before closing delimiter")
            i = end + 3 if trim_next else close + 4
            continue
        tokens, i, trim_next = _lex_action(src, j)
        out.append(("action", tokens, start))


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT = _IDENT_START | frozenset("0123456789")


def _lex_action(src: Source, i: int) -> tuple[list[Token], int, bool]:
    text = src.text
    tokens: list[Token] = []
    while True:
        if i >= len(text):
            raise TemplateError(f"{src.line(i)}: unclosed action")
        c = text[i]
        if c in " \t\r\n":
            j = _skip_space(text, i)
            if text.startswith("-}}", j):
                return tokens, j + 3, True
            i = j
            continue
        if text.startswith("}}", i):
            return tokens, i + 2, False
        if c == '"':
            j, value = _lex_string(src, i)
            tokens.append(Token("string", value, i))
            i = j
        elif c == "`":
            j = text.find("`", i + 1)
            if j < 0:
                raise TemplateError(f"{src.line(i)}: unterminated raw quoted string")
            tokens.append(Token("string", text[i + 1:j], i))
            i = j + 1
        elif c == "." and (i + 1 >= len(text) or text[i + 1] not in _IDENT_START):
            if i + 1 < len(text) and text[i + 1].isdigit():
                j = _number_end(text, i)
                tokens.append(Token("number", _number(text[i:j], src, i), i))
                i = j
            else:
                tokens.append(Token("dot", None, i))
                i += 1
        elif c == "." or c == "$":
            j = _ident_end(text, i + 1)
            name = text[i + 1:j]
            path, j = _chain(text, j)
            if c == ".":
                tokens.append(Token("field", [name] + path, i))
            else:
                tokens.append(Token("variable", ("$" + name, path), i))
            i = j
        elif c.isdigit() or (c in "+-" and i + 1 < len(text) and text[i + 1].isdigit()):
            j = _number_end(text, i)
            tokens.append(Token("number", _number(text[i:j], src, i), i))
            i = j
        elif c in _IDENT_START:
            j = _ident_end(text, i)
            word = text[i:j]
            if text.startswith(".", j) and word not in ("true", "false", "nil"):
                raise TemplateError(f"{src.line(j)}: unexpected <.> in operand")
            kind = "keyword" if word in _KEYWORDS else "ident"
            if word in ("true", "false"):
                tokens.append(Token("bool", word == "true", i))
            elif word == "nil":
                tokens.append(Token("nil", None, i))
            else:
                tokens.append(Token(kind, word, i))
            i = j
        elif text.startswith(":=", i):
            tokens.append(Token("declare", ":=", i))
            i += 2
        elif c in "|(),=":
            tokens.append(Token(c, c, i))
            i += 1
            if c == ")":
                path, j = _chain(text, i)
                if path:
                    tokens.append(Token("chain", path, i))
                    i = j
        else:
            raise TemplateError(f"{src.line(i)}: unexpected {c!r} in command")


def _ident_end(text: str, i: int) -> int:
    while i < len(text) and text[i] in _IDENT:
        i += 1
    return i


def _chain(text: str, j: int) -> tuple[list[str], int]:
    """The ``.A.B`` fields that follow position `j`, and where they end."""
    path = []
    while text.startswith(".", j) and j + 1 < len(text) and text[j + 1] in _IDENT_START:
        k = _ident_end(text, j + 1)
        path.append(text[j + 1:k])
        j = k
    return path, j


def _number_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text) and (text[j].isalnum() or text[j] in "._+-" and text[j - 1] in "eE"
                             or text[j] == "."):
        j += 1
    return j


def _number(word: str, src: Source, pos: int) -> int | float:
    try:
        return int(word, 0)
    except ValueError:
        try:
            return float(word)
        except ValueError:
            raise TemplateError(f"{src.line(pos)}: bad number syntax: {word!r}") from None


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def _lex_string(src: Source, i: int) -> tuple[int, str]:
    text = src.text
    out: list[str] = []
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == '"':
            return j + 1, "".join(out)
        if c == "\n":
            break
        if c == "\\" and j + 1 < len(text):
            e = text[j + 1]
            if e in "xuU":
                size = {"x": 2, "u": 4, "U": 8}[e]
                out.append(chr(int(text[j + 2:j + 2 + size], 16)))
                j += 2 + size
                continue
            out.append(_ESCAPES.get(e, "\\" + e))
            j += 2
            continue
        out.append(c)
        j += 1
    raise TemplateError(f"{src.line(i)}: unterminated quoted string")


# -- parsing --------------------------------------------------------------------------------
class Pipeline:
    __slots__ = ("decl", "assign", "commands", "pos")

    def __init__(self, decl: list[str], assign: bool, commands: list[list[Token | Pipeline]],
                 pos: int) -> None:
        self.decl, self.assign, self.commands, self.pos = decl, assign, commands, pos


class Template:
    """A parsed template; `execute(data)` renders it."""

    def __init__(self, text: str) -> None:
        self.source = Source(text)
        self.items = _split(self.source)
        self.index = 0
        self.nodes = self._parse_list(top=True)[0]

    def _parse_list(self, top: bool = False) -> tuple[list[Any], str]:
        nodes: list[Any] = []
        while self.index < len(self.items):
            kind, value, pos = self.items[self.index]
            self.index += 1
            if kind == "text":
                nodes.append(("text", value))
                continue
            tokens: list[Token] = value
            if not tokens:
                raise TemplateError(f"{self.source.line(pos)}: missing value for command")
            head = tokens[0]
            if head.kind == "keyword":
                word = head.value
                if word in ("end", "else"):
                    if top:
                        raise TemplateError(f"{self.source.line(pos)}: unexpected {{{{{word}}}}}")
                    self.index -= 1
                    return nodes, word
                if word in ("if", "range", "with"):
                    nodes.append(self._parse_control(word, tokens[1:], pos))
                elif word in ("break", "continue"):
                    nodes.append((word,))
                else:
                    raise TemplateError(f"{self.source.line(pos)}: {{{{{word}}}}} is not supported")
                continue
            nodes.append(("action", self._pipeline(tokens, pos), pos))
        if not top:
            raise TemplateError(f"{self.source.line(len(self.source.text))}: unexpected EOF")
        return nodes, ""

    def _parse_control(self, word: str, tokens: list[Token], pos: int) -> tuple[Any, ...]:
        pipe = self._pipeline(tokens, pos)
        body, end = self._parse_list()
        other: list[Any] = []
        _, closing, cpos = self.items[self.index]
        self.index += 1
        if end == "else":
            rest = closing[1:]
            if rest and rest[0].kind == "keyword" and rest[0].value in ("if", "with"):
                # {{else if …}}: an if inside the else, sharing this one's {{end}}
                other = [self._parse_control(rest[0].value, rest[1:], cpos)]
                return (word, pipe, body, other)
            other, end = self._parse_list()
            self.index += 1
        return (word, pipe, body, other)

    def _pipeline(self, tokens: list[Token], pos: int) -> Pipeline:
        decl: list[str] = []
        assign = False
        for n in (1, 2):
            # `$x :=`, `$k, $v :=`, `$x =`
            sep_at = 2 * n - 1
            if len(tokens) > sep_at and tokens[sep_at].kind in ("declare", "=") and all(
                    tokens[2 * k].kind == "variable" for k in range(n)) and (
                    n == 1 or tokens[1].kind == ","):
                decl = [tokens[2 * k].value[0] for k in range(n)]
                assign = tokens[sep_at].kind == "="
                tokens = tokens[sep_at + 1:]
                break
        commands: list[list[Any]] = [[]]
        stack: list[list[list[Any]]] = []
        for tok in tokens:
            if tok.kind == "|":
                if not commands[-1]:
                    raise TemplateError(f"{self.source.line(tok.pos)}: missing command")
                commands.append([])
            elif tok.kind == "(":
                stack.append(commands)
                commands = [[]]
            elif tok.kind == ")":
                if not stack:
                    raise TemplateError(f"{self.source.line(tok.pos)}: unexpected right paren")
                inner = Pipeline([], False, commands, tok.pos)
                commands = stack.pop()
                commands[-1].append(inner)
            elif tok.kind == "chain":
                last = commands[-1][-1] if commands[-1] else None
                commands[-1][-1] = ("chain", last, tok.value, tok.pos)
            elif tok.kind == "keyword":
                raise TemplateError(f"{self.source.line(tok.pos)}: unexpected <{tok.value}> in command")
            else:
                commands[-1].append(tok)
        if stack:
            raise TemplateError(f"{self.source.line(pos)}: unclosed left paren")
        if not commands[-1]:
            raise TemplateError(f"{self.source.line(pos)}: missing value for command")
        for command in commands:
            head = command[0]
            if isinstance(head, Token) and head.kind == "ident" and head.value not in FUNCTIONS:
                raise TemplateError(f'{self.source.line(head.pos)}: function "{head.value}" not defined')
        return Pipeline(decl, assign, commands, pos)

    # -- execution
    def execute(self, data: Any, functions: dict[str, Callable[..., Any]] | None = None) -> str:
        out: list[str] = []
        state = _State(self.source, data, functions or FUNCTIONS)
        try:
            state.walk(self.nodes, data, out)
        except _Break:
            pass
        return "".join(out)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    def __init__(self, source: Source, root: Any, functions: dict[str, Callable[..., Any]]) -> None:
        self.source = source
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.functions = functions

    def fail(self, pos: int, what: str, problem: str) -> TemplateError:
        return TemplateError(f'{self.source.where(pos)}: executing "" at <{what}>: {problem}')

    def walk(self, nodes: list[Any], dot: Any, out: list[str]) -> None:
        for node in nodes:
            kind = node[0]
            if kind == "text":
                out.append(node[1])
            elif kind == "action":
                pipe: Pipeline = node[1]
                value = self.pipeline(pipe, dot)
                if not pipe.decl:
                    out.append(go_print(value))
            elif kind == "if":
                mark = len(self.vars)
                taken = truth(self.pipeline(node[1], dot))
                self.walk(node[2] if taken else node[3], dot, out)
                del self.vars[mark:]
            elif kind == "with":
                mark = len(self.vars)
                value = self.pipeline(node[1], dot)
                if truth(value):
                    self.walk(node[2], value, out)
                else:
                    self.walk(node[3], dot, out)
                del self.vars[mark:]
            elif kind == "range":
                self.range(node, dot, out)
            elif kind == "break":
                raise _Break()
            elif kind == "continue":
                raise _Continue()

    def range(self, node: tuple[Any, ...], dot: Any, out: list[str]) -> None:
        pipe: Pipeline = node[1]
        names = pipe.decl  # range binds its variables to each element, not to the list
        value = self.pipeline(pipe, dot, bind=False)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None:
            items = []
        else:
            raise self.fail(pipe.pos, "range", f"range can't iterate over {go_print(value)}")
        if not items:
            self.walk(node[3], dot, out)
            return
        for key, item in items:
            mark = len(self.vars)
            if len(names) == 1:
                self.vars.append((names[0], item))
            elif len(names) == 2:
                self.vars += [(names[0], key), (names[1], item)]
            try:
                self.walk(node[2], item, out)
            except _Continue:
                pass
            except _Break:
                del self.vars[mark:]
                break
            del self.vars[mark:]

    def pipeline(self, pipe: Pipeline, dot: Any, bind: bool = True) -> Any:
        value: Any = _MISSING
        for command in pipe.commands:
            value = self.command(command, dot, value)
        if pipe.decl and bind:
            if pipe.assign:
                for i in range(len(self.vars) - 1, -1, -1):
                    if self.vars[i][0] == pipe.decl[0]:
                        self.vars[i] = (pipe.decl[0], value)
                        break
                else:
                    raise self.fail(pipe.pos, pipe.decl[0], f"undefined variable: {pipe.decl[0]}")
            else:
                self.vars.append((pipe.decl[-1], value))
        return value

    def command(self, command: list[Any], dot: Any, piped: Any) -> Any:
        head = command[0]
        if isinstance(head, Token) and head.kind == "ident":
            args = [self.operand(a, dot) for a in command[1:]]
            if piped is not _MISSING:
                args.append(piped)
            fn = self.functions[head.value]
            try:
                return fn(*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, IndexError, KeyError) as exc:
                raise self.fail(head.pos, head.value,
                                f"error calling {head.value}: {exc}") from None
        if len(command) > 1 or piped is not _MISSING:
            pos = head.pos if isinstance(head, Token) else 0
            raise self.fail(pos, _describe(head), "can't give argument to non-function "
                            f"{_describe(head)}")
        return self.operand(head, dot)

    def operand(self, node: Any, dot: Any) -> Any:
        if isinstance(node, Pipeline):
            return self.pipeline(node, dot)
        if isinstance(node, tuple):  # ("chain", base, path, pos): (pipeline).Field
            base = self.operand(node[1], dot)
            return self.fields(base, node[2], node[3])
        kind = node.kind
        if kind == "dot":
            return dot
        if kind == "field":
            return self.fields(dot, node.value, node.pos)
        if kind == "variable":
            name, path = node.value
            for var, value in reversed(self.vars):
                if var == name:
                    return self.fields(value, path, node.pos)
            raise TemplateError(f'{self.source.line(node.pos)}: undefined variable "{name}"')
        if kind in ("string", "number", "bool"):
            return node.value
        if kind == "nil":
            return None
        if kind == "ident":
            return self.functions[node.value]()
        raise self.fail(node.pos, str(node.value), "unexpected operand")

    def fields(self, value: Any, path: list[str], pos: int) -> Any:
        walked = ""
        for name in path:
            walked += "." + name
            if isinstance(value, Row):
                got = value.field(name)
                if got is _MISSING:
                    raise self.fail(pos, walked, f"can't evaluate field {name} in type "
                                    f"{value.type_name}")
                value = got
            elif isinstance(value, dict):
                if name not in value:
                    raise self.fail(pos, walked, f'map has no entry for key "{name}"')
                value = value[name]
            elif value is None:
                raise self.fail(pos, walked, f"nil pointer evaluating interface {{}}.{name}")
            else:
                raise self.fail(pos, walked, f"can't evaluate field {name} in type "
                                f"{go_type(value)}")
        return value


def _describe(node: Any) -> str:
    if isinstance(node, Token):
        if node.kind == "field":
            return "." + ".".join(node.value)
        if node.kind == "dot":
            return "."
        return str(node.value)
    return "(pipeline)"


# -- values, as Go prints them ---------------------------------------------------------------
def truth(value: Any) -> bool:
    if isinstance(value, Row):
        return True
    return bool(value) and value is not _MISSING


def go_print(value: Any) -> str:
    """fmt's %v."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value is _MISSING:
        return "<nil>" if value is None else "<no value>"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_print(k)}:{go_print(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_print(v) for v in value) + "]"
    if isinstance(value, Row):
        return "{" + " ".join(go_print(value.field(f)) for f in value.fields) + "}"
    return str(value)


def go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, Row):
        return value.type_name
    return "<nil>" if value is None else type(value).__name__


# -- functions -----------------------------------------------------------------------------------
def _json(value: Any) -> str:
    if isinstance(value, Row):
        return value.as_json()
    if isinstance(value, list) and any(isinstance(v, Row) for v in value):
        return "[" + ",".join(_json(v) for v in value) + "]"  # df -v's {{json .Images}}
    return go_json(_go_order(value), html=False)


def _go_order(value: Any) -> Any:
    """Keys in the order Go would marshal them: a struct's (PascalCase, as the daemon sent
    them) kept, a map's (labels, options: any other key) sorted."""
    if isinstance(value, dict):
        keys = list(value) if all(k[:1].isupper() for k in value) else sorted(value)
        return {k: _go_order(value[k]) for k in keys}
    if isinstance(value, list):
        return [_go_order(v) for v in value]
    return value


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(value):
                raise IndexError(f"index out of range: {key}")
            value = value[key]
        elif value is None:
            raise IndexError("index of untyped nil")
        else:
            raise TypeError(f"can't index item of type {go_type(value)}")
    return value


def _slice(value: Any, *bounds: int) -> Any:
    if len(bounds) > 2:
        raise ValueError("too many slice indexes")
    return value[slice(*bounds)] if bounds else value


def _len(value: Any) -> int:
    if isinstance(value, (str, list, tuple, dict)):
        return len(value)
    raise TypeError(f"len of type {go_type(value)}")


def _and(*args: Any) -> Any:
    for a in args:
        if not truth(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if truth(a):
            return a
    return args[-1]


def _printf(fmt: str, *args: Any) -> str:
    out, i, n = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        j = i + 1
        while j < len(fmt) and fmt[j] in "-+ #0123456789.*":
            j += 1
        if j >= len(fmt):
            out.append("%!(NOVERB)")
            break
        spec, verb = fmt[i + 1:j], fmt[j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if "*" in spec:
            width = args[n] if n < len(args) else 0
            n += 1
            spec = spec.replace("*", str(width))
        if n >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[n]
        n += 1
        if verb in "sv":
            text = go_print(arg)
        elif verb == "q":
            text = go_json(go_print(arg), html=False)
        elif verb == "T":
            text = go_type(arg)
        elif verb == "t":
            text = go_print(arg)
        elif verb in "dx" and isinstance(arg, int):
            text = format(arg, "x" if verb == "x" else "d")
        else:
            text = f"%!{verb}({go_type(arg)}={go_print(arg)})"
        out.append(("%" + spec + "s") % text if spec else text)
    return "".join(out)


def _sprint(*args: Any) -> str:
    # fmt.Sprint: spaces between operands when neither side is a string
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_print(a)
    return out


def _pad(text: str, prefix: int, suffix: int) -> str:
    return f"{' ' * prefix}{text}{' ' * suffix}" if text else text


def _title(text: str) -> str:
    # strings.Title: each word's first letter upper-cased, the rest left alone
    return "".join(c.upper() if i == 0 or not text[i - 1].isalnum() else c
                   for i, c in enumerate(text))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "split": lambda s, sep: s.split(sep) if sep else list(s),
    "join": lambda items, sep: sep.join(go_print(i) for i in items),
    "title": _title,
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "pad": _pad,
    "truncate": lambda s, n: s if len(s) < n else s[:n],
    "and": _and,
    "or": _or,
    "not": lambda v: not truth(v),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "eq": lambda a, *bs: any(a == b for b in bs),
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "print": _sprint,
    "printf": _printf,
    "println": lambda *args: " ".join(go_print(a) for a in args) + "\n",
}

# docker's HeaderFunctions: in a table's header row these pass the column title through
HEADER_FUNCTIONS: dict[str, Callable[..., Any]] = dict(FUNCTIONS)
HEADER_FUNCTIONS.update({
    "json": lambda v: v,
    "split": lambda v, _: v,
    "join": lambda v, _: v,
    "title": lambda v: v,
    "lower": lambda v: v,
    "upper": lambda v: v,
    "truncate": lambda v, _: v,
    "pad": lambda v, *_: v,
})


def parse(text: str) -> Template:
    return Template(text)


def render_rows(source: str, rows: list[Row], headers: dict[str, str]) -> str:
    """A listing as docker's formatter.Context.Write renders it: `source` is ``table …``
    (a header row, then the rows, through the tab writer) or a plain template, one line a
    row; ``\\t`` and ``\\n`` typed on the command line are tabs and newlines."""
    from skiff.cli.output import TabWriter

    is_table = source.startswith("table")
    text = source[len("table"):] if is_table else source
    if source == "json":
        text = "{{json .}}"
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    tmpl = parse(text)
    body = "".join(tmpl.execute(row) + "\n" for row in rows)
    if not is_table:
        return body
    writer = TabWriter()
    writer.write(tmpl.execute(Header(headers), HEADER_FUNCTIONS) + "\n" + body)
    return writer.render()


def json_filters(values: list[str]) -> str | None:
    """`--filter name=value` flags as the API's filters JSON (``{"name": {"value": true}}``,
    names lowercased, keys sorted as Go writes a map), or None when there are none."""
    if not values:
        return None
    filters: dict[str, dict[str, bool]] = {}
    for item in values:
        name, _, value = item.partition("=")
        filters.setdefault(name.strip().lower(), {})[value.strip()] = True
    return go_json({k: dict(sorted(v.items())) for k, v in sorted(filters.items())})
