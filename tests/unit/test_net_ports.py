"""skiff.net.ports: `-p`/`--expose` as Docker parses them, the API's shapes, host ports held by sockets."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from skiff.errors import InvalidArgument, PortAllocated
from skiff.net import ports
from skiff.net.ports import PortAllocator, PortBinding, Published

GOOD: dict[str, tuple[ports.ExposedPorts, ports.PortBindings]] = {
    "80": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    "8080:80": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
    "127.0.0.1:8080:80/udp": ({"80/udp": {}}, {"80/udp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}),
    "127.0.0.1::80": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}),
    ":80": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    "[::1]:80:80": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "::1", "HostPort": "80"}]}),
    "::1:80:80": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "::1", "HostPort": "80"}]}),
    "80/TCP": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    "80/": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    "8080:80/sctp": ({"80/sctp": {}}, {"80/sctp": [{"HostIp": "", "HostPort": "8080"}]}),
    "8000-8001:80-81": ({"80/tcp": {}, "81/tcp": {}},
                        {"80/tcp": [{"HostIp": "", "HostPort": "8000"}],
                         "81/tcp": [{"HostIp": "", "HostPort": "8001"}]}),
    "80-81": ({"80/tcp": {}, "81/tcp": {}},
              {"80/tcp": [{"HostIp": "", "HostPort": ""}], "81/tcp": [{"HostIp": "", "HostPort": ""}]}),
    "8000-8010:80": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": "8000-8010"}]}),
    "1-2-3": ({"1/tcp": {}, "2/tcp": {}}, {"1/tcp": [{"HostIp": "", "HostPort": ""}],
                                          "2/tcp": [{"HostIp": "", "HostPort": ""}]}),
    "080": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    "published=8080,target=80,protocol=udp": (
        {"80/udp": {}}, {"80/udp": [{"HostIp": "", "HostPort": "8080"}]}),
    "target=80": ({"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
}

# each with the docker CLI's own words (docker 28, checked by test_errors_are_the_docker_clis)
BAD = {
    "": "no port specified: <empty>",
    "abc": "invalid containerPort: abc",
    "8080:abc": "invalid containerPort: abc",
    "70000": "invalid containerPort: 70000",
    "80-": "invalid containerPort: 80-",
    "-80": "invalid containerPort: -80",
    "+80": "invalid containerPort: +80",
    "1:2:3:80": "invalid IP address: 1:2",
    "1.2.3:80:80": "invalid IP address: 1.2.3",
    "[::1:80:80": "invalid IP address [::1: address [::1:: missing ']' in address",
    "127.0.0.1:8080-8081:80-82": "invalid ranges specified for container and host Ports: 80-82 and 8080-8081",
    "8080-8070:80": "invalid hostPort: 8080-8070",
    "80/xyz": "invalid proto: xyz",
    "0.0.0.0:80:": "no port specified: 0.0.0.0:80:<empty>",
    "/tcp": "no port specified: /tcp<empty>",
    "published=80": "no port specified: 80:/tcp<empty>",
    "published=80,foo": "invalid publish opts format (should be name=value but got 'foo')",
    "=80": "invalid publish opts format (should be name=value but got '=80')",
}

BAD_EXPOSE = {
    "80:80": "invalid port format for --expose: 80:80",
    "80-x": 'invalid range format for --expose: 80-x, error: strconv.ParseUint: parsing "x": invalid syntax',
    "90-80": "invalid range format for --expose: 90-80, error: invalid range specified for port: 90-80",
    "x/udp": 'invalid range format for --expose: x/udp, error: strconv.ParseUint: parsing "x": invalid syntax',
}


@pytest.mark.parametrize("spec", sorted(GOOD))
def test_publish_forms(spec: str) -> None:
    assert ports.parse_publish([spec]) == GOOD[spec]


@pytest.mark.parametrize("spec", sorted(BAD))
def test_publish_errors(spec: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        ports.parse_publish([spec])
    assert str(e.value) == BAD[spec]


def test_bindings_of_one_port_add_up_and_expose_takes_ranges() -> None:
    exposed, bindings = ports.parse_publish(["8080:80", "127.0.0.1:9090:80", "53/udp"])
    assert exposed == {"80/tcp": {}, "53/udp": {}}
    assert bindings["80/tcp"] == [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": "9090"}]
    assert ports.parse_expose(["80", "7000-7002/udp"]) == {
        "80/tcp": {}, "7000/udp": {}, "7001/udp": {}, "7002/udp": {}}
    for value, message in BAD_EXPOSE.items():
        with pytest.raises(InvalidArgument) as e:
            ports.parse_expose([value])
        assert str(e.value) == message


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_errors_are_the_docker_clis() -> None:
    """The docker CLI refuses these before it looks for a daemon: an oracle that needs none."""
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent/skiff-test.sock", DOCKER_CONFIG="/nonexistent")
    for flag, cases in (("-p", BAD), ("--expose", BAD_EXPOSE)):
        for value, message in cases.items():
            done = subprocess.run(["docker", "run", "--rm", flag, value, "busybox", "true"],
                                  capture_output=True, text=True, env=env, timeout=30)
            assert done.stderr.splitlines()[0] == f"docker: {message}", value


def test_json_shapes_both_ways_and_publish_all() -> None:
    raw = {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": None}
    got = ports.bindings_from_json(raw)
    assert got == [PortBinding("tcp", 80, "", "8080"), PortBinding("udp", 53)]
    assert ports.bindings_to_json(got) == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                           "53/udp": [{"HostIp": "", "HostPort": ""}]}
    exposed: ports.ExposedPorts = {"80/tcp": {}, "443/tcp": {}, "53/udp": {}}
    assert ports.effective_bindings(exposed, {"80/tcp": [{"HostPort": "8080"}]}, publish_all=True) == [
        PortBinding("tcp", 80, "", "8080"), PortBinding("udp", 53), PortBinding("tcp", 443)]
    assert ports.effective_bindings(exposed, None, publish_all=False) == []
    bad: dict[str, Any]
    for bad in ({"80/xyz": []}, {"80-81/tcp": []}, {"80/tcp": ["x"]}, {"80/tcp": [{"HostIp": "a.b"}]},
                {"80/tcp": [{"HostPort": "x"}]}):
        with pytest.raises(InvalidArgument):
            ports.bindings_from_json(bad)


def test_network_ports_and_port_lines() -> None:
    shown = ports.network_ports({"80/tcp": {}, "53/udp": {}, "22/tcp": {}},
                                [Published("tcp", 80, "", 32768), Published("tcp", 80, "::1", 8080),
                                 Published("tcp", 22, "127.0.0.1", 2222)], ipv6=True)
    assert shown == {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2222"}], "53/udp": None,
                     "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}, {"HostIp": "::", "HostPort": "32768"},
                                {"HostIp": "::1", "HostPort": "8080"}]}
    assert ports.port_lines(shown) == ["22/tcp -> 127.0.0.1:2222", "80/tcp -> 0.0.0.0:32768",
                                       "80/tcp -> [::]:32768", "80/tcp -> [::1]:8080"]
    assert ports.port_lines(shown, "22") == ["127.0.0.1:2222"]
    with pytest.raises(InvalidArgument, match="No public port '53/udp' published"):
        ports.port_lines(shown, "53/udp")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_reserved_port_is_held_until_closed() -> None:
    alloc = PortAllocator(ipv6=False)
    port = _free_port()
    r = alloc.reserve("tcp", "127.0.0.1", str(port))
    with pytest.raises(PortAllocated, match=f"^Bind for 0.0.0.0:{port} failed: port is already allocated$"):
        alloc.reserve("tcp", "", str(port))
    # the kernel holds it too, for every other process, SO_REUSEADDR or not
    for reuse in (0, 1):
        with socket.socket() as other, pytest.raises(OSError):
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, reuse)
            other.bind(("127.0.0.1", port))
    udp = alloc.reserve("udp", "127.0.0.1", str(port))  # another protocol, another port
    r.close()
    udp.close()
    assert alloc.held() == []
    alloc.reserve("tcp", "127.0.0.1", str(port)).close()


def test_a_port_taken_by_another_process_is_dockers_error() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(PortAllocated) as e:
            PortAllocator(ipv6=False).reserve("tcp", "127.0.0.1", str(port))
        assert str(e.value) == (f"Error starting userland proxy: listen tcp4 127.0.0.1:{port}: "
                                "bind: address already in use")


def test_ephemeral_ports_go_round_and_skip_what_is_taken() -> None:
    base = _free_port()
    low, high = base, base + 3
    with socket.socket() as other:
        try:
            other.bind(("127.0.0.1", low + 1))
        except OSError:
            pytest.skip("the port after a free one is taken")
        alloc = PortAllocator((low, high), ipv6=False)
        got = []
        try:
            for _ in range(3):
                got.append(alloc.reserve("tcp", "127.0.0.1"))
            # low, then low+1 is another's (skipped), low+2, low+3
            assert [r.host_port for r in got] == [low, low + 2, low + 3]
            with pytest.raises(PortAllocated, match="all ports are allocated"):
                alloc.reserve("tcp", "127.0.0.1")
            got.pop(0).close()
            got.append(alloc.reserve("tcp", "127.0.0.1"))
            assert got[-1].host_port == low  # round and round
        finally:
            for r in got:
                r.close()
        # a host range: the first free port of it
        ranged = PortAllocator(ipv6=False).reserve("tcp", "127.0.0.1", f"{low + 1}-{low + 2}")
        assert ranged.host_port == low + 2
        ranged.close()


class _CreateCatcher(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Just enough of an Engine API for the docker CLI to send its create request, which
    is kept (`bodies`) and answered with an error."""

    daemon_threads = True
    bodies: list[dict[str, Any]]


