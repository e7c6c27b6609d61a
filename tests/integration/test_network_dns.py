"""Names on user-defined networks, through skiffd and its CLI (and the docker CLI): the
embedded DNS server wired into containers' lives.

Containers on a user network find each other by name, network alias (``--network-alias``,
``network connect --alias``) and hostname, with busybox's ``nslookup`` and ``ping``; one
connected later is found, one disconnected is not; names of another network and of the
default bridge are not; other names go to skiffd's ``--dns-upstream`` (a fake server on
the host's 127.0.0.1) or to a container's own ``--dns`` (another fake, on its network's
gateway, port 53; and one on the loopback of the container's own namespace, where Docker
asks ``--dns 127.0.0.1``), and nowhere from an ``--internal`` network; a ``container:<id>``
container asks its host container's server; a container binds port 53 (UDP and TCP on
the wildcard address) itself while names still resolve through 127.0.0.11:53, DNAT'd in
its namespace to the server's ports, with no rule on the host; after skiffd is killed with
SIGKILL, or stopped, and started again, names resolve again, the server back on the ports
the namespace's rules name (a client that kept its socket is answered); the server's
sockets close when the container stops; a bad ``--dns-upstream`` stops skiffd before it
makes anything. Every query stays inside the machine: the fakes answer
everything they are asked, and the test daemons forward nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from fixtures_daemon import (Skiffd, module_daemon, remove_all, remove_networks, run_client,
                             start_skiffd, stop_skiffd, subnet_for)
from fixtures_dns import FakeUpstream, dnat, redirect_of
from skiff.net.dns import Ports

SKIFF = str(Path(sys.executable).parent / "skiff")
pytestmark = [pytest.mark.root, pytest.mark.netns]
EMBEDDED = "0B00007F:"  # 127.0.0.11 (any port) as /proc/net/{udp,tcp} write it


def skiff(d: Skiffd, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_client(d, [SKIFF, *args], check=check)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """skiffd's upstream: knows ``outside.test``."""
    fake = FakeUpstream({"outside.test": ["192.0.2.1"]})
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def module_skiffd(tmp_root: Path, upstream: FakeUpstream) -> Iterator[Skiffd]:
    with module_daemon(tmp_root, "netdns", "--dns-upstream",
                       f"127.0.0.1:{upstream.port}") as d:
        try:
            yield d
        finally:
            remove_all(d)
            remove_networks(d)


@pytest.fixture
def daemon(module_skiffd: Skiffd, upstream: FakeUpstream) -> Iterator[Skiffd]:
    upstream.asked.clear()
    yield module_skiffd
    remove_all(module_skiffd)
    remove_networks(module_skiffd)


def network(d: Skiffd, *flags: str) -> str:
    name = unique("skdns")
    skiff(d, "network", "create", "--subnet", subnet_for(name), *flags, name)
    return name


def run(d: Skiffd, *args: str) -> str:
    """A container started with `args` before the image, running ``sleep 120``: its ID."""
    return skiff(d, "run", "-d", *args, "busybox", "sleep", "120").stdout.strip()


def ip_of(d: Skiffd, ref: str, net: str) -> str:
    import json

    doc = json.loads(skiff(d, "inspect", ref).stdout)[0]
    return str(doc["NetworkSettings"]["Networks"][net]["IPAddress"])


def gateway_of(d: Skiffd, net: str) -> str:
    import json

    doc = json.loads(skiff(d, "network", "inspect", net).stdout)[0]
    return str(doc["IPAM"]["Config"][0]["Gateway"])


def lookup(d: Skiffd, ref: str, name: str) -> list[str] | None:
    """The IPv4 addresses busybox's nslookup finds for `name` inside `ref` (through the
    resolv.conf skiff wrote), or None when it finds none."""
    out = skiff(d, "exec", ref, "nslookup", "-type=a", name, check=False)
    if out.returncode != 0:
        assert "can't find" in out.stdout + out.stderr, out
        return None
    answer = out.stdout.split("Non-authoritative answer:", 1)[-1]
    return re.findall(r"^Address:\s*(\d+\.\d+\.\d+\.\d+)$", answer, re.M) or None


def listening_on(netns: str, address: str,
                 protos: tuple[str, ...] = ("udp", "tcp")) -> dict[str, str]:
    """The socket inodes bound to `address` (/proc's hex ``ADDR:PORT``, or its prefix) in
    UDP or listening there in TCP inside the network namespace at `netns`, as its own
    /proc/net shows them: inode → ``proto:port``."""
    found = {}
    for proto in protos:
        text = subprocess.run(["nsenter", f"--net={netns}", "cat", f"/proc/net/{proto}"],
                              capture_output=True, text=True, check=True).stdout
        for line in text.splitlines()[1:]:
            f = line.split()
            if f[1].startswith(address) and (proto.startswith("udp") or f[3] == "0A"):
                found[f[9]] = f"{proto}:{int(f[1].split(':')[1], 16)}"
    return found


