"""skiff-runtime under containerd: Debian's containerd 1.6 and its runc v2 shim
(containerd-shim-runc-v2) drive `.venv/bin/skiff-runtime` through `ctr run --runc-binary`, and
the same commands with runc (`--runc-binary runc`) are the control: each test runs its steps
with both and checks that they see the same, so a failure only the skiff case shows is skiff's.

The module starts a containerd of its own: its root, state, sockets and config under one
temporary folder; the CRI plugin and the snapshotters it does not need disabled (it starts in
~30 ms), overlayfs as the snapshotter. Two paths are fixed in containerd 1.6 whatever the config
says: the shim's socket in /run/containerd/s and ctr's FIFOs in /run/containerd/fifo. So
containerd runs in a mount namespace of its own (`unshare --mount`) where a folder of the
module's is bound over /run/containerd; its shims inherit that namespace, ctr joins it through
`nsenter`, and the host's /run/containerd (another containerd may be using it) is never written.
The namespace ends with its last process; the overlay mounts of the containers' root
filesystems live in it, and the teardown checks that none is left before it stops containerd.

What the shim passes to the runtime (seen with a logging wrapper as `--runc-binary`): the
globals `--root R --log B/log.json --log-format json` (and `--systemd-cgroup` with
`--runc-systemd-cgroup`), then `create --bundle B --pid-file B/init.pid [--console-socket S]
ID`, `start ID`, `exec --process F [--console-socket S] --detach --pid-file P ID`, `ps --format
json ID`, `pause ID`, `resume ID`, `kill [--all] ID SIG`, `delete ID` and `delete --force ID`.
On a failure it shows the last error of the JSON log. `ctr task metrics` does not call the
runtime: the shim reads the cgroup of the init's pid itself.

cgroups: each test's container gets `--cgroup /skiff/<the suite's prefix>/containerd/<id>`, an
absolute path, so no runtime puts it below the caller's own cgroup (which is not ours to touch).
Without `--cgroup` ctr asks for `/<namespace>/<id>`, which both runtimes take from the
hierarchy's root (test_default_cgroup_path). runc leaves the parents it made; the teardown
removes those that this module made.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from conftest import CGROUP_PREFIX, RUNTIME, TMP_MARK, run_captured, run_on_a_pty

pytestmark = [pytest.mark.root, pytest.mark.slow]

CONTAINERD = shutil.which("containerd")
CTR = shutil.which("ctr")
SHIM = shutil.which("containerd-shim-runc-v2")
RUNC = shutil.which("runc")
IMAGE = "docker.io/library/busybox:latest"
NAMESPACE = f"skiff-test-{os.getpid()}"  # containerd's; ctr's default cgroup is /<it>/<id>
CGROUP = Path("/sys/fs/cgroup")
PARENT = f"skiff/{CGROUP_PREFIX}/containerd"  # the tests' containers' cgroups, below each root
SLICE = f"skifftest{os.getpid()}.slice"  # for --runc-systemd-cgroup: nothing may be made there
HOST_RUN = Path("/run/containerd")  # bound over in containerd's mount namespace, never written
# the CRI plugin would want CNI and start slowly; the other snapshotters are not used here
DISABLED_PLUGINS = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done"


@dataclass(frozen=True)
class Oci:
    """One OCI runtime as ctr is told to use it: the binary and a state root of its own."""

    name: str
    binary: str
    root: Path  # the shim adds the namespace: the containers' states are in root/<namespace>

    @property
    def states(self) -> Path:
        return self.root / NAMESPACE


@dataclass
class Containerd:
    """The module's containerd, driven by ctr inside its mount namespace."""

    base: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    runtimes: dict[str, Oci] = field(default_factory=dict)

    @property
    def sock(self) -> str:
        return str(self.base / "containerd.sock")

    def argv(self, *args: str) -> list[str]:
        # nsenter's setns puts the cwd at the namespace's root: every path given is absolute
        return ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt", "--", CTR or "ctr",
                "-a", self.sock, "-n", NAMESPACE, *args]

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        p = run_captured(self.argv(*args), self.env, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} exited {p.returncode}:\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def run_opts(self, rt: Oci, cid: str, cgroup: bool = True) -> list[str]:
        opts = ["--runc-binary", rt.binary, "--runc-root", str(rt.root)]
        return opts + (["--cgroup", f"/{PARENT}/{cid}"] if cgroup else [])

    def run(self, rt: Oci, cid: str, *cmd: str, opts: tuple[str, ...] = (),
            check: bool = False) -> subprocess.CompletedProcess[str]:
        return self("run", "--rm", *self.run_opts(rt, cid), *opts, IMAGE, cid, *cmd, check=check)

    def start_detached(self, rt: Oci, cid: str, *cmd: str, opts: tuple[str, ...] = ()) -> int:
        """A running task (`run -d`), by its init's pid."""
        self("run", "-d", *self.run_opts(rt, cid), *opts, IMAGE, cid, *cmd)
        return self.task(cid)[0]

    def task(self, cid: str) -> tuple[int, str]:
        """(pid, status) of the container's task, as `ctr task ls` shows them."""
        for line in self("task", "ls").stdout.splitlines()[1:]:
            words = line.split()
            if words and words[0] == cid:
                return int(words[1]), words[2]
        raise AssertionError(f"no task {cid}")

    def remove(self, cid: str) -> None:
        """Kill and delete the task and the container, as a failed test may leave them."""
        self("task", "kill", "--all", "--signal", "SIGKILL", cid, check=False)
        deadline = time.monotonic() + 10
        while self("task", "rm", "--force", cid, check=False).returncode != 0:
            if "not found" in self("task", "ls").stdout or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self("containers", "rm", cid, check=False)

    def containers(self) -> list[str]:
        return self("containers", "ls", "-q").stdout.split()


