"""The Engine API client against the fake engine on a unix socket: version negotiation and
the /v1.NN prefix, JSON answers, errors in docker's words, streamed messages read as they
arrive, streamed request bodies, query encoding, and a dead socket."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from test_client_fake import FakeEngine, Response, error, fake_engine, json_lines  # noqa: F401

from skiff.client import transport
from skiff.client.api import EngineClient, encode_query, quote
from skiff.errors import APIError, DaemonUnreachable, InvalidArgument, NotFound


def test_version_is_negotiated_once_and_prefixes_every_path(fake_engine: FakeEngine) -> None:
    fake_engine.route("GET", "/images/json", [])
    client = EngineClient(fake_engine.host)
    assert client.get("/images/json") == []
    assert client.get("/images/json") == []
    pings = [r for r in fake_engine.requests if r.path == "/_ping"]
    assert len(pings) == 1 and pings[0].version is None
    assert [r.version for r in fake_engine.requests if r.path == "/images/json"] == ["1.41", "1.41"]


def test_an_older_server_gets_its_own_version_a_newer_one_ours(tmp_path: Path) -> None:
    for server, used in (("1.40", "1.40"), ("1.47", "1.41"), ("1.9", "1.9")):
        engine = FakeEngine(str(tmp_path / f"{server}.sock"), api_version=server).start()
        try:
            engine.route("GET", "/version", {})
            client = EngineClient(engine.host)
            client.get("/version")
            assert client.api_version == used
            assert engine.last("GET", "/version").version == used
        finally:
            engine.stop()


def test_errors_carry_the_daemons_message_as_docker_prints_it(fake_engine: FakeEngine) -> None:
    fake_engine.route("GET", "/images/nope/json", error(404, "No such image: nope:latest"))
    fake_engine.route("DELETE", "/images/x", error(409, "conflict: unable to delete"))
    fake_engine.route("GET", "/plain", Response(500, body=b"plain text failure\n"))
    client = EngineClient(fake_engine.host)
    with pytest.raises(NotFound) as found:
        client.get("/images/nope/json")
    assert str(found.value) == "Error response from daemon: No such image: nope:latest"
    assert found.value.status == 404
    with pytest.raises(APIError) as conflict:
        client.delete("/images/x")
    assert conflict.value.status == 409 and not isinstance(conflict.value, NotFound)
    with pytest.raises(APIError, match="plain text failure"):
        client.get("/plain")


def test_stream_yields_each_message_before_the_next_is_sent(fake_engine: FakeEngine) -> None:
    gate = threading.Event()

    def slow(req: object) -> Response:
        def chunks():
            yield b'{"status":"first"}\r\n'
            gate.wait(5)
            yield b'{"status":"se'
            yield b'cond"}\r\n{"status":"third"}\r\n'
        return Response(chunks=chunks())

    fake_engine.route("POST", "/images/create", slow)
    messages = EngineClient(fake_engine.host).stream("POST", "/images/create", {"fromImage": "x"})
    assert next(messages) == {"status": "first"}  # while the server still holds the rest
    gate.set()
    assert [m["status"] for m in messages] == ["second", "third"]


def test_a_json_value_spread_over_lines_is_joined(fake_engine: FakeEngine) -> None:
    fake_engine.route("POST", "/images/load", Response(body=b'{\n  "stream": "Loaded image: a:b\\n"\n}\n',
                                                       headers={"Content-Type": "application/json"}))
    got = list(EngineClient(fake_engine.host).stream("POST", "/images/load"))
    assert got == [{"stream": "Loaded image: a:b\n"}]


def test_request_bodies_stream_chunked_from_a_file(fake_engine: FakeEngine) -> None:
    fake_engine.route("POST", "/images/load", lambda req: Response(json={"got": len(req.body)}))
    data = bytes(range(256)) * 5000
    client = EngineClient(fake_engine.host)
    resp = client.open("POST", "/images/load", {"quiet": True}, body=io.BytesIO(data))
    assert resp.read() == b'{"got": 1280000}'
    req = fake_engine.last("POST", "/images/load")
    assert req.headers["Transfer-Encoding"] == "chunked" and req.body == data
    assert req.q("quiet") == "1"


def test_json_bodies_and_headers_are_sent(fake_engine: FakeEngine) -> None:
    fake_engine.route("POST", "/auth", {"Status": "Login Succeeded"})
    client = EngineClient(fake_engine.host)
    answer = client.post("/auth", json={"username": "bob"}, headers={"X-Registry-Auth": "e30="})
    assert answer == {"Status": "Login Succeeded"}
    req = fake_engine.last("POST", "/auth")
    assert req.json() == {"username": "bob"}
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["X-Registry-Auth"] == "e30="
    assert req.headers["User-Agent"].startswith("skiff/")


def test_names_with_slashes_and_colons_keep_them_in_the_path(fake_engine: FakeEngine) -> None:
    fake_engine.route("POST", "/images/localhost:5000/a/b/push", Response(chunks=[]))
    list(EngineClient(fake_engine.host).stream("POST", "/images/localhost:5000/a/b/push",
                                               {"tag": "v 1"}))
    req = fake_engine.last("POST", "/images/localhost:5000/a/b/push")
    assert req.q("tag") == "v 1"


def test_query_encoding() -> None:
    assert encode_query({"a": True, "b": False, "c": None, "d": 0, "e": ["x", "y z"]}) == \
        "a=1&d=0&e=x&e=y%20z"
    assert encode_query({"filters": '{"reference":{"busybox":true}}'}) == \
        "filters=%7B%22reference%22%3A%7B%22busybox%22%3Atrue%7D%7D"
    assert quote("é/") == "%C3%A9%2F"


def test_a_dead_socket_says_what_docker_says(tmp_path: Path) -> None:
    client = EngineClient(f"unix://{tmp_path}/none.sock")
    with pytest.raises(DaemonUnreachable) as exc:
        client.get("/images/json")
    assert str(exc.value) == (f"Cannot connect to the Docker daemon at unix://{tmp_path}/none.sock."
                              " Is the docker daemon running?")
    assert exc.value.detail == ""


def test_tcp_hosts(fake_engine: FakeEngine) -> None:
    # a TCP listener relaying to the fake's unix socket
    import socket
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def relay() -> None:
        conn, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX)
        upstream.connect(fake_engine.socket_path)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        upstream.sendall(data)
        while True:
            chunk = upstream.recv(4096)
            if not chunk:
                break
            conn.sendall(chunk)
        conn.close()
        upstream.close()

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        client = EngineClient(f"tcp://127.0.0.1:{port}", api_version="1.41")
        fake_engine.route("GET", "/version", {"Version": "x"})
        assert client.get("/version") == {"Version": "x"}
    finally:
        thread.join(5)
        listener.close()


def test_host_parsing() -> None:
    assert transport.parse_host("unix:///run/x.sock").path == "/run/x.sock"
    tcp = transport.parse_host("tcp://10.0.0.1:2376")
    assert (tcp.scheme, tcp.host, tcp.port) == ("tcp", "10.0.0.1", 2376)
    assert transport.parse_host("127.0.0.1:5555").port == 5555
    assert transport.parse_host("tcp://[::1]:7").host == "::1"
    assert transport.parse_host("tcp://localhost").port == 2375
    assert transport.parse_host("tcp://[::1]:7").url == "tcp://[::1]:7"
    for bad in ("unix://", "tcp://h:x", "bogus://x", "ssh://u@h"):
        with pytest.raises(InvalidArgument):
            transport.parse_host(bad)


def test_a_daemon_closing_mid_stream_is_an_error(fake_engine: FakeEngine) -> None:
    def broken(req: object) -> Response:
        return Response(body=b"short", headers={"Content-Length": "100"})

    fake_engine.route("GET", "/images/get", broken)
    resp = EngineClient(fake_engine.host, "1.41").open("GET", "/images/get")
    with pytest.raises(DaemonUnreachable, match="mid-stream"):
        resp.read()


def test_head_and_no_content_answers_have_no_body(fake_engine: FakeEngine) -> None:
    fake_engine.route("POST", "/images/x/tag", Response(201))
    fake_engine.route("POST", "/images/y/tag", Response(204))
    client = EngineClient(fake_engine.host, "1.41")
    assert client.post("/images/x/tag") is None
    start = time.monotonic()
    assert client.post("/images/y/tag") is None
    assert time.monotonic() - start < 2
