"""skiff's log calls, for every layer, without paying for `logging` at start-up.

`logger(name)` gives an object with `debug`, `info`, `warning` and `error` taking
`logging`'s `(msg, *args)`. A command that wants its own log (`skiff-runtime --log F
--log-format json`) calls `configure`; records then go there as text or JSON lines, in the
shape containerd reads from runc. Where nothing was configured and the process already
uses `logging` (a daemon, pytest), records go to `logging.getLogger(name)`, so its handlers
see them. Importing `logging` costs ~5 ms, an eighth of a whole `skiff-runtime run`, which
is why this module exists. Like errors.py, it sits below every layer (it uses only
`skiff.jsonfast`, for JSON lines).
"""

from __future__ import annotations

import sys
import time

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_NAMES = {DEBUG: "debug", INFO: "info", WARNING: "warning", ERROR: "error"}


class _Sink:
    level = WARNING
    stream: object | None = None  # set by configure()
    json = False


def configure(level: int = WARNING, path: str | None = None, json_format: bool = False) -> None:
    old = _Sink.stream
    if old is not None and old is not sys.stderr:
        old.close()  # type: ignore[attr-defined]
    _Sink.level = level
    _Sink.stream = open(path, "a", buffering=1) if path else sys.stderr
    _Sink.json = json_format


def _emit(name: str, level: int, msg: str, args: tuple[object, ...]) -> None:
    stream = _Sink.stream
    if stream is None:
        std = sys.modules.get("logging")
        if std is not None:
            std.getLogger(name).log(level, msg, *args)  # type: ignore[attr-defined]
        elif level >= WARNING:
            sys.stderr.write(f"{_NAMES[level]}: {msg % args if args else msg}\n")
        return
    if level < _Sink.level:
        return
    text = msg % args if args else msg
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _Sink.json:
        from skiff import jsonfast
        line = jsonfast.dumps({"level": _NAMES[level].replace("warning", "warn"), "msg": text,
                           "time": stamp})
    else:
        line = f"{stamp} {_NAMES[level]} {text}"
    stream.write(line + "\n")  # type: ignore[attr-defined]


class Logger:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def debug(self, msg: str, *args: object) -> None:
        _emit(self.name, DEBUG, msg, args)

    def info(self, msg: str, *args: object) -> None:
        _emit(self.name, INFO, msg, args)

    def warning(self, msg: str, *args: object) -> None:
        _emit(self.name, WARNING, msg, args)

    def error(self, msg: str, *args: object) -> None:
        _emit(self.name, ERROR, msg, args)


def logger(name: str) -> Logger:
    return Logger(name)
