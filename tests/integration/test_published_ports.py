"""Published ports and the firewall through skiffd, for real: a TCP port answers on
127.0.0.1 (the kernel's DNAT) and on ::1 (the userland proxy), UDP too, a port range, -P
with the image's EXPOSE, Docker's refusal of a taken port with nothing left behind, an
internal network that publishes nothing, two user networks isolated by the firewall (a
published port still reachable from the other, and by hairpin from its own container),
outbound NAT seen from an "outside" namespace the test joins to the host, a skiffd killed
with -9 whose ports keep answering while it is away and after its restart, the docker
CLI and docker-py, and at the end no nft table, bridge or veth left.

busybox's ``httpd`` serves TCP; this busybox has no ``nc -u``, so the UDP server is the
host's Python, copied (the runtime refuses to run its own executable in a container) and
run with the host's /usr bound read-only. Traffic stays between the host's loopback and
namespaces the tests make."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from fixtures_daemon import (Skiffd, docker_py_client, module_daemon, remove_all, run_client,
                             start_skiffd, stop_skiffd, subnet_for)
from netlab import TCP_WHOAMI, Lab
from skiff.net import firewall
from test_networks import host_links, links_left, network, remove_networks, skiff

pytestmark = [pytest.mark.root, pytest.mark.netns]
DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")
# busybox's wget -T crashes here (SIGSEGV): timeout bounds it instead
FETCH = ("timeout", "5", "wget", "-q", "-O-")
PATIENCE = 15.0  # seconds a server in a fresh container may take to listen
UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 81))
while True:
    data, peer = s.recvfrom(65536)
    s.sendto(peer[0].encode() + b" " + data, peer)
"""


def httpd(word: str, *ports: int) -> list[str]:
    """busybox sh serving `word` over HTTP on `ports` (80 by default)."""
    ports = ports or (80,)
    serve = " & ".join(f"httpd -f -p {p} -h /w" for p in ports)
    return ["sh", "-c", f"mkdir -p /w; echo {word} > /w/index.html; {serve} & wait"]


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_ports(count: int = 1, kind: int = socket.SOCK_STREAM) -> int:
    """The first of `count` consecutive ports free for `kind` on every address now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("0.0.0.0", 0))
            base = s.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            for p in range(base, base + count):
                with socket.socket(socket.AF_INET, kind) as t:
                    t.bind(("0.0.0.0", p))
            return base
        except OSError:
            continue
    raise AssertionError("no free ports")


def http_once(host: str, port: int, timeout: float = 3) -> str | None:
    """The body of GET / at host:port, or None when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as c:
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := c.recv(65536):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return body.decode().strip() if head.startswith(b"HTTP/1.") and b" 200 " in head else None


def http_get(host: str, port: int) -> str | None:
    """GET / at host:port, tried again until the container's server listens."""
    deadline = time.monotonic() + PATIENCE
    while True:
        body = http_once(host, port)
        if body is not None or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def udp_ask(host: str, port: int, text: bytes) -> bytes | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + PATIENCE
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        while time.monotonic() < deadline:
            s.sendto(text, (host, port))
            try:
                return s.recvfrom(65536)[0]
            except OSError:
                continue
    return None


def table_of(d: Skiffd) -> str:
    return firewall.table_for_run(str(d.run))


def table_text(d: Skiffd) -> str:
    done = subprocess.run(["nft", "list", "table", "ip", table_of(d)], capture_output=True,
                          text=True)
    return done.stdout if done.returncode == 0 else ""


def inspect(d: Skiffd, ref: str) -> dict:
    return json.loads(skiff(d, "inspect", ref).stdout)[0]


def ours(links: set[str]) -> set[str]:
    """`links` but the default bridges of test daemons (``skt…``): other runs' come and go."""
    return {n for n in links if not n.startswith("skt")}


def netns_left(d: Skiffd) -> list[str]:
    folder = d.run / "netns"
    return os.listdir(folder) if folder.is_dir() else []


