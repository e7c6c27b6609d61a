"""cgroup limits and live operations, from inside and out: memory (OOM kill), pids (a fork
bomb), pause/resume, update, ps, events, exec and terminals, hooks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import RUNTIME

pytestmark = pytest.mark.root


def cgroup_dir(bundle, controller: str) -> Path:
    return Path(f"/sys/fs/cgroup/{controller}{bundle.config['linux']['cgroupsPath']}")


def started(runtime, bundle, *argv: str) -> int:
    runtime.create(bundle.args(*argv))
    runtime("start", bundle.id)
    return runtime.state(bundle.id)["pid"]


def test_memory_limit_oom_kills(runtime, bundle):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 32 << 20, "swap": 32 << 20}}
    # a shell variable that doubles until it is far past 32 MiB
    hog = "a=x; while :; do a=$a$a; done"
    p = runtime.run(bundle.args("sh", "-c", hog), timeout=60)
    assert p.returncode == 128 + signal.SIGKILL, p.stderr


def test_pids_limit_stops_a_fork_bomb(runtime, bundle):
    bundle.config["linux"]["resources"] = {"pids": {"limit": 20}}
    started(runtime, bundle, "sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 1000")
    pids = cgroup_dir(bundle, "pids")
    deadline = time.monotonic() + 10
    while int((pids / "pids.events").read_text().split()[1]) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert int((pids / "pids.events").read_text().split()[1]) > 0  # forks were refused
    assert int((pids / "pids.current").read_text()) <= 20
    runtime("delete", "--force", bundle.id)  # and the bomb is gone with the container
    assert not pids.exists()


def test_pause_freezes_and_resume_thaws(runtime, bundle, work):
    counter = work / "counter"
    counter.mkdir()
    bundle.config["mounts"].append({"destination": "/out", "type": "bind", "source": str(counter),
                                    "options": ["bind"]})
    # written aside and renamed: a freeze (or a read) between the truncate and the write of
    # `echo > n` would see an empty file
    started(runtime, bundle, "sh", "-c",
            "i=0; while :; do i=$((i+1)); echo $i > /out/t; mv /out/t /out/n; sleep 0.02; done")
    time.sleep(0.3)
    runtime("pause", bundle.id)
    assert runtime.state(bundle.id)["status"] == "paused"
    assert (cgroup_dir(bundle, "freezer") / "freezer.state").read_text().strip() == "FROZEN"
    frozen_at = (counter / "n").read_text()
    time.sleep(0.3)
    assert (counter / "n").read_text() == frozen_at
    assert runtime("pause", bundle.id, check=False).returncode == 1  # not twice
    runtime("resume", bundle.id)
    assert runtime.state(bundle.id)["status"] == "running"
    time.sleep(0.3)
    assert (counter / "n").read_text() != frozen_at


def test_update_changes_limits_live(runtime, bundle):
    started(runtime, bundle, "sleep", "1000")
    runtime("update", "--memory", "64m", "--pids-limit", "33", "--cpu-quota", "50000",
            "--cpu-period", "100000", bundle.id)
    assert (cgroup_dir(bundle, "memory") / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    assert (cgroup_dir(bundle, "pids") / "pids.max").read_text().strip() == "33"
    assert (cgroup_dir(bundle, "cpu") / "cpu.cfs_quota_us").read_text().strip() == "50000"
    runtime("update", "--resources", "-", bundle.id, input=json.dumps({"pids": {"limit": 44}}))
    assert (cgroup_dir(bundle, "pids") / "pids.max").read_text().strip() == "44"
    bad = runtime("update", "--resources", "-", bundle.id, input='{"pids": {"limit": "many"}}',
                  check=False)
    assert bad.returncode == 1 and "resources.pids.limit" in bad.stderr
    assert (cgroup_dir(bundle, "pids") / "pids.max").read_text().strip() == "44"


def test_ps_and_events(runtime, bundle):
    pid = started(runtime, bundle, "sh", "-c", "sleep 1000 & wait")
    time.sleep(0.2)
    pids = json.loads(runtime("ps", "--format", "json", bundle.id).stdout)
    assert pid in pids and len(pids) == 2
    table = runtime("ps", bundle.id).stdout
    assert table.splitlines()[0].split()[:2] == ["UID", "PID"] and "sleep 1000" in table
    ev = json.loads(runtime("events", "--stats", bundle.id).stdout)
    assert ev["type"] == "stats" and ev["id"] == bundle.id
    assert ev["data"]["pids"]["current"] == 2
    assert ev["data"]["memory"]["usage"]["usage"] > 0


def test_exec_joins_the_same_namespaces(runtime, bundle):
    pid = started(runtime, bundle, "sleep", "1000")
    p = runtime("exec", bundle.id, "sh", "-c", "for n in pid mnt net ipc uts; do readlink /proc/1/ns/$n; "
                "readlink /proc/self/ns/$n; done; cat /proc/self/cgroup | grep memory; hostname")
    lines = p.stdout.split()
    pairs = list(zip(lines[0:10:2], lines[1:10:2]))
    assert all(a == b for a, b in pairs), pairs
    for kind in ("pid", "mnt", "net"):
        assert os.readlink(f"/proc/{pid}/ns/{kind}") in lines
    assert bundle.config["linux"]["cgroupsPath"] in p.stdout
    assert lines[-1] == "skiff"
    rc = runtime("exec", "--user", "1000:1000", "--env", "X=y", "--cwd", "/tmp", bundle.id,
                 "sh", "-c", "id -u; echo $X; pwd; exit 3", check=False)
    assert rc.returncode == 3 and rc.stdout.split() == ["1000", "y", "/tmp"]
    missing = runtime("exec", bundle.id, "nosuchbinary", check=False)
    assert missing.returncode == 1 and "executable file not found" in missing.stderr


def test_exec_detached_with_pid_file(runtime, bundle, work):
    started(runtime, bundle, "sleep", "1000")
    pid_file = work / "exec.pid"
    runtime("exec", "--detach", "--pid-file", str(pid_file), bundle.id, "sleep", "999")
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\x00999")
    assert pid in json.loads(runtime("ps", "--format", "json", bundle.id).stdout)


def in_pid_namespace_of(pid: int) -> list[int]:
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and os.readlink(f"/proc/{name}/ns/pid") == ns:
                found.append(int(name))
        except OSError:
            continue  # gone meanwhile
    return found


@pytest.mark.parametrize("broken", ["kept-files", "driver"])
def test_exec_whose_cgroup_cannot_be_joined_fails_and_leaves_no_process(runtime, bundle, work,
                                                                       broken):
    """The process joins the cgroup while its parent waits: when that fails, it is ended
    before exec reports the error (nothing waits in the container) — whether through the
    cgroup.procs files create kept, or, for a state saved before they were kept, through
    the driver, which reads the mount table (and finds no hierarchy here)."""
    pid = started(runtime, bundle, "sleep", "1000")
    state_file = runtime.root / bundle.id / "state.json"
    saved = state_file.read_text()
    (work / "no-cgroups").mkdir()
    doc = json.loads(saved)
    assert doc["cgroup_procs"], "create keeps the cgroup.procs files"
    if broken == "kept-files":
        doc["cgroup_procs"] = [str(work / "no-cgroups" / "cgroup.procs")]
        expected = "no-cgroups/cgroup.procs`: ENOENT"
    else:
        doc = {k: v for k, v in doc.items() if k != "cgroup_procs"}
        doc["cgroup_root"] = str(work / "no-cgroups")
        expected = "no cgroup hierarchy is mounted"
    state_file.write_text(json.dumps(doc))
    try:
        p = runtime("exec", bundle.id, "true", check=False)
        assert p.returncode == 1 and expected in p.stderr, p.stderr
        assert in_pid_namespace_of(pid) == [pid]
    finally:
        state_file.write_text(saved)  # so that the fixture's delete finds the real cgroup
    assert runtime("exec", bundle.id, "true").returncode == 0


class ConsoleListener:
    """The other end of --console-socket, as containerd or conmon hold it."""

    def __init__(self, path: Path) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.server.settimeout(20)

    def master(self) -> tuple[str, int]:
        conn, _ = self.server.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        return msg.decode(), fds[0]

    def close(self) -> None:
        self.server.close()


def read_until(fd: int, marker: bytes, timeout: float = 10) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(fd, False)
    while marker not in out and time.monotonic() < deadline:
        try:
            out += os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.02)
        except OSError:
            break
    return out


def test_terminal_through_a_console_socket(runtime, bundle, work):
    listener = ConsoleListener(work / "console.sock")
    try:
        bundle.config["process"]["terminal"] = True
        bundle.args("sh", "-c", "tty; test -t 0 && echo IS-A-TTY; read line; echo got-$line; exit 5")
        bundle.write()
        create = subprocess.Popen([RUNTIME, "--root", str(runtime.root), "create", "--bundle",
                                   str(bundle.path), "--console-socket", str(work / "console.sock"),
                                   bundle.id], env=runtime.env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        name, master = listener.master()
        assert create.wait(20) == 0, create.stderr.read()
        create.stderr.close()
        assert name.startswith("/dev/pts/")
        runtime("start", bundle.id)
        out = read_until(master, b"IS-A-TTY")
        assert b"/dev/pts/0" in out and b"IS-A-TTY" in out, out
        os.set_blocking(master, True)
        os.write(master, b"ahoy\n")
        assert b"got-ahoy" in read_until(master, b"got-ahoy")
        os.close(master)
    finally:
        listener.close()


def test_exec_tty_through_a_console_socket(runtime, bundle, work):
    started(runtime, bundle, "sleep", "1000")
    listener = ConsoleListener(work / "exec.sock")
    try:
        proc = subprocess.Popen([RUNTIME, "--root", str(runtime.root), "exec", "-t",
                                 "--console-socket", str(work / "exec.sock"), bundle.id, "sh"],
                                env=runtime.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, master = listener.master()
        os.write(master, b"test -t 1 && echo EXEC-TTY; exit 4\n")
        assert b"EXEC-TTY" in read_until(master, b"EXEC-TTY")
        assert proc.wait(20) == 4
        os.close(master)
    finally:
        listener.close()


def test_hooks_run_in_order_with_the_state(runtime, bundle, work):
    log = work / "hooks.log"
    hook = work / "hook.sh"
    hook.write_text(f"#!/bin/sh\nread state; echo \"$1 $state\" >> {log}\n")
    hook.chmod(0o755)
    phases = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    # startContainer runs inside the container: give it the same script at the same path
    bundle.config["mounts"].append({"destination": str(work), "type": "bind", "source": str(work),
                                    "options": ["bind"]})
    bundle.config["hooks"] = {p: [{"path": str(hook), "args": ["hook.sh", p]}] for p in phases}
    p = runtime.run(bundle.args("true"))
    assert p.returncode == 0, p.stderr
    lines = log.read_text().splitlines()
    assert [ln.split(" ", 1)[0] for ln in lines] == phases
    states = [json.loads(ln.split(" ", 1)[1]) for ln in lines]
    assert all(s["id"] == bundle.id for s in states)
    assert states[0]["pid"] > 0 and states[0]["status"] == "creating"
    assert states[-1]["status"] == "stopped"


def test_failing_hook_fails_create_and_leaves_nothing(runtime, bundle):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    p = runtime.create(bundle.args("sleep", "1000"), check=False)
    assert p.returncode == 1 and "createRuntime hook /bin/false: exit status 1" in p.stderr
    assert os.listdir(runtime.root) == []
    assert not cgroup_dir(bundle, "memory").exists()


def test_exec_preserve_fds(runtime, bundle, work):
    started(runtime, bundle, "sleep", "1000")
    data = work / "passed"
    data.write_text("fd 3 in exec\n")
    p = subprocess.run(["sh", "-c", f'exec "$0" --root {runtime.root} exec --preserve-fds 1 '
                        f'{bundle.id} cat /proc/self/fd/3 3<{data}', RUNTIME],
                       capture_output=True, text=True, env=runtime.env, timeout=30)
    assert p.stdout == "fd 3 in exec\n", p.stderr


def test_kill_all_and_force_delete_of_a_paused_container(runtime, bundle):
    started(runtime, bundle, "sh", "-c", "sleep 1000 & sleep 1000 & wait")
    time.sleep(0.2)
    assert len(json.loads(runtime("ps", "--format", "json", bundle.id).stdout)) == 3
    runtime("kill", "--all", bundle.id, "KILL")
    deadline = time.monotonic() + 10
    while runtime.state(bundle.id)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runtime.state(bundle.id)["status"] == "stopped"
    runtime("delete", bundle.id)
    bundle.id += "p"
    started(runtime, bundle, "sleep", "1000")
    runtime("pause", bundle.id)
    runtime("delete", "--force", bundle.id)  # frozen tasks must be thawed to die
    assert not cgroup_dir(bundle, "freezer").exists()


def test_events_stream_reports_stats_until_the_container_stops(runtime, bundle):
    started(runtime, bundle, "sleep", "1.5")
    p = runtime("events", "--interval", "200ms", bundle.id, timeout=30)
    events = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(events) >= 3 and all(e["type"] == "stats" and e["id"] == bundle.id for e in events)


def test_events_reports_an_oom_kill(runtime, bundle):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 32 << 20, "swap": 32 << 20}}
    started(runtime, bundle, "sh", "-c", "sleep 0.5; (a=x; while :; do a=$a$a; done); sleep 1")
    p = runtime("events", "--interval", "100ms", bundle.id, timeout=60)
    assert any(json.loads(line)["type"] == "oom" for line in p.stdout.splitlines()), p.stdout[-500:]


def test_run_relays_a_terminal_in_the_foreground(runtime, bundle):
    import pty
    bundle.config["process"]["terminal"] = True
    bundle.args("sh", "-c", "test -t 0 && echo RELAYED-TTY; read x; echo got-$x").write()
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(RUNTIME, [RUNTIME, "--root", str(runtime.root), "run", "--bundle",
                            str(bundle.path), bundle.id], runtime.env)
    try:
        assert b"RELAYED-TTY" in read_until(fd, b"RELAYED-TTY")
        os.set_blocking(fd, True)
        os.write(fd, b"ahoy\n")
        assert b"got-ahoy" in read_until(fd, b"got-ahoy")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)


def test_pause_and_kill_on_the_cgroup_v2_driver(runtime, bundle):
    # the hybrid host's cgroup2 has no controllers, but freeze and kill work on it: run the
    # container on the v2 driver alone
    runtime.env["SKIFF_CGROUP_ROOT"] = "/sys/fs/cgroup/unified"
    bundle.config["linux"]["resources"] = {}
    pid = started(runtime, bundle, "sleep", "1000")
    v2 = Path("/sys/fs/cgroup/unified" + bundle.config["linux"]["cgroupsPath"])
    assert str(pid) in (v2 / "cgroup.procs").read_text().split()
    runtime("pause", bundle.id)
    assert "frozen 1" in (v2 / "cgroup.events").read_text()
    assert runtime.state(bundle.id)["status"] == "paused"
    runtime("resume", bundle.id)
    assert "frozen 0" in (v2 / "cgroup.events").read_text()
    runtime("kill", "--all", bundle.id, "KILL")
    runtime("delete", "--force", bundle.id)
    assert not v2.exists()
