"""A tiny fake Docker Engine API server on a unix socket, for the client and CLI unit tests.

`FakeEngine` answers `/_ping` (with an `Api-Version` header) and whatever routes a test
gives it (`engine.route("GET", "/images/json", handler)`); it records every request it got
(method, path without the `/v1.NN` prefix, the version prefix, query, headers, body), and
can stream chunked bodies (JSON lines, one chunk at a time) so the client's streaming is
tested for real. The tests at the end check the fake itself.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest


class Request:
    def __init__(self, method: str, path: str, version: str | None, query: dict[str, list[str]],
                 headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.version = method, path, version
        self.query, self.headers, self.body = query, headers, body

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path} {self.query})"


class Response:
    """What a handler answers: a JSON value (`json`), raw bytes (`body`), or chunks streamed
    one by one (`chunks`, each flushed on its own, with `pause` seconds between them)."""

    def __init__(self, status: int = 200, json: Any = None, body: bytes | None = None,
                 chunks: Iterable[bytes] | None = None, headers: dict[str, str] | None = None,
                 pause: float = 0.0) -> None:
        self.status, self.json, self.body, self.chunks = status, json, body, chunks
        self.headers = headers or {}
        self.pause = pause


def error(status: int, message: str) -> Response:
    return Response(status, json={"message": message})


def json_lines(messages: list[dict[str, Any]]) -> list[bytes]:
    return [(json.dumps(m) + "\r\n").encode() for m in messages]


Handler = Callable[[Request], Response]


class FakeEngine:
    def __init__(self, socket_path: str, api_version: str = "1.41") -> None:
        self.socket_path = socket_path
        self.api_version = api_version
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        engine = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _serve(self) -> None:
                url = urlsplit(self.path)
                path, version = url.path, None
                if path.startswith("/v1."):
                    version, _, rest = path[2:].partition("/")
                    path = "/" + rest
                req = Request(self.command, path, version, parse_qs(url.query, keep_blank_values=True),
                              {k: v for k, v in self.headers.items()}, self._read_body())
                with engine.lock:
                    engine.requests.append(req)
                resp = engine.dispatch(req)
                self._answer(resp)

            def _answer(self, resp: Response) -> None:
                self.send_response(resp.status)
                self.send_header("Api-Version", engine.api_version)
                self.send_header("Server", "FakeEngine/1.0 (linux)")
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                if resp.chunks is not None:
                    self.send_header("Content-Type", resp.headers.get("Content-Type", "application/json"))
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in resp.chunks:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                        if resp.pause:
                            threading.Event().wait(resp.pause)
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if resp.json is not None:
                    data = json.dumps(resp.json).encode()
                    self.send_header("Content-Type", "application/json")
                else:
                    data = resp.body or b""
                    if "Content-Type" not in resp.headers:
                        self.send_header("Content-Type", "text/plain; charset=utf-8")
                if "Content-Length" not in resp.headers:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _serve

        class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                conn, _ = self.socket.accept()
                return conn, ("fake", 0)

        self.server = _Server(socket_path, _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    @property
    def host(self) -> str:
        return "unix://" + self.socket_path

    def route(self, method: str, path: str, handler: Handler | Response | Any) -> None:
        """Answer `method path` with `handler(request)`, or with a fixed Response or JSON."""
        if callable(handler):
            self.routes[(method, path)] = handler
        elif isinstance(handler, Response):
            self.routes[(method, path)] = lambda req, r=handler: r
        else:
            self.routes[(method, path)] = lambda req, j=handler: Response(json=j)

    def dispatch(self, req: Request) -> Response:
        if req.path == "/_ping" and ("GET", "/_ping") not in self.routes:
            return Response(body=b"OK", headers={"Cache-Control": "no-cache, no-store, must-revalidate"})
        handler = self.routes.get((req.method, req.path))
        if handler is None:
            return error(404, f"page not found: {req.method} {req.path}")
        return handler(req)

    def last(self, method: str, path: str) -> Request:
        for req in reversed(self.requests):
            if req.method == method and req.path == path:
                return req
        raise AssertionError(f"no {method} {path} among {self.requests}")

    def start(self) -> FakeEngine:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[FakeEngine]:
    engine = FakeEngine(str(tmp_path / "fake.sock")).start()
    try:
        yield engine
    finally:
        engine.stop()


# -- the fake itself ------------------------------------------------------------------------
class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def test_fake_answers_ping_with_the_api_version(fake_engine: FakeEngine) -> None:
    conn = _UnixConnection(fake_engine.socket_path)
    conn.request("GET", "/_ping")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"OK"
    assert resp.getheader("Api-Version") == "1.41"
    conn.close()


def test_fake_records_the_version_prefix_and_streams_chunks(fake_engine: FakeEngine) -> None:
    fake_engine.route("POST", "/images/create",
                      Response(chunks=json_lines([{"status": "a"}, {"status": "b"}])))
    conn = _UnixConnection(fake_engine.socket_path)
    conn.request("POST", "/v1.41/images/create?fromImage=busybox&tag=latest")
    resp = conn.getresponse()
    assert resp.getheader("Transfer-Encoding") == "chunked"
    lines = resp.read().splitlines()
    assert [json.loads(x)["status"] for x in lines] == ["a", "b"]
    req = fake_engine.last("POST", "/images/create")
    assert req.version == "1.41" and req.q("fromImage") == "busybox"
    conn.close()