def write_config(base: Path) -> Path:
    path = base / "config.toml"
    path.write_text(
        "version = 2\n"
        f'root = "{base / "root"}"\n'
        f'state = "{base / "state"}"\n'
        f"disabled_plugins = {json.dumps(DISABLED_PLUGINS)}\n"
        "[grpc]\n"
        f'  address = "{base / "containerd.sock"}"\n'
        "[ttrpc]\n"
        f'  address = "{base / "containerd.sock.ttrpc"}"\n'
        "[debug]\n"
        '  address = ""\n'
        "[metrics]\n"
        '  address = ""\n'
        '[plugins."io.containerd.internal.v1.opt"]\n'
        f'  path = "{base / "opt"}"\n')
    return path


def busybox_image(path: Path) -> None:
    """`skiff save` of the built-in busybox, made in a store of the fixture's own."""
    from skiff.store.archive import save
    from skiff.store.builtin import ensure_busybox
    from skiff.store.images import ImageStore
    store = ImageStore(path.parent / "image-store")
    ensure_busybox(store)
    with open(path, "wb") as f:
        save(store, ["busybox:latest"], f)


def hierarchies() -> list[Path]:
    return sorted(p for p in CGROUP.iterdir() if p.is_dir() and os.path.ismount(p))


def shim_pids(sock: str) -> list[int]:
    """The shims that serve this containerd (their command line names its socket)."""
    wanted = f"\0-address\0{sock}\0".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if wanted in cmdline:
            found.append(int(pid))
    return found


def mounts_under(pid: int, base: Path) -> list[str]:
    try:
        lines = Path(f"/proc/{pid}/mounts").read_text().splitlines()
    except OSError:
        return []
    targets = [line.split()[1] for line in lines]
    return [t for t in targets if t.startswith(str(base) + "/")]


@dataclass
class Before:
    """What was there before the module, so that only what it made is removed."""

    host_run: bool
    cgroup_dirs: set[str]


def our_cgroup_dirs() -> set[str]:
    """The parents this module's containers may make: skiff's prefix, /<namespace>, the slice."""
    return {str(h / sub) for h in hierarchies()
            for sub in ("skiff", f"skiff/{CGROUP_PREFIX}", PARENT, NAMESPACE, SLICE)
            if (h / sub).is_dir()}


