"""The embedded DNS server for real: network namespaces made here, the server listening in
them on 127.0.0.11 with 53 DNAT'd to its ports (or on 53 itself, with ``port=53``), and
clients asking 127.0.0.11:53 from inside (dnspython in a thread that joined the namespace,
and busybox's nslookup through nsenter), next to a DNS server of the namespace's own on
0.0.0.0:53. The DNAT's rules are read with ``nft`` in the namespace: made, kept for the
next server (which listens on their ports again, or switches them when one is taken),
deleted, refused. Names it does not know go to a fake upstream on the host's 127.0.0.1,
never to a real resolver."""

from __future__ import annotations

import errno
import random
import socket
import struct
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from fixtures_dns import FakeUpstream, dnat, redirect_of
from skiff.engine.netns import make_netns, release_netns
from skiff.errors import FirewallError, InvalidArgument, KernelError
from skiff.kernel.netns_thread import in_netns
from skiff.net import dns_redirect, firewall
from skiff.net.dns import DnsServer
from skiff.net.dns_upstream import Upstream

pytestmark = [pytest.mark.root, pytest.mark.netns]

T = TypeVar("T")
DNS = "127.0.0.11"


class Engine:
    """The engine's look-ups, faked: per container, its names and addresses."""

    def __init__(self) -> None:
        self.names: dict[str, dict[str, list[str]]] = {}
        self.addresses: dict[str, dict[str, str]] = {}

    def resolve(self, key: str, name: str) -> list[str]:
        return self.names.get(key, {}).get(name, [])

    def reverse(self, key: str, ip: str) -> str | None:
        return self.addresses.get(key, {}).get(ip)


@pytest.fixture
def netns_dir(tmp_root: Path) -> Iterator[Path]:
    d = tmp_root / f"dns-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    yield d
    for ns in d.iterdir():
        release_netns(str(ns))
    d.rmdir()


@pytest.fixture
def make_ns(netns_dir: Path) -> Callable[[str], str]:
    def make(name: str) -> str:
        path = str(netns_dir / name)
        make_netns(path)
        return path
    return make


@pytest.fixture
def engine() -> Engine:
    e = Engine()
    e.names["c1"] = {"web": ["10.0.0.2", "fd00::2"], "db": ["10.0.0.3"],
                     "many": [f"10.0.1.{i}" for i in range(1, 101)]}
    e.addresses["c1"] = {"10.0.0.2": "web"}
    e.names["c2"] = {"web": ["10.9.0.2"]}
    return e


@pytest.fixture
def server(engine: Engine, fake_upstream: FakeUpstream) -> Iterator[DnsServer]:
    with DnsServer(engine.resolve, engine.reverse, [Upstream("127.0.0.1", fake_upstream.port)],
                   timeout=1.0) as srv:
        yield srv


def inside(path: str, fn: Callable[[], T]) -> T:
    return in_netns(path, fn)


def ask(path: str, name: str, rdtype: str = "A", tcp: bool = False, timeout: float = 5,
        **kw: object) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    if tcp:
        return inside(path, lambda: dns.query.tcp(q, DNS, timeout=timeout))
    return inside(path, lambda: dns.query.udp(q, DNS, timeout=timeout))


def addresses(r: dns.message.Message) -> list[str]:
    return [str(x) for rrset in r.answer for x in rrset]


def test_names_resolve_per_container(server: DnsServer, make_ns: Callable[[str], str]):
    ns1, ns2 = make_ns("c1"), make_ns("c2")
    assert 53 not in server.add("c1", ns1)  # the kernel's ports: 53 reaches them by DNAT
    server.add("c2", ns2)
    assert server.keys() == ["c1", "c2"]
    r = ask(ns1, "WEB.")
    assert r.rcode() == dns.rcode.NOERROR and addresses(r) == ["10.0.0.2"]
    assert r.answer[0].ttl == 600
    assert addresses(ask(ns1, "web", "AAAA")) == ["fd00::2"]
    r = ask(ns1, "db", "AAAA")  # known, no IPv6: empty NOERROR, not forwarded
    assert r.rcode() == dns.rcode.NOERROR and r.answer == []
    assert addresses(ask(ns1, "2.0.0.10.in-addr.arpa", "PTR")) == ["web."]
    assert addresses(ask(ns2, "web")) == ["10.9.0.2"]  # each container its own view
    assert addresses(ask(ns1, "web", tcp=True)) == ["10.0.0.2"]


