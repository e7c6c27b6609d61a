"""System routes: ``/_ping`` (GET and HEAD), ``/version``, ``/info``, ``/auth`` and
``/system/df``, and the prune of what skiff does not keep yet.

``docker system prune`` calls one prune route per kind of object; skiff has no build cache
yet, so ``/build/prune`` truthfully finds nothing to remove, in Docker's shape, until that
slice lands (``/networks/prune`` is `network_routes`').

``/_ping`` is how the docker CLI and docker-py learn the API version to speak: its
``Api-Version`` header is the highest version served, and the client talks down to it.
"""

from __future__ import annotations

from aiohttp import web

from skiff.api.router import API_VERSION, MIN_API_VERSION
from skiff.api.server import json_response
from skiff.engine.filters import Filters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.api.server import Call

PING_HEADERS = {
    "Api-Version": API_VERSION,
    "Builder-Version": "1",
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}


async def ping(call: Call) -> web.Response:
    if call.request.method == "HEAD":
        return web.Response(headers={**PING_HEADERS, "Content-Length": "0",
                                     "Content-Type": "text/plain; charset=utf-8"})
    return web.Response(text="OK", headers=PING_HEADERS)


async def version(call: Call) -> web.Response:
    return json_response(call.engine.system.version(API_VERSION, MIN_API_VERSION))


async def info(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.system.info))


async def disk_usage(call: Call) -> web.Response:
    usage = await call.run(call.engine.images.disk_usage)
    containers = await call.run(call.engine.containers.list, all=True, size=True)
    volumes = await call.run(call.engine.volumes.disk_usage)
    # the build cache is not kept yet: it uses no space
    return json_response({**usage, "Containers": containers, "Volumes": volumes,
                          "BuildCache": []})


async def prune_build_cache(call: Call) -> web.Response:
    Filters.parse(call.query("filters"))  # malformed filters are still a 400
    return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


async def auth(call: Call) -> web.Response:
    body = await call.json_body()
    return json_response(await call.run(call.engine.system.login, body))


ROUTES = (
    ("GET", "/_ping", ping), ("HEAD", "/_ping", ping), ("GET", "/version", version),
    ("GET", "/info", info), ("POST", "/auth", auth), ("GET", "/system/df", disk_usage),
    ("POST", "/build/prune", prune_build_cache),
)
