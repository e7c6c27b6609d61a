"""The container lifecycle through the real `skiff-runtime` command: create, start,
state, kill, delete, run, list, and the state machine's refusals."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import RUNTIME

pytestmark = pytest.mark.root


def wait_status(runtime, cid: str, status: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = runtime.state(cid)
        if st["status"] == status or time.monotonic() > deadline:
            return st
        time.sleep(0.02)


def test_run_returns_the_exit_code(runtime, bundle):
    assert runtime.run(bundle.args("true")).returncode == 0
    bundle.id += "b"
    assert runtime.run(bundle.args("sh", "-c", "exit 7")).returncode == 7
    assert os.listdir(runtime.root) == []  # run deletes what it made


def test_run_prints_the_container_output(runtime, bundle):
    p = runtime.run(bundle.args("sh", "-c", "echo out; echo err >&2"))
    assert (p.returncode, p.stdout, p.stderr) == (0, "out\n", "err\n")


def test_create_start_state_kill_delete(runtime, bundle, work):
    bundle.args("sleep", "1000")
    pid_file = work / "pid"
    runtime.create(bundle, "--pid-file", str(pid_file))
    st = runtime.state(bundle.id)
    assert st["status"] == "created"
    assert st["pid"] == int(pid_file.read_text())
    assert st["bundle"] == str(bundle.path) and st["rootfs"] == str(bundle.rootfs)
    assert {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"} <= set(st)
    # the init waits: the program has not run yet
    assert Path(f"/proc/{st['pid']}/cmdline").read_bytes().split(b"\0")[0] != b"sleep"
    runtime("start", bundle.id)
    st = runtime.state(bundle.id)
    assert st["status"] == "running"
    assert Path(f"/proc/{st['pid']}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"1000"]
    listed = json.loads(runtime("list", "--format", "json").stdout)
    assert [c["id"] for c in listed] == [bundle.id]
    assert bundle.id in runtime("list").stdout
    runtime("kill", bundle.id, "KILL")
    assert wait_status(runtime, bundle.id, "stopped")["status"] == "stopped"
    runtime("delete", bundle.id)
    assert runtime("state", bundle.id, check=False).returncode == 1
    assert not Path(f"/sys/fs/cgroup/memory{bundle.config['linux']['cgroupsPath']}").exists()


@pytest.mark.parametrize("sig", ["TERM", "SIGTERM", "15"])
def test_kill_takes_names_and_numbers(runtime, bundle, sig):
    # pid 1 of a pid namespace only gets the signals it handles
    runtime.create(bundle.args("sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"))
    runtime("start", bundle.id)
    runtime("kill", bundle.id, sig)
    assert wait_status(runtime, bundle.id, "stopped")["status"] == "stopped"


def test_illegal_moves_are_refused(runtime, bundle):
    runtime.create(bundle.args("sleep", "1000"))
    assert "resume" in runtime("resume", bundle.id, check=False).stderr
    runtime("start", bundle.id)
    again = runtime("start", bundle.id, check=False)
    assert again.returncode == 1 and "running" in again.stderr
    refused = runtime("delete", bundle.id, check=False)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert runtime.state(bundle.id)["status"] == "running"  # nothing changed
    assert runtime("kill", bundle.id, "NOSUCH", check=False).returncode == 1
    runtime("delete", "--force", bundle.id)
    assert runtime("kill", bundle.id, check=False).returncode == 1


def test_create_twice_is_refused(runtime, bundle):
    runtime.create(bundle.args("sleep", "1000"))
    p = runtime.create(bundle, check=False)
    assert p.returncode == 1 and "already exists" in p.stderr


def test_delete_of_a_created_container(runtime, bundle):
    runtime.create(bundle.args("sleep", "1000"))
    pid = runtime.state(bundle.id)["pid"]
    runtime("delete", bundle.id)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_run_detached(runtime, bundle):
    runtime.run(bundle.args("sleep", "1000"), "--detach", check=True)
    assert runtime.state(bundle.id)["status"] == "running"
    runtime("delete", "--force", bundle.id)
    assert os.listdir(runtime.root) == []


def test_preserve_fds(runtime, bundle, work):
    data = work / "passed"
    data.write_text("through fd 3\n")
    bundle.args("cat", "/proc/self/fd/3").write()
    p = subprocess.run(["sh", "-c", f'exec "$0" --root {runtime.root} run --preserve-fds 1 '
                        f'--bundle {bundle.path} {bundle.id} 3<{data}', RUNTIME],
                       capture_output=True, text=True, env=runtime.env)
    assert p.stdout == "through fd 3\n", p.stderr


def test_create_and_start_as_a_non_root_user(runtime, bundle, work):
    # the init reopens its exec fifo after it became uid 1000 (and non-dumpable)
    out = work / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    bundle.config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                                    "options": ["bind"]})
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    runtime.create(bundle.args("sh", "-c", "id -u > /out/id"))
    runtime("start", bundle.id)
    assert wait_status(runtime, bundle.id, "stopped")["status"] == "stopped"
    assert (out / "id").read_text() == "1000\n"


def test_the_program_gets_default_signal_dispositions(runtime, bundle):
    # Python ignores SIGPIPE and SIGXFSZ; the container's program must not inherit that
    p = runtime.run(bundle.args("grep", "SigIgn", "/proc/self/status"))
    assert p.stdout.split() == ["SigIgn:", "0000000000000000"], p.stdout


def test_an_import_after_the_pivot_finds_nothing_of_the_image(runtime, bundle):
    # an image shipping Python modules where the interpreter would look must not get them run
    lib = bundle.rootfs / "usr" / "lib" / "python3.11"
    lib.mkdir(parents=True)
    (lib / "traceback.py").write_text("open('/pwned', 'w').write('x')\n")
    (bundle.rootfs / "etc" / "passwd").write_bytes(b"root:x:0:0:\xff\xfe:/root:/bin/sh\n")
    bundle.config["process"]["env"] = ["PATH=/bin"]  # no HOME: /etc/passwd is read
    p = runtime.run(bundle.args("true"))
    assert p.returncode == 0, p.stderr
    assert not (bundle.rootfs / "pwned").exists()