def test_unknown_names_go_to_the_upstream_from_the_host(server: DnsServer,
                                                        fake_upstream: FakeUpstream,
                                                        make_ns: Callable[[str], str]):
    ns = make_ns("c1")
    server.add("c1", ns)
    addresses(ask(ns, "web"))
    r = ask(ns, "outside.test")
    assert addresses(r) == ["192.0.2.1"]
    r = ask(ns, "nowhere.test")
    assert r.rcode() == dns.rcode.NXDOMAIN
    r = ask(ns, "outside.test", tcp=True)
    assert addresses(r) == ["192.0.2.1"]
    # the upstream listens on the host's loopback only: the queries came from the host
    assert fake_upstream.asked == [("outside.test", "A", "udp"), ("nowhere.test", "A", "udp"),
                                   ("outside.test", "A", "tcp")]


def test_a_containers_own_upstreams_or_none(server: DnsServer, fake_upstream: FakeUpstream,
                                            engine: Engine, make_ns: Callable[[str], str]):
    own = FakeUpstream({"outside.test": ["192.0.2.99"]})  # as `--dns` would name it
    try:
        ns1, ns2, ns3 = make_ns("c1"), make_ns("c2"), make_ns("c3")
        engine.names["c3"] = {"db": ["10.7.0.3"]}
        server.add("c1", ns1)
        server.add("c2", ns2, upstreams=[Upstream("127.0.0.1", own.port)])
        server.add("c3", ns3, upstreams=[])  # an internal network's: nothing goes out
        assert addresses(ask(ns1, "outside.test")) == ["192.0.2.1"]
        assert addresses(ask(ns2, "outside.test")) == ["192.0.2.99"]
        assert addresses(ask(ns2, "web")) == ["10.9.0.2"]  # its own names still its own
        assert ask(ns3, "outside.test").rcode() == dns.rcode.SERVFAIL
        assert addresses(ask(ns3, "db")) == ["10.7.0.3"]
        assert [a[0] for a in fake_upstream.asked] == ["outside.test"]  # c1's only
        assert [a[0] for a in own.asked] == ["outside.test"]  # c2's only
    finally:
        own.close()


def test_a_containers_own_upstreams_asked_from_its_namespace(server: DnsServer,
                                                             make_ns: Callable[[str], str]):
    ns1, ns2 = make_ns("c1"), make_ns("c2")
    # a resolver on the loopback of c1's namespace: reachable from there only
    theirs = inside(ns1, lambda: FakeUpstream({"inside.test": ["192.0.2.77"]}))
    try:
        own = [Upstream("127.0.0.1", theirs.port)]
        server.add("c1", ns1, upstreams=own, from_netns=True)
        server.add("c2", ns2, upstreams=own)  # the same address, asked from the host's
        assert addresses(ask(ns1, "inside.test")) == ["192.0.2.77"]
        assert addresses(ask(ns1, "inside.test", tcp=True)) == ["192.0.2.77"]
        assert ask(ns2, "inside.test").rcode() == dns.rcode.SERVFAIL  # nobody there
        assert [a[2] for a in theirs.asked] == ["udp", "tcp"]  # c1's two only
        server.remove("c1")  # with its namespace's sockets for forwards
        assert not listening(ns1)
    finally:
        theirs.close()


def test_big_answers_truncate_and_tcp_gets_them_all(server: DnsServer,
                                                    fake_upstream: FakeUpstream,
                                                    make_ns: Callable[[str], str]):
    ns = make_ns("c1")
    server.add("c1", ns)
    r = ask(ns, "many")
    assert r.flags & dns.flags.TC and 0 < len(addresses(r)) < 100
    assert addresses(ask(ns, "many", tcp=True)) == [f"10.0.1.{i}" for i in range(1, 101)]
    # forwarded: the upstream truncates, the server asks it again over TCP for an EDNS client
    fake_upstream.udp_limit = 512
    r = ask(ns, "big.test", use_edns=0, payload=4096)
    assert len(addresses(r)) == 60 and not r.flags & dns.flags.TC
    assert fake_upstream.asked[-2:] == [("big.test", "A", "udp"), ("big.test", "A", "tcp")]
    # and a client of 512 bytes gets TC, asks over TCP (dnspython's fallback), gets all
    q = dns.message.make_query("big.test", "A")
    r, used_tcp = inside(ns, lambda: dns.query.udp_with_fallback(q, DNS, timeout=5))
    assert used_tcp and len(addresses(r)) == 60