class _CatcherHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _CreateCatcher

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass

    def _answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        for key, value in (("API-Version", "1.41"), ("OSType", "linux"),
                           ("Content-Type", "application/json"), ("Content-Length", str(len(body)))):
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._answer(200)

    def do_GET(self) -> None:
        self._answer(200, b"OK" if self.path.endswith("/_ping") else b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if "/containers/create" in self.path:
            self.server.bodies.append(json.loads(body))
        self._answer(500, b'{"message": "caught"}')


@contextlib.contextmanager
def docker_create_bodies(tmp_path: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """`sent(*flags)`: the body the docker CLI posts for ``docker create FLAGS busybox``,
    caught by a fake Engine API on a socket in `tmp_path` (served while the block runs)."""
    sock = str(tmp_path / "api.sock")
    server = _CreateCatcher(sock, _CatcherHandler)
    server.bodies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(tmp_path))

    def sent(*flags: str) -> dict[str, Any]:
        subprocess.run(["docker", "create", *flags, "busybox"], capture_output=True, env=env,
                       timeout=30)
        return server.bodies.pop()
    try:
        yield sent
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_forms_are_the_docker_clis(tmp_path: Path) -> None:
    """What the docker CLI sends for each `-p` form is what parse_publish makes of it."""
    with docker_create_bodies(tmp_path) as sent:
        for spec, (exposed, bindings) in GOOD.items():
            body = sent("-p", spec)
            assert (body["ExposedPorts"], body["HostConfig"]["PortBindings"]) == (exposed, bindings), spec
        body = sent("--expose", "7000-7001/udp", "-p", "80")
        assert body["ExposedPorts"] == ports.parse_expose(["7000-7001/udp", "80"])
