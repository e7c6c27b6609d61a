"""The exec routes in process (aiohttp's test server on loopback) over a fake ExecService
whose processes are pipes and socketpairs the test holds: the start's hijack byte for byte,
stdcopy frames without a TTY and the raw stream with one, the stream ending only once the
exit is known, a failed start told on the stream, stdin to the process and its EOF, the
detach keys ending a TTY's stream while the process goes on, a detached start, 404 before
the hijack, resize's parameters."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import test_utils

from skiff.api.hijack import frame
from skiff.api.server import ApiServer
from skiff.engine.exec import ExecStreams
from skiff.errors import ContainerStartError, NoSuchExec

Client = test_utils.TestClient  # type: ignore[type-arg]
EID = "e" * 64


class Instance:
    def __init__(self, stdin: bool, tty: bool, detach_keys: bytes = b"") -> None:
        self.stdin, self.tty, self.detach_keys = stdin, tty, detach_keys


class FakeExecs:
    """One exec, EID. `start` gives the route pipes (a socketpair for a TTY); the test
    writes the process's output on `out`/`err` (or `term`), reads its input, and ends it
    with `exit`."""

    def __init__(self, stdin: bool = False, tty: bool = False, fail: str = "") -> None:
        self.instance = Instance(stdin, tty)
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []
        self.waiters: list[Callable[[int], None]] = []
        self.code: int | None = None
        self.out = self.err = self.input = -1
        self.term: socket.socket | None = None
        self.started = threading.Event()

    def get(self, exec_id: str) -> Instance:
        if exec_id != EID:
            raise NoSuchExec(exec_id)
        return self.instance

    def start(self, exec_id: str, detach: bool = False,
              console_size: tuple[int, int] | None = None) -> ExecStreams:
        self.calls.append(("start", (exec_id, detach)))
        streams = ExecStreams()
        if self.fail:
            raise ContainerStartError(self.fail, 127)
        if not detach:
            if self.instance.tty:
                ours, self.term = socket.socketpair()
                streams.terminal = os.dup(ours.fileno())
                ours.close()
            else:
                streams.stdout, self.out = os.pipe()
                streams.stderr, self.err = os.pipe()
                if self.instance.stdin:
                    self.input, streams.stdin = os.pipe()
        self.started.set()
        return streams

    def when_exited(self, exec_id: str, callback: Callable[[int], None]) -> None:
        if self.code is not None:
            callback(self.code)
        else:
            self.waiters.append(callback)

    def exit(self, code: int) -> None:
        self.code = code
        for fd in (self.out, self.err):
            if fd >= 0:
                os.close(fd)
        self.out = self.err = -1
        for waiter in self.waiters:
            waiter(code)

    def resize(self, exec_id: str, height: int, width: int) -> None:
        self.calls.append(("resize", (exec_id, height, width)))


class FakeEngine:
    def __init__(self, execs: FakeExecs) -> None:
        self.execs = execs


START = ("POST /v1.41/exec/{eid}/start HTTP/1.1\r\nHost: api.moby.localhost\r\n"
         "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
         "Content-Length: {length}\r\n\r\n{body}")


def serve(execs: FakeExecs, scenario: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        server = ApiServer(FakeEngine(execs), workers=4)  # type: ignore[arg-type]
        async with test_utils.TestClient(test_utils.TestServer(server.app)) as client:
            await scenario(client)

    asyncio.run(main())


def _start(client: Client, body: str = '{"Detach":false,"Tty":false}',
           eid: str = EID) -> socket.socket:
    port = client.server.port
    assert port is not None
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(START.format(eid=eid, length=len(body), body=body).encode())
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def _head_and_body(data: bytes) -> tuple[bytes, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


HEAD = (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
        b"Connection: Upgrade\r\nUpgrade: tcp")


def test_output_in_frames_until_the_exit() -> None:
    execs = FakeExecs()

    async def scenario(client: Client) -> None:
        sock = _start(client)
        loop = asyncio.get_running_loop()
        reading = loop.run_in_executor(None, _read_until_closed, sock)
        assert await loop.run_in_executor(None, execs.started.wait, 10)
        os.write(execs.out, b"out\n")
        os.write(execs.err, b"err\n")
        await asyncio.sleep(0.1)
        assert not reading.done()  # no exit yet: the stream goes on
        execs.exit(3)
        head, body = _head_and_body(await asyncio.wait_for(reading, 10))
        sock.close()
        assert head == HEAD
        assert sorted([body[:12], body[12:]]) == sorted([frame(1, b"out\n"),
                                                         frame(2, b"err\n")])

    serve(execs, scenario)


def test_a_failed_start_is_told_on_the_stream() -> None:
    execs = FakeExecs(fail='OCI runtime exec failed: exec: "nope": not found')

    async def scenario(client: Client) -> None:
        sock = _start(client)
        data = await asyncio.get_running_loop().run_in_executor(None, _read_until_closed, sock)
        sock.close()
        head, body = _head_and_body(data)
        assert head == HEAD
        assert body == frame(1, b'OCI runtime exec failed: exec: "nope": not found\r\n')

    serve(execs, scenario)


def test_stdin_goes_to_the_process_then_its_eof() -> None:
    execs = FakeExecs(stdin=True)

    async def scenario(client: Client) -> None:
        sock = _start(client)
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, execs.started.wait, 10)
        sock.sendall(b"hello ")
        sock.sendall(b"world")
        sock.shutdown(socket.SHUT_WR)

        def read_input() -> bytes:
            got = b""
            while chunk := os.read(execs.input, 4096):
                got += chunk
            return got

        assert await asyncio.wait_for(loop.run_in_executor(None, read_input), 10) == \
            b"hello world"  # and then EOF: the pipe was closed
        os.close(execs.input)
        execs.exit(0)
        await loop.run_in_executor(None, _read_until_closed, sock)
        sock.close()

    serve(execs, scenario)


def test_a_ttys_detach_keys_end_the_stream_not_the_process() -> None:
    execs = FakeExecs(stdin=True, tty=True)

    async def scenario(client: Client) -> None:
        sock = _start(client, '{"Detach":false,"Tty":true}')
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, execs.started.wait, 10)
        term = execs.term
        assert term is not None
        term.sendall(b"$ ")
        sock.sendall(b"ls\r\x10")
        await asyncio.sleep(0.05)
        sock.sendall(b"\x11 after")
        data = await asyncio.wait_for(loop.run_in_executor(None, _read_until_closed, sock), 10)
        sock.close()
        head, body = _head_and_body(data)
        assert head.startswith(b"HTTP/1.1 101 UPGRADED") and body == b"$ "
        term.settimeout(2)
        assert term.recv(100) == b"ls\r"  # the keys and what followed never reached it
        assert execs.code is None  # and it was not ended
        term.close()

    serve(execs, scenario)


def test_detached_start_404_and_resize() -> None:
    execs = FakeExecs()

    async def scenario(client: Client) -> None:
        resp = await client.post(f"/v1.41/exec/{EID}/start", json={"Detach": True})
        assert resp.status == 200 and execs.calls == [("start", (EID, True))]
        resp = await client.post("/v1.41/exec/other/start", json={})
        assert resp.status == 404
        assert await resp.json() == {"message": "No such exec instance: other"}
        resp = await client.post(f"/v1.41/exec/{EID}/resize?h=&w=3")
        assert resp.status == 400
        assert await resp.json() == {"message": 'strconv.Atoi: parsing "": invalid syntax'}
        resp = await client.post(f"/v1.41/exec/{EID}/resize?h=30&w=100")
        assert resp.status == 200 and execs.calls[-1] == ("resize", (EID, 30, 100))

    serve(execs, scenario)