def test_no_upstream_answering_is_servfail(engine: Engine, make_ns: Callable[[str], str]):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        closed = Upstream("127.0.0.1", s.getsockname()[1])  # refused: nothing listens
    silent = FakeUpstream()  # says nothing to silent.test
    ns = make_ns("c1")
    try:
        for upstreams, name in (([closed], "outside.test"),
                                ([closed, Upstream("127.0.0.1", silent.port)], "silent.test")):
            with DnsServer(engine.resolve, engine.reverse, upstreams, timeout=0.3) as srv:
                srv.add("c1", ns)
                assert ask(ns, name).rcode() == dns.rcode.SERVFAIL
                assert ask(ns, name, tcp=True).rcode() == dns.rcode.SERVFAIL
                assert addresses(ask(ns, "web")) == ["10.0.0.2"]  # local names still answer
    finally:
        silent.close()


def test_past_max_forwards_is_servfail(engine: Engine, fake_upstream: FakeUpstream,
                                       make_ns: Callable[[str], str]):
    ns = make_ns("c1")
    with DnsServer(engine.resolve, engine.reverse, [Upstream("127.0.0.1", fake_upstream.port)],
                   timeout=2.0, max_forwards=1) as srv:
        srv.add("c1", ns)

        def two_at_once() -> list[tuple[int, int]]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(10)
                s.connect((DNS, 53))
                s.send(dns.message.make_query("silent.test", "A", id=1).to_wire())
                while ("silent.test", "A", "udp") not in fake_upstream.asked:
                    time.sleep(0.01)  # the one forward allowed is out, and stays out
                s.send(dns.message.make_query("outside.test", "A", id=2).to_wire())
                answers = [dns.message.from_wire(s.recv(512)) for _ in range(2)]
                return [(a.id, a.rcode()) for a in answers]
        # the second is refused at once, so its answer comes before the first's time-out
        assert inside(ns, two_at_once) == [(2, dns.rcode.SERVFAIL), (1, dns.rcode.SERVFAIL)]
        assert ("outside.test", "A", "udp") not in fake_upstream.asked
        assert addresses(ask(ns, "outside.test")) == ["192.0.2.1"]  # the slot is free again


def listening(path: str) -> list[str]:
    """The UDP sockets bound and the TCP sockets listening on 127.0.0.11 (any port) in the
    namespace (as its own /proc shows them; a closed connection's TIME_WAIT is not
    listening)."""
    def read() -> list[str]:
        found = []
        for proto in ("udp", "tcp"):
            for line in Path(f"/proc/thread-self/net/{proto}").read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if local.startswith("0B00007F:") and (proto == "udp" or state == "0A"):
                    found.append(proto)
        return found
    return inside(path, read)


