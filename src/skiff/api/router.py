"""Routes of the Docker Engine API, matched as moby's gorilla/mux router matches them.

Every route answers with and without a ``/v1.NN`` prefix (`split_version`); a version above
the one served or below the minimum is refused with Docker's own words (`check_version`).
Patterns are Docker's: ``{name}`` is one path segment and ``{name:.*}`` may hold slashes, so
``/images/127.0.0.1:5000/foo/bar:tag/json`` finds the inspect route with the name whole.
Routes are tried in the order they were added — as Docker's are — so fixed paths
(``/images/json``) are added before the patterns that would also match them.
"""

from __future__ import annotations

import re

from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Handler = Callable[..., Any]

API_VERSION = "1.41"      # Docker 20.10's: the one the docker CLI negotiates down to
MIN_API_VERSION = "1.12"  # dockerd's minimum
_VERSION_PREFIX = re.compile(r"/v([0-9.]+)(?=/)")
_PARAM = re.compile(r"\{(\w+)(?::([^}]*))?\}")


def split_version(path: str) -> tuple[str | None, str]:
    """(the ``/vX.Y`` version or None, the path without it)."""
    m = _VERSION_PREFIX.match(path)
    if m is None:
        return None, path
    return m.group(1), path[m.end():]


def version_tuple(version: str) -> tuple[int, ...]:
    """Docker's versions.compare reads each dot-separated part as a number (bad ones as 0)."""
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def check_version(version: str | None) -> str:
    """The API version of a request (the served one when the path names none); Docker's
    error when it is out of range."""
    if version is None:
        return API_VERSION
    if version_tuple(version) < version_tuple(MIN_API_VERSION):
        raise InvalidArgument(f"client version {version} is too old. Minimum supported API "
                              f"version is {MIN_API_VERSION}, please upgrade your client to "
                              f"a newer version")
    if version_tuple(version) > version_tuple(API_VERSION):
        raise InvalidArgument(f"client version {version} is too new. Maximum supported API "
                              f"version is {API_VERSION}")
    return version


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A route pattern as a regex: ``{x}`` one segment, ``{x:re}`` the regex given."""
    out, last = [], 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[last:m.start()]))
        out.append(f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})")
        last = m.end()
    out.append(re.escape(pattern[last:]))
    return re.compile("".join(out))


class Route:
    __slots__ = ("method", "pattern", "handler", "regex")

    def __init__(self, method: str, pattern: str, handler: Handler) -> None:
        self.method = method
        self.pattern = pattern
        self.handler = handler
        self.regex = compile_pattern(pattern)

    def __repr__(self) -> str:
        return f"Route({self.method} {self.pattern})"


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append(Route(method.upper(), pattern, handler))

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The first route for `method` whose pattern matches `path` (unversioned), with its
        parameters; None when there is none (Docker answers 404 ``page not found``)."""
        for route in self.routes:
            if route.method != method:
                continue
            m = route.regex.fullmatch(path)
            if m is not None:
                return route, m.groupdict()
        return None