@pytest.fixture(scope="module")
def module_skiffd(tmp_root: Path) -> Iterator[Skiffd]:
    with module_daemon(tmp_root, "ports") as d:
        try:
            yield d
        finally:
            remove_all(d)
            remove_networks(d)
    # everything is removed when no longer used: the table went with the last bridge
    assert not firewall.exists(table_of(d))
    assert d.env["SKIFF_BRIDGE"] not in host_links()


@pytest.fixture
def daemon(module_skiffd: Skiffd) -> Iterator[Skiffd]:
    before = host_links()
    yield module_skiffd
    remove_all(module_skiffd)
    remove_networks(module_skiffd)
    # (``skt…`` are the default bridges of test daemons, other runs' included)
    left = links_left(ours(host_links() - before))
    assert not left, f"links left behind: {left}"


@pytest.fixture
def lab() -> Iterator[Lab]:
    made = Lab()
    yield made
    made.close()


def test_a_published_tcp_port_answers_on_loopback_and_on_ipv6(daemon: Skiffd) -> None:
    local, anywhere = free_ports(), free_ports()
    cid = skiff(daemon, "run", "-d", "-p", f"127.0.0.1:{local}:80", "-p", f"{anywhere}:80",
                "busybox", *httpd("hello")).stdout.strip()
    assert http_get("127.0.0.1", local) == "hello"  # the kernel's DNAT, in output
    assert http_get("127.0.0.1", anywhere) == "hello"
    ipv6 = has_ipv6_loopback()
    if ipv6:
        assert http_get("::1", anywhere) == "hello"  # the userland proxy
        assert http_once("::1", local) is None  # bound to 127.0.0.1 only
    assert f"dport {local} dnat to" in table_text(daemon)
    doc = inspect(daemon, cid)
    assert doc["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(local)},
                   {"HostIp": "", "HostPort": str(anywhere)}]}
    shown = [{"HostIp": "127.0.0.1", "HostPort": str(local)},
             {"HostIp": "0.0.0.0", "HostPort": str(anywhere)}]
    if ipv6:
        shown.append({"HostIp": "::", "HostPort": str(anywhere)})
    assert doc["NetworkSettings"]["Ports"] == {"80/tcp": shown}
    lines = skiff(daemon, "port", cid).stdout.splitlines()
    assert lines[:2] == [f"80/tcp -> 127.0.0.1:{local}", f"80/tcp -> 0.0.0.0:{anywhere}"]
    assert skiff(daemon, "port", cid, "80").stdout.splitlines()[0] == f"127.0.0.1:{local}"
    ps = skiff(daemon, "ps", "--filter", f"id={cid}", "--format", "{{.Ports}}").stdout
    assert f"127.0.0.1:{local}->80/tcp" in ps and f"0.0.0.0:{anywhere}->80/tcp" in ps
    for wanted, found in ((f"{local}", [cid]), (f"{local}/udp", []), (f"{anywhere}/tcp", [cid]),
                          ("80", [])):  # moby's publish filter: the host ports
        assert skiff(daemon, "ps", "-q", "--no-trunc", "--filter", f"publish={wanted}") \
            .stdout.split() == found, wanted
    status, listed = daemon.json("GET", "/containers/json?filters="
                                 + quote(json.dumps({"id": [cid]})))
    assert status == 200
    assert {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": local, "Type": "tcp"} in \
        listed[0]["Ports"]
    # the run's end: the ports go, their rules with them, and they can be had again
    skiff(daemon, "stop", "-t", "0", cid)
    assert f"dport {local} " not in table_text(daemon)
    assert http_once("127.0.0.1", local, timeout=1) is None
    assert inspect(daemon, cid)["NetworkSettings"]["Ports"] == {}
    with socket.create_server(("0.0.0.0", anywhere)):
        pass
    skiff(daemon, "start", cid)  # published again at the next start
    assert http_get("127.0.0.1", local) == "hello"


def test_udp_and_a_port_range(daemon: Skiffd, tmp_path: Path) -> None:
    python = tmp_path / "py"
    python.mkdir()
    shutil.copy(os.path.realpath(sys.executable), python / "python")
    udp = free_ports(kind=socket.SOCK_DGRAM)
    skiff(daemon, "run", "-d", "-p", f"{udp}:81/udp", "-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro",
          "-v", "/lib64:/lib64:ro", "-v", f"{python}:/py:ro", "busybox", "/py/python", "-S",
          "-c", UDP_ECHO)
    answer = udp_ask("127.0.0.1", udp, b"ping")
    assert answer is not None and answer.endswith(b" ping")
    if has_ipv6_loopback():
        answer = udp_ask("::1", udp, b"pong")  # the proxy relays datagrams too
        assert answer is not None and answer.endswith(b" pong")
    base = free_ports(3)
    cid = skiff(daemon, "run", "-d", "-p", f"127.0.0.1:{base}-{base + 2}:80-82", "busybox",
                *httpd("ranged", 80, 81, 82)).stdout.strip()
    for i in range(3):
        assert http_get("127.0.0.1", base + i) == "ranged"
    assert skiff(daemon, "port", cid).stdout.splitlines() == [
        f"{80 + i}/tcp -> 127.0.0.1:{base + i}" for i in range(3)]


def test_publish_all_takes_the_images_expose_on_ephemeral_ports(daemon: Skiffd) -> None:
    base = skiff(daemon, "create", "busybox", "true").stdout.strip()
    image = f"skiff-ports-{uuid.uuid4().hex[:8]}"
    skiff(daemon, "commit", "--change", "EXPOSE 80", base, image)
    try:
        cid = skiff(daemon, "run", "-d", "-P", "--expose", "90", image,
                    *httpd("exposed", 80, 90)).stdout.strip()
        lines = skiff(daemon, "port", cid).stdout.splitlines()
        got = {line.split(" -> ")[0]: int(line.rsplit(":", 1)[1]) for line in lines
               if "0.0.0.0:" in line}
        assert set(got) == {"80/tcp", "90/tcp"}
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range")
                     .read_text().split())
        assert all(low <= p <= high for p in got.values())
        assert http_get("127.0.0.1", got["80/tcp"]) == "exposed"
        assert http_get("127.0.0.1", got["90/tcp"]) == "exposed"
    finally:
        remove_all(daemon)
        skiff(daemon, "rmi", image)


