"""The embedded DNS server's figures: queries per second and latency, asked from inside a
network namespace, as a container asks.

Run as root with the venv's python::

    .venv/bin/python bench/dns.py [--queries 5000] [--seconds 3] [--window 32] [--direct]

The bench makes a network namespace of its own (``engine.netns.make_netns``, in a temp
folder), starts a `DnsServer` in this process whose look-ups are a dict (as the engine's
in-memory tables), and adds the namespace: as skiffd does, on ports of the kernel's
choosing with 127.0.0.11:53 DNAT'd to them inside the namespace (``--direct``: on
127.0.0.11:53 itself, no rule, the way before the DNAT, for comparison). The client is
another process (``nsenter --net=<ns> python -S``, so it does not share this process's
GIL) sending pre-built queries from raw sockets to 127.0.0.11:53:

a. local name over UDP: N queries one after the other; median and p99 round trip.
b. the same over one TCP connection (connected again whenever the server closes it; the
   count is kept: Docker's closes it after every 128 answers).
c. a forwarded name over UDP: the upstream is a process of the bench's on the host's
   127.0.0.1 that echoes each query back as an empty answer (never a real resolver).
d. throughput: one UDP socket keeping `--window` queries in flight for `--seconds`,
   answers per second, for a local name and for a forwarded one.
e. add + remove of a container as a run does it, in a new namespace each time (sockets
   and DNAT made from one setns thread; at the end the sockets closed, the rules left to
   the namespace): median over 200 cycles, the namespaces made and let go untimed; the
   add again in a namespace whose DNAT points at a server gone (what each running
   container costs at skiffd's restart), median over 20: on the ports its rules name, and
   with one of them taken (new ports, the rules switched); and ``-X importtime`` of
   ``skiff.net.dns``, alone and after ``aiohttp`` (skiffd has it, and asyncio with it,
   loaded anyway).
f. Docker's embedded DNS, side by side (unless ``--no-docker``, or no dockerd): a dockerd
   of the bench's own (``daemons.start_dockerd``: no iptables rules, no default bridge,
   cgroups under /skiff/bench-dns-docker), the built-in busybox rootfs ``docker import``-ed,
   a user network and a ``sleep`` container named ``web`` on it; the same client in that
   container's namespace asks Docker's resolver for ``web`` (a. b. and d. for a local
   name only: a forwarded name would go to the host's real resolvers).

Printed as a table, and as JSON in ``bench/results/dns-<timestamp>.json``. Everything made
(namespace, processes, temp folder) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from daemons import Processes, start_dockerd, unmount_under  # noqa: E402
from skiff.engine.netns import make_netns, release_netns  # noqa: E402
from skiff.net.dns import DnsServer  # noqa: E402
from skiff.net.dns_upstream import Upstream  # noqa: E402

# the client, run inside the namespace; argv: mode, qname, then the mode's numbers
CLIENT = r'''
import json, os, socket, struct, sys, time
mode, qname = sys.argv[1], sys.argv[2]
def query(ident):
    q = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    for label in qname.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00\x00\x01\x00\x01"
out = {}
if mode in ("udp", "tcp"):
    n = int(sys.argv[3])
    kind = socket.SOCK_DGRAM if mode == "udp" else socket.SOCK_STREAM
    def connect():
        s = socket.socket(socket.AF_INET, kind)
        s.settimeout(5)
        s.connect(("127.0.0.11", 53))
        return s
    s = connect()
    times = []
    reconnects = 0
    for i in range(n):
        q = query(i & 0xFFFF)
        t = time.perf_counter_ns()
        if mode == "udp":
            s.send(q)
            r = s.recv(65535)
        else:
            head = b""
            while len(head) < 2:  # a server that closes after each answer: connect again
                try:
                    s.sendall(struct.pack("!H", len(q)) + q)
                    head = s.recv(2, socket.MSG_WAITALL)
                except (BrokenPipeError, ConnectionResetError):
                    head = b""
                if len(head) < 2:
                    s.close()
                    s = connect()
                    reconnects += 1
            r = s.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
        times.append(time.perf_counter_ns() - t)
        assert r[:2] == q[:2] and r[3] & 0xF == 0, r
    out["times_ns"] = times
    out["reconnects"] = reconnects
else:  # window: keep W queries in flight for S seconds
    seconds, window = float(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    s.connect(("127.0.0.11", 53))
    ident = 0
    for _ in range(window):
        s.send(query(ident)); ident = (ident + 1) & 0xFFFF
    got = lost = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:
            s.recv(65535)
            got += 1
        except TimeoutError:
            lost += 1
        s.send(query(ident)); ident = (ident + 1) & 0xFFFF
    out.update(answers=got, timeouts=lost, seconds=seconds)
print(json.dumps(out))
'''

# the upstream: every query back as an empty NOERROR answer (QR and RA set)
ECHO_UPSTREAM = r'''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    q, peer = s.recvfrom(65535)
    s.sendto(q[:2] + bytes([q[2] | 0x80, 0x80]) + q[4:], peer)
'''


def client(ns: str, *args: object) -> dict[str, Any]:
    p = subprocess.run(["nsenter", f"--net={ns}", sys.executable, "-S", "-c", CLIENT,
                        *map(str, args)], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise SystemExit(f"[bench] client {args}: {p.stderr.strip()}")
    result: dict[str, Any] = json.loads(p.stdout)
    return result


def latency(ns: str, mode: str, name: str, n: int) -> dict[str, float]:
    r = client(ns, mode, name, n)
    times: list[int] = sorted(r["times_ns"])
    return {"median_us": statistics.median(times) / 1000,
            "p99_us": times[int(len(times) * 0.99) - 1] / 1000, "queries": n,
            "reconnects": r["reconnects"]}


def throughput(ns: str, name: str, seconds: float, window: int) -> dict[str, float]:
    r = client(ns, "window", name, seconds, window)
    return {"qps": r["answers"] / seconds, "timeouts": r["timeouts"], "window": window}


def add_remove(server: DnsServer, work: Path, cycles: int) -> dict[str, float]:
    """e.: a run's add and remove, each in a namespace of its own (made untimed)."""
    times = []
    for i in range(cycles):
        ns = str(work / f"cycle-{i}")
        make_netns(ns)
        try:
            t = time.perf_counter()
            server.add("cycle", ns)
            server.remove("cycle", keep_redirect=True)  # the namespace takes the rules along
            times.append(time.perf_counter() - t)
        finally:
            release_netns(ns)
    return {"median_ms": statistics.median(times) * 1000, "cycles": cycles}


