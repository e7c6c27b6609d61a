"""Container output on the wire: Docker's multiplexed framing, hijacked connections, and the
thread that feeds both from the engine.

Without a TTY, Docker sends a container's stdout and stderr on one connection, each write a
frame: an 8-byte header ``[stream, 0, 0, 0, size (uint32, big-endian)]`` and then the payload
(pkg/stdcopy; stream 1 is stdout, 2 stderr, 3 an error of the daemon's own). `frame` makes one.

``POST /containers/{id}/attach`` takes the connection over, as dockerd's ``Hijack()`` does:
a client that sent ``Upgrade: tcp`` gets ``HTTP/1.1 101 UPGRADED`` and the raw stream, one that
did not a ``200 OK`` head and the same. aiohttp would close a connection whose reader half-
closes — and the docker CLI half-closes at once when it has no stdin to send — so `Hijacked`
puts a protocol of its own on the transport (`HijackProtocol`): it keeps writing after the
client's EOF, applies the transport's flow control to the writer, and hands the end of the
connection back to aiohttp's handler so its server forgets it. The handler then returns a
`HijackedResponse`, which aiohttp "prepares" without writing anything.

The input side (a container's stdin, an exec's): a handler that takes it opens with
``Hijacked.open(call, media_type, takes_input=True)`` and then reads what the client sends
with `Hijacked.read` (b"" once the client half-closed or went away) or copies it all with
`Hijacked.copy_input`, which watches for detach keys (`api.detach_keys`) and says how the
input ended. Taken input is held back by TCP, not by the daemon's memory: past 64 KiB
unread the transport stops reading. A stream that takes no input keeps at most 64 KiB of it
and drops the rest, still reading, so it sees the client leave.

The engine is synchronous and a followed stream may wait for output for as long as the
container runs, so `OutputPump` runs the engine's iterator in a thread of its own (not in the
server's pool, which 50 attached containers would otherwise fill), handing items to the event
loop through a small queue that holds the thread back while the client is slow.
"""

from __future__ import annotations

import asyncio
import struct
import threading

from aiohttp import web

from skiff.log import logger

from collections.abc import Coroutine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator
    from typing import TypeVar

    T = TypeVar("T")

    from skiff.api.detach_keys import DetachScanner
    from skiff.api.server import Call

_log = logger("skiff.api.hijack")

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
_HEADER = struct.Struct(">BxxxL")
_QUEUE_DEPTH = 64  # items in flight between the engine's thread and the connection
_INPUT_LIMIT = 1 << 16  # unread client input held before the transport stops reading
_DONE = object()


def frame(stream: int, data: bytes) -> bytes:
    """One stdcopy frame: the 8-byte header, then `data`."""
    return _HEADER.pack(stream, len(data)) + data


def stream_media_type(api_version: str, multiplexed: bool) -> str:
    """The Content-Type of a container stream: before API 1.42 dockerd always says
    raw-stream (clients then go by the container's Tty); from 1.42 a framed stream says
    so."""
    from skiff.api.router import version_tuple

    if multiplexed and version_tuple(api_version) >= (1, 42):
        return MULTIPLEXED_STREAM
    return RAW_STREAM


class HijackProtocol(asyncio.Protocol):
    """The transport's protocol once a connection is hijacked: what the client sends is kept
    for `Hijacked.read` (or, when the stream takes no input, a little of it, the rest
    dropped), its EOF does not end the connection, and the end of the connection is passed
    on to aiohttp's handler."""

    def __init__(self, previous: asyncio.BaseProtocol, transport: asyncio.Transport,
                 takes_input: bool = False) -> None:
        self.previous = previous
        self.transport = transport
        self.takes_input = takes_input
        self.input = bytearray()
        self.input_closed = False  # the client half-closed, or the connection is gone
        self.lost = asyncio.Event()
        self._input_ready = asyncio.Event()
        self._reading_paused = False
        self._can_write: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        if not self.takes_input:
            # an output-only stream: keep at most a little, so a client cannot fill the
            # daemon's memory, and go on reading to see it leave
            self.input += data[:max(0, _INPUT_LIMIT - len(self.input))]
            return
        self.input += data
        self._input_ready.set()
        if len(self.input) >= _INPUT_LIMIT and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()  # TCP holds the client back until we read

    async def read(self) -> bytes:
        while not self.input and not self.input_closed:
            self._input_ready.clear()
            await self._input_ready.wait()
        data = bytes(self.input)
        self.input.clear()
        if self._reading_paused and not self.transport.is_closing():
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    def eof_received(self) -> bool:
        self.input_closed = True
        self._input_ready.set()
        return True  # half-closed: keep the transport open for our output

    def pause_writing(self) -> None:
        if self._can_write is None or self._can_write.done():
            self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()
        self.input_closed = True
        self._input_ready.set()
        self.resume_writing()
        # aiohttp's handler no longer hears from the transport; tell it, so its server
        # drops the connection from its list
        self.previous.connection_lost(exc)

    async def drain(self) -> None:
        waiter = self._can_write
        if waiter is not None and not waiter.done():
            await waiter


