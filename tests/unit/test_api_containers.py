"""The container routes in process (aiohttp's test server on loopback) over a fake
ContainerService: Docker's status codes and bodies, query parameters as the engine gets them,
the stdcopy framing of logs (bounded and followed), wait's head sent before the exit, and
the attach hijack byte for byte — ``101 UPGRADED`` with Docker's headers, output kept
flowing after the client half-closes, a plain ``200`` without ``Upgrade``, a client that
leaves mid-stream."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import test_utils

from skiff.api.hijack import frame
from skiff.api.server import ApiServer
from skiff.engine.events import EventLog
from skiff.errors import InvalidArgument, SkiffError

Client = test_utils.TestClient  # type: ignore[type-arg]
ID = "f" * 64


class NoSuch(SkiffError):
    """What the fake raises for an unknown container (404 through the table below)."""


class Conflict(SkiffError):
    pass


class FakeContainers:
    """The ContainerService's API (contracts4.md), in memory. Output is fed by the test
    (`emit`); a followed log ends when the container stops."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.cond = threading.Condition()
        self.state = "created"
        self.exit_code = 0
        self.exits = 0
        self.output: list[tuple[int, bytes]] = []
        self.times: list[float] = []  # when each piece of output came
        self.started_at = "0001-01-01T00:00:00Z"
        self.removed = False
        self.events = EventLog()

    def bundle_dir(self, cid: str) -> str:
        return f"/nonexistent/bundles/{cid}"  # no monitor serves stdin here

    def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))

    def resolve(self, name: str) -> str:
        self._call("resolve", name)
        if name.lstrip("/") not in ("web", ID, ID[:12]) or self.removed:
            raise NoSuch(f"No such container: {name}")
        return ID

    # -- lifecycle
    def create(self, body: dict[str, Any], name: str | None) -> dict[str, Any]:
        self._call("create", body, name)
        if body.get("Image") == "nope":
            raise NoSuch("No such image: nope:latest")
        if name == "taken":
            raise Conflict('Conflict. The container name "/taken" is already in use')
        return {"Id": ID, "Warnings": []}

    def start(self, cid: str) -> bool | None:
        self._call("start", cid)
        self.resolve(cid)
        with self.cond:
            if self.state == "running":
                return False
            self.state = "running"
            self.started_at = f"{time.time():.9f}"
            self.cond.notify_all()
        return None

    def stop(self, cid: str, timeout: int | None = None, signal: str | None = None) -> bool | None:
        self._call("stop", cid, timeout=timeout, signal=signal)
        self.resolve(cid)
        if self.state != "running":
            return False
        self.exit(137)
        return None

    def kill(self, cid: str, **given: str) -> None:
        self._call("kill", cid, **given)  # the engine's default signal when none is given
        self.resolve(cid)
        if self.state != "running":
            raise Conflict(f"Container {cid} is not running")
        self.exit(137)

    def restart(self, cid: str, timeout: int | None = None, signal: str | None = None) -> None:
        self._call("restart", cid, timeout=timeout, signal=signal)

    def remove(self, cid: str, force: bool = False, volumes: bool = False) -> None:
        self._call("remove", cid, force=force, volumes=volumes)
        self.resolve(cid)
        with self.cond:
            self.removed = True
            self.cond.notify_all()

    def exit(self, code: int) -> None:
        with self.cond:
            self.state, self.exit_code = "exited", code
            self.exits += 1
            self.cond.notify_all()

    def _block(self, done: Callable[[], bool], cancelled: Callable[[], bool]) -> None:
        """Under the condition: until `done()`, or `cancelled()` (asked now and then, as the
        engine asks it)."""
        while not (done() or cancelled()):
            self.cond.wait(0.05)

    def wait(self, cid: str, condition: str = "not-running",
             ready: Callable[[], None] | None = None,
             cancelled: Callable[[], bool] = lambda: False) -> dict[str, Any]:
        self._call("wait", cid, condition)
        with self.cond:
            seen = self.exits
            if ready is not None:
                ready()
            if condition == "removed":
                self._block(lambda: self.removed, cancelled)
            elif condition == "next-exit":
                self._block(lambda: self.exits > seen, cancelled)
            else:
                self._block(lambda: self.state != "running", cancelled)
        return {"StatusCode": self.exit_code, "Error": None}

    # -- looking
    def inspect(self, cid: str, size: bool = False) -> dict[str, Any]:
        self._call("inspect", cid, size=size)
        self.resolve(cid)
        return {"Id": ID, "Name": "/web",
                "State": {"Status": self.state, "Running": self.state == "running",
                          "StartedAt": self.started_at}}

    def list(self, all: bool = False, limit: int = -1, filters: Any = None,
             size: bool = False) -> list[dict[str, Any]]:
        self._call("list", all=all, limit=limit, filters=filters, size=size)
        return [{"Id": ID, "Names": ["/web"]}]

    def prune(self, filters: Any = None) -> dict[str, Any]:
        self._call("prune", filters)
        return {"ContainersDeleted": [ID], "SpaceReclaimed": 12}

    def emit(self, stream: int, data: bytes) -> None:
        with self.cond:
            self.output.append((stream, data))
            self.times.append(time.time())
            self.cond.notify_all()

    def logs(self, cid: str, stdout: bool = True, stderr: bool = True, follow: bool = False,
             since: str = "", until: str = "", timestamps: bool = False,
             tail: str = "all", cancelled: Callable[[], bool] = lambda: False
             ) -> Iterator[tuple[int, bytes]]:
        if since == "bad":
            raise InvalidArgument("bad since")
        with self.cond:
            start = len(self.output) if tail == "0" else 0
            if since:
                start = sum(1 for t in self.times if t < float(since))
            # recorded once the reader's place is taken: a test may go on from here
            self._call("logs", cid, stdout=stdout, stderr=stderr, follow=follow, since=since,
                       until=until, timestamps=timestamps, tail=tail)
            self.cond.notify_all()
        while True:
            with self.cond:
                if follow:
                    self._block(lambda: len(self.output) > start or
                                (self.state == "exited" and len(self.output) <= start),
                                cancelled)
                items = self.output[start:]
                start = len(self.output)
                over = not follow or self.state == "exited" or cancelled()
            for kind, data in items:
                if (kind == 1 and stdout) or (kind == 2 and stderr):
                    yield kind, (b"2026-01-01T00:00:00.000000000Z " + data if timestamps
                                 else data)
            if over and not items:
                return
            if not follow:
                return