def test_a_taken_port_is_refused_and_leaves_nothing(daemon: Skiffd) -> None:
    port = free_ports()
    with socket.create_server(("127.0.0.1", port)):  # another program holds it
        done = skiff(daemon, "run", "-d", "--name", "taken1", "-p", f"127.0.0.1:{port}:80",
                     "busybox", "sleep", "60", check=False)
    assert done.returncode == 125
    assert (f"driver failed programming external connectivity on endpoint taken1 "
            in done.stderr)
    assert f"listen tcp4 127.0.0.1:{port}: bind: address already in use" in done.stderr
    first = skiff(daemon, "run", "-d", "-p", f"{port}:80", "busybox", *httpd("first"))
    assert http_get("127.0.0.1", port) == "first"
    links, rules = host_links(), table_text(daemon)
    status, _, body = daemon.request(
        "POST", "/containers/create?name=taken2",
        json.dumps({"Image": "busybox", "Cmd": ["sleep", "60"],
                    "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": str(port)}]}}})
        .encode())
    assert status == 201, body
    status, _, body = daemon.request("POST", "/containers/taken2/start")
    assert status == 500, body
    message = json.loads(body)["message"]
    endpoint = message.split("(", 1)[1].split(")", 1)[0]
    assert len(endpoint) == 64
    assert message == (f"driver failed programming external connectivity on endpoint taken2 "
                       f"({endpoint}): Bind for 0.0.0.0:{port} failed: port is already "
                       f"allocated")
    # nothing made: no veth, no namespace, no rule, no address held; the first still serves
    assert links_left(ours(host_links() - links)) == set()
    for name in ("taken1", "taken2"):
        doc = inspect(daemon, name)
        assert doc["State"]["Running"] is False
        assert doc["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
    running = {c["Id"] for c in daemon.json("GET", "/containers/json")[1]}
    assert set(netns_left(daemon)) <= running
    assert table_text(daemon) == rules
    assert http_get("127.0.0.1", port) == "first"
    assert first.returncode == 0


def test_an_internal_network_publishes_nothing(daemon: Skiffd) -> None:
    name, _ = network(daemon, "--internal")
    port = free_ports()
    cid = skiff(daemon, "run", "-d", "--network", name, "-p", f"127.0.0.1:{port}:80",
                "busybox", *httpd("inside")).stdout.strip()
    assert "default" not in skiff(daemon, "exec", cid, "ip", "route").stdout
    assert skiff(daemon, "exec", cid, "wget", "-q", "-O-", "http://127.0.0.1/").stdout.strip() \
        == "inside"  # it serves, but no one outside reaches it
    assert http_once("127.0.0.1", port, timeout=1) is None
    assert f"dport {port} " not in table_text(daemon)
    assert inspect(daemon, cid)["NetworkSettings"]["Ports"] == {"80/tcp": None}


def serving(d: Skiffd, net: str, word: str) -> tuple[str, int]:
    """A container on `net` serving `word` on a free host port of every address, answering."""
    port = free_ports()
    cid = skiff(d, "run", "-d", "--network", net, "-p", f"{port}:80", "busybox",
                *httpd(word)).stdout.strip()
    assert http_get("127.0.0.1", port) == word
    return cid, port


def test_two_networks_are_isolated_but_published_ports_reach_across(daemon: Skiffd) -> None:
    one, _ = network(daemon)
    two, _ = network(daemon)
    server, port = serving(daemon, two, "two")
    settings = inspect(daemon, server)["NetworkSettings"]["Networks"][two]
    neighbour = skiff(daemon, "run", "-d", "--network", two, "busybox", "sleep", "60").stdout.strip()
    stranger = skiff(daemon, "run", "-d", "--network", one, "busybox", "sleep", "60").stdout.strip()
    url = f"http://{settings['IPAddress']}/"
    assert skiff(daemon, "exec", neighbour, *FETCH, url).stdout.strip() \
        == "two"
    cut = skiff(daemon, "exec", stranger, *FETCH, url, check=False)
    assert cut.returncode != 0  # the firewall keeps the networks apart
    gateway_one = inspect(daemon, stranger)["NetworkSettings"]["Networks"][one]["Gateway"]
    published = f"http://{gateway_one}:{port}/"  # a host address: DNAT'd to the server
    assert skiff(daemon, "exec", stranger, *FETCH, published) \
        .stdout.strip() == "two"
    hairpin = f"http://{settings['Gateway']}:{port}/"  # the server to its own port
    assert skiff(daemon, "exec", server, *FETCH, hairpin) \
        .stdout.strip() == "two"


def test_outbound_traffic_is_masqueraded(daemon: Skiffd, lab: Lab) -> None:
    outside = lab.netns("out")
    subnet = subnet_for(f"outside-{lab.tag}").rsplit(".", 1)[0]
    host_end, far_end = lab.ifname("h"), lab.ifname("o")
    subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", far_end,
                    "netns", outside], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{subnet}.1/24", "dev", host_end], check=True)
        subprocess.run(["ip", "link", "set", host_end, "up"], check=True)
        lab.ip(outside, "addr", "add", f"{subnet}.2/24", "dev", far_end)
        lab.ip(outside, "link", "set", far_end, "up")
        lab.start(outside, TCP_WHOAMI, "7000")
        name, _ = network(daemon)
        for net in ("bridge", name):
            seen = skiff(daemon, "run", "--rm", "--network", net, "busybox", "sh", "-c",
                         f"ping -c1 -W3 {subnet}.2 >/dev/null && "
                         f"echo | nc -w 3 {subnet}.2 7000 | head -n1").stdout.strip()
            assert seen == f"{subnet}.1", net  # the host's address, not the container's
    finally:
        subprocess.run(["ip", "link", "del", host_end], check=False)


