"""The classic runtime escapes, tried from inside a container, each where a runtime once let
it through: the runtime's own binary reached through /proc/PID/exe (runc's CVE-2019-5736), a
host fd or working directory left to the program (CVE-2024-21626), a symlink swapped into a
mount target while a container starts (CVE-2021-30465), and /proc, /sys and the keyring used
to reach the host's settings (masked and read-only paths, the /dev/null of a mask:
CVE-2025-31133; the session keyring)."""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from conftest import CGROUP_PREFIX, RUNTIME, in_user_namespace, run_captured

pytestmark = pytest.mark.root


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def wait_for_file(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def wait_for_stopped(runtime, cid: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while runtime.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, f"{cid} never stopped"
        time.sleep(0.02)


def started(runtime, bundle, *argv: str) -> None:
    runtime.create(bundle.args(*argv))
    runtime("start", bundle.id)


def next_container(bundle, cid: str | None = None) -> None:
    """Another container from the same bundle: its own id and cgroup."""
    bundle.id = cid or bundle.id + "b"
    bundle.config["linux"]["cgroupsPath"] = f"/skiff/{CGROUP_PREFIX}/{bundle.id}"


# what a process of the container can reach of another process DIR (/proc/PID): a line
# per way in that worked. Nothing is ever written: `true >>` only opens for appending.
PROBE = """probe() {
  readlink $1/exe >/dev/null 2>&1 && echo "$1 exe-link"
  cat $1/exe >/dev/null 2>&1 && echo "$1 exe-read"
  true 2>/dev/null >>$1/exe && echo "$1 exe-write"
  ls $1/cwd/ >/dev/null 2>&1 && echo "$1 cwd"
  readlink $1/fd/0 >/dev/null 2>&1 && echo "$1 fds"
  cat $1/environ >/dev/null 2>&1 && echo "$1 environ"
  echo "$1 probed"
}
"""


# -- CVE-2019-5736: the runtime's executable ------------------------------------------------
@pytest.mark.parametrize("userns", [False, True])
def test_a_created_containers_init_cannot_be_reached_through_proc(runtime, bundle, userns):
    # until `start`, the container's pid 1 is the runtime itself (the host's Python, with
    # the container's capabilities by now) waiting on its exec fifo; an exec'd process of
    # the container must find it closed. In a user namespace, setting an OOM score makes
    # init dumpable for a moment (its /proc files are the host root's otherwise)
    if userns:
        in_user_namespace(bundle, 230000)
        bundle.config["process"]["oomScoreAdj"] = 321
    runtime.create(bundle.args("true"))
    init_pid = runtime.state(bundle.id)["pid"]
    exe = os.path.realpath(f"/proc/{init_pid}/exe")  # as the host sees it
    assert Path(exe).name.startswith("python"), exe
    before = sha256(exe)
    p = runtime("exec", bundle.id, "sh", "-c", PROBE + "probe /proc/1")
    assert p.stdout.splitlines() == ["/proc/1 probed"], p.stdout
    assert sha256(exe) == before


def test_the_runtimes_exec_child_cannot_be_reached_through_proc(runtime, bundle):
    # an exec's child is the runtime's Python inside the container's namespaces until its
    # execve; the container holds it there by making /etc/passwd a fifo (the child reads it
    # for $HOME) and probes it meanwhile
    report = bundle.rootfs / "tmp" / "report"
    script = PROBE + """rm /etc/passwd; mkfifo /etc/passwd; touch /tmp/armed
exec 3>/etc/passwd  # returns once the runtime's child opened it, to read
for d in /proc/[0-9]*; do [ $d = /proc/1 ] || probe $d; done >/tmp/report.part
mv /tmp/report.part /tmp/report
echo 'root:x:0:0:root:/root:/bin/sh' >&3; exec 3>&-
exec sleep 100"""
    started(runtime, bundle, "sh", "-c", script)
    wait_for_file(bundle.rootfs / "tmp" / "armed")
    exe = os.path.realpath(sys.executable)
    before = sha256(exe)
    p = runtime("exec", bundle.id, "true", timeout=30)
    assert p.returncode == 0
    lines = report.read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith(" probed"), lines  # the child, and nothing got in
    assert sha256(exe) == before


# -- CVE-2024-21626: host fds and working directories -------------------------------------
def with_host_fds(runtime, fds: tuple[int, ...], path: Path,
                  *argv: str) -> subprocess.CompletedProcess[str]:
    """skiff-runtime ARGV with inheritable fds `fds` open on the host folder `path`, as an
    engine that leaks them would call it."""
    shell = "".join(f'exec {fd}<"$0"; ' for fd in fds) + 'exec "$@"'
    return run_captured(["sh", "-c", shell, str(path), RUNTIME, "--root", str(runtime.root),
                         *argv], runtime.env)


FDS = "ls /proc/self/fd | sort -n | tr '\\n' ' '"  # ls's own fd on the folder comes last


@pytest.mark.parametrize("preserve", [0, 2])
def test_only_stdio_and_preserved_fds_reach_run_and_exec(runtime, bundle, outside, preserve):
    # fds 3 and 4 and a stray 9 are open in the caller; only --preserve-fds lets any in
    extra = ["--preserve-fds", str(preserve)] if preserve else []
    leaked = (3, 4, 9)
    bundle.args("sh", "-c", FDS).write()
    p = with_host_fds(runtime, leaked, outside, "run", *extra, "--bundle", str(bundle.path),
                      bundle.id)
    want = [str(n) for n in range(3 + preserve + 1)]  # 0 1 2, the preserved, ls's own
    assert p.stdout.split() == want, p.stdout + p.stderr
    next_container(bundle)
    started(runtime, bundle, "sleep", "100")
    p = with_host_fds(runtime, leaked, outside, "exec", *extra, bundle.id, "sh", "-c", FDS)
    assert p.stdout.split() == want, p.stdout + p.stderr


@pytest.mark.parametrize("preserve", [False, True])
def test_a_cwd_through_a_host_fd_is_refused_for_run(runtime, bundle, outside, preserve):
    (outside / "host-only").write_text("x")
    fd = 3 if preserve else 7
    bundle.config["process"]["cwd"] = f"/proc/self/fd/{fd}"
    bundle.args("sh", "-c", "ls; pwd").write()
    extra = ["--preserve-fds", "1"] if preserve else []
    p = with_host_fds(runtime, (fd,), outside, "run", *extra, "--bundle", str(bundle.path),
                      bundle.id)
    assert "host-only" not in p.stdout, p.stdout
    assert p.returncode == 1 and "outside the container" in p.stderr, p.stderr


def test_a_cwd_through_a_host_fd_is_refused_for_exec(runtime, bundle, outside):
    (outside / "host-only").write_text("x")
    started(runtime, bundle, "sleep", "100")
    p = with_host_fds(runtime, (7,), outside, "exec", "--cwd", "/proc/self/fd/7", bundle.id,
                      "sh", "-c", "ls; pwd")
    assert "host-only" not in p.stdout, p.stdout
    assert p.returncode != 0 and "outside the container" in p.stderr, p.stderr
    # and the exec's own cwd (the runtime's, on the host) is never the program's
    p = runtime("exec", bundle.id, "pwd")
    assert p.stdout.strip() == "/"


# -- CVE-2021-30465: a symlink swapped in during the mounts --------------------------------
SWAPPER = """cd /vol; mkdir x; touch /vol/swapping
while :; do mv x d; ln -s {outside} x; rm x; mv d x; done"""


@pytest.mark.slow
def test_a_symlink_swapped_into_a_mount_target_never_redirects_the_mount(
        runtime, bundle, work, outside):
    # container A swaps /vol/x between a folder and a link to a host folder, as fast as it
    # can; container B, with the same volume and tmpfs mounts below /vol/x, starts again
    # and again. Each start either fails, naming the target, or has every tmpfs inside its
    # root (a tmpfs mounted outside would be gone with the host's root after the pivot);
    # nothing is made in the host folder, whose own t0.. stay as they were.
    vol = work / "vol"
    vol.mkdir()
    volume = {"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind"]}
    bundle.config["mounts"].append(volume)
    started(runtime, bundle, "sh", "-c", SWAPPER.format(outside=outside))
    wait_for_file(vol / "swapping")
    targets = [f"/vol/x/t{i}" for i in range(16)]
    for t in targets:
        (outside / Path(t).name).mkdir()
    host_view = sorted(outside.iterdir())
    bundle.config["mounts"] += [
        {"destination": t, "type": "tmpfs", "source": "tmpfs", "options": ["size=776k"]}
        for t in targets]
    outcomes = {"ok": 0, "refused": 0}
    swapper = bundle.id
    for i in range(40):
        next_container(bundle, f"{swapper}-{i}")
        p = runtime.run(bundle.args("sh", "-c", "grep -c size=776k /proc/self/mounts"))
        if p.returncode == 0:
            assert p.stdout.split() == [str(len(targets))], p.stdout + p.stderr
            outcomes["ok"] += 1
        else:
            assert "mount target" in p.stderr, p.stderr  # named, whatever step saw the change
            outcomes["refused"] += 1
        assert sorted(outside.iterdir()) == host_view
        assert not any(any(d.iterdir()) for d in host_view)
    # a refusal is only right under attack: with the swapper stopped and /vol/x a folder
    # again, the same mounts are made (how often a start met a swap above is the machine's
    # timing: every one of them can)
    runtime("kill", swapper, "KILL")
    wait_for_stopped(runtime, swapper)
    x = vol / "x"
    if x.is_symlink():
        x.unlink()
    if not x.exists():
        (vol / "d").rename(x)
    next_container(bundle, f"{swapper}-calm")
    p = runtime.run(bundle.args("sh", "-c", "grep -c size=776k /proc/self/mounts"))
    assert p.returncode == 0 and p.stdout.split() == [str(len(targets))], (outcomes, p.stderr)


# -- /proc, /sys and the keyring ------------------------------------------------------------
WRITES = """v=$(cat /proc/sys/vm/swappiness); (echo $v > /proc/sys/vm/swappiness) 2>&1
true 2>&1 >> /proc/sys/kernel/core_pattern
true 2>&1 >> /sys/kernel/profiling
(echo x > /proc/self/attr/exec) 2>&1
wc -c < /proc/keys; wc -c < /proc/timer_list; ls /sys/firmware | wc -l"""


def check_writes_refused(out: str) -> None:
    lines = out.splitlines()
    assert len(lines) == 7, out
    assert all("Read-only file system" in line for line in lines[:3]), out
    assert "Invalid argument" in lines[3] or "denied" in lines[3], out  # no LSM takes it
    assert lines[4:] == ["0", "0", "0"], out  # masked


def test_proc_and_sys_stay_read_only_and_masked_for_run_and_exec(runtime, bundle):
    p = runtime.run(bundle.args("sh", "-c", WRITES))
    check_writes_refused(p.stdout)
    next_container(bundle)
    started(runtime, bundle, "sleep", "100")
    check_writes_refused(runtime("exec", bundle.id, "sh", "-c", WRITES).stdout)


def test_a_mask_never_binds_what_a_fake_dev_null_points_to(runtime, bundle, work):
    # /dev from the bundle (a bind): its `null` is a link to a host setting. Masking a path
    # with it would show (and with a rw mount, let the container write) that setting
    dev = work / "dev"
    dev.mkdir()
    os.symlink("/proc/sys/kernel/core_pattern", dev / "null")
    bundle.config["mounts"].append(
        {"destination": "/dev", "type": "bind", "source": str(dev), "options": ["rbind"]})
    p = runtime.run(bundle.args("cat", "/proc/timer_list"))
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
    assert core_pattern.strip() not in p.stdout
    assert p.returncode == 1 and "/dev/null" in p.stderr, p.stdout + p.stderr


KEYRING = """import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(256)
n = libc.syscall(int(sys.argv[1]), 6, -3, buf, 256)  # KEYCTL_DESCRIBE, the session keyring
print(buf.value.decode().rsplit(";", 1)[-1] if n > 0 else "none")
"""
JOIN_THEN_EXEC = """import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
assert libc.syscall(int(sys.argv[1]), 1, sys.argv[2].encode()) > 0  # KEYCTL_JOIN_SESSION_KEYRING
os.execv(sys.argv[3], sys.argv[3:])
"""


@pytest.mark.parametrize("new_keyring", [True, False])
def test_the_session_keyring_is_the_containers_own_unless_asked(runtime, bundle, new_keyring):
    # the runtime starts in a session keyring of the test's own; the host's Python, its
    # /usr bound read-only into the container, asks the kernel which one the program has
    # (started by the dynamic loader: the runtime refuses its own executable as a program)
    from skiff.kernel.syscall import SYSCALL_NUMBERS
    loader = min(glob.glob(f"/lib/{sysconfig.get_config_var('MULTIARCH')}/ld-linux*.so.*"))
    keyctl = str(SYSCALL_NUMBERS["keyctl"])
    host_name = f"skiff-test-host-{bundle.id}"
    bundle.config["mounts"].append(
        {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]})
    for name in ("lib", "lib64"):  # a merged /usr, as the host's
        os.symlink(os.readlink(f"/{name}"), bundle.rootfs / name)
    bundle.args(loader, "/usr/bin/python3", "-S", "-c", KEYRING, keyctl).write()
    extra = [] if new_keyring else ["--no-new-keyring"]
    p = run_captured([sys.executable, "-S", "-c", JOIN_THEN_EXEC, keyctl, host_name, RUNTIME,
                      "--root", str(runtime.root), "run", *extra, "--bundle", str(bundle.path),
                      bundle.id], runtime.env)
    assert p.returncode == 0, p.stderr
    want = f"_ses.{bundle.id}" if new_keyring else host_name
    assert p.stdout.strip() == want, p.stdout + p.stderr
