"""Routes as moby's router matches them: the /v1.NN prefix, the version window and its
texts, names with slashes, first match wins, 404 otherwise."""

from __future__ import annotations

import pytest

from skiff.api import image_routes, system_routes
from skiff.api.router import (
    API_VERSION,
    MIN_API_VERSION,
    Router,
    check_version,
    compile_pattern,
    split_version,
)
from skiff.errors import InvalidArgument


@pytest.fixture
def router() -> Router:
    r = Router()
    for method, pattern, handler in (*system_routes.ROUTES, *image_routes.ROUTES):
        r.add(method, pattern, handler)
    return r


def test_split_version() -> None:
    assert split_version("/v1.41/images/json") == ("1.41", "/images/json")
    assert split_version("/v1.24/_ping") == ("1.24", "/_ping")
    assert split_version("/images/json") == (None, "/images/json")
    assert split_version("/v1.41") == (None, "/v1.41")  # no route after it
    assert split_version("/version") == (None, "/version")


def test_version_window_and_dockers_texts() -> None:
    assert API_VERSION == "1.41" and MIN_API_VERSION == "1.12"
    assert check_version(None) == "1.41"
    assert check_version("1.41") == "1.41" and check_version("1.12") == "1.12"
    with pytest.raises(InvalidArgument) as new:
        check_version("1.43")
    assert str(new.value) == ("client version 1.43 is too new. Maximum supported API "
                              "version is 1.41")
    with pytest.raises(InvalidArgument) as old:
        check_version("1.11")
    assert str(old.value) == ("client version 1.11 is too old. Minimum supported API version "
                              "is 1.12, please upgrade your client to a newer version")
    with pytest.raises(InvalidArgument):
        check_version("2.0")


@pytest.mark.parametrize("method,path,handler,name", [
    ("GET", "/images/json", image_routes.list_images, None),
    ("GET", "/images/busybox/json", image_routes.inspect, "busybox"),
    ("GET", "/images/127.0.0.1:5000/foo/bar:tag/json", image_routes.inspect,
     "127.0.0.1:5000/foo/bar:tag"),
    ("GET", "/images/a/b@sha256:" + "0" * 64 + "/history", image_routes.history,
     "a/b@sha256:" + "0" * 64),
    ("GET", "/images/get", image_routes.save, None),
    ("GET", "/images/x/y/get", image_routes.save, "x/y"),
    ("POST", "/images/127.0.0.1:5000/x/push", image_routes.push, "127.0.0.1:5000/x"),
    ("POST", "/images/x/tag", image_routes.tag, "x"),
    ("POST", "/images/create", image_routes.create, None),
    ("POST", "/images/load", image_routes.load, None),
    ("POST", "/images/prune", image_routes.prune, None),
    ("DELETE", "/images/127.0.0.1:5000/foo/bar:tag", image_routes.remove,
     "127.0.0.1:5000/foo/bar:tag"),
    ("DELETE", "/images/some/thing/json", image_routes.remove, "some/thing/json"),
    ("HEAD", "/_ping", system_routes.ping, None),
    ("GET", "/_ping", system_routes.ping, None),
    ("POST", "/auth", system_routes.auth, None),
])
def test_resolve(router: Router, method: str, path: str, handler: object,
                 name: str | None) -> None:
    found = router.resolve(method, path)
    assert found is not None
    route, params = found
    assert route.handler is handler
    assert params.get("name") == name


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("POST", "/images/json"), ("HEAD", "/version"),
    ("GET", "/images/x/unknown"), ("PUT", "/images/x/json"), ("GET", "/_ping/"),
])
def test_no_route(router: Router, method: str, path: str) -> None:
    assert router.resolve(method, path) is None


def test_pattern_compilation() -> None:
    assert compile_pattern("/containers/{id}/json").fullmatch("/containers/a/b/json") is None
    m = compile_pattern("/containers/{id}/json").fullmatch("/containers/abc/json")
    assert m is not None and m.group("id") == "abc"
    assert compile_pattern("/a.b").fullmatch("/aXb") is None  # literal text is escaped
