"""Side-by-side timing of skiff-runtime, runc and crun on one busybox bundle running /bin/true.

Run as root with the venv's python (stdlib only, but for e.'s image, made with skiff.store)::

    .venv/bin/python bench/runtime.py [--runs 30]     # or: make bench

Five sections, all in the same process so that the machine's state is the same for every
runtime (this is a noisy 2-vCPU VM: ratios taken in one run are the robust figure, absolute
milliseconds move by 20-40 % between runs):

a. ``run``: ``<rt> --root STATE run -b BUNDLE ID`` of /bin/true for the three runtimes in ONE
   hyperfine invocation (``-N``, ``--warmup 3``); the median is computed here from the JSON's
   ``times`` list; ratios skiff/runc and skiff/crun.
b. ``create`` / ``start`` / ``delete`` apart: N rounds, each round runs one full life cycle per
   runtime (the order rotates per round); ``create`` (fresh id), ``start`` and ``delete`` are each
   timed with ``time.perf_counter`` around ``subprocess.run`` (stdin/stdout to /dev/null, stderr
   to a regular file so that a failure can be shown; never a pipe: ``create`` leaves the
   container's stdio attached); polling ``state`` until "stopped" is not timed. One untimed
   warm-up round first. Median per phase per runtime, ratios skiff/runc (and skiff/crun), and
   the paired ratio (median over rounds of skiff/runc within a round).
c. start-up floor: ``--version`` of each runtime, ``python -c pass`` for the interpreters
   involved (one hyperfine call), and ``-X importtime`` of ``skiff.runtime.cli``.
d. ``exec`` of /bin/true into a running container (each runtime its own, a ``sleep`` bundle on
   the same rootfs): ``<rt> exec ID /bin/true`` and ``<rt> exec --process process.json ID`` (as
   containerd and podman call it) in ONE hyperfine call, then the argument form again after
   an idle gap (``--prepare``, as a'.), then (d''.) the --process form *interleaved*: N rounds
   of one call per runtime, the order rotating, each timed as in b., with the paired ratio
   skiff/runc per round (in one hyperfine call each command's runs come one after the other,
   so a busy spell of the machine lands on one runtime only).
e. ``ctr run --rm busybox ID true`` through a containerd the bench starts for itself
   (``containerd.py``: own root, state and sockets, CRI plugin disabled, skiff's busybox
   image imported), ``--runc-binary`` each runtime in turn under the runc v2 shim, one
   hyperfine call, then (e'.) interleaved as d''. ``--no-containerd`` leaves it out.

``--baseline PATH`` adds another skiff-runtime (say, a launcher on an older commit's ``src/``)
to every section as ``skiff-before``, so that a change's before and after come from one run.

Each runtime gets its own bundle (its own rootfs and config.json) whose ``linux.cgroupsPath`` is
the absolute ``/skiff/bench-<runtime>`` (``bench-<runtime>-exec`` for d.'s container,
``bench-ctr-<runtime>`` for e.'s), so that runc and crun do not nest the container under the
caller's cgroup. Everything made here (bundles, state dirs, containers) is removed at the end;
the cgroups are the runtimes' own to remove, and a ``/sys/fs/cgroup/*/skiff/bench-*`` that is
still there afterwards is reported (and removed when empty); a ``/skiff`` parent that runc or
crun made during the bench (they leave it, skiff removes its own) is removed when empty.

Printed: a table per section (runtime | median ms | ratio vs runc | vs crun), the machine line,
and everything as JSON in ``bench/results/runtime-<timestamp>.json``. Exit status 1 if any
runtime failed any call (its stderr is shown once), 2 for a missing tool.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
ROOTFS_SCRIPT = REPO / "scripts" / "busybox-rootfs"
RESULTS_DIR = REPO / "bench" / "results"
RUNTIMES = ("skiff", "runc", "crun")
BASELINE = "skiff-before"        # --baseline: another skiff-runtime (an older commit's) beside them
ORDER = ("skiff", BASELINE, "runc", "crun")   # the rows of every table
PHASES = ("create", "start", "delete")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "skiff"          # cgroupsPath = /skiff/bench-<runtime>
STATE_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 60.0
MAX_FAILURES = 3              # life cycles a runtime may fail before it is dropped
DEVNULL = subprocess.DEVNULL
SLEEP = ["sleep", "1000000"]     # the process of the container `exec` goes into


# ------------------------------------------------------------------------------ small helpers
def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def median_ms(seconds: Sequence[float]) -> float | None:
    return statistics.median(seconds) * 1000.0 if seconds else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def first_line(cmd: Sequence[str]) -> str:
    try:
        r = subprocess.run(cmd, stdin=DEVNULL, capture_output=True, text=True, timeout=CALL_TIMEOUT_S)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@dataclass
class Failure:
    runtime: str
    phase: str
    cmd: list[str]
    returncode: int | None
    stderr: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "phase": self.phase, "cmd": shlex.join(self.cmd),
                "returncode": self.returncode, "stderr": self.stderr}


@dataclass
class Runtime:
    """One OCI runtime with its own state dir (``--root``) and its own bundle."""

    name: str
    binary: str
    root: Path
    bundle: Path
    created: set[str] = field(default_factory=set)   # ids that may still exist

    def cmd(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    def run_cmd(self, cid: str) -> list[str]:
        return self.cmd("run", "-b", str(self.bundle), cid)

    @property
    def sleeper(self) -> str:
        """The id of this runtime's container that `exec` goes into."""
        return f"exec-{self.name}"

    def exec_cmd(self, process_json: bool) -> list[str]:
        """`exec` of /bin/true: by argument, or by --process as containerd and podman call it."""
        if process_json:
            return self.cmd("exec", "--process", str(self.bundle.parent / f"process-{self.name}.json"),
                            self.sleeper)
        return self.cmd("exec", self.sleeper, "/bin/true")

    def status(self, cid: str) -> str | None:
        r = subprocess.run(self.cmd("state", cid), stdin=DEVNULL, capture_output=True, text=True,
                           timeout=CALL_TIMEOUT_S)
        if r.returncode != 0:
            return None
        try:
            return str(json.loads(r.stdout).get("status"))
        except ValueError:
            return None

    def force_delete(self, cid: str) -> None:
        subprocess.run(self.cmd("delete", "--force", cid), stdin=DEVNULL, stdout=DEVNULL,
                       stderr=DEVNULL, timeout=CALL_TIMEOUT_S)
        self.created.discard(cid)