def test_remove_closes_everything(server: DnsServer, fake_upstream: FakeUpstream,
                                  make_ns: Callable[[str], str]):
    ns = make_ns("c1")
    server.add("c1", ns)
    assert sorted(listening(ns)) == ["tcp", "udp"]

    def open_connection() -> socket.socket:
        return socket.create_connection((DNS, 53), timeout=5)

    def client_that_asked() -> socket.socket:
        conn = open_connection()
        dns.query.send_tcp(conn, dns.message.make_query("web", "A"))
        dns.query.receive_tcp(conn)
        return conn

    conn = inside(ns, client_that_asked)  # a TCP client that asked once, now idle

    def ask_the_silent_one() -> None:  # a forward in flight when the container goes
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(dns.message.make_query("silent.test", "A").to_wire(), (DNS, 53))
            dns.query.send_tcp(conn, dns.message.make_query("silent.test", "A"))

    inside(ns, ask_the_silent_one)
    while ("silent.test", "A", "udp") not in fake_upstream.asked:
        time.sleep(0.01)  # until the forward is out (and the upstream keeps quiet)
    try:
        server.remove("c1")
        while conn.recv(4096):  # what was answered before (the TCP query's SERVFAIL), then
            pass  # the end: closed by the server, not left to time out
    finally:
        conn.close()
    assert listening(ns) == []
    assert server.keys() == []

    def refused_udp() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.connect((DNS, 53))
            s.send(dns.message.make_query("web", "A").to_wire())
            try:
                s.recv(512)
            except OSError as e:
                return e.errno or 0
            return 0

    def refused_tcp() -> int:
        try:
            open_connection().close()
        except OSError as e:
            return e.errno or 0
        return 0

    assert inside(ns, refused_udp) == errno.ECONNREFUSED
    assert inside(ns, refused_tcp) == errno.ECONNREFUSED
    server.remove("c1")  # again: nothing to do
    server.add("c1", ns)  # and it can come back
    assert addresses(ask(ns, "web", tcp=True)) == ["10.0.0.2"]


def test_busybox_nslookup_from_inside(server: DnsServer, make_ns: Callable[[str], str]):
    ns = make_ns("c1")
    server.add("c1", ns)
    p = subprocess.run(["nsenter", f"--net={ns}", "busybox", "nslookup", "web", DNS],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "10.0.0.2" in p.stdout and "fd00::2" in p.stdout
    p = subprocess.run(["nsenter", f"--net={ns}", "busybox", "nslookup", "outside.test", DNS],
                       capture_output=True, text=True, timeout=30)
    assert "192.0.2.1" in p.stdout, p.stdout + p.stderr


def test_garbage_is_dropped_and_the_server_goes_on(server: DnsServer,
                                                   make_ns: Callable[[str], str]):
    ns = make_ns("c1")
    server.add("c1", ns)
    rng = random.Random(11)
    good = dns.message.make_query("web", "A").to_wire()

    def flood() -> list[bytes]:
        answers = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.05)
            s.connect((DNS, 53))
            for i in range(400):
                junk = bytearray(good if i % 2 else rng.randbytes(rng.randint(0, 40)))
                for _ in range(3):
                    if junk:
                        junk[rng.randrange(len(junk))] = rng.randrange(256)
                s.send(bytes(junk))
            while True:
                try:
                    answers.append(s.recv(65535))
                except (TimeoutError, ConnectionRefusedError):
                    break
        with socket.create_connection((DNS, 53), timeout=5) as t:
            # a frame that promises more than it sends, then goes: the server must not care
            t.sendall(struct.pack("!H", 300) + b"\x00" * 20)
        return answers

    answers = inside(ns, flood)
    for raw in answers:  # whatever came back is a well-formed message
        dns.message.from_wire(raw)
    assert addresses(ask(ns, "web")) == ["10.0.0.2"]
    assert addresses(ask(ns, "web", tcp=True)) == ["10.0.0.2"]


def test_many_containers_at_once(server: DnsServer, engine: Engine,
                                 make_ns: Callable[[str], str]):
    paths = {}
    for i in range(8):
        key = f"k{i}"
        engine.names[key] = {"peer": [f"10.{i}.0.2"]}
        paths[key] = make_ns(key)
        server.add(key, paths[key])

    def burst(i: int) -> list[str]:
        def queries() -> list[str]:
            got = []
            for _ in range(25):
                got += addresses(dns.query.udp(dns.message.make_query("peer", "A"), DNS,
                                               timeout=5))
            return got
        return inside(paths[f"k{i % 8}"], queries)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(burst, range(32)))
    for i, got in enumerate(results):
        assert got == [f"10.{i % 8}.0.2"] * 25


