"""skiff's own routes for the capsules of one container: attach and detach, live.

``POST /containers/{id}/capsules`` takes ``{"Capsule": "name:version", "Target": "/path"}``
(Target optional: ``/capsules/<name>/<version>``) and answers 200 with the container's
capsules and whether they were mounted now (``{"Capsules": [...], "Live": true}``; false: the
container is not running, its next start mounts them). ``DELETE
/containers/{id}/capsules/{capsule}`` takes the capsule (by name) and the dependencies that
came only with it: 204. Errors by the one table (404 no such container or capsule, 409 a
version conflict or a capsule another needs, 400 a bad target).
"""

from __future__ import annotations

from aiohttp import web

from skiff.api.server import json_response
from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.api.server import Call


async def attach(call: Call) -> web.Response:
    body = await call.json_body()
    capsule = body.get("Capsule") if isinstance(body, dict) else None
    target = body.get("Target") if isinstance(body, dict) else None
    if not isinstance(capsule, str) or not capsule:
        raise InvalidArgument('give the capsule as {"Capsule": "name:version"}')
    if target is not None and not isinstance(target, str):
        raise InvalidArgument("Target: give a path inside the container")
    containers = call.engine.containers
    return json_response(await call.run(containers.attach_capsule, call.params["name"], capsule,
                                        target or None))


async def detach(call: Call) -> web.Response:
    containers = call.engine.containers
    await call.run(containers.detach_capsule, call.params["name"], call.params["capsule"])
    return web.Response(status=204)


ROUTES = (
    ("POST", "/containers/{name:.*}/capsules", attach),
    ("DELETE", "/containers/{name:.*}/capsules/{capsule}", detach),
)
