"""The API server in process (aiohttp's test client on loopback) over a real engine on a
temporary root, answers checked against the v1.41 spec's schemas; the registry client and
login replaced by fakes to test streaming: progress lines, errors before and inside the
stream, and a client that leaves mid-pull. Root: the store unpacks layers with owners."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils
from fixtures_daemon import check_api_shape
from test_engine_images import make_image

from skiff.api.server import ApiServer
from skiff.engine import Engine, EngineOptions
from skiff.errors import ImageNotFound, ManifestUnknown
from skiff.store.images import ImageStore

pytestmark = pytest.mark.root

Client = test_utils.TestClient  # type: ignore[type-arg]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(tmp_path / "root", tmp_path / "run", EngineOptions(builtin_busybox=False))
    e.start()
    make_image(e.store, [{"a": b"1"}, {"b": b"22"}], "127.0.0.1:5000/foo/bar:tag",
               labels={"tier": "web"})
    return e


def serve(engine: Engine, scenario: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        server = ApiServer(engine, workers=4)
        async with test_utils.TestClient(test_utils.TestServer(server.app)) as client:
            await scenario(client)

    asyncio.run(main())


async def get_json(client: Client, path: str, status: int = 200) -> Any:
    resp = await client.get(path)
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/json")
    return await resp.json()


def lines(body: bytes) -> list[dict[str, Any]]:
    assert body.endswith(b"\r\n")
    return [json.loads(line) for line in body.split(b"\r\n") if line]


# -- system -------------------------------------------------------------------------------------
def test_ping_version_and_info(engine: Engine) -> None:
    async def scenario(client: Client) -> None:
        for method in ("GET", "HEAD"):
            resp = await client.request(method, "/_ping")
            assert resp.status == 200
            assert resp.headers["Api-Version"] == "1.41"
            assert resp.headers["Ostype"] == "linux"
            assert resp.headers["Docker-Experimental"] == "false"
            assert resp.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
            assert await resp.read() == (b"OK" if method == "GET" else b"")
        version = await get_json(client, "/v1.41/version")
        check_api_shape(version, "SystemVersion")
        assert version["ApiVersion"] == "1.41" and version["MinAPIVersion"] == "1.12"
        assert version["GoVersion"].startswith("python3")
        info = await get_json(client, "/info")
        check_api_shape(info, "SystemInfo")
        assert info["DockerRootDir"] == engine.root and info["Images"] == 1
        assert info["CgroupDriver"] == "cgroupfs"
        assert info["RegistryConfig"]["InsecureRegistryCIDRs"] == ["127.0.0.0/8"]
        resp = await client.get("/v1.41/version")
        assert resp.headers["Server"].startswith("skiffd/")
        usage = await get_json(client, "/system/df")
        assert usage["Containers"] == usage["Volumes"] == usage["BuildCache"] == []
        for row in usage["Images"]:
            check_api_shape(row, "ImageSummary")

    serve(engine, scenario)


def test_info_lists_insecure_registries(tmp_path: Path) -> None:
    e = Engine(tmp_path / "r", tmp_path / "run", EngineOptions(
        builtin_busybox=False, insecure_registries=("10.0.0.0/8", "reg.local:5000")))
    info = e.system.info()
    assert info["RegistryConfig"]["InsecureRegistryCIDRs"] == ["127.0.0.0/8", "10.0.0.0/8"]
    assert info["RegistryConfig"]["IndexConfigs"]["reg.local:5000"]["Secure"] is False
    check_api_shape(info, "SystemInfo")


def test_auth_logs_in_through_the_registry_client(engine: Engine,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.registry.session as session
    from skiff.errors import AuthenticationFailed

    def fake_login(server: str, auth: Any, options: Any = None) -> str:
        if auth.password != "right":
            raise AuthenticationFailed("unauthorized: incorrect username or password", 401)
        return "token-123" if server == "with-token:5000" else ""

    monkeypatch.setattr(session, "login", fake_login)

    async def scenario(client: Client) -> None:
        resp = await client.post("/auth", json={"username": "u", "password": "right",
                                                "serveraddress": "with-token:5000"})
        assert await resp.json() == {"Status": "Login Succeeded", "IdentityToken": "token-123"}
        resp = await client.post("/auth", json={"username": "u", "password": "right",
                                                "serveraddress": "plain:5000"})
        assert await resp.json() == {"Status": "Login Succeeded"}
        resp = await client.post("/auth", json={"username": "u", "password": "wrong"})
        assert resp.status == 401
        assert await resp.json() == {"message": "unauthorized: incorrect username or password"}
        resp = await client.post("/auth", data=b"{not json")
        assert resp.status == 400

    serve(engine, scenario)


# -- routing and errors -------------------------------------------------------------------------
def test_unknown_routes_and_versions(engine: Engine) -> None:
    async def scenario(client: Client) -> None:
        assert await get_json(client, "/nothing/here", 404) == {"message": "page not found"}
        assert await get_json(client, "/v1.41/nothing", 404) == {"message": "page not found"}
        resp = await client.post("/images/json")
        assert resp.status == 404
        doc = await get_json(client, "/v1.50/images/json", 400)
        assert doc["message"].startswith("client version 1.50 is too new")
        assert (await get_json(client, "/v1.12/images/json"))[0]["RepoTags"]

    serve(engine, scenario)


def test_names_with_slashes_and_not_found(engine: Engine) -> None:
    async def scenario(client: Client) -> None:
        doc = await get_json(client, "/v1.41/images/127.0.0.1:5000/foo/bar:tag/json")
        check_api_shape(doc, "ImageInspect")
        assert doc["RepoTags"] == ["127.0.0.1:5000/foo/bar:tag"]
        history = await get_json(client, "/images/127.0.0.1:5000/foo/bar:tag/history")
        for item in history:
            check_api_shape(item, "ImageHistoryResponseItem")
        assert [h["Id"] for h in history] == [doc["Id"], "<missing>"]
        missing = await get_json(client, "/images/127.0.0.1:5000/foo/bar:nope/json", 404)
        assert missing == {"message": "No such image: 127.0.0.1:5000/foo/bar:nope"}
        bad = await get_json(client, "/images/Bad..Name/json", 400)
        assert bad["message"].startswith("invalid reference format")

    serve(engine, scenario)


def test_list_tag_remove_and_prune_shapes(engine: Engine) -> None:
    async def scenario(client: Client) -> None:
        rows = await get_json(client, "/images/json")
        for row in rows:
            check_api_shape(row, "ImageSummary")
        resp = await client.post("/images/127.0.0.1:5000/foo/bar:tag/tag",
                                 params={"repo": "again", "tag": "2"})
        assert resp.status == 201
        rows = await get_json(client, "/images/json", 200)
        assert sorted(rows[0]["RepoTags"]) == ["127.0.0.1:5000/foo/bar:tag", "again:2"]
        filtered = await get_json(client, "/images/json?filters=" + json.dumps(
            {"reference": {"again": True}}))
        assert [r["RepoTags"] for r in filtered] == [["again:2"]]
        bad = await get_json(client, "/images/json?filters=" + json.dumps(
            {"colour": {"red": True}}), 400)
        assert bad == {"message": "invalid filter 'colour'"}
        resp = await client.delete("/images/again:2")
        report = await resp.json()
        assert report == [{"Untagged": "again:2"}]
        for item in report:
            check_api_shape(item, "ImageDeleteResponseItem")
        resp = await client.delete("/images/" + rows[0]["Id"][7:19])
        assert resp.status == 200
        assert {"Deleted": rows[0]["Id"]} in await resp.json()
        resp = await client.post("/images/prune", params={
            "filters": json.dumps({"dangling": ["false"]})})
        assert await resp.json() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
        resp = await client.delete("/images/")
        assert resp.status == 400 and (await resp.json())["message"] == \
            "image name cannot be blank"

    serve(engine, scenario)


def test_rmi_conflict_is_409(engine: Engine) -> None:
    from skiff.engine.images import ImageUser

    engine.images.in_use = lambda image_id: [ImageUser("a" * 64, running=True)]

    async def scenario(client: Client) -> None:
        resp = await client.delete("/images/127.0.0.1:5000/foo/bar:tag")
        assert resp.status == 409
        assert (await resp.json())["message"].startswith("conflict: unable to remove "
                                                         "repository reference")

    serve(engine, scenario)


def test_search_is_not_implemented(engine: Engine) -> None:
    async def scenario(client: Client) -> None:
        doc = await get_json(client, "/images/search?term=busybox", 501)
        assert "not supported" in doc["message"]

    serve(engine, scenario)


# -- streams ----------------------------------------------------------------------------------------
class _Progress:
    def __init__(self, id: str, status: str, current: int | None = None,
                 total: int | None = None) -> None:
        self.id, self.status, self.current, self.total = id, status, current, total


class _Pulled:
    def __init__(self, reference: str) -> None:
        self.reference, self.digest, self.fresh = reference, "sha256:" + "d" * 64, False


def test_pull_streams_progress_lines(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.registry.pull as registry_pull

    headers_seen: list[Any] = []

    def fake_pull(store: ImageStore, ref: str, **kw: Any) -> _Pulled:
        headers_seen.append(kw["auth"])
        for n in range(3):
            kw["progress"](_Progress("0123456789ab", "Downloading", n * 10, 30))
        return _Pulled("127.0.0.1:5000/foo/bar:tag")

    monkeypatch.setattr(registry_pull, "pull", fake_pull)

    async def scenario(client: Client) -> None:
        resp = await client.post("/v1.41/images/create",
                                 params={"fromImage": "127.0.0.1:5000/foo/bar", "tag": "tag"},
                                 headers={"X-Registry-Auth": ""})
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        messages = lines(await resp.read())
        assert messages[0] == {"status": "Pulling from foo/bar", "id": "tag"}
        assert [m.get("progressDetail") for m in messages[1:4]] == [
            {"total": 30}, {"current": 10, "total": 30}, {"current": 20, "total": 30}]
        assert messages[-1] == {"status": "Status: Image is up to date for "
                                          "127.0.0.1:5000/foo/bar:tag"}

    serve(engine, scenario)
    assert headers_seen == [None]


def test_errors_before_the_stream_have_a_status_and_after_it_a_line(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.registry.pull as registry_pull

    def fake_pull(store: ImageStore, ref: str, **kw: Any) -> Any:
        if ref.endswith(":early"):
            raise ManifestUnknown("manifest for x:early not found: manifest unknown", 404)
        kw["progress"](_Progress("0123456789ab", "Pulling fs layer"))
        raise ImageNotFound("boom")  # any error, once something went out

    monkeypatch.setattr(registry_pull, "pull", fake_pull)

    async def scenario(client: Client) -> None:
        resp = await client.post("/images/create", params={"fromImage": "x", "tag": "early"})
        assert resp.status == 404
        assert await resp.json() == {"message": "manifest for x:early not found: "
                                                "manifest unknown"}
        resp = await client.post("/images/create", params={"fromImage": "x", "tag": "late"})
        assert resp.status == 200
        messages = lines(await resp.read())
        assert messages[-1] == {"errorDetail": {"message": "No such image: boom"},
                                "error": "No such image: boom"}
        resp = await client.post("/images/create", params={"fromImage": "x", "tag": "bad tag"})
        assert resp.status == 400
        resp = await client.post("/images/create")
        assert resp.status == 400

    serve(engine, scenario)


def test_a_client_leaving_mid_pull_does_not_hurt_the_daemon(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.registry.pull as registry_pull

    left = threading.Event()
    finished = threading.Event()

    def slow_pull(store: ImageStore, ref: str, **kw: Any) -> _Pulled:
        kw["progress"](_Progress("0123456789ab", "Pulling fs layer"))
        left.wait(10)
        for n in range(500):  # into a closed connection
            kw["progress"](_Progress("0123456789ab", "Downloading", n, 500))
            time.sleep(0.0005)
        finished.set()
        return _Pulled("x:latest")

    monkeypatch.setattr(registry_pull, "pull", slow_pull)

    async def scenario(client: Client) -> None:
        resp = await client.post("/images/create", params={"fromImage": "x", "tag": "latest"})
        first = await resp.content.readline()
        assert json.loads(first)["status"] == "Pulling from library/x"
        resp.close()
        left.set()
        for _ in range(200):
            if finished.is_set():
                break
            await asyncio.sleep(0.05)
        assert finished.is_set()
        await asyncio.sleep(0.1)
        assert (await client.get("/_ping")).status == 200
        assert (await get_json(client, "/images/json"))[0]["RepoTags"]

    serve(engine, scenario)


def test_push_streams_the_result_and_aux(engine: Engine,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.registry.push as registry_push

    image = engine.store.get("127.0.0.1:5000/foo/bar:tag")

    class Pushed:
        tag, digest, size = "tag", image.manifest_digest, 400

    def fake_push(store: ImageStore, ref: str, **kw: Any) -> Pushed:
        kw["progress"](_Progress("0123456789ab", "Pushed"))
        return Pushed()

    monkeypatch.setattr(registry_push, "push", fake_push)

    async def scenario(client: Client) -> None:
        resp = await client.post("/images/127.0.0.1:5000/foo/bar/push", params={"tag": "tag"},
                                 headers={"X-Registry-Auth": "e30="})
        messages = lines(await resp.read())
        assert messages[0] == {"status": "The push refers to repository "
                                         "[127.0.0.1:5000/foo/bar]"}
        assert {"status": f"tag: digest: {image.manifest_digest} size: 400"} in messages
        assert messages[-1] == {"progressDetail": {}, "aux": {
            "Tag": "tag", "Digest": image.manifest_digest, "Size": 400}}
        for m in messages:
            check_api_shape(m, "PushImageInfo", strict=False)

    serve(engine, scenario)


def test_load_errors_come_in_the_stream(engine: Engine) -> None:
    pytest.importorskip("skiff.store.archive")

    async def scenario(client: Client) -> None:
        resp = await client.post("/images/load", data=b"this is not a tar archive" * 100)
        assert resp.status == 200  # as dockerd: the error is in the stream
        messages = lines(await resp.read())
        assert "errorDetail" in messages[-1]

    serve(engine, scenario)


def test_save_then_load_through_the_api(engine: Engine) -> None:
    pytest.importorskip("skiff.store.archive")
    image_id = engine.store.get("127.0.0.1:5000/foo/bar:tag").id

    async def scenario(client: Client) -> None:
        resp = await client.get("/images/get", params={"names": "127.0.0.1:5000/foo/bar:tag"})
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/x-tar"
        archive = await resp.read()
        assert len(archive) > 1024 and len(archive) % 512 == 0
        missing = await get_json(client, "/images/nothing:here/get", 404)
        assert missing["message"].startswith("No such image")
        await client.delete("/images/127.0.0.1:5000/foo/bar:tag")
        resp = await client.post("/images/load", params={"quiet": "1"}, data=archive)
        messages = lines(await resp.read())
        assert messages == [{"stream": "Loaded image: 127.0.0.1:5000/foo/bar:tag\n"}]
        assert (await get_json(client, "/images/127.0.0.1:5000/foo/bar:tag/json"))["Id"] == \
            image_id
        await client.delete("/images/127.0.0.1:5000/foo/bar:tag")
        resp = await client.post("/images/load", params={"quiet": "0"}, data=archive)
        messages = lines(await resp.read())
        loading = [m for m in messages if m.get("status") == "Loading layer"]
        assert loading and all("progressDetail" in m and m["id"] for m in loading)
        assert messages[-1] == {"stream": "Loaded image: 127.0.0.1:5000/foo/bar:tag\n"}

    serve(engine, scenario)


def test_import_from_the_body(engine: Engine) -> None:
    pytest.importorskip("skiff.store.importer")
    from conftest import tar_of

    async def scenario(client: Client) -> None:
        resp = await client.post("/images/create", params=[
            ("fromSrc", "-"), ("repo", "imported"), ("tag", "1"), ("message", "by test"),
            ("changes", 'CMD ["/bin/true"]'), ("changes", "ENV A=b")],
            data=tar_of({"bin/true": b"#!/bin/sh\n"}))
        assert resp.status == 200, await resp.text()
        messages = lines(await resp.read())
        image_id = messages[-1]["status"]
        assert image_id.startswith("sha256:")
        doc = await get_json(client, "/images/imported:1/json")
        assert doc["Id"] == image_id
        assert doc["Config"]["Cmd"] == ["/bin/true"] and "A=b" in doc["Config"]["Env"]
        assert doc["Comment"] == "by test"
        assert doc["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"

    serve(engine, scenario)


def test_import_from_a_url(engine: Engine) -> None:
    pytest.importorskip("skiff.store.importer")
    import http.server

    from conftest import tar_of

    body = tar_of({"etc/hostname": b"from-a-url\n"})

    class Serve(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Serve)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/rootfs.tar"

    async def scenario(client: Client) -> None:
        resp = await client.post("/images/create", params={"fromSrc": url, "repo": "fromurl"})
        messages = lines(await resp.read())
        assert messages[0] == {"status": f"Downloading from {url}"}
        doc = await get_json(client, "/images/fromurl/json")
        assert doc["Id"] == messages[-1]["status"]
        assert url in doc["Comment"]  # Docker's "Imported from <url>"
        resp = await client.post("/images/create", params={"fromSrc": "ftp://x/y"})
        assert resp.status == 400

    try:
        serve(engine, scenario)
    finally:
        httpd.shutdown()
        httpd.server_close()
