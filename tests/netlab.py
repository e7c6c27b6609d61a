"""A small network laboratory for the net/ tests: namespaces, bridges and veths made by hand.

A `Lab` makes network namespaces of its own (``skiff-t<pid>-<tag>-<role>``) with `ip` from
iproute2, bridges and veth pairs inside them, runs programs in them, and runs Python
functions in a forked child that joined one of them. The "host" of a test is itself a
namespace of the lab, so a test's firewall table, ip_forward and route_localnet never
touch the real host; closing the lab kills what it started and deletes its namespaces,
which takes every bridge and veth in them along.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Callable

from conftest import TMP_MARK, run_in_child

from skiff import errors
from skiff.kernel import syscall

# a peer program: a TCP server on port argv[1] that answers each connection with the
# address it saw the client at, then echoes; prints "ready" once listening
TCP_WHOAMI = """
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16); print("ready", flush=True)
def serve(c, peer):
    with c:
        c.sendall(peer[0].encode() + b"\\n")
        while data := c.recv(65536):
            c.sendall(data)
while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""

# a UDP server: answers each datagram with "<client address> <datagram>"
UDP_WHOAMI = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(65536)
    s.sendto(peer[0].encode() + b" " + data, peer)
"""

# a client: connects to argv[1]:argv[2] and prints the first line it gets (the server's
# view of its address), or the error's name; exits 0 on success
TCP_ASK = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        c.settimeout(float(sys.argv[3]))
        print(c.makefile().readline().strip())
except OSError as e:
    print(type(e).__name__); sys.exit(1)
"""


class Lab:
    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.env = dict(os.environ, SKIFF_TEST_RUN=TMP_MARK)

    def ifname(self, role: str) -> str:
        """An interface name unique to this lab (IFNAMSIZ: at most 15 characters)."""
        name = f"sk{self.tag}{role}"
        assert len(name) <= 15, name
        return name

    def netns(self, role: str) -> str:
        name = f"skiff-t{os.getpid()}-{self.tag}-{role}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        self.ip(name, "link", "set", "lo", "up")
        return name

    def ip(self, ns: str, *args: str) -> None:
        subprocess.run(["ip", "-n", ns, *args], check=True)

    def bridge(self, ns: str, name: str, cidr: str) -> None:
        self.ip(ns, "link", "add", name, "type", "bridge")
        self.ip(ns, "addr", "add", cidr, "dev", name)
        self.ip(ns, "link", "set", name, "up")

    def container(self, host: str, bridge: str, role: str, cidr: str, gateway: str) -> str:
        """A namespace with an eth0 at `cidr` plugged into `bridge` of `host`, routed by `gateway`."""
        ns = self.netns(role)
        outer = self.ifname(role)
        self.ip(host, "link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.ip(host, "link", "set", outer, "master", bridge, "up")
        # as libnetwork with userland-proxy=false: with br_netfilter a hairpin DNAT is
        # bridged back out of the port it came in by
        self.ip(host, "link", "set", outer, "type", "bridge_slave", "hairpin", "on")
        self.ip(ns, "addr", "add", cidr, "dev", "eth0")
        self.ip(ns, "link", "set", "eth0", "up")
        self.ip(ns, "route", "add", "default", "via", gateway)
        return ns

    def link(self, a: str, cidr_a: str, b: str, cidr_b: str, role: str) -> None:
        """A veth between namespaces `a` and `b` with an address at each end."""
        end_a, end_b = self.ifname(role + "a"), self.ifname(role + "b")
        self.ip(a, "link", "add", end_a, "type", "veth", "peer", "name", end_b, "netns", b)
        for ns, end, cidr in ((a, end_a, cidr_a), (b, end_b, cidr_b)):
            self.ip(ns, "addr", "add", cidr, "dev", end)
            self.ip(ns, "link", "set", end, "up")

    def start(self, ns: str, program: str, *args: str) -> subprocess.Popen[str]:
        """A Python `program` running in `ns`, once it printed its first line ("ready")."""
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-S", "-c", program, *args],
                             stdout=subprocess.PIPE, text=True, env=self.env)
        self.procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        return p

    def run(self, ns: str, program: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-S", "-c", program, *args],
                              capture_output=True, text=True, env=self.env, timeout=timeout)

    def ask(self, ns: str, ip: str, port: int, timeout: float = 3) -> str:
        """What a TCP_WHOAMI server at ip:port saw as the address of a client in `ns`, or
        the name of the client's error."""
        return self.run(ns, TCP_ASK, ip, str(port), str(timeout)).stdout.strip()

    def inside(self, ns: str, fn: Callable[[], object]) -> object:
        """`fn()` run in a forked child that joined namespace `ns`: what it returned, or the
        SkiffError it raised raised again here (of the same class, with the same message)."""
        def joined() -> object:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            syscall.setns(fd, syscall.CLONE_NEWNET)
            os.close(fd)
            try:
                return {"ok": fn()}
            except errors.SkiffError as e:
                return {"raised": type(e).__name__, "message": str(e)}
        result = run_in_child(joined)
        assert isinstance(result, dict)
        if "raised" in result:
            raise getattr(errors, result["raised"])(result["message"])
        return result["ok"]

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.communicate()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], check=True)
