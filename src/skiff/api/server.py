"""The Docker Engine API server: one aiohttp application in front of one `Engine`.

Every request goes through `ApiServer.dispatch`: the ``/v1.NN`` prefix is split off, the
route found in skiff's own `Router` (aiohttp's would not take Docker's ``{name:.*}`` paths
and version prefix the way moby does), the version checked, and the handler given a `Call`
— the request, its path parameters and API version, and the means to run engine work in
the server's thread pool. Errors become Docker's ``{"message": …}`` with the status from
`api.errors`; unknown routes are 404 ``page not found``. Each response carries dockerd's
``Api-Version``, ``Ostype`` and ``Server`` headers, and each request is logged at debug.
"""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

import skiff
from skiff import jsonfast
from skiff.api.errors import NOT_FOUND_PAGE, message_of, status_of
from skiff.api.router import API_VERSION, Router, check_version, split_version
from skiff.errors import InvalidArgument, SkiffError
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from skiff.engine import Engine

_log = logger("skiff.api")
SERVER_HEADER = f"skiffd/{skiff.__version__} (linux)"
_FALSE = ("", "0", "no", "false", "none")


def json_response(value: Any, status: int = 200) -> web.Response:
    # Go's json.Encoder ends every document with a newline; some clients split on it
    return web.Response(status=status, body=(jsonfast.dumps(value) + "\n").encode(),
                        content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status)


class Call:
    """One request as a handler sees it."""

    __slots__ = ("server", "request", "params", "version")

    def __init__(self, server: ApiServer, request: web.Request, params: dict[str, str],
                 version: str) -> None:
        self.server = server
        self.request = request
        self.params = params
        self.version = version

    @property
    def engine(self) -> Engine:
        return self.server.engine

    def query(self, name: str, default: str = "") -> str:
        return self.request.query.get(name, default)

    def queries(self, name: str) -> list[str]:
        return self.request.query.getall(name, [])

    def flag(self, name: str, default: bool = False) -> bool:
        """Docker's BoolValue(OrDefault): absent is `default`; "", 0, no, false, none are
        false; anything else is true."""
        if name not in self.request.query:
            return default
        return self.request.query[name].strip().lower() not in _FALSE

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def over(self) -> bool:
        """Whether nobody will take this call's answer any more: the client went away or
        the daemon is stopping. Safe to ask from a worker thread (two attribute reads), so
        an engine call blocked for the client (a wait, a followed log) can end early rather
        than hold its thread until the container exits."""
        transport = self.request.transport
        return transport is None or transport.is_closing() or self.server.closing.is_set()

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the server's thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.server.executor,
                                          functools.partial(fn, *args, **kwargs))

    async def json_body(self) -> Any:
        data = await self.request.read()
        if not data.strip():
            return {}
        try:
            return jsonfast.loads(data)
        except ValueError as e:
            # moby answers "invalid JSON: " and its decoder's words
            raise InvalidArgument(f"invalid JSON: {e}") from e


class ApiServer:
    """The API on top of `engine`; `app` is the aiohttp application to serve."""

    def __init__(self, engine: Engine, *, workers: int = 16) -> None:
        from skiff.api import (capsule_routes, container_capsule_routes, container_ops_routes,
                               container_routes, event_routes, exec_routes, image_routes,
                               network_routes, system_routes, volume_routes)

        self.engine = engine
        self.executor = ThreadPoolExecutor(max_workers=workers,
                                           thread_name_prefix="skiffd-engine")
        self.router = Router()
        # the capsule routes before ``DELETE /containers/{name:.*}``, which would take theirs
        for method, pattern, handler in (*system_routes.ROUTES,
                                         *container_capsule_routes.ROUTES,
                                         *container_routes.ROUTES,
                                         *container_ops_routes.ROUTES, *exec_routes.ROUTES,
                                         *image_routes.ROUTES, *volume_routes.ROUTES,
                                         *network_routes.ROUTES,
                                         *event_routes.ROUTES, *capsule_routes.ROUTES):
            self.router.add(method, pattern, handler)
        self.app = web.Application(client_max_size=16 << 20)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self.app.on_response_prepare.append(self._headers)
        self.app.on_cleanup.append(self._shutdown)
        # set when the daemon stops: streams that could last as long as a container (attach,
        # logs -f, wait) end then, rather than holding the stop up
        self.closing = asyncio.Event()
        self.app.on_shutdown.append(self._closing)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        response = await self._answer(request)
        _log.debug("%s %s -> %d (%.1f ms)", request.method, request.path_qs,
                   response.status, (time.monotonic() - started) * 1000)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        version, path = split_version(request.path)
        found = self.router.resolve(request.method, path)
        if found is None:
            return error_response(404, NOT_FOUND_PAGE)
        route, params = found
        try:
            call = Call(self, request, params, check_version(version))
            answer: web.StreamResponse = await route.handler(call)
            return answer
        except SkiffError as e:
            status = status_of(e)
            _log.debug("%s %s: %d %s", request.method, request.path, status, e)
            return error_response(status, message_of(e))
        except web.HTTPException:
            raise
        except ConnectionError as e:
            _log.debug("%s %s: the client went away: %s", request.method, request.path, e)
            return web.Response(status=499)
        except Exception as e:  # noqa: BLE001 - a bug must not take the daemon down
            import traceback

            _log.error("%s %s: %s\n%s", request.method, request.path, e,
                       traceback.format_exc())
            return error_response(500, message_of(e))

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault("Api-Version", API_VERSION)
        response.headers.setdefault("Ostype", "linux")
        response.headers["Server"] = SERVER_HEADER

    async def _closing(self, app: web.Application) -> None:
        self.closing.set()

    async def _shutdown(self, app: web.Application) -> None:
        # running pulls finish in their threads; nothing new starts
        self.executor.shutdown(wait=False, cancel_futures=True)
