"""skiff-runtime as a drop-in for runc under a real engine: Debian's podman 4.3 (with conmon 2.1)
drives `.venv/bin/skiff-runtime` through `podman --runtime`, and the same commands against runc
are the control, so a failure that only the skiff case shows is skiff's.

Everything podman makes stays under one temporary folder (`--root`, `--runroot`, `--tmpdir`,
the network config dir, TMPDIR) with its own containers.conf (CONTAINERS_CONF), so nothing goes
to /etc/containers, and of /var/lib/containers only the blob-info cache that `podman import`
writes at a fixed path (removed after, with netavark's fixed /run/containers/networks, if this
module made them). The containers.conf does three things:

* `default_ulimits`: podman as root asks for nofile=1048576 and nproc=4194304 in every container,
  which the runtime cannot set where root lacks CAP_SYS_RESOURCE (as on this VM: runc fails with
  "error setting rlimit type 7"); the host's own hard limits are asked for instead, as
  ../shared/peers/peers.sh does in /etc/containers/containers.conf.
* `runtime_supports_json`: podman decides by the runtime's *name* whether to pass
  `--log-format=json --log <userdata>/oci-log` to `create` and `exec` (its default list is crun,
  runc, kata, runsc, youki, krun). skiff-runtime is added, so podman calls it exactly as it calls
  runc, and reads its errors from that JSON log.
* `network_config_dir`: else podman as root makes /etc/containers/networks.

What podman passes to the runtime (seen with a logging wrapper): `create --bundle B --pid-file F
[--console-socket S] ID` (through conmon), `start ID`, `exec --pid-file F --process P --detach
[--console-socket S] ID`, `kill ID 15`, `kill ID 9`, `pause ID`, `resume ID`, `update
--resources=FILE ID`, `delete --force ID`. As root it passes no `--root`, and skiff-runtime would
keep the state in its default root /run/skiff/runtime (as runc uses /run/runc) — the machine's,
not the test's. Podman runs the runtime with an environment of its own making, so a SKIFF_RUN in
podman's environment does not reach it, and `podman --runtime-flag root=DIR` reaches only the
calls of that podman command, not those of the `podman container cleanup` that conmon starts when
a container exits (its exit command has no runtime flags). So podman is given, as its runtime, a
two-line script named skiff-runtime in this module's folder that runs `.venv/bin/skiff-runtime
--root DIR "$@"`: every call, conmon's and cleanup's too, keeps its state in this module's DIR.

Containers get the cgroup /libpod_parent/libpod-<ID> (`--cgroup-manager cgroupfs`); podman puts
conmon in /libpod_parent/conmon. Both parents are removed at the end if this module made them.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from conftest import RUNTIME, run_captured

pytestmark = [pytest.mark.root, pytest.mark.slow]

PODMAN = shutil.which("podman")
RUNC = shutil.which("runc")
IMAGE = "localhost/skiff-busybox:podman-test"
CGROUP = Path("/sys/fs/cgroup")
DEFAULT_STATE = Path("/run/skiff/runtime")  # skiff-runtime's default --root: never used here
# made by podman as root whatever --root/--runroot say: the blob-info cache of `podman import`
# (containers/image's fixed system path) and netavark's run dir; removed after if made here
PODMAN_FIXED_DIRS = [Path("/var/lib/containers"), Path("/run/containers")]
CID_RE = re.compile(r"^[0-9a-f]{64}$")
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done"


def cgroup_hierarchies() -> list[Path]:
    return sorted(p for p in CGROUP.iterdir() if p.is_dir() and os.path.ismount(p))


def libpod_children() -> set[str]:
    return {str(d) for h in cgroup_hierarchies() if (h / "libpod_parent").is_dir()
            for d in (h / "libpod_parent").iterdir() if d.is_dir()}


@dataclass
class Podman:
    """Debian's podman on storage of its own; each call picks the OCI runtime."""

    base: Path
    env: dict[str, str]

    @property
    def skiff_state(self) -> Path:
        """skiff-runtime's --root for every call podman makes of it."""
        return self.base / "skiff-runtime-state"

    @property
    def skiff_runtime(self) -> Path:
        """What podman runs for RUNTIME: it, on `skiff_state` (see the module's docstring)."""
        return self.base / "bin" / "skiff-runtime"

    def argv(self, runtime: str) -> list[str]:
        b = self.base
        runtime = str(self.skiff_runtime) if runtime == RUNTIME else runtime
        return [PODMAN or "podman", "--runtime", runtime, "--cgroup-manager", "cgroupfs",
                "--root", str(b / "storage"), "--runroot", str(b / "run"), "--tmpdir", str(b / "tmp"),
                "--network-config-dir", str(b / "networks"), "--events-backend", "none",
                "--log-level", "error"]

    def runtime_state(self, cid: str) -> subprocess.CompletedProcess[str]:
        """`skiff-runtime state` of `cid` in the root podman has it use."""
        return subprocess.run([RUNTIME, "--root", str(self.skiff_state), "state", cid],
                              capture_output=True, text=True, env=self.env)

    def __call__(self, *args: str, runtime: str = RUNTIME, check: bool = True, timeout: float = 60,
                 stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
        argv = [*self.argv(runtime), *args]
        # in its own folder: conmon writes an `oom` file where it runs when its container is
        # OOM-killed
        p = run_captured(argv, self.env, stdin=stdin, timeout=timeout, cwd=self.base)
        if check and p.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} (runtime {runtime}) exited {p.returncode}:\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def inspect(self, cid: str, fmt: str) -> str:
        return self("inspect", "--format", fmt, cid).stdout.strip()

    def counter(self, cid: str) -> int:
        """What COUNTER last wrote, read through the init's root (also while it is frozen)."""
        pid = self.inspect(cid, "{{.State.Pid}}")
        return int(Path(f"/proc/{pid}/root/tmp/count").read_text() or 0)


