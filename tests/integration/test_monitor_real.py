"""Real monitors on real containers: `MonitorLauncher.start` on a busybox bundle, then what Docker
users rely on — the output in the json-file log in Docker's format (rotated, and followed
while it grows), the exit file's code (0, 3, 137 for SIGKILL, an OOM kill), 127/126 for a
program that is missing or cannot run, a monitor that outlives the process that started
it, and nothing left behind once the container is gone (runtime state, cgroup, processes)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CGROUP_PREFIX, TMP_MARK, Bundle, run_in_child

from skiff.engine.monitor import launch
from skiff.engine.monitor.launch import (ExitStatus, MonitorLauncher, monitor_alive,
                                         read_exit_file, read_pid_file)
from skiff.engine.monitor.logread import read_log
from skiff.errors import ContainerStartError
from skiff.kernel import signals
from skiff.runtime.kill import kill
from skiff.runtime.state import StateStore

pytestmark = pytest.mark.root
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


class Monitored:
    """One container under a monitor: the files at the contract's places, in a test's own
    SKIFF_ROOT/SKIFF_RUN."""

    def __init__(self, bundle: Bundle, work: Path, launcher: MonitorLauncher) -> None:
        self.bundle = bundle
        self.launcher = launcher
        self.id = bundle.id
        self.runtime_root = work / "state"  # the `runtime` fixture's root: it cleans up there
        self.log_dir = work / "root" / "containers" / bundle.id
        self.log_dir.mkdir(parents=True)
        self.log = self.log_dir / f"{bundle.id}-json.log"
        self.exit_file = bundle.path / "exit.json"
        self.pid_file = bundle.path / "monitor.pid"
        self.monitor_log = bundle.path / "monitor.log"
        self.pids: tuple[int, int] | None = None

    def start(self, *argv: str, **options: int) -> int:
        self.bundle.args(*argv).write()
        try:
            pid = self.launcher.start(self.id, bundle=str(self.bundle.path),
                                      runtime_root=str(self.runtime_root),
                                      log_path=str(self.log), exit_file=str(self.exit_file),
                                      pid_file=str(self.pid_file),
                                      monitor_log=str(self.monitor_log), **options)
        finally:
            self.pids = read_pid_file(str(self.pid_file))
        return pid

    def wait_exit(self, timeout: float = 10) -> ExitStatus:
        deadline = time.monotonic() + timeout
        while (status := read_exit_file(str(self.exit_file))) is None:
            assert time.monotonic() < deadline, "no exit file"
            time.sleep(0.005)
        return status

    def kill(self, sig: int) -> None:
        kill(StateStore(str(self.runtime_root)), self.id, sig)

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def wait_monitor_gone(self, timeout: float = 10) -> None:
        if self.pids is None:
            return
        deadline = time.monotonic() + timeout
        while _running(self.pids[0]):
            assert time.monotonic() < deadline, f"monitor {self.pids[0]} still there"
            time.sleep(0.005)

    def leftovers(self) -> list[str]:
        found = []
        if self.runtime_root.exists() and os.listdir(self.runtime_root):
            found.append(f"runtime state {os.listdir(self.runtime_root)}")
        for hier in Path("/sys/fs/cgroup").iterdir():
            if (hier / "skiff" / CGROUP_PREFIX / self.id).exists():
                found.append(f"cgroup {hier.name}")
        for pid in self.pids or ():
            if _running(pid):
                found.append(f"process {pid}")
        complaints = self.monitor_log.read_text() if self.monitor_log.exists() else ""
        if complaints:
            found.append(f"monitor said: {complaints}")
        return found


def _running(pid: int) -> bool:
    """Whether `pid` still runs; a zombie of ours (if this process became a subreaper, an
    orphaned monitor comes to us) is reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    if state == b"Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


@pytest.fixture
def mon(bundle: Bundle, work: Path, runtime, monkeypatch) -> Monitored:
    monkeypatch.setenv("SKIFF_TEST_RUN", TMP_MARK)  # the session's leftover check finds strays
    launcher = MonitorLauncher()  # (its zygote inherits the variable: it is seen too)
    m = Monitored(bundle, work, launcher)
    yield m
    launcher.close()
    if m.pids is not None and _running(m.pids[1]):
        m.kill(signals.SIGKILL)
    m.wait_monitor_gone()
    assert m.leftovers() == []


def test_output_lands_in_the_log_in_dockers_format(mon):
    pid = mon.start("sh", "-c", "echo hi; echo oops >&2; echo 'a \"quoted\" <tag>'; printf tail")
    assert mon.pids is not None and mon.pids[1] == pid
    assert mon.wait_exit() == ExitStatus(exit_code=0, finished_at=mon.wait_exit().finished_at,
                                         oom_killed=False, signal=None)
    mon.wait_monitor_gone()
    docs = mon.entries()
    assert [(d["stream"], d["log"]) for d in docs if d["stream"] == "stdout"] == [
        ("stdout", "hi\n"), ("stdout", 'a "quoted" <tag>\n'), ("stdout", "tail")]
    assert [d["log"] for d in docs if d["stream"] == "stderr"] == ["oops\n"]
    assert all(list(d) == ["log", "stream", "time"] and TIME.match(d["time"]) for d in docs)
    raw = mon.log.read_text()
    assert '{"log":"a \\"quoted\\" \\u003ctag\\u003e\\n","stream":"stdout","time":"' in raw
    assert [e.data for e in read_log(str(mon.log))] == [d["log"].encode() for d in docs]


def test_exit_code_and_stdin_at_eof(mon):
    mon.start("sh", "-c", "cat; exit 3")  # stdin is /dev/null: cat ends at once
    status = mon.wait_exit()
    assert (status.exit_code, status.signal, status.oom_killed) == (3, None, False)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", status.finished_at)