def test_ports_answer_while_skiffd_is_away_and_after_its_restart(tmp_root: Path) -> None:
    workdir = tmp_root / f"skiffd-portrestart-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    d = start_skiffd(workdir)
    before = host_links()
    local, anywhere = free_ports(), free_ports()
    try:
        cid = skiff(d, "run", "-d", "-p", f"127.0.0.1:{local}:80", "-p", f"{anywhere}:80",
                    "busybox", *httpd("alive")).stdout.strip()
        assert http_get("127.0.0.1", local) == "alive"
        assert d.process is not None
        d.process.send_signal(signal.SIGKILL)
        d.process.wait()
        assert http_get("127.0.0.1", local) == "alive"  # the table stayed: DNAT works on
        assert http_get("127.0.0.1", anywhere) == "alive"
        d = start_skiffd(workdir)
        assert http_get("127.0.0.1", local) == "alive"
        if has_ipv6_loopback():
            assert http_get("::1", anywhere) == "alive"  # proxied again
        assert skiff(d, "port", cid).stdout.splitlines()[:2] == [
            f"80/tcp -> 127.0.0.1:{local}", f"80/tcp -> 0.0.0.0:{anywhere}"]
        again = skiff(d, "run", "-d", "-p", f"{anywhere}:80", "busybox", "true", check=False)
        assert "port is already allocated" in again.stderr  # held again, by its owner
        skiff(d, "rm", "-f", cid)
        assert http_once("127.0.0.1", local, timeout=1) is None
    finally:
        try:
            remove_all(d)
        finally:
            stop_skiffd(d, check=False)
            shutil.rmtree(workdir, ignore_errors=True)
    assert not firewall.exists(table_of(d))
    assert not links_left(ours(host_links() - before))
    assert d.env["SKIFF_BRIDGE"] not in host_links()