# ------------------------------------------------------------------------------ machine
def cgroup_mode() -> str:
    mounts: dict[str, str] = {}
    for line in read_text(Path("/proc/self/mounts")).splitlines():
        parts = line.split()
        if len(parts) >= 3:
            mounts[parts[1]] = parts[2]
    top = mounts.get(str(CGROUP_ROOT))
    if top == "cgroup2":
        return "v2 (unified)"
    unified = CGROUP_ROOT / "unified"
    if mounts.get(str(unified)) == "cgroup2":
        ctrl = read_text(unified / "cgroup.controllers").split()
        return f"hybrid (v1 + cgroup2 at {unified}, v2 controllers: [{' '.join(ctrl)}])"
    return "v1 (legacy)"


def machine_info(tools: dict[str, str]) -> dict[str, Any]:
    cpu = "?"
    for line in read_text(Path("/proc/cpuinfo")).splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "kernel": platform.release(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "cgroup_mode": cgroup_mode(),
        "loadavg": read_text(Path("/proc/loadavg")).split()[:3],
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "versions": {
            "skiff-runtime": first_line([tools["skiff"], "--version"]),
            "runc": first_line([tools["runc"], "--version"]),
            "crun": first_line([tools["crun"], "--version"]),
            "hyperfine": first_line([tools["hyperfine"], "--version"]),
            **({"containerd": first_line([tools["containerd"], "--version"])}
               if "containerd" in tools else {}),
        },
    }


