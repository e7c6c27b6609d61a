"""Side-by-side containers: skiff (skiffd), Debian's docker.io (dockerd) and podman with crun.

Run as root with the venv's python (stdlib only)::

    .venv/bin/python bench/containers.py [--runs 20] [-n 50]     # or: make bench

In one temp folder it starts a skiffd (own SKIFF_ROOT/SKIFF_RUN and socket), a dockerd (own
data root, exec root, pid file and socket, ``--iptables=false --bridge=none``, cgroups under
``/skiff-bench-docker``; dockerd starts its containerd) and runs podman as
``isolated_podman.IsolatedPodman`` sets it up: roots, configuration (containers.conf with the
rlimits root here can set, storage.conf, an empty registries.conf, network config folder),
``TMPDIR`` and ``DOCKER_CONFIG`` of its own, the host's blob-info cache kept as it was,
``--runtime crun --cgroup-manager cgroupfs --events-backend file``, containers under
``/skiff-bench-podman``, no network. Every CLI here runs in that podman's environment (one
hyperfine call times all three; skiff's and docker's CLIs read only its empty
``DOCKER_CONFIG``). The image is the same in all three: skiff's built-in busybox, ``skiff
save``-d and ``docker load``-ed / ``podman load``-ed. Every container runs with ``--network
none``.

Figures, in this order, all three engines in the same run, each after a wait (at most
``--quiet-timeout`` s) for the machine's busy share to fall below ``--max-busy``:

1. ``run --rm busybox true``: one hyperfine call (``-N``) with the three commands.
2. ``run -d busybox sleep`` N times in a row (default 50): a timed loop, the engines take
   turns (container i of each engine, then i+1), each call timed with ``perf_counter``.
3. ``ps`` with N running in each engine: one hyperfine call.
4. ``exec CONTAINER true``: one hyperfine call (skiff's is "unsupported" while skiff has no
   ``exec``); then 1. again with the N running.
5. Memory, PSS from ``/proc/PID/smaps_rollup``: the daemon (skiffd and what it spawned, its
   monitors' zygote among them;
   dockerd + containerd) fresh, after the ``run --rm`` runs, and with N running; per container
   the engine's process that stays beside it (skiff's monitor, containerd-shim-runc-v2,
   podman's conmon), the container's own processes (busybox ``sleep``, the same in all three)
   apart, and the daemon's growth from idle to N running divided by N.

Printed: a table with medians and the ratios skiff/docker and skiff/podman, and the targets
of issue 4; everything (every single time) as JSON in ``bench/results/containers-<ts>.json``.
All containers, the daemons, mounts, cgroups and the temp folder are removed at the end, also
on Ctrl-C or an error. Exit 1 when an engine failed a call, 2 when a tool is missing.
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

from daemons import (DOCKER_CLI, Processes, cannot_run, log, remove_cgroup_tree, start_dockerd,
                     start_skiffd, unmount_under)
from isolated_podman import NETAVARK, IsolatedPodman
from runtime import hyperfine, machine_info

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
ENGINES = ("skiff", "docker", "podman")
TOOLS = ("dockerd", DOCKER_CLI, "podman", "crun", "conmon", NETAVARK, "hyperfine")
DOCKER_CGROUP_PARENT = "skiff-bench-docker"
PODMAN_CGROUP_PARENT = "skiff-bench-podman"
IMAGE = "busybox:latest"
SLEEP = ["sleep", "1000000"]
MIB = 1024.0


# ------------------------------------------------------------------------------ processes
def read_proc(pid: int, name: str) -> str:
    try:
        return (Path("/proc") / str(pid) / name).read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def parents() -> dict[int, int]:
    """pid -> ppid of every process now."""
    out: dict[int, int] = {}
    for pid in all_pids():
        stat = read_proc(pid, "stat")
        if stat:
            out[pid] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def descendants(pid: int, ppids: dict[int, int]) -> list[int]:
    kids: dict[int, list[int]] = {}
    for child, parent in ppids.items():
        kids.setdefault(parent, []).append(child)
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def pss_kib(pid: int) -> int:
    for line in read_proc(pid, "smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def keepers(engine: str, work: Path) -> list[int]:
    """The per-container processes of `engine` that belong to this bench: skiff's monitors
    (the pids in the pid files of the bench's SKIFF_RUN, each checked by its process name:
    forked from skiffd's zygote, they share its command line), the containerd shims and
    conmons whose command line names a path under `work`."""
    if engine == "skiff":
        out = []
        for pid_file in (work / "skiff-run" / "containers").glob("*/monitor.pid"):
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if read_proc(pid, "comm").strip() == f"skmon-{pid_file.parent.name[:9]}":
                out.append(pid)
        return sorted(out)
    want: Callable[[str], bool] = {
        "docker": lambda comm: comm.startswith("containerd-shim"),
        "podman": lambda comm: comm == "conmon"}[engine]
    return sorted(pid for pid in all_pids()
                  if str(work) in read_proc(pid, "cmdline") and want(read_proc(pid, "comm").strip()))


# ------------------------------------------------------------------------------ the engines
class Bench:
    """The three engines' command lines, the daemons behind them, and their clean-up."""

    def __init__(self, work: Path, procs: Processes) -> None:
        self.work, self.procs = work, procs
        self.skiff: list[str] = []
        self.docker: list[str] = []
        self.podman = IsolatedPodman(work / "podman", "crun", PODMAN_CGROUP_PARENT)
        # every CLI's, since one hyperfine call times all three (see the module's docstring)
        self.env = self.podman.env
        self.skiff_env: dict[str, str] = {}
        self.busy_before: dict[str, float] = {}   # the machine's busy share before a figure

    def cli(self, engine: str) -> list[str]:
        return {"skiff": self.skiff, "docker": self.docker, "podman": self.podman.argv}[engine]

    def run_args(self, engine: str) -> list[str]:
        """`run` and the options every run of `engine` gets."""
        return ["run", *(self.podman.run_args() if engine == "podman" else ["--network", "none"])]

    def start(self) -> None:
        w = self.work
        log(f"starting skiffd, dockerd in {w}")
        self.skiff, self.skiff_env = start_skiffd(self.procs, w)
        self.docker = start_dockerd(self.procs, w, f"--cgroup-parent=/{DOCKER_CGROUP_PARENT}")
        tar = w / "busybox.tar"
        call(self.skiff + ["save", "-o", str(tar), IMAGE], env=self.skiff_env)
        self.podman.setup(tar)
        call(self.docker + ["load", "-q", "-i", str(tar)], env=self.env)

    def remove_containers(self) -> None:
        """skiff's and docker's; podman's go in its own clean-up."""
        for cli in (self.skiff, self.docker):
            if not cli:
                continue
            ids = subprocess.run(cli + ["ps", "-aq"], capture_output=True, text=True,
                                 env=self.env).stdout.split()
            if ids:
                subprocess.run(cli + ["rm", "-f", *ids], capture_output=True, env=self.env)

    def cleanup(self) -> list[str]:
        """Remove every container, stop the daemons, kill what a failed removal left (by PID),
        unmount, remove the cgroups and the temp folder. Returns what had to be forced."""
        forced: list[str] = []
        try:
            self.remove_containers()
        except (OSError, subprocess.SubprocessError) as e:
            forced.append(f"removing containers: {e}")
        try:
            forced += self.podman.cleanup()
        except (OSError, subprocess.SubprocessError) as e:
            forced.append(f"podman clean-up: {e}")
        self.procs.stop_all()
        ppids = parents()
        for engine in ENGINES:
            for pid in keepers(engine, self.work):
                forced.append(f"{engine}: killed left-over {read_proc(pid, 'comm').strip()} {pid}")
                for p in [*descendants(pid, ppids), pid]:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        time.sleep(0.2 if forced else 0)
        unmount_under(self.work)
        forced += remove_cgroup_tree(DOCKER_CGROUP_PARENT)
        shutil.rmtree(self.work, ignore_errors=True)
        return forced


def call(argv: list[str], env: dict[str, str] | None = None) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}... exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