@pytest.fixture(scope="module")
def containerd(tmp_root: Path) -> Iterator[Containerd]:
    for tool in (CONTAINERD, CTR, SHIM):
        if tool is None:
            pytest.skip("containerd is not installed (Debian package `containerd`, in APT_TEST)")
    base = tmp_root / "containerd"
    for sub in ("run-containerd", "tmp", "skiff-run", "runtimes"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    busybox_image(base / "busybox.tar")
    before = Before(host_run=HOST_RUN.exists(), cgroup_dirs=our_cgroup_dirs())
    HOST_RUN.mkdir(mode=0o700, exist_ok=True)  # the bind's mount point; removed after if made
    # the shims inherit this environment, and the runtimes they call: TMPDIR takes the shim's
    # console sockets and go-runc's process files, SKIFF_TEST_RUN lets the suite's final
    # check find a process left behind
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CONTAINERD_", "SKIFF_")) and k != "XDG_RUNTIME_DIR"}
    env.update(TMPDIR=str(base / "tmp"), SKIFF_RUN=str(base / "skiff-run"), SKIFF_TEST_RUN=TMP_MARK)
    log = open(base / "containerd.log", "wb")
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
         'mount --bind "$1" /run/containerd && exec "$2" --config "$3"', "sh",
         str(base / "run-containerd"), CONTAINERD or "containerd", str(write_config(base))],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
        start_new_session=True)
    c = Containerd(base, proc, env)
    for name, binary in (("skiff", RUNTIME), ("runc", RUNC)):
        if binary is not None:
            c.runtimes[name] = Oci(name, binary, base / "runtimes" / name)
    try:
        deadline = time.monotonic() + 30
        while c("version", check=False).returncode != 0:
            assert proc.poll() is None, (base / "containerd.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "containerd did not answer within 30 s"
            time.sleep(0.05)
        c("images", "import", str(base / "busybox.tar"))
        yield c
    finally:
        problems = teardown(c, before)
        log.close()
        assert not problems, "the containerd tests left things behind:\n  " + "\n  ".join(problems)


def teardown(c: Containerd, before: Before) -> list[str]:
    problems: list[str] = []
    if c.proc.poll() is None:
        for cid in c.containers():
            problems.append(f"container {cid}")
            c.remove(cid)
        c("images", "rm", IMAGE, check=False)
        problems += [f"mount {m}" for m in mounts_under(c.proc.pid, c.base)]
    # a shim exits once its last task is deleted; one still there after that is killed
    deadline = time.monotonic() + 10
    while shim_pids(c.sock) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in shim_pids(c.sock):
        problems.append(f"shim {pid}")
        os.kill(pid, signal.SIGKILL)
    c.proc.terminate()
    try:
        c.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        problems.append("containerd did not stop on SIGTERM")
        c.proc.kill()
        c.proc.wait()
    for rt in c.runtimes.values():
        if rt.states.is_dir():
            problems += [f"{rt.name} state {rt.states / n}" for n in os.listdir(rt.states)
                         if not n.startswith(".")]  # skiff's .seccomp cache is no container
    left: list[str] = []
    for h in hierarchies():
        for sub in (PARENT, NAMESPACE, SLICE):
            d = h / sub
            for k in [k for k in d.iterdir() if k.is_dir()] if d.is_dir() else []:
                problems.append(f"cgroup {k}")
                left += [walked[0] for walked in os.walk(k)]
    # those, then the parents this module made, deepest first
    for made in sorted(set(left) | (our_cgroup_dirs() - before.cgroup_dirs), key=len, reverse=True):
        try:
            os.rmdir(made)
        except OSError:
            pass  # a process still in it (reported above), or another test's cgroup below
    shutil.rmtree(c.base, ignore_errors=True)
    if not before.host_run:
        try:
            HOST_RUN.rmdir()
        except OSError:
            pass  # someone else's containerd has put things in it since
    return problems


# -- helpers ----------------------------------------------------------------------------
def new_id(what: str, rt: Oci) -> str:
    return f"{what}-{rt.name}-{uuid.uuid4().hex[:6]}"


def both(c: Containerd, probe: Callable[[Oci], Any]) -> Any:
    """`probe` with skiff-runtime and, as the control, with runc: what skiff's run saw, once
    it is checked to be what runc's saw."""
    seen = {name: probe(rt) for name, rt in c.runtimes.items()}
    if "runc" in seen:
        assert seen["skiff"] == seen["runc"], f"skiff-runtime and runc differ: {seen}"
    return seen["skiff"]


def cgroup_of(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    raise AssertionError(f"pid {pid} has no {controller} cgroup")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def gone(c: Containerd, rt: Oci, cid: str) -> bool:
    """Nothing of `cid` is left: no container, no runtime state, no cgroup."""
    return (cid not in c.containers() and not (rt.states / cid).exists()
            and not any((h / PARENT / cid).exists() for h in hierarchies()))


# -- run: output and exit code, with and without a terminal -------------------------------
def test_run_prints_output_and_returns_the_exit_code(containerd: Containerd) -> None:
    def probe(rt: Oci) -> tuple[object, ...]:
        cid = new_id("run", rt)
        p = containerd.run(rt, cid, "sh", "-c", "echo hello; echo oops >&2; exit 3")
        ok = containerd.run(rt, cid + "-0", "true")
        # no IO: the shim gives the runtime a read-only /dev/null as stdio, which init
        # reopens read-write (runc's reOpenDevNull), so that writes to it do not fail
        null = containerd.run(rt, cid + "-n", "sh", "-c", "echo out && echo err >&2 && exit 5",
                              opts=("--null-io",))
        return (p.returncode, p.stdout, p.stderr, ok.returncode, (null.returncode, null.stdout),
                gone(containerd, rt, cid))

    assert both(containerd, probe) == (3, "hello\n", "oops\n", 0, (5, ""), True)


def test_run_with_a_terminal(containerd: Containerd) -> None:
    def probe(rt: Oci) -> tuple[int, bytes]:
        cid = new_id("tty", rt)
        argv = containerd.argv("run", "--rm", "-t", *containerd.run_opts(rt, cid), IMAGE, cid,
                               "sh", "-c", "test -t 0 && echo TTY; exit 4")
        code, out = run_on_a_pty(argv, containerd.env)
        assert gone(containerd, rt, cid)
        return code, out

    code, out = both(containerd, probe)
    # the container's own pty (the shim holds its master from the console socket) passes
    # through ctr's, each with its onlcr
    assert (code, out) == (4, b"TTY\r\r\n")


def test_a_failed_create_reports_the_runtime_error(containerd: Containerd) -> None:
    def probe(rt: Oci) -> tuple[object, ...]:
        cid = new_id("bad", rt)
        p = containerd.run(rt, cid, "/nonexistent")
        # the shim's words, then the runtime's own from its --log JSON file
        err = p.stderr.strip()
        return (p.returncode, err.startswith("ctr: failed to create shim task: OCI runtime create "
                                             "failed: "),
                'exec: "/nonexistent"' in err and "no such file or directory" in err,
                gone(containerd, rt, cid))

    assert both(containerd, probe) == (1, True, True, True)


# -- a running task: exec, ps, metrics, pause and resume, kill ------------------------------
def test_exec_output_exit_code_and_terminal(containerd: Containerd) -> None:
    def probe(rt: Oci) -> tuple[object, ...]:
        cid = new_id("exec", rt)
        containerd.start_detached(rt, cid, "sleep", "1000")
        try:
            p = containerd("task", "exec", "--exec-id", "e1", cid,
                           "sh", "-c", "echo in; cat /proc/1/cmdline; exit 7", check=False)
            code, out = run_on_a_pty(containerd.argv("task", "exec", "-t", "--exec-id", "e2", cid,
                                                 "sh", "-c", "test -t 0 && echo TTY; exit 9"),
                                 containerd.env)
            bad = containerd("task", "exec", "--exec-id", "e3", cid, "/nonexistent", check=False)
            return (p.returncode, p.stdout, code, out.startswith(b"TTY\r\r\n"), bad.returncode,
                    bad.stderr.startswith("ctr: OCI runtime exec failed: ")
                    and 'exec: "/nonexistent"' in bad.stderr)
        finally:
            containerd.remove(cid)

    assert both(containerd, probe) == (7, "in\nsleep\x001000\x00", 9, True, 1, True)


def test_ps_lists_the_container_processes(containerd: Containerd) -> None:
    def probe(rt: Oci) -> tuple[object, ...]:
        cid = new_id("ps", rt)
        pid = containerd.start_detached(rt, cid, "sleep", "1000")
        try:
            containerd("task", "exec", "-d", "--exec-id", "bg", cid, "sleep", "999")
            cgroup = CGROUP / "pids" / PARENT / cid / "cgroup.procs"
            wait_for(lambda: len(cgroup.read_text().split()) == 2, "the exec to join")
            lines = containerd("task", "ps", cid).stdout.splitlines()
            pids = {int(line.split()[0]) for line in lines[1:]}
            in_cgroup = {int(p) for p in cgroup.read_text().split()}
            return lines[0].split(), len(pids), pid in pids, pids == in_cgroup
        finally:
            containerd.remove(cid)

    assert both(containerd, probe) == (["PID", "INFO"], 2, True, True)


def test_metrics_show_the_cgroup_numbers(containerd: Containerd) -> None:
    limit = 64 << 20

    def probe(rt: Oci) -> tuple[object, ...]:
        cid = new_id("metrics", rt)
        containerd.start_detached(rt, cid, "sh", "-c", COUNTER,
                                  opts=("--memory-limit", str(limit)))
        try:
            time.sleep(0.2)
            m = json.loads(containerd("task", "metrics", "--format", "json", cid).stdout)
            table = containerd("task", "metrics", cid).stdout
            # the shim reads the cgroup itself; `events --stats` is what go-runc's Stats reads
            p = run_captured([rt.binary, "--root", str(rt.states), "events", "--stats", cid],
                             containerd.env)
            ev = json.loads(p.stdout)
            return (sorted(m), m["memory"]["usage"]["limit"], m["memory"]["usage"]["usage"] > 0,
                    m["pids"]["current"] >= 1, m["cpu"]["usage"]["total"] > 0,
                    f"memory.limit_in_bytes    {limit}" in table,
                    (ev["type"], ev["id"] == cid), sorted(ev["data"]["cpu"]["usage"]),
                    sorted(ev["data"]["memory"]), ev["data"]["memory"]["usage"]["limit"],
                    ev["data"]["pids"]["current"] >= 1)
        finally:
            containerd.remove(cid)

    keys, *numbers, stats_type, cpu_usage, memory, stats_limit, stats_pids = both(containerd, probe)
    assert {"cpu", "memory", "pids"} <= set(keys)
    assert numbers == [limit, True, True, True, True]
    assert stats_type == ("stats", True) and stats_limit == limit and stats_pids
    assert {"total", "percpu", "user", "kernel"} <= set(cpu_usage)
    assert {"usage", "swap", "kernel", "raw"} <= set(memory)


def test_pause_stops_the_counter_and_resume_starts_it(containerd: Containerd) -> None:
    def count(pid: int) -> int:
        return int(Path(f"/proc/{pid}/root/tmp/count").read_text() or 0)

    def probe(rt: Oci) -> tuple[object, ...]:
        cid = new_id("pause", rt)
        pid = containerd.start_detached(rt, cid, "sh", "-c", COUNTER)
        freezer = CGROUP / "freezer" / PARENT / cid / "freezer.state"
        try:
            wait_for(lambda: Path(f"/proc/{pid}/root/tmp/count").exists(), "the counter")
            containerd("task", "pause", cid)
            paused = containerd.task(cid)[1], freezer.read_text().strip()
            first = count(pid)
            time.sleep(0.4)
            stopped = count(pid) == first
            containerd("task", "resume", cid)
            resumed = containerd.task(cid)[1], freezer.read_text().strip()
            wait_for(lambda: count(pid) > first + 2, "the counter to go on")
            return paused, stopped, resumed
        finally:
            containerd.remove(cid)

    assert both(containerd, probe) == (("PAUSED", "FROZEN"), True, ("RUNNING", "THAWED"))


def test_kill_signals_the_init_or_every_process(containerd: Containerd) -> None:
    def attached(rt: Oci, what: str, script: str) -> tuple[str, subprocess.Popen[bytes]]:
        """`ctr run --rm` in the background, whose exit code is the container's."""
        cid = new_id(what, rt)
        p = subprocess.Popen(containerd.argv("run", "--rm", *containerd.run_opts(rt, cid), IMAGE,
                                             cid, "sh", "-c", script),
                             env=containerd.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: cid in containerd("task", "ls").stdout
                 and containerd.task(cid)[1] == "RUNNING", f"{cid} to run")
        return cid, p

    def probe(rt: Oci) -> tuple[int, ...]:
        # sh as PID 1 has no default action for TERM: a trap makes it exit, else only KILL does
        started = [attached(rt, "term", "trap 'exit 143' TERM; " + COUNTER),
                   attached(rt, "kill", "sleep 1000"),
                   attached(rt, "all", "sleep 1000 & sleep 1000")]
        try:
            time.sleep(0.3)  # sh has set its trap
            (term, _), (kill, _), (every, _) = started
            containerd("task", "kill", term)
            containerd("task", "kill", "--signal", "SIGKILL", kill)
            containerd("task", "kill", "--all", "--signal", "SIGKILL", every)
            return tuple(p.wait(timeout=30) for _, p in started)
        finally:
            for cid, p in started:
                if p.poll() is None:
                    containerd.remove(cid)
                    p.wait(timeout=30)

    assert both(containerd, probe) == (143, 137, 137)


# -- cgroups: where containerd's default path lands; the systemd driver ---------------------
def test_default_cgroup_path_is_taken_from_the_hierarchy_root(containerd: Containerd) -> None:
    def probe(rt: Oci) -> tuple[object, ...]:
        cid = new_id("cgpath", rt)
        containerd("run", "-d", *containerd.run_opts(rt, cid, cgroup=False), IMAGE, cid,
                   "sleep", "1000")
        pid = containerd.task(cid)[0]
        try:
            path = cgroup_of(pid, "memory")
            made = (CGROUP / "memory" / NAMESPACE / cid).is_dir()
            ours = cgroup_of(os.getpid(), "memory")
        finally:
            containerd.remove(cid)
        # /<namespace>/<id> from the root, not below the caller's cgroup (this test's)
        return (path == f"/{NAMESPACE}/{cid}", made, ours == "/" or not path.startswith(ours),
                any((h / NAMESPACE / cid).exists() for h in hierarchies()))

    assert both(containerd, probe) == (True, True, True, False)


def test_systemd_cgroup_driver_is_refused(containerd: Containerd) -> None:
    if Path("/run/systemd/system").is_dir():
        pytest.skip("systemd runs here: runc would make the scope through it")

    def probe(rt: Oci) -> tuple[object, ...]:
        cid = new_id("systemd", rt)
        p = containerd("run", "--rm", "--runc-binary", rt.binary, "--runc-root", str(rt.root),
                       "--runc-systemd-cgroup", "--cgroup", f"{SLICE}:test:{cid}",
                       IMAGE, cid, "true", check=False)
        made = [str(h) for h in hierarchies() if (h / SLICE).exists()]
        return (p.returncode, "OCI runtime create failed" in p.stderr, made,
                gone(containerd, rt, cid))

    assert both(containerd, probe) == (1, True, [], True)
    # with a path of its own form too, and in words that say what to do instead
    skiff = containerd.runtimes["skiff"]
    p = containerd.run(skiff, new_id("systemd", skiff), "true", opts=("--runc-systemd-cgroup",))
    assert p.returncode == 1
    assert "--systemd-cgroup: skiff-runtime has no systemd cgroup driver" in p.stderr, p.stderr