# ------------------------------------------------------------------------------ set-up
def make_bundles(work: Path, runtimes: dict[str, str], runc: str) -> dict[str, Runtime]:
    """A busybox rootfs + `runc spec` config.json per runtime, each with its own cgroupsPath."""
    spec_dir = work / "spec"
    spec_dir.mkdir()
    subprocess.run([runc, "spec"], cwd=spec_dir, check=True, stdin=DEVNULL)
    base = json.loads((spec_dir / "config.json").read_text())
    out: dict[str, Runtime] = {}
    for name, binary in runtimes.items():
        bundle = work / f"bundle-{name}"
        bundle.mkdir()
        subprocess.run([str(ROOTFS_SCRIPT), str(bundle / "rootfs")], check=True, stdin=DEVNULL)
        cfg = json.loads(json.dumps(base))
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["/bin/true"]
        cfg.setdefault("linux", {})["cgroupsPath"] = f"/{CGROUP_PARENT}/bench-{name}"
        (bundle / "config.json").write_text(json.dumps(cfg, indent=1))
        # for `exec`: a bundle on the same rootfs whose container stays up, and the
        # process.json of `exec --process` (the container's process, running /bin/true)
        sleeper = json.loads(json.dumps(cfg))
        sleeper["process"]["args"] = SLEEP
        sleeper["root"]["path"] = str(bundle / "rootfs")
        sleeper["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/bench-{name}-exec"
        (work / f"bundle-{name}-sleep").mkdir()
        (work / f"bundle-{name}-sleep" / "config.json").write_text(json.dumps(sleeper, indent=1))
        (work / f"process-{name}.json").write_text(json.dumps(cfg["process"], indent=1))
        root = work / f"state-{name}"
        root.mkdir()
        out[name] = Runtime(name=name, binary=binary, root=root, bundle=bundle)
    return out


# ------------------------------------------------------------------------------ one life cycle
class _Alarm(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Alarm()


def timed_call(cmd: list[str], err: BinaryIO) -> tuple[float, int]:
    """Seconds from spawn to reap of `cmd` (time.perf_counter around subprocess.run), exit status.

    No `timeout=` for subprocess.run: with one, CPython's wait() polls with a doubling sleep
    (0.5, 1, 2, 4 ... 50 ms), which rounds every time up to ~8, 16, 32, 64, 114 ms. Without
    it wait() blocks in waitpid; a hang is caught by SIGALRM, armed outside the timed region
    (subprocess.run kills the child when the alarm's exception goes through it)."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(CALL_TIMEOUT_S))
    try:
        t0 = time.perf_counter()
        r = subprocess.run(cmd, stdin=DEVNULL, stdout=DEVNULL, stderr=err)
        dt = time.perf_counter() - t0
    except _Alarm:
        raise subprocess.TimeoutExpired(cmd, CALL_TIMEOUT_S) from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return dt, r.returncode


def lifecycle(rt: Runtime, cid: str, err: BinaryIO) -> tuple[dict[str, float], Failure | None]:
    """create, start, (poll state until stopped), delete; the three verbs are timed.

    stdin/stdout go to /dev/null and stderr to `err`, a regular file (never a pipe: create leaves
    the container's stdio attached); on failure the call's own stderr is read back from it."""
    times: dict[str, float] = {}
    rt.created.add(cid)
    try:
        for phase in PHASES:
            if phase == "delete":
                deadline = time.monotonic() + STATE_TIMEOUT_S
                while (st := rt.status(cid)) != "stopped":
                    if time.monotonic() > deadline:
                        return times, Failure(rt.name, "state", rt.cmd("state", cid), None,
                                              f"still {st!r} after {STATE_TIMEOUT_S:.0f} s")
                    time.sleep(0.001)
            args = ("create", "-b", str(rt.bundle), cid) if phase == "create" else (phase, cid)
            cmd = rt.cmd(*args)
            mark = err.seek(0, os.SEEK_END)
            times[phase], rc = timed_call(cmd, err)
            if rc != 0:
                err.seek(mark)
                return times, Failure(rt.name, phase, cmd, rc,
                                      err.read().decode(errors="replace").strip())
        rt.created.discard(cid)
        return times, None
    except subprocess.TimeoutExpired as e:
        return times, Failure(rt.name, "timeout", list(map(str, e.cmd)), None, f"timed out after {e.timeout} s")
    finally:
        if cid in rt.created:
            rt.force_delete(cid)


def probe(owner: str, phase: str, cmd: list[str], work: Path) -> Failure | None:
    """Run `cmd` once, untimed, with hyperfine's stdio (/dev/null; stderr kept to show):
    its Failure, or None when it exits 0."""
    errf = work / f"stderr-probe-{owner}-{phase}"
    try:
        with errf.open("w+b") as f:
            r = subprocess.run(cmd, stdin=DEVNULL, stdout=DEVNULL, stderr=f, timeout=CALL_TIMEOUT_S)
        if r.returncode != 0:
            return Failure(owner, phase, cmd, r.returncode, read_text(errf).strip())
        return None
    except subprocess.TimeoutExpired:
        return Failure(owner, phase, cmd, None, f"timed out after {CALL_TIMEOUT_S:.0f} s")
    finally:
        errf.unlink(missing_ok=True)


def diagnose_run(rt: Runtime, cid: str, work: Path) -> Failure | None:
    rt.created.add(cid)
    try:
        return probe(rt.name, "run", rt.run_cmd(cid), work)
    finally:
        rt.force_delete(cid)


# ------------------------------------------------------------------------------ hyperfine
def hyperfine(hf: str, commands: dict[str, list[str]], runs: int, warmup: int, out_json: Path,
              verbose: bool, prepare: str | None = None,
              env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """All commands in ONE hyperfine call (-N: no shell); returns name -> {times, exit_codes}.
    `prepare` runs (untimed) before every timed run; `env` (default: this process's) is the
    one environment of hyperfine and so of every command."""
    cmd = [hf, "-N", "-i", "--warmup", str(warmup), "--runs", str(runs), "--export-json", str(out_json),
           "--style", "basic" if verbose else "none"]
    if prepare:
        cmd += ["--prepare", prepare]
    for name, argv in commands.items():
        cmd += ["--command-name", name, shlex.join(argv)]
    errf = out_json.with_suffix(".stderr")
    with errf.open("w+b") as err:
        r = subprocess.run(cmd, stdin=DEVNULL, stdout=None if verbose else DEVNULL,
                           stderr=None if verbose else err, env=env)
    if r.returncode != 0:
        sys.stderr.write(read_text(errf))
        raise subprocess.CalledProcessError(r.returncode, cmd)
    doc = json.loads(out_json.read_text())
    res: dict[str, dict[str, Any]] = {}
    for name, r in zip(commands, doc["results"]):
        res[name] = {"times": list(r["times"]), "exit_codes": list(r.get("exit_codes") or [])}
    return res


# ------------------------------------------------------------------------------ sections
# Before each run of the "idle" variant: long enough for the kernel's cgroup-migration lock
# to fall back to its fast-reader mode, which makes the next migration wait out an RCU
# grace period (10-20 ms here) — what a single `run` after a pause meets. Back to back,
# each run finds the lock still in writer mode from the run before.
IDLE_GAP = "sleep 0.1"


def side_by_side(commands: dict[str, list[str]], diagnose: Callable[[str, str], Failure | None],
                 hf: str, runs: int, warmup: int, json_path: Path, verbose: bool,
                 failures: list[Failure], prepare: str | None = None) -> dict[str, Any]:
    """Each command tried once (`diagnose(name, "pre")`: a failing one is reported and left
    out), the others timed in ONE hyperfine call; a command that failed some hyperfine runs
    is diagnosed again (`"post"`) to show why. name -> {cmd, median_ms, times_ms, failed_runs}."""
    ok: dict[str, list[str]] = {}
    for name, cmd in commands.items():
        fail = diagnose(name, "pre")
        if fail is not None:
            failures.append(fail)
        else:
            ok[name] = cmd
    out: dict[str, Any] = {}
    if not ok:
        return out
    res = hyperfine(hf, ok, runs, warmup, json_path, verbose, prepare)
    for name, r in res.items():
        bad = [c for c in r["exit_codes"] if c not in (0, None)]
        out[name] = {"cmd": shlex.join(ok[name]), "median_ms": median_ms(r["times"]),
                     "times_ms": [t * 1000 for t in r["times"]], "failed_runs": len(bad)}
        if bad:
            fail = diagnose(name, "post") or \
                Failure(name, json_path.stem, ok[name], bad[0], "(failed in hyperfine; a re-run succeeded)")
            fail.stderr = f"{len(bad)}/{len(r['exit_codes'])} hyperfine runs failed; " + fail.stderr
            failures.append(fail)
    return out


def section_run(rts: dict[str, Runtime], hf: str, runs: int, warmup: int, work: Path, verbose: bool,
                failures: list[Failure], prepare: str | None = None) -> dict[str, Any]:
    log(f"a. run /bin/true: hyperfine -N --warmup {warmup} --runs {runs}, {len(rts)} runtimes"
        + (f", --prepare '{prepare}'" if prepare else ", back to back"))
    commands = {name: rt.run_cmd(f"hf-{name}") for name, rt in rts.items()}
    try:
        return side_by_side(commands, lambda name, when: diagnose_run(rts[name], f"{when}-{name}", work),
                            hf, runs, warmup, work / "run.json", verbose, failures, prepare)
    finally:
        for name, rt in rts.items():
            rt.force_delete(f"hf-{name}")   # in case a failed run left it behind


def interleaved(commands: dict[str, list[str]], rounds: int, work: Path, label: str,
                failures: list[Failure], owner: Callable[[str], str] = lambda n: n) -> dict[str, Any]:
    """Each command once per round, the order rotating from round to round (after one
    untimed round), each call timed with perf_counter around subprocess.run (`timed_call`):
    unlike one hyperfine call, where each command's runs come one after the other, every
    command meets the same moments of a busy machine. name -> {median_ms, times_ms,
    failed_runs}, and `paired_skiff_vs_runc`: the median over rounds of skiff/runc."""
    names = list(commands)
    times: dict[str, list[float]] = {n: [] for n in names}
    bad: dict[str, int] = {n: 0 for n in names}
    paired: list[float] = []
    errf = work / f"stderr-{label}"
    with errf.open("w+b") as err:
        for i in range(-1, rounds):
            k = i % len(names)
            got: dict[str, float] = {}
            for n in names[k:] + names[:k]:
                mark = err.seek(0, os.SEEK_END)
                try:
                    dt, rc = timed_call(commands[n], err)
                except subprocess.TimeoutExpired:
                    dt, rc = 0.0, None
                if rc != 0:
                    bad[n] += 1
                    err.seek(mark)
                    if bad[n] == 1:
                        failures.append(Failure(owner(n), label, commands[n], rc,
                                                err.read().decode(errors="replace").strip()))
                elif i >= 0:
                    times[n].append(dt)
                    got[n] = dt
            if "skiff" in got and "runc" in got:
                paired.append(got["skiff"] / got["runc"])
    out: dict[str, Any] = {n: {"cmd": shlex.join(commands[n]), "median_ms": median_ms(times[n]),
                               "times_ms": [t * 1000 for t in times[n]], "failed_runs": bad[n]}
                           for n in names}
    out["paired_skiff_vs_runc"] = statistics.median(paired) if paired else None
    return out


def start_sleepers(rts: dict[str, Runtime], work: Path, failures: list[Failure]) -> dict[str, Runtime]:
    """Each runtime's `sleep` container, created and started (stdio /dev/null, so that no
    pipe is held open); the runtimes whose container runs."""
    up: dict[str, Runtime] = {}
    for name, rt in rts.items():
        rt.created.add(rt.sleeper)
        bundle = work / f"bundle-{name}-sleep"
        fail = (probe(name, "exec: create", rt.cmd("create", "-b", str(bundle), rt.sleeper), work)
                or probe(name, "exec: start", rt.cmd("start", rt.sleeper), work))
        if fail is None and rt.status(rt.sleeper) != "running":
            fail = Failure(name, "exec: start", rt.cmd("state", rt.sleeper), None,
                           f"its `sleep` container is {rt.status(rt.sleeper)!r}, not running")
        if fail is not None:
            failures.append(fail)
            rt.force_delete(rt.sleeper)
        else:
            up[name] = rt
    return up


def section_exec(rts: dict[str, Runtime], hf: str, runs: int, warmup: int, work: Path, verbose: bool,
                 failures: list[Failure]) -> dict[str, Any]:
    """`exec` of /bin/true into each runtime's own running container: by argument and by
    --process back to back (one hyperfine call), then by argument after an idle gap."""
    log(f"d. exec /bin/true into a running container: hyperfine -N --warmup {warmup} --runs {runs}")
    up = start_sleepers(rts, work, failures)
    try:
        commands = {name + form: rt.exec_cmd(bool(form)) for form in ("", " --process")
                    for name, rt in up.items()}
        owner = {name + form: name for form in ("", " --process") for name in up}

        def diagnose(name: str, when: str) -> Failure | None:
            return probe(owner[name], "exec", commands[name], work)

        both = side_by_side(commands, diagnose, hf, runs, warmup, work / "exec.json", verbose, failures)
        args = {k: commands[k] for k in up}
        idle = side_by_side(args, diagnose, hf, runs, warmup, work / "exec-idle.json", verbose,
                            failures, prepare=IDLE_GAP)
        log(f"d''. exec --process interleaved: {runs} rounds x {len(up)} runtimes (order rotates)")
        mixed = interleaved({k: commands[k + " --process"] for k in up}, runs, work, "exec-interleaved",
                            failures)
    finally:
        for rt in up.values():
            rt.force_delete(rt.sleeper)
    return {"args": {k: v for k, v in both.items() if k in up},
            "process": {owner[k]: v for k, v in both.items() if k not in up},
            "idle": idle, "process_interleaved": mixed}


def section_containerd(rts: dict[str, Runtime], hf: str, runs: int, warmup: int, work: Path,
                       verbose: bool, failures: list[Failure]) -> tuple[dict[str, Any], list[str]]:
    """`ctr run --rm` of busybox `true` through a containerd of our own, the runc v2 shim
    driving each runtime in turn (--runc-binary); also what its stop had to force."""
    from containerd import IMAGE, NAMESPACE, start_containerd
    log(f"e. ctr run --rm {IMAGE} true through containerd: hyperfine -N --warmup {warmup} --runs {runs}")
    ctd = start_containerd(work / "containerd", work / "image-store")
    try:
        commands = {name: ctd.run_cmd(rt.binary, work / f"ctr-state-{name}", f"/{CGROUP_PARENT}/bench-ctr-{name}",
                                      f"bench-ctr-{name}", "true") for name, rt in rts.items()}
        out = side_by_side(commands, lambda name, when: probe(name, "ctr run", commands[name], work),
                           hf, runs, warmup, work / "ctr-run.json", verbose, failures)
        log(f"e'. ctr run --rm interleaved: {runs} rounds x {len(out)} runtimes (order rotates)")
        mixed = interleaved({k: commands[k] for k in out}, runs, work, "ctr-interleaved", failures)
    finally:
        forced = ctd.stop()
    return {"per_runtime": out, "interleaved": mixed, "namespace": NAMESPACE, "image": IMAGE,
            "cgroupsPath": {k: f"/{CGROUP_PARENT}/bench-ctr-{k}" for k in rts}}, forced


def section_lifecycle(rts: dict[str, Runtime], runs: int, work: Path,
                      failures: list[Failure]) -> dict[str, Any]:
    log(f"b. create / start / delete apart: {runs} rounds x {len(rts)} runtimes (order rotates), "
        "after one untimed warm-up round")
    rtl = list(rts.values())
    samples: dict[str, dict[str, list[float]]] = {rt.name: {p: [] for p in PHASES} for rt in rtl}
    nfail: dict[str, int] = {rt.name: 0 for rt in rtl}
    rounds: list[dict[str, dict[str, float]]] = []
    errs = {rt.name: (work / f"stderr-lifecycle-{rt.name}").open("a+b") for rt in rtl}
    try:
        for i in range(-1, runs):                   # round -1: warm-up, not recorded
            k = i % len(rtl)
            this_round: dict[str, dict[str, float]] = {}
            for rt in rtl[k:] + rtl[:k]:
                if nfail[rt.name] >= MAX_FAILURES:
                    continue
                times, fail = lifecycle(rt, f"lc{i + 1}-{rt.name}", errs[rt.name])
                if fail is not None:
                    nfail[rt.name] += 1
                    log(f"{rt.name}: {fail.phase} failed in round {i} (exit {fail.returncode})"
                        + ("; giving up on it" if nfail[rt.name] >= MAX_FAILURES else ""))
                    failures.append(fail)
                elif i >= 0:
                    this_round[rt.name] = times
                    for p in PHASES:
                        samples[rt.name][p].append(times[p])
            if i >= 0:
                rounds.append(this_round)
    finally:
        for f in errs.values():
            f.close()
    out: dict[str, Any] = {}
    for name, per in samples.items():
        out[name] = {p: {"median_ms": median_ms(per[p]), "times_ms": [t * 1000 for t in per[p]]}
                     for p in PHASES}
        out[name]["failed_cycles"] = nfail[name]
    # paired figure: the median over rounds of skiff/<peer> within the same round
    paired: dict[str, dict[str, float | None]] = {}
    for peer in ("runc", "crun", BASELINE):
        paired[peer] = {}
        for p in PHASES:
            rs = [r["skiff"][p] / r[peer][p] for r in rounds if "skiff" in r and peer in r and r[peer][p]]
            paired[peer][p] = statistics.median(rs) if rs else None
    return {"per_runtime": out, "paired_ratio_skiff_vs": paired}


def importtime_ms(py: str) -> float | None:
    """The cumulative column (us) of -X importtime's last line: the skiff.runtime.cli import itself."""
    r = subprocess.run([py, "-X", "importtime", "-c", "import skiff.runtime.cli"], stdin=DEVNULL,
                       stdout=DEVNULL, stderr=subprocess.PIPE, text=True, timeout=CALL_TIMEOUT_S)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("import time:")]
    if r.returncode != 0 or not lines:
        return None
    m = re.match(r"import time:\s*(\d+)\s*\|\s*(\d+)\s*\|", lines[-1])
    return int(m.group(2)) / 1000.0 if m else None


def section_floor(tools: dict[str, str], hf: str, runs: int, warmup: int, work: Path, verbose: bool,
                  failures: list[Failure]) -> dict[str, Any]:
    log("c. start-up floor")
    venv_py = sys.executable
    commands: dict[str, list[str]] = {
        "skiff-runtime --version": [tools["skiff"], "--version"],
        **({f"{BASELINE} --version": [tools[BASELINE], "--version"]} if BASELINE in tools else {}),
        "runc --version": [tools["runc"], "--version"],
        "crun --version": [tools["crun"], "--version"],
        "/usr/bin/python3 -c pass": ["/usr/bin/python3", "-c", "pass"],
        "venv python -c pass": [venv_py, "-c", "pass"],
    }
    path_py = shutil.which("python3")
    if path_py and os.path.realpath(path_py) != os.path.realpath("/usr/bin/python3"):
        commands["python3 on PATH -c pass"] = [path_py, "-c", "pass"]
        real = first_line([path_py, "-c", "import sys; print(sys.executable)"])
        if real.startswith("/") and os.path.realpath(real) not in {os.path.realpath(path_py),
                                                                 os.path.realpath("/usr/bin/python3")}:
            # e.g. a pyenv shim (a bash script) and the interpreter it ends up running
            commands["its interpreter -c pass"] = [real, "-c", "pass"]
            commands["its interpreter -S -c pass"] = [real, "-S", "-c", "pass"]
    res = hyperfine(hf, commands, runs, warmup, work / "floor.json", verbose)
    out: dict[str, Any] = {}
    for name, r in res.items():
        bad = [c for c in r["exit_codes"] if c not in (0, None)]
        out[name] = {"cmd": shlex.join(commands[name]), "median_ms": median_ms(r["times"]),
                     "times_ms": [t * 1000 for t in r["times"]], "failed_runs": len(bad)}
        if bad:
            failures.append(Failure(name.split()[0], "floor", commands[name], bad[0],
                                    first_line(commands[name])))
    imps = [v for v in (importtime_ms(venv_py) for _ in range(runs)) if v is not None]
    out["import skiff.runtime.cli (-X importtime, cumulative)"] = {
        "cmd": shlex.join([venv_py, "-X", "importtime", "-c", "import skiff.runtime.cli"]),
        "median_ms": statistics.median(imps) if imps else None, "times_ms": imps,
        "failed_runs": runs - len(imps)}
    if not imps:
        failures.append(Failure("skiff", "importtime", [venv_py, "-X", "importtime", "-c",
                                                        "import skiff.runtime.cli"], 1, "no importtime output"))
    return out


# ------------------------------------------------------------------------------ report
def table(title: str, rows: list[tuple[str, float | None, float | None, float | None]],
          show_crun: bool = True) -> str:
    head = ("runtime", "median ms", "vs runc") + (("vs crun",) if show_crun else ())
    body = [(n, fmt_ms(m), fmt_ratio(r1)) + ((fmt_ratio(r2),) if show_crun else ()) for n, m, r1, r2 in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    def line(cells: Sequence[str]) -> str:
        return "  " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    sep = "  " + "-+-".join("-" * w for w in widths)
    return "\n".join([f"\n{title}", line(head), sep, *(line(b) for b in body)])


def figure_table(title: str, fig: dict[str, Any] | None) -> str:
    """A table of one side-by-side figure (runtime -> {median_ms ...}) with its ratios."""
    fig = fig or {}
    base = {k: (fig.get(k) or {}).get("median_ms") for k in ORDER}
    rows = [(k, base[k], ratio(base[k], base["runc"]), ratio(base[k], base["crun"])) for k in ORDER if k in fig]
    before = (f", skiff/{BASELINE} = {fmt_ratio(ratio(base['skiff'], base[BASELINE]))}"
              if BASELINE in fig else "")
    return (table(title, rows) + f"\n  skiff/runc = {fmt_ratio(ratio(base['skiff'], base['runc']))}, "
            f"skiff/crun = {fmt_ratio(ratio(base['skiff'], base['crun']))}" + before)


def interleaved_table(title: str, fig: dict[str, Any] | None) -> str:
    """`figure_table` of an `interleaved` figure, with its paired ratio."""
    fig = fig or {}
    runtimes = {k: v for k, v in fig.items() if k != "paired_skiff_vs_runc"}
    return (figure_table(title, runtimes)
            + f"; paired per round skiff/runc = {fmt_ratio(fig.get('paired_skiff_vs_runc'))}")


def target_line(what: str, figs: list[dict[str, Any] | None]) -> str:
    """Issue 5's target: skiff no slower than runc, in every one of `figs`."""
    rs = [ratio((f.get("skiff") or {}).get("median_ms"), (f.get("runc") or {}).get("median_ms"))
          for f in figs if f]
    known = [r for r in rs if r is not None]
    if not known or len(known) < len(rs):
        return f"  target ({what}: skiff no slower than runc): not measured"
    shown = ", ".join(fmt_ratio(r) for r in known)
    return f"  target ({what}: skiff no slower than runc): {'met' if max(known) <= 1.0 else 'NOT met'} ({shown})"


def report(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    v = m["versions"]
    out = [f"machine: kernel {m['kernel']}, {m['nproc']} cpus ({m['cpu']}), cgroup {m['cgroup_mode']}, "
           f"loadavg {' '.join(m['loadavg'])}",
           f"versions: {v['skiff-runtime']}; {v['runc']}; {v['crun']}; {v['hyperfine']}; "
           + (f"{v['containerd']}; " if "containerd" in v else "") +
           f"bench python {m['python_executable']} {m['python']}",
           f"runs per figure: {doc['args']['runs']} (hyperfine warm-up {doc['args']['warmup']})"]

    out.append(figure_table("a. run /bin/true, back to back (hyperfine -N, one invocation)", doc.get("run")))
    out.append(figure_table(f"a'. run /bin/true after an idle gap (hyperfine --prepare '{IDLE_GAP}')",
                            doc.get("run_idle")))

    lc = doc["lifecycle"]["per_runtime"]
    paired = doc["lifecycle"]["paired_ratio_skiff_vs"]
    for p in PHASES:
        med = {k: lc[k][p]["median_ms"] if k in lc else None for k in ORDER}
        rows = [(k, med[k], ratio(med[k], med["runc"]), ratio(med[k], med["crun"])) for k in ORDER if k in lc]
        out.append(table(f"b. {p} (perf_counter around subprocess.run)", rows))
        out.append(f"  skiff/runc = {fmt_ratio(ratio(med['skiff'], med['runc']))} "
                   f"(paired per round: {fmt_ratio(paired['runc'][p])}), "
                   f"skiff/crun = {fmt_ratio(ratio(med['skiff'], med['crun']))} "
                   f"(paired: {fmt_ratio(paired['crun'][p])})"
                   + (f", skiff/{BASELINE} paired {fmt_ratio(paired[BASELINE][p])}" if BASELINE in lc else ""))
    tot = {k: sum(lc[k][p]["median_ms"] or 0 for p in PHASES) if k in lc else None for k in ORDER}
    out.append(f"  sum of the three medians: " + ", ".join(f"{k} {fmt_ms(tot[k])} ms" for k in ORDER if k in lc)
               + f"; skiff/runc = {fmt_ratio(ratio(tot['skiff'], tot['runc']))}")

    fl = doc["floor"]
    runc_v = (fl.get("runc --version") or {}).get("median_ms")
    rows = [(k, r["median_ms"], ratio(r["median_ms"], runc_v), None) for k, r in fl.items()]
    out.append(table("c. start-up floor (hyperfine -N; importtime: median of the cumulative column)", rows,
                     show_crun=False))
    out.append("  the interpreter matters: skiff-runtime's shebang is the venv python, made from "
               "/usr/bin/python3 (no .pth work at start beyond the editable install's path entry).")
    if "python3 on PATH -c pass" in fl:
        med = {k: (fl.get(k) or {}).get("median_ms") for k in
               ("python3 on PATH -c pass", "its interpreter -c pass", "its interpreter -S -c pass")}
        out.append(f"  python3 on PATH ({fl['python3 on PATH -c pass']['cmd'].split()[0]}) takes "
                   f"{fmt_ms(med['python3 on PATH -c pass'])} ms; the interpreter it runs "
                   f"{fmt_ms(med['its interpreter -c pass'])} ms, {fmt_ms(med['its interpreter -S -c pass'])} ms "
                   "with -S (no site: its .pth files cost the difference).")

    ex = doc.get("exec") or {}
    out.append(figure_table("d. exec /bin/true into a running container, back to back (hyperfine -N)",
                            ex.get("args")))
    out.append(figure_table("d. exec --process process.json (/bin/true), as containerd and podman call it",
                            ex.get("process")))
    out.append(figure_table(f"d'. exec /bin/true after an idle gap (--prepare '{IDLE_GAP}')", ex.get("idle")))
    out.append(interleaved_table("d''. exec --process, interleaved (rounds, order rotating; perf_counter)",
                                 ex.get("process_interleaved")))
    out.append(target_line("exec", [ex.get(k) for k in ("args", "process", "process_interleaved")]))
    if "containerd_run" in doc:
        ctr = doc["containerd_run"]["per_runtime"]
        out.append(figure_table(f"e. ctr run --rm {doc['containerd_run']['image']} true, through containerd "
                                "(runc v2 shim, --runc-binary RUNTIME)", ctr))
        mixed = doc["containerd_run"].get("interleaved")
        out.append(interleaved_table("e'. ctr run --rm, interleaved (rounds, order rotating; perf_counter)",
                                     mixed))
        out.append(target_line("ctr run --rm", [ctr, mixed]))

    if doc["leftovers"]:
        out.append("\nleft over after the bench (removed when empty): " + ", ".join(doc["leftovers"]))
    if doc["failures"]:
        out.append("\nFAILURES:")
        shown: set[str] = set()
        for f in doc["failures"]:
            out.append(f"  {f['runtime']}: {f['phase']} exited {f['returncode']}: {f['cmd']}")
            if f["runtime"] not in shown:
                shown.add(f["runtime"])
                out.extend("    | " + ln for ln in (f["stderr"] or "(no stderr)").splitlines()[-20:])
    out.append(f"\nJSON: {doc['json']}")
    return "\n".join(out)


# ------------------------------------------------------------------------------ clean-up
def bench_cgroups() -> list[Path]:
    return sorted(p for p in CGROUP_ROOT.glob(f"*/{CGROUP_PARENT}/bench-*") if p.is_dir())


def parent_cgroups() -> set[Path]:
    return {p for p in CGROUP_ROOT.glob(f"*/{CGROUP_PARENT}") if p.is_dir()}


def cleanup(rts: dict[str, Runtime], work: Path, parents_before: set[Path]) -> list[str]:
    """Delete every container in our state dirs, remove the temp dir; report leftover cgroups.

    skiff removes the empty /skiff parent it made, runc and crun leave it: a /skiff parent that
    was not there before the bench is removed here if it is empty (rmdir fails otherwise)."""
    for rt in rts.values():
        ids = set(rt.created)
        if rt.root.is_dir():
            ids |= {p.name for p in rt.root.iterdir() if p.is_dir()}
        for cid in sorted(ids):
            try:
                rt.force_delete(cid)
            except (OSError, subprocess.SubprocessError):
                pass
    leftovers = []
    for _ in range(50):             # give the kernel a moment to release the last task
        if not bench_cgroups():
            break
        time.sleep(0.02)
    for cg in bench_cgroups():
        leftovers.append(str(cg))
        for sub in sorted(cg.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                try:
                    sub.rmdir()
                except OSError:
                    pass
        try:
            cg.rmdir()
        except OSError as e:
            log(f"could not remove {cg}: {e}")
    for parent in sorted(parent_cgroups() - parents_before):
        for attempt in range(100):   # EBUSY while the kernel still releases a removed child
            try:
                parent.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or attempt == 99:
                    log(f"left {parent} (made during the bench by runc/crun): {e}")
                    break
                time.sleep(0.02)
    shutil.rmtree(work, ignore_errors=True)
    return leftovers


# ------------------------------------------------------------------------------ main
def find_tools(skiff: str | None, containerd: bool = True, baseline: str | None = None) -> dict[str, str]:
    venv_skiff = Path(sys.executable).parent / "skiff-runtime"
    want = {
        "skiff": skiff or (str(venv_skiff) if venv_skiff.exists() else shutil.which("skiff-runtime")),
        "runc": shutil.which("runc"),
        "crun": shutil.which("crun"),
        "hyperfine": shutil.which("hyperfine"),
    }
    if containerd:
        want |= {"containerd": shutil.which("containerd"), "ctr": shutil.which("ctr")}
    if baseline is not None:
        want[BASELINE] = baseline if os.access(baseline, os.X_OK) else None
    missing = [k for k, v in want.items() if not v]
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)} (make bench installs runc, crun, hyperfine "
                         "and containerd)")
    return {k: str(v) for k, v in want.items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30, help="runs per figure (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="hyperfine warm-up runs (default 3)")
    p.add_argument("--skiff", default=None, help="skiff-runtime to measure (default: the venv's)")
    p.add_argument("--baseline", default=None, metavar="PATH",
                   help=f"another skiff-runtime measured beside the others as {BASELINE!r} "
                        "(e.g. a launcher on an older commit's src/: before and after in one run)")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default bench/results/runtime-<ts>.json)")
    p.add_argument("--no-containerd", action="store_true",
                   help="leave out e. (ctr run through a containerd of the bench's own)")
    p.add_argument("-v", "--verbose", action="store_true", help="show hyperfine's own output")
    a = p.parse_args(argv)
    if a.runs < 1 or a.warmup < 0:
        p.error("--runs must be >= 1 and --warmup >= 0")
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/runtime.py needs root (runc and crun run real containers)", file=sys.stderr)
        return 2
    try:
        tools = find_tools(a.skiff, containerd=not a.no_containerd, baseline=a.baseline)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so that clean-up still runs

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_json: Path = a.out or RESULTS_DIR / f"runtime-{stamp}.json"
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-runtime-"))
    failures: list[Failure] = []
    rts: dict[str, Runtime] = {}
    parents_before = parent_cgroups()
    doc: dict[str, Any] = {"timestamp": stamp, "args": {"runs": a.runs, "warmup": a.warmup,
                                                       "containerd": not a.no_containerd,
                                                       "baseline": a.baseline}}
    try:
        doc["machine"] = machine_info(tools)
        log(f"bundles in {work}")
        names = [k for k in ORDER if k in tools]
        rts = make_bundles(work, {k: tools[k] for k in names}, tools["runc"])
        doc["bundle"] = {"args": ["/bin/true"], "terminal": False,
                         "cgroupsPath": {k: f"/{CGROUP_PARENT}/bench-{k}" for k in names}}
        t0 = time.monotonic()
        doc["run"] = section_run(rts, tools["hyperfine"], a.runs, a.warmup, work, a.verbose, failures)
        doc["run_idle"] = section_run(rts, tools["hyperfine"], a.runs, a.warmup, work, a.verbose,
                                      failures, prepare=IDLE_GAP)
        doc["lifecycle"] = section_lifecycle(rts, a.runs, work, failures)
        doc["floor"] = section_floor(tools, tools["hyperfine"], a.runs, a.warmup, work, a.verbose, failures)
        doc["exec"] = section_exec(rts, tools["hyperfine"], a.runs, a.warmup, work, a.verbose, failures)
        if not a.no_containerd:
            doc["containerd_run"], forced = section_containerd(rts, tools["hyperfine"], a.runs, a.warmup,
                                                               work, a.verbose, failures)
            if forced:
                failures.append(Failure("cleanup", "containerd", [], None, "had to force: " + ", ".join(forced)))
        doc["elapsed_s"] = round(time.monotonic() - t0, 1)
    finally:
        doc["leftovers"] = cleanup(rts, work, parents_before)
    if doc["leftovers"]:
        failures.append(Failure("cleanup", "cgroups", [], None,
                                "left by the runtimes: " + ", ".join(doc["leftovers"])))
    doc["failures"] = [f.as_dict() for f in failures]
    doc["json"] = str(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(doc, indent=1) + "\n")
    print(report(doc))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
