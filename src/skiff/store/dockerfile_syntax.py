"""Dockerfile syntax as Docker reads it: instruction lines split into their arguments, and
words expanded the way its shell lexer expands them.

`parse` is BuildKit's line parser (``frontend/dockerfile/parser``): parser directives at
the top (``# escape=```), comments, line continuations with the escape character, the
instruction keyword (any case) and its leading ``--flag=value`` words, then the arguments
each keyword takes — a JSON array of strings or else the rest of the line as one string
(the shell form of CMD, ENTRYPOINT, RUN, SHELL), a JSON array or whitespace-separated
words (ADD, COPY, VOLUME), ``key=value`` pairs or the legacy ``key value`` (ENV, LABEL),
the whole rest (USER, WORKDIR, STOPSIGNAL, MAINTAINER), a type and a command
(HEALTHCHECK), or a whole instruction (ONBUILD). Quotes stay in the arguments: they are
the lexer's to remove, when the instruction is carried out, because only then is the
environment known. `expand` and `expand_words` are that lexer (``frontend/dockerfile/
shell``): single quotes literal, double quotes with ``\\"``, ``\\$`` and ``\\\\``,
the escape character elsewhere, ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}``,
``${VAR:?message}`` (and the forms without the colon); an unset variable is empty. Errors
are InvalidArgument with BuildKit's words; a parse error carries the line it is on, for a
builder to prefix ``dockerfile parse error on line N:``.
"""

from __future__ import annotations

from skiff.errors import InvalidArgument
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_ESCAPE = "\\"
_TOKEN_SPACE = "\t\v\f\r "  # BuildKit's reWhitespace, [\t\v\f\r ]+
_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"
_SPECIAL_PARAMS = "@*#?-$!0"


class InstructionError(InvalidArgument):
    """A Dockerfile line is malformed; `line` is where its instruction starts."""

    def __init__(self, message: str, line: int = 0) -> None:
        self.line = line
        super().__init__(message)


class Instruction(Record):
    """One instruction: `keyword` in lower case; `args` as the keyword's line parser gives
    them (ENV and LABEL: key, value, key, value…; HEALTHCHECK: the type, then the
    command; ONBUILD: the trigger's keyword, then its args); `json` when they came from a
    JSON array; `flags` the leading ``--name=value`` words; `original` the line as written
    (continuations joined); `line` its first line, from 1."""

    keyword: str
    args: tuple[str, ...]
    flags: tuple[str, ...] = ()
    json: bool = False
    original: str = ""
    line: int = 0
    trigger: Instruction | None = None  # ONBUILD's instruction


class Parsed(Record):
    instructions: tuple[Instruction, ...]
    escape: str = DEFAULT_ESCAPE