# ------------------------------------------------------------------------------ figures
def busy_jiffies() -> int:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq + steal


def wait_quiet(max_busy: float, timeout: float) -> float:
    """Wait (up to `timeout` s) until the machine's busy share over one second is below
    `max_busy` — others' work on a 2-CPU VM moves every figure — and return the last share."""
    ncpu, hz = os.cpu_count() or 1, os.sysconf("SC_CLK_TCK")
    deadline, busy = time.monotonic() + timeout, 1.0
    while time.monotonic() < deadline:
        before = busy_jiffies()
        time.sleep(1.0)
        busy = (busy_jiffies() - before) / hz / ncpu
        if busy < max_busy:
            break
    return round(busy, 3)


def median(xs: Sequence[float]) -> float | None:
    return statistics.median(xs) if xs else None


def timed(b: Bench, what: str, commands: dict[str, list[str]], a: argparse.Namespace,
          failures: list[str]) -> dict[str, Any]:
    b.busy_before[what] = wait_quiet(a.max_busy, a.quiet_timeout)
    res = hyperfine("hyperfine", commands, a.runs, a.warmup, b.work / f"{what}.json", a.verbose,
                    env=b.env)
    out: dict[str, Any] = {}
    for name, r in res.items():
        bad = [c for c in r["exit_codes"] if c != 0]
        if bad:
            failures.append(f"{what} {name}: {len(bad)} of {len(r['exit_codes'])} runs failed")
        out[name] = {"median_s": median(r["times"]), "times_s": r["times"],
                     "failed_runs": len(bad), "command": commands[name]}
    return out