@pytest.mark.skipif(DOCKER is None, reason="no docker CLI")
def test_the_docker_cli_and_docker_py_publish(daemon: Skiffd) -> None:
    assert DOCKER is not None
    port = free_ports()
    cid = run_client(daemon, [DOCKER, "run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox",
                              *httpd("docker")]).stdout.strip()
    assert http_get("127.0.0.1", port) == "docker"
    assert run_client(daemon, [DOCKER, "port", cid]).stdout.splitlines() == [
        f"80/tcp -> 127.0.0.1:{port}"]
    ps = run_client(daemon, [DOCKER, "ps", "--filter", f"id={cid}", "--format",
                             "{{.Ports}}"]).stdout.strip()
    assert ps == f"127.0.0.1:{port}->80/tcp"
    other = free_ports()
    with docker_py_client(daemon.url) as client:
        c = client.containers.run("busybox", httpd("docker-py"), detach=True,
                                  ports={"80/tcp": other})
        assert http_get("127.0.0.1", other) == "docker-py"
        c.reload()
        assert {"HostIp": "0.0.0.0", "HostPort": str(other)} in c.ports["80/tcp"]
        c.remove(force=True)


def test_ports_follow_the_gateway_when_its_network_is_disconnected(daemon: Skiffd) -> None:
    one, _ = network(daemon)
    two, _ = network(daemon)
    cid, port = serving(daemon, one, "moving")
    skiff(daemon, "network", "connect", two, cid)
    skiff(daemon, "network", "disconnect", one, cid)
    address = inspect(daemon, cid)["NetworkSettings"]["Networks"][two]["IPAddress"]
    assert f"dnat to {address}:80" in table_text(daemon)  # on the new gateway endpoint
    assert http_get("127.0.0.1", port) == "moving"
    assert skiff(daemon, "port", cid).stdout.splitlines()[0] == f"80/tcp -> 0.0.0.0:{port}"
    skiff(daemon, "network", "disconnect", two, cid)  # no network left: nothing published
    assert f"dport {port} " not in table_text(daemon)
    assert http_once("127.0.0.1", port, timeout=1) is None