def test_53_is_dnatd_to_the_servers_ports_and_left_to_the_container(
        server: DnsServer, make_ns: Callable[[str], str]):
    ns = make_ns("c1")
    ports = server.add("c1", ns)
    assert 0 not in ports and 53 not in ports
    assert redirect_of(ns) == dnat(ports)
    assert redirect_of(None) is None  # the container's namespace only, never the host's
    # a DNS server of the container's own, on 0.0.0.0:53 (UDP and TCP), as dnsmasq binds
    theirs = inside(ns, lambda: FakeUpstream({"own.test": ["192.0.2.53"]}, host="0.0.0.0",
                                             port=53))
    try:
        # dnspython checks that the answer comes from where it asked: 127.0.0.11:53
        assert addresses(ask(ns, "web")) == ["10.0.0.2"]
        assert addresses(ask(ns, "web", tcp=True)) == ["10.0.0.2"]

        def source_of_answer() -> tuple[str, int]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(5)
                s.sendto(dns.message.make_query("web", "A").to_wire(), (DNS, 53))
                return s.recvfrom(512)[1]  # type: ignore[no-any-return]
        assert inside(ns, source_of_answer) == (DNS, 53)
        p = subprocess.run(["nsenter", f"--net={ns}", "busybox", "nslookup", "web", DNS],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and "10.0.0.2" in p.stdout, p.stdout + p.stderr
        # the container's server answers on its other addresses, skiff's on 127.0.0.11
        q = dns.message.make_query("own.test", "A")
        r = inside(ns, lambda: dns.query.udp(q, "127.0.0.1", port=53, timeout=5))
        assert addresses(r) == ["192.0.2.53"]
        assert [a[0] for a in theirs.asked] == ["own.test"]
        server.remove("c1")  # a live disconnect: the DNAT goes with the sockets
        assert redirect_of(ns) is None

        def ask_53_raw() -> dns.message.Message:  # the fake answers from 127.0.0.1
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(5)
                s.sendto(q.to_wire(), (DNS, 53))
                return dns.message.from_wire(s.recv(512))
        assert addresses(inside(ns, ask_53_raw)) == ["192.0.2.53"]  # the container's now
    finally:
        theirs.close()


def rule_handles(path: str) -> list[str]:
    """The kernel's handles of the rules of skiff's DNS table in the namespace at `path`: a
    rule replaced gets a new one."""
    listed = inside(path, lambda: subprocess.run(
        ["nft", "-a", "list", "table", "ip", dns_redirect.TABLE], capture_output=True,
        text=True, check=True).stdout)
    return [line.rsplit("# handle ", 1)[1] for line in listed.splitlines()
            if " dnat to " in line or " snat to " in line]


def test_a_new_server_takes_the_ports_again_or_switches_the_dnat(
        engine: Engine, fake_upstream: FakeUpstream, make_ns: Callable[[str], str]):
    ns, gone = make_ns("c1"), make_ns("c2")
    upstreams = [Upstream("127.0.0.1", fake_upstream.port)]
    # a client that keeps its socket, and so its source port, as a caching resolver can
    client = inside(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    try:
        client.settimeout(2)
        client.connect((DNS, 53))

        def asked_again() -> list[str]:
            client.send(dns.message.make_query("web", "A").to_wire())
            return addresses(dns.message.from_wire(client.recv(512)))

        with DnsServer(engine.resolve, engine.reverse, upstreams) as old:
            before = old.add("c1", ns)
            old.add("c2", gone)
            old.remove("c2", keep_redirect=True)  # the end of a run: its namespace takes it
            assert redirect_of(gone) is not None and listening(gone) == []
            assert asked_again() == ["10.0.0.2"]
        handles = rule_handles(ns)
        # skiffd stopped (or killed): the sockets are gone, the rules stay in the namespace
        assert redirect_of(ns) == dnat(before) and listening(ns) == []
        with pytest.raises(OSError):
            asked_again()  # nobody at the old ports
        with DnsServer(engine.resolve, engine.reverse, upstreams) as new:  # the next skiffd
            assert new.add("c1", ns) == before  # the ports its DNAT names, free again
            assert rule_handles(ns) == handles  # not a rule touched
            assert asked_again() == ["10.0.0.2"]  # its NAT'd connection still holds
            assert addresses(ask(ns, "web", tcp=True)) == ["10.0.0.2"]
            new.remove("c1", keep_redirect=True)
            # one of them taken meanwhile: new ports, the rules switched to them at once
            squatter = inside(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            try:
                squatter.bind((DNS, before.udp))
                after = new.add("c1", ns)
                assert after.udp != before.udp and redirect_of(ns) == dnat(after)
                assert addresses(ask(ns, "web")) == ["10.0.0.2"]
                assert addresses(ask(ns, "web", tcp=True)) == ["10.0.0.2"]
            finally:
                squatter.close()
    finally:
        client.close()


def test_listening_on_53_itself_sets_no_rule(engine: Engine, fake_upstream: FakeUpstream,
                                             make_ns: Callable[[str], str]):
    ns = make_ns("c1")
    with DnsServer(engine.resolve, engine.reverse, [Upstream("127.0.0.1", fake_upstream.port)],
                   port=53) as srv:
        assert srv.add("c1", ns) == (53, 53)
        assert redirect_of(ns) is None
        assert addresses(ask(ns, "web")) == ["10.0.0.2"]

        def bind_53_everywhere() -> None:  # what a DNS server in the container does
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("0.0.0.0", 53))
        with pytest.raises(OSError) as failed:
            inside(ns, bind_53_everywhere)
        assert failed.value.errno == errno.EADDRINUSE
        srv.remove("c1")
    other = make_ns("c2")
    held = inside(other, lambda: FakeUpstream(host="0.0.0.0", port=53))  # the container's
    try:
        with DnsServer(engine.resolve, engine.reverse, [], port=53) as srv:
            with pytest.raises(KernelError, match="bind SOCK_DGRAM 127.0.0.11:53.*EADDRINUSE"):
                srv.add("c2", other)
            assert srv.keys() == []
    finally:
        held.close()


def test_bad_adds_change_nothing(server: DnsServer, tmp_path: Path,
                                 make_ns: Callable[[str], str]):
    not_a_netns = tmp_path / "plain-file"
    not_a_netns.write_text("")
    with pytest.raises(KernelError, match="setns"):
        server.add("c1", str(not_a_netns))
    with pytest.raises(KernelError, match="open"):
        server.add("c1", str(tmp_path / "missing"))
    assert server.keys() == []
    ns = make_ns("c1")
    ports = server.add("c1", ns)
    with pytest.raises(InvalidArgument, match="already served"):
        server.add("c1", ns)
    with pytest.raises(InvalidArgument, match=r"namespace at .*/c1 is served already \(for c1\)"):
        server.add("c1-again", ns)  # one namespace, one server: c1's rules stay
    assert server.keys() == ["c1"]
    assert sorted(listening(ns)) == ["tcp", "udp"]
    assert redirect_of(ns) == dnat(ports)
    assert addresses(ask(ns, "web")) == ["10.0.0.2"]
    # a table of that name the kernel cannot turn into ours (its chain of another type):
    # the batch is refused whole, no socket stays open, that table is as it was
    odd = make_ns("c2")
    theirs = f"table ip {dns_redirect.TABLE} {{ chain output {{ type filter hook output " \
             "priority 0; policy accept; counter; }; }"
    inside(odd, lambda: firewall.run_batch(theirs))
    with pytest.raises(FirewallError, match=f"DNAT of 127.0.0.11:53 in {odd}: nft"):
        server.add("c2", odd)
    assert server.keys() == ["c1"] and listening(odd) == []
    assert redirect_of(odd) == []  # no DNAT in it, and no rule of ours
    listed = inside(odd, lambda: subprocess.run(
        ["nft", "list", "table", "ip", dns_redirect.TABLE], capture_output=True, text=True,
        check=True).stdout)
    assert "type filter hook output priority filter" in listed and "counter" in listed


def test_close_ends_the_thread(engine: Engine, fake_upstream: FakeUpstream,
                               make_ns: Callable[[str], str]):
    ns = make_ns("c1")
    srv = DnsServer(engine.resolve, engine.reverse, [Upstream("127.0.0.1", fake_upstream.port)])
    srv.add("c1", ns)
    srv.close()
    assert listening(ns) == []
    assert not [t for t in threading.enumerate() if t.name == "skiffd-dns"]
    srv.close()
    with pytest.raises(InvalidArgument, match="closed"):
        srv.add("c1", ns)