def run_rm(b: Bench, a: argparse.Namespace, failures: list[str],
           what: str = "run_rm") -> dict[str, Any]:
    cmds = {e: b.cli(e) + b.run_args(e) + ["--rm", IMAGE, "true"] for e in ENGINES}
    return timed(b, what, cmds, a, failures)


def run_detached(b: Bench, n: int, failures: list[str]) -> dict[str, Any]:
    times: dict[str, list[float]] = {e: [] for e in ENGINES}
    for i in range(n):
        for engine in ENGINES:
            argv = b.cli(engine) + b.run_args(engine) + ["-d", "--name", f"skb-{engine}-{i}",
                                                          IMAGE, *SLEEP]
            t0 = time.perf_counter()
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=b.env)
            times[engine].append(time.perf_counter() - t0)
            if r.returncode != 0:
                failures.append(f"run -d {engine} #{i}: {r.stderr.decode().strip()[-300:]}")
    return {e: {"total_s": sum(t), "median_s": median(t), "times_s": t} for e, t in times.items()}


def exec_true(b: Bench, a: argparse.Namespace, failures: list[str]) -> dict[str, Any]:
    cmds = {e: b.cli(e) + ["exec", f"skb-{e}-0", "true"] for e in ENGINES}
    probe = subprocess.run(cmds["skiff"], capture_output=True, text=True, env=b.env)
    unsupported = None
    if probe.returncode != 0:
        unsupported = probe.stderr.strip().splitlines()[0] if probe.stderr.strip() else "failed"
        del cmds["skiff"]
    out = timed(b, "exec", cmds, a, failures)
    if unsupported is not None:
        out["skiff"] = {"median_s": None, "unsupported": unsupported}
    return out


def daemon_pss(b: Bench) -> dict[str, int]:
    """KiB of PSS: skiffd and its own children (the monitors' zygote); dockerd + containerd
    (its child) - never the per-container processes (skiff's monitors, children of the
    zygote, and docker's shims, reparented to init)."""
    ppids = parents()
    skip = {p for e in ENGINES for k in keepers(e, b.work) for p in [k, *descendants(k, ppids)]}
    out = {}
    for name in ("skiffd", "dockerd"):
        pid = b.procs.pid(name)
        out[name] = sum(pss_kib(p) for p in [pid, *descendants(pid, ppids)] if p not in skip)
    out["podman"] = 0   # no daemon: every podman command is its own process
    return out


def per_container_pss(b: Bench) -> dict[str, dict[str, Any]]:
    ppids = parents()
    out = {}
    for engine in ENGINES:
        ks = keepers(engine, b.work)
        kids = [p for k in ks for p in descendants(k, ppids)]
        out[engine] = {"keepers": len(ks), "keeper_pss_kib": sum(pss_kib(p) for p in ks),
                       "container_processes": len(kids),
                       "container_pss_kib": sum(pss_kib(p) for p in kids)}
    return out


