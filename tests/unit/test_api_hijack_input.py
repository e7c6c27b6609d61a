"""The input side of a hijacked connection, on aiohttp's test server over loopback: what the
client sends once it has the head is the stream's, in order; a half-close ends the input
while output goes on, detach keys end the stream without reaching the writer, a client
that leaves is told apart from one that half-closed, and a fast writer is held back by TCP
(the transport stops reading past 64 KiB) with nothing lost."""

from __future__ import annotations

import asyncio
import socket
import time
import types
from collections.abc import Awaitable, Callable

from aiohttp import web

from skiff.api.detach_keys import DetachScanner
from skiff.api.hijack import RAW_STREAM, Hijacked

HEAD = ("POST /echo{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")


def app(ends: list[str], delay: float = 0.0) -> web.Application:
    """One route: the input upper-cased back (after `delay`), then ``[how it ended]``."""

    async def echo(request: web.Request) -> web.StreamResponse:
        hijacked = Hijacked.open(types.SimpleNamespace(request=request),  # type: ignore[arg-type]
                                 RAW_STREAM, takes_input=True)
        await asyncio.sleep(delay)

        async def write(data: bytes) -> None:
            if not hijacked.gone:
                await hijacked.write(data.upper())

        scanner = DetachScanner() if "tty" in request.query else None
        end = await hijacked.copy_input(write, scanner)
        ends.append(end)
        if not hijacked.gone:
            await hijacked.write(f"[{end}]".encode())
        hijacked.close()
        return hijacked.response

    application = web.Application()
    application.router.add_post("/echo", echo)
    return application


def run(application: web.Application,
        scenario: Callable[[int], Awaitable[None]]) -> None:
    """`scenario(port)` against `application` served on loopback as skiffd serves (aiohttp's
    TestServer would cancel a handler whose client left, which skiffd's runner does not)."""

    async def main() -> None:
        runner = web.AppRunner(application)
        await runner.setup()
        listener = socket.socket()
        try:
            listener.bind(("127.0.0.1", 0))
            await web.SockSite(runner, listener).start()
            await scenario(listener.getsockname()[1])
        finally:
            await runner.cleanup()
            listener.close()

    asyncio.run(main())


async def talk(port: int, query: str, pieces: list[bytes], half_close: bool = True,
               pause: float = 0.02) -> bytes:
    """Send the request, read the answer's head, then the pieces `pause` apart (as the
    docker CLI, which sends stdin only once it has the head); read to the end."""
    loop = asyncio.get_running_loop()

    def client() -> bytes:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with sock:
            sock.sendall(HEAD.format(query=query).encode())
            out = b""
            while b"\r\n\r\n" not in out:
                out += sock.recv(1 << 16)
            for piece in pieces:
                time.sleep(pause)
                sock.sendall(piece)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(1 << 16):
                out += chunk
            return out

    return await loop.run_in_executor(None, client)


def body(answer: bytes) -> bytes:
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    return rest


def test_pieces_in_order_then_half_close() -> None:
    ends: list[str] = []

    async def scenario(port: int) -> None:
        answer = await talk(port, "", [b"first ", b"second\n"])
        assert body(answer) == b"FIRST SECOND\n[eof]"

    run(app(ends), scenario)
    assert ends == ["eof"]


def test_detach_keys_end_the_stream_and_never_reach_the_writer() -> None:
    ends: list[str] = []

    async def scenario(port: int) -> None:
        # keystrokes one by one, as a terminal sends them; the client does not half-close
        answer = await talk(port, "?tty=1", [b"ls\r", b"\x10", b"\x11", b"after"],
                            half_close=False)
        assert body(answer) == b"LS\r[detached]"
        # without a scanner the same bytes are data
        answer = await talk(port, "", [b"a\x10\x11b"])
        assert body(answer) == b"A\x10\x11B[eof]"
        # a ctrl-p that did not begin the sequence reaches the writer, even at the end
        answer = await talk(port, "?tty=1", [b"\x10", b"x\x10"])
        assert body(answer) == b"\x10X\x10[eof]"

    run(app(ends), scenario)
    assert ends == ["detached", "eof", "eof"]


def test_a_client_that_leaves_is_gone_not_eof() -> None:
    ends: list[str] = []

    async def scenario(port: int) -> None:
        loop = asyncio.get_running_loop()

        def client() -> None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(HEAD.format(query="").encode())
            assert sock.recv(1 << 16).startswith(b"HTTP/1.1 101")
            sock.sendall(b"x")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            sock.close()  # a reset: no half-close first

        await loop.run_in_executor(None, client)
        for _ in range(200):
            if ends:
                break
            await asyncio.sleep(0.01)

    run(app(ends), scenario)
    assert ends == ["gone"]


def test_a_fast_writer_is_held_back_and_nothing_is_lost() -> None:
    ends: list[str] = []
    data = bytes(range(97, 123)) * (1 << 15)  # 832 KiB, read only after a pause

    async def scenario(port: int) -> None:
        answer = await talk(port, "", [data[:1000], data[1000:]], pause=0)
        assert body(answer) == data.upper() + b"[eof]"

    run(app(ends, delay=0.2), scenario)
    assert ends == ["eof"]
