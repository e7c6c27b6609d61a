"""The daemons a bench starts for itself, each in the bench's own temp folder, and stops again.

`Processes` keeps what a bench started and stops it by PID (SIGTERM, then SIGKILL) at the
end. `start_skiffd` starts a skiffd with its own SKIFF_ROOT/SKIFF_RUN and socket;
`start_dockerd` a dockerd with its own ``--data-root``, ``--exec-root``, pid file and socket,
``--iptables=false --bridge=none`` so that it adds no rule or bridge to the host (the
containerd it needs it starts itself, as its child). Both return the CLI's argv pointed at
that socket. Used by ``pull.py``, ``containers.py`` and ``containerd.py`` (for ``runtime.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

VENV_BIN = Path(sys.executable).parent
# Debian's 20.10 CLI; /usr/local/bin may hold a newer one, first on PATH
DOCKER_CLI = "/usr/bin/docker"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def wait_for(what: str, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"[bench] {what} did not come up in {timeout:.0f} s")


def cannot_run(script: str, tools: Sequence[str]) -> bool:
    """Whether `script` must stop before it starts (not root, or a tool missing: said why);
    otherwise SIGTERM is made an exit, so that the script's clean-up still runs."""
    if os.geteuid() != 0:
        log(f"{script} needs root")
        return True
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        log(f"missing: {' '.join(missing)} (make bench installs them)")
        return True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return False


def answers(argv: list[str], env: dict[str, str] | None = None) -> bool:
    return subprocess.run(argv, capture_output=True, env=env).returncode == 0


class Processes:
    """The daemons this bench started, stopped by PID (SIGTERM, then SIGKILL) at the end."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], log_path: Path,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = open(log_path, "wb")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env=env, start_new_session=True)
        out.close()
        self.started.append((name, proc))
        return proc

    def pid(self, name: str) -> int:
        return next(p.pid for n, p in self.started if n == name)

    def stop_all(self) -> None:
        for name, proc in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    log(f"{name} ignored SIGTERM; killing it")
                    proc.kill()
                    proc.wait()


def start_skiffd(procs: Processes, work: Path,
                 *extra: str) -> tuple[list[str], dict[str, str]]:
    """A skiffd on `work`/skiff-root and `work`/skiff-run (flags `extra` on top); returns
    (skiff argv, its env)."""
    env = dict(os.environ, SKIFF_ROOT=str(work / "skiff-root"), SKIFF_RUN=str(work / "skiff-run"))
    sock = work / "skiff-run" / "skiff.sock"
    procs.start("skiffd", [str(VENV_BIN / "skiffd"), "--host", f"unix://{sock}", *extra],
                work / "skiffd.log", env=env)
    cli = [str(VENV_BIN / "skiff"), "-H", f"unix://{sock}"]
    wait_for("skiffd", lambda: answers(cli + ["version"], env))
    return cli, env


def start_dockerd(procs: Processes, work: Path, *extra: str) -> list[str]:
    """A dockerd of its own under `work` (flags `extra` on top); returns the docker CLI argv."""
    sock = work / "docker.sock"
    procs.start("dockerd", [
        "dockerd", "--data-root", str(work / "docker"), "--exec-root", str(work / "docker-run"),
        "--pidfile", str(work / "docker.pid"), "--host", f"unix://{sock}",
        "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=overlay2",
        *extra,
    ], work / "dockerd.log")
    cli = [DOCKER_CLI, "-H", f"unix://{sock}"]
    wait_for("dockerd", lambda: answers(cli + ["version"]), timeout=60)
    return cli


def unmount_under(work: Path) -> None:
    """Lazily unmount whatever a daemon left mounted below `work`, deepest first."""
    for mnt in reversed(Path("/proc/self/mounts").read_text().splitlines()):
        target = mnt.split()[1]
        if target.startswith(f"{work}/"):
            subprocess.run(["umount", "-l", target], check=False)


def remove_cgroup_tree(name: str) -> list[str]:
    """Remove the cgroup `/name` (deepest first) in every hierarchy; returns what would not go."""
    left = []
    for top in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        for sub in sorted((p for p in top.rglob("*") if p.is_dir()),
                          key=lambda p: len(p.parts), reverse=True) + [top]:
            try:
                sub.rmdir()
            except OSError as e:
                left.append(f"cgroup {sub}: {e}")
    return left


def guarded(work: Callable[[], object], cleanup: Callable[[], list[str]]) -> tuple[list[str], list[str]]:
    """`work()`, then `cleanup()` whatever happened (an error, Ctrl-C, SIGTERM made an exit):
    (the failures of `work`, what `cleanup` had to force)."""
    failures: list[str] = []
    try:
        work()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        failures.append(str(e))
    except KeyboardInterrupt:
        failures.append("interrupted")
    finally:
        log("cleaning up")
        forced = cleanup()
    return failures, forced
