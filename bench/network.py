"""TCP throughput through a published port on the loopback: skiff's two paths next to docker's.

Run as root with the venv's python::

    .venv/bin/python bench/network.py [--rounds 5] [--seconds 2]

Three paths to one server (``tcp_pump.py serve``, the same program in every case, run from
the host inside the container's network namespace), each a container behind a bridge:

* **docker**: a dockerd of the bench's own (``daemons.start_dockerd``: own roots and socket,
  ``--iptables=false``, no forwarding or masquerade set), its containers on a bridge the
  bench made, ``docker run -d -p 127.0.0.1:P:5201 busybox sleep``. Loopback connections to a
  published port go through ``docker-proxy`` in every dockerd set-up with the default
  ``userland-proxy=true`` (its DNAT rules skip 127.0.0.0/8), so ``--iptables=false`` loses
  nothing here and leaves the host's rules alone.
* **skiff-dnat**: a namespace and a veth into a bridge of the bench's own, skiff's firewall
  table (``skiff.net.firewall``, a table named for this run) DNAT'ing 127.0.0.1:P in the
  output hook: the kernel does the relay. This is what ``skiff run -p 127.0.0.1:P:5201``
  will set up once the engine wires net/ in: then `SkiffPath.start` becomes that one
  command, and the server is started in the container's namespace the same way.
* **skiff-proxy**: the same container, reached on another port held by
  ``skiff.net.ports.PortAllocator`` and relayed by ``skiff.net.proxy.ProxyLoop`` (a thread
  of this process, as it will be a thread of skiffd) with no DNAT in front: skiff's
  userland path, the like-for-like peer of docker-proxy.

Each round runs every path once per direction (``send``: host to container; ``receive``:
container to host), for ``--seconds`` each, the order of the paths rotating from round to
round; before each round the bench waits (up to ``--quiet-timeout``) for the machine's busy
share to fall below ``--max-busy``. MB/s is counted where the data lands (tcp_pump.py).
Printed: medians per path and direction, skiff-dnat/docker and skiff-proxy/docker; the JSON
(``bench/results/network-<ts>.json``) keeps every transfer. At the end (also on Ctrl-C or an
error) the container is removed, dockerd stopped by PID, the servers killed by PID, the
table, bridges, veths and namespace deleted, mounts below the temp folder unmounted and
its cgroup parent removed. Exit 1 on a failure, 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from containers import IMAGE, median, wait_quiet
from daemons import (DOCKER_CLI, Processes, cannot_run, guarded, log, remove_cgroup_tree,
                     start_dockerd, unmount_under)
from runtime import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from skiff.net import firewall  # noqa: E402 - after the path above
from skiff.net.firewall import BridgeRule, PortRule  # noqa: E402
from skiff.net.ports import PortAllocator  # noqa: E402
from skiff.net.proxy import ProxyLoop  # noqa: E402

RESULTS_DIR = REPO / "bench" / "results"
PUMP = Path(__file__).resolve().parent / "tcp_pump.py"
SERVER_PORT = 5201
PATHS = ("docker", "skiff-dnat", "skiff-proxy")
DIRECTIONS = ("send", "receive")
TOOLS = ("dockerd", DOCKER_CLI, "docker-proxy", "nft", "ip", "nsenter")
CGROUP_PARENT = "skiff-bench-network-docker"


def sh(*argv: str) -> str:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def cpu_seconds(stat: Path | None) -> float:
    """utime + stime of a /proc/…/stat file, in seconds (0 for none)."""
    if stat is None:
        return 0.0
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bench:
    """The three paths' set-up and clean-up; every name carries this run's tag."""

    def __init__(self, work: Path, subnets: tuple[str, str]) -> None:
        self.work, self.procs = work, Processes()
        tag = f"{os.getpid() % 100000}"
        self.table = f"skiff_bench_{tag}"
        self.netns = f"skiff-bench-net-{tag}"
        self.skiff_bridge, self.skiff_veth = f"skbns{tag}", f"skbnv{tag}"
        self.docker_bridge = f"skbnd{tag}"
        self.skiff_net, self.docker_net = subnets
        self.servers: list[subprocess.Popen[str]] = []
        self.docker: list[str] = []
        self.proxy: ProxyLoop | None = None
        self.ports: dict[str, int] = {}
        self.made: list[str] = []   # what cleanup must delete, by kind:name

    def _server(self, prefix: list[str]) -> None:
        p = subprocess.Popen([*prefix, sys.executable, "-S", str(PUMP), "serve", str(SERVER_PORT)],
                             stdout=subprocess.PIPE, text=True)
        self.servers.append(p)
        if p.stdout is None or p.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the pump server under {' '.join(prefix)} did not start")

    def _bridge(self, name: str, subnet: str) -> str:
        gateway = subnet.rsplit(".", 1)[0] + ".1"
        sh("ip", "link", "add", name, "type", "bridge")
        self.made.append(f"link:{name}")
        sh("ip", "addr", "add", f"{gateway}/24", "dev", name)
        sh("ip", "link", "set", name, "up")
        return gateway

    def start_skiff(self) -> None:
        # ---- what `skiff run -d -p 127.0.0.1:P:5201` will do once net/ is wired in ----
        gateway = self._bridge(self.skiff_bridge, self.skiff_net)
        container_ip = self.skiff_net.rsplit(".", 1)[0] + ".2"
        sh("ip", "netns", "add", self.netns)
        self.made.append(f"netns:{self.netns}")
        sh("ip", "link", "add", self.skiff_veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        sh("ip", "link", "set", self.skiff_veth, "master", self.skiff_bridge, "up")
        for argv in (["addr", "add", f"{container_ip}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                     ["link", "set", "lo", "up"], ["route", "add", "default", "via", gateway]):
            sh("ip", "-n", self.netns, *argv)
        alloc = PortAllocator(ipv6=False)
        dnat = alloc.reserve("tcp", "127.0.0.1")  # held, as the engine holds it, DNAT in front
        self.made.append(f"table:{self.table}")
        firewall.apply(self.table, [BridgeRule(self.skiff_bridge, self.skiff_net)],
                       [PortRule("tcp", "127.0.0.1", dnat.host_port, container_ip, SERVER_PORT,
                                 self.skiff_bridge)], forwarding=False)
        self.proxy = ProxyLoop()
        proxied = self.proxy.add(alloc.reserve("tcp", "127.0.0.1"), container_ip, SERVER_PORT)
        # the DNAT'd port's own socket is served by the proxy too, as in skiffd; the kernel's
        # DNAT takes the 127.0.0.1 connections before they reach it
        dnat_fwd = self.proxy.add(dnat, container_ip, SERVER_PORT)
        self.ports["skiff-dnat"] = dnat.host_port
        self.ports["skiff-proxy"] = proxied.reservation.host_port
        self.dnat_forward = dnat_fwd
        # ---- end of what `skiff run -p` replaces ----
        self._server(["ip", "netns", "exec", self.netns])

    def start_docker(self) -> None:
        self._bridge(self.docker_bridge, self.docker_net)
        self.docker = start_dockerd(
            self.procs, self.work, f"--bridge={self.docker_bridge}", "--ip-forward=false",
            "--ip-masq=false", "--userland-proxy=true", f"--cgroup-parent=/{CGROUP_PARENT}")
        from skiff.store.archive import save
        from skiff.store.builtin import ensure_busybox
        from skiff.store.images import ImageStore

        store = ImageStore(self.work / "skiff-store")
        ensure_busybox(store, IMAGE)
        tar = self.work / "busybox.tar"
        with tar.open("wb") as f:
            save(store, [IMAGE], f)
        sh(*self.docker, "load", "-q", "-i", str(tar))
        port = free_port()
        sh(*self.docker, "run", "-d", "--name", "skb-net", "-p", f"127.0.0.1:{port}:{SERVER_PORT}",
           IMAGE, "sleep", "1000000")
        pid = sh(*self.docker, "inspect", "-f", "{{.State.Pid}}", "skb-net").strip()
        self.ports["docker"] = port
        self._server(["nsenter", "-t", pid, "-n"])

    def relay_stat(self, path: str) -> Path | None:
        """The /proc stat file of what relays `path`'s bytes in user space: docker-proxy's
        process, skiff's proxy thread; none for the kernel's DNAT."""
        if path == "skiff-proxy" and self.proxy is not None:
            return Path(f"/proc/self/task/{self.proxy._thread.native_id}/stat")
        if path == "docker":
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if argv[0].endswith(b"docker-proxy") and str(self.ports["docker"]).encode() in argv:
                    return Path(f"/proc/{pid}/stat")
        return None

    def transfer(self, path: str, direction: str, seconds: float) -> dict[str, Any]:
        stat = self.relay_stat(path)
        before = cpu_seconds(stat)
        r = subprocess.run([sys.executable, "-S", str(PUMP), direction, "127.0.0.1",
                            str(self.ports[path]), str(seconds)], capture_output=True, text=True,
                           timeout=seconds + 60)
        if r.returncode != 0:
            raise RuntimeError(f"{path} {direction}: {r.stderr.strip()[-400:]}")
        result: dict[str, Any] = json.loads(r.stdout)
        if stat is not None:  # the relay's CPU time (user + system) per GB carried
            result["relay_cpu_s_per_GB"] = (cpu_seconds(stat) - before) / (result["bytes"] / 1e9)
        return result

    def cleanup(self) -> list[str]:
        forced: list[str] = []
        if self.docker:
            subprocess.run([*self.docker, "rm", "-f", "skb-net"], capture_output=True)
        for p in self.servers:
            p.kill()
            p.wait()
        if self.proxy is not None:
            self.proxy.close()
        self.procs.stop_all()
        unmount_under(self.work)
        for item in reversed(self.made):
            kind, name = item.split(":", 1)
            argv = {"link": ["ip", "link", "del", name], "netns": ["ip", "netns", "del", name]}.get(kind)
            try:
                if kind == "table":
                    firewall.remove(name)
                elif argv:
                    sh(*argv)
            except (RuntimeError, OSError) as e:
                forced.append(f"{item}: {e}")
        forced += remove_cgroup_tree(CGROUP_PARENT)
        shutil.rmtree(self.work, ignore_errors=True)
        return forced


def measure(b: Bench, a: argparse.Namespace, doc: dict[str, Any]) -> None:
    log("setting up skiff's paths and dockerd")
    b.start_skiff()
    b.start_docker()
    doc["ports"] = dict(b.ports)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {p: {d: [] for d in DIRECTIONS} for p in PATHS}
    doc["busy_before"] = []
    for direction in DIRECTIONS:  # one untimed warm-up transfer per path
        for path in PATHS:
            b.transfer(path, direction, 0.5)
    for i in range(a.rounds):
        doc["busy_before"].append(wait_quiet(a.max_busy, a.quiet_timeout))
        order = PATHS[i % 3:] + PATHS[:i % 3]
        for direction in DIRECTIONS:
            for path in order:
                runs[path][direction].append(b.transfer(path, direction, a.seconds))
        log(f"round {i + 1}/{a.rounds}: " + ", ".join(
            f"{p} {runs[p]['send'][-1]['MBps']:.0f}/{runs[p]['receive'][-1]['MBps']:.0f}" for p in PATHS))
    doc["runs"] = runs
    doc["proxy_saw_dnat_connections"] = b.dnat_forward.accepted  # 0: DNAT took them all
    doc["medians_MBps"] = {p: {d: median([r["MBps"] for r in runs[p][d]]) for d in DIRECTIONS}
                           for p in PATHS}
    doc["medians_relay_cpu_s_per_GB"] = {
        p: {d: median([r["relay_cpu_s_per_GB"] for r in runs[p][d]]) for d in DIRECTIONS}
        for p in ("docker", "skiff-proxy")}


def report(doc: dict[str, Any]) -> str:
    m = doc["medians_MBps"]
    lines = [f"TCP through a published port on 127.0.0.1, {doc['args']['rounds']} rounds of "
             f"{doc['args']['seconds']} s, medians in MB/s (busy before: {doc['busy_before']})",
             "| | docker (docker-proxy) | skiff-dnat | skiff-proxy | dnat/docker | proxy/docker |",
             "|---|---|---|---|---|---|"]
    for d, label in (("send", "host -> container"), ("receive", "container -> host")):
        dk, dn, px = m["docker"][d], m["skiff-dnat"][d], m["skiff-proxy"][d]
        lines.append(f"| {label} | {dk:.0f} | {dn:.0f} | {px:.0f} | {dn / dk:.2f}x | {px / dk:.2f}x |")
    c = doc["medians_relay_cpu_s_per_GB"]
    lines.append("relay CPU (user + system) per GB carried, docker-proxy / skiff's proxy thread: " + ", ".join(
        f"{d} {c['docker'][d]:.3f} / {c['skiff-proxy'][d]:.3f} s" for d in DIRECTIONS))
    met = all(m["skiff-dnat"][d] >= m["docker"][d] for d in DIRECTIONS)
    lines.append(f"target (issue 7: no lower than docker's through a published port): "
                 f"{'met' if met else 'NOT met'}; proxy saw {doc['proxy_saw_dnat_connections']} "
                 "of the DNAT'd port's connections")
    lines.append(f"JSON: {doc['json']}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds of every path and direction (default 5)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per transfer (default 2)")
    p.add_argument("--subnets", default="10.213.0.0/24,10.214.0.0/24",
                   help="the skiff and docker bridges' /24 subnets (default 10.213.0.0/24,10.214.0.0/24)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--max-busy", type=float, default=0.25)
    p.add_argument("--quiet-timeout", type=float, default=30.0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    if cannot_run("bench/network.py", TOOLS):
        return 2
    skiff_net, docker_net = a.subnets.split(",")
    routes = sh("ip", "-4", "route")
    for net in (skiff_net, docker_net):
        if net.rsplit(".", 1)[0] + "." in routes:
            log(f"subnet {net} is already routed here: pick others with --subnets")
            return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_json: Path = a.out or RESULTS_DIR / f"network-{stamp}.json"
    b = Bench(Path(tempfile.mkdtemp(prefix="skiff-bench-network.")), (skiff_net, docker_net))
    doc: dict[str, Any] = {"timestamp": stamp, "json": str(out_json),
                           "args": {"rounds": a.rounds, "seconds": a.seconds}}

    def work() -> None:
        doc["machine"] = machine_info({"skiff": str(Path(sys.executable).parent / "skiff-runtime"),
                                       "runc": "runc", "crun": "crun", "hyperfine": "hyperfine"})
        measure(b, a, doc)
        doc["docker_version"] = sh(*b.docker, "version", "-f", "{{.Server.Version}}").strip()
    failures, doc["forced_cleanup"] = guarded(work, b.cleanup)
    doc["failures"] = failures + doc["forced_cleanup"]
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(doc, indent=1) + "\n")
    if "medians_MBps" in doc:
        print(report(doc))
    if doc["failures"]:
        print("\n".join(["bench failed:", *doc["failures"], f"JSON: {out_json}"]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