class FakeEngine:
    def __init__(self) -> None:
        self.containers = FakeContainers()


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    import skiff.api.errors as errors

    monkeypatch.setitem(errors.STATUS, NoSuch, 404)
    monkeypatch.setitem(errors.STATUS, Conflict, 409)
    return FakeEngine()


def serve(engine: FakeEngine, scenario: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        server = ApiServer(engine, workers=4)  # type: ignore[arg-type]
        async with test_utils.TestClient(test_utils.TestServer(server.app)) as client:
            await scenario(client)

    asyncio.run(main())


def test_a_stopping_daemon_ends_followed_logs_waits_and_attaches(engine: FakeEngine) -> None:
    c = engine.containers
    c.start(ID)

    async def main() -> None:
        server = ApiServer(engine, workers=4)  # type: ignore[arg-type]
        async with test_utils.TestClient(test_utils.TestServer(server.app)) as client:
            port = client.server.port
            assert port is not None
            logs = await client.get("/containers/web/logs?stdout=1&follow=1")
            wait = await client.post("/containers/web/wait")
            sock = _raw_request(port, ATTACH.format(extra="Connection: Upgrade\r\n"
                                                          "Upgrade: tcp\r\n"))
            attached = asyncio.get_running_loop().run_in_executor(None, _read_all, sock)
            deadline = time.monotonic() + 10
            while sum(1 for x in c.calls if x[0] == "logs") < 2:  # both streams read
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            started = time.monotonic()
            server.closing.set()  # what the daemon's stop does first
            assert await asyncio.wait_for(logs.read(), 5) == b""
            with pytest.raises(Exception):
                await asyncio.wait_for(wait.json(), 5)  # the connection ends unanswered
            head = await asyncio.wait_for(attached, 5)
            sock.close()
            assert head.startswith(b"HTTP/1.1 101 UPGRADED") and head.endswith(b"\r\n\r\n")
            assert time.monotonic() - started < 2
            assert c.state == "running"  # the container goes on
        c.exit(0)

    asyncio.run(main())


def unframe(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        kind, size = struct.unpack(">BxxxL", data[:8])
        out.append((kind, data[8:8 + size]))
        data = data[8 + size:]
    return out


def test_frame_is_stdcopy_header_then_payload() -> None:
    assert frame(1, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert frame(2, b"x" * 300)[:8] == b"\x02\x00\x00\x00\x00\x00\x01\x2c"
    assert unframe(frame(1, b"a") + frame(2, b"")) == [(1, b"a"), (2, b"")]


# -- codes and bodies ---------------------------------------------------------------------
def test_create_answers_201_with_id_and_warnings(engine: FakeEngine) -> None:
    async def scenario(client: Client) -> None:
        body = {"Image": "busybox", "Cmd": ["echo", "hi"], "HostConfig": {"AutoRemove": True}}
        resp = await client.post("/v1.41/containers/create?name=web", json=body)
        assert resp.status == 201
        assert await resp.json() == {"Id": ID, "Warnings": []}
        assert engine.containers.calls[-1] == ("create", (body, "web"), {})
        resp = await client.post("/containers/create", json={"Image": "busybox"})
        assert resp.status == 201 and engine.containers.calls[-1][1][1] is None
        resp = await client.post("/containers/create", json={"Image": "nope"})
        assert (resp.status, await resp.json()) == (404, {"message": "No such image: nope:latest"})
        resp = await client.post("/containers/create?name=taken", json={"Image": "busybox"})
        assert resp.status == 409
        # malformed bodies are refused before the engine sees them
        for data, ctype, text in ((b"", "application/json", "got EOF"),
                                  (b"{nope", "application/json", "invalid JSON"),
                                  (b"[1]", "application/json", "ContainerCreate object"),
                                  (b"{}", "text/plain", "unsupported Content-Type")):
            resp = await client.post("/containers/create", data=data,
                                     headers={"Content-Type": ctype})
            assert resp.status == 400, data
            assert text in (await resp.json())["message"]

    serve(engine, scenario)


def test_start_stop_kill_restart_remove_codes(engine: FakeEngine) -> None:
    async def scenario(client: Client) -> None:
        c = engine.containers
        assert (await client.post("/v1.41/containers/web/start")).status == 204
        assert (await client.post("/containers/web/start")).status == 304  # already running
        resp = await client.post("/containers/web/stop?t=3")
        assert resp.status == 204 and c.calls[-2] == ("stop", ("web",), {"timeout": 3,
                                                                           "signal": None})
        assert (await client.post("/containers/web/stop")).status == 304  # already stopped
        resp = await client.post("/containers/web/stop?t=soon")
        assert resp.status == 400 and "invalid syntax" in (await resp.json())["message"]
        resp = await client.post("/containers/web/kill?signal=HUP")
        assert resp.status == 409
        assert (await resp.json())["message"] == \
            "cannot kill container: web: Container web is not running"
        await client.post("/containers/web/start")
        assert (await client.post("/containers/web/kill?signal=HUP")).status == 204
        assert c.calls[-2] == ("kill", ("web",), {"signal": "HUP"})
        assert (await client.post("/containers/web/kill")).status == 409
        assert c.calls[-2] == ("kill", ("web",), {})  # the engine's default signal
        resp = await client.post("/containers/web/restart?t=0&signal=SIGINT")
        assert resp.status == 204
        assert c.calls[-1] == ("restart", ("web",), {"timeout": 0, "signal": "SIGINT"})
        resp = await client.post("/containers/web/start", data=b'{"Binds": ["/a:/b"]}')
        assert resp.status == 400 and "removed in v1.24" in (await resp.json())["message"]
        resp = await client.delete("/containers/web?force=1&v=1")
        assert resp.status == 204
        assert c.calls[-2] == ("remove", ("web",), {"force": True, "volumes": True})
        resp = await client.delete("/containers/web")
        assert (resp.status, await resp.json()) == (404, {"message": "No such container: web"})
        assert (await client.post("/containers/nothing/start")).status == 404

    serve(engine, scenario)


def test_list_inspect_prune_pass_docker_parameters(engine: FakeEngine) -> None:
    async def scenario(client: Client) -> None:
        c = engine.containers
        filters = json.dumps({"status": ["exited"]})
        resp = await client.get("/v1.41/containers/json",
                                params={"all": "1", "limit": "3", "size": "true",
                                        "filters": filters})
        assert resp.status == 200 and await resp.json() == [{"Id": ID, "Names": ["/web"]}]
        assert c.calls[-1] == ("list", (), {"all": True, "limit": 3, "filters": filters,
                                            "size": True})
        await client.get("/containers/json")
        assert c.calls[-1] == ("list", (), {"all": False, "limit": -1, "filters": None,
                                            "size": False})
        resp = await client.get("/containers/json?before=abc")
        assert resp.status == 400
        resp = await client.get("/containers/web/json")
        assert (await resp.json())["Id"] == ID
        await client.get("/containers/web/json?size=1")
        assert c.calls[-2] == ("inspect", ("web",), {"size": True})
        resp = await client.get("/containers/nothing/json")
        assert resp.status == 404
        resp = await client.post("/containers/prune", params={"filters": filters})
        assert await resp.json() == {"ContainersDeleted": [ID], "SpaceReclaimed": 12}
        assert c.calls[-1] == ("prune", (filters,), {})

    serve(engine, scenario)


def test_a_failed_start_is_400_for_a_missing_program_else_500(
        engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    from skiff.errors import ContainerStartError

    def start(cid: str) -> None:
        code = {"web": 127, ID: 126}.get(cid, 125)
        raise ContainerStartError(f"OCI runtime create failed: exit {code}", code)

    monkeypatch.setattr(engine.containers, "start", start)

    async def scenario(client: Client) -> None:
        for name, status in (("web", 400), (ID, 400), ("other", 500)):
            resp = await client.post(f"/containers/{name}/start")
            assert resp.status == status, name
            assert (await resp.json())["message"].startswith("OCI runtime create failed")

    serve(engine, scenario)


def test_resize_answers_as_dockerd(engine: FakeEngine) -> None:
    c = engine.containers

    async def scenario(client: Client) -> None:
        resp = await client.post("/containers/web/resize?h=x&w=80")
        assert (resp.status, await resp.json()) == (
            400, {"message": 'strconv.Atoi: parsing "x": invalid syntax'})
        resp = await client.post("/containers/web/resize?h=24&w=80")
        assert (resp.status, await resp.json()) == (
            409, {"message": f"Container {ID} is not running"})
        resp = await client.post("/containers/nothing/resize?h=24&w=80")
        assert resp.status == 404
        c.start(ID)
        resp = await client.post("/containers/web/resize?h=24&w=80")  # no TTY: nothing to do
        assert resp.status == 200
        event = c.events.since()[-1]
        assert (event.action, event.attributes) == (
            "resize", {"height": "24", "width": "80", "name": "web"})

    serve(engine, scenario)


# -- wait ---------------------------------------------------------------------------------
def test_wait_sends_its_head_before_the_exit_then_the_status(engine: FakeEngine) -> None:
    async def scenario(client: Client) -> None:
        c = engine.containers
        await client.post("/containers/web/start")
        resp = await client.post("/v1.41/containers/web/wait?condition=next-exit")
        # the head came while the container still runs: the client may start it next
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        assert c.calls[-1] == ("wait", (ID, "next-exit"), {})
        await asyncio.sleep(0.05)
        assert c.state == "running"
        threading.Timer(0.05, c.exit, (3,)).start()
        assert await resp.json() == {"StatusCode": 3, "Error": None}
        resp = await client.post("/containers/web/wait")  # not-running: at once
        assert await resp.json() == {"StatusCode": 3, "Error": None}
        resp = await client.post("/containers/web/wait?condition=gone")
        assert (resp.status, await resp.json()) == (400, {"message": 'invalid condition: "gone"'})
        resp = await client.post("/containers/nothing/wait")
        assert resp.status == 404

    serve(engine, scenario)


def test_wait_for_removal(engine: FakeEngine) -> None:
    async def scenario(client: Client) -> None:
        resp = await client.post("/containers/web/wait?condition=removed")
        assert resp.status == 200
        threading.Timer(0.05, engine.containers.remove, (ID,)).start()
        assert await resp.json() == {"StatusCode": 0, "Error": None}

    serve(engine, scenario)


# -- logs ---------------------------------------------------------------------------------------
def test_logs_bounded_are_framed_by_stream(engine: FakeEngine) -> None:
    c = engine.containers
    c.emit(1, b"out\n")
    c.emit(2, b"err\n")

    async def scenario(client: Client) -> None:
        resp = await client.get("/v1.41/containers/web/logs?stdout=1&stderr=1&tail=5&since=10"
                                "&until=20&timestamps=1")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/vnd.docker.raw-stream"  # API < 1.42
        assert unframe(await resp.read()) == [
            (1, b"2026-01-01T00:00:00.000000000Z out\n"),
            (2, b"2026-01-01T00:00:00.000000000Z err\n")]
        assert c.calls[-1] == ("logs", (ID,), {"stdout": True, "stderr": True, "follow": False,
                                               "since": "10", "until": "20",
                                               "timestamps": True, "tail": "5"})
        resp = await client.get("/containers/web/logs?stderr=1")
        assert unframe(await resp.read()) == [(2, b"err\n")]
        assert c.calls[-1][2]["tail"] == "all"
        resp = await client.get("/containers/web/logs")
        assert resp.status == 400
        assert (await resp.json())["message"] == \
            "Bad parameters: you must choose at least one stream"
        resp = await client.get("/containers/web/logs?stdout=1&since=bad")
        assert resp.status == 400
        resp = await client.get("/containers/nothing/logs?stdout=1")
        assert resp.status == 404

    serve(engine, scenario)


def test_logs_follow_streams_until_the_container_stops(engine: FakeEngine) -> None:
    c = engine.containers
    c.emit(1, b"before\n")
    c.start(ID)

    async def scenario(client: Client) -> None:
        resp = await client.get("/containers/web/logs?stdout=1&stderr=1&follow=1")
        assert resp.status == 200
        first = await resp.content.readexactly(8 + 7)
        assert unframe(first) == [(1, b"before\n")]
        threading.Timer(0.05, c.emit, (2, b"later\n")).start()
        second = await resp.content.readexactly(8 + 6)
        assert unframe(second) == [(2, b"later\n")]
        threading.Timer(0.05, c.exit, (0,)).start()
        assert await resp.content.read() == b""  # the stream ends with the container

    serve(engine, scenario)


# -- attach -------------------------------------------------------------------------------
def _raw_request(port: int, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(head.encode())
    return sock


def _read_all(sock: socket.socket, half_close: bool = True) -> bytes:
    """The whole answer; with `half_close`, the writing half is shut once the head came, as
    the docker CLI does when it has no stdin to send."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
        if half_close and b"\r\n\r\n" in out:
            sock.shutdown(socket.SHUT_WR)
            half_close = False
    return out


ATTACH = ("POST /v1.41/containers/web/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
          "Host: api.moby.localhost\r\nUser-Agent: Docker-Client/28.2.2 (linux)\r\n"
          "Content-Length: 0\r\nContent-Type: text/plain\r\n{extra}\r\n")


def _reading(c: FakeContainers) -> bool:
    return any(call[0] == "logs" for call in c.calls)


async def _attach_while(client: Client, c: FakeContainers, request: str,
                        story: Callable[[], None],
                        ready: Callable[[FakeContainers], bool] = _reading
                        ) -> tuple[bytes, list[tuple[int, bytes]]]:
    """Send the raw attach `request`, let `story` (the container's life) run once the
    attach is `ready` (by default: reads the container's output), and read the whole
    answer: head and frames."""
    port = client.server.port
    assert port is not None
    sock = _raw_request(port, request)

    def later() -> None:
        deadline = time.monotonic() + 10
        while not ready(c):
            assert time.monotonic() < deadline, "the attach never got ready"
            time.sleep(0.005)
        story()

    threading.Thread(target=later).start()
    data = await asyncio.get_running_loop().run_in_executor(None, _read_all, sock)
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head, unframe(body)


def test_attach_hijacks_with_101_and_streams_after_half_close(engine: FakeEngine) -> None:
    c = engine.containers

    def container_runs() -> None:
        c.start(ID)
        c.emit(1, b"hi\n")
        c.emit(2, b"oops\n")
        time.sleep(0.05)
        c.exit(0)

    async def scenario(client: Client) -> None:
        head, frames = await _attach_while(
            client, c, ATTACH.format(extra="Connection: Upgrade\r\nUpgrade: tcp\r\n"),
            container_runs)
        assert head == (b"HTTP/1.1 101 UPGRADED\r\n"
                        b"Content-Type: application/vnd.docker.raw-stream\r\n"
                        b"Connection: Upgrade\r\nUpgrade: tcp")
        assert frames == [(1, b"hi\n"), (2, b"oops\n")]
        # the attach of a created container follows its output from the beginning
        assert ("logs", (ID,), {"stdout": True, "stderr": True, "follow": True, "since": "",
                                "until": "", "timestamps": False, "tail": "all"}) in c.calls
        # the server goes on serving other requests
        resp = await client.get("/containers/web/json")
        assert resp.status == 200

    serve(engine, scenario)


def test_attach_to_a_running_container_gets_only_new_output(engine: FakeEngine) -> None:
    c = engine.containers
    c.start(ID)
    c.emit(1, b"old\n")

    def later() -> None:
        c.emit(2, b"hidden\n")  # stderr was not asked for
        c.emit(1, b"new\n")
        time.sleep(0.05)
        c.exit(1)

    async def scenario(client: Client) -> None:
        # no Upgrade header: a plain 200 head, then the same stream
        head, frames = await _attach_while(
            client, c, ATTACH.format(extra="").replace("stderr=1", "stderr=0"), later)
        assert head == b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream"
        assert frames == [(1, b"new\n")]

    serve(engine, scenario)


def test_attach_to_a_stopped_container_streams_its_next_run(engine: FakeEngine) -> None:
    c = engine.containers
    c.start(ID)
    c.emit(1, b"first run\n")
    c.exit(0)

    def rerun() -> None:  # what `docker start -a` does after attaching
        c.start(ID)
        c.emit(1, b"second run\n")
        c.exit(4)

    def polling(c: FakeContainers) -> bool:
        # attach's own look (and its event's), then the look for the run
        return sum(1 for call in c.calls if call[0] == "inspect") >= 3

    async def scenario(client: Client) -> None:
        head, frames = await _attach_while(
            client, c, ATTACH.format(extra="Connection: Upgrade\r\nUpgrade: tcp\r\n"),
            rerun, polling)
        assert head.startswith(b"HTTP/1.1 101 UPGRADED")
        assert frames == [(1, b"second run\n")]
        logs = [call for call in c.calls if call[0] == "logs"][-1]
        assert logs[2]["tail"] == "all" and float(logs[2]["since"]) > 0

    serve(engine, scenario)


def test_attach_errors_come_before_the_hijack(engine: FakeEngine) -> None:
    async def scenario(client: Client) -> None:
        resp = await client.post("/containers/nothing/attach?stream=1&stdout=1",
                                 headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        assert (resp.status, await resp.json()) == (404, {"message": "No such container: nothing"})
        resp = await client.post("/containers/web/attach?stream=1&stdin=1&detachKeys=ctrl-1",
                                 headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        assert (resp.status, await resp.json()) == (
            400, {"message": "Invalid detach keys (ctrl-1) provided"})

    serve(engine, scenario)


def test_attach_client_leaving_mid_stream_frees_the_stream(engine: FakeEngine) -> None:
    c = engine.containers
    c.start(ID)

    async def scenario(client: Client) -> None:
        port = client.server.port
        assert port is not None
        loop = asyncio.get_running_loop()
        sock = _raw_request(port, ATTACH.format(extra="Connection: Upgrade\r\nUpgrade: tcp\r\n"))
        head = await loop.run_in_executor(None, sock.recv, 4096)
        assert head.startswith(b"HTTP/1.1 101 UPGRADED")
        sock.close()  # the user pressed ctrl-c
        await asyncio.sleep(0.05)
        for _ in range(3):
            c.emit(1, b"into the void\n")  # written to a closed connection: dropped
            await asyncio.sleep(0.02)
        resp = await client.get("/containers/web/json")
        assert resp.status == 200
        c.exit(0)
        for _ in range(100):  # the engine's iterator ends with the container, and its thread
            if not [t for t in threading.enumerate() if t.name == "skiffd-attach"]:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the attach thread outlived the container")

    serve(engine, scenario)
