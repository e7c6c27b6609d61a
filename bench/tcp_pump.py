"""A TCP socket pump for bench/network.py: one server, one client, the standard library only.

``tcp_pump.py serve PORT`` listens on every address (run inside a container's network
namespace: ``ip netns exec`` or ``nsenter -n``), prints ``ready`` and serves connections one
after the other. ``tcp_pump.py send|receive HOST PORT SECONDS`` is the client: ``send``
streams to the server for SECONDS and half-closes, the server counts to EOF and answers
with the count; ``receive`` asks the server to stream for SECONDS and counts. The client
prints one JSON line: bytes and the seconds from connect to the last byte, counted where
the data arrives, so socket buffers do not flatter the figure. 1 MiB buffers,
``recv_into`` a preallocated one: the per-call cost of Python is a fraction of a
microsecond against the copy of a MiB, the same program on both ends for every engine.

Why not iperf3: Debian's is a dynamic binary (libiperf, libssl) and the bench's busybox
image has neither it nor Python; running this one program from the host inside the
container's network namespace puts the same server behind every engine's published port,
whatever the image holds.
"""

from __future__ import annotations

import json
import socket
import sys
import time

CHUNK = 1 << 20


def serve(port: int) -> None:
    srv = socket.socket(socket.AF_INET6)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", port))
    srv.listen(16)
    print("ready", flush=True)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while True:
        conn, _ = srv.accept()
        with conn:
            header = b""
            while len(header) < 64 and (part := conn.recv(64 - len(header))):
                header += part
            mode, seconds = header.decode().split()[0], float(header.decode().split()[1])
            if mode == "send":  # the client sends: count to EOF, answer the count
                total = 0
                while n := conn.recv_into(view):
                    total += n
                conn.sendall(f"{total}\n".encode())
            else:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    conn.sendall(view)
                conn.shutdown(socket.SHUT_WR)


def client(mode: str, host: str, port: int, seconds: float) -> dict[str, float]:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with socket.create_connection((host, port), timeout=seconds + 30) as c:
        start = time.monotonic()
        c.sendall(f"{mode} {seconds}".ljust(64).encode())
        if mode == "send":
            deadline = start + seconds
            while time.monotonic() < deadline:
                c.sendall(view)
            c.shutdown(socket.SHUT_WR)
            total = int(c.makefile().readline())
        else:
            total = 0
            while n := c.recv_into(view):
                total += n
        elapsed = time.monotonic() - start
    return {"bytes": total, "seconds": elapsed, "MBps": total / elapsed / 1e6}


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        print(json.dumps(client(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))
