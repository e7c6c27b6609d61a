"""Streamed answers: engine work in a worker thread, its output written as it comes.

The engine is synchronous, so a pull or a save runs in the server's thread pool and hands
its output over to the event loop: JSON messages through `loop.call_soon_threadsafe` into an
`asyncio.Queue` (`JsonStream`), tar bytes through `run_coroutine_threadsafe`, which also
holds the worker back while the client is slow (`TarStream`). The response starts with the
first message, so an engine error before any output is still a plain HTTP error with its
status code (as Docker's write-flusher does); after that it comes in the stream, as
Docker's ``errorDetail`` line. A client that goes away mid-stream is noted and the rest of
the output dropped (JSON) or refused to the worker (tar); the daemon goes on. Request
bodies (load, import) are spooled to an unlinked scratch file first, because an archive may
need to be read out of order.
"""

from __future__ import annotations

import asyncio
import tempfile

from aiohttp import web

from skiff.api.errors import message_of
from skiff.engine import jsonmessage
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

    from skiff.api.server import Call

_log = logger("skiff.api.streams")
_DONE = object()
_CHUNK = 1 << 20
_TAR_BUFFER = 1 << 18
_GONE = ConnectionError  # aiohttp raises ClientConnectionResetError, one of these


class JsonStream:
    """Docker's JSON-lines answer (``application/json``, one message a line)."""

    def __init__(self, call: Call, *, errors_in_stream: bool = False) -> None:
        self.call = call
        self.errors_in_stream = errors_in_stream  # /images/load answers 200 whatever happens
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.response: web.StreamResponse | None = None
        self.gone = False

    def emit(self, message: dict[str, Any]) -> None:
        """Called from the worker thread."""
        self.loop.call_soon_threadsafe(self.queue.put_nowait, message)

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> web.StreamResponse:
        """Run ``fn(*args, emit=…, **kwargs)`` in the pool, streaming what it emits."""
        def work() -> Any:
            try:
                return fn(*args, emit=self.emit, **kwargs)
            finally:
                self.emit(_DONE)  # type: ignore[arg-type]

        future = self.loop.run_in_executor(self.call.server.executor, work)
        while (message := await self.queue.get()) is not _DONE:
            await self._write(message)
        try:
            await future
        except Exception as e:  # noqa: BLE001 - every engine error goes to the client
            if self.response is None and not self.errors_in_stream:
                raise
            _log.debug("%s: error in the stream: %s", self.call.request.path, e)
            await self._write(jsonmessage.error(message_of(e)))
        response = await self._start()
        if not self.gone:
            try:
                await response.write_eof()
            except _GONE:
                self.gone = True
        return response

    async def _start(self) -> web.StreamResponse:
        if self.response is None:
            self.response = web.StreamResponse(headers={"Content-Type": "application/json"})
            try:
                await self.response.prepare(self.call.request)
            except _GONE:
                self.gone = True
        return self.response

    async def _write(self, message: dict[str, Any]) -> None:
        response = await self._start()
        if self.gone:
            return
        try:
            await response.write(jsonmessage.encode(message))
        except _GONE:
            # the client left: the work goes on (a pull still lands), its output is dropped
            _log.debug("%s: the client went away mid-stream", self.call.request.path)
            self.gone = True


class _ThreadWriter:
    """The file a worker writes a tar into: buffered, each flush a coroutine on the loop
    that the worker waits for (so a slow client slows the worker, not the memory)."""

    def __init__(self, stream: TarStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.buffer += data
        self.offset += len(data)
        if len(self.buffer) >= _TAR_BUFFER:
            self.flush()
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        if self.buffer:
            chunk, self.buffer = bytes(self.buffer), bytearray()
            asyncio.run_coroutine_threadsafe(self.stream.send(chunk), self.stream.loop).result()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        pass


class TarStream:
    """An ``application/x-tar`` answer written by a worker (``docker save``)."""

    def __init__(self, call: Call, headers: dict[str, str] | None = None) -> None:
        self.call = call
        self.loop = asyncio.get_running_loop()
        self.response: web.StreamResponse | None = None
        self.headers = {"Content-Type": "application/x-tar", **(headers or {})}

    async def send(self, chunk: bytes) -> None:
        if self.response is None:
            self.response = web.StreamResponse(headers=self.headers)
            await self.response.prepare(self.call.request)
        await self.response.write(chunk)  # a ConnectionError here stops the worker's save

    async def run(self, fn: Callable[..., Any], *args: Any) -> web.StreamResponse:
        """Run ``fn(*args, out)`` in the pool, streaming what it writes to `out`."""
        def work() -> None:
            out = _ThreadWriter(self)
            fn(*args, out)
            out.flush()

        try:
            await self.loop.run_in_executor(self.call.server.executor, work)
        except _GONE:
            _log.debug("%s: the client went away mid-tar", self.call.request.path)
            return self.response or web.Response()
        except Exception as e:
            if self.response is None:
                raise
            # part of a tar is out: end the connection without the closing chunk, so the
            # client sees a broken transfer rather than a short, valid-looking archive
            _log.error("%s: failed mid-tar: %s", self.call.request.path, e)
            transport = self.call.request.transport
            if transport is not None:
                transport.close()
            return self.response
        if self.response is None:
            await self.send(b"")
        assert self.response is not None
        try:
            await self.response.write_eof()
        except _GONE:
            pass
        return self.response


async def spool_body(call: Call, scratch_dir: str) -> IO[bytes]:
    """The request body, whole, in an unlinked file in `scratch_dir`, at offset 0."""
    spool = tempfile.TemporaryFile(dir=scratch_dir)
    try:
        while chunk := await call.request.content.read(_CHUNK):
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool
