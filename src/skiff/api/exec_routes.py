"""Exec routes, as moby's (api/server/router/container/exec.go): create, start, resize,
inspect — thin calls of `engine.execs`.

``POST /exec/{id}/start`` without ``Detach`` takes the connection over as attach does
(`api.hijack`: ``101 UPGRADED``, then the raw pty stream with a TTY, stdcopy frames
without) and only then starts the process, as dockerd does; a start that fails is told
on the stream, ``<error>\\r\\n`` as stdout, and the exec's exit code (126, 127) is what a
client reads next from ``GET /exec/{id}/json``. Output is read from the exec's pipes (or
pty) by the event loop itself — no thread per exec — and the stream ends once the process
has exited and its output is drained, so the exit code is there for the client's inspect
that follows. A detached start answers 200 at once, its errors as plain HTTP errors.
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from skiff.api.errors import message_of
from skiff.api.hijack import (STDERR, STDOUT, Hijacked, frame, stream_media_type,
                              until_closing)
from skiff.api.server import json_response
from skiff.errors import InvalidArgument, SkiffError
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.api.server import Call
    from skiff.engine.exec import ExecService, ExecStreams

_log = logger("skiff.api.exec")
_HEAD_ALONE = 0.01  # the head goes alone (docker-py reads under http.client's buffer)
_DRAIN = 1.0  # seconds output may still come after the exec's exit (a child holding it)
_READ = 65536


def _execs(call: Call) -> ExecService:
    return call.engine.execs


async def _body(call: Call) -> dict[str, Any]:
    body = await call.json_body()
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: the request body must be an object")
    return body


async def create(call: Call) -> web.Response:
    body = await _body(call)
    return json_response(await call.run(_execs(call).create, call.params["name"], body), 201)


async def inspect(call: Call) -> web.Response:
    return json_response(await call.run(_execs(call).inspect, call.params["id"]))


def _dimension(call: Call, name: str) -> int:
    text = call.query(name)
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f'strconv.Atoi: parsing "{text}": invalid syntax') from None
    if value < 0 or value > 65535:
        raise InvalidArgument(f"{name}: {value} is out of range")
    return value


async def resize(call: Call) -> web.Response:
    height, width = _dimension(call, "h"), _dimension(call, "w")
    await call.run(_execs(call).resize, call.params["id"], height, width)
    return web.Response(status=200)


async def start(call: Call) -> web.StreamResponse:
    body = await _body(call)
    execs = _execs(call)
    exec_id = call.params["id"]
    size = body.get("ConsoleSize")
    console_size = (size[0], size[1]) if isinstance(size, list) and len(size) == 2 and \
        all(isinstance(v, int) and v > 0 for v in size) else None
    if body.get("Detach"):
        await call.run(execs.start, exec_id, detach=True, console_size=console_size)
        return web.Response(status=200)
    await call.run(execs.get, exec_id)  # 404 before the connection is taken
    tty = bool(body.get("Tty"))
    hijacked = Hijacked.open(call, stream_media_type(call.version, not tty))
    started = asyncio.ensure_future(call.run(execs.start, exec_id,
                                             console_size=console_size))
    await asyncio.wait({started, asyncio.ensure_future(asyncio.sleep(_HEAD_ALONE))})
    try:
        streams = started.result()
    except SkiffError as e:
        text = (message_of(e) + "\r\n").encode()
        try:
            await hijacked.write(text if tty else frame(STDOUT, text))
        except ConnectionError:
            pass
        hijacked.close()
        return hijacked.response
    try:
        await _relay(call, execs, exec_id, streams, hijacked, tty)
    finally:
        streams.close()
        hijacked.close()
    return hijacked.response


async def _relay(call: Call, execs: ExecService, exec_id: str, streams: ExecStreams,
                 hijacked: Hijacked, tty: bool) -> None:
    """The exec's output to the client until the exec has exited and its output is
    drained (or the daemon stops)."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()

    def settle(code: int) -> None:
        if not exited.done():
            exited.set_result(code)

    def on_exit(code: int) -> None:
        try:
            loop.call_soon_threadsafe(settle, code)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    if streams.stdin >= 0:  # no input side yet: the process reads its stdin's end
        os.close(streams.stdin)
        streams.stdin = -1
    sources = [(streams.terminal, STDOUT)] if streams.terminal >= 0 else \
        [(fd, kind) for fd, kind in ((streams.stdout, STDOUT), (streams.stderr, STDERR))
         if fd >= 0]
    pumps = [asyncio.ensure_future(_pump(fd, kind, hijacked, tty)) for fd, kind in sources]
    execs.when_exited(exec_id, on_exit)
    try:
        if await until_closing(asyncio.shield(exited), call.server.closing, None) is None:
            return  # the daemon stops: the exec goes on, its stream ends
        if pumps:
            await asyncio.wait(pumps, timeout=_DRAIN)
    finally:
        for pump in pumps:
            pump.cancel()
        if pumps:
            await asyncio.gather(*pumps, return_exceptions=True)


async def _pump(fd: int, kind: int, hijacked: Hijacked, tty: bool) -> None:
    """Copy `fd` to the client until its EOF; once the client has gone, keep reading (into
    nothing), so the process is not held up by a full pipe."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, _READ)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _settle, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            continue
        except OSError:  # EIO: a pty whose last slave fd closed
            data = b""
        if not data:
            return
        if hijacked.gone:
            continue
        try:
            await hijacked.write(data if tty else frame(kind, data))
        except ConnectionError:
            _log.debug("exec output: the client went away")


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


ROUTES = (
    ("POST", "/containers/{name:.*}/exec", create),
    ("POST", "/exec/{id}/start", start),
    ("POST", "/exec/{id}/resize", resize),
    ("GET", "/exec/{id}/json", inspect),
)