# ------------------------------------------------------------------------------ report
def fmt(v: float | None, unit: str = "s") -> str:
    if v is None:
        return "-"
    return f"{v:.3f} s" if unit == "s" else f"{v:.1f} MiB"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def report(doc: dict[str, Any]) -> str:
    n = doc["args"]["containers"]
    rows: list[tuple[str, str, dict[str, float | None]]] = [
        ("run --rm true", "s", {e: doc["run_rm"][e]["median_s"] for e in ENGINES}),
        (f"run --rm true ({n} running)", "s", {e: doc["run_rm_busy"][e]["median_s"]
                                               for e in ENGINES}),
        (f"run -d (median of {n})", "s", {e: doc["run_d"][e]["median_s"] for e in ENGINES}),
        (f"run -d x{n} total", "s", {e: doc["run_d"][e]["total_s"] for e in ENGINES}),
        (f"ps ({n} running)", "s", {e: doc["ps"][e]["median_s"] for e in ENGINES}),
        ("exec true", "s", {e: doc["exec"][e]["median_s"] for e in ENGINES}),
    ]
    mem = doc["memory"]
    for label, key in (("daemon fresh", "fresh"), ("daemon after runs", "after_runs"),
                       (f"daemon, {n} running", "running")):
        rows.append((label, "MiB", {e: mem["daemon_kib"][key][d] / MIB for e, d in
                                    zip(ENGINES, ("skiffd", "dockerd", "podman"))}))
    rows += [
        ("per container: monitor/shim/conmon", "MiB", {e: mem["per_container"][e]["keeper_mib"]
                                                      for e in ENGINES}),
        ("per container: + daemon growth", "MiB", {e: mem["per_container"][e]["with_daemon_mib"]
                                                  for e in ENGINES}),
        ("per container: container's own", "MiB", {e: mem["per_container"][e]["container_mib"]
                                                   for e in ENGINES}),
    ]
    m = doc["machine"]
    busy = " ".join(f"{k} {v:.0%}" for k, v in doc["busy_before"].items())
    out = [f"machine: kernel {m['kernel']}, {m['nproc']} cpus, cgroup {m['cgroup_mode']}, "
           f"loadavg {' '.join(m['loadavg'])}", f"busy before each figure: {busy}", "",
           f"{'figure (median; PSS)':36} {'skiff':>10} {'docker':>10} {'podman':>10}"
           f"  {'skiff/docker':>12} {'skiff/podman':>12}"]
    for label, unit, v in rows:
        out.append(f"{label:36} {fmt(v['skiff'], unit):>10} {fmt(v['docker'], unit):>10} "
                   f"{fmt(v['podman'], unit):>10}  {ratio(v['skiff'], v['docker']):>12} "
                   f"{ratio(v['skiff'], v['podman']):>12}")
    if doc["exec"]["skiff"].get("unsupported"):
        out.append(f"skiff exec: unsupported ({doc['exec']['skiff']['unsupported']})")
    out.append("")
    out.extend(f"target {t['what']}: {'met' if t['met'] else 'NOT met'} ({t['detail']})"
               for t in doc["targets"])
    if doc["failures"]:
        out.append("\nfailures:")
        out.extend("  " + f for f in doc["failures"])
    out.append(f"\nJSON: {doc['json']}")
    return "\n".join(out)


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    run = {e: doc["run_rm"][e]["median_s"] for e in ENGINES}
    pc = doc["memory"]["per_container"]
    idle = doc["memory"]["daemon_kib"]["fresh"]

    def t(what: str, ok: Callable[[], bool], detail: str) -> dict[str, Any]:
        return {"what": what, "met": bool(ok()), "detail": detail}
    return [
        t("run --rm <= podman/2", lambda: run["skiff"] <= run["podman"] / 2,
          f"{run['skiff']:.3f} s vs {run['podman'] / 2:.3f} s"),
        t("run --rm <= docker/4", lambda: run["skiff"] <= run["docker"] / 4,
          f"{run['skiff']:.3f} s vs {run['docker'] / 4:.3f} s"),
        t("per-container PSS < containerd-shim's", lambda: pc["skiff"]["keeper_mib"]
          < pc["docker"]["keeper_mib"],
          f"monitor {pc['skiff']['keeper_mib']:.2f} MiB vs "
          f"shim {pc['docker']['keeper_mib']:.2f} MiB"),
        t("skiffd idle < dockerd + containerd", lambda: idle["skiffd"] < idle["dockerd"],
          f"{idle['skiffd'] / MIB:.1f} MiB vs {idle['dockerd'] / MIB:.1f} MiB"),
    ]


