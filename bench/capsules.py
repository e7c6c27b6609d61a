"""Capsules: attach and detach on a running container, next to Docker's way to get new files in.

Run as root with the venv's python (it imports skiff for the library figure)::

    .venv/bin/python bench/capsules.py [--cycles 1000] [--cli-cycles 1000] [--docker-cycles 30]

In one temp folder it starts a skiffd (own SKIFF_ROOT/SKIFF_RUN and socket) and a dockerd (own
data root, exec root, pid file and socket, ``--iptables=false --bridge=none``; see
``daemons.py``), makes a capsule ``benchcap:1.0.0`` from a small folder (in skiffd's store,
through `CapsuleService`) and runs ``busybox sleep`` with ``--network none`` in both engines.

Figures, each a median and p99 over its cycles; an attach counts as done when the capsule's
file is visible inside the container (a stat through its init's root, ``/proc/PID/root``):

1. **library**: `skiff.runtime.live_mount.add_mount` / `remove_mount` on the skiffd
   container (the runtime's primitive, the folder given directly: no store, no API).
2. **API**: ``POST /containers/{id}/capsules`` / ``DELETE …/capsules/benchcap`` through
   skiff's client library (engine bookkeeping, the row, config.json, the event).
3. **CLI**: ``skiff capsule attach`` / ``skiff capsule detach`` as processes.
4. **docker**: ``docker rm -f`` + ``docker run -d -v DIR:/cap:ro``, what a Docker user does
   to give a running container new files (timed until ``run`` returns: started, mounted).

After each of 1-3 the container's /proc/PID/mountinfo must be what it was before (no mount
left). Printed: the table, the ratios against Docker's recreate and against the ~2.1 µs
in-memory bookkeeping the design that inspired capsules reports, and the targets (attach
visible in under 1 ms through the library, at least 20x faster than Docker's recreate, no
mount left); everything as JSON in ``bench/results/capsules-<ts>.json``. Every container,
both daemons, mounts and the temp folder are removed at the end, also on an error. Exit 1
when a figure failed, 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from daemons import (DOCKER_CLI, Processes, guarded, log, start_dockerd, start_skiffd,
                     unmount_under)

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
IMAGE = "busybox:latest"
CAPSULE = "benchcap"
VERSION = "1.0.0"
TARGET = "/cap"
PROBE = "hello.txt"
BOOKKEEPING_US = 2.1  # the inspiring design's attach, in-memory bookkeeping alone


def call(argv: list[str], env: dict[str, str] | None = None) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}... exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def quantiles(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {"median": statistics.median(s), "p99": s[min(len(s) - 1, int(len(s) * 0.99))],
            "min": s[0], "n": len(s)}


def mountinfo(pid: int) -> str:
    return Path(f"/proc/{pid}/mountinfo").read_text()


def cycles(n: int, attach: Callable[[], None], detach: Callable[[], None],
           visible: Callable[[], bool]) -> dict[str, Any]:
    """`n` attach (until `visible`) + detach cycles, each half timed."""
    up: list[float] = []
    down: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        attach()
        while not visible():
            if time.perf_counter() - t0 > 5:
                raise RuntimeError("the capsule did not appear within 5 s of its attach")
        t1 = time.perf_counter()
        detach()
        t2 = time.perf_counter()
        up.append(t1 - t0)
        down.append(t2 - t1)
        if visible():
            raise RuntimeError("the capsule is still visible after its detach")
    return {"attach": quantiles(up), "detach": quantiles(down),
            "cycle": quantiles([a + b for a, b in zip(up, down)])}


class Bench:
    def __init__(self, work: Path, procs: Processes) -> None:
        self.work, self.procs = work, procs
        self.skiff: list[str] = []
        self.env: dict[str, str] = {}
        self.docker: list[str] = []
        self.content = work / "content"

    def start(self, with_docker: bool) -> None:
        self.content.mkdir()
        (self.content / PROBE).write_text("hello from the capsule\n")
        (self.content / "lib").mkdir()
        (self.content / "lib" / "libbench.so.1").write_bytes(b"\0" * 4096)
        from skiff.engine.capsules import CapsuleService
        from skiff.engine.events import EventLog

        # made in the store before skiffd starts (it reads the store's index at each call)
        CapsuleService(str(self.work / "skiff-root"), EventLog()).create(
            CAPSULE, VERSION, from_dir=str(self.content))
        self.skiff, self.env = start_skiffd(self.procs, self.work)
        self.cid = call(self.skiff + ["run", "-d", "--network", "none", "--name", "capbench",
                                      IMAGE, "sleep", "1000000"], self.env).strip()
        self.pid = int(call(self.skiff + ["inspect", "-f", "{{.State.Pid}}", self.cid],
                            self.env).strip())
        if with_docker:
            self.docker = start_dockerd(self.procs, self.work)
            tar = self.work / "busybox.tar"
            call(self.skiff + ["save", "-o", str(tar), IMAGE], self.env)
            call(self.docker + ["load", "-q", "-i", str(tar)])

    def visible(self) -> bool:
        return os.path.exists(f"/proc/{self.pid}/root{TARGET}/{PROBE}")

    def library(self, n: int) -> dict[str, Any]:
        from skiff.runtime import live_mount
        from skiff.runtime.container import open_container
        from skiff.runtime.state import StateStore

        c = open_container(StateStore(os.path.join(self.env["SKIFF_RUN"], "runtime")), self.cid)
        return self._checked(n, lambda: live_mount.add_mount(c, str(self.content), TARGET),
                             lambda: live_mount.remove_mount(c, TARGET))

    def api(self, n: int) -> dict[str, Any]:
        from skiff.client.api import EngineClient

        client = EngineClient(f"unix://{self.work / 'skiff-run' / 'skiff.sock'}")
        body = {"Capsule": f"{CAPSULE}:{VERSION}", "Target": TARGET}
        return self._checked(
            n, lambda: client.post(f"/containers/{self.cid}/capsules", json=body),
            lambda: client.delete(f"/containers/{self.cid}/capsules/{CAPSULE}"))

    def cli(self, n: int) -> dict[str, Any]:
        up = self.skiff + ["capsule", "attach", "--target", TARGET, self.cid,
                           f"{CAPSULE}:{VERSION}"]
        down = self.skiff + ["capsule", "detach", self.cid, CAPSULE]

        def run(argv: list[str]) -> None:
            # no timeout=: with one, wait() polls with a doubling sleep (bench/README.md)
            if subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=self.env).returncode != 0:
                raise RuntimeError(f"{' '.join(argv[-4:])} failed")
        return self._checked(n, lambda: run(up), lambda: run(down))

    def _checked(self, n: int, attach: Callable[[], None],
                 detach: Callable[[], None]) -> dict[str, Any]:
        before = mountinfo(self.pid)
        attach()  # one untimed warm-up cycle
        detach()
        out = cycles(n, attach, detach, self.visible)
        out["mount_left"] = mountinfo(self.pid) != before
        return out

    def docker_recreate(self, n: int) -> dict[str, Any]:
        rm = self.docker + ["rm", "-f", "capbench"]
        run = self.docker + ["run", "-d", "--network", "none", "--name", "capbench",
                             "-v", f"{self.content}:{TARGET}:ro", IMAGE, "sleep", "1000000"]
        times: list[float] = []
        call(run)  # the container a user has before wanting the new files
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run(rm, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if subprocess.run(run, stdout=subprocess.DEVNULL).returncode != 0:
                raise RuntimeError("docker run -v failed")
            times.append(time.perf_counter() - t0)
        pid = int(call(self.docker + ["inspect", "-f", "{{.State.Pid}}", "capbench"]).strip())
        if not os.path.exists(f"/proc/{pid}/root{TARGET}/{PROBE}"):
            raise RuntimeError("docker's container does not show the files")
        call(rm)
        return {"recreate": quantiles(times)}

    def cleanup(self) -> list[str]:
        for cli, env in ((self.skiff, self.env), (self.docker, None)):
            if cli:
                subprocess.run(cli + ["rm", "-f", "capbench"], capture_output=True, env=env)
        self.procs.stop_all()
        unmount_under(self.work)
        shutil.rmtree(self.work, ignore_errors=True)
        return []


def us(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e6:,.0f} us" if v < 0.01 else f"{v * 1e3:,.1f} ms"


def report(doc: dict[str, Any]) -> str:
    lines = [f"capsules, attach until visible inside + detach (kernel {os.uname().release})",
             f"{'':9} {'n':>5} {'attach median':>14} {'attach p99':>12} {'detach median':>14} "
             f"{'detach p99':>12}  mount left"]
    for name in ("library", "api", "cli"):
        f = doc.get(name)
        if f:
            lines.append(f"{name:9} {f['attach']['n']:>5} {us(f['attach']['median']):>14} "
                         f"{us(f['attach']['p99']):>12} {us(f['detach']['median']):>14} "
                         f"{us(f['detach']['p99']):>12}  {'YES' if f['mount_left'] else 'no'}")
    d = doc.get("docker")
    if d:
        r = d["recreate"]
        lines.append(f"{'docker':9} {r['n']:>5} {us(r['median']):>14} {us(r['p99']):>12}"
                     f"   (rm -f + run -d -v)")
    lines.append("")
    for t in doc["targets"]:
        lines.append(f"[{'ok' if t['ok'] else 'MISSED'}] {t['what']}: {t['detail']}")
    return "\n".join(lines)


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    lib = doc.get("library")
    if lib:
        m = lib["attach"]["median"]
        out.append({"what": "library attach visible in under 1 ms", "ok": m < 1e-3,
                    "detail": f"median {us(m)}, {m * 1e6 / BOOKKEEPING_US:,.0f}x the "
                              f"{BOOKKEEPING_US} us bookkeeping alone"})
    d = doc.get("docker")
    for name in ("library", "api", "cli"):
        f = doc.get(name)
        if f and d:
            x = d["recreate"]["median"] / f["attach"]["median"]
            out.append({"what": f"{name} attach >= 20x faster than docker's recreate",
                        "ok": x >= 20, "detail": f"{x:,.0f}x"})
    left = [n for n in ("library", "api", "cli") if doc.get(n) and doc[n]["mount_left"]]
    out.append({"what": "cycles leave no mount", "ok": not left,
                "detail": f"left by {', '.join(left)}" if left else "none left"})
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=1000, help="library and API cycles")
    p.add_argument("--cli-cycles", type=int, default=1000, help="CLI cycles")
    p.add_argument("--docker-cycles", type=int, default=30, help="docker recreate cycles")
    p.add_argument("--no-docker", action="store_true", help="skip dockerd")
    p.add_argument("--out", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/capsules.py needs root", file=sys.stderr)
        return 2
    if not a.no_docker and (shutil.which("dockerd") is None or not Path(DOCKER_CLI).exists()):
        log("missing: dockerd or the docker CLI (make bench installs them), or --no-docker")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that clean-up still runs
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_json: Path = a.out or RESULTS_DIR / f"capsules-{stamp}.json"
    b = Bench(Path(tempfile.mkdtemp(prefix="skiff-bench-capsules.")), Processes())
    doc: dict[str, Any] = {"timestamp": stamp, "args": vars(a) | {"out": str(out_json)},
                           "loadavg": Path("/proc/loadavg").read_text().split()[:3]}

    def work() -> None:
        b.start(not a.no_docker)
        for name, n, fn in (("library", a.cycles, b.library), ("api", a.cycles, b.api),
                            ("cli", a.cli_cycles, b.cli)):
            log(f"{name}: {n} cycles")
            doc[name] = fn(n)
        if not a.no_docker:
            log(f"docker: {a.docker_cycles} recreates")
            doc["docker"] = b.docker_recreate(a.docker_cycles)
    failures, _ = guarded(work, b.cleanup)
    doc["targets"] = targets(doc)
    doc["failures"] = failures
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(doc, indent=1) + "\n")
    print(report(doc))
    if failures:
        print("\n".join(["failed:", *failures]))
    print(f"JSON: {out_json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
