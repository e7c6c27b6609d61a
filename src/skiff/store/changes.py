"""``--change`` for ``docker import`` and ``docker commit``: Dockerfile instructions applied to
an image's container config, as moby's `BuildFromConfig` applies them.

The changes are joined into one Dockerfile and parsed (`dockerfile_syntax.parse`); each
instruction must be one a commit may make — CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR — else ``<keyword> is not a valid change
command``; then every instruction is checked as BuildKit's instructions package checks it
(argument counts, flags, HEALTHCHECK's durations), all before any is applied, so a bad
change leaves nothing half done. Applying follows moby's dispatchers: ENV, LABEL, USER,
WORKDIR, VOLUME, STOPSIGNAL and EXPOSE words are expanded against the config's Env as it
is before the instruction (EXPOSE may split a variable into several ports); the shell form
of CMD and ENTRYPOINT runs through the config's Shell (``/bin/sh -c``); an ENTRYPOINT
clears a Cmd that no change set; WORKDIR is relative to the one before; EXPOSE takes
Docker's port specs (``80``, ``53/udp``, ``8000-8010``). The config is Docker's JSON shape
(``Cmd``, ``Env``, ``ExposedPorts``…), given and returned as a plain dict.
"""

from __future__ import annotations

from skiff.errors import InvalidArgument
from skiff.store.dockerfile_syntax import Instruction, expand, expand_words, go_quote, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    Apply = Callable[["_State"], None]

ALLOWED = frozenset({"cmd", "entrypoint", "env", "expose", "healthcheck", "label", "onbuild",
                     "stopsignal", "user", "volume", "workdir"})
DEFAULT_SHELL = ("/bin/sh", "-c")
_HEALTH_FLAGS = ("interval", "timeout", "start-period", "start-interval", "retries")
_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
       "m": 60 * 10**9, "h": 3600 * 10**9}
_MINIMUM_DURATION = 10**6  # container.MinimumDuration, 1ms


class _State:
    def __init__(self, config: dict[str, Any], escape: str) -> None:
        self.config = config
        self.escape = escape
        self.cmd_set = False

    def env(self) -> list[str]:
        return list(self.config.get("Env") or ())

    def expand(self, word: str) -> str:
        return expand(word, self.env(), self.escape)


def apply_changes(config: Mapping[str, Any] | None, changes: Sequence[str],
                  os_name: str = "linux") -> dict[str, Any]:
    """A copy of `config` with `changes` applied; InvalidArgument (Docker's words) for a
    change that is not allowed or not well formed, before any is applied."""
    import copy

    result: dict[str, Any] = copy.deepcopy(dict(config or {}))
    if not changes:
        return result
    parsed = parse("\n".join(changes))
    for ins in parsed.instructions:
        if ins.keyword not in ALLOWED:
            raise InvalidArgument(f"{ins.keyword} is not a valid change command")
    steps = [_COMMANDS[ins.keyword](ins) for ins in parsed.instructions]
    state = _State(result, parsed.escape)
    for step in steps:
        step(state)
    return result


# -- the instructions, checked; each gives what it does -----------------------------------
def _flags(ins: Instruction, known: Sequence[str] = ()) -> dict[str, str]:
    """BuildKit's BFlags.Parse for string flags: ``--name=value`` each, known, once."""
    out: dict[str, str] = {}
    for arg in ins.flags:
        if not arg.startswith("--"):
            raise InvalidArgument(f"arg should start with -- : {arg}")
        if arg == "--":
            break
        name, eq, value = arg[2:].partition("=")
        if name not in known:
            raise InvalidArgument(f"unknown flag: {name}")
        if name in out:
            raise InvalidArgument(f"duplicate flag specified: {name}")
        if not eq:
            raise InvalidArgument(f"missing a value on flag: {name}")
        out[name] = value
    return out


def _count(ins: Instruction, exactly_one: bool = False) -> None:
    name = ins.keyword.upper()
    if exactly_one and len(ins.args) != 1:
        raise InvalidArgument(f"{name} requires exactly one argument")
    if not ins.args:
        raise InvalidArgument(f"{name} requires at least one argument")


def _pairs(ins: Instruction) -> list[tuple[str, str]]:
    _flags(ins)
    _count(ins)
    pairs = list(zip(ins.args[::2], ins.args[1::2]))
    if any(not key for key, _ in pairs):
        raise InvalidArgument(f"{ins.keyword.upper()} names can not be blank")
    return pairs


