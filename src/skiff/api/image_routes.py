"""Image routes, in moby's order (fixed paths before the ``{name:.*}`` patterns that would
also match them): list, search, save, history, inspect, load, create (pull or import), push,
tag, prune, remove. Each is a thin call of `engine.images`; pull, push, load and import
stream Docker's JSON progress, save streams the tar.
"""

from __future__ import annotations

from aiohttp import web

from skiff.api.server import error_response, json_response
from skiff.api.streams import JsonStream, TarStream, spool_body
from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.api.server import Call

SEARCH_UNSUPPORTED = ("search is not supported by skiffd: it keeps no index of a registry's "
                      "images (list a registry's tags with its /v2/<name>/tags/list)")


async def list_images(call: Call) -> web.Response:
    images = call.engine.images
    return json_response(await call.run(images.list, all=call.flag("all"),
                                        filters=call.query("filters") or None,
                                        digests=call.flag("digests")))


async def search(call: Call) -> web.Response:
    return error_response(501, SEARCH_UNSUPPORTED)


async def save(call: Call) -> web.StreamResponse:
    names = [call.params["name"]] if "name" in call.params else call.queries("names")
    return await TarStream(call).run(call.engine.images.save, names)


async def history(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.images.history, call.params["name"]))


async def inspect(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.images.inspect, call.params["name"]))


async def load(call: Call) -> web.StreamResponse:
    body = await spool_body(call, call.engine.scratch_dir)
    try:
        return await JsonStream(call, errors_in_stream=True).run(
            call.engine.images.load, body, quiet=call.flag("quiet", True))
    finally:
        body.close()


async def create(call: Call) -> web.StreamResponse:
    images = call.engine.images
    platform = call.query("platform") or None
    from_image = call.query("fromImage")
    if from_image:
        return await JsonStream(call).run(images.pull, from_image, call.query("tag"),
                                          platform=platform,
                                          auth=call.header("X-Registry-Auth"))
    from_src = call.query("fromSrc")
    if not from_src:
        raise InvalidArgument("either fromImage (pull) or fromSrc (import) is required")
    body = await spool_body(call, call.engine.scratch_dir) if from_src == "-" else None
    try:
        return await JsonStream(call).run(
            images.import_, body, from_src=from_src, repo=call.query("repo"),
            tag=call.query("tag"), changes=call.queries("changes"),
            message=call.query("message"), platform=platform)
    finally:
        if body is not None:
            body.close()


async def push(call: Call) -> web.StreamResponse:
    return await JsonStream(call).run(call.engine.images.push, call.params["name"],
                                      call.query("tag"), auth=call.header("X-Registry-Auth"))


async def tag(call: Call) -> web.Response:
    await call.run(call.engine.images.tag, call.params["name"], call.query("repo"),
                   call.query("tag"))
    return web.Response(status=201)


async def prune(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.images.prune,
                                        call.query("filters") or None))


async def remove(call: Call) -> web.Response:
    name = call.params["name"]
    if not name.strip():
        raise InvalidArgument("image name cannot be blank")
    return json_response(await call.run(call.engine.images.remove, name,
                                        force=call.flag("force"), noprune=call.flag("noprune")))


ROUTES = (
    ("GET", "/images/json", list_images), ("GET", "/images/search", search),
    ("GET", "/images/get", save), ("GET", "/images/{name:.*}/get", save),
    ("GET", "/images/{name:.*}/history", history), ("GET", "/images/{name:.*}/json", inspect),
    ("POST", "/images/load", load), ("POST", "/images/create", create),
    ("POST", "/images/prune", prune), ("POST", "/images/{name:.*}/push", push),
    ("POST", "/images/{name:.*}/tag", tag), ("DELETE", "/images/{name:.*}", remove),
)
