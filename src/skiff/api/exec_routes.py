"""Exec routes, as moby's (api/server/router/container/exec.go): create, start, resize,
inspect — thin calls of `engine.execs`.

``POST /exec/{id}/start`` without ``Detach`` takes the connection over as attach does
(`api.hijack`: ``101 UPGRADED``, then the raw pty stream with a TTY, stdcopy frames
without) and only then starts the process, as dockerd does; a start that fails is told
on the stream, ``<error>\\r\\n`` as stdout, and the exec's exit code (126, 127) is what a
client reads next from ``GET /exec/{id}/json``. Output is read from the exec's pipes (or
pty) by the event loop itself — no thread per exec — and the stream ends once the process
has exited and its output is drained, so the exit code is there for the client's inspect
that follows. With ``AttachStdin`` the client's input goes to the process: to its stdin
pipe, closed at the input's end, or to its pty, watched for the detach keys (the exec's
DetachKeys, else ctrl-p ctrl-q), which end the stream while the process goes on. A detached
start answers 200 at once, its errors as plain HTTP errors."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from skiff.api.errors import message_of
from skiff.api.hijack import STDERR, STDOUT, Hijacked, frame, stream_media_type
from skiff.api.detach_keys import DEFAULT as DEFAULT_DETACH_KEYS
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
    from skiff.api.detach_keys import to_bytes

    body = await _body(call)
    keys = body.get("DetachKeys") or ""
    try:
        detach_keys = to_bytes(keys) if isinstance(keys, str) and keys else b""
    except ValueError:
        raise SkiffError(f"Invalid escape keys ({keys}) provided") from None  # moby: a 500
    return json_response(await call.run(_execs(call).create, call.params["name"], body,
                                        detach_keys), 201)


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
    instance = await call.run(execs.get, exec_id)  # 404 before the connection is taken
    tty = bool(body.get("Tty"))
    hijacked = Hijacked.open(call, stream_media_type(call.version, not tty),
                             takes_input=instance.stdin)
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
        await _relay(call, execs, exec_id, streams, hijacked, tty,
                     instance.detach_keys or DEFAULT_DETACH_KEYS)
    finally:
        streams.close()
        hijacked.close()
    return hijacked.response


async def _relay(call: Call, execs: ExecService, exec_id: str, streams: ExecStreams,
                 hijacked: Hijacked, tty: bool, detach_keys: bytes) -> None:
    """The exec's output to the client, and the client's input to the exec's stdin, until
    the exec has exited and its output is drained — or the client detached (a TTY's
    detach keys), or the daemon stops: then the stream ends and the exec goes on."""
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

    sources = [(streams.terminal, STDOUT)] if streams.terminal >= 0 else \
        [(fd, kind) for fd, kind in ((streams.stdout, STDOUT), (streams.stderr, STDERR))
         if fd >= 0]
    pumps = [asyncio.ensure_future(_pump(fd, kind, hijacked, tty)) for fd, kind in sources]
    feeder: asyncio.Future[str] | None = None
    target = streams.terminal if tty else streams.stdin
    if hijacked.protocol.takes_input and target >= 0:
        feeder = asyncio.ensure_future(_feed(hijacked, streams, target, tty, detach_keys))
    execs.when_exited(exec_id, on_exit)
    ends: set[asyncio.Future[Any]] = {exited, asyncio.ensure_future(call.server.closing.wait())}
    try:
        while True:
            if feeder is not None:
                ends.add(feeder)
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                break
            if feeder is not None and feeder.done():
                if feeder.result() == "detached":
                    await call.run(execs.detached, exec_id)  # moby's exec_detach event
                    return  # the client detached: the exec goes on, its stream ends
                ends.discard(feeder)
                feeder = None
                continue
            return  # the daemon stops: the exec goes on, its stream ends
        if pumps:
            await asyncio.wait(pumps, timeout=_DRAIN)
    finally:
        for task in (*pumps, *ends):
            task.cancel()
        await asyncio.gather(*pumps, *ends, return_exceptions=True)


async def _feed(hijacked: Hijacked, streams: ExecStreams, fd: int, tty: bool,
                detach_keys: bytes) -> str:
    """The client's input to the exec (its stdin pipe, or the pty), watched for the
    detach keys on a TTY as moby watches them; at the input's end a pipe is closed (the
    process reads EOF), a pty stays (moby's CloseStdin is for streams without a TTY)."""
    from skiff.api.detach_keys import DetachScanner

    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)

    async def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_writer(fd, _settle, ready)
                try:
                    await ready
                finally:
                    loop.remove_writer(fd)

    try:
        how = await hijacked.copy_input(write, DetachScanner(detach_keys) if tty else None)
    except OSError:  # EPIPE: the process closed its stdin, or is gone
        how = "eof"
    if not tty and streams.stdin >= 0:
        os.close(streams.stdin)
        streams.stdin = -1
    return how


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
