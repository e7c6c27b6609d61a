"""Volume routes: list, create, inspect, remove and prune, each a thin call of
`engine.volumes` (moby's router/volume, fixed paths before the ``{name}`` pattern).
"""

from __future__ import annotations

from aiohttp import web

from skiff.api.server import json_response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.api.server import Call


async def list_volumes(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.volumes.list,
                                        call.query("filters") or None))


async def create(call: Call) -> web.Response:
    body = await call.json_body()
    return json_response(await call.run(call.engine.volumes.create, body), 201)


async def prune(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.volumes.prune,
                                        call.query("filters") or None))


async def inspect(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.volumes.inspect, call.params["name"]))


async def remove(call: Call) -> web.Response:
    await call.run(call.engine.volumes.remove, call.params["name"], force=call.flag("force"))
    return web.Response(status=204)


ROUTES = (
    ("GET", "/volumes", list_volumes), ("POST", "/volumes/create", create),
    ("POST", "/volumes/prune", prune), ("GET", "/volumes/{name:.*}", inspect),
    ("DELETE", "/volumes/{name:.*}", remove),
)