def listeners(netns: str) -> set[str]:
    """The inodes of the embedded server's sockets in the namespace at `netns`."""
    return set(listening_on(netns, EMBEDDED))


def served_ports(netns: str) -> Ports:
    """The ports the embedded server listens on in the namespace at `netns`."""
    ports = dict(p.split(":") for p in listening_on(netns, EMBEDDED).values())
    return Ports(int(ports["udp"]), int(ports["tcp"]))


def sockets_of(pid: int) -> set[str]:
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            out.add(target[len("socket:["):-1])
    return out


def eventually(check: Callable[[], bool], patience: float = 10.0) -> bool:
    deadline = time.monotonic() + patience
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_names_aliases_and_hostnames_resolve(daemon: Skiffd, upstream: FakeUpstream) -> None:
    net = network(daemon)
    a_name, b_name = unique("a"), unique("b")
    a = run(daemon, "--name", a_name, "--network", net, "--network-alias", "alfa",
            "--hostname", "ahost")
    b = run(daemon, "--name", b_name, "--network", net)
    ip_a, ip_b = ip_of(daemon, a, net), ip_of(daemon, b, net)
    for name in (a_name, "alfa", "ahost", a[:12], f"{a_name}.{net}", a_name.upper()):
        assert lookup(daemon, b, name) == [ip_a], name
    assert lookup(daemon, a, b_name) == [ip_b]
    ping = skiff(daemon, "exec", b, "ping", "-c1", "-W2", a_name).stdout
    assert f"PING {a_name} ({ip_a})" in ping and "1 packets received" in ping
    skiff(daemon, "exec", a, "ping", "-c1", "-W2", "alfa")
    resolv = skiff(daemon, "exec", a, "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.11" in resolv and "ndots:0" in resolv
    assert upstream.asked == []  # every one of them answered by skiffd itself


def test_a_container_binds_53_itself_and_names_still_resolve(daemon: Skiffd) -> None:
    from skiff.kernel.netns_thread import in_netns

    net = network(daemon)
    peer_name = unique("peer")
    peer = run(daemon, "--name", peer_name, "--network", net)
    # a DNS server of the container's own on 0.0.0.0:53: TCP by its process (busybox nc
    # listening), UDP held from its namespace by the test (busybox has no UDP listener)
    own = skiff(daemon, "run", "-d", "--network", net, "busybox", "nc", "-l", "-p", "53"
                ).stdout.strip()
    netns = str(daemon.run / "netns" / own)

    def nc_listens() -> bool:  # on [::]:53; a failed bind ends the container and its netns
        try:
            found = listening_on(netns, "00000000", ("tcp", "tcp6")).values()
        except subprocess.CalledProcessError:
            return False
        return bool({"tcp:53", "tcp6:53"} & set(found))
    assert eventually(nc_listens, patience=5), skiff(daemon, "logs", own, check=False)

    def bind_udp_53() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 53))
        return s

    held = in_netns(netns, bind_udp_53)
    try:
        ip_peer = ip_of(daemon, peer, net)
        assert lookup(daemon, own, peer_name) == [ip_peer]  # busybox's resolver, UDP
        q = dns.message.make_query(peer_name, "A")
        for ask in (dns.query.udp, dns.query.tcp):  # dnspython checks the answer's source
            r = in_netns(netns, lambda: ask(q, "127.0.0.11", timeout=5))
            assert [str(a) for rr in r.answer for a in rr] == [ip_peer]
        assert redirect_of(netns) == dnat(served_ports(netns))
        assert redirect_of(None) is None  # in the container's namespace, not the host's
    finally:
        held.close()


def test_connected_later_resolves_and_disconnected_does_not(daemon: Skiffd,
                                                            upstream: FakeUpstream) -> None:
    net, other = network(daemon), network(daemon)
    a = run(daemon, "--name", unique("a"), "--network", net)
    c_name = unique("c")
    c = run(daemon, "--name", c_name, "--network", other)
    assert lookup(daemon, a, c_name) is None  # another network's: forwarded, NXDOMAIN
    assert (c_name, "A", "udp") in upstream.asked
    skiff(daemon, "network", "connect", "--alias", "cee", net, c)
    ip_c = ip_of(daemon, c, net)
    assert lookup(daemon, a, c_name) == [ip_c]
    assert lookup(daemon, a, "cee") == [ip_c]
    skiff(daemon, "network", "disconnect", net, c)
    assert lookup(daemon, a, c_name) is None
    assert lookup(daemon, a, "cee") is None
    # the default bridge, then a user network, live: served from the connect on
    d = run(daemon, "--name", unique("d"))
    assert "127.0.0.11" not in skiff(daemon, "exec", d, "cat", "/etc/resolv.conf").stdout
    skiff(daemon, "network", "connect", net, d)
    assert "nameserver 127.0.0.11" in skiff(daemon, "exec", d, "cat",
                                             "/etc/resolv.conf").stdout
    assert lookup(daemon, d, "cee") is None
    assert lookup(daemon, d, a[:12]) == [ip_of(daemon, a, net)]
    skiff(daemon, "network", "disconnect", net, d)
    assert not listeners(str(daemon.run / "netns" / d))  # its last user network gone


