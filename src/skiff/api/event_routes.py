"""``GET /events``: the engine's events, replayed and then streamed, as dockerd serves them.

The answer is ``application/json``, one EventMessage a line, each written (and so flushed)
as it comes. `since` replays the kept events from that moment — and only `until` given
replays all of them up to it; with neither, nothing is replayed — then new events follow,
until the `until` moment (at once if it has passed: the replay, then the end), the client
leaving, or skiffd stopping (the stream then ends cleanly, as it does when dockerd stops).
The subscription is taken before the replay is read, so no event falls between the two. A
client that reads so slowly that `BACKLOG` events wait for it has its stream ended rather
than events silently skipped (or the daemon's memory filled).
Bad times, ``since`` after ``until`` and bad filters are 400 before the stream starts.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from skiff import jsonfast
from skiff.engine.event_filter import EventFilter, event_time
from skiff.engine.filters import Filters
from skiff.errors import InvalidArgument
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.api.server import Call
    from skiff.engine.events import Event

_log = logger("skiff.api.events")
_GONE = ConnectionError
_CHECK = 1.0  # seconds between looks at whether an idle subscriber's client is still there
BACKLOG = 4096  # events a subscriber may fall behind by before its stream is ended


async def events(call: Call) -> web.StreamResponse:
    now = time.time()
    since_text, until_text = call.query("since"), call.query("until")
    since, until = event_time(since_text, now), event_time(until_text, now)
    if until is not None and since is not None and until < since:
        raise InvalidArgument(f"`since` time ({since_text}) cannot be after `until` time "
                              f"({until_text})")
    chosen = EventFilter(Filters.parse(call.query("filters") or None))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event] = asyncio.Queue()

    def heard(event: Event) -> None:  # in the emitting thread
        try:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        except RuntimeError:
            pass  # the loop is closed: nobody streams any more

    kept, unsubscribe = call.engine.events.subscribe(heard)
    try:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(call.request)
        if since is not None or until is not None:
            for event in kept:
                if _within(event, since, until) and chosen.include(event):
                    await _write(response, event)
        if until is None or until > time.time_ns():
            await _follow(call, response, queue, chosen, until)
        await response.write_eof()
    except _GONE:
        _log.debug("events: the client went away")
    finally:
        unsubscribe()
    return response


def _within(event: Event, since: int | None, until: int | None) -> bool:
    return (since is None or event.time_nano >= since) and \
        (until is None or event.time_nano <= until)


async def _follow(call: Call, response: web.StreamResponse, queue: asyncio.Queue[Event],
                  chosen: EventFilter, until: int | None) -> None:
    """Write new events until `until`, skiffd's stop or the client's leaving."""
    closing = call.server.closing
    while not closing.is_set():
        step = _CHECK
        if until is not None:
            step = min(step, (until - time.time_ns()) / 1e9)
            if step <= 0:
                return
        getting = asyncio.ensure_future(queue.get())
        stopping = asyncio.ensure_future(closing.wait())
        try:
            await asyncio.wait({getting, stopping}, timeout=step,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not getting.done():
            getting.cancel()
            if call.over():  # the client went away
                return
            continue
        event = getting.result()
        if queue.qsize() >= BACKLOG:
            _log.warning("events: a subscriber fell %d events behind; its stream ends",
                         queue.qsize())
            return
        if until is not None and event.time_nano > until:
            return
        if chosen.include(event):
            await _write(response, event)


async def _write(response: web.StreamResponse, event: Event) -> None:
    await response.write((jsonfast.dumps(event.message()) + "\n").encode())


ROUTES = (("GET", "/events", events),)
