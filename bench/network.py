"""Published ports and bridges on the loopback: skiff's engine next to docker's and podman's.

Run as root with the venv's python::

    .venv/bin/python bench/network.py [--rounds 5] [--seconds 2] [--starts 10]

Four paths to one server (``tcp_pump.py serve``, the same program in every case, run from
the host inside the container's network namespace), each a container behind a bridge:

* **docker**: a dockerd of the bench's own (``daemons.start_dockerd``: own roots and socket,
  ``--iptables=false``, no forwarding or masquerade set), its containers on a bridge the
  bench made, ``docker run -d -p 127.0.0.1:P:5201 busybox sleep``. Loopback connections to a
  published port go through ``docker-proxy`` in every dockerd set-up with the default
  ``userland-proxy=true`` (its DNAT rules skip 127.0.0.0/8), so ``--iptables=false`` loses
  nothing here and leaves the host's rules alone.
* **podman**: Debian's podman 4.3 on everything of the bench's own (``isolated_podman``:
  roots, tmpdir, containers.conf, storage.conf, network config dir; ``--runtime runc`` or
  ``--podman-runtime crun``; cgroups under ``/skiff-bench-network-podman``), its default
  network the bench's (netavark, a bridge and subnet of this run, DNS off as in podman's own
  default network), ``podman run -d -p 127.0.0.1:P:5201``. Loopback publishing works as root
  here: netavark DNATs 127.0.0.1:P in the nat OUTPUT chain (iptables-nft), sets
  ``route_localnet`` on its bridge and masquerades the 127.0.0.1 source; conmon holds the
  port open only to reserve it. The kernel relays, as for skiff.
* **skiff**: a skiffd of the bench's own (``daemons.start_skiffd``, its default bridge on
  the bench's subnet), ``skiff run -d -p 127.0.0.1:P:5201 -p Q:5201 busybox sleep``: the
  engine's firewall table DNATs 127.0.0.1:P in the output hook, the kernel does the relay.
* **skiff-proxy**: the same container reached on ``[::1]:Q``, which no DNAT rule takes
  (IPv4 only): skiffd's userland proxy (one epoll thread, splice) relays it — the
  like-for-like peer of docker-proxy. Its relay CPU is skiffd's whole process time.

Each round runs every path once per direction (``send``: host to container; ``receive``:
container to host), for ``--seconds`` each, the order of the paths rotating from round to
round; before each round the bench waits (up to ``--quiet-timeout``) for the machine's busy
share to fall below ``--max-busy``. MB/s is counted where the data lands (tcp_pump.py).
Then ``run --rm busybox true`` on each engine's default bridge and with one published port
(``-p 127.0.0.1::5201``), ``--starts`` rounds of one call per engine and form, each timed
with ``perf_counter``. Printed: medians per path and direction, skiff/docker, skiff/podman
and skiff-proxy/docker; the ``run --rm`` medians with skiff/docker and skiff/podman, and
issue 7's targets; the JSON (``bench/results/network-<ts>.json``) keeps every transfer.

netavark writes into the host's shared iptables tables (here iptables-nft's ``ip nat`` and
``ip filter``) and leaves its scaffolding when its last container goes, so the host's
firewall is snapshot before any engine starts (``host_firewall``: every iptables variant's
save, ``nft list ruleset``, the forwarding sysctls) and at the end exactly what netavark
added is removed (its chains, the jumps to them, its masquerade rule, the tables it made)
and the sysctls put back; what still differs in those tables afterwards is a failure, and
what changed meanwhile in other nftables tables (others' engines on the machine) is noted.
At the end (also on Ctrl-C or an error) the containers are removed, skiffd and dockerd
stopped by PID (skiffd removes its table and bridge), podman's containers removed, its
leftover processes killed by PID, its network removed and ``system reset`` done
(``isolated_podman``), the servers killed by PID, the bench's bridge deleted, mounts below
the temp folder unmounted, the cgroup parents removed and the firewall restored. Exit 1 on
a failure, 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import host_firewall
from containers import IMAGE, median, wait_quiet
from daemons import (DOCKER_CLI, Processes, cannot_run, guarded, log, remove_cgroup_tree,
                     start_dockerd, start_skiffd, unmount_under)
from isolated_podman import NETAVARK, IsolatedPodman, PodmanNetwork
from runtime import machine_info

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from skiff.net import firewall  # noqa: E402 - after the path above

RESULTS_DIR = REPO / "bench" / "results"
PUMP = Path(__file__).resolve().parent / "tcp_pump.py"
SERVER_PORT = 5201
PATHS = ("docker", "skiff", "skiff-proxy", "podman")
HOSTS = {"docker": "127.0.0.1", "skiff": "127.0.0.1", "skiff-proxy": "::1", "podman": "127.0.0.1"}
DIRECTIONS = ("send", "receive")
ENGINES = ("skiff", "docker", "podman")
TOOLS = ("dockerd", DOCKER_CLI, "docker-proxy", "nft", "ip", "nsenter", "podman", "conmon",
         NETAVARK, "iptables-save", "unshare")
CGROUP_PARENT = "skiff-bench-network-docker"
PODMAN_CGROUP_PARENT = "skiff-bench-network-podman"


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


def sh_env(env: dict[str, str], *argv: str) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bench:
    """The four paths' set-up and clean-up; every name carries this run's tag."""

    def __init__(self, work: Path, subnets: tuple[str, str, str], podman_runtime: str) -> None:
        self.work, self.procs = work, Processes()
        tag = f"{os.getpid() % 100000}"
        self.skiff_bridge = f"skbns{tag}"
        self.docker_bridge = f"skbnd{tag}"
        self.skiff_net, self.docker_net, podman_net = subnets
        self.podman = IsolatedPodman(work / "podman", podman_runtime, PODMAN_CGROUP_PARENT,
                                     PodmanNetwork(f"skbnp{tag}", f"skbnp{tag}", podman_net))
        self.firewall: host_firewall.Snapshot | None = None   # before any engine ran
        self.firewall_notes: list[str] = []
        self.servers: list[subprocess.Popen[str]] = []
        self.docker: list[str] = []
        self.skiff: list[str] = []
        self.skiff_env: dict[str, str] = {}
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
        self.skiff, self.skiff_env = start_skiffd(self.procs, self.work, "--bridge",
                                                  self.skiff_bridge, "--bip", self.skiff_net)
        local, anywhere = free_port(), free_port()
        started = time.perf_counter()
        sh_env(self.skiff_env, *self.skiff, "run", "-d", "--name", "skb-net",
               "-p", f"127.0.0.1:{local}:{SERVER_PORT}", "-p", f"{anywhere}:{SERVER_PORT}",
               IMAGE, "sleep", "1000000")
        log(f"skiff run -d with two published ports: {(time.perf_counter() - started) * 1e3:.0f} ms")
        self.ports["skiff"], self.ports["skiff-proxy"] = local, anywhere
        pid = sh_env(self.skiff_env, *self.skiff, "inspect", "-f", "{{.State.Pid}}",
                     "skb-net").strip()
        self._server(["nsenter", "-t", pid, "-n"])

    def image_tar(self) -> Path:
        """skiff's built-in busybox as a `docker save` tar (made once), for docker and podman."""
        tar = self.work / "busybox.tar"
        if tar.exists():
            return tar
        from skiff.store.archive import save
        from skiff.store.builtin import ensure_busybox
        from skiff.store.images import ImageStore

        store = ImageStore(self.work / "skiff-store")
        ensure_busybox(store, IMAGE)
        with tar.open("wb") as f:
            save(store, [IMAGE], f)
        return tar

    def start_docker(self) -> None:
        self._bridge(self.docker_bridge, self.docker_net)
        self.docker = start_dockerd(
            self.procs, self.work, f"--bridge={self.docker_bridge}", "--ip-forward=false",
            "--ip-masq=false", "--userland-proxy=true", f"--cgroup-parent=/{CGROUP_PARENT}")
        sh(*self.docker, "load", "-q", "-i", str(self.image_tar()))
        port = free_port()
        sh(*self.docker, "run", "-d", "--name", "skb-net", "-p", f"127.0.0.1:{port}:{SERVER_PORT}",
           IMAGE, "sleep", "1000000")
        pid = sh(*self.docker, "inspect", "-f", "{{.State.Pid}}", "skb-net").strip()
        self.ports["docker"] = port
        self._server(["nsenter", "-t", pid, "-n"])

    def start_podman(self) -> None:
        """podman's published container: netavark DNATs 127.0.0.1:P in the output hook
        (route_localnet on its bridge, the 127.0.0.0/8 source masqueraded) and the kernel
        relays; conmon holds the port open (listening, never read) only to reserve it."""
        p = self.podman
        p.setup(self.image_tar())
        port = free_port()
        p.podman("run", "-d", *p.run_args(), "--name", "skb-net",
                 "-p", f"127.0.0.1:{port}:{SERVER_PORT}", IMAGE, "sleep", "1000000")
        p.remember_netns("skb-net")
        pid = p.podman("inspect", "-f", "{{.State.Pid}}", "skb-net").strip()
        self.ports["podman"] = port
        self._server(["nsenter", "-t", pid, "-n"])

    def relay_stat(self, path: str) -> Path | None:
        """The /proc stat file of what relays `path`'s bytes in user space: docker-proxy's
        process, skiff's proxy thread; none for the kernel's DNAT."""
        if path == "skiff-proxy" and self.skiff:
            return Path(f"/proc/{self.procs.pid('skiffd')}/stat")
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
        r = subprocess.run([sys.executable, "-S", str(PUMP), direction, HOSTS[path],
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
        if self.skiff:
            subprocess.run([*self.skiff, "rm", "-f", "skb-net"], capture_output=True,
                           env=self.skiff_env)
        for p in self.servers:
            p.kill()
            p.wait()
        self.procs.stop_all()
        forced += self.podman.cleanup()
        table = firewall.table_for_run(self.skiff_env.get("SKIFF_RUN", ""))
        if self.skiff and firewall.exists(table):
            forced.append(f"table:{table}: skiffd left it")
            firewall.remove(table)
        unmount_under(self.work)
        for item in reversed(self.made):
            kind, name = item.split(":", 1)
            try:
                if kind == "link":
                    sh("ip", "link", "del", name)
            except (RuntimeError, OSError) as e:
                forced.append(f"{item}: {e}")
        forced += remove_cgroup_tree(CGROUP_PARENT)
        forced += self.restore_firewall()
        shutil.rmtree(self.work, ignore_errors=True)
        return forced

    def restore_firewall(self) -> list[str]:
        """Remove what netavark added to the host's iptables and put its sysctls back;
        returns what then still differs in the shared tables (a failure). Other nftables
        tables that changed meanwhile (others' engines on the machine) are noted only, unless
        they carry this run's names."""
        if self.firewall is None:
            return []
        removed, left = host_firewall.undo(self.firewall, self.podman.firewall_claim(self.firewall))
        if removed:
            log(f"removed what netavark left: {len(removed)} rules, chains, tables")
        self.firewall_notes = [f"removed: {r}" for r in removed] + [f"left: {x}" for x in left]
        shared, elsewhere = host_firewall.differences(self.firewall, host_firewall.take())
        ours = (self.podman.network.name if self.podman.network else "", self.skiff_bridge,
                firewall.table_for_run(self.skiff_env.get("SKIFF_RUN", "-")))
        self.firewall_notes += [f"changed meanwhile: {d}" for d in elsewhere
                                if not any(n in d for n in ours)]
        return [f"firewall differs after the bench: {d}" for d in shared] + [
            f"firewall differs after the bench: {d}" for d in elsewhere if any(n in d for n in ours)]


def measure(b: Bench, a: argparse.Namespace, doc: dict[str, Any]) -> None:
    b.firewall = host_firewall.take()
    log("starting skiffd and dockerd, podman; a published container on each")
    b.start_skiff()
    b.start_docker()
    b.start_podman()
    doc["ports"] = dict(b.ports)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {p: {d: [] for d in DIRECTIONS} for p in PATHS}
    doc["busy_before"] = []
    for direction in DIRECTIONS:  # one untimed warm-up transfer per path
        for path in PATHS:
            b.transfer(path, direction, 0.5)
    for i in range(a.rounds):
        doc["busy_before"].append(wait_quiet(a.max_busy, a.quiet_timeout))
        order = PATHS[i % len(PATHS):] + PATHS[:i % len(PATHS)]
        for direction in DIRECTIONS:
            for path in order:
                runs[path][direction].append(b.transfer(path, direction, a.seconds))
        log(f"round {i + 1}/{a.rounds}: " + ", ".join(
            f"{p} {runs[p]['send'][-1]['MBps']:.0f}/{runs[p]['receive'][-1]['MBps']:.0f}" for p in PATHS))
    doc["runs"] = runs
    doc["medians_MBps"] = {p: {d: median([r["MBps"] for r in runs[p][d]]) for d in DIRECTIONS}
                           for p in PATHS}
    doc["run_rm_s"] = run_rm_times(b, a.starts)
    doc["medians_relay_cpu_s_per_GB"] = {
        p: {d: median([r["relay_cpu_s_per_GB"] for r in runs[p][d]]) for d in DIRECTIONS}
        for p in ("docker", "skiff-proxy")}


def run_rm_times(b: Bench, starts: int) -> dict[str, dict[str, float]]:
    """Median wall time of ``run --rm busybox true`` on the default bridge, and with one
    published port (ephemeral, on 127.0.0.1), for skiff, docker and podman, interleaved:
    one of each engine and form, then the next round."""
    clis = {"skiff": (b.skiff, b.skiff_env, []), "docker": (b.docker, dict(os.environ), []),
            "podman": (b.podman.argv, b.podman.env, b.podman.run_args())}
    forms = {"bridge": [], "published": ["-p", f"127.0.0.1::{SERVER_PORT}"]}
    times: dict[str, dict[str, list[float]]] = {e: {f: [] for f in forms} for e in clis}
    for _ in range(starts):
        for engine, (cli, env, always) in clis.items():
            for form, extra in forms.items():
                began = time.perf_counter()
                sh_env(env, *cli, "run", "--rm", *always, *extra, IMAGE, "true")
                times[engine][form].append(time.perf_counter() - began)
    return {e: {f: statistics.median(v) for f, v in by.items()} for e, by in times.items()}


def report(doc: dict[str, Any]) -> str:
    m = doc["medians_MBps"]
    lines = [f"TCP through a published port on 127.0.0.1, {doc['args']['rounds']} rounds of "
             f"{doc['args']['seconds']} s, medians in MB/s (busy before: {doc['busy_before']})",
             "| | docker (docker-proxy) | podman (netavark DNAT) | skiff (DNAT) | skiff-proxy (::1) "
             "| skiff/docker | skiff/podman | proxy/docker |",
             "|---|---|---|---|---|---|---|---|"]
    for d, label in (("send", "host -> container"), ("receive", "container -> host")):
        dk, pm, dn, px = m["docker"][d], m["podman"][d], m["skiff"][d], m["skiff-proxy"][d]
        lines.append(f"| {label} | {dk:.0f} | {pm:.0f} | {dn:.0f} | {px:.0f} | {dn / dk:.2f}x "
                     f"| {dn / pm:.2f}x | {px / dk:.2f}x |")
    c = doc["medians_relay_cpu_s_per_GB"]
    lines.append("relay CPU (user + system) per GB carried, docker-proxy / skiffd: " + ", ".join(
        f"{d} {c['docker'][d]:.3f} / {c['skiff-proxy'][d]:.3f} s" for d in DIRECTIONS))
    met = all(m["skiff"][d] >= m["docker"][d] for d in DIRECTIONS)
    lines.append(f"target (issue 7: no lower than docker's through a published port): "
                 f"{'met' if met else 'NOT met'}")
    t = doc["run_rm_s"]
    lines += [f"run --rm busybox true, median of {doc['args']['starts']} (podman: "
              f"{doc['args']['podman_runtime']}, netavark)",
              "| | skiff | docker | podman | skiff/docker | skiff/podman |", "|---|---|---|---|---|---|"]
    for form, label in (("bridge", "default bridge"), ("published", f"-p 127.0.0.1::{SERVER_PORT}")):
        s, dk, pm = (t[e][form] for e in ENGINES)
        lines.append(f"| {label} | {s:.3f} s | {dk:.3f} s | {pm:.3f} s | {s / dk:.2f}x | {s / pm:.2f}x |")
    lines.append("target (issue 7: start on a bridge at most half of podman's): " + "; ".join(
        f"{form} {'met' if t['skiff'][form] <= t['podman'][form] / 2 else 'NOT met'} "
        f"({t['skiff'][form]:.3f} s vs {t['podman'][form] / 2:.3f} s)"
        for form in ("bridge", "published")))
    notes = doc.get("firewall_notes", [])
    removed = sum(n.startswith("removed: ") for n in notes)
    lines.append(f"firewall: {removed} rules, chains, tables and sysctls netavark left were undone; "
                 "every iptables variant's save and iptables-nft's nft tables as before: "
                 f"{'NO' if doc.get('firewall_differs') else 'yes'}")
    lines += [f"firewall: {n}" for n in notes if n.startswith("left: ")]
    others = [n.split(": ", 1)[1] for n in notes if n.startswith("changed meanwhile")]
    if others:
        lines.append(f"firewall: changed meanwhile by others' engines, left alone: {'; '.join(others)}")
    lines.append(f"JSON: {doc['json']}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds of every path and direction (default 5)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per transfer (default 2)")
    p.add_argument("--subnets", default="10.213.0.0/24,10.214.0.0/24,10.215.0.0/24",
                   help="the skiff, docker and podman bridges' /24 subnets "
                        "(default 10.213.0.0/24,10.214.0.0/24,10.215.0.0/24)")
    p.add_argument("--podman-runtime", choices=("runc", "crun"), default="runc",
                   help="podman's OCI runtime (default runc; crun needs "
                        "scripts/fix-hybrid-cgroups.sh on this hybrid-cgroup VM)")
    p.add_argument("--starts", type=int, default=10,
                   help="run --rm timings per engine and form (default 10)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--max-busy", type=float, default=0.25)
    p.add_argument("--quiet-timeout", type=float, default=30.0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    if cannot_run("bench/network.py", (*TOOLS, a.podman_runtime)):
        return 2
    subnets = a.subnets.split(",")
    if len(subnets) != 3 or not all(n.endswith(".0/24") for n in subnets):
        log(f"--subnets wants three /24 subnets (a.b.c.0/24), got {a.subnets!r}")
        return 2
    skiff_net, docker_net, podman_net = subnets
    routes = sh("ip", "-4", "route")
    for net in subnets:
        if net.rsplit(".", 1)[0] + "." in routes:
            log(f"subnet {net} is already routed here: pick others with --subnets")
            return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_json: Path = a.out or RESULTS_DIR / f"network-{stamp}.json"
    b = Bench(Path(tempfile.mkdtemp(prefix="skiff-bench-network.")),
              (skiff_net, docker_net, podman_net), a.podman_runtime)
    doc: dict[str, Any] = {"timestamp": stamp, "json": str(out_json),
                           "args": {"rounds": a.rounds, "seconds": a.seconds, "starts": a.starts,
                                    "podman_runtime": a.podman_runtime}}

    def work() -> None:
        doc["machine"] = machine_info({"skiff": str(Path(sys.executable).parent / "skiff-runtime"),
                                       "runc": "runc", "crun": "crun", "hyperfine": "hyperfine"})
        measure(b, a, doc)
        doc["docker_version"] = sh(*b.docker, "version", "-f", "{{.Server.Version}}").strip()
        doc["podman_version"] = b.podman.podman("version", "-f", "{{.Client.Version}}").strip()
    failures, doc["forced_cleanup"] = guarded(work, b.cleanup)
    doc["firewall_notes"] = b.firewall_notes
    doc["firewall_differs"] = any(f.startswith("firewall differs") for f in doc["forced_cleanup"])
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
