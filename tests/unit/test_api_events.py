"""``GET /events`` in process (aiohttp's test client) over an event log alone: what is
replayed for since/until, live events after the replay with none lost between, the end at
a future `until`, at the daemon's stop and after a past `until`, the filters on both parts,
and the 400s before the stream."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

from aiohttp import test_utils

from skiff.api.server import ApiServer
from skiff.engine import Engine
from skiff.engine.events import EventLog

Client = test_utils.TestClient  # type: ignore[type-arg]


def serve(log: EventLog, scenario: Callable[[Client, ApiServer], Awaitable[None]]) -> None:
    async def main() -> None:
        server = ApiServer(cast(Engine, SimpleNamespace(events=log)), workers=2)
        async with test_utils.TestClient(test_utils.TestServer(server.app)) as client:
            await scenario(client, server)

    asyncio.run(main())


def decode(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.splitlines() if line]


def emit_later(log: EventLog, delay: float, *actions: str) -> threading.Thread:
    def emit() -> None:
        time.sleep(delay)
        for action in actions:
            log.emit("container", action, "c1", {"name": "one"})
    thread = threading.Thread(target=emit)
    thread.start()
    return thread


def test_since_replays_and_a_past_until_ends_the_stream() -> None:
    log = EventLog()
    log.emit("container", "create", "c1", {"name": "one"})
    middle = log.emit("image", "tag", "sha256:x", {"name": "x:1"})
    log.emit("container", "start", "c1", {"name": "one"})
    until = f"{time.time():.9f}"

    async def scenario(client: Client, server: ApiServer) -> None:
        resp = await client.get("/events", params={"since": "0", "until": until})
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        assert [e["Action"] for e in decode(await resp.read())] == ["create", "tag", "start"]
        since = f"{middle.time_nano // 10**9}.{middle.time_nano % 10**9:09d}"
        resp = await client.get("/events", params={"since": since, "until": until})
        assert [e["Action"] for e in decode(await resp.read())] == ["tag", "start"]
        # until alone replays everything kept up to it
        resp = await client.get("/events", params={"until": until, "filters": json.dumps(
            {"type": ["container"]})})
        assert [e["Action"] for e in decode(await resp.read())] == ["create", "start"]

    serve(log, scenario)


def test_live_events_follow_the_replay_until_a_future_until() -> None:
    log = EventLog()
    log.emit("container", "create", "c1", {"name": "one"})

    async def scenario(client: Client, server: ApiServer) -> None:
        began = time.monotonic()
        until = f"{time.time() + 1.0:.9f}"
        thread = emit_later(log, 0.3, "start", "die")
        resp = await client.get("/events", params={
            "since": "0", "until": until, "filters": json.dumps({"event": ["create", "die"]})})
        body = await resp.read()
        took = time.monotonic() - began
        thread.join()
        assert [e["Action"] for e in decode(body)] == ["create", "die"]
        assert 0.9 < took < 3, took

    serve(log, scenario)


def test_without_since_nothing_is_replayed_and_the_daemons_stop_ends_the_stream() -> None:
    log = EventLog()
    log.emit("container", "create", "old", {"name": "old"})

    async def scenario(client: Client, server: ApiServer) -> None:
        resp = await client.get("/events")
        assert resp.status == 200
        thread = emit_later(log, 0.2, "start")
        line = await asyncio.wait_for(resp.content.readline(), 5)
        assert json.loads(line)["Action"] == "start"
        thread.join()
        assert log.listeners() == 1
        server.closing.set()
        rest = await asyncio.wait_for(resp.read(), 5)  # a clean end, not a cut connection
        assert rest == b""
        deadline = time.monotonic() + 5
        while log.listeners():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)

    serve(log, scenario)


def test_bad_requests_are_400_before_any_stream() -> None:
    log = EventLog()

    async def scenario(client: Client, server: ApiServer) -> None:
        for params, words in [
            ({"since": "10", "until": "5"}, "`since` time (10) cannot be after `until` time (5)"),
            ({"until": "later"}, 'failed to parse value as time or duration: "later"'),
            ({"filters": "[1]"}, "invalid filters"),
            ({"filters": json.dumps({"color": ["red"]})}, "invalid filter 'color'"),
        ]:
            resp = await client.get("/events", params=params)
            assert resp.status == 400, params
            assert words in (await resp.json())["message"]
        assert log.listeners() == 0

    serve(log, scenario)


def test_a_client_that_leaves_is_unsubscribed_within_a_check() -> None:
    log = EventLog()

    async def scenario(client: Client, server: ApiServer) -> None:
        resp = await client.get("/events")
        assert resp.status == 200
        assert log.listeners() == 1
        resp.close()  # the connection goes, with no event ever written to it
        deadline = time.monotonic() + 5
        while log.listeners():
            assert time.monotonic() < deadline, "the stream outlived its client"
            await asyncio.sleep(0.05)

    serve(log, scenario)