def _env(ins: Instruction) -> Apply:
    pairs = _pairs(ins)

    def apply(state: _State) -> None:
        expanded = [(state.expand(k), state.expand(v)) for k, v in pairs]
        env = state.env()
        for key, value in expanded:
            entry = f"{key}={value}"
            for i, old in enumerate(env):
                if old.partition("=")[0] == key:
                    env[i] = entry
                    break
            else:
                env.append(entry)
        state.config["Env"] = env
    return apply


def _label(ins: Instruction) -> Apply:
    pairs = _pairs(ins)

    def apply(state: _State) -> None:
        labels = dict(state.config.get("Labels") or {})
        for key, value in pairs:
            labels[state.expand(key)] = state.expand(value)
        state.config["Labels"] = labels
    return apply


def _command_line(ins: Instruction, state: _State) -> list[str]:
    """moby's `resolveCmdLine`: JSON as given, the shell form through the Shell."""
    if not ins.args:
        return []
    if ins.json:
        return list(ins.args)
    shell = state.config.get("Shell") or DEFAULT_SHELL
    return [*shell, " ".join(ins.args)]


def _cmd(ins: Instruction) -> Apply:
    _flags(ins)

    def apply(state: _State) -> None:
        state.config["Cmd"] = _command_line(ins, state)
        state.config.pop("ArgsEscaped", None)  # only Windows images escape their args
        if ins.args:
            state.cmd_set = True
    return apply


def _entrypoint(ins: Instruction) -> Apply:
    _flags(ins)

    def apply(state: _State) -> None:
        state.config["Entrypoint"] = _command_line(ins, state)
        state.config.pop("ArgsEscaped", None)
        if not state.cmd_set:
            state.config["Cmd"] = None  # a new entrypoint does not keep the old arguments
    return apply


def _workdir(ins: Instruction) -> Apply:
    _count(ins, exactly_one=True)
    _flags(ins)

    def apply(state: _State) -> None:
        requested = state.expand(ins.args[0])
        if not requested:
            raise InvalidArgument("cannot normalize nothing")
        current = state.config.get("WorkingDir") or ""
        path = requested if requested.startswith("/") else f"/{current}/{requested}"
        state.config["WorkingDir"] = _clean(path)
    return apply


def _user(ins: Instruction) -> Apply:
    _count(ins, exactly_one=True)
    _flags(ins)

    def apply(state: _State) -> None:
        state.config["User"] = state.expand(ins.args[0])
    return apply


def _expose(ins: Instruction) -> Apply:
    _count(ins)
    _flags(ins)

    def apply(state: _State) -> None:
        ports = dict(state.config.get("ExposedPorts") or {})
        for spec in sorted(ins.args):
            for word in expand_words(spec, state.env(), state.escape):
                for key in _port_keys(word):
                    ports[key] = {}
        state.config["ExposedPorts"] = ports
    return apply


def _volume(ins: Instruction) -> Apply:
    _count(ins)
    _flags(ins)
    if any(not v.strip() for v in ins.args):
        raise InvalidArgument("VOLUME specified can not be an empty string")

    def apply(state: _State) -> None:
        volumes = dict(state.config.get("Volumes") or {})
        for v in ins.args:
            path = state.expand(v.strip())
            if not path:
                raise InvalidArgument("VOLUME specified can not be an empty string")
            volumes[path] = {}
        state.config["Volumes"] = volumes
    return apply


def _stopsignal(ins: Instruction) -> Apply:
    _count(ins, exactly_one=True)

    def apply(state: _State) -> None:
        signal = state.expand(ins.args[0])
        _check_signal(signal)
        state.config["StopSignal"] = signal
    return apply