# ------------------------------------------------------------------------------ main
def measure(b: Bench, a: argparse.Namespace, doc: dict[str, Any], failures: list[str]) -> None:
    n = a.containers
    b.start()
    time.sleep(1)
    daemon: dict[str, dict[str, int]] = {"fresh": daemon_pss(b)}
    log(f"run --rm: {a.runs} runs each")
    doc["run_rm"] = run_rm(b, a, failures)
    time.sleep(1)
    daemon["after_runs"] = daemon_pss(b)
    log(f"run -d x{n} each, in turns")
    b.busy_before["run_d"] = wait_quiet(a.max_busy, a.quiet_timeout)
    doc["run_d"] = run_detached(b, n, failures)
    time.sleep(2)                       # let the daemons' and shims' start-up garbage settle
    daemon["running"] = daemon_pss(b)
    per = per_container_pss(b)
    for engine, d in zip(ENGINES, ("skiffd", "dockerd", "podman")):
        p = per[engine]
        k = max(p["keepers"], 1)
        p["keeper_mib"] = p["keeper_pss_kib"] / k / MIB
        p["container_mib"] = p["container_pss_kib"] / k / MIB
        p["daemon_growth_mib"] = (daemon["running"][d] - daemon["after_runs"][d]) / n / MIB
        p["with_daemon_mib"] = p["keeper_mib"] + p["daemon_growth_mib"]
        if p["keepers"] != n:
            failures.append(f"{engine}: {p['keepers']} per-container processes for {n} containers")
    doc["memory"] = {"daemon_kib": daemon, "per_container": per}
    log(f"ps and exec with {n} running")
    doc["ps"] = timed(b, "ps", {e: b.cli(e) + ["ps"] for e in ENGINES}, a, failures)
    doc["exec"] = exec_true(b, a, failures)
    doc["run_rm_busy"] = run_rm(b, a, failures, "run_rm_busy")
    doc["targets"] = targets(doc)
    doc["busy_before"] = b.busy_before


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20, help="hyperfine runs per figure (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="hyperfine warm-up runs (default 3)")
    p.add_argument("-n", "--containers", type=int, default=50, help="containers kept running")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--max-busy", type=float, default=0.25,
                   help="before each figure, wait for the machine's busy share (0-1) over one "
                        "second to drop below this (default 0.25)")
    p.add_argument("--quiet-timeout", type=float, default=30.0,
                   help="... but for at most this many seconds (default 30)")
    p.add_argument("-v", "--verbose", action="store_true", help="show hyperfine's own output")
    a = p.parse_args(argv)
    if a.runs < 1 or a.warmup < 0 or a.containers < 1:
        p.error("--runs and -n must be >= 1, --warmup >= 0")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    if cannot_run("bench/containers.py", TOOLS):
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_json: Path = a.out or RESULTS_DIR / f"containers-{stamp}.json"
    b = Bench(Path(tempfile.mkdtemp(prefix="skiff-bench-containers.")), Processes())
    failures: list[str] = []
    doc: dict[str, Any] = {"timestamp": stamp, "json": str(out_json),
                           "args": {"runs": a.runs, "warmup": a.warmup, "containers": a.containers}}
    t0 = time.monotonic()
    try:
        doc["machine"] = machine_info({"skiff": str(Path(sys.executable).parent / "skiff-runtime"),
                                       "runc": "runc", "crun": "crun", "hyperfine": "hyperfine"})
        measure(b, a, doc, failures)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        failures.append(str(e))
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        log("cleaning up")
        doc["forced_cleanup"] = b.cleanup()
    doc["elapsed_s"] = round(time.monotonic() - t0, 1)
    doc["failures"] = failures + doc["forced_cleanup"]
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(doc, indent=1) + "\n")
    if "targets" in doc:
        print(report(doc))
    else:
        print("\n".join(["bench failed:", *doc["failures"], f"JSON: {out_json}"]))
    return 1 if doc["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