class HijackedResponse(web.StreamResponse):
    """What a hijacking handler returns to aiohttp: the head and body went out on the raw
    transport already, so preparing it writes nothing and the connection is not kept."""

    def __init__(self, status: int = 101) -> None:
        super().__init__(status=status, reason="UPGRADED" if status == 101 else None)
        self.force_close()

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class Hijacked:
    """A connection taken over from aiohttp (`open`), written raw until `close`."""

    def __init__(self, transport: asyncio.Transport, protocol: HijackProtocol,
                 response: HijackedResponse) -> None:
        self.transport = transport
        self.protocol = protocol
        self.response = response

    @classmethod
    def open(cls, call: Call, content_type: str, takes_input: bool = False) -> Hijacked:
        """Take `call`'s connection and write the head: ``101 UPGRADED`` to a client that
        asked for ``Upgrade: tcp``, else ``200 OK`` (both as dockerd writes them).
        `takes_input`: what the client sends from now on is the handler's (`read`,
        `copy_input`); clients send nothing before they have read the head (the docker
        CLI and docker-py wait for it), and aiohttp's parser would take it for a request."""
        request = call.request
        transport = request.transport
        if not isinstance(transport, asyncio.Transport) or transport.is_closing():
            raise ConnectionResetError("the client went away before the stream started")
        protocol = HijackProtocol(request.protocol, transport, takes_input)
        transport.set_protocol(protocol)
        if "Upgrade" in request.headers:
            head = (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\n"
                    "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
            response = HijackedResponse(101)
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n"
            response = HijackedResponse(200)
        transport.write(head.encode("latin-1"))
        return cls(transport, protocol, response)

    @property
    def gone(self) -> bool:
        return self.protocol.lost.is_set() or self.transport.is_closing()

    async def read(self) -> bytes:
        """What the client sent since the last read (at least one byte), or b"" once its
        input has ended: half-closed, or the connection is gone (see `gone`). Only for a
        stream opened with `takes_input`."""
        assert self.protocol.takes_input, "this stream was opened without input"
        return await self.protocol.read()

    async def copy_input(self, write: Callable[[bytes], Awaitable[object]],
                         scanner: DetachScanner | None = None) -> str:
        """Copy the client's input to `write` until it ends: "eof" (it half-closed),
        "gone" (the connection ended) or "detached" (`scanner` saw the detach keys; the
        keys and what followed them are not written)."""
        while True:
            data = await self.read()
            if not data:
                if scanner is not None and scanner.held:
                    await write(scanner.flush())
                return "gone" if self.gone else "eof"
            if scanner is not None:
                data, detached = scanner.feed(data)
                if data:
                    await write(data)
                if detached:
                    return "detached"
            else:
                await write(data)

    async def write(self, data: bytes) -> None:
        if self.gone:
            raise ConnectionResetError("the client closed the attached connection")
        self.transport.write(data)
        await self.protocol.drain()

    def close(self) -> None:
        """End the stream: half-close (the client reads to EOF), then close once written."""
        if self.transport.is_closing():
            return
        try:
            if self.transport.can_write_eof():
                self.transport.write_eof()
        except OSError:
            pass
        self.transport.close()


async def until_closing(waiting: Awaitable[T], closing: asyncio.Event, instead: T) -> T:
    """What `waiting` gives, or `instead` if `closing` is set first (`waiting` is then
    cancelled)."""
    if closing.is_set():
        if isinstance(waiting, Coroutine):
            waiting.close()
        return instead
    task = asyncio.ensure_future(waiting)
    closer = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({task, closer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        closer.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return instead


async def in_own_thread(fn: Callable[..., object], *args: object) -> object:
    """``fn(*args)`` in a thread of its own: for engine calls that block for as long as a
    container runs (wait), which must not hold one of the server pool's few workers."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[object] = loop.create_future()

    def settle(value: object, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def work() -> None:
        try:
            value, error = fn(*args), None
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting handler
            value, error = None, e
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more

    threading.Thread(target=work, name="skiffd-wait", daemon=True).start()
    return await future


class OutputPump:
    """``source()``'s items (an engine iterator of (stream, bytes)), made in a thread of
    their own and taken with ``async for``. A consumer that stops early calls `stop`: the
    thread closes the iterator as soon as it yields again (an iterator blocked waiting for
    output cannot be interrupted from outside, so it ends at its next line or at the
    container's stop)."""

    def __init__(self, source: Callable[[], Iterable[tuple[int, bytes]]],
                 name: str = "skiffd-stream", closing: asyncio.Event | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.closing = closing  # once set (the daemon stops), the stream ends
        self.queue: asyncio.Queue[object] = asyncio.Queue(_QUEUE_DEPTH)
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, args=(source,), name=name,
                                       daemon=True)
        self.thread.start()

    def _put(self, item: object) -> bool:
        try:
            asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop).result()
            return True
        except RuntimeError:  # the loop is closed: the daemon is going away
            return False

    def _work(self, source: Callable[[], Iterable[tuple[int, bytes]]]) -> None:
        iterator: Iterator[tuple[int, bytes]] | None = None
        try:
            iterator = iter(source())
            for item in iterator:
                if self.stopped.is_set() or not self._put(item):
                    break
        except BaseException as e:  # noqa: BLE001 - goes to the consumer
            self.error = e
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as e:  # noqa: BLE001 - the stream is over either way
                    _log.debug("closing an output iterator: %s", e)
            if not self.stopped.is_set():
                self._put(_DONE)

    def __aiter__(self) -> OutputPump:
        return self

    async def __anext__(self) -> tuple[int, bytes]:
        if self.closing is None or not self.queue.empty():
            item = await self.queue.get()
        else:
            item = await until_closing(self.queue.get(), self.closing, _DONE)
        if item is _DONE:
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    def stop(self) -> None:
        self.stopped.set()
        # a thread blocked on a full queue gets its place, sees `stopped` and ends
        while not self.queue.empty():
            self.queue.get_nowait()
