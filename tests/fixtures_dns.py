"""A fake upstream DNS server for the embedded DNS server's tests, on the host's loopback.

It is built on dnspython, not on skiff's own codec, so that the tests check skiff's
messages against another implementation. One thread serves UDP and TCP on the same port
(an ephemeral one of 127.0.0.1 unless `host` and `port` say otherwise): names in `zone`
get their A records (over UDP only as many as fit in `udp_limit`, else an empty answer
with TC, as a real server truncates), ``fail.test`` gets SERVFAIL, ``silent.test`` gets
no answer at all, every other name an authoritative NXDOMAIN. Every question it is asked is kept in `asked` as (name, type, "udp"|"tcp").
With `spoof_first`, each UDP answer is preceded by a datagram under a wrong ID.
Traffic stays on the loopback: it never asks anyone else. `redirect_of` reads the DNAT
that brings a namespace's 127.0.0.11:53 to the server's ports, as ``nft`` lists it.
"""

from __future__ import annotations

import selectors
import socket
import struct
import subprocess
import threading
from typing import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from skiff.kernel.netns_thread import in_netns
from skiff.net import dns_redirect
from skiff.net.dns import Ports


class FakeUpstream:
    def __init__(self, zone: dict[str, list[str]] | None = None, udp_limit: int | None = None,
                 spoof_first: bool = False, host: str = "127.0.0.1", port: int = 0) -> None:
        self.zone = {k.lower(): v for k, v in (zone or {}).items()}
        self.udp_limit = udp_limit
        self.spoof_first = spoof_first
        self.asked: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self.host = host
        self.udp, self.tcp = self._bind_pair(host, port)
        self.port = self.udp.getsockname()[1]
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="fake-upstream", daemon=True)
        self._thread.start()

    @staticmethod
    def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
        # the same port for both protocols, as a resolver has: retry until a free one is found
        for _ in range(50 if port == 0 else 1):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((host, port))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            return udp, tcp
        raise RuntimeError(f"no port free for both UDP and TCP on {host}")

    def answer(self, wire: bytes, proto: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        with self._lock:
            self.asked.append((name, dns.rdatatype.to_text(question.rdtype), proto))
        if name == "silent.test":
            return None
        reply = dns.message.make_response(query)
        if name == "fail.test":
            reply.set_rcode(dns.rcode.SERVFAIL)
        elif name in self.zone:
            if question.rdtype == dns.rdatatype.A:
                reply.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A",
                                                        *self.zone[name]))
        else:
            reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.flags |= dns.flags.AA
        out = reply.to_wire()
        if proto == "udp":
            limit = self.udp_limit or max(512, query.payload if query.edns >= 0 else 512)
            if len(out) > limit:
                reply.answer.clear()
                reply.flags |= dns.flags.TC
                out = reply.to_wire()
        return out

    def _serve(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.udp, selectors.EVENT_READ)
            sel.register(self.tcp, selectors.EVENT_READ)
            sel.register(self._stop_r, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._stop_r:
                        return
                    if key.fileobj is self.udp:
                        wire, peer = self.udp.recvfrom(65535)
                        out = self.answer(wire, "udp")
                        if out is not None:
                            if self.spoof_first:
                                self.udp.sendto(struct.pack("!H", (out[0] << 8 | out[1]) ^ 0x5A5A)
                                                + out[2:], peer)
                            self.udp.sendto(out, peer)
                    else:
                        conn, _ = self.tcp.accept()
                        with conn:
                            self._serve_tcp(conn)

    def _serve_tcp(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            head = conn.recv(2, socket.MSG_WAITALL)
            if len(head) < 2:
                return
            wire = conn.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
            out = self.answer(wire, "tcp")
            if out is not None:
                conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            pass

    def close(self) -> None:
        self._stop_w.send(b"x")
        self._thread.join()
        for s in (self.udp, self.tcp, self._stop_r, self._stop_w):
            s.close()


def redirect_of(path: str | None) -> list[str] | None:
    """The rules of skiff's DNS table in the namespace at `path` (None: the host's), as
    ``nft`` lists them, or None when there is no such table."""
    def read() -> list[str] | None:
        p = subprocess.run(["nft", "list", "table", "ip", dns_redirect.TABLE],
                           capture_output=True, text=True)
        if p.returncode != 0:
            assert "No such file or directory" in p.stderr, p.stderr
            return None
        return [line.strip() for line in p.stdout.splitlines()
                if " dnat to " in line or " snat to " in line]
    return read() if path is None else in_netns(path, read)


def dnat(ports: Ports) -> list[str]:
    """What `redirect_of` lists for a server on `ports` (nft's own spelling)."""
    return [f"ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:{ports.udp}",
            f"ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:{ports.tcp}",
            f"ip saddr 127.0.0.11 udp sport {ports.udp} snat to :53",
            f"ip saddr 127.0.0.11 tcp sport {ports.tcp} snat to :53"]


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    """A FakeUpstream that knows ``outside.test`` (192.0.2.1) and ``big.test`` (60 A records
    from 198.51.100.0/24, far more than 512 bytes), closed at the end."""
    big = [f"198.51.100.{i}" for i in range(1, 61)]
    upstream = FakeUpstream({"outside.test": ["192.0.2.1"], "big.test": big})
    yield upstream
    upstream.close()