def podman_processes(base: Path) -> list[int]:
    """conmon and `podman container cleanup` processes that work on this module's storage."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(base).encode() in cmdline:
            found.append(int(pid))
    return found


def mounts_under(base: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1] for line in f]
    return [t for t in targets if t == str(base) or t.startswith(str(base) + "/")]


def write_containers_conf(path: Path, base: Path) -> None:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    if nproc == resource.RLIM_INFINITY or nproc > 32768:
        nproc = 32768  # podman lowers its own RLIMIT_NPROC to 32768 before it starts anything
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "skiff-runtime"]\n'
        "[network]\n"
        f'network_config_dir = "{base / "networks"}"\n')


@pytest.fixture(scope="module")
def podman(tmp_root: Path, busybox_rootfs: Path) -> Iterator[Podman]:
    if PODMAN is None:
        pytest.skip("podman is not installed (Debian package `podman`, in the Makefile's APT_TEST)")
    base = tmp_root / "podman"
    for sub in ("tmp", "vartmp", "networks"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    write_containers_conf(base / "containers.conf", base)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CONTAINERS_", "SKIFF_")) and k != "XDG_RUNTIME_DIR"}
    env.update(CONTAINERS_CONF=str(base / "containers.conf"), TMPDIR=str(base / "vartmp"))
    pm = Podman(base, env)
    pm.skiff_runtime.parent.mkdir()
    pm.skiff_runtime.write_text(f'#!/bin/sh\nexec {RUNTIME} --root {pm.skiff_state} "$@"\n')
    pm.skiff_runtime.chmod(0o755)
    before = Before(
        libpod_parent={h.name for h in cgroup_hierarchies() if (h / "libpod_parent").exists()},
        libpod_children=libpod_children(),
        default_state=set(os.listdir(DEFAULT_STATE)) if DEFAULT_STATE.is_dir() else set(),
        fixed_dirs={d for d in PODMAN_FIXED_DIRS if d.exists()})
    try:
        tar = subprocess.Popen(["tar", "-C", str(busybox_rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run([*pm.argv(RUNTIME), "import", "-q", "-", IMAGE], stdin=tar.stdout,
                             capture_output=True, text=True, env=env, timeout=120)
        assert tar.stdout is not None
        tar.stdout.close()
        assert tar.wait() == 0 and imp.returncode == 0, f"podman import failed: {imp.stderr}"
        yield pm
    finally:
        problems = teardown(pm, before)
        assert not problems, "podman tests left things behind:\n  " + "\n  ".join(problems)


@dataclass
class Before:
    """What was there before this module, so that only what it made is checked and removed."""

    libpod_parent: set[str]
    libpod_children: set[str]
    default_state: set[str]
    fixed_dirs: set[Path]


def teardown(pm: Podman, before: Before) -> list[str]:
    base = pm.base
    problems: list[str] = []
    if (base / "storage").exists():
        # any container a failed test left: `rm -f` goes through the runtime (kill, delete)
        pm("rm", "--all", "--force", "--time", "0", check=False)
        pm("system", "reset", "--force", check=False)  # images, storage, and their overlay mounts
    deadline = time.monotonic() + 15
    while podman_processes(base) and time.monotonic() < deadline:
        time.sleep(0.1)
    problems += [f"process {pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()!r}"
                 for pid in podman_processes(base)]
    for target in sorted(mounts_under(base), key=len, reverse=True):
        problems.append(f"mount {target}")
        subprocess.run(["umount", target], check=False)
    # containers' cgroups: podman made /libpod_parent/libpod-<ID>, the runtime must remove them
    problems += [f"cgroup {d}" for d in sorted(libpod_children() - before.libpod_children)
                 if Path(d).name.startswith("libpod-")]
    # podman's own parents: remove them if this module made them and they are empty
    for h in cgroup_hierarchies():
        if h.name in before.libpod_parent:
            continue
        for d in (h / "libpod_parent" / "conmon", h / "libpod_parent"):
            if d.is_dir() and not (d / "cgroup.procs").read_text().strip():
                try:
                    d.rmdir()
                except OSError:
                    pass  # has children: reported above if they are ours
    # skiff-runtime state of the containers this module made, in its root or (a runtime
    # call without --root) in the default one
    if pm.skiff_state.is_dir():
        problems += [f"skiff-runtime state {pm.skiff_state / n}"
                     for n in sorted(os.listdir(pm.skiff_state)) if CID_RE.match(n)]
    if DEFAULT_STATE.is_dir():
        problems += [f"skiff-runtime state {DEFAULT_STATE / n}" for n in sorted(os.listdir(DEFAULT_STATE))
                     if n not in before.default_state and CID_RE.match(n)]
    for d in PODMAN_FIXED_DIRS:
        if d not in before.fixed_dirs and d.exists():
            shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    return problems


def run_rm(pm: Podman, *args: str, opts: tuple[str, ...] = (), runtime: str = RUNTIME,
           **kw) -> subprocess.CompletedProcess[str]:
    return pm("run", "--rm", "--network", "none", *opts, IMAGE, *args, runtime=runtime, check=False, **kw)


# -- 1 and 4: run --rm, output and exit code; runc as the control ---------------------------
RUNTIMES = [pytest.param(RUNTIME, id="skiff-runtime"), pytest.param("runc", id="runc-control")]


def needs(rt: str) -> None:
    if rt == "runc" and RUNC is None:
        pytest.skip("runc is not installed (Debian package `runc`, in APT_TEST)")


@pytest.mark.parametrize("rt", RUNTIMES)
def test_run_rm_prints_output_and_returns_exit_code(podman: Podman, rt: str) -> None:
    needs(rt)
    p = run_rm(podman, "echo", "hello", runtime=rt)
    assert (p.returncode, p.stdout, p.stderr) == (0, "hello\n", "")
    p = run_rm(podman, "sh", "-c", "exit 3", runtime=rt)
    assert (p.returncode, p.stdout, p.stderr) == (3, "", "")
    assert podman("ps", "-aq", runtime=rt).stdout == ""


# -- 2: detached container: ps, exec, update, stop, rm, and nothing left ----------------------
def test_detached_container_lifecycle(podman: Podman) -> None:
    cid = podman("run", "-d", "--network", "none", IMAGE, "sleep", "1000").stdout.strip()
    assert CID_RE.match(cid), cid
    ps = podman("ps", "--no-trunc", "--format", "{{.ID}} {{.Status}} {{.Command}}").stdout.splitlines()
    assert len(ps) == 1 and ps[0].startswith(f"{cid} Up ") and ps[0].endswith("sleep 1000"), ps
    assert podman.inspect(cid, "{{.State.Status}}") == "running"

    # what skiff-runtime itself says, in the root podman's calls of it have
    pid = int(podman.inspect(cid, "{{.State.Pid}}"))
    st = json.loads(podman.runtime_state(cid).stdout)
    assert (st["id"], st["status"], st["pid"]) == (cid, "running", pid)
    assert (podman.skiff_state / cid).is_dir() and not (DEFAULT_STATE / cid).exists()
    cgroup_path = podman.inspect(cid, "{{.State.CgroupPath}}")
    assert cgroup_path == f"/libpod_parent/libpod-{cid}"
    memcg = CGROUP / "memory" / cgroup_path.lstrip("/")
    assert str(pid) in (memcg / "cgroup.procs").read_text().split()

    # exec through conmon: `exec --process P --detach`, plain and with a terminal
    p = podman("exec", cid, "cat", "/proc/1/cmdline")
    assert p.stdout.split("\0")[:2] == ["sleep", "1000"]
    assert podman("exec", cid, "sh", "-c", "exit 5", check=False).returncode == 5
    p = podman("exec", "-t", cid, "sh", "-c", "test -t 0 && echo TTY")
    assert p.stdout == "TTY\r\n"

    # update: `update --resources=FILE ID`
    podman("update", "--memory", "256m", cid)
    assert (memcg / "memory.limit_in_bytes").read_text().strip() == str(256 << 20)

    # sleep as pid 1 ignores TERM: stop sends kill 15, then kill 9 after the timeout
    t0 = time.monotonic()
    podman("stop", "-t", "1", cid)
    assert time.monotonic() - t0 < 10
    assert podman.inspect(cid, "{{.State.Status}}") == "exited"
    assert podman.inspect(cid, "{{.State.ExitCode}}") == "137"
    podman("rm", cid)
    assert podman("ps", "-aq").stdout == ""
    assert not (podman.skiff_state / cid).exists()
    assert podman.runtime_state(cid).returncode == 1
    assert [str(h) for h in cgroup_hierarchies() if (h / cgroup_path.lstrip("/")).exists()] == []


def test_pause_unpause(podman: Podman) -> None:
    cid = podman("run", "-d", "--network", "none", IMAGE, "sleep", "1000").stdout.strip()
    try:
        p = podman("pause", cid, check=False)
        if p.returncode != 0 and "not supported" in p.stderr:
            pytest.skip(f"podman cannot pause here: {p.stderr.strip()}")
        assert p.returncode == 0, p.stderr
        freezer = CGROUP / "freezer" / "libpod_parent" / f"libpod-{cid}" / "freezer.state"
        assert podman.inspect(cid, "{{.State.Status}}") == "paused"
        if freezer.exists():
            assert freezer.read_text().strip() == "FROZEN"
        st = json.loads(podman.runtime_state(cid).stdout)
        assert st["status"] == "paused"
        podman("unpause", cid)
        assert podman.inspect(cid, "{{.State.Status}}") == "running"
        if freezer.exists():
            assert freezer.read_text().strip() == "THAWED"
        assert podman("exec", cid, "echo", "alive").stdout == "alive\n"
    finally:
        podman("rm", "--force", "--time", "0", cid, check=False)
    assert not (podman.skiff_state / cid).exists()


# -- 3: a terminal through conmon's console socket -------------------------------------------
@pytest.mark.parametrize("rt", RUNTIMES)
def test_run_tty_through_console_socket(podman: Podman, rt: str) -> None:
    needs(rt)
    # podman 4.3 does not insist on a terminal of its own for -t without -i
    p = run_rm(podman, "sh", "-c", "test -t 0 && echo TTY; exit 4", opts=("-t",), runtime=rt)
    assert (p.returncode, p.stdout) == (4, "TTY\r\n"), p.stderr  # the pty's onlcr: \r\n
    p = run_rm(podman, "sh", "-c", "test -t 0 && echo TTY || echo no-tty", runtime=rt)
    assert (p.returncode, p.stdout) == (0, "no-tty\n")


# -- the same steps with runc as the control: -d, exec, pause, stop; resource flags ---------
@pytest.mark.parametrize("rt", RUNTIMES)
def test_detached_exec_pause_stop_as_runc(podman: Podman, rt: str) -> None:
    needs(rt)
    cid = podman("run", "-d", "--network", "none", IMAGE, "sh", "-c", COUNTER,
                 runtime=rt).stdout.strip()
    try:
        p = podman("exec", cid, "sh", "-c", "echo in; exit 5", check=False, runtime=rt)
        assert (p.returncode, p.stdout) == (5, "in\n"), p.stderr
        p = podman("exec", "-t", cid, "sh", "-c", "test -t 0 && echo TTY", runtime=rt)
        assert p.stdout == "TTY\r\n"
        podman("pause", cid, runtime=rt)
        assert podman.inspect(cid, "{{.State.Status}}") == "paused"
        first = podman.counter(cid)
        time.sleep(0.4)
        assert podman.counter(cid) == first  # frozen: the counter does not move
        podman("unpause", cid, runtime=rt)
        assert podman.inspect(cid, "{{.State.Status}}") == "running"
        deadline = time.monotonic() + 10
        while podman.counter(cid) <= first + 2:
            assert time.monotonic() < deadline, "the counter did not go on after unpause"
            time.sleep(0.05)
        # sh as PID 1 ignores TERM: stop sends it, then KILL after the timeout
        podman("stop", "-t", "1", cid, runtime=rt)
        assert (podman.inspect(cid, "{{.State.Status}}"),
                podman.inspect(cid, "{{.State.ExitCode}}")) == ("exited", "137")
    finally:
        podman("rm", "--force", "--time", "0", cid, check=False, runtime=rt)
    assert podman("ps", "-aq", runtime=rt).stdout == ""


@pytest.mark.parametrize("rt", RUNTIMES)
def test_memory_and_pids_limits(podman: Podman, rt: str) -> None:
    needs(rt)
    opts = ("--memory", "64m", "--pids-limit", "8")
    cid = podman("run", "-d", "--network", "none", *opts, IMAGE, "sleep", "1000",
                 runtime=rt).stdout.strip()
    try:
        cgroup = podman.inspect(cid, "{{.State.CgroupPath}}").lstrip("/")
        assert (CGROUP / "memory" / cgroup / "memory.limit_in_bytes").read_text() == f"{64 << 20}\n"
        assert (CGROUP / "pids" / cgroup / "pids.max").read_text() == "8\n"
        assert (podman.inspect(cid, "{{.HostConfig.Memory}}"),
                podman.inspect(cid, "{{.HostConfig.PidsLimit}}")) == (str(64 << 20), "8")
    finally:
        podman("rm", "--force", "--time", "0", cid, check=False, runtime=rt)
    # what the limits do: tail keeps a line without an end in memory (no swap here: killed),
    # and the ninth process cannot be forked
    p = run_rm(podman, "sh", "-c", "head -c 200m /dev/zero | tail > /dev/null", opts=opts,
               runtime=rt)
    assert p.returncode == 137, p.stderr
    p = run_rm(podman, "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; wait",
               opts=opts, runtime=rt)
    assert "can't fork" in p.stderr, (p.returncode, p.stderr)


# -- a create that fails: podman reports the runtime's error (from the --log JSON file) ------
# After the failed create podman runs `<runtime> delete --force ID` for a container the runtime
# no longer knows; runc exits 0 there without a word (delete.go: ErrNotExist and --force), and so
# must skiff-runtime, else podman prints its complaint and 'level=error msg="Removing container
# ID from runtime after creation failed"' (skiff-runtime did, until `delete --force` matched runc).
@pytest.mark.parametrize("rt", RUNTIMES)
def test_failed_create_reports_the_runtime_error(podman: Podman, rt: str) -> None:
    needs(rt)
    p = run_rm(podman, "/nonexistent", runtime=rt)
    assert p.returncode == 127
    errors = p.stderr.strip().splitlines()
    # podman's own summary, with the runtime's message read from `--log` (`--log-format=json`)
    assert errors[-1].startswith("Error: ") and os.path.basename(rt) in errors[-1], p.stderr
    assert 'exec: "/nonexistent"' in errors[-1] and "command that was not found" in errors[-1]
    assert podman("ps", "-aq", runtime=rt).stdout == ""
    assert len(errors) == 1, p.stderr  # nothing else: the clean-up after the failure went fine
