"""`skiff` on a machine where no skiffd runs: it starts the real one itself on skiff's
default socket (a temporary SKIFF_RUN/SKIFF_ROOT here), detached, and later CLIs use it; it
never starts one for an explicit DOCKER_HOST. Each skiffd started is stopped by the PID in
$SKIFF_RUN/skiffd.pid, and the test checks it is gone with its socket and pid file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from conftest import TMP_MARK

SKIFF = str(Path(sys.executable).parent / "skiff")


@pytest.fixture
def fresh(tmp_root: Path) -> Iterator[dict[str, str]]:
    """An environment with no daemon: SKIFF_RUN and SKIFF_ROOT of its own, no DOCKER_HOST."""
    work = tmp_root / f"autostart-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env.update(SKIFF_RUN=str(work / "run"), SKIFF_ROOT=str(work / "root"),
               DOCKER_CONFIG=str(work / "docker-config"), SKIFF_TEST_RUN=TMP_MARK)
    yield env
    pid_file = work / "run" / "skiffd.pid"
    if pid_file.exists():
        _stop(int(pid_file.read_text()))
    shutil.rmtree(work, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _stop(pid: int, timeout: float = 15) -> bool:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return False
        time.sleep(0.05)
    return True


def skiff(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SKIFF, *args], env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_skiff_starts_skiffd_when_none_runs(fresh: dict[str, str]) -> None:
    run = Path(fresh["SKIFF_RUN"])
    p = skiff(fresh, "images")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[1].startswith("busybox      latest")
    pid = int((run / "skiffd.pid").read_text())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert any(part.endswith(b"skiffd") for part in cmdline)
    assert os.getsid(pid) == pid  # its own session: the CLI's terminal going away leaves it
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{pid}/fd/2") == str(run / "skiffd.log")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"SKIFF_ROOT={fresh['SKIFF_ROOT']}".encode() in environ
    assert any(Path(fresh["SKIFF_ROOT"]).iterdir())  # the store is where SKIFF_ROOT says

    # the next CLI uses the running daemon
    again = skiff(fresh, "version", "-f", "{{.Server.Version}}")
    assert (again.returncode, again.stdout) == (0, "0.1.0\n")
    assert int((run / "skiffd.pid").read_text()) == pid

    assert _stop(pid), "skiffd did not stop on SIGTERM"
    assert not (run / "skiff.sock").exists() and not (run / "skiffd.pid").exists()


def test_an_explicit_host_is_not_started(fresh: dict[str, str]) -> None:
    run = Path(fresh["SKIFF_RUN"])
    env = dict(fresh, DOCKER_HOST=f"unix://{run}/skiff.sock")
    p = skiff(env, "images")
    assert p.returncode == 1
    assert p.stderr == (f"Cannot connect to the Docker daemon at unix://{run}/skiff.sock. "
                        "Is the docker daemon running?\n")
    p = skiff(fresh, "-H", f"unix://{run}/skiff.sock", "version")
    assert p.returncode == 1 and p.stdout.startswith("Client:")
    assert not (run / "skiffd.pid").exists() and not (run / "skiffd.log").exists()


def test_version_and_help_need_no_daemon(fresh: dict[str, str]) -> None:
    assert skiff(fresh, "--version").stdout.startswith("skiff version ")
    assert skiff(fresh, "images", "--help").returncode == 0
    assert skiff(fresh, "images", "--bogus").returncode == 125
    assert not Path(fresh["SKIFF_RUN"]).exists()
