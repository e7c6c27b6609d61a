"""Capsule routes, skiff's own beside Docker's: create, list, inspect, remove and prune, each
a thin call of `engine.capsules`.

``POST /capsules/create`` takes the content two ways: a tar archive as the body
(``Content-Type: application/x-tar``, what ``skiff capsule create`` sends, so the files are
read where the client runs) with ``name``, ``version``, ``requires`` (repeated,
``name@range``) and ``labels`` (a JSON object) in the query; or a JSON body naming paths on
the daemon's host (``Name``, ``Version``, ``Paths``, ``FromDir``, ``Requires``, ``Labels``).
It answers 201 with the capsule, or 200 with the one stored when that name:version holds
the same content already. ``POST /capsules/{ref}/push?remote=host/repo:tag`` and ``POST
/capsules/pull?remote=…`` move a capsule to and from a registry (credentials in
``X-Registry-Auth``, as for images). Errors are Docker's ``{"message": …}``: 400 for bad input, 404
for an unknown capsule or version, 409 for a conflict (same name:version with other
content, a capsule in use or needed, a cycle).
"""

from __future__ import annotations

from aiohttp import web

from skiff.api.server import json_response
from skiff.api.streams import spool_body
from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.api.server import Call

TAR_TYPES = ("application/x-tar", "application/tar")


def _labels(text: str) -> Any:
    if not text:
        return None
    from skiff import jsonfast

    try:
        return jsonfast.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"invalid labels: {e}") from e


async def create(call: Call) -> web.Response:
    capsules = call.engine.capsules
    content_type = (call.header("Content-Type") or "").split(";")[0].strip().lower()
    if content_type in TAR_TYPES:
        labels = _labels(call.query("labels"))  # bad input is told before the upload
        body = await spool_body(call, call.engine.scratch_dir)
        try:
            doc, made = await call.run(capsules.create, call.query("name"),
                                       call.query("version"), archive=body,
                                       requires=call.queries("requires"), labels=labels)
        finally:
            body.close()
    else:
        doc, made = await call.run(capsules.create_from_body, await call.json_body())
    return json_response(doc, 201 if made else 200)


async def list_capsules(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.capsules.list,
                                        call.query("filters") or None))


async def inspect(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.capsules.inspect, call.params["ref"]))


async def remove(call: Call) -> web.Response:
    await call.run(call.engine.capsules.remove, call.params["ref"], force=call.flag("force"))
    return web.Response(status=204)


async def prune(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.capsules.prune,
                                        call.query("filters") or None))


async def push(call: Call) -> web.Response:
    return json_response(await call.run(call.engine.capsules.push, call.params["ref"],
                                        call.query("remote"),
                                        auth=call.header("X-Registry-Auth")))


async def pull(call: Call) -> web.Response:
    doc, made = await call.run(call.engine.capsules.pull, call.query("remote"),
                               auth=call.header("X-Registry-Auth"))
    return json_response(doc, 201 if made else 200)


ROUTES = (
    ("POST", "/capsules/create", create), ("GET", "/capsules/json", list_capsules),
    ("POST", "/capsules/prune", prune), ("POST", "/capsules/pull", pull),
    ("GET", "/capsules/{ref}/json", inspect), ("POST", "/capsules/{ref}/push", push),
    ("DELETE", "/capsules/{ref}", remove),
)
