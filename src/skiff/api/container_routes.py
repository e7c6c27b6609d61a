"""Container routes, in moby's order (api/server/router/container): list, inspect, logs,
create, kill, restart, start, stop, wait, attach, prune, remove — each a thin call of
`engine.containers` with Docker's query parameters, status codes and bodies.

Codes as dockerd's: 201 ``{"Id", "Warnings"}`` for create; 204 for start, stop, kill,
restart and remove; 304 for a start of a running container or a stop of a stopped one
(the engine says so by returning False); ``wait`` answers 200 with its head at once — once
the engine holds the waiter, so a client that starts the container next cannot miss the
exit — and the ``{"StatusCode", "Error"}`` body when the condition is met. Logs and attach
stream stdcopy frames (`api.hijack`); attach takes the connection over. Routes of the
container API that skiff does not serve yet answer 501 with what is missing, rather than
moby's 404 for a route it does not know.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from skiff.api.attach_routes import attach, resize
from skiff.api.errors import message_of, status_of
from skiff.api.hijack import OutputPump, in_own_thread, stream_media_type, until_closing
from skiff.api.hijack import frame as stdcopy_frame
from skiff.api.server import error_response, json_response
from skiff.errors import InvalidArgument, SkiffError
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from skiff.api.server import Call
    from skiff.engine.containers import ContainerService

_log = logger("skiff.api.containers")
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
_GONE = ConnectionError


def _containers(call: Call) -> ContainerService:
    return call.engine.containers


def _int_query(call: Call, name: str) -> int | None:
    text = call.query(name)
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f'strconv.Atoi: parsing "{text}": invalid syntax') from None


def _done(result: object, status: int = 204) -> web.Response:
    # the engine answers False for "nothing to do" (start a running container, stop a
    # stopped one): dockerd's 304 Not Modified
    return web.Response(status=304 if result is False else status)


# -- list, inspect, create, prune, remove ------------------------------------------------
async def list_containers(call: Call) -> web.Response:
    if call.query("since") or call.query("before"):
        # API 1.x's own parameters, superseded by the since/before filters docker sends
        raise InvalidArgument("the since and before query parameters are not supported; "
                              'use filters={"since": [...]} or {"before": [...]}')
    limit = _int_query(call, "limit")
    return json_response(await call.run(
        _containers(call).list, all=call.flag("all"),
        limit=-1 if limit is None else limit, filters=call.query("filters") or None,
        size=call.flag("size")))


async def inspect(call: Call) -> web.Response:
    containers = _containers(call)
    if call.flag("size"):
        return json_response(await call.run(containers.inspect, call.params["name"],
                                            size=True))
    return json_response(await call.run(containers.inspect, call.params["name"]))


async def create(call: Call) -> web.Response:
    content_type = call.header("Content-Type") or ""
    if content_type and content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise InvalidArgument(f"unsupported Content-Type header ({content_type}): must be "
                              "'application/json'")
    data = await call.request.read()
    if not data.strip():
        raise InvalidArgument("invalid JSON: got EOF while reading request body")
    body = await call.json_body()  # aiohttp keeps the bytes read above
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: the request body must be a ContainerCreate "
                              "object")
    name = call.query("name") or None
    return json_response(await call.run(_containers(call).create, body, name), 201)


async def prune(call: Call) -> web.Response:
    return json_response(await call.run(_containers(call).prune,
                                        call.query("filters") or None))


async def remove(call: Call) -> web.Response:
    if call.flag("link"):
        raise InvalidArgument("links are not supported by skiffd: there is nothing to remove")
    await call.run(_containers(call).remove, call.params["name"],
                   force=call.flag("force"), volumes=call.flag("v"))
    return web.Response(status=204)


# -- start, stop, kill, restart, wait ------------------------------------------------------
async def start(call: Call) -> web.Response:
    # a non-empty body (a HostConfig) was how API < 1.24 started containers
    length = call.request.content_length
    if (length is not None and length > 7) or \
            (length is None and call.header("Transfer-Encoding")):
        raise InvalidArgument("starting container with non-empty request body was "
                              "deprecated since API v1.22 and removed in v1.24")
    if call.query("checkpoint") or call.query("checkpoint-dir"):
        raise InvalidArgument("checkpoints are not supported by skiffd")
    return _done(await call.run(_containers(call).start, call.params["name"]))


def _stop_args(call: Call) -> dict[str, Any]:
    args: dict[str, Any] = {"timeout": _int_query(call, "t")}
    if call.query("signal"):  # API 1.42's; taken at any version
        args["signal"] = call.query("signal")
    return args


async def stop(call: Call) -> web.Response:
    return _done(await call.run(_containers(call).stop, call.params["name"],
                                **_stop_args(call)))


async def restart(call: Call) -> web.Response:
    await call.run(_containers(call).restart, call.params["name"], **_stop_args(call))
    return web.Response(status=204)


async def kill(call: Call) -> web.Response:
    name = call.params["name"]
    args = {"signal": call.query("signal")} if call.query("signal") else {}
    try:
        await call.run(_containers(call).kill, name, **args)
    except SkiffError as e:
        # moby wraps the backend's error, keeping its kind (and so its status)
        return error_response(status_of(e), f"cannot kill container: {name}: {message_of(e)}")
    return web.Response(status=204)


async def wait(call: Call) -> web.StreamResponse:
    condition = call.query("condition") or "not-running"
    if condition not in WAIT_CONDITIONS:
        raise InvalidArgument(f'invalid condition: "{condition}"')
    containers = _containers(call)
    ready = asyncio.Event()
    loop = asyncio.get_running_loop()

    def registered() -> None:
        loop.call_soon_threadsafe(ready.set)

    def block() -> Any:
        return containers.wait(cid, condition, ready=registered, cancelled=call.over)

    cid = await call.run(containers.resolve, call.params["name"])
    waiting = asyncio.ensure_future(in_own_thread(block))
    # the head goes out once the engine holds the waiter (or the wait is over already)
    ready_task = asyncio.ensure_future(ready.wait())
    await asyncio.wait({waiting, ready_task}, return_when=asyncio.FIRST_COMPLETED)
    ready_task.cancel()
    if waiting.done() and waiting.exception() is not None:
        raise waiting.exception()  # type: ignore[misc] # before the head: a plain error
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    try:
        await response.prepare(call.request)
    except _GONE:
        return response
    try:
        result = await until_closing(waiting, call.server.closing, None)
    except SkiffError as e:
        result = {"StatusCode": -1, "Error": {"Message": message_of(e)}}
    if result is None:
        # the daemon stops: the connection ends without an answer (the client sees EOF,
        # as when dockerd stops); the container goes on
        transport = call.request.transport
        if transport is not None:
            transport.close()
        return response
    from skiff import jsonfast

    try:
        await response.write((jsonfast.dumps(result) + "\n").encode())
        await response.write_eof()
    except _GONE:
        _log.debug("wait %s: the client went away", cid)
    return response


# -- logs and attach -------------------------------------------------------------------------
def _stream_flags(call: Call) -> tuple[bool, bool]:
    return call.flag("stdout"), call.flag("stderr")


async def logs(call: Call) -> web.StreamResponse:
    stdout, stderr = _stream_flags(call)
    if not (stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    if call.flag("details"):
        raise InvalidArgument("--details is not supported by skiffd: its json-file logs "
                              "keep no attributes")
    containers = _containers(call)
    doc = await call.run(containers.inspect, call.params["name"])
    cid, raw = doc["Id"], bool((doc.get("Config") or {}).get("Tty"))
    options: dict[str, Any] = dict(
        stdout=stdout, stderr=stderr, follow=call.flag("follow"), since=call.query("since"),
        until=call.query("until"), timestamps=call.flag("timestamps"),
        tail=call.query("tail") or "all", cancelled=call.over)
    if not options["follow"]:
        # a bounded answer: read it in the pool, so a bad `since` is still a plain 400
        items = await call.run(lambda: list(containers.logs(cid, **options)))
        return await _send_frames(call, items, raw=raw)
    return await _send_frames(call, None, lambda: containers.logs(cid, **options), raw=raw)


async def _send_frames(call: Call, items: Iterable[tuple[int, bytes]] | None,
                       source: Callable[[], Iterable[tuple[int, bytes]]] | None = None,
                       raw: bool = False) -> web.StreamResponse:
    """A 200 of stdcopy frames (chunked), its head flushed at once as dockerd's is; `raw`
    (a container with a TTY, whose output is all stdout): the bytes alone, as dockerd."""
    response = web.StreamResponse(
        headers={"Content-Type": stream_media_type(call.version, not raw)})

    def frame(stream: int, data: bytes) -> bytes:
        return data if raw and stream != 3 else stdcopy_frame(stream, data)

    try:
        await response.prepare(call.request)
        if items is not None:
            for stream, data in items:
                await response.write(frame(stream, data))
        else:
            assert source is not None
            pump = OutputPump(source, name="skiffd-logs", closing=call.server.closing)
            try:
                async for stream, data in pump:
                    await response.write(frame(stream, data))
            finally:
                pump.stop()
            if pump.error is not None:
                _log.debug("%s: logs ended with %s", call.request.path, pump.error)
                await response.write(frame(3, f"Error grabbing logs: {message_of(pump.error)}\n"
                                           .encode()))
        await response.write_eof()
    except _GONE:
        _log.debug("%s: the client went away mid-stream", call.request.path)
    return response


# -- not yet -----------------------------------------------------------------------------------
def _not_yet(what: str) -> Callable[[Call], Any]:
    async def handler(call: Call) -> web.Response:
        return error_response(501, f"{what} is not supported by skiffd yet")
    return handler


ROUTES = (
    ("GET", "/containers/json", list_containers),
    ("GET", "/containers/{name:.*}/json", inspect),
    ("GET", "/containers/{name:.*}/logs", logs),
    ("GET", "/containers/{name:.*}/attach/ws", _not_yet("attach over a websocket")),
    ("POST", "/containers/create", create),
    ("POST", "/containers/prune", prune),
    ("POST", "/containers/{name:.*}/kill", kill),
    ("POST", "/containers/{name:.*}/restart", restart),
    ("POST", "/containers/{name:.*}/start", start),
    ("POST", "/containers/{name:.*}/stop", stop),
    ("POST", "/containers/{name:.*}/wait", wait),
    ("POST", "/containers/{name:.*}/resize", resize),
    ("POST", "/containers/{name:.*}/attach", attach),
    ("DELETE", "/containers/{name:.*}", remove),
)
