"""Routes of the container verbs that look at or change a container in place: archive
(``docker cp``: HEAD stats a path, GET sends its tar, PUT unpacks one), export, changes
(``docker diff``), top, stats, pause, unpause, rename, update — and ``POST /commit``.

Codes and bodies as dockerd's: the path stat goes base64 JSON in
``X-Docker-Container-Path-Stat`` (on HEAD and GET alike), a PUT answers 200 with no body,
pause/unpause/rename 204, update 200 ``{"Warnings": […]}``, commit 201 ``{"Id"}``. Stats
stream one JSON document a line, once a second, from a thread of their own (a stream lasts
as long as the client watches, and must not hold a worker of the server's pool); with
``stream=0`` one document, after a second sample so that its CPU % has a base.
"""

from __future__ import annotations

import threading

from aiohttp import web

from skiff import jsonfast
from skiff.api.hijack import OutputPump
from skiff.api.server import json_response
from skiff.api.streams import TarStream, spool_body
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from skiff.api.server import Call
    from skiff.engine.container_archive import ContainerFiles

_log = logger("skiff.api.container_ops")
STAT_HEADER = "X-Docker-Container-Path-Stat"
_GONE = ConnectionError


def _files(call: Call) -> ContainerFiles:
    from skiff.engine.container_archive import ContainerFiles

    return ContainerFiles(call.engine.containers)


# -- archive, export, changes ------------------------------------------------------------
async def archive_head(call: Call) -> web.Response:
    from skiff.engine.container_archive import encode_stat

    doc = await call.run(_files(call).stat, call.params["name"], call.query("path"))
    return web.Response(status=200, headers={STAT_HEADER: encode_stat(doc),
                                             "Content-Type": "application/x-tar"})


async def archive_get(call: Call) -> web.StreamResponse:
    from skiff.engine.container_archive import encode_stat

    files = _files(call)
    name, path = call.params["name"], call.query("path")
    doc = await call.run(files.stat, name, path)  # a missing path: a plain 404 first
    return await TarStream(call, {STAT_HEADER: encode_stat(doc)}).run(files.archive, name,
                                                                       path)


async def archive_put(call: Call) -> web.Response:
    files = _files(call)
    name, path = call.params["name"], call.query("path")
    await call.run(files.stat, name, path)  # 404 before the body is read
    spool = await spool_body(call, call.engine.scratch_dir)
    try:
        await call.run(files.put, name, path, spool,
                       no_overwrite_dir_non_dir=call.flag("noOverwriteDirNonDir"),
                       copy_uid_gid=call.flag("copyUIDGID"))
    finally:
        spool.close()
    return web.Response(status=200)


async def export(call: Call) -> web.StreamResponse:
    files = _files(call)
    name = call.params["name"]
    await call.run(files.rootfs, name)  # no such container: a plain 404
    return await TarStream(call).run(files.export, name)


async def changes(call: Call) -> web.Response:
    return json_response(await call.run(_files(call).changes, call.params["name"]))


# -- top, stats ------------------------------------------------------------------------------
async def top(call: Call) -> web.Response:
    from skiff.engine.container_stats import top as ps

    return json_response(await call.run(ps, call.engine.containers, call.params["name"],
                                        call.query("ps_args")))


async def stats(call: Call) -> web.StreamResponse:
    from skiff.engine.container_stats import stats as sample

    stream = call.flag("stream", True)
    one_shot = call.flag("one-shot")
    stopped = threading.Event()
    # the checks (and the not-running answer) before the head goes out
    docs = await call.run(sample, call.engine.containers, call.params["name"], stream,
                          one_shot, stopped.is_set)

    def lines() -> Iterator[tuple[int, bytes]]:
        for doc in docs:
            yield 1, (jsonfast.dumps(doc) + "\n").encode()

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    pump = OutputPump(lines, name="skiffd-stats", closing=call.server.closing)
    try:
        await response.prepare(call.request)
        async for _, data in pump:
            await response.write(data)
        await response.write_eof()
    except _GONE:
        _log.debug("stats %s: the client went away", call.params["name"])
    finally:
        stopped.set()
        pump.stop()
    if pump.error is not None:
        _log.debug("stats %s: %s", call.params["name"], pump.error)
    return response


# -- pause, unpause, rename, update ----------------------------------------------------------
async def pause(call: Call) -> web.Response:
    from skiff.engine.container_control import pause as freeze

    await call.run(freeze, call.engine.containers, call.params["name"])
    return web.Response(status=204)


async def unpause(call: Call) -> web.Response:
    from skiff.engine.container_control import unpause as thaw

    await call.run(thaw, call.engine.containers, call.params["name"])
    return web.Response(status=204)


async def rename(call: Call) -> web.Response:
    from skiff.engine.container_control import rename as give_name

    await call.run(give_name, call.engine.containers, call.params["name"], call.query("name"))
    return web.Response(status=204)


async def update(call: Call) -> web.Response:
    from skiff.engine.container_control import update as change

    body = await call.json_body()
    return json_response(await call.run(change, call.engine.containers, call.params["name"],
                                        body))


# -- commit ------------------------------------------------------------------------------------
async def commit(call: Call) -> web.Response:
    from skiff.engine.commit import commit as make_image, config_body

    config = config_body(await call.request.read())
    engine = call.engine
    result = await call.run(
        make_image, engine.containers, engine.images, call.query("container"),
        repo=call.query("repo"), tag=call.query("tag"), comment=call.query("comment"),
        author=call.query("author"), pause=call.flag("pause", True),
        changes=call.queries("changes"), config=config)
    return json_response(result, 201)


ROUTES = (
    ("GET", "/containers/{name:.*}/export", export),
    ("GET", "/containers/{name:.*}/changes", changes),
    ("GET", "/containers/{name:.*}/top", top),
    ("GET", "/containers/{name:.*}/stats", stats),
    ("GET", "/containers/{name:.*}/archive", archive_get),
    ("HEAD", "/containers/{name:.*}/archive", archive_head),
    ("PUT", "/containers/{name:.*}/archive", archive_put),
    ("POST", "/containers/{name:.*}/pause", pause),
    ("POST", "/containers/{name:.*}/unpause", unpause),
    ("POST", "/containers/{name:.*}/rename", rename),
    ("POST", "/containers/{name:.*}/update", update),
    ("POST", "/commit", commit),
)
