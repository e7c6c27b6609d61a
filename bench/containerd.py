"""A containerd of the bench's own, with skiff's busybox image imported, and its removal.

`start_containerd` starts Debian's containerd on a config it writes into the bench's temp
folder: its own root, state, gRPC/ttrpc/debug sockets and `opt` folder there, the CRI plugin
disabled (no CNI, no kubelet wiring, nothing it would set up on the host), no metrics
listener. It imports skiff's built-in busybox image (made by `skiff.store.builtin`, written
out by `skiff.store.archive.save` as a `docker save` tar, so it is the image `containers.py`
gives docker and podman) with `ctr images import`. `Containerd.stop` removes every
container left in its namespace, stops the daemon by PID, kills by PID a shim still serving
its socket (and removes that shim's socket in /run/containerd/s, the one path a 1.6 shim
uses outside the folder), and unmounts what is left mounted below the folder; the caller
removes the folder and checks the cgroups (each container is given its cgroupsPath).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

from daemons import Processes, answers, log, unmount_under, wait_for

IMAGE = "docker.io/library/busybox:latest"
NAMESPACE = "skiff-bench"
# a 1.6 shim listens on /run/containerd/s/<sha256(address/namespace/id)>, whatever the root
SHIM_SOCKET_DIR = Path("/run/containerd/s")


class Containerd:
    """One running containerd below `work` and the `ctr` command pointed at it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.socket = work / "containerd.sock"
        self.procs = Processes()
        self.ctr = ["ctr", "--address", str(self.socket), "--namespace", NAMESPACE]

    def config(self) -> str:
        w = self.work
        return (
            "version = 2\n"
            f'root = "{w / "root"}"\n'
            f'state = "{w / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.socket}"\n'
            f'[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
            f'[debug]\n  address = "{w / "debug.sock"}"\n'
            '[metrics]\n  address = ""\n'
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{w / "opt"}"\n')

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        conf = self.work / "config.toml"
        conf.write_text(self.config())
        self.procs.start("containerd", ["containerd", "--config", str(conf)],
                         self.work / "containerd.log")
        wait_for("containerd", lambda: answers(self.ctr + ["version"]))

    def import_busybox(self, store_dir: Path) -> None:
        """skiff's built-in busybox, saved as a tar and imported (and unpacked) as IMAGE."""
        from skiff.store.archive import save
        from skiff.store.builtin import ensure_busybox
        from skiff.store.images import ImageStore

        store = ImageStore(store_dir)
        ensure_busybox(store, IMAGE)
        tar = self.work / "busybox.tar"
        with tar.open("wb") as f:
            save(store, [IMAGE], f)
        subprocess.run(self.ctr + ["images", "import", str(tar)], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    def run_cmd(self, binary: str, runc_root: Path, cgroup: str, cid: str, *args: str) -> list[str]:
        """`ctr run --rm` of IMAGE under the runc v2 shim driving `binary` (a runc-compatible
        runtime) with its state in `runc_root`, in the cgroup `cgroup`."""
        return self.ctr + ["run", "--rm", "--runc-binary", binary, "--runc-root", str(runc_root),
                           "--cgroup", cgroup, IMAGE, cid, *args]

    def _shims(self) -> list[int]:
        """Shims serving this containerd (their command line names its socket)."""
        mine = f"-address\0{self.socket}\0".encode()
        found = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if cmdline.split(b"\0", 1)[0].endswith(b"containerd-shim-runc-v2") and mine in cmdline:
                    found.append(int(pid))
        return found

    def _ids(self) -> list[str]:
        r = subprocess.run(self.ctr + ["containers", "list", "--quiet"], capture_output=True, text=True)
        return r.stdout.split() if r.returncode == 0 else []

    def stop(self) -> list[str]:
        """Remove what is left, stop everything by PID; what had to be forced is returned."""
        forced: list[str] = []
        if self.procs.started and self.procs.started[0][1].poll() is None:
            for cid in self._ids():
                forced.append(f"containerd container {cid}")
                subprocess.run(self.ctr + ["tasks", "kill", "--signal", "SIGKILL", cid], capture_output=True)
                subprocess.run(self.ctr + ["tasks", "delete", "--force", cid], capture_output=True)
                subprocess.run(self.ctr + ["containers", "delete", cid], capture_output=True)
        self.procs.stop_all()
        deadline = time.monotonic() + 5   # a shim exits by itself once its task is gone
        while self._shims() and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self._shims():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            forced.append(f"shim {pid}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if b"-id" in cmdline:
                cid = cmdline[cmdline.index(b"-id") + 1].decode()
                name = hashlib.sha256(os.path.join(str(self.socket), NAMESPACE, cid).encode()).hexdigest()
                (SHIM_SOCKET_DIR / name).unlink(missing_ok=True)
        unmount_under(self.work)
        if forced:
            log("containerd: had to force " + ", ".join(forced))
        return forced


def start_containerd(work: Path, store_dir: Path) -> Containerd:
    """A containerd under `work` with IMAGE imported; stop() it whatever happens next."""
    ctd = Containerd(work)
    try:
        ctd.start()
        ctd.import_busybox(store_dir)
    except BaseException:
        ctd.stop()
        raise
    return ctd