def served_again(server: DnsServer, ns: str, cycles: int, taken: bool) -> dict[str, float]:
    """e.: the add into a namespace whose rules name a server gone (skiffd restarted): on
    the ports they name, or (`taken`: a socket of the namespace's holds the old UDP port)
    on new ones, the rules switched."""
    import socket

    from skiff.kernel.netns_thread import in_netns

    ports = server.add("again", ns)
    server.remove("again", keep_redirect=True)
    times = []
    for _ in range(cycles):
        squatter = None
        if taken:
            squatter = in_netns(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            squatter.bind(("127.0.0.11", ports.udp))
        try:
            t = time.perf_counter()
            ports = server.add("again", ns)
            times.append(time.perf_counter() - t)
            server.remove("again", keep_redirect=True)
        finally:
            if squatter is not None:
                squatter.close()
    return {"median_ms": statistics.median(times) * 1000, "cycles": cycles}


def import_ms(before: str) -> float:
    """``skiff.net.dns``'s cumulative import time (ms) after `before` was imported."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-c",
                        f"{before}\nimport skiff.net.dns"],
                       capture_output=True, text=True, cwd=REPO / "src")
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| skiff\.net\.dns$", line)
        if m:
            return int(m.group(1)) / 1000
    return float("nan")


DOCKER_CGROUP = "skiff/bench-dns-docker"


def docker_figures(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """a., b. and d. (local name) against Docker's embedded DNS (see f. above)."""
    from skiff.store.builtin import write_rootfs

    procs = Processes()
    cli: list[str] = []
    try:
        cli = start_dockerd(procs, work, f"--cgroup-parent=/{DOCKER_CGROUP}")
        rootfs = work / "rootfs"
        write_rootfs(str(rootfs))
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(cli + ["import", "-", "skiff-bench-busybox"], stdin=tar.stdout,
                       check=True, capture_output=True)
        tar.wait()
        subprocess.run(cli + ["network", "create", "skiff-bench-dns"], check=True,
                       capture_output=True)
        subprocess.run(cli + ["run", "-d", "--network", "skiff-bench-dns", "--name", "web",
                              "skiff-bench-busybox", "sleep", "600"], check=True,
                       capture_output=True)
        pid = subprocess.run(cli + ["inspect", "-f", "{{.State.Pid}}", "web"], check=True,
                             capture_output=True, text=True).stdout.strip()
        ns = f"/proc/{pid}/ns/net"
        client(ns, "udp", "web", 200)  # warm-up
        return {"a_udp_local": latency(ns, "udp", "web", args.queries),
                "b_tcp_local": latency(ns, "tcp", "web", args.queries),
                "d_qps_local": throughput(ns, "web", args.seconds, args.window)}
    finally:
        if cli:
            subprocess.run(cli + ["rm", "-f", "web"], capture_output=True)
            subprocess.run(cli + ["network", "rm", "skiff-bench-dns"], capture_output=True)
        procs.stop_all()
        unmount_under(work)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            for leftover in sorted((hierarchy / DOCKER_CGROUP).glob("**/"), reverse=True):
                leftover.rmdir()  # empty once the container is gone; a failure here is shown


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--no-docker", action="store_true", help="leave Docker's resolver out")
    ap.add_argument("--direct", action="store_true",
                    help="the server on 127.0.0.11:53 itself, no DNAT (the way before it)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("[bench] run as root (it makes a network namespace)")
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-dns-"))
    ns = str(work / "ns")
    upstream = subprocess.Popen([sys.executable, "-S", "-c", ECHO_UPSTREAM],
                                stdout=subprocess.PIPE, text=True)
    results: dict[str, object] = {}
    try:
        assert upstream.stdout is not None
        port = int(upstream.stdout.readline())
        make_netns(ns)
        names = {"web": ["10.0.0.2"]}
        with DnsServer(lambda key, name: names.get(name, []), lambda key, ip: None,
                       [Upstream("127.0.0.1", port)], timeout=2.0,
                       port=53 if args.direct else 0) as server:
            server.add("bench", ns)
            client(ns, "udp", "web", 200)  # warm-up
            results["a_udp_local"] = latency(ns, "udp", "web", args.queries)
            results["b_tcp_local"] = latency(ns, "tcp", "web", args.queries)
            results["c_udp_forwarded"] = latency(ns, "udp", "outside.test", args.queries)
            results["d_qps_local"] = throughput(ns, "web", args.seconds, args.window)
            results["d_qps_forwarded"] = throughput(ns, "outside.test", args.seconds,
                                                    args.window)
            server.remove("bench")
            results["e_add_remove"] = add_remove(server, work, 200)
            if not args.direct:
                results["e_again_same_ports"] = served_again(server, ns, 20, taken=False)
                results["e_again_switched"] = served_again(server, ns, 20, taken=True)
        if not args.no_docker and shutil.which("dockerd"):
            results["f_docker"] = docker_figures(work, args)
        results["e_import_ms"] = import_ms("")
        # in skiffd, aiohttp (and with it asyncio) is already there: what the server adds
        results["e_import_in_skiffd_ms"] = import_ms("import aiohttp")
    finally:
        os.kill(upstream.pid, signal.SIGTERM)
        upstream.wait()
        release_netns(ns)
        shutil.rmtree(work)
    results["direct"] = args.direct
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                          "kernel": os.uname().release}
    print(f"{'figure':34} {'value':>12}")
    for key in ("a_udp_local", "b_tcp_local", "c_udp_forwarded"):
        r = results[key]
        assert isinstance(r, dict)
        print(f"{key + ' median / p99 (us)':34} {r['median_us']:>6.0f} / {r['p99_us']:.0f}")
    for key in ("d_qps_local", "d_qps_forwarded"):
        r = results[key]
        assert isinstance(r, dict)
        print(f"{key + ' (answers/s)':34} {r['qps']:>12.0f}  ({r['timeouts']} timeouts)")
    docker = results.get("f_docker")
    if isinstance(docker, dict):
        for key in ("a_udp_local", "b_tcp_local"):
            r = docker[key]
            print(f"{'docker ' + key + ' median / p99 (us)':34} {r['median_us']:>6.0f} / "
                  f"{r['p99_us']:.0f}")
        print(f"{'docker d_qps_local (answers/s)':34} {docker['d_qps_local']['qps']:>12.0f}  "
              f"({docker['d_qps_local']['timeouts']} timeouts)")
    ar = results["e_add_remove"]
    assert isinstance(ar, dict)
    print(f"{'e_add_remove median (ms)':34} {ar['median_ms']:>12.2f}")
    for key, label in (("e_again_same_ports", "e_again, same ports (ms)"),
                       ("e_again_switched", "e_again, rules switched (ms)")):
        again = results.get(key)
        if isinstance(again, dict):
            print(f"{label:34} {again['median_ms']:>12.2f}")
    print(f"{'e_import skiff.net.dns alone (ms)':34} {results['e_import_ms']:>12.1f}")
    print(f"{'e_import after aiohttp (ms)':34} {results['e_import_in_skiffd_ms']:>12.1f}")
    out = args.out or REPO / "bench" / "results" / f"dns-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"[bench] {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
