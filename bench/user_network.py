"""``run --rm`` on a user-defined network: skiff (with its embedded DNS server) next to docker.

Run as root with the venv's python::

    .venv/bin/python bench/user_network.py [--runs 20] [--restarts 3]

In one temp folder it starts a skiffd (own roots and socket, a default bridge and subnet of
its own) and a dockerd (``daemons.start_dockerd``: own roots, ``--iptables=false``, no
default bridge), loads skiff's built-in busybox into docker, and makes one user network in
each (``network create --subnet``, a subnet of the bench's). Figures, each a median of
``--runs`` calls timed with ``perf_counter``, the engines taking turns:

a. ``run --rm --network NET busybox true``: a container on the user network — for skiff
   that is a namespace, a veth on the network's bridge, the embedded DNS server's two
   sockets in the namespace and the nftables DNAT there that brings 127.0.0.11:53 to
   them, and all of it taken down again.
b. ``run --rm --network none busybox true``, the same engines, for what the network costs.
c. skiff only, the first container on a user network after skiffd's start, which makes the
   DNS server (its thread and loop; ``skiff.net.dns`` imported): skiffd is restarted
   ``--restarts`` times; each time one ``--network none`` run goes first (what any first
   container pays: the monitors' zygote, the first cgroup), then the first run on the user
   network is timed. skiffd's own log says how long serving each container took ("DNS
   served in … ms"): median for the first and for the later ones.

No query is sent: the containers run ``true``. Printed as a table, and as JSON in
``bench/results/user-network-<ts>.json``. Everything (containers, networks, daemons,
mounts, cgroups, the temp folder) is removed at the end, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from containers import IMAGE, median
from daemons import (DOCKER_CLI, Processes, cannot_run, guarded, log, remove_cgroup_tree,
                     start_dockerd, start_skiffd, unmount_under)
from runtime import machine_info

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SUBNETS = {"skiff": "10.199.93.0/24", "docker": "10.199.94.0/24"}
BRIDGE, BRIDGE_SUBNET = "sktbenchdns0", "10.199.92.0/24"  # skiffd's default bridge
DOCKER_CGROUP = "skiff-bench-docker-net"


def call(argv: list[str], env: dict[str, str] | None = None) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:8])}... exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    call(argv, env)
    return time.perf_counter() - began


def served_ms(skiffd_log: Path) -> tuple[list[float], list[float], list[float]]:
    """The DNS serving times from skiffd's log: (the first container's, the later ones',
    the times to let each go)."""
    first: list[float] = []
    later: list[float] = []
    text = skiffd_log.read_text(errors="replace")
    for m in re.finditer(r"DNS served in ([0-9.]+) ms( \(the server made first\))?", text):
        (first if m.group(2) else later).append(float(m.group(1)))
    gone = [float(m.group(1)) for m in re.finditer(r"DNS let go in ([0-9.]+) ms", text)]
    return first, later, gone


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--no-docker", action="store_true")
    a = p.parse_args()
    if cannot_run("user_network.py", () if a.no_docker else ("dockerd", DOCKER_CLI)):
        return 2
    doc: dict[str, Any] = {"machine": machine_info(
        {"skiff": str(Path(sys.executable).parent / "skiff-runtime"), "runc": "runc",
         "crun": "crun", "hyperfine": "hyperfine"}), "runs": a.runs}
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-usernet-"))
    procs = Processes()
    os.environ.update(SKIFF_BRIDGE=BRIDGE, SKIFF_BRIDGE_SUBNET=BRIDGE_SUBNET,
                      SKIFF_DNS_UPSTREAM="none")  # no query is sent; none could leave
    state: dict[str, Any] = {}
    skiffd_log = work / "skiffd.log"

    def start_skiff() -> tuple[list[str], dict[str, str]]:
        if skiffd_log.exists():  # the last one's: kept aside, for its serving times
            skiffd_log.rename(work / f"skiffd-{time.monotonic_ns()}.log")
        state["skiff"] = start_skiffd(procs, work, "--log-level", "debug")
        return state["skiff"]  # type: ignore[no-any-return]

    def stop_skiff() -> None:
        for name, proc in procs.started:
            if name == "skiffd" and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        procs.started = [(n, pr) for n, pr in procs.started if n != "skiffd"]

    def measure() -> None:
        skiff, env = start_skiff()
        engines: dict[str, tuple[list[str], dict[str, str] | None]] = {"skiff": (skiff, env)}
        if not a.no_docker:
            docker = start_dockerd(procs, work, f"--cgroup-parent=/{DOCKER_CGROUP}")
            state["docker"] = docker
            tar = work / "busybox.tar"
            call(skiff + ["save", "-o", str(tar), IMAGE], env)
            call(docker + ["load", "-q", "-i", str(tar)])
            engines["docker"] = (docker, None)
        for name, (cli, e) in engines.items():
            call(cli + ["network", "create", "--subnet", SUBNETS[name], "benchnet"], e)
            call(cli + ["run", "--rm", "--network", "none", IMAGE, "true"], e)  # warm
        figures: dict[str, dict[str, list[float]]] = {n: {"user": [], "none": []}
                                                     for n in engines}
        log(f"a. b. run --rm, {a.runs} runs each")
        for _ in range(a.runs):
            for name, (cli, e) in engines.items():
                for kind, net in (("user", "benchnet"), ("none", "none")):
                    figures[name][kind].append(
                        timed(cli + ["run", "--rm", "--network", net, IMAGE, "true"], e))
        doc["run_rm"] = figures
        first_runs: list[float] = []
        served_first, served_later, let_go = served_ms(skiffd_log)
        log(f"c. the first run on a user network after skiffd's start, {a.restarts} times")
        for _ in range(a.restarts):
            stop_skiff()
            skiff, env = start_skiff()
            call(skiff + ["run", "--rm", "--network", "none", IMAGE, "true"], env)
            first_runs.append(timed(skiff + ["run", "--rm", "--network", "benchnet", IMAGE,
                                             "true"], env))
            f, later, gone = served_ms(skiffd_log)
            served_first += f
            served_later += later
            let_go += gone
        doc["first_user_run"] = first_runs
        doc["dns_served_ms"] = {"first": served_first, "later": served_later,
                                "let_go": let_go}

    def cleanup() -> list[str]:
        forced: list[str] = []
        for key in ("skiff", "docker"):
            if key not in state:
                continue
            cli, e = state[key] if key == "skiff" else (state[key], None)
            ids = subprocess.run(cli + ["ps", "-aq"], capture_output=True, text=True,
                                 env=e).stdout.split()
            if ids:
                subprocess.run(cli + ["rm", "-f", *ids], capture_output=True, env=e)
            subprocess.run(cli + ["network", "rm", "benchnet"], capture_output=True, env=e)
        procs.stop_all()
        unmount_under(work)
        forced += remove_cgroup_tree(DOCKER_CGROUP)
        shutil.rmtree(work, ignore_errors=True)
        return forced

    failures, forced = guarded(measure, cleanup)
    doc["failures"], doc["forced"] = failures, forced
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"user-network-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(doc, indent=1))
    print(report(doc))
    print(f"(all figures in {out})")
    return 1 if failures else 0


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def report(doc: dict[str, Any]) -> str:
    lines = ["run --rm busybox true            " + "  ".join(f"{n:>8}" for n in
                                                             doc.get("run_rm", {}))]
    for kind, label in (("user", "--network <user network>"), ("none", "--network none")):
        lines.append(f"  {label:<31}" + "  ".join(
            f"{ms(median(f[kind])):>8}" for f in doc.get("run_rm", {}).values()))
    if doc.get("first_user_run"):
        lines.append(f"skiff, first on a user network after skiffd's start: "
                     f"{ms(median(doc['first_user_run']))} (median of "
                     f"{len(doc['first_user_run'])})")
    served = doc.get("dns_served_ms") or {}
    for key, what in (("first", "DNS served, the first container"),
                      ("later", "DNS served, the later ones"),
                      ("let_go", "DNS let go at the end of a run")):
        xs = served.get(key) or []
        if xs:
            lines.append(f"skiffd: {what}: {median(xs):.2f} ms median of {len(xs)}")
    for f in doc.get("failures") or []:
        lines.append(f"FAILED: {f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