def _onbuild(ins: Instruction) -> Apply:
    import re

    _count(ins)
    _flags(ins)
    trigger = ins.args[0].strip().upper()
    if trigger == "ONBUILD":
        raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise InvalidArgument(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", ins.original, count=1)

    def apply(state: _State) -> None:
        state.config["OnBuild"] = [*(state.config.get("OnBuild") or ()), expression]
    return apply


def _healthcheck(ins: Instruction) -> Apply:
    _count(ins)
    kind = ins.args[0].upper()
    health: dict[str, Any]
    if kind == "NONE":
        if len(ins.args) > 1:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        health = {"Test": ["NONE"]}
    else:
        flags = _flags(ins, _HEALTH_FLAGS)
        if kind != "CMD":
            raise InvalidArgument(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
        given = ins.args[1:]
        command = list(given) if ins.json or not given else [" ".join(given)]
        if not command:
            raise InvalidArgument("Missing command after HEALTHCHECK CMD")
        health = {"Test": ["CMD" if ins.json else "CMD-SHELL", *command]}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                          ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
            value = _interval(flag, flags.get(flag, ""))
            if value:
                health[key] = value
        retries = flags.get("retries", "")
        if retries:
            if not retries.lstrip("+-").isdigit():
                raise InvalidArgument(f"strconv.ParseInt: parsing {go_quote(retries)}: "
                                      f"invalid syntax")
            if int(retries) < 0:
                raise InvalidArgument(f"--retries cannot be negative ({int(retries)})")
            if int(retries):
                health["Retries"] = int(retries)

    def apply(state: _State) -> None:
        state.config["Healthcheck"] = health
    return apply


_COMMANDS: dict[str, Callable[[Instruction], Apply]] = {
    "cmd": _cmd, "entrypoint": _entrypoint, "env": _env, "expose": _expose,
    "healthcheck": _healthcheck, "label": _label, "onbuild": _onbuild,
    "stopsignal": _stopsignal, "user": _user, "volume": _volume, "workdir": _workdir,
}


# -- values -------------------------------------------------------------------------------
def _clean(path: str) -> str:
    """Go's path.Clean of an absolute path (``//x`` is ``/x`` there)."""
    import posixpath

    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/")


def _port_keys(spec: str) -> list[str]:
    """The ``port/proto`` keys a port spec exposes (go-connections' ParsePortSpecs)."""
    container = spec.split(":")[-1]  # [ip:][hostPort:]containerPort, as Docker splits it
    port, slash, proto = container.partition("/")
    if not container or not port:
        raise InvalidArgument(f"no port specified: {spec}<empty>")
    proto = (proto if slash and proto else "tcp").lower()
    first, dash, last = port.partition("-")
    if not _is_port(first) or (dash and not _is_port(last)):
        raise InvalidArgument(f"invalid containerPort: {port}")
    start, end = int(first), int(last) if dash else int(first)
    if end < start:
        raise InvalidArgument(f"invalid containerPort: {port}")
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def _is_port(text: str) -> bool:
    return text.isdigit() and text.isascii() and int(text) <= 65535


def _check_signal(text: str) -> None:
    """moby's signal.ParseSignal: a number but 0, or a name with or without ``SIG``."""
    from skiff.kernel import signals

    if text.lstrip("+-").isdigit():
        if int(text) != 0:
            return
    else:
        try:
            signals.parse(text)
            return
        except ValueError:
            pass
    raise InvalidArgument(f"Invalid signal: {text}")


def _interval(flag: str, text: str) -> int:
    """A HEALTHCHECK duration flag in nanoseconds (0 when not given); at least 1ms."""
    if not text:
        return 0
    value = go_duration(text)
    if value and value < _MINIMUM_DURATION:
        raise InvalidArgument(f"Interval {go_quote(flag)} cannot be less than 1ms")
    return value


def go_duration(text: str) -> int:
    """Go's time.ParseDuration (``1h30m``, ``1.5s``, ``300ms``), in nanoseconds."""
    rest, sign = text, 1
    if rest[:1] in ("+", "-"):
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise InvalidArgument(f"time: invalid duration {go_quote(text)}")
    total = 0
    while rest:
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        whole, rest = rest[:i], rest[i:]
        fraction = ""
        if rest.startswith("."):
            j = 1
            while j < len(rest) and rest[j].isdigit():
                j += 1
            fraction, rest = rest[1:j], rest[j:]
        if not whole and not fraction:
            raise InvalidArgument(f"time: invalid duration {go_quote(text)}")
        k = 0
        while k < len(rest) and rest[k] != "." and not rest[k].isdigit():
            k += 1
        unit, rest = rest[:k], rest[k:]
        if not unit:
            raise InvalidArgument(f"time: missing unit in duration {go_quote(text)}")
        if unit not in _NS:
            raise InvalidArgument(f"time: unknown unit {go_quote(unit)} in duration "
                                  f"{go_quote(text)}")
        scale = _NS[unit]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
    return sign * total