def test_a_container_in_anothers_namespace_asks_its_server(daemon: Skiffd) -> None:
    net = network(daemon)
    a_name, b_name = unique("a"), unique("b")
    a = run(daemon, "--name", a_name, "--network", net)
    run(daemon, "--name", b_name, "--network", net)
    joined = run(daemon, "--network", f"container:{a}")
    assert lookup(daemon, joined, b_name) == [ip_of(daemon, b_name, net)]
    assert not (daemon.run / "netns" / joined).exists()  # a's namespace, a's server
    assert len(listeners(str(daemon.run / "netns" / a))) == 2


def test_names_of_another_network_do_not_resolve(daemon: Skiffd) -> None:
    net, other = network(daemon), network(daemon)
    a = run(daemon, "--name", unique("a"), "--network", net)
    x_name = unique("x")
    run(daemon, "--name", x_name, "--network", other, "--network-alias", "xalias")
    assert lookup(daemon, a, x_name) is None
    assert lookup(daemon, a, "xalias") is None


def test_the_default_bridge_has_no_names(daemon: Skiffd) -> None:
    a_name = unique("a")
    run(daemon, "--name", a_name)
    b = run(daemon)
    resolv = skiff(daemon, "exec", b, "cat", "/etc/resolv.conf").stdout
    assert "127.0.0.11" not in resolv
    assert not listeners(str(daemon.run / "netns" / b))  # no server in its namespace
    # asked straight (nothing leaves the namespace): nobody answers there
    out = skiff(daemon, "exec", b, "nslookup", a_name, "127.0.0.11", check=False)
    assert out.returncode != 0


def test_other_names_go_to_skiffds_upstream(daemon: Skiffd, upstream: FakeUpstream) -> None:
    net = network(daemon)
    a = run(daemon, "--network", net)
    assert lookup(daemon, a, "outside.test") == ["192.0.2.1"]
    assert ("outside.test", "A", "udp") in upstream.asked
    assert lookup(daemon, a, "nowhere.test") is None  # the upstream's NXDOMAIN


def test_a_containers_dns_is_used_for_forwarding(daemon: Skiffd,
                                                 upstream: FakeUpstream) -> None:
    # port 53, as --dns takes addresses only: on the network's gateway, the host's end of
    # its bridge, which both the host's namespace and the container's reach (Docker asks a
    # --dns server from the container's namespace, skiff from the host's)
    net = network(daemon)
    host = gateway_of(daemon, net)
    own = FakeUpstream({"only-mine.test": ["198.51.100.7"]}, host=host, port=53)
    try:
        a = run(daemon, "--network", net, "--dns", host)
        assert lookup(daemon, a, "only-mine.test") == ["198.51.100.7"]
        assert lookup(daemon, a, "outside.test") is None  # its own server's NXDOMAIN
        assert ("only-mine.test", "A", "udp") in own.asked
        assert upstream.asked == []  # skiffd's upstream is not asked for it
        resolv = skiff(daemon, "exec", a, "cat", "/etc/resolv.conf").stdout
        assert "nameserver 127.0.0.11" in resolv and host not in resolv
    finally:
        own.close()


def test_a_containers_dns_is_asked_from_its_namespace(daemon: Skiffd,
                                                      upstream: FakeUpstream) -> None:
    from skiff.kernel.netns_thread import in_netns

    net = network(daemon)
    a = run(daemon, "--network", net, "--dns", "127.0.0.1")  # its own loopback, as Docker's
    theirs = in_netns(str(daemon.run / "netns" / a),
                      lambda: FakeUpstream({"sidecar.test": ["198.51.100.8"]}, port=53))
    try:
        assert lookup(daemon, a, "sidecar.test") == ["198.51.100.8"]
        assert ("sidecar.test", "A", "udp") in theirs.asked and upstream.asked == []
    finally:
        theirs.close()


def test_an_internal_network_forwards_nothing(daemon: Skiffd, upstream: FakeUpstream) -> None:
    net = network(daemon, "--internal")
    a_name = unique("a")
    a = run(daemon, "--name", a_name, "--network", net)
    b = run(daemon, "--network", net)
    assert lookup(daemon, b, a_name) == [ip_of(daemon, a, net)]
    out = skiff(daemon, "exec", b, "nslookup", "outside.test", check=False)
    assert out.returncode != 0 and "SERVFAIL" in out.stdout
    assert upstream.asked == []
    # connected to a network with a way out, it forwards
    skiff(daemon, "network", "connect", network(daemon), b)
    assert lookup(daemon, b, "outside.test") == ["192.0.2.1"]