def test_sigkill_through_the_runtime_is_137(mon):
    mon.start("sleep", "1000")
    assert mon.pids is not None and monitor_alive(mon.pids[0], mon.id)
    assert Path(f"/proc/{mon.pids[1]}/cmdline").read_bytes() == b"sleep\x001000\x00"
    mon.kill(signals.SIGKILL)
    status = mon.wait_exit()
    assert (status.exit_code, status.signal) == (137, 9)
    mon.wait_monitor_gone()
    assert mon.leftovers() == []  # the runtime container, its cgroup and the monitor: gone


def test_the_start_returns_once_the_program_runs(mon):
    # init's last step before the execve, a startContainer hook, made slow: the start's
    # answer must wait for the program, not tell the pid of a process that is still the
    # runtime (its command line the monitor's, its signal handlers Python's)
    mon.bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sleep",
                                                      "args": ["sleep", "0.3"]}]}
    pid = mon.start("sleep", "1000")
    assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x001000\x00"
    mon.kill(signals.SIGKILL)
    assert mon.wait_exit().exit_code == 137


def test_a_missing_program_is_127_on_the_status_line(mon):
    with pytest.raises(ContainerStartError) as e:
        mon.start("nosuch", "arg")
    assert e.value.exit_code == 127
    assert str(e.value) == ('OCI runtime create failed: unable to start container process: '
                            'exec: "nosuch": executable file not found in $PATH: unknown')
    assert mon.pids is None and not mon.exit_file.exists()


def test_a_program_that_cannot_run_is_126(mon):
    with pytest.raises(ContainerStartError) as e:
        mon.start("/etc/passwd")
    assert e.value.exit_code == 126 and "permission denied" in str(e.value)


def test_the_monitor_outlives_the_process_that_started_it(mon):
    def starter() -> int:
        mon.launcher = MonitorLauncher()  # the child's own zygote, ended with it
        try:
            return mon.start("sleep", "1000")
        finally:
            mon.launcher.close()
    pid = run_in_child(starter)  # that child has exited by now
    pids = read_pid_file(str(mon.pid_file))
    assert pids is not None and pids[1] == pid
    mon.pids = pids
    stat = Path(f"/proc/{pids[0]}/stat").read_bytes().rsplit(b")", 1)[1].split()
    ppid, pgrp, session = int(stat[1]), int(stat[2]), int(stat[3])
    assert (pgrp, session) == (pids[0], pids[0])  # its own session and process group
    assert ppid != os.getpid() and monitor_alive(pids[0], mon.id)
    assert Path(f"/proc/{pid}/status").read_text().count(f"PPid:\t{pids[0]}\n") == 1
    mon.kill(signals.SIGKILL)
    assert mon.wait_exit().exit_code == 137


def test_rotation_by_max_size_and_max_file(mon):
    mon.start("sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line $i; i=$((i+1)); done",
              log_max_size=4000, log_max_file=3)
    assert mon.wait_exit().exit_code == 0
    mon.wait_monitor_gone()
    names = sorted(p.name for p in mon.log_dir.iterdir())
    assert names == [mon.log.name, mon.log.name + ".1", mon.log.name + ".2"]
    assert all(p.stat().st_size < 4000 + 100 for p in mon.log_dir.iterdir())
    kept = [e.data for e in read_log(str(mon.log))]
    assert 50 < len(kept) < 400
    assert kept == [f"line {i}\n".encode() for i in range(400 - len(kept), 400)]


def test_a_follower_sees_the_lines_as_they_come_and_ends_with_the_container(mon):
    mon.start("sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.1; done")
    got = []
    for entry in read_log(str(mon.log), from_offset=0,
                          follow_until=lambda: mon.exit_file.exists()):
        got.append((entry.data, time.monotonic()))
    ended = time.monotonic()
    assert [data for data, _ in got] == [b"1\n", b"2\n", b"3\n"]
    assert got[1][1] - got[0][1] > 0.05  # read as written, not at the end
    assert ended - got[-1][1] < 0.2  # woken by the monitor closing the log


def test_an_oom_kill_is_recorded(mon):
    mem = 16 * 1024 * 1024
    mon.bundle.config["linux"]["resources"] = {"memory": {"limit": mem, "swap": mem}}
    mon.start("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
    status = mon.wait_exit()
    assert (status.exit_code, status.signal, status.oom_killed) == (137, 9, True)


def test_a_start_in_the_zygote_loads_no_module(bundle: Bundle, work: Path, runtime) -> None:
    """What a monitor's helper runs to create and start a container (the default seccomp
    profile included) is loaded in the zygote already: an import there would be paid by
    every start (the seccomp cache's key once brought json, re and platform: ~8 ms)."""
    from skiff.engine.seccomp_profile import oci_seccomp
    caps = bundle.config["process"]["capabilities"]["bounding"]
    bundle.config["linux"]["seccomp"] = oci_seccomp(None, caps)
    bundle.args("true").write()
    code = launch.BOOT.replace(
        "from skiff.engine.monitor.zygote import serve;serve(sys.argv[1:])",
        "import os\n"
        "from skiff.engine.monitor.zygote import PRELOAD\n"
        "for name in PRELOAD: __import__(name)\n"
        "before = set(sys.modules)\n"
        "from skiff.engine.monitor.startup import create_and_start\n"
        "answer = create_and_start(sys.argv[1], sys.argv[2], sys.argv[3])\n"
        "os.waitpid(int(answer.split()[1]), 0)\n"
        "print(' '.join(sorted(set(sys.modules) - before)))")
    p = subprocess.run([sys.executable, "-S", "-I", "-c", code, launch.src_dir(), bundle.id,
                        str(bundle.path), str(work / "state")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == []
