"""Network routes: list, inspect, create, remove, connect, disconnect and prune, each a thin
call of `engine.networks` (moby's router/network, fixed paths before the ``{id}`` pattern).
"""

from __future__ import annotations

from aiohttp import web

from skiff.api.server import json_response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.api.server import Call


async def list_networks(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.networks.list,
                                        call.query("filters") or None))


async def create(call: Call) -> web.Response:
    body = await call.json_body()
    return json_response(await call.run(call.engine.networks.create, body), 201)


async def prune(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.networks.prune,
                                        call.query("filters") or None))


async def inspect(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.networks.inspect, call.params["id"],
                                        call.query("scope")))


async def remove(call: Call) -> web.Response:
    await call.run(call.engine.networks.remove, call.params["id"])
    return web.Response(status=204)


async def connect(call: Call) -> web.Response:
    body = await call.json_body()
    await call.run(call.engine.networks.connect, call.params["id"], body)
    return web.Response(status=200)


async def disconnect(call: Call) -> web.Response:
    body = await call.json_body()
    await call.run(call.engine.networks.disconnect, call.params["id"], body)
    return web.Response(status=200)


ROUTES = (
    ("GET", "/networks", list_networks), ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune), ("POST", "/networks/{id:.*}/connect", connect),
    ("POST", "/networks/{id:.*}/disconnect", disconnect),
    ("GET", "/networks/{id:.*}", inspect), ("DELETE", "/networks/{id:.*}", remove),
)