# -- lines --------------------------------------------------------------------------------
class _Directives:
    def __init__(self) -> None:
        self.escape = DEFAULT_ESCAPE
        self.done = False
        self.seen: set[str] = set()

    def check(self, line: str) -> None:
        """BuildKit's `possibleParserDirective`: ``# name=value`` lines before anything
        else; only `escape` (and `syntax`, which changes nothing here) count."""
        if self.done:
            return
        import re

        match = re.match(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$", line)
        key = match.group(1).lower() if match else ""
        if key not in ("escape", "syntax"):
            self.done = True
            return
        if key in self.seen:
            raise InstructionError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        if key == "escape":
            value = match.group(2) if match else ""
            if value not in ("`", "\\"):
                raise InstructionError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value

    def continues(self, line: str) -> tuple[str, bool]:
        """`line` without a trailing escape character (and blanks after it), and whether
        the instruction goes on to the next line."""
        stripped = line.rstrip(" \t")
        if stripped.endswith(self.escape):
            return stripped[:-1], True
        return line, False


def parse(text: str) -> Parsed:
    """The instructions of Dockerfile `text`."""
    directives = _Directives()
    lines = text.split("\n")
    out: list[Instruction] = []
    i = number = 0
    while i < len(lines):
        raw = lines[i].removesuffix("\r")
        if i == 0:
            raw = raw.removeprefix("\ufeff")
        i += 1
        token = raw.lstrip()
        directives.check(token)
        if token.startswith("#"):
            token = ""
        number += 1
        start = number
        line, more = directives.continues(token)
        if not more and not line:
            continue
        while more and i < len(lines):
            raw = lines[i].removesuffix("\r")
            i += 1
            number += 1
            if raw.lstrip().startswith("#") or not raw.strip():
                continue  # comment and empty lines inside a continued instruction
            part, more = directives.continues(raw)
            line += part
        try:
            out.append(_instruction(line, directives, start))
        except InstructionError as e:
            e.line = e.line or start
            raise
    if not out:
        raise InstructionError("file with no instructions", number)
    return Parsed(tuple(out), directives.escape)


def _instruction(line: str, directives: _Directives, number: int) -> Instruction:
    """BuildKit's `newNodeFromLine`: keyword, flags, then the keyword's own parser."""
    text = line.strip()
    end = 0
    while end < len(text) and text[end] not in _TOKEN_SPACE:
        end += 1
    keyword = text[:end].lower()
    rest, flags = _builder_flags(text[end:].lstrip(_TOKEN_SPACE)) if end < len(text) else ("", [])
    rest = rest.strip()
    trigger = None
    json = False
    if keyword in ("cmd", "entrypoint", "run", "shell"):
        args, json = _maybe_json(rest)
    elif keyword in ("add", "copy", "volume"):
        args, json = _maybe_json(rest, split=True)
    elif keyword in ("env", "label"):
        args = _name_values(rest, keyword.upper(), directives.escape)
    elif keyword == "arg":
        args = _words(rest, directives.escape)
    elif keyword in ("expose", "from"):
        args = _split_blanks(rest)
    elif keyword in ("maintainer", "stopsignal", "user", "workdir"):
        args = [rest] if rest else []
    elif keyword == "healthcheck":
        head = rest.split(None, 1)
        args, json = _maybe_json(head[1] if len(head) > 1 else "")
        args = [head[0], *args] if head else []
    elif keyword == "onbuild":
        args = []
        if rest:
            trigger = _instruction(rest, directives, number)
            args = [trigger.keyword, *trigger.args]
    else:
        args = []  # an instruction BuildKit does not know: its arguments are ignored
    return Instruction(keyword, tuple(args), tuple(flags), json, line, number, trigger)


def _builder_flags(line: str) -> tuple[str, list[str]]:
    """BuildKit's `extractBuilderFlags`: the leading ``--name[=value]`` words (a value may
    follow after a blank), and the rest of the line."""
    words: list[str] = []
    word: list[str] = []
    phase, quote, blank_ok = "spaces", "", False
    parsing_arg, need_arg = False, True
    pos = 0
    while pos <= len(line):
        ch = line[pos] if pos < len(line) else ""
        if phase == "spaces":
            if pos == len(line):
                break
            if ch.isspace():
                pos += 1
                continue
            if not parsing_arg and (ch != "-" or pos + 1 == len(line) or line[pos + 1] != "-"):
                return line[pos:], words
            phase = "word"
        if pos == len(line):
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if phase == "word":
            if ch.isspace():
                phase = "spaces"
                text = "".join(word)
                if parsing_arg:
                    words[-1] += "=" + text
                    parsing_arg, need_arg = False, True
                else:
                    if text == "--":
                        return line[pos:], words
                    if blank_ok or text:
                        if need_arg:
                            parsing_arg = True
                        words.append(text)
                word, blank_ok = [], False
                pos += 1
                continue
            if ch == "=" and need_arg:
                need_arg = False
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == len(line):
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
        else:  # in quotes
            if ch == quote:
                phase = "word"
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == len(line):
                    phase = "word"
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
        pos += 1
    return "", words


def _maybe_json(rest: str, split: bool = False) -> tuple[list[str], bool]:
    """A JSON array of strings, or else the rest as one string (or, with `split`, as
    blank-separated words)."""
    if rest.lstrip().startswith("["):
        import json

        try:
            doc = json.loads(rest)
        except ValueError:
            doc = None
        if isinstance(doc, list):
            if not all(isinstance(item, str) for item in doc):
                raise InstructionError(_NOT_STRINGS)
            return doc, True
    if split:
        return _split_blanks(rest), False
    return ([rest] if rest else []), False


def _split_blanks(rest: str) -> list[str]:
    """`rest` (already trimmed) split at runs of BuildKit's blanks."""
    words: list[str] = []
    word: list[str] = []
    for ch in rest:
        if ch not in _TOKEN_SPACE:
            word.append(ch)
        elif word:
            words.append("".join(word))
            word = []
    if word:
        words.append("".join(word))
    return words


def _words(rest: str, escape: str) -> list[str]:
    """BuildKit's `parseWords`: blank-separated words, quotes and escapes kept in them
    (blanks inside quotes or after the escape character do not separate)."""
    words: list[str] = []
    word: list[str] = []
    in_word = in_quote = blank_ok = False
    quote = ""
    i = 0
    while i < len(rest):
        ch = rest[i]
        if not in_word:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if not in_quote and ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            i += 1
            continue
        if in_quote and ch == quote:
            in_quote = False
        elif not in_quote and ch in "'\"":
            quote, blank_ok, in_quote = ch, True, True
        elif ch == escape and not (in_quote and quote == "'"):
            if i + 1 == len(rest):  # an escape at the very end is dropped
                in_quote = False
                i += 1
                continue
            word.append(ch)  # kept, with what it escapes, for the lexer
            i += 1
            ch = rest[i]
        word.append(ch)
        i += 1
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def _name_values(rest: str, keyword: str, escape: str) -> list[str]:
    """BuildKit's `parseNameVal`: ``k=v k2="v 2"`` pairs, or the legacy ``k the value``."""
    words = _words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:  # the legacy form: the key, then all the rest is the value
        key_end = 0
        while key_end < len(rest) and rest[key_end] not in _TOKEN_SPACE:
            key_end += 1
        value = rest[key_end:].lstrip(_TOKEN_SPACE)
        if not value:
            raise InstructionError(f"{keyword} must have two arguments")
        return [rest[:key_end], value]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise InstructionError(f"Syntax error - can't find = in {go_quote(word)}. Must be of "
                                   f"the form: name=value")
        key, _, value = word.partition("=")
        out += [key, value]
    return out


def go_quote(text: str) -> str:
    """Go's %q, closely enough for a message."""
    import json

    return json.dumps(text, ensure_ascii=False)


# -- words --------------------------------------------------------------------------------
def expand(word: str, env: Sequence[str], escape: str = DEFAULT_ESCAPE) -> str:
    """`word` with its quotes removed, escapes applied and variables of `env` (``K=V``
    entries) substituted: one word, blanks kept."""
    return _Lexer(word, env, escape).run()[0]


def expand_words(word: str, env: Sequence[str], escape: str = DEFAULT_ESCAPE) -> list[str]:
    """`word` expanded and split at the blanks that are not quoted or escaped (so
    ``$PORTS`` holding ``"80 443"`` gives two words)."""
    return _Lexer(word, env, escape).run()[1]


class _Words:
    """BuildKit's wordsStruct: the words of a lexed string. Blanks from the string itself
    or a variable's value split words; quoted or escaped ones do not; an empty word is
    never one."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""

    def char(self, ch: str) -> None:
        if not ch.isspace():
            self.word += ch
        elif self.word:
            self.words.append(self.word)
            self.word = ""

    def raw(self, text: str) -> None:
        self.word += text

    def string(self, text: str, raw: bool) -> None:
        if raw:
            self.raw(text)
        else:
            for ch in text:
                self.char(ch)

    def result(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
        return self.words


class _Lexer:
    def __init__(self, word: str, env: Sequence[str], escape: str) -> None:
        self.text = word
        self.pos = 0
        self.env = env
        self.escape = escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def run(self) -> tuple[str, list[str]]:
        try:
            return self.until("")
        except InvalidArgument as e:
            raise InvalidArgument(f"failed to process {go_quote(self.text)}: {e}") from None

    def until(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch in "'\"$":
                part = (self.single_quoted() if ch == "'" else
                        self.double_quoted() if ch == '"' else self.dollar())
                result.append(part)
                words.string(part, raw=ch != "$")
                continue
            ch = self.next()
            if ch == self.escape:
                ch = self.next()
                if not ch:
                    break  # an escape at the very end is dropped
                words.raw(ch)
            else:
                words.char(ch)
            result.append(ch)
        if stop:
            raise InvalidArgument(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quoted(self) -> str:
        end = self.text.find("'", self.pos + 1)  # nothing escapes inside single quotes
        if end < 0:
            raise InvalidArgument("unexpected end of statement while looking for matching "
                                  "single-quote")
        value, self.pos = self.text[self.pos + 1:end], end + 1
        return value

    def double_quoted(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise InvalidArgument("unexpected end of statement while looking for matching "
                                      "double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                following = self.peek()
                if not following:
                    continue  # an escape at the end of the word is dropped
                if following in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.lookup(name)[0] if name else "$"
        self.next()
        if not self.peek():
            raise InvalidArgument("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise InvalidArgument("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            return self.lookup(name)[0]
        colon = ch == ":"
        modifier = self.next() if colon else ch
        if modifier not in ("-", "+", "?"):
            if not modifier:
                raise InvalidArgument("syntax error: missing '}'")
            raise InvalidArgument(f"unsupported modifier ({modifier}) in substitution")
        try:
            word = self.until("}")[0]
        except InvalidArgument:
            if not self.peek():
                raise InvalidArgument("syntax error: missing '}'") from None
            raise
        value, is_set = self.lookup(name)
        present = bool(value) if colon else is_set  # the colon forms treat empty as unset
        if modifier == "+":
            return word if present else ""
        if modifier == "-":
            return value if present else word
        if not present:
            default = "is not allowed to be empty" if is_set else "is not allowed to be unset"
            raise InvalidArgument(f"{name}: {word or default}")
        return value

    def name(self) -> str:
        out: list[str] = []
        while self.peek():
            ch = self.peek()
            if not out and ch.isdigit():
                while self.peek().isdigit():
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalnum() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def lookup(self, name: str) -> tuple[str, bool]:
        for entry in self.env:
            key, eq, value = entry.partition("=")
            if key == name:
                return (value if eq else ""), True
        return "", False