def test_the_servers_sockets_close_with_the_container(daemon: Skiffd) -> None:
    net = network(daemon)
    a = run(daemon, "--network", net)
    netns = str(daemon.run / "netns" / a)
    held = listeners(netns)
    assert len(held) == 2  # UDP and TCP
    assert held <= sockets_of(daemon.pid)  # skiffd's
    skiff(daemon, "stop", "-t", "0", a)
    # what a run leaves is tidied on a thread of skiffd's after the stop returns
    assert eventually(lambda: not os.path.exists(netns))
    assert not held & sockets_of(daemon.pid)
    # started again: served again, by new sockets
    skiff(daemon, "start", a)
    assert len(listeners(netns)) == 2
    assert lookup(daemon, a, a[:12]) == [ip_of(daemon, a, net)]


def test_names_resolve_again_after_skiffd_is_killed_or_stopped(tmp_root: Path) -> None:
    from skiff.kernel.netns_thread import in_netns

    workdir = tmp_root / f"skiffd-netdns-kill-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    d = start_skiffd(workdir)
    stack = contextlib.ExitStack()
    try:
        net = network(d)
        a_name = unique("a")
        a = run(d, "--name", a_name, "--network", net)
        b = run(d, "--network", net)
        ip_a = ip_of(d, a, net)
        assert lookup(d, b, a_name) == [ip_a]
        # a client in b that keeps its socket (its source port) across the restart
        client = in_netns(str(d.run / "netns" / b),
                          lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        stack.callback(client.close)
        client.settimeout(5)
        client.connect(("127.0.0.11", 53))
        query = dns.message.make_query(a_name, "A").to_wire()

        def asked_again() -> list[str]:
            client.send(query)
            return [str(x) for rr in dns.message.from_wire(client.recv(512)).answer
                    for x in rr]

        assert asked_again() == [ip_a]
        assert d.process is not None
        os.kill(d.pid, signal.SIGKILL)
        d.process.wait()
        assert not listeners(str(d.run / "netns" / b))  # gone with the process
        before = redirect_of(str(d.run / "netns" / b))
        d = start_skiffd(workdir)
        assert before is not None  # the rules stayed in its namespace
        assert lookup(d, b, a_name) == [ip_a]
        assert len(listeners(str(d.run / "netns" / a))) == 2
        # served again on the ports its rules name, so they and the client's NAT'd
        # connection hold: no rule to switch, no answer lost to a stale conntrack entry
        assert redirect_of(str(d.run / "netns" / b)) == before
        assert before == dnat(served_ports(str(d.run / "netns" / b)))
        assert asked_again() == [ip_a]
        stop_skiffd(d)  # a clean stop closes them; the next start serves them again
        assert not listeners(str(d.run / "netns" / a))
        d = start_skiffd(workdir)
        assert lookup(d, a, b[:12]) == [ip_of(d, b, net)]
    finally:
        stack.close()
        try:
            # a failure after the kill or the stop leaves containers running without a
            # skiffd (they outlive it): one started again on the folder removes them
            if d.process is None or d.process.poll() is not None:
                d = start_skiffd(workdir)
            try:
                remove_all(d)
                remove_networks(d)
            finally:
                stop_skiffd(d)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def test_a_bad_upstream_stops_skiffd_with_a_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, SKIFF_ROOT=str(tmp_path / "root"), SKIFF_RUN=str(tmp_path / "run"))
    skiffd = str(Path(sys.executable).parent / "skiffd")
    for bad in ("dns.example", "10.0.0.2:99999"):
        p = subprocess.run([skiffd, "--dns-upstream", bad], env=env, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 1 and f"bad DNS server '{bad}'" in p.stderr, p
        assert not (tmp_path / "root").exists() and not (tmp_path / "run").exists()


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
def test_the_docker_cli_finds_a_container_by_name(daemon: Skiffd) -> None:
    def docker(*args: str) -> str:
        return run_client(daemon, ["docker", *args]).stdout

    net = unique("skdns")
    docker("network", "create", "--subnet", subnet_for(net), net)
    a_name = unique("a")
    docker("run", "-d", "--network", net, "--name", a_name, "busybox", "sleep", "120")
    out = docker("run", "--rm", "--network", net, "busybox", "ping", "-c1", "-W2", a_name)
    assert "1 packets received" in out
    out = docker("run", "--rm", "--network", net, "--network-alias", "me", "busybox",
                 "nslookup", "me")
    assert "Address: " in out.split("Non-authoritative answer:", 1)[-1]
